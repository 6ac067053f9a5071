package server

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// On the event loop a connection waiting for input has no goroutine:
// that is what an idle connection saves (docs/PERFORMANCE.md). On the
// portable path each has one. Counted, not timed: the goroutines a
// server runs once its connections are all answered and waiting.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	s := startServer(t, Config{})
	const n = 64
	before := runtime.NumGoroutine()
	for i := range n {
		c := dialNotifying(t, s)
		if i%2 == 0 { // identified or not, the same
			c.Send(fmt.Sprintf("hello idle-%d", i))
			c.Expect("OK")
		}
	}
	// Every connection has answered its last line; an owner that has
	// not yet gone back to waiting finishes within a few instructions,
	// but may still count: allow for a few.
	grown := runtime.NumGoroutine() - before
	if s.loop != nil && grown > n/8 {
		t.Fatalf("%d idle connections on the event loop: %d more goroutines, want none", n, grown)
	}
	if s.loop == nil && grown < n {
		t.Fatalf("%d idle connections on the portable path: %d more goroutines, want one each", n, grown)
	}
}

// A line that arrives in pieces is answered once whole: on the event
// loop the partial line stays in the reader between two waits.
func TestLineInPieces(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, s)
	for range 5 {
		for _, b := range []byte("classified?\r\n") {
			c.Write(string(b))
		}
	}
	for range 5 {
		if l := c.Line(); l != "" { // no ad published: an empty line
			t.Fatalf("classified? in pieces = %q, want the empty reply", l)
		}
	}
	c.Send("random?")
	if l := c.Line(); l == "" || strings.Trim(l, "0123456789") != "" {
		t.Fatalf("random? after the pieces = %q, want a number", l)
	}
}

// Lines already read when the connection is ended (a revoked token, a
// full queue, Shutdown out of time) are not served: on the event loop,
// where ending it leaves its input readable, as on the portable path.
func TestNothingServedAfterEnd(t *testing.T) {
	var srv atomic.Pointer[Server]
	var after atomic.Int32
	ended := make(chan struct{})
	s := startServer(t, Config{onLine: func(line []byte) {
		select {
		case <-ended:
			after.Add(1)
			return
		default:
		}
		if string(line) == "random?" {
			s := srv.Load()
			s.mu.Lock()
			for c := range s.conns {
				c.end(endTokenRevoked, nil)
			}
			s.mu.Unlock()
			close(ended)
		}
	}})
	srv.Store(s)
	c := dial(t, s)
	c.Write("random?\r\nhello victim\r\nclassified?\r\nseen 1\r\n") // one read
	<-ended
	stopServer(t, s) // every owner has gone
	if n := after.Load(); n != 0 {
		t.Fatalf("%d lines served after the connection ended, want none", n)
	}
}
