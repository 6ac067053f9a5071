package netclient_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// v1Server is a scripted version-1 server: it answers random? with 7,
// classified? with "v1 ad", notif and stop_notif with OK, and hello as
// told. It counts connections.
type v1Server struct {
	addr     string
	accepted chan struct{}
}

func startV1(t *testing.T, hello string, silentAfter int) *v1Server {
	t.Helper()
	s := &v1Server{accepted: make(chan struct{}, 100)}
	s.addr = linetest.Serve(t, func(nc net.Conn) {
		s.accepted <- struct{}{}
		s.serve(nc, hello, silentAfter)
	})
	return s
}

// serve answers commands; hello gets the reply given ("" for none);
// after silentAfter commands (0: never) it stops answering, like a frozen
// peer whose kernel still acknowledges.
func (s *v1Server) serve(nc net.Conn, hello string, silentAfter int) {
	br := bufio.NewReader(nc)
	for n := 1; ; n++ {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if silentAfter > 0 && n > silentAfter {
			continue
		}
		var reply string
		switch l = strings.TrimRight(l, "\r\n"); {
		case strings.HasPrefix(l, "hello "):
			if hello == "" {
				continue
			}
			reply = hello
		case l == "random?":
			reply = "7"
		case l == "classified?":
			reply = "v1 ad"
		case l == "notif" || l == "stop_notif":
			reply = "OK"
		default:
			reply = "ERR unknown command"
		}
		if _, err := nc.Write([]byte(reply + "\r\n")); err != nil {
			return
		}
	}
}

func (s *v1Server) waitAccept(t *testing.T, what string) {
	t.Helper()
	waitSignal(t, s.accepted, what)
}

// expectDelivery requires the next item to be a version-1 item of kind
// and value; the first of each kind in a session is current, not news.
func expectDelivery(t *testing.T, got <-chan netclient.Delivery, kind wire.Kind, value string, current bool) {
	t.Helper()
	select {
	case d := <-got:
		if d.Kind != kind || d.Value != value || d.ID != 0 || d.Current != current {
			t.Fatalf("delivered %+v, want %s %q without id, current %v", d, kind, value, current)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no delivery of %s %q", kind, value)
	}
}

// A version-1 server that rejects hello: the session goes on in version 1
// on the same connection. What it fetches first is current, not news: the
// user has not seen it, but it was not published for them either.
func TestSessionFallsBackWhenHelloRejected(t *testing.T) {
	s := startV1(t, "ERR unknown command", 0)
	_, got, connected := runSession(t, netclient.SessionOptions{Addr: s.addr, ClientID: "tray-3"})
	waitSignal(t, connected, "the session to connect")
	expectDelivery(t, got, wire.KindRandom, "7", true)
	expectDelivery(t, got, wire.KindClassified, "v1 ad", true)
}

// A server that says nothing to hello is waited for like any other, until
// the reply timeout; two such silences in a row, and the session speaks
// version 1 to it, on the next connection, at once.
func TestSessionFallsBackWhenHelloUnanswered(t *testing.T) {
	s := startV1(t, "", 0)
	_, got, connected := runSession(t, netclient.SessionOptions{
		Addr: s.addr, ClientID: "tray-4", ReplyTimeout: 200 * time.Millisecond, MinBackoff: time.Hour,
	})
	s.waitAccept(t, "the first connection")
	s.waitAccept(t, "the second try at identifying")
	s.waitAccept(t, "the connection without hello") // not after an hour's backoff
	waitSignal(t, connected, "the session to connect")
	expectDelivery(t, got, wire.KindRandom, "7", true)
}

// A peer that stops answering (half-open, or frozen) is found by the
// refresh cycle's reply timeout, and the session reconnects.
func TestSessionDetectsSilentPeer(t *testing.T) {
	s := startV1(t, "", 3) // answers random?, classified?, notif, then nothing
	_, _, connected := runSession(t, netclient.SessionOptions{
		Addr: s.addr, Refresh: 100 * time.Millisecond, ReplyTimeout: 300 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond,
	})
	s.waitAccept(t, "the first connection")
	waitSignal(t, connected, "the session to connect")
	s.waitAccept(t, "a reconnection after the peer went silent")
}

// Reconnect drops a healthy connection and connects again at once, not
// after the backoff (an hour here), then catches up: what the tray does
// when the machine wakes from suspend.
func TestSessionReconnectNow(t *testing.T) {
	srv := realServer(t, server.Config{})
	sess, got, connected := runSession(t, netclient.SessionOptions{Addr: srv.Addr().String(), ClientID: "tray-5", MinBackoff: time.Hour})
	waitSignal(t, connected, "the session to connect")
	sess.Reconnect()
	waitSignal(t, connected, "the session to reconnect at once")
	pub(t, srv, wire.KindClassified, "after resume")
	awaitValue(t, got, "after resume")
}

// Connection refused: retries back off exponentially, with jitter, up to
// the maximum.
func TestSessionBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	r := startSession(t, netclient.SessionOptions{Addr: addr, MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond})
	for i, step := range []time.Duration{10, 20, 40, 80, 80, 80} {
		step *= time.Millisecond
		select {
		case st := <-r.down:
			if w := st.RetryIn; w < step/2 || w > step {
				t.Fatalf("retry %d waits %v, want between %v and %v", i+1, w, step/2, step)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no retry %d", i+1)
		}
	}
}

// An identified session receives the reply to classified? (the server has
// durably moved its position past the ad), then the connection drops before
// notif's OK: the ad it did receive is still delivered.
func TestSessionKeepsRepliesOfAFailedBatch(t *testing.T) {
	s := realServer(t, server.Config{})
	p := linetest.NewProxy(t, s.Addr().String())
	p.CutAfter = " A1"
	addr, cut := p.Start().Addr(), p.Held()
	_, got, connected := runSession(t, netclient.SessionOptions{Addr: addr, ClientID: "rev-1", MinBackoff: 2 * time.Second, MaxBackoff: 2 * time.Second})
	waitSignal(t, connected, "connect")
	pub(t, s, wire.KindClassified, "A1")
	waitSignal(t, cut, "cut")
	pub(t, s, wire.KindClassified, "A2") // while the session waits to retry
	waitSignal(t, connected, "reconnect")
	checkAds(t, collectAds(t, got, 2), 1, 2)
}

// A hark server at --max-conns refuses the connection with ERR too many
// connections: that is a failure to retry, not a version-1 server.
func TestSessionRetriesHelloAfterTooManyConnections(t *testing.T) {
	s := realServer(t, server.Config{MaxConns: 1})
	hog, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	if _, err := hog.Write([]byte("random?\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(hog).ReadString('\n'); err != nil { // it holds the only slot
		t.Fatal(err)
	}
	r := startSession(t, netclient.SessionOptions{
		Addr: s.Addr().String(), ClientID: "rev-2", MinBackoff: 200 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	got, connected := r.got, r.up
	waitErr := func() error {
		select {
		case st := <-r.down:
			return st.Err
		case <-time.After(10 * time.Second):
			t.Fatal("the session never reported the refusal")
			return nil
		}
	}
	t.Logf("first disconnect: %v", waitErr())
	hog.Close()
	waitSignal(t, connected, "connect")
	pub(t, s, wire.KindClassified, "A1")
	if d := awaitValue(t, got, "A1"); d.ID == 0 {
		t.Fatalf("A1 delivered without id: the session fell back to version 1 on a hark server at its connection limit")
	}
}
