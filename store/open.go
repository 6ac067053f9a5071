package store

import (
	"bytes"
	"container/heap"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/harkapp/hark/wire"
)

// openStep bounds the records one transaction of Open's own work (the
// schema upgrade, trimming a store found over its caps) touches. Nothing
// else writes while Open runs, so it is larger than Prune's step; bounded
// all the same, so that a store of a million client ids upgrades in
// constant memory, and a crash half-way loses only the step under way.
const openStep = 10000

// schemaState is what checkSchema found.
type schemaState int

const (
	schemaNew schemaState = iota // an empty bbolt file
	schemaOld                    // schema "1": upgraded by Open
	schemaCur                    // schemaVersion
)

// checkSchema refuses a file that is not a hark store of a schema this
// package reads or upgrades.
func checkSchema(tx *bolt.Tx) (schemaState, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return 0, fmt.Errorf("%w: it has no %q bucket", ErrCorrupt, bucketMeta)
		}
		return schemaNew, nil
	}
	switch v := string(meta.Get(keySchema)); v {
	case "1":
		return schemaOld, nil
	case schemaVersion:
		// Schema 2 creates every bucket in its first transaction: a
		// missing one was lost, not yet to be made.
		for _, b := range buckets2 {
			if tx.Bucket(b) == nil {
				return 0, fmt.Errorf("%w: schema %q but no %q bucket", ErrCorrupt, v, b)
			}
		}
		return schemaCur, nil
	default:
		return 0, fmt.Errorf("%w: schema version %q, this hark reads %q", ErrCorrupt, v, schemaVersion)
	}
}

// loadReport is what load found that Open reports or acts on.
type loadReport struct {
	state     schemaState
	epoch     string // "" when none is stored
	sweeping  bool   // a sweep of the client records is under way
	indexed   int    // records in clientseen
	skipped   []string
	nSkipped  int
	firstSkip error
	badKeys   int // damaged idempotency key records
}

// skip notes an item record that load will not hand out.
func (r *loadReport) skip(k []byte, err error) {
	if r.nSkipped == 0 {
		r.firstSkip = fmt.Errorf("%s: %w", recordName(k), err)
	}
	r.nSkipped++
	if len(r.skipped) < 10 {
		r.skipped = append(r.skipped, recordName(k))
	}
}

// setup checks, loads, then upgrades or repairs the store. It writes
// nothing until load has read the whole file, so that a file load refuses
// is left exactly as it was.
func (s *Store) setup(damage string) error {
	var r loadReport
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if r.state, err = checkSchema(tx); err != nil {
			return err
		}
		return s.load(tx, &r)
	})
	if err != nil {
		return err
	}
	if r.nSkipped > 0 {
		s.log.Error("store: damaged items skipped, not served: the file is left as it is; restore it from a backup to get them back, or carry on and the retention drops them in time",
			"file", s.path, "count", r.nSkipped, "ids", strings.Join(r.skipped, ","), "first", r.firstSkip)
	}
	if r.badKeys > 0 {
		s.log.Error("store: damaged idempotency key records: a publish repeating one of them is refused until KeyAge drops it",
			"file", s.path, "count", r.badKeys)
	}

	held := s.Clients()
	sweep := r.sweeping // one an earlier Open began: carried on below
	switch r.state {
	case schemaNew:
		return s.create()
	case schemaOld:
		s.log.Info("store: upgrading from schema 1", "file", s.path, "clients", held)
		err = s.db.Update(func(tx *bolt.Tx) error {
			var err error
			s.epoch, err = beginUpgrade(tx)
			if err != nil {
				return err
			}
			return startSweep(tx, s.keep.Clients, held)
		})
		if err != nil {
			return fmt.Errorf("upgrade from schema 1: %w", err)
		}
		sweep = true
	case schemaCur:
		if err := s.checkEpoch(r.epoch, damage); err != nil {
			return err
		}
		if sweep {
			break
		}
		if r.indexed != held {
			// Only damage, or an edit by hand, gets here: a client the
			// index misses would never age out.
			s.log.Warn("store: the client index does not match the client records; rebuilding it",
				"file", s.path, "clients", held, "indexed", r.indexed)
		} else if held <= s.keep.Clients {
			break
		}
		err := s.db.Update(func(tx *bolt.Tx) error { return startSweep(tx, s.keep.Clients, held) })
		if err != nil {
			return fmt.Errorf("rebuild the client index: %w", err)
		}
		sweep = true
	}
	for sweep {
		done, d, err := sweepStep(s.db)
		if err != nil {
			return fmt.Errorf("index client ids: %w", err)
		}
		s.apply(d)
		sweep = !done
	}
	if forgot := held - s.Clients(); forgot > 0 {
		s.log.Warn("store: over the client id cap: forgot the least recently seen",
			"file", s.path, "held", held, "cap", s.keep.Clients, "forgot", forgot)
	}
	return s.trimKeys()
}

// load reads every retained item, and walks every other record once, so
// that damage to a page is found now rather than in a later transaction.
// It counts client ids (in all, and per source) and idempotency keys.
func (s *Store) load(tx *bolt.Tx, r *loadReport) error {
	if r.state == schemaNew {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	s.latest.Store(meta.Sequence())
	r.epoch = string(meta.Get(keyEpoch))
	r.sweeping = meta.Get(keyReindex) != nil

	// Damaged items are skipped, not refused: one bad record must not keep
	// a server from starting, nor reach a client.
	// The retention may have been lowered since the last run; the file is
	// trimmed by the next Append.
	_, s.nAds = retainedAds(tx.Bucket(bucketAds), s.keep.Ads, r.skip)
	if random := tx.Bucket(bucketRandom); random != nil {
		if k, v := random.Cursor().Last(); k != nil {
			if _, err := checkItem(k, v, wire.KindRandom); err != nil {
				r.skip(k, err) // the server draws a new one
			}
		}
	}

	if clients := tx.Bucket(bucketClients); clients != nil {
		n := 0
		err := clients.ForEach(func(k, v []byte) error {
			if len(k)+seenKeyLen > bolt.MaxKeySize {
				return fmt.Errorf("%w: client id of %d bytes", ErrCorrupt, len(k))
			}
			c, err := decodeClient(v)
			if err != nil {
				return fmt.Errorf("%w: client %q: %w", ErrCorrupt, clip(k), err)
			}
			n++
			if c.Source != "" {
				s.bySource[c.Source]++
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.nClients.Store(int64(n))
	}
	if r.state == schemaOld {
		return nil
	}
	err := tx.Bucket(bucketClientSeen).ForEach(func([]byte, []byte) error { r.indexed++; return nil })
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
		s.nKeys++
		if _, err := decodeKeyRecord(v); err != nil {
			r.badKeys++
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketKeyOrder).ForEach(func([]byte, []byte) error { return nil })
}

// clip shortens a stored key for an error message.
func clip(k []byte) string {
	if len(k) > 64 {
		return string(k[:64]) + "…"
	}
	return string(k)
}

// newEpoch mints an epoch: 64 random bits, in hex.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand crashes the program instead)
	return hex.EncodeToString(b[:])
}

func validEpoch(e string) bool {
	if len(e) != 16 {
		return false
	}
	_, err := hex.DecodeString(e)
	return err == nil && strings.ToLower(e) == e
}

// create makes the buckets of a new store.
func (s *Store) create() error {
	s.epoch = newEpoch()
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte(schemaVersion)); err != nil {
			return err
		}
		if err := meta.Put(keyEpoch, []byte(s.epoch)); err != nil {
			return err
		}
		for _, b := range buckets2[1:] {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// beginUpgrade turns a schema "1" file into a schema "2" one whose client
// index is still to be built (startSweep, in the same transaction). It sets
// the schema first, so that an older hark refuses the file from then on,
// even half-way, rather than write clients the index would miss.
func beginUpgrade(tx *bolt.Tx) (epoch string, err error) {
	epoch = newEpoch()
	for _, b := range buckets2[1:] {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return "", err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if err := meta.Put(keySchema, []byte(schemaVersion)); err != nil {
		return "", err
	}
	return epoch, meta.Put(keyEpoch, []byte(epoch))
}

// The sweep rebuilds clientseen from the client records and, when the
// store holds more ids than its cap (a lowered cap, or a schema "1" store
// flooded with ids), forgets the least recently seen on the way. It walks
// the records in key order, openStep at a time, each step one transaction
// that commits its position with its work: a process that dies between
// steps resumes where it was, with the same result. Forgetting in key
// order touches each page of the clients bucket once; forgetting in
// seen order would rewrite most of them in every step.
//
// Its state, in meta: "reindex" (0x00, or 0x01 + the last client id
// swept) and, when trimming, "keepfrom": the seenKey of the least recently
// seen record kept; records that sort before it go.

// startSweep empties clientseen and starts a sweep that keeps the limit
// most recently seen of the held client records.
func startSweep(tx *bolt.Tx, limit, held int) error {
	if err := tx.DeleteBucket(bucketClientSeen); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	if _, err := tx.CreateBucket(bucketClientSeen); err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	if held > limit {
		from, err := keepFrom(tx.Bucket(bucketClients), limit)
		if err != nil {
			return err
		}
		if err := meta.Put(keyKeepFrom, from); err != nil {
			return err
		}
	}
	return meta.Put(keyReindex, []byte{0})
}

// keepFrom finds the seenKey of the limit-th most recently seen client
// record, in one pass holding at most limit keys: memory is bounded by the
// cap, not by the flood.
func keepFrom(b *bolt.Bucket, limit int) ([]byte, error) {
	h := &seenHeap{}
	err := b.ForEach(func(k, v []byte) error {
		if len(v) < clientFixed {
			return fmt.Errorf("%w: client %q: %w", ErrCorrupt, clip(k), errMalformed)
		}
		sk := seenKey(recordSeen(v), k)
		switch {
		case h.Len() < limit:
			heap.Push(h, sk)
		case bytes.Compare(sk, (*h)[0]) > 0:
			(*h)[0] = sk
			heap.Fix(h, 0)
		}
		return nil
	})
	if err != nil || h.Len() == 0 {
		return nil, err
	}
	return (*h)[0], nil
}

// seenHeap is a min-heap of seenKeys: its root is the least recently seen.
type seenHeap [][]byte

func (h seenHeap) Len() int           { return len(h) }
func (h seenHeap) Less(i, j int) bool { return bytes.Compare(h[i], h[j]) < 0 }
func (h seenHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seenHeap) Push(x any)        { *h = append(*h, x.([]byte)) }
func (h *seenHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// sweepStep sweeps up to openStep client records from where the last step
// stopped, in one transaction, and reports whether the sweep is over (or
// there was none), and what it forgot.
func sweepStep(db *bolt.DB) (done bool, d clientDelta, err error) {
	err = db.Update(func(tx *bolt.Tx) error {
		d = clientDelta{}
		meta := tx.Bucket(bucketMeta)
		at := meta.Get(keyReindex)
		if at == nil {
			done = true
			return nil
		}
		from := bytes.Clone(meta.Get(keyKeepFrom))
		b, idx := tx.Bucket(bucketClients), tx.Bucket(bucketClientSeen)
		c := b.Cursor()
		var k, v []byte
		if at[0] == 0 {
			k, v = c.First()
		} else {
			after := bytes.Clone(at[1:])
			if k, v = c.Seek(after); bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		var last []byte
		var forget [][]byte // deleted after the walk: a cursor skips keys when its bucket changes under it
		for n := 0; k != nil && n < openStep; n++ {
			if len(v) < clientFixed {
				return fmt.Errorf("%w: client %q: %w", ErrCorrupt, clip(k), errMalformed)
			}
			sk := seenKey(recordSeen(v), k)
			if from != nil && bytes.Compare(sk, from) < 0 {
				forget = append(forget, bytes.Clone(k))
				d.add(string(v[clientFixed:]), -1)
			} else if err := idx.Put(sk, nil); err != nil {
				return err
			}
			last = k
			k, v = c.Next()
		}
		if k == nil {
			done = true
		} else if err := meta.Put(keyReindex, append([]byte{1}, last...)); err != nil {
			return err
		}
		for _, k := range forget {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if !done {
			return nil
		}
		if err := meta.Delete(keyKeepFrom); err != nil {
			return err
		}
		return meta.Delete(keyReindex)
	})
	return done, d, err
}

// checkEpoch mints a new epoch when the stored one is missing or malformed,
// or when bbolt opened an older meta page (damage): ids handed out since
// may be handed out again.
func (s *Store) checkEpoch(old, damage string) error {
	why := damage
	switch {
	case !validEpoch(old):
		why = fmt.Sprintf("the stored epoch %q is not 16 lowercase hex digits", clip([]byte(old)))
	case damage != "":
		why = "bbolt " + damage + ", so it opened the older one: the last transaction may be rolled back and its item ids handed out again"
	default:
		s.epoch = old
		return nil
	}
	s.epoch = newEpoch()
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyEpoch, []byte(s.epoch)) })
	if err != nil {
		return fmt.Errorf("store a new epoch: %w", err)
	}
	s.log.Warn("store: new epoch: clients will take the server's word for their positions", "file", s.path, "old", old, "new", s.epoch, "why", why)
	return nil
}

// trimKeys brings a store found over its cap of idempotency keys (lowered
// since the last run) within it, oldest first.
func (s *Store) trimKeys() error {
	held := s.nKeys
	for s.nKeys > s.keep.Keys {
		var dropped int
		err := s.db.Update(func(tx *bolt.Tx) error {
			var err error
			dropped, _, err = dropKeys(tx, min(openStep, s.nKeys-s.keep.Keys), func(keyRecord) bool { return true })
			return err
		})
		if err != nil {
			return fmt.Errorf("trim idempotency keys to %d: %w", s.keep.Keys, err)
		}
		s.nKeys -= dropped
		if dropped == 0 {
			break // only stale entries in keyorder: the count will settle as keys age out
		}
	}
	if held > s.nKeys {
		s.log.Info("store: over the idempotency key cap: dropped the oldest", "file", s.path, "held", held, "cap", s.keep.Keys)
	}
	return nil
}

// be64 reads a big-endian uint64 key.
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
