package jetstream_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/jetstream"
	"github.com/harkapp/hark/store/storetest"
	"github.com/harkapp/hark/wire"
)

// importSource is a store as a bbolt one leaves it after a while: ids 1
// and 2 gone before the first item held, 5 and 6 between (random numbers
// replaced, an ad dropped), 11 and 12 after the last (ads pruned by age):
// a client may have read every one of them.
func importSource() (jetstream.Source, map[string]store.Client) {
	items := []store.Item{
		{ID: 3, Kind: wire.KindClassified, Value: "Bright two-room flat", Time: t0.Add(-5 * time.Hour)},
		{ID: 4, Kind: wire.KindClassified, Value: "Bike for sale €", Time: t0.Add(-4 * time.Hour)},
		{ID: 7, Kind: wire.KindClassified, Value: "Piano", Time: t0.Add(-3 * time.Hour)},
		{ID: 8, Kind: wire.KindRandom, Value: "89765234756", Time: t0.Add(-2 * time.Hour)},
		{ID: 10, Kind: wire.KindClassified, Value: "Desk, 20 EUR", Time: t0.Add(-time.Hour)},
	}
	clients := map[string]store.Client{
		"laptop":  {Ad: 4, Random: 8, Seen: t0.Add(-time.Hour), Source: "203.0.113.5"},
		"desktop": {Ad: 12, Random: 8, Seen: t0},
		"phone":   {Ad: 0, Random: 0, Seen: t0.Add(-24 * time.Hour), Source: "2001:db8:1:2::/64"},
	}
	each := func(f func(string, store.Client) error) error {
		for _, id := range slices.Sorted(maps.Keys(clients)) {
			if err := f(id, clients[id]); err != nil {
				return err
			}
		}
		return nil
	}
	return jetstream.Source{Epoch: "0123456789abcdef", Latest: 12, Items: items, EachClient: each}, clients
}

func importInto(t *testing.T, ns *natsServer, prefix string, src jetstream.Source) (jetstream.Report, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	return jetstream.Import(ctx, jetstream.Options{URLs: ns.URL, Prefix: prefix}, src)
}

// An imported store is, to a hark serve that opens it, the store it came
// from: same epoch, same items with the same ids, kinds, values and
// times, same read positions; the next item gets the id after the last
// one handed out, also past ids whose items are gone and after NATS
// restarts; the placeholders that hold the gaps are never told.
func TestImportKeepsIDsEpochAndPositions(t *testing.T) {
	ns := startNATS(t)
	src, clients := importSource()
	rep, err := importInto(t, ns, "IMP", src)
	if err != nil {
		t.Fatal(err)
	}
	want := jetstream.Report{Servers: ns.URL, Stream: "IMP_ITEMS", Epoch: src.Epoch, Items: 5, FirstID: 3, LastID: 10, Latest: 12, Gaps: 7, Clients: 3}
	if rep != want {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	// The stream is left as Open makes it: no subject of placeholders.
	js := ns.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if st, err := js.Stream(ctx, "IMP_ITEMS"); err != nil || !slices.Equal(st.CachedInfo().Config.Subjects, []string{"IMP.items.random", "IMP.items.classified"}) {
		t.Errorf("the stream after the import: %v", err)
	} else if s := st.CachedInfo().State; s.Msgs != 5 || s.FirstSeq != 3 || s.LastSeq != 12 {
		t.Errorf("the stream after the import holds %d messages, %d to %d; want 5, 3 to 12", s.Msgs, s.FirstSeq, s.LastSeq)
	}
	// The ids must outlive a restart of NATS: those of trailing gaps too.
	ns.Stop()
	ns.Start()

	st := openStore(t, ns, "IMP", store.Retention{}, nil)
	defer st.Close()
	rec := storetest.Follow(st)
	if st.Epoch() != src.Epoch {
		t.Errorf("epoch %q after the import, want %q", st.Epoch(), src.Epoch)
	}
	ads, random := st.Items()
	var wantAds []store.Item
	for _, it := range src.Items {
		if it.Kind == wire.KindClassified {
			wantAds = append(wantAds, it)
		}
	}
	if !slices.EqualFunc(ads, wantAds, sameItem) {
		t.Errorf("ads after the import:\n%+v\nwant\n%+v", ads, wantAds)
	}
	if !sameItem(random, src.Items[3]) {
		t.Errorf("random after the import %+v, want %+v", random, src.Items[3])
	}
	for id, wantC := range clients {
		c, found, err := st.Client(id)
		if err != nil || !found || c.Ad != wantC.Ad || c.Random != wantC.Random || !c.Seen.Equal(wantC.Seen) || c.Source != wantC.Source {
			t.Errorf("client %q after the import: %+v, %v, %v; want %+v", id, c, found, err, wantC)
		}
	}
	if n := st.Clients(); n != 3 {
		t.Errorf("Clients() = %d, want 3", n)
	}
	if it := appendAd(t, st, "after the move"); it.ID != 13 {
		t.Errorf("the first item after the import got id %d, want 13", it.ID)
	}
	if got := storetest.IDs(rec.Await(t, 1)); !slices.Equal(got, []uint64{13}) {
		t.Errorf("OnAppend told of %v, want [13]: nothing imported, no placeholder", got)
	}

	// Another handle, as another gateway opening later: the same.
	again := openStore(t, ns, "IMP", store.Retention{}, nil)
	defer again.Close()
	if again.Epoch() != src.Epoch {
		t.Errorf("epoch %q on a second open, want %q", again.Epoch(), src.Epoch)
	}
	if ads, _ := again.Items(); !slices.Equal(ids(ads), []uint64{3, 4, 7, 10, 13}) {
		t.Errorf("ads on a second open %v, want [3 4 7 10 13]", ids(ads))
	}
}

func sameItem(a, b store.Item) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.Value == b.Value && a.Time.Equal(b.Time)
}

// A store that never held an item still moves: its epoch, its positions
// and its next id (a store whose items were all dropped).
func TestImportWithoutItems(t *testing.T) {
	ns := startNATS(t)
	src, _ := importSource()
	src.Items = nil
	if _, err := importInto(t, ns, "BARE", src); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, ns, "BARE", store.Retention{}, nil)
	defer st.Close()
	if ads, random := st.Items(); len(ads) != 0 || random.ID != 0 || st.Epoch() != src.Epoch {
		t.Errorf("after importing no items: ads %v, random %+v, epoch %q", ads, random, st.Epoch())
	}
	if it := appendAd(t, st, "first"); it.ID != 13 {
		t.Errorf("the first item got id %d, want 13", it.ID)
	}
	if c, found, err := st.Client("desktop"); err != nil || !found || c.Ad != 12 {
		t.Errorf("desktop: %+v, %v, %v", c, found, err)
	}
}

// Import never merges into a store in use: not into a stream that held
// an item, not into one a hark serve follows, not into positions; and
// it leaves such a store as it was. An empty stream nobody follows (a
// hark serve opened it and found nothing) is taken.
func TestImportRefusesNonEmpty(t *testing.T) {
	ns := startNATS(t)
	src, _ := importSource()

	live := openStore(t, ns, "LIVE", store.Retention{}, nil)
	ad := appendAd(t, live, "already here")
	epoch := live.Epoch()
	live.Close()
	if _, err := importInto(t, ns, "LIVE", src); !errors.Is(err, jetstream.ErrNotEmpty) {
		t.Errorf("import into a stream with an item: %v, want ErrNotEmpty", err)
	}
	again := openStore(t, ns, "LIVE", store.Retention{}, nil)
	if ads, _ := again.Items(); !slices.Equal(ids(ads), []uint64{ad.ID}) || again.Epoch() != epoch {
		t.Errorf("the live store after a refused import: ads %v, epoch %q; want [%d], %q", ids(ads), again.Epoch(), ad.ID, epoch)
	}
	again.Close()

	// Items but no consumer (the hark serve stopped long ago), and none
	// held any more (purged): ids were handed out all the same.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	js := ns.JetStream(t)
	for _, prefix := range []string{"OLD", "PURGED"} {
		old, err := js.CreateStream(ctx, njs.StreamConfig{Name: prefix + "_ITEMS", Subjects: []string{prefix + ".items.random", prefix + ".items.classified"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, prefix+".items.classified", []byte("old ad")); err != nil {
			t.Fatal(err)
		}
		if prefix == "PURGED" {
			if err := old.Purge(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := importInto(t, ns, prefix, src); !errors.Is(err, jetstream.ErrNotEmpty) {
			t.Errorf("import into %s: %v, want ErrNotEmpty", prefix, err)
		}
		if info, err := old.Info(ctx); err != nil || info.State.LastSeq != 1 {
			t.Errorf("%s after a refused import: %v, %v; want its id 1 kept", prefix, info, err)
		}
	}

	// Empty, but followed by a running handle.
	followed := openStore(t, ns, "FOLLOWED", store.Retention{}, nil)
	if _, err := importInto(t, ns, "FOLLOWED", src); !errors.Is(err, jetstream.ErrNotEmpty) {
		t.Errorf("import into a stream a handle follows: %v, want ErrNotEmpty", err)
	}
	followed.Close()

	// Positions without a stream of items.
	kv, err := js.CreateKeyValue(ctx, njs.KeyValueConfig{Bucket: "POS_CLIENTS"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "c29tZW9uZQ", []byte(`{"Ad":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := importInto(t, ns, "POS", src); !errors.Is(err, jetstream.ErrNotEmpty) {
		t.Errorf("import into a store with positions: %v, want ErrNotEmpty", err)
	}
	if _, err := js.Stream(ctx, "POS_ITEMS"); !errors.Is(err, njs.ErrStreamNotFound) {
		t.Errorf("a refused import made the items stream: %v", err)
	}

	// Empty and idle (a hark serve's consumer is gone 5 minutes after
	// it stopped: here made without one): taken, with the source's epoch.
	if _, err := js.CreateStream(ctx, njs.StreamConfig{Name: "IDLE_ITEMS", Subjects: []string{"IDLE.items.random", "IDLE.items.classified"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := importInto(t, ns, "IDLE", src); err != nil {
		t.Fatalf("import into an empty stream nobody follows: %v", err)
	}
	taken := openStore(t, ns, "IDLE", store.Retention{}, nil)
	defer taken.Close()
	if ads, _ := taken.Items(); taken.Epoch() != src.Epoch || len(ads) != 4 {
		t.Errorf("after importing into an empty stream: epoch %q, %d ads; want %q, 4", taken.Epoch(), len(ads), src.Epoch)
	}

	// A second import into what the first made.
	if _, err := importInto(t, ns, "IDLE", src); !errors.Is(err, jetstream.ErrNotEmpty) {
		t.Errorf("a second import: %v, want ErrNotEmpty", err)
	}
}

// What Import cannot move as it is, it refuses before touching NATS.
func TestImportRefusesBadSource(t *testing.T) {
	ns := startNATS(t)
	for name, change := range map[string]func(*jetstream.Source){
		"bad epoch":      func(s *jetstream.Source) { s.Epoch = "not an epoch!" },
		"out of order":   func(s *jetstream.Source) { s.Items[1].ID = 2 },
		"beyond latest":  func(s *jetstream.Source) { s.Latest = 9 },
		"invalid value":  func(s *jetstream.Source) { s.Items[3].Value = "not a number" },
		"a kind unknown": func(s *jetstream.Source) { s.Items[0].Kind = "weather" },
	} {
		src, _ := importSource()
		change(&src)
		if _, err := importInto(t, ns, "BAD", src); !errors.Is(err, wire.ErrInvalid) {
			t.Errorf("%s: %v, want wire.ErrInvalid", name, err)
		}
	}
	// Nothing was created: a good import goes through.
	src, _ := importSource()
	if _, err := importInto(t, ns, "BAD", src); err != nil {
		t.Errorf("after refused imports: %v", err)
	}
}
