package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// RunShared runs the checks of a store that several gateways share (one
// hark serve per machine over one store): opening the same location twice
// at once gives two handles of one store, which must behave as one. Each
// test gets a fresh location. The bbolt store, which one process holds,
// does not run it.
func RunShared(t *testing.T, open Opener) {
	tests := []struct {
		name string
		keep store.Retention
		run  func(t *testing.T, a, b Store, reopen func() Store)
	}{
		{"SameEpoch", store.Retention{}, sharedEpoch},
		{"FanOutOnceInIDOrder", store.Retention{}, sharedFanOut},
		{"RetentionCountReportedToBoth", store.Retention{Ads: 3}, sharedDrops},
		{"PositionsShared", store.Retention{}, sharedPositions},
		{"IdempotencyKeysShared", store.Retention{}, sharedKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			loc := t.TempDir()
			reopen := func() Store {
				st := open(t, loc, tc.keep)
				t.Cleanup(func() { st.Close() })
				return st
			}
			tc.run(t, reopen(), reopen(), reopen)
		})
	}
}

// waitTimeout bounds every wait of the shared checks.
const waitTimeout = 10 * time.Second

// Follower records what a store's OnAppend is told, for tests to await.
type Follower struct {
	mu    sync.Mutex
	got   []store.Appended
	last  atomic.Uint64
	moved chan struct{} // a new item was told (capacity 1)
}

// Follow sets st's OnAppend to record what it is told.
func Follow(st interface{ OnAppend(func(store.Appended)) }) *Follower {
	f := &Follower{moved: make(chan struct{}, 1)}
	st.OnAppend(func(a store.Appended) {
		f.mu.Lock()
		f.got = append(f.got, a)
		f.mu.Unlock()
		f.last.Store(a.Item.ID)
		select {
		case f.moved <- struct{}{}:
		default:
		}
	})
	return f
}

// Await returns what the store's OnAppend was told once it was told of n
// items, or fails t after a while.
func (f *Follower) Await(t *testing.T, n int) []store.Appended {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		f.mu.Lock()
		got := slices.Clone(f.got)
		f.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-f.moved:
		case <-timeout.C:
			t.Fatalf("OnAppend told of %d items, want %d", len(got), n)
		}
	}
}

// IDs are the ids of the items in as.
func IDs(as []store.Appended) []uint64 {
	out := make([]uint64, len(as))
	for i, a := range as {
		out[i] = a.Item.ID
	}
	return out
}

func sharedEpoch(t *testing.T, a, b Store, reopen func() Store) {
	if a.Epoch() != b.Epoch() || !wire.ValidEpoch(a.Epoch()) {
		t.Fatalf("epochs %q and %q, want one", a.Epoch(), b.Epoch())
	}
	if c := reopen(); c.Epoch() != a.Epoch() {
		t.Errorf("a third handle's epoch %q, want %q", c.Epoch(), a.Epoch())
	}
}

// Both handles append at once: ids never collide, and each handle's
// OnAppend is told of every item, whichever handle appended it, once, in
// id order; an append returns after its own handle was told of it.
func sharedFanOut(t *testing.T, a, b Store, _ func() Store) {
	fa, fb := Follow(a), Follow(b)
	const writers, each = 4, 20
	var mu sync.Mutex
	var appended []uint64
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for h, st := range []Store{a, b} {
		f := []*Follower{fa, fb}[h]
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					kind, value := wire.KindClassified, fmt.Sprintf("ad %d-%d-%d", h, w, i)
					if i%3 == 0 {
						kind, value = wire.KindRandom, fmt.Sprint(h*10000+w*100+i)
					}
					it, _, err := st.AppendKeyed(kind, value, t0, "", fp(value))
					if err != nil {
						errs <- err
						return
					}
					if seen := f.last.Load(); seen < it.ID {
						errs <- fmt.Errorf("append of %d returned before its handle's OnAppend was told (it has seen up to %d)", it.ID, seen)
						return
					}
					mu.Lock()
					appended = append(appended, it.ID)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(appended)
	if n := len(slices.Compact(slices.Clone(appended))); n != len(appended) {
		t.Fatalf("%d appends got %d distinct ids: an id handed out twice", len(appended), n)
	}
	for name, f := range map[string]*Follower{"first": fa, "second": fb} {
		got := IDs(f.Await(t, len(appended)))
		if !slices.Equal(got, appended) {
			t.Errorf("the %s handle was told of %v, want every item once in id order: %v", name, got, appended)
		}
	}
}

// The count retention's drops are reported to both handles, whichever
// appended, and both hold the same ads.
func sharedDrops(t *testing.T, a, b Store, _ func() Store) {
	fa, fb := Follow(a), Follow(b)
	var all []uint64
	for i := range 5 {
		st := []Store{a, b}[i%2]
		all = append(all, mustAppend(t, st, wire.KindClassified, fmt.Sprint("ad ", i), t0).ID)
	}
	for name, f := range map[string]*Follower{"first": fa, "second": fb} {
		var dropped []uint64
		for _, ap := range f.Await(t, len(all)) {
			dropped = append(dropped, ap.Dropped...)
		}
		if !slices.Equal(dropped, all[:2]) {
			t.Errorf("the %s handle was told of drops %v, want %v", name, dropped, all[:2])
		}
	}
	for name, st := range map[string]Store{"first": a, "second": b} {
		if ads, _ := st.Items(); !slices.Equal(ids(ads), all[2:]) {
			t.Errorf("the %s handle holds ads %v, want %v", name, ids(ads), all[2:])
		}
	}
}

// A position saved through one handle is read through the other, and
// moves forward only, also when both write it at once.
func sharedPositions(t *testing.T, a, b Store, _ func() Store) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := a.StageClient("c1", store.Client{Ad: 5, Random: 3, Seen: t0}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if c, found, err := b.Client("c1"); err != nil || !found || c.Ad != 5 || c.Random != 3 {
		t.Fatalf("c1 through the other handle: %+v, %v, %v; want ad 5, random 3", c, found, err)
	}
	if err := b.StageClient("c1", store.Client{Ad: 2, Random: 7, Seen: t0}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _, err := a.Client("c1"); err != nil || c.Ad != 5 || c.Random != 7 {
		t.Fatalf("c1 after an older ad through the other handle: %+v, %v; want ad 5, random 7", c, err)
	}

	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for h, st := range []Store{a, b} {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					n := uint64(i*2*writers + h*writers + w) // every value once, interleaved
					if err := st.StageClient("c2", store.Client{Ad: n, Random: n, Seen: t0}).Wait(ctx); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	top := uint64(2*writers*each - 1)
	for name, st := range map[string]Store{"first": a, "second": b} {
		if c, _, err := st.Client("c2"); err != nil || c.Ad != top || c.Random != top {
			t.Errorf("c2 through the %s handle: %+v, %v; want ad and random %d", name, c, err, top)
		}
	}
}

// A key used through one handle is known to the other, also when both
// use it at once: one append, the others replays.
func sharedKeys(t *testing.T, a, b Store, _ func() Store) {
	first, replayed, err := a.AppendKeyed(wire.KindClassified, "Bike", t0, "k1", fp("Bike"))
	if err != nil || replayed {
		t.Fatalf("first: %v, %v", replayed, err)
	}
	again, replayed, err := b.AppendKeyed(wire.KindClassified, "Bike", t0, "k1", fp("Bike"))
	if err != nil || !replayed || again.ID != first.ID || again.Value != "Bike" {
		t.Fatalf("the same request through the other handle: %v, replayed %v, %v; want the first item", again, replayed, err)
	}
	if _, _, err := b.AppendKeyed(wire.KindClassified, "Piano", t0, "k1", fp("Piano")); !errors.Is(err, store.ErrKeyReused) {
		t.Fatalf("the key for another request through the other handle: %v, want ErrKeyReused", err)
	}

	type result struct {
		id       uint64
		replayed bool
		err      error
	}
	const tries = 8
	results := make(chan result, tries)
	for i := range tries {
		st := []Store{a, b}[i%2]
		go func() {
			it, replayed, err := st.AppendKeyed(wire.KindRandom, "42", t0, "k2", fp("42"))
			results <- result{it.ID, replayed, err}
		}()
	}
	var appended int
	var id uint64
	for range tries {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !r.replayed {
			appended++
		}
		if id != 0 && r.id != id {
			t.Errorf("one key answered with ids %d and %d", id, r.id)
		}
		id = r.id
	}
	if appended != 1 {
		t.Errorf("%d appends with one key through both handles at once, want 1", appended)
	}
}
