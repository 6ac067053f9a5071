package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/wire"
)

// seenStep is how much later a client's new seen time must be for its
// stored one to move: acknowledgements come every few seconds, and each
// move rewrites an entry of the clientseen index. An hour is nothing
// against an idle retention of days.
const seenStep = time.Hour

// Client returns the read position of an identified client: what is on
// disk, moved forward by what is staged. An id staged for the first time
// is found until its commit, which may refuse to remember it.
func (s *Store) Client(id string) (c Client, found bool, err error) {
	s.smu.Lock()
	staged, inStaged := s.staged[id]
	flying, inFlight := s.inflight[id]
	s.smu.Unlock()
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketClients).Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		c, err = decodeClient(v)
		return err
	})
	if err != nil {
		return Client{}, false, fmt.Errorf("read client %q: %w", id, closedErr(err))
	}
	onDisk, source := found, c.Source
	for _, p := range []struct {
		c  Client
		ok bool
	}{{flying, inFlight}, {staged, inStaged}} {
		if !p.ok {
			continue
		}
		if found {
			c = later(c, p.c)
		} else {
			c, found = p.c, true
		}
	}
	if onDisk {
		c.Source = source // fixed when the id was first stored
	}
	return c, found, nil
}

// StageClient records an identified client's read position for the next
// group commit, which starts at once unless one is under way, and returns
// that commit without waiting for it. A failed commit is reported to the
// OnCommitError handler as well as to waiters.
//
// The commit applies these rules, so that ids strangers create cost
// bounded space and never cost a real client its position:
//   - a stored id's positions only move forward; its stored Seen moves only
//     when the new one is at least an hour later; its Source never changes;
//   - a new id is stored unless the store holds Retention.Clients ids, or
//     its non-empty Source holds Retention.ClientsPerSource. A refused id is
//     not stored, logged (rate-limited) and not an error: it is then new
//     again on its next connection;
//   - stored ids are never evicted for new ones: only Prune forgets them,
//     after Retention.ClientIdle without being seen.
func (s *Store) StageClient(id string, c Client) *Commit {
	if err := checkClient(id, c); err != nil {
		return s.failed(err)
	}
	s.smu.Lock()
	if s.closed {
		s.smu.Unlock()
		return s.failed(ErrClosed)
	}
	if old, ok := s.staged[id]; ok {
		c = later(c, old)
	}
	s.staged[id] = c
	commit := s.commit
	s.smu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // the committer is already awake
	}
	return commit
}

// checkClient refuses what the file cannot hold, before it can fail a
// commit shared with other clients.
func checkClient(id string, c Client) error {
	if id == "" || len(id) > wire.MaxClientIDBytes {
		return fmt.Errorf("client id of %d bytes: %w", len(id), invalid("a client id is 1 to %d bytes", wire.MaxClientIDBytes))
	}
	if len(c.Source) > MaxSourceBytes {
		return fmt.Errorf("client %q: %w", id, invalid("a source key is at most %d bytes, got %d", MaxSourceBytes, len(c.Source)))
	}
	return nil
}

// failed is a commit that failed before it started. ErrClosed is not
// reported to the handler: the server closed the store itself.
func (s *Store) failed(err error) *Commit {
	c := newCommit()
	if !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("save client positions: %w", err)
		if f := s.onErr.Load(); f != nil {
			(*f)(err)
		}
	}
	c.err = err
	close(c.done)
	return c
}

// SaveClient records an identified client's read position and returns once
// it is on disk (or refused, see StageClient). Concurrent calls share one
// commit (group commit), so ten thousand clients fetching the same ad cost
// a handful of disk syncs, not ten thousand.
func (s *Store) SaveClient(ctx context.Context, id string, c Client) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.StageClient(id, c).Wait(ctx)
}

// OnCommitError sets what is told about a failed commit of staged
// positions, for a caller that does not wait for its commits.
func (s *Store) OnCommitError(f func(error)) { s.onErr.Store(&f) }

// later merges two positions of one client: each field moves forward only,
// and the first source known stays.
func later(a, b Client) Client {
	a.Ad = max(a.Ad, b.Ad)
	a.Random = max(a.Random, b.Random)
	if b.Seen.After(a.Seen) {
		a.Seen = b.Seen
	}
	if a.Source == "" {
		a.Source = b.Source
	}
	return a
}

// takeStaged takes the staged positions (nil when none) and the commit
// that must report on them, and starts a new one. s.mu must be held until
// finish: one commit at a time is in flight, so a position staged before
// an Append began is on disk when the Append returns.
func (s *Store) takeStaged() (map[string]Client, *Commit) {
	s.smu.Lock()
	defer s.smu.Unlock()
	if len(s.staged) == 0 {
		return nil, nil
	}
	staged, commit := s.staged, s.commit
	s.inflight = staged
	s.staged, s.commit = make(map[string]Client, len(staged)), newCommit()
	return staged, commit
}

// finish reports a commit's result to its waiters and, when it failed, to
// the OnCommitError handler.
func (s *Store) finish(c *Commit, err error) {
	s.smu.Lock()
	s.inflight = nil
	s.smu.Unlock()
	if err != nil {
		err = fmt.Errorf("save client positions: %w", closedErr(err))
		if f := s.onErr.Load(); f != nil {
			(*f)(err)
		}
	}
	c.err = err
	close(c.done)
}

// clientDelta is what a transaction changed in the client counts, applied
// to the Store once it committed.
type clientDelta struct {
	total    int
	bySource map[string]int
	refused  []refusal
}

type refusal struct {
	id, source string
	perSource  bool
}

func (d *clientDelta) add(source string, n int) {
	d.total += n
	if source == "" {
		return
	}
	if d.bySource == nil {
		d.bySource = make(map[string]int)
	}
	d.bySource[source] += n
}

// apply adds a committed delta to the counts. s.mu held (or Open running).
func (s *Store) apply(d clientDelta) {
	s.nClients.Add(int64(d.total))
	for src, n := range d.bySource {
		if s.bySource[src] += n; s.bySource[src] <= 0 {
			delete(s.bySource, src)
		}
	}
	for _, r := range d.refused {
		// A stranger can repeat these at will: rate-limited, and told
		// apart by the message only.
		if r.perSource {
			s.rl.Warn("client id not remembered: its source already established the most ids one source may",
				"limit", s.keep.ClientsPerSource, "source", r.source, "id", r.id)
		} else {
			s.rl.Warn("client id not remembered: the store holds the most client ids it keeps",
				"limit", s.keep.Clients, "source", r.source, "id", r.id)
		}
	}
}

// writeClients writes staged positions under the rules StageClient lists.
// Positions never move back: two connections of one client may have staged
// theirs in either order, and a commit may land after a later one that
// rode along with an Append. s.mu held.
func (s *Store) writeClients(tx *bolt.Tx, staged map[string]Client) (clientDelta, error) {
	var d clientDelta
	b, idx := tx.Bucket(bucketClients), tx.Bucket(bucketClientSeen)
	for id, c := range staged {
		key := []byte(id)
		if v := b.Get(key); v != nil {
			old, err := decodeClient(v)
			if err != nil {
				// Damaged since Open checked it: overwritten, still counted
				// once. Its index entry, if any, is stale; Prune drops it.
				if err := b.Put(key, encodeClient(c)); err != nil {
					return d, err
				}
				if err := idx.Put(seenKey(seenNanos(c.Seen), key), nil); err != nil {
					return d, err
				}
				continue
			}
			next := old
			next.Ad, next.Random = max(old.Ad, c.Ad), max(old.Random, c.Random)
			oldSeen, newSeen := recordSeen(v), seenNanos(c.Seen)
			moved := newSeen >= oldSeen+uint64(seenStep)
			if moved {
				next.Seen = time.Unix(0, int64(newSeen))
			}
			if next.Ad == old.Ad && next.Random == old.Random && !moved {
				continue
			}
			if err := b.Put(key, encodeClient(next)); err != nil {
				return d, err
			}
			if moved {
				if err := idx.Delete(seenKey(oldSeen, key)); err != nil {
					return d, err
				}
				if err := idx.Put(seenKey(newSeen, key), nil); err != nil {
					return d, err
				}
			}
			continue
		}
		if int(s.nClients.Load())+d.total >= s.keep.Clients {
			d.refused = append(d.refused, refusal{id: id, source: c.Source})
			continue
		}
		if c.Source != "" && s.bySource[c.Source]+d.bySource[c.Source] >= s.keep.ClientsPerSource {
			d.refused = append(d.refused, refusal{id: id, source: c.Source, perSource: true})
			continue
		}
		if err := b.Put(key, encodeClient(c)); err != nil {
			return d, err
		}
		if err := idx.Put(seenKey(seenNanos(c.Seen), key), nil); err != nil {
			return d, err
		}
		d.add(c.Source, 1)
	}
	return d, nil
}

// commitClients writes staged positions, one transaction and one disk sync
// for all that were staged meanwhile, at most once per commitEvery (an
// Append carries what is staged sooner). On Close it writes what is left,
// then stops.
func (s *Store) commitClients() {
	defer close(s.done)
	last := func() {
		s.smu.Lock()
		s.closed = true // what is staged now is all there will be
		s.smu.Unlock()
		s.commitStaged()
	}
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-s.wake:
		case <-s.stop:
			last()
			return
		}
		began := time.Now()
		s.commitStaged()
		pause.Reset(commitEvery - time.Since(began))
		select {
		case <-pause.C:
		case <-s.stop:
			last()
			return
		}
	}
}

// commitEvery paces the commits of positions alone: a client that acks
// every fetch cycle is written at most this often, not once per cycle.
// At 20 ads/s to 1,000 identified clients it saved 6% of the server's CPU
// and 10% of the fetch p99 (docs/PERFORMANCE.md). A crash within it can
// only cost a repeat, which the client drops by id.
const commitEvery = 100 * time.Millisecond

func (s *Store) commitStaged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	staged, commit := s.takeStaged()
	if staged == nil {
		return // an Append took them
	}
	var d clientDelta
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		d, err = s.writeClients(tx, staged)
		return err
	})
	if err == nil {
		s.apply(d)
	}
	s.finish(commit, err)
}

// dropClients forgets client ids from the least recently seen, while
// expired says so of their seen time (Unix ns), visiting at most limit
// entries of the index. more reports that it stopped at the limit. s.mu
// held (or Open running).
func (s *Store) dropClients(tx *bolt.Tx, limit int, expired func(seen uint64) bool) (d clientDelta, more bool, err error) {
	b, idx := tx.Bucket(bucketClients), tx.Bucket(bucketClientSeen)
	c := idx.Cursor()
	n := 0
	for k, _ := c.First(); k != nil; k, _ = c.First() {
		if n == limit {
			return d, true, nil
		}
		n++
		if len(k) > seenKeyLen {
			seen := be64(k)
			if !expired(seen) {
				return d, false, nil
			}
			id := bytes.Clone(k[seenKeyLen:])
			// An entry is stale when its client has since been seen again
			// (a damaged record rewritten): only the entry goes.
			if v := b.Get(id); len(v) >= clientFixed && recordSeen(v) == seen {
				source := string(v[clientFixed:])
				if err := b.Delete(id); err != nil {
					return d, false, err
				}
				d.add(source, -1)
			}
		}
		if err := c.Delete(); err != nil {
			return d, false, err
		}
	}
	return d, false, nil
}
