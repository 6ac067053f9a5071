package jetstream

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

const (
	// seenStep is how much later a client's new seen time must be for its
	// stored one to move, as in the bbolt store. It also keeps the record of
	// a client that is seen written at least this often, so that the
	// bucket's TTL forgets only the idle ones.
	seenStep = time.Hour
	// commitWorkers bounds the positions one commit writes at a time.
	commitWorkers = 32
	// casTries bounds the tries of one compare-and-set write that keeps
	// losing to other gateways.
	casTries = 16
	// commitEvery paces the rounds of position writes, as the bbolt
	// store's commits.
	commitEvery = 100 * time.Millisecond
)

// positions is the group commit of read positions, as the bbolt store's:
// StageClient stages, one committer writes what was staged meanwhile.
type positions struct {
	smu      sync.Mutex
	staged   map[string]store.Client // not yet being written
	inflight map[string]store.Client // being written
	commit   *store.Commit           // the commit that will write staged
	pclosed  bool                    // the committer made its last commit
	wake     chan struct{}           // a position was staged (capacity 1)
	stop     chan struct{}
	done     chan struct{}
	onErr    atomic.Pointer[func(error)]
	nClients atomic.Int64 // keys of the positions bucket, as last counted

	// srcMu guards the ids this handle stored per source (Client.Source)
	// since srcSince: the per-source bound. It is this gateway's count,
	// not the store's (a gateway cannot count another's without a scan),
	// and it starts again every Retention.ClientIdle, as ids expire then:
	// one source holds at most about 2 × ClientsPerSource ids per gateway.
	srcMu    sync.Mutex
	bySource map[string]int
	srcSince time.Time
}

// reserveSource counts a new id of src against the per-source bound, and
// reports whether it is within it; unreserveSource takes it back.
func (s *Store) reserveSource(src string, now time.Time) bool {
	if src == "" {
		return true
	}
	s.srcMu.Lock()
	defer s.srcMu.Unlock()
	if s.bySource == nil || now.Sub(s.srcSince) >= s.keep.ClientIdle {
		s.bySource, s.srcSince = make(map[string]int), now
	}
	if s.bySource[src] >= s.keep.ClientsPerSource {
		return false
	}
	s.bySource[src]++
	return true
}

func (s *Store) unreserveSource(src string) {
	if src == "" {
		return
	}
	s.srcMu.Lock()
	defer s.srcMu.Unlock()
	if s.bySource[src]--; s.bySource[src] <= 0 {
		delete(s.bySource, src) // a refused source leaves no entry behind
	}
}

func (s *Store) initPositions() {
	s.staged = make(map[string]store.Client)
	s.commit = store.NewCommit()
	s.wake = make(chan struct{}, 1)
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
}

func (s *Store) stopPositions() {
	close(s.stop)
	<-s.done
}

// Clients is how many client ids the store holds: the positions bucket's
// keys, as counted at Open, after each commit that stored a new id and at
// each Prune (other gateways add theirs).
func (s *Store) Clients() int { return int(s.nClients.Load()) }

// countClients counts the keys of the positions bucket.
func (s *Store) countClients(ctx context.Context) error {
	s.infoMu.Lock() // nats.go's Stream.Info writes the handle's cached info
	info, err := s.cstream.Info(ctx)
	s.infoMu.Unlock()
	if err != nil {
		return s.fail(err)
	}
	s.nClients.Store(int64(info.State.Msgs))
	return nil
}

// OnCommitError sets what is told about a failed commit of staged
// positions, for a caller that does not wait for its commits.
func (s *Store) OnCommitError(f func(error)) { s.onErr.Store(&f) }

// Client returns the read position of an identified client: what the
// bucket holds, moved forward by what this handle has staged. When the
// bucket cannot be read, the error wraps store.ErrUnavailable.
func (s *Store) Client(id string) (store.Client, bool, error) {
	if id == "" || len(id) > wire.MaxClientIDBytes {
		return store.Client{}, false, nil // never stored
	}
	s.smu.Lock()
	mine := []store.Client{}
	for _, m := range []map[string]store.Client{s.inflight, s.staged} {
		if c, ok := m[id]; ok {
			mine = append(mine, c)
		}
	}
	s.smu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var c store.Client
	found := false
	e, err := s.clients.Get(ctx, clientKey(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return store.Client{}, false, fmt.Errorf("read client %q: %w", id, s.fail(err))
	default:
		if c, err = decodeClient(e.Value()); err != nil {
			return store.Client{}, false, fmt.Errorf("read client %q: %w", id, err)
		}
		found = true
	}
	for _, m := range mine {
		if !found {
			c, found = m, true
			continue
		}
		c = later(c, m) // the stored source stays: later keeps c's when it has one
	}
	return c, found, nil
}

// StageClient records an identified client's read position for the next
// group commit and returns that commit without waiting for it, under the
// bbolt store's rules: a stored id's positions only move forward, across
// gateways; its stored Seen moves only when the new one is at least an
// hour later; its Source never changes; a new id is stored unless the
// store holds Retention.Clients ids (then it is logged, rate-limited, and
// not an error); stored ids are never evicted for new ones, only forgotten
// after Retention.ClientIdle unseen. A failed commit is reported to the
// OnCommitError handler as well as to waiters.
func (s *Store) StageClient(id string, c store.Client) *store.Commit {
	switch {
	case id == "" || len(id) > wire.MaxClientIDBytes:
		return s.failed(fmt.Errorf("client id of %d bytes: a client id is 1 to %d bytes: %w", len(id), wire.MaxClientIDBytes, wire.ErrInvalid))
	case len(c.Source) > store.MaxSourceBytes:
		return s.failed(fmt.Errorf("client %q: a source key is at most %d bytes, got %d: %w", id, store.MaxSourceBytes, len(c.Source), wire.ErrInvalid))
	}
	s.smu.Lock()
	if s.pclosed {
		s.smu.Unlock()
		return s.failed(store.ErrClosed)
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

// failed is a commit that failed before it started. ErrClosed is not
// reported to the handler: the server closed the store itself.
func (s *Store) failed(err error) *store.Commit {
	if !errors.Is(err, store.ErrClosed) {
		err = fmt.Errorf("save client positions: %w", err)
		if f := s.onErr.Load(); f != nil {
			(*f)(err)
		}
	}
	c := store.NewCommit()
	c.End(err)
	return c
}

// later merges two positions of one client: each field moves forward
// only, and the first source known stays.
func later(a, b store.Client) store.Client {
	if b.Seen.After(a.Seen) {
		a.Seen = b.Seen
	}
	a.Ad, a.Random = max(a.Ad, b.Ad), max(a.Random, b.Random)
	a.Source = cmp.Or(a.Source, b.Source)
	return a
}

// commitClients writes staged positions: all that were staged while the
// previous commit was being written, in one commit. On Close it writes
// what is left, then stops.
func (s *Store) commitClients() {
	defer close(s.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	pace := time.NewTimer(0)
	defer pace.Stop()
	for {
		select {
		case <-s.wake:
			// At most one round per commitEvery: a client that acks every
			// fetch cycle costs a key-value write per commitEvery, not
			// per cycle.
			select {
			case <-pace.C:
			case <-s.stop:
				s.smu.Lock()
				s.pclosed = true
				s.smu.Unlock()
				s.commitStaged()
				return
			}
			pace.Reset(commitEvery)
			if s.commitStaged() {
				retry.Reset(reconnectWait)
			}
		case <-retry.C:
			if s.commitStaged() {
				retry.Reset(reconnectWait)
			}
		case <-s.stop:
			s.smu.Lock()
			s.pclosed = true // what is staged now is all there will be
			s.smu.Unlock()
			s.commitStaged()
			return
		}
	}
}

// A position JetStream could not take (store.ErrUnavailable: the cluster
// is electing a leader, or out of reach) is staged again, merged with any
// later one, and commitStaged reports that it should be tried again soon:
// dropping it would make another gateway offer the client what it has
// already acknowledged. Its waiters are still told of the failure.
func (s *Store) commitStaged() (again bool) {
	s.smu.Lock()
	if len(s.staged) == 0 {
		s.smu.Unlock()
		return false
	}
	staged, commit := s.staged, s.commit
	s.inflight = staged
	s.staged, s.commit = make(map[string]store.Client, len(staged)), store.NewCommit()
	s.smu.Unlock()

	var (
		wg      sync.WaitGroup
		emu     sync.Mutex
		first   error
		retry   = make(map[string]store.Client) // guarded by emu
		down    atomic.Bool                     // a write failed as unavailable
		created atomic.Bool
		slots   = make(chan struct{}, commitWorkers)
	)
	for id, c := range staged {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if down.Load() {
				// JetStream failed this round already: the rest wait for
				// the next, rather than each its own opTimeout.
				emu.Lock()
				retry[id] = c
				emu.Unlock()
				return
			}
			made, err := s.writeClient(id, c)
			if made {
				created.Store(true)
			}
			if err != nil {
				emu.Lock()
				first = cmp.Or(first, err)
				if errors.Is(err, store.ErrUnavailable) || errors.Is(err, errContended) {
					retry[id] = c
				}
				if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrClosed) {
					// The rest of the round would each wait out its own
					// opTimeout (at Close, failures read ErrClosed).
					down.Store(true)
				}
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	if created.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		if err := s.countClients(ctx); err != nil {
			s.log.Debug("NATS store: counting client ids", "err", err)
		}
		cancel()
	}
	s.smu.Lock()
	s.inflight = nil
	again = len(retry) > 0 && !s.pclosed
	if again {
		for id, c := range retry {
			if newer, ok := s.staged[id]; ok {
				c = later(c, newer)
			}
			s.staged[id] = c
		}
	}
	s.smu.Unlock()
	var err error
	if first != nil {
		err = fmt.Errorf("save client positions: %w", first)
		if again {
			err = fmt.Errorf("%w (%d kept, tried again)", err, len(retry))
		}
		if f := s.onErr.Load(); f != nil && !errors.Is(first, store.ErrClosed) {
			(*f)(err)
		}
	}
	commit.End(err)
	return again
}

// writeClient merges c into the stored record of id with compare-and-set,
// or creates the record; it reports whether it created one.
func (s *Store) writeClient(id string, c store.Client) (created bool, err error) {
	key := clientKey(id)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for try := range casTries {
		e, err := s.clients.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if !s.reserveSource(c.Source, time.Now()) {
				s.rl.Warn("client id not remembered: its source established the most client ids it may",
					"limit", s.keep.ClientsPerSource, "source", c.Source, "id", id)
				return false, nil
			}
			_, err := s.clients.Create(ctx, key, encodeClient(c))
			if err != nil {
				s.unreserveSource(c.Source)
			}
			switch {
			case err == nil:
				return true, nil
			case conflict(err):
				continue // another gateway stored it first
			case full(err):
				s.rl.Warn("client id not remembered: the store holds the most client ids it keeps",
					"limit", s.keep.Clients, "source", c.Source, "id", id)
				return false, nil
			}
			return false, s.fail(err)
		}
		if err != nil {
			return false, s.fail(err)
		}
		next := c // a damaged record is overwritten
		if old, err := decodeClient(e.Value()); err == nil {
			next = old
			next.Ad, next.Random = max(old.Ad, c.Ad), max(old.Random, c.Random)
			moved := !c.Seen.Before(old.Seen.Add(seenStep))
			if moved {
				next.Seen = c.Seen
			}
			if next.Ad == old.Ad && next.Random == old.Random && !moved {
				return false, nil
			}
		}
		_, err = s.clients.Update(ctx, key, encodeClient(next), e.Revision())
		if conflict(err) {
			// Another gateway moved it, or the read came from a replica
			// that lags: merge again, after a pause that grows.
			time.Sleep(time.Duration(try+1) * 5 * time.Millisecond)
			continue
		}
		if err != nil {
			return false, s.fail(err)
		}
		return false, nil
	}
	return false, fmt.Errorf("client %q: %d writes of other gateways in a row: %w", id, casTries, errContended)
}

// errContended: a position lost its compare-and-set casTries times in a
// row (other gateways, or reads from a replica that lags): it is kept and
// tried again, as when JetStream is unavailable.
var errContended = errors.New("contended")

// full reports a new key refused because the bucket holds its most.
func full(err error) bool {
	return err != nil && strings.Contains(err.Error(), "maximum messages")
}

// clientKey is the bucket's key of a client id: a key may hold only some
// characters.
func clientKey(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func encodeClient(c store.Client) []byte {
	b, _ := json.Marshal(c) // cannot fail: no value of it fails
	return b
}

func decodeClient(v []byte) (store.Client, error) {
	var c store.Client
	if err := json.Unmarshal(v, &c); err != nil {
		return store.Client{}, fmt.Errorf("%w: a client record: %w", store.ErrCorrupt, err)
	}
	return c, nil
}
