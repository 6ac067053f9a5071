// Package store keeps what hark serve must not lose: every published item
// within the retention, the read positions of identified clients, and the
// idempotency keys of recent publishes. It is a bbolt database (one file,
// hark.db, in the data directory).
//
// An item is on disk when Append or AppendKeyed returns. Client positions
// are group-committed: StageClient returns at once, and the Commit it
// returns says when the position is on disk; SaveClient waits for it; an
// Append carries along every position staged before it.
//
// Item ids are only meaningful under the store's epoch (IMAP's
// UIDVALIDITY): a new store gets a new epoch, and so does a store whose
// last transaction bbolt rolled back, since an id may then be handed out
// twice.
//
// What strangers can create (client ids, idempotency keys) is bounded, and
// retention runs in short steps that never hold the store for long.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/harkapp/hark/internal/ratelog"
	"github.com/harkapp/hark/wire"
)

// FileName is the database file inside the data directory.
const FileName = "hark.db"

// schemaVersion is stored in the meta bucket. A file of schema "1" is
// upgraded in place; any other value is refused rather than reinterpreted.
const schemaVersion = "2"

// ErrCorrupt is wrapped by Open when the file cannot be read as a hark store.
var ErrCorrupt = errors.New("store is corrupt or not a hark store")

// ErrLocked is wrapped by Open when another process holds the store.
var ErrLocked = errors.New("store is in use by another process")

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store is closed")

// ErrUnavailable is wrapped by a store shared over the network when it
// cannot be reached: a publish fails (the publish API answers 503) and is
// not lost, since nothing was stored; the caller may try again.
var ErrUnavailable = errors.New("store unavailable")

// ErrKeyReused is wrapped by AppendKeyed when its idempotency key was first
// used for a different request.
var ErrKeyReused = errors.New("idempotency key already used for a different request")

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
	Seen   time.Time // when it last identified or acknowledged (stored to the hour)
	// Source is an opaque key of the network source the id was established
	// from ("203.0.113.5", "2001:db8:1:2::/64"; "" when unknown), at most
	// MaxSourceBytes. It is fixed when the id is first stored.
	Source string
}

// Retention bounds what the store keeps. Zero fields take the defaults.
type Retention struct {
	Ads              int           // newest ads kept (default 10,000)
	AdAge            time.Duration // ads older than this are dropped (default 7 days)
	Clients          int           // client ids kept (default 100,000); new ones beyond are not stored
	ClientsPerSource int           // client ids one non-empty Source may establish (default 1,000)
	ClientIdle       time.Duration // client ids not seen for this long are forgotten (default 30 days)
	Keys             int           // idempotency keys kept (default 10,000), the oldest go first
	KeyAge           time.Duration // idempotency keys older than this are dropped (default 24 hours)
}

// DefaultRetention is what hark serve keeps unless told otherwise.
func DefaultRetention() Retention {
	return Retention{
		Ads: 10000, AdAge: 7 * 24 * time.Hour,
		Clients: 100000, ClientsPerSource: 1000, ClientIdle: 30 * 24 * time.Hour,
		Keys: 10000, KeyAge: 24 * time.Hour,
	}
}

// WithDefaults is r with its zero fields set to DefaultRetention's.
func (r Retention) WithDefaults() Retention {
	d := DefaultRetention()
	pick := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pickDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&r.Ads, d.Ads)
	pickDur(&r.AdAge, d.AdAge)
	pick(&r.Clients, d.Clients)
	pick(&r.ClientsPerSource, d.ClientsPerSource)
	pickDur(&r.ClientIdle, d.ClientIdle)
	pick(&r.Keys, d.Keys)
	pickDur(&r.KeyAge, d.KeyAge)
	return r
}

// Options configure OpenWith.
type Options struct {
	Retention Retention    // zero fields take the defaults
	Logger    *slog.Logger // where the store reports what it found and did; nil discards
}

// Store is the durable state of a hark server. It is safe for concurrent use.
type Store struct {
	db    *bolt.DB
	path  string
	keep  Retention
	log   *slog.Logger
	rl    *ratelog.Logger // for what strangers can repeat
	epoch string

	// mu serialises write transactions: Append, each step of Prune, and
	// commits of client positions. It guards the counts below.
	mu       sync.Mutex
	nAds     int            // records in the ads bucket
	nKeys    int            // records in the keys bucket
	bySource map[string]int // stored client ids per non-empty source
	nClients atomic.Int64   // stored client ids (written under mu, read without)
	latest   atomic.Uint64  // the last item id handed out

	// afterStep, when set (by tests), is called between two steps of
	// Prune, with mu released.
	afterStep func()

	smu      sync.Mutex        // guards staged, inflight, commit and closed
	staged   map[string]Client // positions not yet on disk
	inflight map[string]Client // positions being written (under mu)
	commit   *Commit           // the commit that will write staged
	closed   bool              // the committer has made its last commit
	wake     chan struct{}     // a position was staged (capacity 1)
	stop     chan struct{}
	done     chan struct{}
	onErr    atomic.Pointer[func(error)]
	onAppend atomic.Pointer[func(Appended)]

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store in dir with retention keep and
// no logging. It is OpenWith(dir, Options{Retention: keep}).
func Open(dir string, keep Retention) (*Store, error) {
	return OpenWith(dir, Options{Retention: keep})
}

// OpenWith opens (creating if needed) the store in dir. A file of an older
// schema is upgraded in place. A file that is unreadable, corrupt or not a
// hark store is an error that names the file and what to do; OpenWith
// never replaces it with an empty store. Items that are damaged are
// skipped, reported to the logger and left in the file.
func OpenWith(dir string, opts Options) (st *Store, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
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

	// Before bbolt picks a meta page: see metaDamage.
	damage := metaDamage(path)

	// bbolt trusts the file's page structure and panics, or faults on its
	// memory map, when that structure is damaged. Loading everything once
	// here, in this goroutine, turns such damage into an error at start
	// instead of a crash later.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	rl := ratelog.New(log, 0)
	var db *bolt.DB
	var file *os.File // for when bolt.Open itself faults and returns no db
	defer func() {
		if p := recover(); p != nil {
			closeAfterFault(db, file)
			st, err = nil, corrupt(p)
		}
		if err != nil {
			rl.Close()
		}
	}()

	db, err = openBolt(path, false, &file)
	switch {
	case errors.Is(err, ErrLocked):
		return nil, fmt.Errorf("open store %s: %w: stop the other hark serve, or give this one its own --data", path, ErrLocked)
	case errors.Is(err, ErrCorrupt):
		return nil, corrupt(err)
	case err != nil:
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	st = &Store{
		db: db, path: path, keep: opts.Retention.WithDefaults(),
		log: log, rl: rl, bySource: make(map[string]int),
	}
	if err := st.setup(damage); err != nil {
		_ = db.Close()
		if errors.Is(err, ErrCorrupt) || errors.Is(err, errMalformed) {
			return nil, corrupt(err)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	st.staged = make(map[string]Client)
	st.commit = newCommit()
	st.wake = make(chan struct{}, 1)
	st.stop = make(chan struct{})
	st.done = make(chan struct{})
	go st.commitClients()
	return st, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Epoch is the store's epoch: 16 lowercase hex digits, minted at random
// when the store was created, and again whenever its ids may have failed
// to persist. Item ids from one epoch mean nothing under another.
func (s *Store) Epoch() string { return s.epoch }

// Latest is the last item id handed out (0 when none was).
func (s *Store) Latest() uint64 { return s.latest.Load() }

// Clients is how many client ids the store holds on disk.
func (s *Store) Clients() int { return int(s.nClients.Load()) }

// Items returns what the store holds now: the retained ads, oldest
// first, and the latest random number (ID 0 when none was ever
// published, or when the stored one is damaged). Damaged records are
// skipped (Open reported them). It reads the file, so it is what a
// server loads at start, not what it asks per command: the server keeps
// its own copy, which follows the store through what AppendKeyed and
// Prune report (Appended.Dropped, Prune's result). A closed store holds
// nothing.
func (s *Store) Items() (ads []Item, random Item) {
	_ = s.db.View(func(tx *bolt.Tx) error {
		ads, _ = retainedAds(tx.Bucket(bucketAds), s.keep.Ads, nil)
		if b := tx.Bucket(bucketRandom); b != nil {
			if k, v := b.Cursor().Last(); k != nil {
				random, _ = checkItem(k, v, wire.KindRandom)
			}
		}
		return nil
	})
	return ads, random
}

// retainedAds is the newest keep records of the ads bucket b, damaged or
// not, as the file keeps them, without the damaged ones: oldest first;
// and how many records b holds. skip, when set, is told of each damaged
// record.
func retainedAds(b *bolt.Bucket, keep int, skip func(k []byte, err error)) (ads []Item, n int) {
	if b == nil {
		return nil, 0
	}
	type loaded struct {
		at int // the record's place in the bucket
		it Item
	}
	var all []loaded
	_ = b.ForEach(func(k, v []byte) error {
		it, err := checkItem(k, v, wire.KindClassified)
		if err != nil {
			if skip != nil {
				skip(k, err)
			}
		} else {
			all = append(all, loaded{n, it})
		}
		n++
		return nil
	})
	for _, l := range all {
		if l.at >= n-keep {
			ads = append(ads, l.it)
		}
	}
	return ads, n
}

// Retention is what the store keeps, defaults filled in.
func (s *Store) Retention() Retention { return s.keep }

// Close waits for pending writes and closes the database.
// It may be called more than once, also concurrently.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, err)
		}
		s.rl.Close()
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

// Commit is one group commit of staged client positions.
type Commit struct {
	done chan struct{} // closed once the commit is over
	err  error         // its result, set before done is closed
}

func newCommit() *Commit { return &Commit{done: make(chan struct{})} }

// NewCommit is a commit not over yet, for another store's StageClient:
// End says how it ended.
func NewCommit() *Commit { return newCommit() }

// End ends the commit with err (nil: on disk). Call it once.
func (c *Commit) End(err error) {
	c.err = err
	close(c.done)
}

// Wait returns once the commit is on disk (nil) or has failed, or when ctx
// ends first. A client id the store refused to remember (see StageClient)
// is not a failure.
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
