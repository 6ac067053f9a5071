package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/harkapp/hark/wire"
)

// The file's layout, schema "2". Every integer is big endian, so that keys
// sort by value.
//
//	meta        "schema" → "2"
//	            "epoch"  → 16 lowercase hex digits
//	            "reindex" → present only while clientseen is being built
//	                        (see startSweep): 0x00 (from the first client)
//	                        or 0x01 + the last client id swept
//	            "keepfrom" → present only during a sweep that trims: the
//	                        clientseen key of the least recently seen client
//	                        kept
//	            the bucket's sequence is the last item id handed out
//	ads         id (8) → item record
//	random      id (8) → item record; only the latest is kept
//	clients     client id → client record
//	clientseen  seen (8, Unix ns) + client id → empty: clients by age
//	keys        idempotency key → key record
//	keyorder    n (8, the bucket's sequence) → idempotency key: keys by age
//
// Schema "1" had meta, ads, random and clients with the same records
// (its client records are the 24-byte form without a source).
var (
	bucketMeta       = []byte("meta")
	bucketAds        = []byte("ads")
	bucketRandom     = []byte("random")
	bucketClients    = []byte("clients")
	bucketClientSeen = []byte("clientseen")
	bucketKeys       = []byte("keys")
	bucketKeyOrder   = []byte("keyorder")

	keySchema   = []byte("schema")
	keyEpoch    = []byte("epoch")
	keyReindex  = []byte("reindex")
	keyKeepFrom = []byte("keepfrom")
)

// buckets2 are the buckets of a schema "2" store.
var buckets2 = [][]byte{bucketMeta, bucketAds, bucketRandom, bucketClients, bucketClientSeen, bucketKeys, bucketKeyOrder}

const (
	// MaxSourceBytes bounds Client.Source.
	MaxSourceBytes = 64
	// MaxKeyBytes bounds an idempotency key.
	MaxKeyBytes = 255

	clientFixed = 24 // ad, random, seen
	seenKeyLen  = 8  // the seen prefix of a clientseen key
	fingerprint = 32
	keyFixed    = fingerprint + 8 + 8 // fingerprint, order, item id
)

func itemKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// An item record is: kind (1 byte: 'r' or 'c'), time (8 bytes, Unix
// nanoseconds), value.
func appendItem(b []byte, it Item) []byte {
	k := byte('c')
	if it.Kind == wire.KindRandom {
		k = 'r'
	}
	b = append(b, k)
	b = binary.BigEndian.AppendUint64(b, uint64(it.Time.UnixNano()))
	return append(b, it.Value...)
}

func encodeItem(it Item) []byte { return appendItem(make([]byte, 0, 9+len(it.Value)), it) }

// errMalformed is what decoding a record that does not have its format
// returns; it is wrapped with ErrCorrupt where a record refuses the store.
var errMalformed = errors.New("malformed record")

func decodeItem(k, v []byte) (Item, error) {
	if len(k) != 8 {
		return Item{}, fmt.Errorf("%w: item key of %d bytes, want 8", errMalformed, len(k))
	}
	if len(v) < 9 {
		return Item{}, fmt.Errorf("%w: item record of %d bytes, want at least 9", errMalformed, len(v))
	}
	var kind wire.Kind
	switch v[0] {
	case 'r':
		kind = wire.KindRandom
	case 'c':
		kind = wire.KindClassified
	default:
		return Item{}, fmt.Errorf("%w: item kind byte 0x%02x, want 'r' or 'c'", errMalformed, v[0])
	}
	return Item{
		ID:    binary.BigEndian.Uint64(k),
		Kind:  kind,
		Time:  time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))),
		Value: string(v[9:]),
	}, nil
}

// checkItem decodes a record of the bucket of kind want and checks its
// value against the rules it was published under: what fails them must
// never be sent, since a client would take it for a protocol line.
func checkItem(k, v []byte, want wire.Kind) (Item, error) {
	it, err := decodeItem(k, v)
	if err != nil {
		return Item{}, err
	}
	if it.Kind != want {
		return Item{}, fmt.Errorf("%w: a %s item among the %s items", errMalformed, it.Kind, want)
	}
	if err := ValidValue(want, it.Value); err != nil {
		return Item{}, err
	}
	return it, nil
}

// ValidValue checks what a store may hold as an item of kind: what
// wire.ParseRandom or wire.ValidateAd accepts. Every store checks with it,
// so that what one stores, a client can read.
func ValidValue(kind wire.Kind, value string) error {
	if kind == wire.KindRandom {
		_, err := wire.ParseRandom(value)
		return err
	}
	return wire.ValidateAd(value)
}

// recordName names a record of the items buckets in a report: its id, or
// its key in hex when the key is not an id.
func recordName(k []byte) string {
	if len(k) == 8 {
		return strconv.FormatUint(binary.BigEndian.Uint64(k), 10)
	}
	return fmt.Sprintf("key %x", k)
}

// seenNanos is the form a client's seen time takes on disk: Unix
// nanoseconds, never negative, so that clientseen keys sort by time (a time
// before 1970, like the zero time, reads as 1970: past any idle retention).
func seenNanos(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	if t.After(time.Unix(0, math.MaxInt64)) {
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

// A client record is three uint64: last ad id, last random id, last seen
// (Unix nanoseconds), then the source key (0 to MaxSourceBytes bytes).
func encodeClient(c Client) []byte {
	b := make([]byte, 0, clientFixed+len(c.Source))
	b = binary.BigEndian.AppendUint64(b, c.Ad)
	b = binary.BigEndian.AppendUint64(b, c.Random)
	b = binary.BigEndian.AppendUint64(b, seenNanos(c.Seen))
	return append(b, c.Source...)
}

func decodeClient(v []byte) (Client, error) {
	if len(v) < clientFixed || len(v) > clientFixed+MaxSourceBytes {
		return Client{}, fmt.Errorf("%w: client record of %d bytes, want %d to %d", errMalformed, len(v), clientFixed, clientFixed+MaxSourceBytes)
	}
	return Client{
		Ad:     binary.BigEndian.Uint64(v[0:8]),
		Random: binary.BigEndian.Uint64(v[8:16]),
		Seen:   time.Unix(0, int64(recordSeen(v))),
		Source: string(v[clientFixed:]),
	}, nil
}

// recordSeen is the seen time of a client record as clientseen orders it.
// Schema "1" wrote the zero time as a negative number; it reads as 0 here,
// the same in the index as in the decoded record. v has clientFixed bytes
// at least.
func recordSeen(v []byte) uint64 {
	n := int64(binary.BigEndian.Uint64(v[16:24]))
	return uint64(max(n, 0))
}

// seenKey is the clientseen key of a client seen at seen (Unix ns).
func seenKey(seen uint64, id []byte) []byte {
	b := make([]byte, 0, seenKeyLen+len(id))
	b = binary.BigEndian.AppendUint64(b, seen)
	return append(b, id...)
}

// keyRecord is what an idempotency key maps to: the request it was first
// used for, its place in keyorder, and the item that request made, whole,
// so that a replay works after the ads retention dropped the item.
type keyRecord struct {
	fp    [fingerprint]byte
	order uint64
	item  Item
}

func encodeKeyRecord(r keyRecord) []byte {
	b := make([]byte, 0, keyFixed+9+len(r.item.Value))
	b = append(b, r.fp[:]...)
	b = binary.BigEndian.AppendUint64(b, r.order)
	b = binary.BigEndian.AppendUint64(b, r.item.ID)
	return appendItem(b, r.item)
}

func decodeKeyRecord(v []byte) (keyRecord, error) {
	if len(v) < keyFixed+9 {
		return keyRecord{}, fmt.Errorf("%w: idempotency key record of %d bytes, want at least %d", errMalformed, len(v), keyFixed+9)
	}
	var r keyRecord
	copy(r.fp[:], v)
	r.order = binary.BigEndian.Uint64(v[fingerprint:])
	it, err := decodeItem(v[fingerprint+8:keyFixed], v[keyFixed:])
	if err != nil {
		return keyRecord{}, err
	}
	r.item = it
	return r, nil
}
