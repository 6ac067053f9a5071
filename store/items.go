package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/wire"
)

// maxKeyDrops bounds the old idempotency keys one append drops to stay
// within Retention.Keys. Open brings a store over the cap within it, so one
// is all an append ever needs; the bound keeps an append's cost fixed
// whatever happened before.
const maxKeyDrops = 16

// invalidError is bad input to the store: errors.Is(err, wire.ErrInvalid)
// holds, as for the wire package's own checks, so a caller can tell it from
// a failure.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == wire.ErrInvalid }

func invalid(format string, args ...any) error {
	return &invalidError{fmt.Sprintf(format, args...)}
}

// Appended is what an append did: the item, and the ids of the ads the
// retention count dropped to make room for it, oldest first.
type Appended struct {
	Item    Item
	Dropped []uint64
}

// Append stores a new item and returns it with its id. It returns after
// the item is on disk. The value must pass the rules of its kind
// (wire.ValidateAd, wire.ParseRandom): what Append stores, Open loads.
// Appending an ad also drops the oldest ads beyond the retention count;
// appending a random number drops the previous one.
func (s *Store) Append(kind wire.Kind, value string, at time.Time) (Item, error) {
	it, _, err := s.append(kind, value, at, nil, [32]byte{})
	return it, err
}

// AppendKeyed is Append made idempotent by key (a publish request's
// Idempotency-Key). The first call with a key appends the item and, in the
// same transaction, records the key with the item and the request's
// fingerprint. A later call with the key appends nothing and returns that
// first item with replayed true, also after a restart, and also once the
// ads retention has dropped the item. A later call with the key and
// another fingerprint returns an error wrapping ErrKeyReused.
//
// An empty key is a plain Append. A key is at most MaxKeyBytes (longer: an
// error wrapping wire.ErrInvalid). Keys are kept Retention.KeyAge, and at
// most Retention.Keys of them: the oldest go first.
func (s *Store) AppendKeyed(kind wire.Kind, value string, at time.Time, key string, fingerprint [32]byte) (it Item, replayed bool, err error) {
	if len(key) > MaxKeyBytes {
		return Item{}, false, fmt.Errorf("append %s: %w", kind, invalid("an idempotency key is 1 to %d bytes, this one is %d", MaxKeyBytes, len(key)))
	}
	var k []byte
	if key != "" {
		k = []byte(key)
	}
	return s.append(kind, value, at, k, fingerprint)
}

// OnAppend sets f to be told of every new item, once each, in id order,
// one at a time: with its append's lock held, once the item is on disk,
// before the append returns. A server that keeps a copy of the items and
// fans them out in f does so in id order with the store's lock alone.
// It is not told of a replay or a failure. f must not call the store.
// Set it before the first append.
func (s *Store) OnAppend(f func(Appended)) { s.onAppend.Store(&f) }

func (s *Store) append(kind wire.Kind, value string, at time.Time, key []byte, fp [32]byte) (Item, bool, error) {
	if !kind.Valid() {
		return Item{}, false, fmt.Errorf("append: %w", invalid("unknown kind %q", kind))
	}
	if err := ValidValue(kind, value); err != nil {
		return Item{}, false, fmt.Errorf("append %s: %w", kind, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it := Item{Kind: kind, Value: value, Time: at}
	nAds, nKeys := s.nAds, s.nKeys
	var prior *keyRecord
	var priorErr error
	// Client positions staged so far ride along: the sync is paid anyway,
	// and an acknowledgement made before a publish is on disk with it.
	staged, commit := s.takeStaged()
	var d clientDelta
	var dropped []uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		dropped = dropped[:0] // a retried transaction starts over
		var err error
		if d, err = s.writeClients(tx, staged); err != nil {
			return err
		}
		keys := tx.Bucket(bucketKeys)
		if key != nil {
			if v := keys.Get(key); v != nil {
				// Answered from the first request, appending nothing. Not
				// an error for the transaction: the positions it carries
				// commit all the same.
				r, err := decodeKeyRecord(v)
				if err != nil {
					priorErr = fmt.Errorf("%w: the record of this idempotency key: %w", ErrCorrupt, err)
				}
				prior = &r
				return nil
			}
		}
		id, err := tx.Bucket(bucketMeta).NextSequence()
		if err != nil {
			return err
		}
		it.ID = id
		if kind == wire.KindRandom {
			if err := putLatestRandom(tx.Bucket(bucketRandom), it); err != nil {
				return err
			}
		} else {
			b := tx.Bucket(bucketAds)
			if err := b.Put(itemKey(id), encodeItem(it)); err != nil {
				return err
			}
			if nAds, dropped, err = trimOldest(b, nAds+1, s.keep.Ads, dropped); err != nil {
				return err
			}
		}
		if key == nil {
			return nil
		}
		order := tx.Bucket(bucketKeyOrder)
		n, err := order.NextSequence()
		if err != nil {
			return err
		}
		if err := keys.Put(key, encodeKeyRecord(keyRecord{fp: fp, order: n, item: it})); err != nil {
			return err
		}
		if err := order.Put(itemKey(n), key); err != nil {
			return err
		}
		nKeys++
		if nKeys > s.keep.Keys {
			dropped, _, err := dropKeys(tx, min(maxKeyDrops, nKeys-s.keep.Keys), func(keyRecord) bool { return true })
			if err != nil {
				return err
			}
			nKeys -= dropped
		}
		return nil
	})
	if err == nil {
		s.apply(d)
	}
	if staged != nil {
		s.finish(commit, err)
	}
	if err != nil {
		return Item{}, false, fmt.Errorf("append %s: %w", kind, closedErr(err))
	}
	switch {
	case priorErr != nil:
		return Item{}, false, fmt.Errorf("append %s with idempotency key %q: %w: publish it with a new key", kind, clip(key), priorErr)
	case prior != nil && prior.fp != fp:
		return Item{}, false, fmt.Errorf("append %s with idempotency key %q: %w", kind, clip(key), ErrKeyReused)
	case prior != nil:
		return prior.item, true, nil
	}
	if kind == wire.KindClassified {
		s.nAds = nAds
	}
	s.nKeys = nKeys
	s.latest.Store(it.ID)
	if f := s.onAppend.Load(); f != nil {
		(*f)(Appended{Item: it, Dropped: dropped})
	}
	return it, false, nil
}

// putLatestRandom stores it as the only record of the random bucket: only
// the latest number matters.
func putLatestRandom(b *bolt.Bucket, it Item) error {
	key := itemKey(it.ID)
	if err := b.Put(key, encodeItem(it)); err != nil {
		return err
	}
	var others [][]byte // normally one
	err := b.ForEach(func(k, _ []byte) error {
		if !bytes.Equal(k, key) {
			others = append(others, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range others {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// trimOldest deletes the first keys of b, which holds n item keys, until
// at most keep remain, and returns how many remain, with the ids deleted
// appended to dropped.
func trimOldest(b *bolt.Bucket, n, keep int, dropped []uint64) (int, []uint64, error) {
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n > keep; k, _ = c.First() {
		if len(k) == 8 {
			dropped = append(dropped, binary.BigEndian.Uint64(k))
		}
		if err := c.Delete(); err != nil {
			return n, dropped, err
		}
		n--
	}
	return n, dropped, nil
}

// dropKeys drops idempotency keys from the oldest, while expired says so
// of their record, visiting at most limit entries of keyorder. It returns
// how many keys it dropped, and whether it stopped at the limit.
func dropKeys(tx *bolt.Tx, limit int, expired func(keyRecord) bool) (dropped int, more bool, err error) {
	keys := tx.Bucket(bucketKeys)
	c := tx.Bucket(bucketKeyOrder).Cursor()
	n := 0
	for k, v := c.First(); k != nil; k, v = c.First() {
		if n == limit {
			return dropped, true, nil
		}
		n++
		if len(k) == 8 && len(v) > 0 {
			name := bytes.Clone(v)
			if rec := keys.Get(name); rec != nil {
				r, err := decodeKeyRecord(rec)
				switch {
				case err != nil:
					// Damaged, its age unknown; it is no younger than the
					// expired keys before it.
				case r.order != be64(k):
					rec = nil // the entry is stale: the key was dropped and used again
				case !expired(r):
					return dropped, false, nil
				}
				if rec != nil {
					if err := keys.Delete(name); err != nil {
						return dropped, false, err
					}
					dropped++
				}
			}
		}
		if err := c.Delete(); err != nil {
			return dropped, false, err
		}
	}
	return dropped, false, nil
}
