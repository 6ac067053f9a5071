package store_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

func fp(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func mustAppendKeyed(t *testing.T, st *store.Store, value, key string, at time.Time) (store.Item, bool) {
	t.Helper()
	it, replayed, err := st.AppendKeyed(wire.KindClassified, value, at, key, fp(value))
	if err != nil {
		t.Fatalf("AppendKeyed(%q, key %q): %v", value, key, err)
	}
	return it, replayed
}

// A publisher whose request timed out retries with the same key: it gets
// the first item back and nothing is appended twice, also after a restart.
func TestAppendKeyedReplays(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	first, replayed := mustAppendKeyed(t, st, "Bike for sale", "k1", t0)
	if replayed {
		t.Error("the first call reports a replay")
	}
	again, replayed := mustAppendKeyed(t, st, "Bike for sale", "k1", t0.Add(time.Second))
	if !replayed || !sameItem(again, first) {
		t.Errorf("retry = %+v, replayed %v; want %+v, true", again, replayed, first)
	}
	st = reopen(t, st, store.Retention{})
	again, replayed = mustAppendKeyed(t, st, "Bike for sale", "k1", t0.Add(time.Minute))
	if !replayed || !sameItem(again, first) {
		t.Errorf("retry after reopen = %+v, replayed %v; want %+v, true", again, replayed, first)
	}
	st = reopen(t, st, store.Retention{})
	ads, _ := st.Items()
	checkItems(t, ads, []store.Item{first})
	if st.Latest() != first.ID {
		t.Errorf("Latest() = %d, want %d: a replay must not use an id", st.Latest(), first.ID)
	}
}

// The same key for another request is the publisher's bug, not a retry.
func TestAppendKeyedReusedKey(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	first, _ := mustAppendKeyed(t, st, "Bike for sale", "k1", t0)
	_, _, err := st.AppendKeyed(wire.KindClassified, "Piano", t0, "k1", fp("Piano"))
	if !errors.Is(err, store.ErrKeyReused) {
		t.Fatalf("err = %v, want ErrKeyReused", err)
	}
	if !strings.Contains(err.Error(), `"k1"`) {
		t.Errorf("error %q does not name the key", err)
	}
	st = reopen(t, st, store.Retention{})
	ads, _ := st.Items()
	checkItems(t, ads, []store.Item{first})
}

// A key-reuse error must not undo client positions that rode along.
func TestAppendKeyedReusedKeyCommitsPositions(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	mustAppendKeyed(t, st, "Bike for sale", "k1", t0)
	commit := st.StageClient("c", store.Client{Ad: 1, Seen: t0})
	if _, _, err := st.AppendKeyed(wire.KindClassified, "Piano", t0, "k1", fp("Piano")); !errors.Is(err, store.ErrKeyReused) {
		t.Fatalf("err = %v, want ErrKeyReused", err)
	}
	if err := commit.Wait(t.Context()); err != nil {
		t.Fatalf("the staged position's commit: %v", err)
	}
	st = reopen(t, st, store.Retention{})
	wantClient(t, st, "c", store.Client{Ad: 1, Seen: t0})
}

func TestAppendKeyedEmptyKeyIsPlainAppend(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	a, ra := mustAppendKeyed(t, st, "ad", "", t0)
	b, rb := mustAppendKeyed(t, st, "ad", "", t0)
	if ra || rb || a.ID == b.ID {
		t.Errorf("two unkeyed appends: %+v (%v), %+v (%v); want two items", a, ra, b, rb)
	}
}

func TestAppendKeyedKeyLength(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	if _, _, err := st.AppendKeyed(wire.KindClassified, "ad", t0, strings.Repeat("k", store.MaxKeyBytes+1), fp("ad")); !errors.Is(err, wire.ErrInvalid) {
		t.Errorf("a key of %d bytes: err = %v, want wire.ErrInvalid", store.MaxKeyBytes+1, err)
	}
	mustAppendKeyed(t, st, "ad", strings.Repeat("k", store.MaxKeyBytes), t0)
}

// The key keeps the whole item: a retry answers correctly after the ads
// retention dropped the ad, and for a random number (of which only the
// latest is kept).
func TestAppendKeyedReplayAfterItemDropped(t *testing.T) {
	keep := store.Retention{Ads: 1}
	st := open(t, t.TempDir(), keep)
	first, _ := mustAppendKeyed(t, st, "first", "k1", t0)
	mustAppend(t, st, wire.KindClassified, "second", t0)
	num, _, err := st.AppendKeyed(wire.KindRandom, "42", t0, "k2", fp("42"))
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, st, wire.KindRandom, "43", t0)
	st = reopen(t, st, keep)
	if ads, _ := st.Items(); len(ads) != 1 || ads[0].Value != "second" {
		t.Fatalf("ads = %+v, want only the second", ads)
	}
	if again, replayed := mustAppendKeyed(t, st, "first", "k1", t0); !replayed || !sameItem(again, first) {
		t.Errorf("retry = %+v, %v; want %+v, true", again, replayed, first)
	}
	again, replayed, err := st.AppendKeyed(wire.KindRandom, "42", t0, "k2", fp("42"))
	if err != nil || !replayed || !sameItem(again, num) {
		t.Errorf("retry = %+v, %v, %v; want %+v, true", again, replayed, err, num)
	}
}

// Keys are kept KeyAge: after that the key is free again.
func TestKeysAgeOut(t *testing.T) {
	keep := store.Retention{KeyAge: time.Hour}
	st := open(t, t.TempDir(), keep)
	mustAppendKeyed(t, st, "old", "old", t0.Add(-2*time.Hour))
	edge, _ := mustAppendKeyed(t, st, "edge", "edge", t0.Add(-time.Hour))
	if _, err := st.Prune(t0); err != nil {
		t.Fatal(err)
	}
	if _, replayed := mustAppendKeyed(t, st, "old", "old", t0); replayed {
		t.Error("a key older than KeyAge still replays")
	}
	if again, replayed := mustAppendKeyed(t, st, "edge", "edge", t0); !replayed || again.ID != edge.ID {
		t.Error("a key exactly KeyAge old was dropped")
	}
}

// At most Keys keys are kept, the oldest go first, and the file never
// holds more; a cap lowered between runs applies at open.
func TestKeysCap(t *testing.T) {
	keep := store.Retention{Keys: 3}
	st := open(t, t.TempDir(), keep)
	var items []store.Item
	for i := range 5 {
		it, _ := mustAppendKeyed(t, st, fmt.Sprint("ad ", i), fmt.Sprint("k", i), t0)
		items = append(items, it)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if a, b := len(fileKeys(t, st.Path(), "keys")), len(fileKeys(t, st.Path(), "keyorder")); a != 3 || b != 3 {
		t.Errorf("file holds %d keys, %d in order; want 3", a, b)
	}
	st = open(t, strings.TrimSuffix(st.Path(), "/"+store.FileName), store.Retention{Keys: 2})
	for i := 4; i >= 0; i-- { // newest first: each new key drops the oldest
		again, replayed := mustAppendKeyed(t, st, fmt.Sprint("ad ", i), fmt.Sprint("k", i), t0)
		if want := i >= 3; replayed != want || (replayed && !sameItem(again, items[i])) {
			t.Errorf("key k%d: replayed %v, want %v", i, replayed, want)
		}
	}
}

// A damaged key record is reported at open; a retry with that key is
// refused (it cannot be answered, and appending again could duplicate),
// other keys work, and the age retention drops it.
func TestDamagedKeyRecord(t *testing.T) {
	dir := t.TempDir()
	keep := store.Retention{KeyAge: time.Hour}
	st := open(t, dir, keep)
	mustAppendKeyed(t, st, "first", "k1", t0)
	second, _ := mustAppendKeyed(t, st, "second", "k2", t0)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	editFile(t, st.Path(), func(tx *bolt.Tx) error { return tx.Bucket([]byte("keys")).Put([]byte("k1"), []byte("short")) })
	var logs logBuffer
	st = openWith(t, dir, store.Options{Retention: keep, Logger: logs.logger()})
	if l := logs.lines("damaged idempotency key records"); len(l) != 1 || !strings.Contains(l[0], "count=1") {
		t.Errorf("want one report of one damaged key, got:\n%s", logs.String())
	}
	if _, _, err := st.AppendKeyed(wire.KindClassified, "first", t0, "k1", fp("first")); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("retry with the damaged key: err = %v, want ErrCorrupt", err)
	}
	if again, replayed := mustAppendKeyed(t, st, "second", "k2", t0); !replayed || !sameItem(again, second) {
		t.Errorf("retry with a sound key = %+v, %v", again, replayed)
	}
	if _, err := st.Prune(t0.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, replayed := mustAppendKeyed(t, st, "first", "k1", t0.Add(2*time.Hour)); replayed {
		t.Error("the damaged key survived the age retention")
	}
}
