package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/jetstream"
	"github.com/harkapp/hark/store/storetest"
	"github.com/harkapp/hark/wire"
)

// hark serve can take it.
var _ server.Store = (*jetstream.Store)(nil)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// The JetStream store meets the contract every store of hark serve meets.
func TestConformance(t *testing.T) {
	storetest.Run(t, opener(startNATS(t)))
}

// Two handles on one stream behave as one store: gateways share it.
func TestShared(t *testing.T) {
	storetest.RunShared(t, opener(startNATS(t)))
}

func appendAd(t *testing.T, st *jetstream.Store, value string) store.Item {
	t.Helper()
	it, _, err := st.AppendKeyed(wire.KindClassified, value, t0, "", [32]byte{})
	if err != nil {
		t.Fatalf("append %q: %v", value, err)
	}
	return it
}

// unavailableWithin is how promptly a handle that lost NATS says so: a
// disconnected handle fails at once; opTimeout (3 s) bounds a request
// that goes unanswered.
const unavailableWithin = 4 * time.Second

// NATS goes away and comes back (same storage, same port): meanwhile
// publishing fails promptly with ErrUnavailable and so do reads of
// positions; afterwards appends work again, OnAppend goes on with no item
// repeated or missed, the epoch is the same, and each change of state was
// logged once.
func TestOutage(t *testing.T) {
	ns := startNATS(t)
	logs := newLogWatch()
	st := openStore(t, ns, "OUTAGE", store.Retention{}, logs.logger())
	defer st.Close()
	rec := storetest.Follow(st)
	epoch := st.Epoch()
	var want []uint64
	for i := range 3 {
		want = append(want, appendAd(t, st, fmt.Sprint("before ", i)).ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := st.StageClient("c1", store.Client{Ad: want[2], Seen: t0}).Wait(ctx); err != nil {
		t.Fatal(err)
	}

	ns.Stop()
	logs.await(t, "disconnected", 1)
	for i := range 3 {
		start := time.Now()
		_, _, err := st.AppendKeyed(wire.KindClassified, fmt.Sprint("during ", i), t0, "", [32]byte{})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("append during the outage: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > unavailableWithin {
			t.Errorf("append during the outage failed after %v, want within %v", d, unavailableWithin)
		}
	}
	if _, _, err := st.Client("c1"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("reading a position during the outage: %v, want ErrUnavailable", err)
	}

	ns.Start()
	logs.await(t, "reconnected", 1)
	for i := range 3 {
		want = append(want, appendAd(t, st, fmt.Sprint("after ", i)).ID)
	}
	if got := storetest.IDs(rec.Await(t, len(want))); !slices.Equal(got, want) {
		t.Errorf("OnAppend told of %v, want %v: each item once, none of the failed ones", got, want)
	}
	if c, found, err := st.Client("c1"); err != nil || !found || c.Ad != want[2] {
		t.Errorf("c1 after the outage: %+v, %v, %v", c, found, err)
	}
	if st.Epoch() != epoch {
		t.Errorf("epoch %q after the outage, was %q", st.Epoch(), epoch)
	}
	again := openStore(t, ns, "OUTAGE", store.Retention{}, nil)
	defer again.Close()
	if again.Epoch() != epoch {
		t.Errorf("epoch %q reopened after the outage, was %q", again.Epoch(), epoch)
	}
	if ads, _ := again.Items(); !slices.Equal(ids(ads), want) {
		t.Errorf("ads after the outage %v, want %v", ids(ads), want)
	}
	if n := logs.count("disconnected"); n != 1 {
		t.Errorf("%d lines said disconnected, want 1", n)
	}
	if n := logs.count("reconnected"); n != 1 {
		t.Errorf("%d lines said reconnected, want 1", n)
	}
}

// Close during an outage ends promptly: a staged position's commit fails
// (it is not lost silently) and no goroutine outlives the handle (goleak,
// in TestMain).
func TestCloseDuringOutage(t *testing.T) {
	ns := startNATS(t)
	logs := newLogWatch()
	st := openStore(t, ns, "CLOSE", store.Retention{}, logs.logger())
	appendAd(t, st, "one")
	ns.Stop()
	logs.await(t, "disconnected", 1)
	commit := st.StageClient("c1", store.Client{Ad: 1, Seen: t0})
	start := time.Now()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > unavailableWithin {
		t.Errorf("Close took %v during an outage, want within %v", d, unavailableWithin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := commit.Wait(ctx); err == nil {
		t.Error("a position staged during the outage: its commit succeeded")
	}
	if _, _, err := st.AppendKeyed(wire.KindClassified, "late", t0, "", [32]byte{}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("append after Close: %v, want ErrClosed", err)
	}
}

func ids(items []store.Item) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

// Open says ErrUnavailable when there is no NATS to reach.
func TestOpenUnreachable(t *testing.T) {
	ns := startNATS(t)
	url := ns.URL
	ns.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := jetstream.Open(ctx, jetstream.Options{URLs: url, Prefix: "GONE"})
	if !errors.Is(err, store.ErrUnavailable) {
		if st != nil {
			st.Close()
		}
		t.Fatalf("open with no NATS: %v, want ErrUnavailable", err)
	}
}

// Strangers cannot fill the bucket: past Retention.Clients a new id is
// refused (not an error), and the stored ones still move.
func TestClientLimit(t *testing.T) {
	ns := startNATS(t)
	st := openStore(t, ns, "LIMIT", store.Retention{Clients: 2}, nil)
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, id := range []string{"a", "b", "c"} {
		if err := st.StageClient(id, store.Client{Ad: 1, Seen: t0}).Wait(ctx); err != nil {
			t.Fatalf("stage %s: %v", id, err)
		}
	}
	if _, found, err := st.Client("c"); found || err != nil {
		t.Errorf("a third id past a bound of 2: found %v, %v", found, err)
	}
	if n := st.Clients(); n != 2 {
		t.Errorf("%d clients, want 2", n)
	}
	if err := st.StageClient("a", store.Client{Ad: 9, Seen: t0}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _, err := st.Client("a"); err != nil || c.Ad != 9 {
		t.Errorf("a stored id at the bound: %+v, %v; want ad 9", c, err)
	}
}

// A store whose items stream was created again (its sequence restarts)
// gets a new epoch, so that clients do not take new ids for old ones.
func TestEpochRotatesWithTheStream(t *testing.T) {
	ns := startNATS(t)
	st := openStore(t, ns, "ROTATE", store.Retention{}, nil)
	first := st.Epoch()
	appendAd(t, st, "one")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	js := ns.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := js.DeleteStream(ctx, "ROTATE_ITEMS"); err != nil {
		t.Fatal(err)
	}
	again := openStore(t, ns, "ROTATE", store.Retention{}, nil)
	defer again.Close()
	if again.Epoch() == first {
		t.Errorf("epoch %q kept over a new stream", first)
	}
	if ads, _ := again.Items(); len(ads) != 0 {
		t.Errorf("ads %v in a new stream", ads)
	}
	third := openStore(t, ns, "ROTATE", store.Retention{}, nil)
	defer third.Close()
	if third.Epoch() != again.Epoch() {
		t.Errorf("epoch %q, then %q, with no new stream between", again.Epoch(), third.Epoch())
	}
}

// Values and keys the bbolt store refuses, this one refuses alike.
func TestRefusesBadKeys(t *testing.T) {
	ns := startNATS(t)
	st := openStore(t, ns, "KEYS", store.Retention{}, nil)
	defer st.Close()
	long := string(make([]byte, store.MaxKeyBytes+1))
	if _, _, err := st.AppendKeyed(wire.KindClassified, "ad", t0, long, [32]byte{}); !errors.Is(err, wire.ErrInvalid) {
		t.Errorf("a key of %d bytes: %v, want wire.ErrInvalid", len(long), err)
	}
	// Any bytes a key may hold (a header could not): it is hashed.
	odd := "a\r\nb: c\x00"
	first, _, err := st.AppendKeyed(wire.KindClassified, "ad", t0, odd, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if again, replayed, err := st.AppendKeyed(wire.KindClassified, "ad", t0, odd, [32]byte{1}); err != nil || !replayed || again.ID != first.ID {
		t.Errorf("the odd key again: %v, %v, %v", again, replayed, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := st.StageClient("", store.Client{}).Wait(ctx); !errors.Is(err, wire.ErrInvalid) {
		t.Errorf("an empty client id: %v, want wire.ErrInvalid", err)
	}
	if err := st.StageClient("x", store.Client{Source: string(make([]byte, store.MaxSourceBytes+1))}).Wait(ctx); !errors.Is(err, wire.ErrInvalid) {
		t.Errorf("a long source: %v, want wire.ErrInvalid", err)
	}
	// Client ids are any printable ASCII, which the bucket's keys are not.
	if err := st.StageClient("a b/c.*>", store.Client{Ad: 3, Seen: t0}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if c, found, err := st.Client("a b/c.*>"); err != nil || !found || c.Ad != 3 {
		t.Errorf("an id with spaces and wildcards: %+v, %v, %v", c, found, err)
	}
}

// BenchmarkAppend is the latency of one append on a loopback single node,
// until its own OnAppend was told.
func BenchmarkAppend(b *testing.B) {
	ns := startNATS(b)
	st := openStore(b, ns, "BENCH", store.Retention{}, nil)
	defer st.Close()
	st.OnAppend(func(store.Appended) {})
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := st.AppendKeyed(wire.KindRandom, fmt.Sprint(i), t0, "", [32]byte{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSavePosition is the latency of one client's position on a
// loopback single node (read, compare-and-set write).
func BenchmarkSavePosition(b *testing.B) {
	ns := startNATS(b)
	st := openStore(b, ns, "BENCHPOS", store.Retention{}, nil)
	defer st.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if err := st.StageClient("c1", store.Client{Ad: uint64(i + 1), Seen: t0}).Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// A position acknowledged while NATS is away is not dropped: it is kept
// and written once NATS is back, where another gateway reads it (else
// that gateway would offer the client what it has already read).
func TestPositionStagedDuringAnOutageIsWrittenAfter(t *testing.T) {
	ns := startNATS(t)
	logs := newLogWatch()
	a := openStore(t, ns, "KEPT", store.Retention{}, logs.logger())
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	ns.Stop()
	logs.await(t, "disconnected", 1)
	if err := a.StageClient("c1", store.Client{Ad: 7, Seen: t0}).Wait(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a position staged during the outage: %v, want ErrUnavailable", err)
	}
	ns.Start()
	logs.await(t, "reconnected", 1)
	b := openStore(t, ns, "KEPT", store.Retention{}, nil)
	defer b.Close()
	deadline := time.Now().Add(testTimeout)
	for {
		c, found, err := b.Client("c1")
		if err == nil && found && c.Ad == 7 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("another handle reads c1 as %+v, found %v, %v: the position staged during the outage was lost", c, found, err)
		}
		time.Sleep(50 * time.Millisecond) // the retry's own pace (reconnectWait)
	}
}

// One source establishes at most ClientsPerSource ids through a gateway;
// another source, and a stored id of the full one, are not held back.
func TestClientsPerSource(t *testing.T) {
	ns := startNATS(t)
	st := openStore(t, ns, "PERSRC", store.Retention{ClientsPerSource: 2}, nil)
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	stage := func(id, src string, ad uint64) {
		t.Helper()
		if err := st.StageClient(id, store.Client{Ad: ad, Seen: t0, Source: src}).Wait(ctx); err != nil {
			t.Fatalf("stage %s: %v", id, err)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		stage(id, "203.0.113.0/24", 1)
	}
	stage("d", "198.51.100.0/24", 1)
	for id, want := range map[string]bool{"a": true, "b": true, "c": false, "d": true} {
		if _, found, err := st.Client(id); found != want || err != nil {
			t.Errorf("client %s: found %v (%v), want %v", id, found, err, want)
		}
	}
	stage("a", "203.0.113.0/24", 9)
	if c, _, err := st.Client("a"); err != nil || c.Ad != 9 {
		t.Errorf("a stored id of a full source: %+v, %v; want ad 9", c, err)
	}
}
