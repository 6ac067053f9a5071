// Package store keeps what hark serve must not lose: every published item
// within the retention, and the read positions of identified clients. It is
// a bbolt database (one file, hark.db, in the data directory); every write
// is committed to disk before the call returns.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/harkapp/hark/wire"
)

// FileName is the database file inside the data directory.
const FileName = "hark.db"

// schemaVersion is stored in the meta bucket; a file without it, or with
// another value, is refused rather than reinterpreted.
const schemaVersion = "1"

var (
	bucketMeta    = []byte("meta")
	bucketAds     = []byte("ads")
	bucketRandom  = []byte("random")
	bucketClients = []byte("clients")
	keySchema     = []byte("schema")
)

// ErrCorrupt is wrapped by Open when the file cannot be read as a hark store.
var ErrCorrupt = errors.New("store is corrupt or not a hark store")

// ErrLocked is wrapped by Open when another process holds the store.
var ErrLocked = errors.New("store is in use by another process")

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store is closed")

// Item is one published random number or classified ad. IDs come from one
// sequence shared by both kinds, so they are unique and increase with time.
type Item struct {
	ID    uint64
	Kind  wire.Kind
	Value string
	Time  time.Time
}

// Client is an identified client's read position.
type Client struct {
	Ad     uint64    // id of the last classified ad it read
	Random uint64    // id of the last random number it fetched
	Seen   time.Time // when it last identified itself
}

// Retention bounds what the store keeps. Zero fields take the defaults.
type Retention struct {
	Ads        int           // newest ads kept (default 10,000)
	AdAge      time.Duration // ads older than this are dropped (default 7 days)
	Clients    int           // identified clients kept (default 100,000)
	ClientIdle time.Duration // clients not seen for this long are forgotten (default 30 days)
}

// DefaultRetention is what hark serve keeps unless told otherwise.
func DefaultRetention() Retention {
	return Retention{Ads: 10000, AdAge: 7 * 24 * time.Hour, Clients: 100000, ClientIdle: 30 * 24 * time.Hour}
}

func (r Retention) withDefaults() Retention {
	d := DefaultRetention()
	if r.Ads <= 0 {
		r.Ads = d.Ads
	}
	if r.AdAge <= 0 {
		r.AdAge = d.AdAge
	}
	if r.Clients <= 0 {
		r.Clients = d.Clients
	}
	if r.ClientIdle <= 0 {
		r.ClientIdle = d.ClientIdle
	}
	return r
}

// Store is the durable state of a hark server. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	keep Retention

	ads    []Item     // retained ads, oldest first, as loaded by Open
	random Item       // latest random number, if any
	mu     sync.Mutex // serialises Append, Prune and commits of client positions
	nAds   int        // ads in the file, guarded by mu

	smu      sync.Mutex        // guards staged, inflight, commit and closed
	staged   map[string]Client // positions not yet on disk
	inflight map[string]Client // positions being written (under mu)
	commit   *Commit           // the commit that will write staged
	closed   bool              // the committer has made its last commit
	wake     chan struct{}     // a position was staged (capacity 1)
	stop     chan struct{}
	done     chan struct{}
	onErr    atomic.Pointer[func(error)]

	closeOnce sync.Once
	closeErr  error
}

// Commit is one group commit of staged client positions.
type Commit struct {
	done chan struct{} // closed once the commit is over
	err  error         // its result, set before done is closed
}

func newCommit() *Commit { return &Commit{done: make(chan struct{})} }

// Wait returns once the commit is on disk (nil) or has failed, or when ctx
// ends first.
func (c *Commit) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		// The write may still land; a read position that lands late only
		// means an item may be offered again, never that one is lost.
		return ctx.Err()
	}
}

// Open opens (creating if needed) the store in dir. A file that is
// unreadable, corrupt or not a hark store is an error that names the file
// and what to do; Open never replaces it with an empty store.
func Open(dir string, keep Retention) (st *Store, err error) {
	if dir == "" {
		return nil, errors.New("open store: no data directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: create data directory: %w: give --data a directory hark can create or write to", err)
	}
	path := filepath.Join(dir, FileName)
	corrupt := func(cause any) error {
		why := strings.TrimPrefix(fmt.Sprint(cause), ErrCorrupt.Error()+": ")
		return fmt.Errorf("open store %s: %w (%s): move the file aside to start with an empty store, or restore it from a backup", path, ErrCorrupt, why)
	}

	// bbolt trusts the file's page structure and panics, or faults on its
	// memory map, when that structure is damaged. Loading everything once
	// here, in this goroutine, turns such damage into an error at start
	// instead of a crash later.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bolt.DB
	var file *os.File // for when bolt.Open itself faults and returns no db
	defer func() {
		if p := recover(); p != nil {
			if db != nil {
				_ = db.Close()
			} else if file != nil {
				// Otherwise the directory stays locked until the process
				// exits. The mapping bbolt made is leaked.
				unlockFile(file)
				_ = file.Close()
			}
			st, err = nil, corrupt(p)
		}
	}()

	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 500 * time.Millisecond,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
	var errno syscall.Errno
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open store %s: %w: stop the other hark serve, or give this one its own --data", path, ErrLocked)
	case err != nil && (errors.As(err, &pathErr) || errors.As(err, &errno)):
		return nil, fmt.Errorf("open store %s: %w", path, err)
	case err != nil:
		// Everything else bbolt refuses is the content: a bad magic or
		// checksum, another version, a file too short for its meta pages.
		return nil, corrupt(err)
	}

	st = &Store{db: db, path: path, keep: keep.withDefaults()}
	if err := st.init(); err != nil {
		_ = db.Close()
		if errors.Is(err, ErrCorrupt) {
			return nil, corrupt(err)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := st.load(); err != nil {
		_ = db.Close()
		return nil, corrupt(err)
	}
	st.staged = make(map[string]Client)
	st.commit = newCommit()
	st.wake = make(chan struct{}, 1)
	st.stop = make(chan struct{})
	st.done = make(chan struct{})
	go st.commitClients()
	return st, nil
}

// init creates the buckets of a new store, or checks an existing one.
// It writes only when a bucket is missing, so that a store that load then
// finds damaged is left exactly as it was.
func (s *Store) init() error {
	complete := false
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		complete, err = checkBuckets(tx)
		return err
	})
	if err != nil || complete {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := checkBuckets(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keySchema, []byte(schemaVersion)); err != nil {
				return err
			}
		}
		for _, b := range [][]byte{bucketAds, bucketRandom, bucketClients} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkBuckets refuses a file that is not a hark store of this schema, and
// reports whether it has every bucket. An empty file is a new store.
func checkBuckets(tx *bolt.Tx) (complete bool, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return false, fmt.Errorf("%w: it has no %q bucket", ErrCorrupt, bucketMeta)
		}
		return false, nil
	}
	if v := string(meta.Get(keySchema)); v != schemaVersion {
		return false, fmt.Errorf("%w: schema version %q, this hark reads %q", ErrCorrupt, v, schemaVersion)
	}
	for _, b := range [][]byte{bucketAds, bucketRandom, bucketClients} {
		if tx.Bucket(b) == nil {
			return false, nil
		}
	}
	return true, nil
}

// load reads every retained item, and walks every client record once so
// that a damaged page is found now.
func (s *Store) load() error {
	return s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketAds).ForEach(func(k, v []byte) error {
			it, err := decodeItem(k, v)
			if err != nil {
				return err
			}
			s.ads = append(s.ads, it)
			s.nAds++
			return nil
		})
		if err != nil {
			return err
		}
		// The retention may have been lowered since the last run; the file
		// is trimmed by the next Append.
		if extra := len(s.ads) - s.keep.Ads; extra > 0 {
			s.ads = s.ads[extra:]
		}
		if k, v := tx.Bucket(bucketRandom).Cursor().Last(); k != nil {
			if s.random, err = decodeItem(k, v); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketClients).ForEach(func(k, v []byte) error {
			_, err := decodeClient(v)
			return err
		})
	})
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Loaded returns what Open found: the retained ads, oldest first, and the
// latest random number (ID 0 when none was ever published). The server
// keeps these in memory and extends them as it appends.
func (s *Store) Loaded() (ads []Item, random Item) { return s.ads, s.random }

// Append stores a new item and returns it with its id. It returns after
// the item is on disk. Appending an ad also drops the oldest ads beyond the
// retention count; appending a random number drops the previous one.
func (s *Store) Append(kind wire.Kind, value string, at time.Time) (Item, error) {
	if !kind.Valid() {
		return Item{}, fmt.Errorf("append: unknown kind %q", kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it := Item{Kind: kind, Value: value, Time: at}
	nAds := 0
	// Client positions staged so far ride along: the sync is paid anyway,
	// and an acknowledgement made before a publish is on disk with it.
	staged, commit := s.takeStaged()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := writeClients(tx, staged); err != nil {
			return err
		}
		id, err := tx.Bucket(bucketMeta).NextSequence()
		if err != nil {
			return err
		}
		it.ID = id
		name := bucketAds
		if kind == wire.KindRandom {
			name = bucketRandom
		}
		b := tx.Bucket(name)
		if err := b.Put(itemKey(id), encodeItem(it)); err != nil {
			return err
		}
		if kind == wire.KindRandom { // only the latest number matters
			c := b.Cursor()
			for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) != id; k, _ = c.First() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
			return nil
		}
		nAds, err = trimOldest(b, s.nAds+1, s.keep.Ads)
		return err
	})
	if staged != nil {
		s.finish(commit, err)
	}
	if err != nil {
		return Item{}, fmt.Errorf("append %s: %w", kind, closedErr(err))
	}
	if kind == wire.KindClassified {
		s.nAds = nAds
	}
	return it, nil
}

// trimOldest deletes the first keys of b, which holds n keys, until at most
// keep remain, and returns how many remain.
func trimOldest(b *bolt.Bucket, n, keep int) (int, error) {
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n > keep; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return n, err
		}
		n--
	}
	return n, nil
}

// Retention is what the store keeps, defaults filled in.
func (s *Store) Retention() Retention { return s.keep }

// Prune drops ads older than the retention age, and clients not seen for
// the idle retention or beyond the client count, oldest seen first. It
// returns the ids of the ads it dropped, oldest first.
func (s *Store) Prune(now time.Time) (droppedAds []uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		droppedAds = droppedAds[:0]
		ads := tx.Bucket(bucketAds)
		c := ads.Cursor()
		for k, v := c.First(); k != nil; k, v = c.First() {
			it, err := decodeItem(k, v)
			if err != nil {
				return err
			}
			if now.Sub(it.Time) <= s.keep.AdAge {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
			droppedAds = append(droppedAds, it.ID)
		}

		clients := tx.Bucket(bucketClients)
		type seen struct {
			id string
			at time.Time
		}
		var live []seen
		err := clients.ForEach(func(k, v []byte) error {
			cl, err := decodeClient(v)
			if err != nil {
				return err
			}
			if now.Sub(cl.Seen) > s.keep.ClientIdle {
				return nil
			}
			live = append(live, seen{string(k), cl.Seen})
			return nil
		})
		if err != nil {
			return err
		}
		keep := make(map[string]bool, len(live))
		if len(live) > s.keep.Clients {
			// Keep the most recently seen.
			slices.SortFunc(live, func(a, b seen) int { return b.at.Compare(a.at) })
			live = live[:s.keep.Clients]
		}
		for _, l := range live {
			keep[l.id] = true
		}
		var drop [][]byte
		_ = clients.ForEach(func(k, _ []byte) error {
			if !keep[string(k)] {
				drop = append(drop, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range drop {
			if err := clients.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("prune: %w", closedErr(err))
	}
	s.nAds -= len(droppedAds)
	return droppedAds, nil
}

// Client returns the read position of an identified client.
func (s *Store) Client(id string) (c Client, found bool, err error) {
	s.smu.Lock()
	c, found = s.staged[id]
	if f, ok := s.inflight[id]; ok {
		c, found = later(c, f), true
	}
	s.smu.Unlock()
	if found { // as new as, or newer than, what is on disk
		return c, true, nil
	}
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
	return c, found, nil
}

// StageClient records an identified client's read position for the next
// group commit, which starts at once unless one is under way, and returns
// that commit without waiting for it. Positions only move forward: a
// position behind the one staged or on disk changes nothing. A failed
// commit is reported to the OnCommitError handler as well as to waiters.
func (s *Store) StageClient(id string, c Client) *Commit {
	s.smu.Lock()
	if s.closed {
		s.smu.Unlock()
		commit := newCommit()
		commit.err = ErrClosed
		close(commit.done)
		return commit
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

// SaveClient records an identified client's read position and returns once
// it is on disk. Concurrent calls share one commit (group commit), so ten
// thousand clients fetching the same ad cost a handful of disk syncs, not
// ten thousand.
func (s *Store) SaveClient(ctx context.Context, id string, c Client) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.StageClient(id, c).Wait(ctx)
}

// OnCommitError sets what is told about a failed commit of staged
// positions, for a caller that does not wait for its commits.
func (s *Store) OnCommitError(f func(error)) { s.onErr.Store(&f) }

// later merges two positions of one client: each field moves forward only.
func later(a, b Client) Client {
	a.Ad = max(a.Ad, b.Ad)
	a.Random = max(a.Random, b.Random)
	if b.Seen.After(a.Seen) {
		a.Seen = b.Seen
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

// writeClients puts positions in the clients bucket, never moving one back:
// two connections of one client may have staged theirs in either order, and
// a commit may land after a later one that rode along with an Append.
func writeClients(tx *bolt.Tx, staged map[string]Client) error {
	b := tx.Bucket(bucketClients)
	for id, c := range staged {
		if v := b.Get([]byte(id)); v != nil {
			if old, err := decodeClient(v); err == nil {
				c = later(c, old)
			}
		}
		if err := b.Put([]byte(id), encodeClient(c)); err != nil {
			return err
		}
	}
	return nil
}

// commitClients writes staged positions, one transaction and one disk sync
// for all that were staged while the previous one was being written. On
// Close it writes what is left, then stops.
func (s *Store) commitClients() {
	defer close(s.done)
	for {
		select {
		case <-s.wake:
		case <-s.stop:
			s.smu.Lock()
			s.closed = true // what is staged now is all there will be
			s.smu.Unlock()
			s.commitStaged()
			return
		}
		s.commitStaged()
	}
}

func (s *Store) commitStaged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	staged, commit := s.takeStaged()
	if staged == nil {
		return // an Append took them
	}
	s.finish(commit, s.db.Update(func(tx *bolt.Tx) error { return writeClients(tx, staged) }))
}

// Close waits for pending writes and closes the database.
// It may be called more than once, also concurrently.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// closedErr turns bbolt's error for a closed database into ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func itemKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// An item record is: kind (1 byte: 'r' or 'c'), time (8 bytes, Unix
// nanoseconds, big endian), value.
func encodeItem(it Item) []byte {
	b := make([]byte, 0, 9+len(it.Value))
	k := byte('c')
	if it.Kind == wire.KindRandom {
		k = 'r'
	}
	b = append(b, k)
	b = binary.BigEndian.AppendUint64(b, uint64(it.Time.UnixNano()))
	return append(b, it.Value...)
}

func decodeItem(k, v []byte) (Item, error) {
	if len(k) != 8 || len(v) < 9 || (v[0] != 'r' && v[0] != 'c') {
		return Item{}, fmt.Errorf("%w: malformed item record %x", ErrCorrupt, k)
	}
	kind := wire.KindClassified
	if v[0] == 'r' {
		kind = wire.KindRandom
	}
	return Item{
		ID:    binary.BigEndian.Uint64(k),
		Kind:  kind,
		Time:  time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))),
		Value: string(v[9:]),
	}, nil
}

// A client record is three big-endian uint64: last ad id, last random id,
// last seen (Unix nanoseconds).
func encodeClient(c Client) []byte {
	b := make([]byte, 0, 24)
	b = binary.BigEndian.AppendUint64(b, c.Ad)
	b = binary.BigEndian.AppendUint64(b, c.Random)
	return binary.BigEndian.AppendUint64(b, uint64(c.Seen.UnixNano()))
}

func decodeClient(v []byte) (Client, error) {
	if len(v) != 24 {
		return Client{}, fmt.Errorf("%w: malformed client record", ErrCorrupt)
	}
	return Client{
		Ad:     binary.BigEndian.Uint64(v[0:8]),
		Random: binary.BigEndian.Uint64(v[8:16]),
		Seen:   time.Unix(0, int64(binary.BigEndian.Uint64(v[16:24]))),
	}, nil
}
