package server

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// The store decides what is retained; the server's copy of the items
// follows what each append reports it dropped: a client is offered only
// what the store still has.
func TestServerFollowsTheStoresRetention(t *testing.T) {
	s := startServer(t, Config{Retention: store.Retention{Ads: 2}})
	c := dial(t, s)
	c.Send("hello c1")
	c.Expect("OK")
	var ids []uint64
	for i := range 4 {
		id, _ := publish(t, s, wire.KindClassified, fmt.Sprint("ad ", i))
		ids = append(ids, id)
	}
	c.Send("classified?", "classified?", "classified?")
	c.Expect(fmt.Sprintf("%d ad 2", ids[2]), fmt.Sprintf("%d ad 3", ids[3]), fmt.Sprintf("%d ad 3", ids[3]))
}

// A store handed to Start is the one used, and Shutdown closes it; a
// Start that fails closes it too (Start owns it).
func TestStartUsesTheStoreGiven(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Retention{})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{Store: st})
	if s.Epoch() != st.Epoch() {
		t.Fatalf("epoch %q, the store's is %q", s.Epoch(), st.Epoch())
	}
	id, _ := publish(t, s, wire.KindClassified, "in the store given")
	if ads, _ := st.Items(); len(ads) != 1 || ads[0].ID != id {
		t.Fatalf("the store given holds %v", ads)
	}
	stopServer(t, s)
	if _, err := st.Append(wire.KindClassified, "after", time.Now()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("append after Shutdown: %v, want the store closed", err)
	}

	other, err := store.Open(t.TempDir(), store.Retention{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(Config{Listen: "256.0.0.1:1", DataDir: t.TempDir(), Store: other}); err == nil {
		t.Fatal("Start on a bad address succeeded")
	}
	if _, err := other.Append(wire.KindClassified, "after", time.Now()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("append after a failed Start: %v, want the store closed", err)
	}
}
