package store_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

func openSnapshot(t *testing.T, path string) *store.Snapshot {
	t.Helper()
	sn, err := store.OpenSnapshot(path)
	if err != nil {
		t.Fatalf("OpenSnapshot(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = sn.Close() })
	return sn
}

// A snapshot reads what the store holds, as hark serve would serve it
// (every ad, the latest random number, the last id handed out even when
// its item is gone, the epoch, every position), and writes nothing: the
// file is byte for byte what it was.
func TestSnapshotReadsEverythingWritesNothing(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, store.Retention{})
	a1 := mustAppend(t, st, wire.KindClassified, "Bright two-room flat", t0)
	mustAppend(t, st, wire.KindRandom, "7", t0.Add(time.Second)) // replaced: a gap
	a2 := mustAppend(t, st, wire.KindClassified, "Bike for sale €", t0.Add(2*time.Second))
	r := mustAppend(t, st, wire.KindRandom, "89765234756", t0.Add(3*time.Second))
	if _, _, err := st.AppendKeyed(wire.KindClassified, "Piano", t0.Add(4*time.Second), "key-1", [32]byte{1}); err != nil {
		t.Fatal(err)
	}
	clients := map[string]store.Client{
		"laptop":  {Ad: a1.ID, Random: r.ID, Seen: t0, Source: "203.0.113.5"},
		"desktop": {Ad: a2.ID, Seen: t0.Add(time.Hour)},
	}
	for id, c := range clients {
		mustSave(t, st, id, c)
	}
	epoch, latest := st.Epoch(), st.Latest()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(storeFile(dir))
	if err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{dir, storeFile(dir)} {
		sn := openSnapshot(t, path)
		if sn.Epoch() != epoch || sn.Latest() != latest || latest != 5 {
			t.Errorf("%s: epoch %q, latest %d; want %q, 5", path, sn.Epoch(), sn.Latest(), epoch)
		}
		ads, random := sn.Items()
		checkItems(t, ads, []store.Item{a1, a2, {ID: 5, Kind: wire.KindClassified, Value: "Piano", Time: t0.Add(4 * time.Second)}})
		if !sameItem(random, r) {
			t.Errorf("random %+v, want %+v", random, r)
		}
		got := map[string]store.Client{}
		err := sn.EachClient(func(id string, c store.Client) error {
			got[id] = c
			return nil
		})
		if err != nil || len(got) != len(clients) || sn.Clients() != len(clients) {
			t.Errorf("EachClient: %v, %d clients (Clients() %d), want %d", err, len(got), sn.Clients(), len(clients))
		}
		for id, want := range clients {
			if c := got[id]; c.Ad != want.Ad || c.Random != want.Random || !c.Seen.Equal(want.Seen) || c.Source != want.Source {
				t.Errorf("client %q: %+v, want %+v", id, c, want)
			}
		}
		if sn.Keys() != 1 || sn.Skipped() != 0 {
			t.Errorf("Keys() %d, Skipped() %d; want 1, 0", sn.Keys(), sn.Skipped())
		}
		stop := errors.New("stop")
		n := 0
		if err := sn.EachClient(func(string, store.Client) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Errorf("EachClient stopped by its function: %v after %d calls, want stop after 1", err, n)
		}
		if err := sn.Close(); err != nil {
			t.Fatal(err)
		}
	}
	after, err := os.ReadFile(storeFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the store file changed under a snapshot")
	}

	// Every ad pruned: the last id handed out is still told.
	st = open(t, dir, store.Retention{})
	if _, err := st.Prune(t0.Add(30 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	sn := openSnapshot(t, dir)
	if ads, random := sn.Items(); len(ads) != 0 || !sameItem(random, r) || sn.Latest() != 5 {
		t.Errorf("after pruning every ad: ads %v, random %+v, latest %d; want none, %+v, 5", ads, random, sn.Latest(), r)
	}
}

// A snapshot and a hark serve exclude each other: a snapshot refuses a
// store in use, and a store under a snapshot refuses to open, so that
// nothing is appended after it was read.
func TestSnapshotLocks(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, store.Retention{})
	mustAppend(t, st, wire.KindClassified, "an ad", t0)
	if _, err := store.OpenSnapshot(dir); !errors.Is(err, store.ErrLocked) {
		t.Errorf("snapshot of a store in use: %v, want ErrLocked", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	openSnapshot(t, dir)
	if st, err := store.Open(dir, store.Retention{}); !errors.Is(err, store.ErrLocked) {
		if st != nil {
			st.Close()
		}
		t.Errorf("open under a snapshot: %v, want ErrLocked", err)
	}
	// Two snapshots share the file.
	openSnapshot(t, dir)
}

// A snapshot needs a store: no file is made, and hark serve's pending
// work on a store (an upgrade from schema 1) is refused, not done.
func TestSnapshotRefuses(t *testing.T) {
	empty := t.TempDir()
	if _, err := store.OpenSnapshot(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("snapshot of an empty directory: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(storeFile(empty)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a snapshot made a store file: %v", err)
	}
	if _, err := store.OpenSnapshot(filepath.Join(empty, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("snapshot of a missing path: %v, want ErrNotExist", err)
	}

	old := v1Store(t, 3, []store.Item{{ID: 3, Kind: wire.KindClassified, Value: "ad", Time: t0}}, nil)
	before, err := os.ReadFile(storeFile(old))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenSnapshot(old); err == nil || !strings.Contains(err.Error(), "run hark serve on it once to upgrade it") {
		t.Errorf("snapshot of a schema 1 store: %v, want to be told to upgrade it", err)
	}
	if after, _ := os.ReadFile(storeFile(old)); !bytes.Equal(before, after) {
		t.Error("a refused snapshot changed the file")
	}

	// A damaged meta page, or epoch: hark serve mints a new epoch when it
	// opens such a store; a snapshot would move ids whose meaning changed.
	damaged := t.TempDir()
	st := open(t, damaged, store.Retention{})
	mustAppend(t, st, wire.KindClassified, "ad", t0)
	mustAppend(t, st, wire.KindClassified, "another", t0)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	damageMeta(t, storeFile(damaged), true)
	if _, err := store.OpenSnapshot(damaged); !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "meta page") {
		t.Errorf("snapshot of a store with a damaged meta page: %v, want ErrCorrupt", err)
	}
	badEpoch := t.TempDir()
	st = open(t, badEpoch, store.Retention{})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	editFile(t, storeFile(badEpoch), func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("epoch"), []byte("nope")) })
	if _, err := store.OpenSnapshot(badEpoch); !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "epoch") {
		t.Errorf("snapshot of a store with a bad epoch: %v, want ErrCorrupt", err)
	}

	junk := t.TempDir()
	if err := os.WriteFile(storeFile(junk), bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenSnapshot(junk); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("snapshot of a file that is not a store: %v, want ErrCorrupt", err)
	}
}
