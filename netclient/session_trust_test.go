package netclient_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// publishAds publishes A<from>…A<to> on s.
func publishAds(t *testing.T, s *server.Server, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		pub(t, s, wire.KindClassified, fmt.Sprintf("A%d", i))
	}
}

// A server that greets with a banner before it answers: a bare "OK",
// "Welcome!", or a line starting with ERR, in front of a hark server or
// of a version-1 one (which answers hello with ERR unknown command). The
// session shows every ad published while it is connected, in all six.
// Before, against a version-1 server behind an "OK" banner it took the
// banner for hello's reply, then the real ERR for a fatal error, and
// reconnected forever: 0 of 8 ads shown. Lines that cannot be hello's
// reply are strays now; an ERR banner, taken for hello's reply, costs
// two tries, then the session speaks version 1 to the server.
func TestSessionShowsEveryAdBehindABanner(t *testing.T) {
	for _, banner := range []string{"OK", "Welcome!\r\nOK", "ERR greetings from the proxy"} {
		for _, v1 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%q,v1=%v", banner, v1), func(t *testing.T) {
				s := realServer(t, server.Config{})
				p := linetest.NewProxy(t, s.Addr().String())
				p.Banner, p.V1 = banner+"\r\n", v1
				p.Start()
				r := startSession(t, netclient.SessionOptions{Addr: p.Addr(), ClientID: "bannered", MinBackoff: time.Hour})
				st := awaitState(t, r.connected, "connect")
				// Identified when it can be: a hark server, and a banner
				// that cannot be taken for hello's reply.
				if want := !v1 && !strings.HasPrefix(banner, "ERR"); st.Identified != want {
					t.Fatalf("connected %+v, want identified %v", st, want)
				}
				publishAds(t, s, 1, 8)
				checkAds(t, collectAds(t, r.got, 8), 1, 8)
			})
		}
	}
}

// A hello reply slower than the 3 s the session used to allow: the
// session waits for it as for any reply, stays identified, and shows the
// ads published while it was away. (It used to drop that connection to
// version 1, where they were missed.)
func TestSessionWaitsForASlowHello(t *testing.T) {
	t.Parallel()
	s := realServer(t, server.Config{})
	p := linetest.NewProxy(t, s.Addr().String())
	p.FirstDelay = 3500 * time.Millisecond
	p.Start()
	r := startSession(t, netclient.SessionOptions{Addr: p.Addr(), ClientID: "slow-hello", MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if st := awaitState(t, r.connected, "connect"); !st.Identified {
		t.Fatalf("connected unidentified: %+v", st)
	}
	publishAds(t, s, 1, 1)
	checkAds(t, collectAds(t, r.got, 1), 1, 1)
	p.Cut()
	publishAds(t, s, 2, 4) // while it is away, or saying a slow hello
	if st := awaitState(t, r.connected, "reconnect"); !st.Identified {
		t.Fatalf("reconnected unidentified: %+v", st)
	}
	checkAds(t, collectAds(t, r.got, 3), 2, 4)
}

// Ending a session (SIGTERM, Quit) while a fetch cycle waits for a server
// that stopped answering returns at once, not after the reply timeout (it
// used to wait up to 30 s: the batch ran without cancellation).
func TestSessionEndsAtOnceAgainstASilentServer(t *testing.T) {
	addr, cycle := linetest.FrozenServer(t)
	sess := netclient.NewSession(netclient.SessionOptions{Addr: addr, ReplyTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sess.Run(ctx) }()
	go func() {
		for range sess.Events() {
		}
	}()
	waitSignal(t, cycle, "a fetch cycle to be pending")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended: a pending batch held it")
	}
}

// A session stopped while the reply carrying an ad is on its way loses
// nothing: the ad was not acknowledged, so the server offers it again,
// and the next session shows it as news.
func TestSessionStoppedMidBatchLosesNothing(t *testing.T) {
	s := realServer(t, server.Config{})
	state := t.TempDir()
	idt, err := netclient.OpenIdentity(state)
	if err != nil {
		t.Fatal(err)
	}
	p := linetest.NewProxy(t, s.Addr().String())
	p.HoldSuffix = " held ad"
	p.Start()
	r := startSession(t, netclient.SessionOptions{Addr: p.Addr(), Identity: idt, ReplyTimeout: time.Hour})
	awaitState(t, r.connected, "connect")
	pub(t, s, wire.KindClassified, "held ad")
	waitSignal(t, p.Held(), "the reply to be held")
	r.stop()
	idt.Close()

	idt2, err := netclient.OpenIdentity(state)
	if err != nil {
		t.Fatal(err)
	}
	defer idt2.Close()
	r2 := startSession(t, netclient.SessionOptions{Addr: s.Addr().String(), Identity: idt2})
	if d := awaitValue(t, r2.got, "held ad"); d.Current {
		t.Fatalf("the held ad came back as %+v; want it as news", d)
	}
}

// floodServer is a scripted version-1 server that answers the catch-up,
// then floods pushes: n "notif: classified" lines right after the first
// notif's OK. After the flood it publishes one real ad, "fresh ad", with a
// push of its own. It counts the classified? commands it gets, and sends
// that count on quiet at the first refresh (stop_notif, notif, nothing
// fetched) after the flood: the client has nothing left to fetch.
type floodServer struct {
	addr        string
	classifieds atomic.Int64
	quiet       chan int64
}

func startFlood(t *testing.T, n int) *floodServer {
	t.Helper()
	fs := &floodServer{quiet: make(chan int64, 1)}
	flood := []byte(strings.Repeat(wire.NotifClassified+"\r\n", n))
	fs.addr = linetest.Serve(t, func(nc net.Conn) {
		w := bufio.NewWriter(nc)
		br := bufio.NewReader(nc)
		flooded, fetched := false, false
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch strings.TrimSpace(l) {
			case "random?":
				fetched = true
				w.WriteString("7\r\n")
			case "classified?":
				fetched = true
				fs.classifieds.Add(1)
				if flooded {
					w.WriteString("fresh ad\r\n")
				} else {
					w.WriteString("old ad\r\n")
				}
			case "stop_notif":
				fetched = false
				w.WriteString("OK\r\n")
			case "notif":
				if flooded && !fetched {
					select {
					case fs.quiet <- fs.classifieds.Load():
					default:
					}
				}
				fetched = true // until the next stop_notif
				w.WriteString("OK\r\n")
				if !flooded {
					flooded = true
					w.Write(flood)
					w.WriteString(wire.NotifClassified + "\r\n") // the fresh ad's own push
				}
			}
			if br.Buffered() == 0 {
				if w.Flush() != nil {
					return
				}
			}
		}
	})
	return fs
}

// A server that floods pushes: they coalesce into a few fetch cycles,
// however many there are (the client used to fetch once per push: a
// hundred thousand pushes, a hundred thousand classified?), and a real ad
// among them still arrives.
func TestSessionCoalescesAFloodOfPushes(t *testing.T) {
	const n = 100_000
	fs := startFlood(t, n)
	r := startSession(t, netclient.SessionOptions{
		Addr: fs.addr, Refresh: 300 * time.Millisecond,
		// Read the whole flood at full speed: this test is about what the
		// session does with pushes, not about the reader's throttle.
		Conn: netclient.Options{UnsolicitedBurst: 2 * n},
	})
	awaitState(t, r.connected, "connect")
	awaitValue(t, r.got, "fresh ad")
	var got int64
	select {
	case got = <-fs.quiet:
	case <-time.After(30 * time.Second):
		t.Fatalf("the client never went quiet; %d classified? so far for %d pushes", fs.classifieds.Load(), n)
	}
	// Each cycle asks for at most 64 ads; a handful of cycles may run
	// while the flood is read, then the session waits for new pushes.
	if got > 10*64 {
		t.Fatalf("the client sent %d classified? for %d pushes: pushes did not coalesce", got, n)
	}
}

// A client pointed at a second server keeps its marks per server: the
// second server's ids, far below the first's, are news there. (With one
// set of marks for every server, 0 of 5 new ads were shown.)
func TestSessionKeepsMarksPerServer(t *testing.T) {
	a := realServer(t, server.Config{})
	b := realServer(t, server.Config{})
	for i := range 30 {
		pub(t, a, wire.KindRandom, fmt.Sprint(i+1)) // ids on a climb past b's
	}
	idt, err := netclient.OpenIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idt.Close()
	ra := startSession(t, netclient.SessionOptions{Addr: a.Addr().String(), Identity: idt})
	awaitState(t, ra.connected, "connect to a")
	publishAds(t, a, 1, 5)
	checkAds(t, collectAds(t, ra.got, 5), 1, 5)
	ra.stop()

	rb := startSession(t, netclient.SessionOptions{Addr: b.Addr().String(), Identity: idt})
	awaitState(t, rb.connected, "connect to b")
	publishAds(t, b, 6, 10)
	checkAds(t, collectAds(t, rb.got, 5), 6, 10)
}

func awaitState(t *testing.T, ch <-chan netclient.State, what string) netclient.State {
	t.Helper()
	select {
	case st := <-ch:
		return st
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return netclient.State{}
	}
}
