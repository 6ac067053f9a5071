package store

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pruneStep bounds the records one transaction of Prune deletes (or
// visits). Between two steps the write lock is free, so an Append or a
// commit of positions waits for one short step at most, and memory stays
// bounded whatever the size of the tables.
const pruneStep = 1000

// Prune applies the age retention: it drops ads older than
// Retention.AdAge, client ids not seen for Retention.ClientIdle and
// idempotency keys older than Retention.KeyAge, each from the oldest, in
// steps of at most pruneStep records, one transaction each. It returns the
// ids of the ads it dropped, oldest first; after an error, those dropped
// before it (they are gone from the file). Meant to run often (every
// minute): each run then has little to do.
func (s *Store) Prune(now time.Time) (droppedAds []uint64, err error) {
	adCut := now.Add(-s.keep.AdAge)
	for more := true; more; {
		var dropped [][]byte
		more, err = s.step(func(tx *bolt.Tx) (bool, error) {
			var more bool
			dropped, more = nil, false
			b := tx.Bucket(bucketAds)
			c := b.Cursor()
			visited := 0
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if visited == pruneStep {
					more = len(dropped) > 0
					break
				}
				visited++
				if len(k) != 8 || len(v) < 9 {
					continue // its age unknown: the count retention drops it in turn
				}
				if !time.Unix(0, int64(be64(v[1:9]))).Before(adCut) {
					break
				}
				dropped = append(dropped, bytes.Clone(k))
			}
			for _, k := range dropped {
				if err := b.Delete(k); err != nil {
					return false, err
				}
			}
			return more, nil
		}, func() {
			s.nAds -= len(dropped)
			for _, k := range dropped {
				droppedAds = append(droppedAds, be64(k))
			}
		})
		if err != nil {
			return droppedAds, fmt.Errorf("prune ads: %w", err)
		}
	}

	clientCut := seenNanos(now.Add(-s.keep.ClientIdle))
	for more := true; more; {
		var d clientDelta
		more, err = s.step(func(tx *bolt.Tx) (bool, error) {
			var more bool
			var err error
			d, more, err = s.dropClients(tx, pruneStep, func(seen uint64) bool { return seen < clientCut })
			return more, err
		}, func() { s.apply(d) })
		if err != nil {
			return droppedAds, fmt.Errorf("prune client ids: %w", err)
		}
	}

	keyCut := now.Add(-s.keep.KeyAge)
	for more := true; more; {
		var dropped int
		more, err = s.step(func(tx *bolt.Tx) (bool, error) {
			var more bool
			var err error
			dropped, more, err = dropKeys(tx, pruneStep, func(r keyRecord) bool { return r.item.Time.Before(keyCut) })
			return more, err
		}, func() { s.nKeys -= dropped })
		if err != nil {
			return droppedAds, fmt.Errorf("prune idempotency keys: %w", err)
		}
	}
	return droppedAds, nil
}

// step runs fn in one write transaction under s.mu, then, once that is
// committed, done, still under s.mu, to update what the store counts. It
// then lets the afterStep hook run, with s.mu free.
func (s *Store) step(fn func(tx *bolt.Tx) (more bool, err error), done func()) (bool, error) {
	more, err := func() (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var more bool
		err := s.db.Update(func(tx *bolt.Tx) error {
			var err error
			more, err = fn(tx)
			return err
		})
		if err != nil {
			return false, closedErr(err)
		}
		done()
		return more, nil
	}()
	if err == nil && s.afterStep != nil {
		s.afterStep()
	}
	return more, err
}
