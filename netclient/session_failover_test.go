package netclient_test

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// After its catch-up (its notif answered), what a scripted gateway does
// with a connection.
const (
	gwStay  = "stay"  // serve it until the test ends
	gwAway  = "away"  // say the server is going away, and close
	gwDrop  = "drop"  // close it
	gwShut  = "shut"  // close it before reading anything: cannot connect
	gwToken = "token" // answer the first line with ERR auth required, and close
)

// scriptedGateway is a scripted identifying server, one of several
// "gateways" of one store: it answers hello (epoch feed, latest 0, a new
// client), seen, random?, classified? (no ad), notif and stop_notif, and
// treats its n-th connection (from 1) as plan says (its last entry for
// the rest). It sends its name to tried on every connection.
func scriptedGateway(t *testing.T, name string, tried chan<- string, plan ...string) string {
	t.Helper()
	conns := make(chan int, 100)
	for i := 1; i <= cap(conns); i++ {
		conns <- i
	}
	return linetest.Serve(t, func(nc net.Conn) {
		defer nc.Close()
		n := <-conns
		tried <- name
		what := plan[min(n, len(plan))-1]
		switch what {
		case gwShut:
			return
		case gwToken:
			linetest.Farewell(nc, wire.ErrAuthRequired)
			return
		}
		br := bufio.NewReader(nc)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			var reply string
			switch l = strings.TrimRight(l, "\r\n"); {
			case strings.HasPrefix(l, "hello "):
				reply = "OK hello epoch=feed latest=0 client=new"
			case l == "random?":
				reply = "1 7"
			case l == "classified?":
				reply = ""
			default: // notif, stop_notif, seen
				reply = "OK"
			}
			if _, err := nc.Write([]byte(reply + "\r\n")); err != nil {
				return
			}
			if l != "notif" {
				continue
			}
			switch what {
			case gwAway:
				linetest.Farewell(nc, wire.ErrGoingAway)
				return
			case gwDrop:
				return
			}
		}
	})
}

func expectTried(t *testing.T, tried <-chan string, want ...string) {
	t.Helper()
	for i, w := range want {
		if got := await(t, tried, fmt.Sprintf("try %d (%s)", i+1, w)); got != w {
			t.Fatalf("try %d went to %s, want %s (all: %q)", i+1, got, w, want)
		}
	}
}

// A server going away sends its client to the next address at once:
// with a backoff of an hour, the session is connected to the next one
// without waiting it.
func TestSessionGoingAwayMovesAtOnce(t *testing.T) {
	tried := make(chan string, 100)
	a := scriptedGateway(t, "a", tried, gwAway, gwStay)
	b := scriptedGateway(t, "b", tried, gwStay)
	r := startSession(t, netclient.SessionOptions{Addr: a + "," + b, ClientID: "gw-1", MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if st := awaitState(t, r.connected, "connect to a"); st.Addr != a {
		t.Fatalf("connected to %s, want the first address %s", st.Addr, a)
	}
	st := awaitDown(t, r, "a going away")
	if !errors.Is(st.Err, netclient.ErrServerGoingAway) || st.Addr != a || st.RetryIn != 0 {
		t.Fatalf("a went away: %+v; want ErrServerGoingAway from %s and the next try at once", st, a)
	}
	if st := awaitState(t, r.connected, "connect to b"); st.Addr != b {
		t.Fatalf("connected to %s, want %s", st.Addr, b)
	}
	expectTried(t, tried, "a", "b")
}

// A gone address is tried only when every other one has failed since,
// and is not gone once it works again. a goes away; b cannot be reached;
// c works, then drops. Next comes b, not a, which follows c in the list
// but is gone; b fails again, and only then a.
func TestSessionComesBackToAGoneAddressLast(t *testing.T) {
	tried := make(chan string, 100)
	a := scriptedGateway(t, "a", tried, gwAway, gwStay)
	b := scriptedGateway(t, "b", tried, gwShut)
	c := scriptedGateway(t, "c", tried, gwDrop, gwStay)
	r := startSession(t, netclient.SessionOptions{Addr: strings.Join([]string{a, b, c}, ","), ClientID: "gw-2", MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	for _, want := range []string{a, c, a} {
		if st := awaitState(t, r.connected, "connect to "+want); st.Addr != want {
			t.Fatalf("connected to %s, want %s", st.Addr, want)
		}
	}
	expectTried(t, tried, "a", "b", "c", "b", "a")
}

// A failure only a setting can fix (here a token the server wants) moves
// to the next address at once, since gateways may differ; the long
// ConfigRetry comes only when every address failed that way.
func TestSessionConfigFailureTriesTheNextAddress(t *testing.T) {
	t.Run("the next works", func(t *testing.T) {
		tried := make(chan string, 100)
		a := scriptedGateway(t, "a", tried, gwToken)
		b := scriptedGateway(t, "b", tried, gwStay)
		r := startSession(t, netclient.SessionOptions{Addr: a + "," + b, ClientID: "gw-3", ConfigRetry: time.Hour})
		if st := awaitDown(t, r, "a's refusal"); !errors.Is(st.Err, netclient.ErrAuthRequired) || st.RetryIn != 0 {
			t.Fatalf("a: %+v; want ErrAuthRequired and the next address at once", st)
		}
		if st := awaitState(t, r.connected, "connect to b"); st.Addr != b {
			t.Fatalf("connected to %s, want %s", st.Addr, b)
		}
	})
	t.Run("none works", func(t *testing.T) {
		tried := make(chan string, 100)
		a := scriptedGateway(t, "a", tried, gwToken)
		b := scriptedGateway(t, "b", tried, gwToken)
		r := startSession(t, netclient.SessionOptions{Addr: a + "," + b, ClientID: "gw-4", ConfigRetry: time.Hour})
		if st := awaitDown(t, r, "a's refusal"); st.Addr != a || st.RetryIn != 0 {
			t.Fatalf("a: %+v; want the next address at once", st)
		}
		if st := awaitDown(t, r, "b's refusal"); st.Addr != b || st.RetryIn != time.Hour || !errors.Is(st.Err, netclient.ErrAuthRequired) {
			t.Fatalf("b: %+v; want ErrAuthRequired and ConfigRetry (1h) before the next round", st)
		}
	})
}

// Addresses that cannot be reached: the next is tried at once while the
// round has one that has not failed; then the backoff, as for one
// address. Each move is logged once at info level, its repeats counted.
func TestSessionBacksOffAfterARound(t *testing.T) {
	a, b := linetest.ClosedAddr(t), linetest.ClosedAddr(t)
	r := startSession(t, netclient.SessionOptions{Addr: a + "," + b, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if st := awaitDown(t, r, "a"); st.Addr != a || st.RetryIn != 0 {
		t.Fatalf("a: %+v; want b tried at once", st)
	}
	if st := awaitDown(t, r, "b"); st.Addr != b || st.RetryIn < 30*time.Minute || st.RetryIn > time.Hour {
		t.Fatalf("b: %+v; want the backoff (30m to 1h, jittered) before the next round", st)
	}

	logs := &levelLog{}
	r = startSession(t, netclient.SessionOptions{Addr: a + "," + b, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Logger: slog.New(logs)})
	for i := range 10 {
		awaitDown(t, r, fmt.Sprintf("failure %d", i+1))
	}
	r.stop()
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, to := range []string{a, b} {
		loud, counted := 0, 0
		for _, rec := range logs.recs {
			switch {
			case rec.Message == "failing over to "+to && rec.Level == slog.LevelInfo:
				loud++
			case strings.HasPrefix(rec.Message, "failing over to "+to+" (… ") && strings.Contains(rec.Message, " more in the last "):
				counted++
			}
		}
		if loud != 1 || counted != 1 {
			t.Errorf("failing over to %s: logged %d times, its repeats counted in %d lines; want once, then counted once", to, loud, counted)
		}
	}
}

// Two gateways of one store: two proxies in front of one real server.
// The first is cut right after it forwarded an ad, so that ad's
// acknowledgement never reaches the server; the session fails over to
// the second and shows every ad exactly once, in order: the marks of the
// list hold across its gateways, which tell the same epoch.
func TestSessionFailsOverAcrossGatewaysExactlyOnce(t *testing.T) {
	s := realServer(t, server.Config{})
	p1 := linetest.NewProxy(t, s.Addr().String())
	p1.CutAfter = " A5"
	p1.Start()
	p2 := linetest.NewProxy(t, s.Addr().String()).Start()
	r := startSession(t, netclient.SessionOptions{Addr: p1.Addr() + "," + p2.Addr(), ClientID: "gw-5", MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if st := awaitState(t, r.connected, "connect through p1"); st.Addr != p1.Addr() {
		t.Fatalf("connected to %s, want %s", st.Addr, p1.Addr())
	}
	publishAds(t, s, 1, 5)
	waitSignal(t, p1.Held(), "p1 to cut after A5")
	publishAds(t, s, 6, 10) // most likely while the session fails over
	if st := awaitState(t, r.connected, "fail over to p2"); st.Addr != p2.Addr() {
		t.Fatalf("connected to %s, want %s", st.Addr, p2.Addr())
	}
	publishAds(t, s, 11, 15)
	// Every news item must be one of the ads: the latest number, which p2
	// offers again in the catch-up, is a repeat, and an ad offered again
	// is one too.
	var ads []string
	for len(ads) < 15 {
		d := await(t, r.got, fmt.Sprintf("ad %d", len(ads)+1))
		if d.Current {
			continue
		}
		if d.Kind != wire.KindClassified {
			t.Fatalf("%+v handed over as news: the failover repeated it", d)
		}
		ads = append(ads, d.Value)
	}
	checkAds(t, ads, 1, 15)
}

// Gateways of different stores (here two servers, each with its own):
// the failover is an epoch change, as for a wiped store. Every ad
// published on the second is shown once, though its ids are below those
// seen on the first, and the change is said once.
func TestSessionFailsOverToAnotherEpoch(t *testing.T) {
	s1 := realServer(t, server.Config{})
	s2 := realServer(t, server.Config{})
	logs := &logLines{}
	r := startSession(t, netclient.SessionOptions{Addr: s1.Addr().String() + "," + s2.Addr().String(), ClientID: "gw-6",
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, Logger: slog.New(logs)})
	if st := awaitState(t, r.connected, "connect to s1"); st.Addr != s1.Addr().String() {
		t.Fatalf("connected to %s, want s1 %s", st.Addr, s1.Addr())
	}
	publishAds(t, s1, 1, 5)
	checkAds(t, collectAds(t, r.got, 5), 1, 5)
	stopReal(t, s1)
	if st := awaitState(t, r.connected, "fail over to s2"); st.Addr != s2.Addr().String() {
		t.Fatalf("connected to %s, want s2 %s", st.Addr, s2.Addr())
	}
	publishAds(t, s2, 6, 8)
	checkAds(t, collectAds(t, r.got, 3), 6, 8)
	if n := logs.count("earlier marks no longer apply"); n != 1 {
		t.Fatalf("the other epoch was logged %d times, want once", n)
	}
}

// A client that used one gateway alone and is then given the list keeps
// its marks: the list takes over those of its address, and a restarted
// client repeats nothing.
func TestListTakesOverTheMarksOfItsAddress(t *testing.T) {
	s := realServer(t, server.Config{})
	p := linetest.NewProxy(t, s.Addr().String()).Start()
	state := t.TempDir()
	run := func(addr, publish string) (news []netclient.Delivery) {
		idt, err := netclient.OpenIdentity(state)
		if err != nil {
			t.Fatal(err)
		}
		defer idt.Close()
		r := startSession(t, netclient.SessionOptions{Addr: addr, Identity: idt})
		defer r.stop()
		waitSignal(t, r.up, "connect")
		pub(t, s, wire.KindClassified, publish)
		// Everything up to the new ad, which comes last.
		for d := await(t, r.got, publish); ; d = await(t, r.got, publish) {
			if !d.Current {
				news = append(news, d)
			}
			if d.Value == publish {
				return news
			}
		}
	}
	run(s.Addr().String(), "first")
	if second := run(p.Addr()+","+s.Addr().String(), "second"); len(second) != 1 || second[0].Value != "second" {
		t.Fatalf("given the list, the client handed over as news %+v; want only the new ad", second)
	}
}
