// Package storetest is the conformance suite of hark's stores: what
// hark serve relies on from the place it keeps items and read positions,
// whatever that place is. Every store runs it (store's own tests run it
// against the bbolt store), so that the server can take any of them.
//
// A store under test is opened by an Opener on a location (a directory
// for the bbolt store) that outlives it: opening the same location again
// must give the same store, as after a restart.
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

// Store is what the suite tests: hark serve's store interface
// (server.Store), restated where it is used, since server imports store.
type Store interface {
	Epoch() string
	Items() (ads []store.Item, random store.Item)
	AppendKeyed(kind wire.Kind, value string, at time.Time, key string, fp [32]byte) (store.Item, bool, error)
	OnAppend(f func(store.Appended))
	Client(id string) (store.Client, bool, error)
	StageClient(id string, c store.Client) *store.Commit
	Clients() int
	Prune(now time.Time) (droppedAds []uint64, err error)
	Close() error
}

// Opener opens the store at loc with retention keep. The suite closes
// what it opens.
type Opener func(t *testing.T, loc string, keep store.Retention) Store

// Run runs the suite. Each test gets a fresh location (t.TempDir()).
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		run  func(t *testing.T, open func(keep store.Retention) (Store, string), reopen func(loc string, keep store.Retention) Store)
	}{
		{"NewStoreIsEmpty", newStoreIsEmpty},
		{"IDsIncreaseAcrossKinds", idsIncreaseAcrossKinds},
		{"OnAppendInIDOrder", onAppendInIDOrder},
		{"RetentionCountReportsDrops", retentionCountReportsDrops},
		{"IdempotencyKeys", idempotencyKeys},
		{"PositionsOnlyMoveForward", positionsOnlyMoveForward},
		{"SurvivesReopen", survivesReopen},
		{"PruneByAge", pruneByAge},
		{"RefusesBadItems", refusesBadItems},
		{"ClosedRefusesWrites", closedRefusesWrites},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reopen := func(loc string, keep store.Retention) Store {
				st := open(t, loc, keep)
				t.Cleanup(func() { st.Close() })
				return st
			}
			fresh := func(keep store.Retention) (Store, string) {
				loc := t.TempDir()
				return reopen(loc, keep), loc
			}
			tc.run(t, fresh, reopen)
		})
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fp(s string) [32]byte {
	var b [32]byte
	copy(b[:], s)
	return b
}

func mustAppend(t *testing.T, st Store, kind wire.Kind, value string, at time.Time) store.Item {
	t.Helper()
	it, replayed, err := st.AppendKeyed(kind, value, at, "", fp(value))
	if err != nil || replayed {
		t.Fatalf("append %s %q: %v (replayed %v)", kind, value, err, replayed)
	}
	return it
}

func ids(items []store.Item) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func newStoreIsEmpty(t *testing.T, open func(store.Retention) (Store, string), _ func(string, store.Retention) Store) {
	st, _ := open(store.Retention{})
	ads, random := st.Items()
	if len(ads) != 0 || random.ID != 0 {
		t.Errorf("a new store holds %v and %v", ads, random)
	}
	if e := st.Epoch(); !wire.ValidEpoch(e) {
		t.Errorf("epoch %q is not one hello can carry", e)
	}
	if n := st.Clients(); n != 0 {
		t.Errorf("a new store holds %d clients", n)
	}
	if _, found, err := st.Client("nobody"); found || err != nil {
		t.Errorf("an unknown client: found %v, %v", found, err)
	}
}

// Ids come from one sequence for both kinds, so a client's marks compare;
// Items has the ads oldest first and the latest number alone.
func idsIncreaseAcrossKinds(t *testing.T, open func(store.Retention) (Store, string), _ func(string, store.Retention) Store) {
	st, _ := open(store.Retention{})
	a1 := mustAppend(t, st, wire.KindClassified, "Bike, 50 EUR", t0)
	r1 := mustAppend(t, st, wire.KindRandom, "17", t0)
	a2 := mustAppend(t, st, wire.KindClassified, "Sofa, free", t0)
	r2 := mustAppend(t, st, wire.KindRandom, "42", t0)
	if !(0 < a1.ID && a1.ID < r1.ID && r1.ID < a2.ID && a2.ID < r2.ID) {
		t.Fatalf("ids %d %d %d %d do not increase", a1.ID, r1.ID, a2.ID, r2.ID)
	}
	ads, random := st.Items()
	if !slices.Equal(ids(ads), []uint64{a1.ID, a2.ID}) || ads[1].Value != "Sofa, free" || !ads[0].Time.Equal(t0) {
		t.Errorf("ads %v", ads)
	}
	if random.ID != r2.ID || random.Value != "42" || random.Kind != wire.KindRandom {
		t.Errorf("random %v, want the latest, 42", random)
	}
}

// OnAppend's f is told of each new item in id order, one at a time, and
// of an append's item before the append returns: the server fans out
// there without a lock of its own. (The race detector checks "one at a
// time": got is not locked.)
func onAppendInIDOrder(t *testing.T, open func(store.Retention) (Store, string), _ func(string, store.Retention) Store) {
	st, _ := open(store.Retention{})
	var got []uint64
	var last atomic.Uint64
	st.OnAppend(func(a store.Appended) {
		got = append(got, a.Item.ID)
		last.Store(a.Item.ID)
	})
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				kind := wire.KindClassified
				if i%3 == 0 {
					kind = wire.KindRandom
				}
				value := fmt.Sprint(w*1000 + i)
				if kind == wire.KindClassified {
					value = "ad " + value
				}
				it, _, err := st.AppendKeyed(kind, value, t0, "", fp(value))
				if err != nil {
					errs <- err
					return
				}
				if seen := last.Load(); seen < it.ID {
					errs <- fmt.Errorf("append of %d returned before OnAppend was told (it has seen up to %d)", it.ID, seen)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(got) != writers*each {
		t.Fatalf("OnAppend told %d times of %d appends", len(got), writers*each)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("OnAppend told of id %d after %d: not in id order", got[i], got[i-1])
		}
	}
}

// The retention count drops the oldest ads, and the append that made it
// drop them says which, so that a copy of the items can follow.
func retentionCountReportsDrops(t *testing.T, open func(store.Retention) (Store, string), _ func(string, store.Retention) Store) {
	st, _ := open(store.Retention{Ads: 3})
	var all, dropped []uint64
	st.OnAppend(func(a store.Appended) { dropped = append(dropped, a.Dropped...) })
	for i := range 5 {
		value := fmt.Sprint("ad ", i)
		it, _, err := st.AppendKeyed(wire.KindClassified, value, t0, "", fp(value))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, it.ID)
		mustAppend(t, st, wire.KindRandom, fmt.Sprint(i), t0) // numbers do not count
	}
	if !slices.Equal(dropped, all[:2]) {
		t.Errorf("dropped %v, want the first two ads %v", dropped, all[:2])
	}
	if ads, _ := st.Items(); !slices.Equal(ids(ads), all[2:]) {
		t.Errorf("ads kept %v, want %v", ids(ads), all[2:])
	}
}

func idempotencyKeys(t *testing.T, open func(store.Retention) (Store, string), _ func(string, store.Retention) Store) {
	st, _ := open(store.Retention{})
	var calls atomic.Int32
	st.OnAppend(func(store.Appended) { calls.Add(1) })
	first, replayed, err := st.AppendKeyed(wire.KindClassified, "Bike", t0, "k1", fp("Bike"))
	if err != nil || replayed {
		t.Fatalf("first: %v, %v", replayed, err)
	}
	again, replayed, err := st.AppendKeyed(wire.KindClassified, "Bike", t0.Add(time.Second), "k1", fp("Bike"))
	if err != nil || !replayed || again.ID != first.ID || again.Value != "Bike" {
		t.Fatalf("the same request again: %v, replayed %v, %v; want the first item", again, replayed, err)
	}
	if _, _, err := st.AppendKeyed(wire.KindClassified, "Piano", t0, "k1", fp("Piano")); !errors.Is(err, store.ErrKeyReused) {
		t.Fatalf("the key for another request: %v, want ErrKeyReused", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("OnAppend told %d times, want once: a replay is not news", n)
	}
	if ads, _ := st.Items(); len(ads) != 1 {
		t.Errorf("ads %v, want the first alone", ads)
	}
}

// A client's position moves forward only, field by field: an older
// acknowledgement arriving late (or from another connection) never makes
// it read an item again.
func positionsOnlyMoveForward(t *testing.T, open func(store.Retention) (Store, string), _ func(string, store.Retention) Store) {
	st, _ := open(store.Retention{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.StageClient("c1", store.Client{Ad: 5, Random: 3, Seen: t0}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.StageClient("c1", store.Client{Ad: 2, Random: 7, Seen: t0}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	c, found, err := st.Client("c1")
	if err != nil || !found || c.Ad != 5 || c.Random != 7 {
		t.Fatalf("client c1: %+v, %v, %v; want ad 5, random 7", c, found, err)
	}
	if n := st.Clients(); n != 1 {
		t.Errorf("%d clients, want 1", n)
	}
}

// What was on disk when the store closed is there when it opens again,
// under the same epoch.
func survivesReopen(t *testing.T, open func(store.Retention) (Store, string), reopen func(string, store.Retention) Store) {
	st, loc := open(store.Retention{})
	ad := mustAppend(t, st, wire.KindClassified, "Lamp", t0)
	num := mustAppend(t, st, wire.KindRandom, "9", t0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.StageClient("c1", store.Client{Ad: ad.ID, Random: num.ID, Seen: t0}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	epoch := st.Epoch()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	again := reopen(loc, store.Retention{})
	if again.Epoch() != epoch {
		t.Errorf("epoch %q after reopening, was %q", again.Epoch(), epoch)
	}
	ads, random := again.Items()
	if !slices.Equal(ids(ads), []uint64{ad.ID}) || random.ID != num.ID {
		t.Errorf("after reopening: %v and %v", ads, random)
	}
	if c, found, err := again.Client("c1"); err != nil || !found || c.Ad != ad.ID || c.Random != num.ID {
		t.Errorf("client after reopening: %+v, %v, %v", c, found, err)
	}
	if next := mustAppend(t, again, wire.KindClassified, "Desk", t0); next.ID <= num.ID {
		t.Errorf("id %d after reopening, not after %d: an id handed out twice", next.ID, num.ID)
	}
}

func pruneByAge(t *testing.T, open func(store.Retention) (Store, string), _ func(string, store.Retention) Store) {
	st, _ := open(store.Retention{AdAge: time.Hour})
	old := mustAppend(t, st, wire.KindClassified, "old", t0.Add(-2*time.Hour))
	fresh := mustAppend(t, st, wire.KindClassified, "fresh", t0)
	dropped, err := st.Prune(t0)
	if err != nil || !slices.Equal(dropped, []uint64{old.ID}) {
		t.Fatalf("Prune: %v, %v; want %d dropped", dropped, err, old.ID)
	}
	if ads, _ := st.Items(); !slices.Equal(ids(ads), []uint64{fresh.ID}) {
		t.Errorf("ads after Prune %v", ads)
	}
}

// What a client could not read is refused, with wire.ErrInvalid, and
// nothing is stored.
func refusesBadItems(t *testing.T, open func(store.Retention) (Store, string), _ func(string, store.Retention) Store) {
	st, _ := open(store.Retention{})
	for _, c := range []struct {
		kind  wire.Kind
		value string
	}{{"weather", "rain"}, {wire.KindClassified, ""}, {wire.KindClassified, "a\r\nb"}, {wire.KindRandom, "forty-two"}} {
		if _, _, err := st.AppendKeyed(c.kind, c.value, t0, "", fp(c.value)); !errors.Is(err, wire.ErrInvalid) {
			t.Errorf("append %s %q: %v, want wire.ErrInvalid", c.kind, c.value, err)
		}
	}
	if ads, random := st.Items(); len(ads) != 0 || random.ID != 0 {
		t.Errorf("bad items stored: %v, %v", ads, random)
	}
}

func closedRefusesWrites(t *testing.T, open func(store.Retention) (Store, string), _ func(string, store.Retention) Store) {
	st, _ := open(store.Retention{})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.AppendKeyed(wire.KindClassified, "late", t0, "", fp("late")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("append after Close: %v, want ErrClosed", err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}
