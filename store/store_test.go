package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is a fixed instant, so that tests do not depend on the clock.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

func open(t *testing.T, dir string, keep store.Retention) *store.Store {
	t.Helper()
	st, err := store.Open(dir, keep)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func openWith(t *testing.T, dir string, opts store.Options) *store.Store {
	t.Helper()
	st, err := store.OpenWith(dir, opts)
	if err != nil {
		t.Fatalf("OpenWith(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// reopen closes st and opens its directory again.
func reopen(t *testing.T, st *store.Store, keep store.Retention) *store.Store {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return open(t, filepath.Dir(st.Path()), keep)
}

func mustAppend(t *testing.T, st *store.Store, kind wire.Kind, value string, at time.Time) store.Item {
	t.Helper()
	it, err := st.Append(kind, value, at)
	if err != nil {
		t.Fatalf("Append(%s, %q): %v", kind, value, err)
	}
	return it
}

func mustSave(t *testing.T, st *store.Store, id string, c store.Client) {
	t.Helper()
	if err := st.SaveClient(context.Background(), id, c); err != nil {
		t.Fatalf("SaveClient(%q): %v", id, err)
	}
}

func sameItem(a, b store.Item) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.Value == b.Value && a.Time.Equal(b.Time)
}

func checkItems(t *testing.T, got, want []store.Item) {
	t.Helper()
	if !slices.EqualFunc(got, want, sameItem) {
		t.Errorf("items:\n got %v\nwant %v", got, want)
	}
}

// fileKeys lists the keys of a bucket in a closed store's file, read with
// bbolt directly, to see what is on disk rather than what Store remembers.
func fileKeys(t *testing.T, path, bucket string) [][]byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open %s with bbolt: %v", path, err)
	}
	defer db.Close()
	var keys [][]byte
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return fmt.Errorf("no bucket %q", bucket)
		}
		return b.ForEach(func(k, _ []byte) error {
			keys = append(keys, slices.Clone(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestOpenCreatesDirectoryAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	st := open(t, dir, store.Retention{})
	if want := filepath.Join(dir, store.FileName); st.Path() != want {
		t.Errorf("Path() = %q, want %q", st.Path(), want)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("data directory: %v, %v", fi, err)
	}
	if fi, err := os.Stat(st.Path()); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		t.Fatalf("store file: %v, %v", fi, err)
	}
	ads, random := st.Items()
	if len(ads) != 0 || random != (store.Item{}) {
		t.Errorf("new store Items() = %v, %v, want nothing", ads, random)
	}
	if got, want := st.Retention(), store.DefaultRetention(); got != want {
		t.Errorf("Retention() = %+v, want the defaults %+v", got, want)
	}
}

func TestOpenNoDirectory(t *testing.T) {
	if _, err := store.Open("", store.Retention{}); err == nil {
		t.Fatal(`Open("") succeeded`)
	}
}

// An empty file is what an interrupted first start leaves; it holds no
// data, so it becomes a new store.
func TestOpenEmptyFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.FileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st := open(t, dir, store.Retention{})
	mustAppend(t, st, wire.KindClassified, "ad", t0)
}

func TestRetentionDefaults(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{Ads: 5, ClientIdle: time.Minute})
	want := store.DefaultRetention()
	want.Ads, want.ClientIdle = 5, time.Minute
	if got := st.Retention(); got != want {
		t.Errorf("Retention() = %+v, want %+v", got, want)
	}
}

func TestAppendIDsIncreaseAcrossKinds(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	kinds := []wire.Kind{wire.KindRandom, wire.KindClassified, wire.KindClassified, wire.KindRandom, wire.KindRandom, wire.KindClassified}
	var last uint64
	for i, k := range kinds {
		at := t0.Add(time.Duration(i) * time.Second)
		it := mustAppend(t, st, k, fmt.Sprint(i), at)
		if it.ID <= last {
			t.Errorf("item %d (%s) has id %d after %d", i, k, it.ID, last)
		}
		if it.Kind != k || it.Value != fmt.Sprint(i) || !it.Time.Equal(at) {
			t.Errorf("Append returned %+v", it)
		}
		last = it.ID
	}
	// The sequence survives a reopen.
	st = reopen(t, st, store.Retention{})
	if it := mustAppend(t, st, wire.KindClassified, "after reopen", t0); it.ID <= last {
		t.Errorf("id after reopen = %d, want > %d", it.ID, last)
	}
}

func TestAppendUnknownKind(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	if _, err := st.Append("bogus", "x", t0); err == nil {
		t.Fatal("Append of an unknown kind succeeded")
	}
	if _, err := st.Append("", "x", t0); err == nil {
		t.Fatal("Append of an empty kind succeeded")
	}
}

func TestReopenLoadsEverything(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	var ads []store.Item
	var random store.Item
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Minute)
		if i%2 == 0 {
			random = mustAppend(t, st, wire.KindRandom, fmt.Sprint(1000+i), at)
		} else {
			ads = append(ads, mustAppend(t, st, wire.KindClassified, fmt.Sprintf("ad %d €", i), at))
		}
	}
	st = reopen(t, st, store.Retention{})
	gotAds, gotRandom := st.Items()
	checkItems(t, gotAds, ads)
	if !sameItem(gotRandom, random) {
		t.Errorf("random = %+v, want %+v", gotRandom, random)
	}
}

// The first random number ever published must survive a restart too.
func TestReopenFirstRandom(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	r := mustAppend(t, st, wire.KindRandom, "42", t0)
	st = reopen(t, st, store.Retention{})
	if _, got := st.Items(); !sameItem(got, r) {
		t.Errorf("random after reopen = %+v, want %+v", got, r)
	}
}

func TestRandomKeepsOnlyLatestInFile(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	var last store.Item
	for i := range 5 {
		last = mustAppend(t, st, wire.KindRandom, fmt.Sprint(i), t0)
		mustAppend(t, st, wire.KindClassified, "ad", t0)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	keys := fileKeys(t, st.Path(), "random")
	if len(keys) != 1 {
		t.Fatalf("random bucket holds %d records, want 1", len(keys))
	}
	if got := keys[0]; string(got) != string([]byte{0, 0, 0, 0, 0, 0, 0, byte(last.ID)}) {
		t.Errorf("random bucket holds key %x, want id %d", got, last.ID)
	}
	if n := len(fileKeys(t, st.Path(), "ads")); n != 5 {
		t.Errorf("ads bucket holds %d records, want 5", n)
	}
}

func TestRetentionAdsCount(t *testing.T) {
	keep := store.Retention{Ads: 3}
	st := open(t, t.TempDir(), keep)
	var ads []store.Item
	for i := range 5 {
		ads = append(ads, mustAppend(t, st, wire.KindClassified, fmt.Sprint("ad ", i), t0.Add(time.Duration(i))))
		mustAppend(t, st, wire.KindRandom, fmt.Sprint(i), t0)
	}
	st = reopen(t, st, keep)
	got, _ := st.Items()
	checkItems(t, got, ads[2:])
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(fileKeys(t, st.Path(), "ads")); n != 3 {
		t.Errorf("ads bucket holds %d records, want 3", n)
	}
}

// A retention lowered between runs applies to what Open hands the server.
func TestRetentionLoweredOnReopen(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	var ads []store.Item
	for i := range 5 {
		ads = append(ads, mustAppend(t, st, wire.KindClassified, fmt.Sprint("ad ", i), t0))
	}
	keep := store.Retention{Ads: 2}
	st = reopen(t, st, keep)
	got, _ := st.Items()
	checkItems(t, got, ads[3:])
	// The next append trims the file to the retention.
	next := mustAppend(t, st, wire.KindClassified, "next", t0)
	st = reopen(t, st, keep)
	got, _ = st.Items()
	checkItems(t, got, []store.Item{ads[4], next})
}

func TestPruneAdAge(t *testing.T) {
	keep := store.Retention{AdAge: time.Hour}
	st := open(t, t.TempDir(), keep)
	now := t0
	old1 := mustAppend(t, st, wire.KindClassified, "3h old", now.Add(-3*time.Hour))
	mustAppend(t, st, wire.KindRandom, "1", now.Add(-150*time.Minute))
	old2 := mustAppend(t, st, wire.KindClassified, "2h old", now.Add(-2*time.Hour))
	old3 := mustAppend(t, st, wire.KindClassified, "just over", now.Add(-time.Hour-time.Nanosecond))
	edge := mustAppend(t, st, wire.KindClassified, "exactly AdAge", now.Add(-time.Hour))
	fresh := mustAppend(t, st, wire.KindClassified, "fresh", now.Add(-time.Minute))

	dropped, err := st.Prune(now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{old1.ID, old2.ID, old3.ID}; !slices.Equal(dropped, want) {
		t.Errorf("Prune dropped %v, want %v", dropped, want)
	}
	if dropped, err := st.Prune(now); err != nil || len(dropped) != 0 {
		t.Errorf("second Prune = %v, %v, want nothing dropped", dropped, err)
	}

	st = reopen(t, st, keep)
	got, _ := st.Items()
	checkItems(t, got, []store.Item{edge, fresh})
}

// Prune's drops count against the retention: after pruning every ad, a
// full retention's worth of new ads is kept.
func TestPruneThenAppendKeepsRetention(t *testing.T) {
	keep := store.Retention{Ads: 3, AdAge: time.Hour}
	st := open(t, t.TempDir(), keep)
	for i := range 3 {
		mustAppend(t, st, wire.KindClassified, fmt.Sprint("old ", i), t0.Add(-2*time.Hour))
	}
	if dropped, err := st.Prune(t0); err != nil || len(dropped) != 3 {
		t.Fatalf("Prune = %v, %v, want 3 ads dropped", dropped, err)
	}
	var fresh []store.Item
	for i := range 3 {
		fresh = append(fresh, mustAppend(t, st, wire.KindClassified, fmt.Sprint("new ", i), t0))
	}
	st = reopen(t, st, keep)
	got, _ := st.Items()
	checkItems(t, got, fresh)
}

func TestPruneIdleClients(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{ClientIdle: time.Hour})
	mustSave(t, st, "gone", store.Client{Ad: 1, Seen: t0.Add(-2 * time.Hour)})
	mustSave(t, st, "edge", store.Client{Ad: 2, Seen: t0.Add(-time.Hour)})
	mustSave(t, st, "active", store.Client{Ad: 3, Seen: t0.Add(-time.Minute)})
	if _, err := st.Prune(t0); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"gone": false, "edge": true, "active": true} {
		if _, found, err := st.Client(id); err != nil || found != want {
			t.Errorf("Client(%q) found = %v, %v, want %v", id, found, err, want)
		}
	}
}

// At the cap, a new id is not stored, and no stored id is evicted for it:
// whoever established an id first keeps it (until it idles out).
func TestClientCapRefusesNewIDs(t *testing.T) {
	var logs logBuffer
	keep := store.Retention{Clients: 2}
	st := openWith(t, t.TempDir(), store.Options{Retention: keep, Logger: logs.logger()})
	mustSave(t, st, "c1", store.Client{Ad: 1, Seen: t0.Add(-3 * time.Minute)})
	mustSave(t, st, "c2", store.Client{Ad: 1, Seen: t0.Add(-2 * time.Minute)})
	mustSave(t, st, "c3", store.Client{Ad: 1, Seen: t0})                       // refused, not an error
	mustSave(t, st, "c1", store.Client{Ad: 7, Seen: t0.Add(-3 * time.Minute)}) // a stored id still moves
	if n := st.Clients(); n != 2 {
		t.Errorf("Clients() = %d, want 2", n)
	}
	st = reopen(t, st, keep)
	for id, want := range map[string]uint64{"c1": 7, "c2": 1, "c3": 0} {
		c, found, err := st.Client(id)
		if err != nil || found != (want != 0) || c.Ad != want {
			t.Errorf("Client(%q) = %+v, %v, %v; want found %v with Ad %d", id, c, found, err, want != 0, want)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if got := logs.count("client id not remembered: the store holds the most client ids it keeps"); got != 1 {
		t.Errorf("the refusal was logged %d times, want 1:\n%s", got, logs.String())
	}
}

func TestClientRoundTrip(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	want := store.Client{Ad: 17, Random: 1<<64 - 1, Seen: t0}
	mustSave(t, st, "laptop", want)

	check := func(st *store.Store) {
		t.Helper()
		got, found, err := st.Client("laptop")
		if err != nil || !found {
			t.Fatalf("Client = %v, %v, %v", got, found, err)
		}
		if got.Ad != want.Ad || got.Random != want.Random || !got.Seen.Equal(want.Seen) {
			t.Errorf("Client = %+v, want %+v", got, want)
		}
	}
	check(st)
	st = reopen(t, st, store.Retention{})
	check(st)

	if c, found, err := st.Client("nobody"); err != nil || found || c != (store.Client{}) {
		t.Errorf("Client(unknown) = %+v, %v, %v, want zero, false, nil", c, found, err)
	}
}

func TestClientPositionsOnlyMoveForward(t *testing.T) {
	tests := []struct {
		name        string
		first, then store.Client
		want        store.Client
	}{
		{"lower ad", store.Client{Ad: 10, Random: 3}, store.Client{Ad: 5, Random: 3}, store.Client{Ad: 10, Random: 3}},
		{"lower random", store.Client{Ad: 10, Random: 8}, store.Client{Ad: 10, Random: 2}, store.Client{Ad: 10, Random: 8}},
		{"one up one down", store.Client{Ad: 10, Random: 3}, store.Client{Ad: 5, Random: 8}, store.Client{Ad: 10, Random: 8}},
		{"both up", store.Client{Ad: 1, Random: 1}, store.Client{Ad: 2, Random: 2}, store.Client{Ad: 2, Random: 2}},
		{"zeros", store.Client{Ad: 4, Random: 4}, store.Client{}, store.Client{Ad: 4, Random: 4}},
	}
	st := open(t, t.TempDir(), store.Retention{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustSave(t, st, tt.name, tt.first)
			mustSave(t, st, tt.name, tt.then)
			got, _, err := st.Client(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if got.Ad != tt.want.Ad || got.Random != tt.want.Random {
				t.Errorf("positions = %d/%d, want %d/%d", got.Ad, got.Random, tt.want.Ad, tt.want.Random)
			}
		})
	}
}

func TestSaveClientConcurrent(t *testing.T) {
	const n = 500
	st := open(t, t.TempDir(), store.Retention{})
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- st.SaveClient(context.Background(), fmt.Sprint("client-", i), store.Client{Ad: uint64(i + 1), Random: uint64(2 * i), Seen: t0})
		}()
		// Many connections of one client, in any order: the highest wins.
		go func() {
			defer wg.Done()
			errs <- st.SaveClient(context.Background(), "shared", store.Client{Ad: uint64(i), Random: uint64(n - i), Seen: t0})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("SaveClient: %v", err)
		}
	}
	st = reopen(t, st, store.Retention{})
	for i := range n {
		id := fmt.Sprint("client-", i)
		c, found, err := st.Client(id)
		if err != nil || !found || c.Ad != uint64(i+1) || c.Random != uint64(2*i) {
			t.Fatalf("Client(%q) = %+v, %v, %v", id, c, found, err)
		}
	}
	if c, _, err := st.Client("shared"); err != nil || c.Ad != n-1 || c.Random != n {
		t.Errorf("Client(shared) = %+v, %v, want Ad %d Random %d", c, err, n-1, n)
	}
}

func TestSaveClientCancelledContext(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Repeated, with a live save in between whose commit would carry a
	// cancelled one that had been staged.
	for i := range 30 {
		err := st.SaveClient(ctx, "c", store.Client{Ad: uint64(i + 1), Seen: t0})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("attempt %d: err = %v, want context.Canceled", i, err)
		}
		mustSave(t, st, "barrier", store.Client{Seen: t0})
		if _, found, err := st.Client("c"); err != nil || found {
			t.Fatalf("attempt %d: a save with a cancelled context landed (found = %v, %v)", i, found, err)
		}
	}
}

func TestUseAfterClose(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	mustSave(t, st, "c", store.Client{Ad: 1, Seen: t0})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveClient(context.Background(), "c", store.Client{Ad: 2}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("SaveClient after Close: err = %v, want ErrClosed", err)
	}
	if _, err := st.Append(wire.KindClassified, "ad", t0); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Append after Close: err = %v, want ErrClosed", err)
	}
	if _, err := st.Prune(t0); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Prune after Close: err = %v, want ErrClosed", err)
	}
	if _, _, err := st.Client("c"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Client after Close: err = %v, want ErrClosed", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Retention{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := st.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
}

// Concurrent Closes once panicked closing a closed channel. The race is
// narrow, hence the barrier and the repetitions.
func TestCloseConcurrent(t *testing.T) {
	dir := t.TempDir()
	for range 200 {
		st, err := store.Open(dir, store.Retention{})
		if err != nil {
			t.Fatal(err)
		}
		var ready, done sync.WaitGroup
		start := make(chan struct{})
		for range 8 {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				ready.Done()
				<-start
				if err := st.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
		}
		ready.Wait()
		close(start)
		done.Wait()
	}
}

// Close waits for writes already submitted: every SaveClient that
// returned nil is on disk.
func TestCloseDuringSaves(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	const n = 100
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = st.SaveClient(context.Background(), fmt.Sprint("c", i), store.Client{Ad: 1, Seen: t0})
		}()
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	st = open(t, filepath.Dir(st.Path()), store.Retention{})
	for i, err := range results {
		_, found, cerr := st.Client(fmt.Sprint("c", i))
		if cerr != nil {
			t.Fatal(cerr)
		}
		switch {
		case err == nil && !found:
			t.Errorf("save %d returned nil but is not on disk", i)
		case err != nil && !errors.Is(err, store.ErrClosed):
			t.Errorf("save %d: err = %v, want nil or ErrClosed", i, err)
		}
	}
}

// StageClient does not wait for the disk: the position is visible at once,
// on disk once its commit is over, and never moves back.
func TestStageClient(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	c1 := st.StageClient("c", store.Client{Ad: 5, Random: 2, Seen: t0})
	st.StageClient("c", store.Client{Ad: 3, Random: 4, Seen: t0.Add(-time.Hour)}) // behind on Ad and Seen
	if c, found, err := st.Client("c"); err != nil || !found || c.Ad != 5 || c.Random != 4 || !c.Seen.Equal(t0) {
		t.Fatalf("Client(c) right after staging = %+v, %v, %v; want Ad 5 Random 4 Seen t0", c, found, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c1.Wait(ctx); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	mustSave(t, st, "barrier", store.Client{Seen: t0})            // every earlier stage is on disk after it
	st.StageClient("c", store.Client{Ad: 1, Random: 1, Seen: t0}) // behind the disk
	st = reopen(t, st, store.Retention{})
	if c, found, err := st.Client("c"); err != nil || !found || c.Ad != 5 || c.Random != 4 || !c.Seen.Equal(t0) {
		t.Errorf("Client(c) after reopen = %+v, %v, %v; want Ad 5 Random 4 Seen t0", c, found, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.StageClient("c", store.Client{Ad: 9}).Wait(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("StageClient after Close: %v, want ErrClosed", err)
	}
}

// A failed commit of staged positions reaches its waiters and the
// OnCommitError handler: a server that does not wait still logs it.
func TestCommitErrorReported(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	reported := make(chan error, 1)
	st.OnCommitError(func(err error) { reported <- err })
	// Longer than bbolt's key limit: the commit fails.
	err := st.SaveClient(context.Background(), strings.Repeat("x", 40000), store.Client{Ad: 1, Seen: t0})
	if err == nil || !strings.Contains(err.Error(), "save client positions") {
		t.Fatalf("SaveClient with an impossible key: %v, want a save error", err)
	}
	select {
	case got := <-reported:
		if got.Error() != err.Error() {
			t.Errorf("the handler got %v, the waiter %v", got, err)
		}
	default:
		t.Error("the OnCommitError handler was not called")
	}
}
