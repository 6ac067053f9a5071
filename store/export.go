package store

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/wire"
)

// Snapshot is a store opened read-only, to move what it holds elsewhere
// (hark store migrate). It never writes to the file: no upgrade, no new
// epoch, no retention. It holds bbolt's shared lock until Close, so that
// it refuses a store a hark serve runs on, and a hark serve started
// meanwhile refuses the store in turn: nothing is appended to the file
// after it was read.
//
// Everything is read, and checked, when it opens: a damaged store is
// refused before anything was moved.
type Snapshot struct {
	db      *bolt.DB
	path    string
	epoch   string
	latest  uint64
	ads     []Item
	random  Item
	clients []snapClient
	keys    int
	skipped int
}

type snapClient struct {
	id string
	c  Client
}

// OpenSnapshot opens the store at path read-only: the data directory
// (hark serve's --data) or its hark.db. It refuses, wrapping ErrLocked, a
// store another process holds (a running hark serve); wrapping ErrCorrupt,
// a file that is not a hark store; and a store that hark serve has still
// to bring up to date (an older schema, an interrupted upgrade, a damaged
// meta page or epoch), which hark serve does when it opens it once.
func OpenSnapshot(path string) (_ *Snapshot, err error) {
	if path == "" {
		return nil, errors.New("open store: no path given")
	}
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	} else if fi.IsDir() {
		path = filepath.Join(path, FileName)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open store %s: not the data directory of a hark serve: %w", filepath.Dir(path), err)
		}
	}
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("open store %s: "+format, append([]any{path}, args...)...)
	}
	damage := metaDamage(path)

	// As OpenWith: damage to the file's pages is an error, not a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bolt.DB
	var file *os.File
	defer func() {
		if p := recover(); p != nil {
			closeAfterFault(db, file)
			err = refuse("%w (%v): restore it from a backup", ErrCorrupt, p)
		}
	}()
	// Read-only takes bbolt's shared lock, which hark serve's exclusive
	// one excludes either way round.
	db, err = openBolt(path, true, &file)
	switch {
	case errors.Is(err, ErrLocked):
		return nil, refuse("%w: stop the hark serve that runs on it first", ErrLocked)
	case err != nil:
		return nil, refuse("%w", err)
	}
	if damage != "" {
		_ = db.Close()
		return nil, refuse("%w: bbolt %s: its last item ids may be handed out again: run hark serve on it once (it mints a new epoch), stop it, then try again", ErrCorrupt, damage)
	}
	s := &Snapshot{db: db, path: path}
	if err := db.View(s.read); err != nil {
		_ = db.Close()
		return nil, refuse("%w", err)
	}
	return s, nil
}

// read reads and checks the whole store.
func (s *Snapshot) read(tx *bolt.Tx) error {
	state, err := checkSchema(tx)
	if err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	switch {
	case state == schemaNew:
		return fmt.Errorf("%w: an empty file, not a hark store", ErrCorrupt)
	case state == schemaOld:
		return errors.New("a store of an older hark (schema 1): run hark serve on it once to upgrade it, stop it, then try again")
	case meta.Get(keyReindex) != nil:
		return errors.New("an upgrade or a trim of its client ids is under way: run hark serve on it once to finish it, stop it, then try again")
	case !validEpoch(string(meta.Get(keyEpoch))):
		return fmt.Errorf("%w: the stored epoch %q is not 16 lowercase hex digits: run hark serve on it once (it mints a new epoch), stop it, then try again",
			ErrCorrupt, clip(meta.Get(keyEpoch)))
	}
	s.epoch = string(meta.Get(keyEpoch))
	s.latest = meta.Sequence()

	// Damaged items are left out, as hark serve leaves them out: it never
	// served them. Every ad the file holds is taken, whatever the
	// retention; the store they go to applies its own.
	s.ads, _ = retainedAds(tx.Bucket(bucketAds), math.MaxInt, func([]byte, error) { s.skipped++ })
	if k, v := tx.Bucket(bucketRandom).Cursor().Last(); k != nil {
		if s.random, err = checkItem(k, v, wire.KindRandom); err != nil {
			s.random = Item{}
			s.skipped++
		}
	}
	if n := len(s.ads); n > 0 && s.ads[n-1].ID > s.latest || s.random.ID > s.latest {
		return fmt.Errorf("%w: an item beyond the last id handed out (%d)", ErrCorrupt, s.latest)
	}
	err = tx.Bucket(bucketClients).ForEach(func(k, v []byte) error {
		c, err := decodeClient(v)
		if err == nil {
			err = checkClient(string(k), c)
		}
		if err != nil {
			return fmt.Errorf("%w: client %q: %w", ErrCorrupt, clip(k), err)
		}
		s.clients = append(s.clients, snapClient{string(k), c})
		return nil
	})
	if err != nil {
		return err
	}
	s.keys = tx.Bucket(bucketKeys).Stats().KeyN
	return nil
}

// Path is the database file.
func (s *Snapshot) Path() string { return s.path }

// Epoch is the store's epoch.
func (s *Snapshot) Epoch() string { return s.epoch }

// Latest is the last item id the store handed out (0 when none was):
// retained or not, a client may have read it.
func (s *Snapshot) Latest() uint64 { return s.latest }

// Items is every ad the file holds, oldest first, and the latest random
// number (ID 0 when none), without the damaged ones.
func (s *Snapshot) Items() (ads []Item, random Item) {
	return slices.Clone(s.ads), s.random
}

// Skipped is how many damaged item records Items leaves out.
func (s *Snapshot) Skipped() int { return s.skipped }

// Clients is how many client ids the store holds.
func (s *Snapshot) Clients() int { return len(s.clients) }

// Keys is how many idempotency keys the store holds.
func (s *Snapshot) Keys() int { return s.keys }

// EachClient calls f with each stored client id and its read position, in
// id order, and stops at f's first error, which it returns.
func (s *Snapshot) EachClient(f func(id string, c Client) error) error {
	for _, sc := range s.clients {
		if err := f(sc.id, sc.c); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the file, and its lock.
func (s *Snapshot) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}
