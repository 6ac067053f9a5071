package netclient_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// realServer runs hark serve in process on loopback.
func realServer(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	s, err := server.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopReal(t, s) })
	return s
}

func stopReal(t *testing.T, s *server.Server) {
	t.Helper()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func pub(t *testing.T, s *server.Server, kind wire.Kind, v string) uint64 {
	t.Helper()
	it, _, err := s.Publish(context.Background(), kind, v)
	if err != nil {
		t.Fatal(err)
	}
	return it.ID
}

// running is a session run until the test ends, its events sorted into
// channels a test can wait on.
type running struct {
	sess      *netclient.Session
	got       chan netclient.Delivery // every item, news or current
	connected chan netclient.State    // each connection
	up        chan struct{}           // each connection too
	down      chan netclient.State    // each disconnection
	stop      func()                  // ends the session and waits for it; also run at cleanup
}

// startSession runs a session until the test ends, reading its events
// as a user would.
func startSession(t *testing.T, opts netclient.SessionOptions) *running {
	t.Helper()
	r := &running{
		sess:      netclient.NewSession(opts),
		got:       make(chan netclient.Delivery, 1000),
		connected: make(chan netclient.State, 100),
		up:        make(chan struct{}, 100),
		down:      make(chan netclient.State, 100),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.sess.Run(ctx) }()
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for ev := range r.sess.Events() {
			switch {
			case ev.Item != nil:
				r.got <- *ev.Item
			case ev.State.Connected:
				r.connected <- *ev.State
				r.up <- struct{}{}
			default:
				select {
				case r.down <- *ev.State:
				default: // nobody counts them
				}
			}
		}
	}()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			<-consumed
		})
	}
	t.Cleanup(r.stop)
	return r
}

// runSession is startSession for tests that need only the session, its
// items and a signal per connection.
func runSession(t *testing.T, opts netclient.SessionOptions) (*netclient.Session, <-chan netclient.Delivery, <-chan struct{}) {
	t.Helper()
	r := startSession(t, opts)
	return r.sess, r.got, r.up
}

// awaitValue skips deliveries until one with value arrives, and returns it.
func awaitValue(t *testing.T, got <-chan netclient.Delivery, value string) netclient.Delivery {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case d := <-got:
			if d.Value == value {
				return d
			}
		case <-timeout:
			t.Fatalf("%q never delivered", value)
		}
	}
}

func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// collectAds reads deliveries until want ads have arrived and returns
// their values in delivery order, failing on a duplicate id.
func collectAds(t *testing.T, got <-chan netclient.Delivery, want int) []string {
	t.Helper()
	var ads []string
	seen := map[uint64]bool{}
	timeout := time.After(15 * time.Second)
	for len(ads) < want {
		select {
		case d := <-got:
			if d.Current {
				continue // not news: what the server held before
			}
			if d.ID != 0 && seen[d.ID] {
				t.Fatalf("item %d (%q) delivered twice", d.ID, d.Value)
			}
			seen[d.ID] = true
			if d.Kind == wire.KindClassified {
				ads = append(ads, d.Value)
			}
		case <-timeout:
			t.Fatalf("got %d ads of %d: %q", len(ads), want, ads)
		}
	}
	return ads
}

func checkAds(t *testing.T, got []string, from, to int) {
	t.Helper()
	if len(got) != to-from+1 {
		t.Fatalf("got %d ads, want %d: %q", len(got), to-from+1, got)
	}
	for i, v := range got {
		if want := fmt.Sprintf("A%d", from+i); v != want {
			t.Fatalf("ad %d is %q, want %q (all: %q)", i, v, want, got)
		}
	}
}

func TestSessionDeliversEachItemOnceInOrder(t *testing.T) {
	s := realServer(t, server.Config{})
	_, got, connected := runSession(t, netclient.SessionOptions{Addr: s.Addr().String(), ClientID: "tray-1"})
	waitSignal(t, connected, "the session to connect")
	for i := 1; i <= 40; i++ {
		pub(t, s, wire.KindClassified, fmt.Sprintf("A%d", i))
		if i%10 == 0 {
			pub(t, s, wire.KindRandom, fmt.Sprint(i))
		}
	}
	checkAds(t, collectAds(t, got, 40), 1, 40)
}

// TestSessionSurvivesServerRestart: the server goes away while ads are
// being published and comes back on the same store; the session
// reconnects, identifies itself and delivers every ad exactly once.
func TestSessionSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	s1 := realServer(t, server.Config{DataDir: dir})
	addr := s1.Addr().String()
	_, got, connected := runSession(t, netclient.SessionOptions{
		Addr: addr, ClientID: "tray-2", MinBackoff: 300 * time.Millisecond, MaxBackoff: time.Second,
	})
	waitSignal(t, connected, "the session to connect")
	for i := 1; i <= 5; i++ {
		pub(t, s1, wire.KindClassified, fmt.Sprintf("A%d", i))
	}
	stopReal(t, s1)
	s2 := realServer(t, server.Config{DataDir: dir, Listen: addr})
	for i := 6; i <= 10; i++ { // most likely while the session waits to retry
		pub(t, s2, wire.KindClassified, fmt.Sprintf("A%d", i))
	}
	waitSignal(t, connected, "the session to reconnect")
	for i := 11; i <= 15; i++ {
		pub(t, s2, wire.KindClassified, fmt.Sprintf("A%d", i))
	}
	checkAds(t, collectAds(t, got, 15), 1, 15)
}

// TestSessionRefreshBeatsIdleTimeout: with a 1 s server idle timeout and a
// shorter refresh, notifications keep coming across several timeouts.
func TestSessionRefreshBeatsIdleTimeout(t *testing.T) {
	s := realServer(t, server.Config{IdleTimeout: time.Second})
	_, got, connected := runSession(t, netclient.SessionOptions{Addr: s.Addr().String(), Refresh: 300 * time.Millisecond})
	waitSignal(t, connected, "the session to connect")
	pub(t, s, wire.KindClassified, "A1")
	checkAds(t, collectAds(t, got, 1), 1, 1)
	time.Sleep(3 * time.Second) // three idle timeouts pass: the behaviour under test
	if _, n, err := s.Publish(context.Background(), wire.KindClassified, "A2"); err != nil || n != 1 {
		t.Fatalf("publish after 3 idle timeouts: notified %d connections, %v; want 1", n, err)
	}
	checkAds(t, collectAds(t, got, 1), 2, 2)
}

func TestIdentityIsKeptAndExclusive(t *testing.T) {
	dir := t.TempDir()
	a, err := netclient.OpenIdentity(dir)
	if err != nil || wire.ValidateClientID(a.ID()) != nil {
		t.Fatalf("OpenIdentity = %v; id %q", err, a.ID())
	}
	// While the first instance holds its id, a second one gets its own.
	b, err := netclient.OpenIdentity(dir)
	if err != nil || b.ID() == a.ID() || wire.ValidateClientID(b.ID()) != nil {
		t.Fatalf("concurrent OpenIdentity = %v; id %q, want a valid id other than %q", err, b.ID(), a.ID())
	}
	one := netclient.Marks{Epoch: "9f2c41d07a5be310", Ad: 42, Random: 7}
	two := netclient.Marks{Ad: 3, Random: 4} // a server without epochs
	if err := a.SetMarks("one.example:6789", one); err != nil {
		t.Fatal(err)
	}
	if err := a.SetMarks("[::1]:6789", two); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	again, err := netclient.OpenIdentity(dir)
	if err != nil || again.ID() != a.ID() {
		t.Fatalf("OpenIdentity after Close = %v; id %q, want %q", err, again.ID(), a.ID())
	}
	defer again.Close()
	if m, ok := again.Marks("one.example:6789"); !ok || m != one {
		t.Fatalf("Marks(one) = %+v, %v; want %+v", m, ok, one)
	}
	if m, ok := again.Marks("[::1]:6789"); !ok || m != two {
		t.Fatalf("Marks(two) = %+v, %v; want %+v", m, ok, two)
	}
	if m, ok := again.Marks("other:6789"); ok {
		t.Fatalf("Marks(other) = %+v; want none", m)
	}
}

// TestRestartedClientRepeatsNothing: a client restarted with its identity
// hands over as news only what was published since it last ran; the
// latest number and ad come again, once, as current (for a menu).
func TestRestartedClientRepeatsNothing(t *testing.T) {
	s := realServer(t, server.Config{})
	state := t.TempDir()
	run := func(publish string) (news []netclient.Delivery) {
		idt, err := netclient.OpenIdentity(state)
		if err != nil {
			t.Fatal(err)
		}
		defer idt.Close()
		r := startSession(t, netclient.SessionOptions{Addr: s.Addr().String(), Identity: idt})
		defer r.stop()
		waitSignal(t, r.up, "connect")
		pub(t, s, wire.KindClassified, publish)
		for d := awaitValue(t, r.got, publish); ; d = <-r.got {
			if !d.Current {
				news = append(news, d)
			}
			if len(r.got) == 0 {
				break
			}
		}
		return news
	}
	run("first")
	if second := run("second"); len(second) != 1 || second[0].Value != "second" {
		t.Fatalf("the restarted client handed over as news %+v; want only the new ad", second)
	}
}
