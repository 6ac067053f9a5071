package server

import (
	"crypto/tls"
	"syscall"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/wire"
)

// A TLS connection keeps its write deadline between writes (tlsSock): one
// quiet for longer than the write timeout must still get its next push,
// the deadline moved before the write, not failing it.
func TestTLSPushAfterQuietLongerThanWriteTimeout(t *testing.T) {
	const wt = 50 * time.Millisecond
	s, ca, _ := tlsServer(t, Config{WriteTimeout: wt})
	c := dialTLS(t, s, ca)
	c.Send("random?", "notif")
	c.Line()
	c.Expect("OK")
	publish(t, s, wire.KindClassified, "first") // a write sets the deadline
	c.Expect(wire.NotifClassified)
	time.Sleep(3 * wt) // the scenario is time passing, not a wait for an event
	if _, n := publish(t, s, wire.KindClassified, "later"); n != 1 {
		t.Fatalf("notified %d, want 1", n)
	}
	c.Expect(wire.NotifClassified)
	c.Send("classified?", "classified?")
	c.Expect("first", "later")
}

// A TLS client that stops reading is dropped by the write timeout, with a
// queue too large to drop it first: the deadline kept between writes
// still cuts a write that waits.
func TestTLSStuckReaderDroppedByWriteTimeout(t *testing.T) {
	s, ca, _ := tlsServer(t, Config{WriteTimeout: 100 * time.Millisecond, MaxQueue: 64 << 20, SendBuffer: 4 << 10})
	raw := dialWithBuffer(t, s, syscall.SO_RCVBUF, 1024)
	tc := tls.Client(raw, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	stuck := linetest.New(t, tc)
	stuck.Send("notif")
	stuck.Expect("OK") // then it reads no more
	for published := 1; ; published++ {
		if _, n := publish(t, s, wire.KindClassified, "flood of a hundred bytes, so that the socket fills before long ................."); n == 0 {
			t.Logf("dropped after %d ads", published)
			return
		}
		if published == 20000 {
			t.Fatal("a client that reads nothing is still notified after 20,000 ads")
		}
	}
}
