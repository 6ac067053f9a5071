package netclient_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// The store is wiped under a running client and the server restarted on
// the same address: ids start again at 1, under a new epoch. The client
// voids its marks (saying so once) and shows every new ad exactly once.
// It used to drop them all until the new ids passed the old ones.
func TestSessionSurvivesAWipedStore(t *testing.T) {
	dir := t.TempDir()
	s1 := realServer(t, server.Config{DataDir: dir})
	addr := s1.Addr().String()
	idt, err := netclient.OpenIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idt.Close()
	logs := &logLines{}
	r := startSession(t, netclient.SessionOptions{Addr: addr, Identity: idt, MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: slog.New(logs)})
	awaitState(t, r.connected, "connect")
	publishAds(t, s1, 1, 10)
	checkAds(t, collectAds(t, r.got, 10), 1, 10)

	stopReal(t, s1)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s2 := realServer(t, server.Config{DataDir: dir, Listen: addr})
	awaitState(t, r.connected, "reconnect to the wiped server")
	publishAds(t, s2, 11, 15)
	checkAds(t, collectAds(t, r.got, 5), 11, 15)
	if n := logs.count("earlier marks no longer apply"); n != 1 {
		t.Fatalf("the new epoch was logged %d times, want once", n)
	}
}

// A store restored from a backup keeps its epoch but hands out again ids
// the client has seen, for other items: a latest id below the marks voids
// them too.
func TestSessionSurvivesARestoredStore(t *testing.T) {
	dir := t.TempDir()
	s1 := realServer(t, server.Config{DataDir: dir})
	addr := s1.Addr().String()
	publishAds(t, s1, 1, 2)
	// A backup, taken while the server runs (bbolt's file is consistent
	// at every commit; the test copies it between publishes).
	backup := copyFile(t, s1.StorePath())

	r := startSession(t, netclient.SessionOptions{Addr: addr, ClientID: "restored", MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	awaitState(t, r.connected, "connect")
	publishAds(t, s1, 3, 8)
	checkAds(t, collectAds(t, r.got, 6), 3, 8)

	stopReal(t, s1)
	restore(t, backup, s1.StorePath())
	s2 := realServer(t, server.Config{DataDir: dir, Listen: addr})
	awaitState(t, r.connected, "reconnect to the restored server")
	publishAds(t, s2, 9, 12) // ids 3, 4, … again: below the client's marks
	checkAds(t, collectAds(t, r.got, 4), 9, 12)
}

func copyFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func restore(t *testing.T, b []byte, path string) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// First contact is not news: what the server held before this client
// identified for the first time (its first random number, its ads) comes
// as current, for a menu, and only what is published after as news.
func TestSessionFirstContactIsNotNews(t *testing.T) {
	s := realServer(t, server.Config{})
	publishAds(t, s, 1, 3)
	idt, err := netclient.OpenIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idt.Close()
	r := startSession(t, netclient.SessionOptions{Addr: s.Addr().String(), Identity: idt})
	var current []netclient.Delivery
	for range 2 {
		select {
		case d := <-r.got:
			current = append(current, d)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %+v on first contact; want the latest number and ad", current)
		}
	}
	for _, d := range current {
		if !d.Current || d.Kind == wire.KindClassified && d.Value != "A3" {
			t.Fatalf("first contact handed over %+v; want the number and A3, as current", current)
		}
	}
	awaitState(t, r.connected, "connect")
	publishAds(t, s, 4, 4)
	if d := awaitValue(t, r.got, "A4"); d.Current {
		t.Fatalf("A4, published after first contact, came as %+v", d)
	}
	// Restarted, the client is known: A4 is not repeated, not even as
	// current (it is no longer the first contact), and A5 is news.
	r.stop()
	r = startSession(t, netclient.SessionOptions{Addr: s.Addr().String(), Identity: idt})
	awaitState(t, r.connected, "reconnect")
	publishAds(t, s, 5, 5)
	for d := range r.got {
		if d.Value == "A5" {
			break
		}
		if !d.Current {
			t.Fatalf("after a restart, %+v came as news", d)
		}
	}
}

// A client id file from before marks per server ("seen <ad> <random>"):
// its marks are kept for a server that knows the client and has handed
// out every id in them, so an item delivered but not acknowledged then is
// not shown again.
func TestSessionAdoptsMarksFromBeforeEpochs(t *testing.T) {
	s := realServer(t, server.Config{})
	c := linetest.Dial(t, s.Addr().String())
	c.Identify("legacy-1")
	a1 := pub(t, s, wire.KindClassified, "A1")
	a2 := pub(t, s, wire.KindClassified, "A2")
	c.Send("classified?", "classified?", fmt.Sprintf("seen %d", a1)) // A2 reached the client, its ack did not
	c.Expect(fmt.Sprintf("%d A1", a1), fmt.Sprintf("%d A2", a2), "OK")
	c.NC.Close()

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client-id"), fmt.Appendf(nil, "legacy-1\nseen %d 0\n", a2), 0o600); err != nil {
		t.Fatal(err)
	}
	idt, err := netclient.OpenIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer idt.Close()
	r := startSession(t, netclient.SessionOptions{Addr: s.Addr().String(), Identity: idt})
	awaitState(t, r.connected, "connect")
	a3 := pub(t, s, wire.KindClassified, "A3")
	for d := range r.got {
		if d.Value == "A3" {
			break
		}
		if d.Value == "A2" && !d.Current {
			t.Fatalf("A2, delivered before the upgrade, shown again as news: %+v", d)
		}
	}
	// The session marks an item once the user has taken it, so A3's mark
	// is certain only once the next item has come.
	pub(t, s, wire.KindClassified, "A4")
	awaitValue(t, r.got, "A4")
	if m, ok := idt.Marks(s.Addr().String()); !ok || m.Epoch == "" || m.Ad < a3 {
		t.Fatalf("marks after the first contact: %+v, %v; want this server's epoch and A3 (%d) at least", m, ok, a3)
	}
}
