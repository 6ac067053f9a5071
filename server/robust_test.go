package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"

	"github.com/harkapp/hark/wire"
)

// TestIdleTimeout: a connection in notification mode that sends nothing
// for the idle timeout leaves the mode silently; any line resets the
// timer; re-entering announces what was published meanwhile.
func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	s := startServer(t, Config{IdleTimeout: idle})
	quiet, chatty := dial(t, s), dial(t, s)
	quiet.Send("notif")
	quiet.Expect("OK")
	chatty.Send("notif")
	chatty.Expect("OK")
	publish(t, s, "random", "1")
	quiet.Expect("notif: random")
	chatty.Expect("notif: random")

	// Time passing is what is under test here. The chatty client sends a
	// line every third of the timeout; the quiet one says nothing.
	for range 4 {
		time.Sleep(idle / 3)
		chatty.Send("random?")
		chatty.Expect("1")
	}
	time.Sleep(idle / 3) // quiet has now been silent for 5/3 of the timeout
	if _, n := publish(t, s, "classified", "while quiet slept"); n != 1 {
		t.Fatalf("notified %d connections, want 1 (only the chatty one)", n)
	}
	chatty.Expect("notif: classified")
	// Had quiet been notified, the notification would precede this reply.
	quiet.Send("random?")
	quiet.Expect("1")
	quiet.Send("notif")
	quiet.Expect("OK", "notif: classified") // the ad it missed is still unread
}

func TestCommandErrors(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "random", "9")
	c := dial(t, s)
	c.Write("RANDOM?\r\nrandom? \r\nNotif\r\n\x00\xff\xfe\r\nhello\r\nhello \r\nhello bad id\r\nhello é\r\n")
	c.Expect("ERR unknown command", "ERR unknown command", "ERR unknown command", "ERR unknown command",
		"ERR bad client id", "ERR bad client id", "ERR bad client id", "ERR bad client id")
	c.Write("\r\n\n\r\nrandom?\r\n") // empty lines get no reply
	c.Expect("9")
	c.Send("hello c1", "hello c1", "hello c2")
	c.Expect("OK", "ERR already identified", "ERR already identified")
}

func TestLineTooLong(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, s)
	c.Send(strings.Repeat("a", wire.MaxLine)) // the longest line allowed
	c.Expect("ERR unknown command")
	c.Send(strings.Repeat("a", wire.MaxLine+1))
	c.Expect("ERR line too long")
	c.ExpectEOF()

	// A line that never ends is cut off at the limit too.
	c = dial(t, s)
	c.Write(strings.Repeat("x", 3*wire.MaxLine))
	c.Expect("ERR line too long")
	c.ExpectEOF()

	dialNotifying(t, s) // the server still serves others
}

// TestGarbage feeds random bytes: the server answers each line with an
// error, or closes on a line too long, and keeps serving everyone else.
func TestGarbage(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "random", "3")
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 256<<10)
	for i := range junk {
		junk[i] = byte(rng.IntN(256))
	}
	c := dial(t, s)
	go func() { // may fail once the server closes: that is allowed
		c.NC.SetWriteDeadline(time.Now().Add(testTimeout))
		if _, err := c.NC.Write(junk); err == nil {
			_ = c.NC.(*net.TCPConn).CloseWrite()
		}
	}()
	// Every complete, non-empty line gets exactly one answer.
	lines := bytes.Split(junk, []byte("\n"))
	want := 0
	for _, l := range lines[:len(lines)-1] {
		if len(bytes.TrimSuffix(l, []byte("\r"))) > 0 {
			want++
		}
	}
	answers := 0
	c.NC.SetReadDeadline(time.Now().Add(testTimeout))
	for {
		l, err := c.BR.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				break
			}
			t.Fatalf("reading garbage answers: %v", err)
		}
		if l != "ERR unknown command\r\n" && l != "ERR line too long\r\n" {
			t.Fatalf("unexpected answer to garbage: %q", l)
		}
		answers++
	}
	if answers != want {
		t.Fatalf("%d answers to %d garbage lines", answers, want)
	}
	other := dial(t, s)
	other.Send("random?")
	other.Expect("3")
}

// TestSlowReaderDropped: a client in notification mode that stops reading
// is dropped once its queue is full, while a reading client gets every
// notification.
func TestSlowReaderDropped(t *testing.T) {
	// Small socket buffers on both sides make the slow client's socket
	// fill after a few hundred notifications instead of a few hundred
	// thousand.
	s := startServer(t, Config{MaxQueue: 1 << 10, SendBuffer: 4 << 10})
	snc := dialSmallReceiveBuffer(t, s)
	slow := linetest.New(t, snc)
	slow.Send("notif")
	slow.Expect("OK")
	fast := dialNotifying(t, s)

	got := make(chan int)
	go func() { // the fast client reads everything, concurrently, up to the random's push
		n := 0
		fast.NC.SetReadDeadline(time.Now().Add(4 * testTimeout))
		for {
			l, err := fast.BR.ReadString('\n')
			if err != nil || l != "notif: classified\r\n" {
				if l != "notif: random\r\n" {
					t.Errorf("fast client: %q, %v after %d ads", l, err, n)
				}
				break
			}
			n++
		}
		got <- n
	}()

	published, dropped := 0, false
	for published < 20000 && !dropped {
		_, n := publish(t, s, "classified", "flood")
		published++
		dropped = n == 1
	}
	if !dropped {
		t.Fatalf("slow client still notified after %d ads", published)
	}
	// A few more, to show the others keep being notified.
	for range 10 {
		if _, n := publish(t, s, "classified", "after"); n != 1 {
			t.Fatalf("notified %d, want 1", n)
		}
		published++
	}
	// Pushes go out after Publish returns: a last one of another kind
	// shows when every earlier one has.
	publish(t, s, wire.KindRandom, "7")
	if n := <-got; n != published {
		t.Fatalf("fast client got %d notifications of %d", n, published)
	}
	// The slow client's connection was closed by the server.
	snc.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := io.Copy(io.Discard, snc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("slow client: want the connection closed, got %v", err)
	}
	t.Logf("slow client dropped after %d ads", published-10)
}

func TestMaxConns(t *testing.T) {
	s := startServer(t, Config{MaxConns: 2, MaxConnsPerAddr: 2}) // every client here comes from 127.0.0.1
	a, b := dial(t, s), dial(t, s)
	a.Send("notif")
	a.Expect("OK")
	b.Send("notif")
	b.Expect("OK")
	c := dial(t, s)
	c.Expect("ERR too many connections")
	c.ExpectEOF()
	a.NC.Close()
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.conns) == 1 })
	d := dial(t, s)
	d.Send("stop_notif")
	d.Expect("OK")
}

// TestHalfClose: a client that sends its commands and shuts down its side
// still gets every answer before the server closes.
func TestHalfClose(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "random", "12")
	c := dial(t, s)
	c.Write("random?\r\nclassified?\r\nrandom?")
	if err := c.NC.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.Expect("12", "")
	c.ExpectEOF() // the unterminated last line is not a command
}

// TestShutdownAnswersWhatItRead: commands the server has read are answered
// before it closes the connection, and Shutdown leaves no goroutine behind
// (TestMain checks with goleak).
func TestShutdownAnswersWhatItRead(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "random", "77")
	idle := dialNotifying(t, s)
	busy := dial(t, s)
	busy.Write(strings.Repeat("random?\r\n", 50))
	busy.Expect("77") // the batch has been read
	stopServer(t, s)
	for range 49 {
		busy.Expect("77")
	}
	busy.ExpectEOF()
	idle.ExpectEOF()
	if _, _, err := s.Publish(context.Background(), wire.KindRandom, "1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after shutdown: got %v, want ErrClosed", err)
	}
}

// waitFor polls cond until it holds, for state that has no event to wait
// on from outside the server (a closed connection being unregistered).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}

// A client that stops reading for a while, but not long enough to be
// dropped, gets every notification intact once it reads again: the
// pushes its full socket did not take, or took only in part, wait in its
// queue in order.
func TestPausedReaderGetsEveryLine(t *testing.T) {
	pausedReaderGetsEveryLine(t, Config{SendBuffer: 4 << 10})
}

// The same where no descriptor is left to wait with (EMFILE): on the
// event loop, the wait for room polls the descriptor itself.
func TestPausedReaderGetsEveryLineWithoutADescriptorToSpare(t *testing.T) {
	pausedReaderGetsEveryLine(t, Config{SendBuffer: 4 << 10, noDup: true})
}

func pausedReaderGetsEveryLine(t *testing.T, cfg Config) {
	s := startServer(t, cfg)
	nc := dialSmallReceiveBuffer(t, s)
	c := linetest.New(t, nc)
	c.Send("notif")
	c.Expect("OK")
	// ~19 KB of pushes: several times what the two socket buffers hold,
	// well under the 64 KiB queue.
	const n = 1000
	for range n {
		if _, notified := publish(t, s, "classified", "x"); notified != 1 {
			t.Fatalf("notified %d, want 1 (the paused client was dropped?)", notified)
		}
	}
	nc.SetReadDeadline(time.Now().Add(testTimeout))
	for i := range n {
		l, err := c.BR.ReadString('\n')
		if err != nil || l != "notif: classified\r\n" {
			t.Fatalf("line %d of %d: %q, %v", i+1, n, l, err)
		}
	}
}

// A connection that has been quiet for longer than the write timeout still
// gets its next push: the timeout bounds a write that waits, and must not
// linger as a stale deadline that fails the next one.
func TestPushAfterQuietLongerThanWriteTimeout(t *testing.T) {
	const wt = 50 * time.Millisecond
	s := startServer(t, Config{WriteTimeout: wt})
	c := dial(t, s)
	c.Send("random?", "notif")
	c.Line()
	c.Expect("OK")
	time.Sleep(3 * wt) // the scenario is time passing, not a wait for an event
	if _, n := publish(t, s, "classified", "later"); n != 1 {
		t.Fatalf("notified %d, want 1", n)
	}
	c.Expect("notif: classified")
	c.Send("classified?")
	c.Expect("later")
}

// dialSmallReceiveBuffer connects to s with a 1 KiB receive buffer, so
// that a client that stops reading fills its socket after a few hundred
// notifications instead of a few hundred thousand. The test's cleanup
// closes it.
func dialSmallReceiveBuffer(t *testing.T, s *Server) net.Conn {
	t.Helper()
	return dialWithBuffer(t, s, syscall.SO_RCVBUF, 1024)
}

// dialWithBuffer connects to s with the socket option opt (SO_RCVBUF,
// SO_SNDBUF) set to size. The test's cleanup closes the connection.
func dialWithBuffer(t *testing.T, s *Server, opt, size int) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		ctlErr := rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, size)
		})
		return errors.Join(ctlErr, err)
	}}
	nc, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// A server shutting down tells each connection that said hello that it
// is going away (its client then goes to another server of the store at
// once), after what it was answering, as the last line; a connection
// that did not say hello (a version-1 client) gets the close alone.
func TestShutdownSaysGoingAwayAfterHello(t *testing.T) {
	s := startServer(t, Config{})
	id, _ := publish(t, s, "random", "77")
	reply := fmt.Sprintf("%d 77", id)
	v1 := dialNotifying(t, s)
	v2 := dial(t, s)
	v2.Send("hello laptop-1", "random?")
	v2.Expect("OK", reply)
	busy := dial(t, s)
	busy.Send("hello laptop-2")
	busy.Expect("OK")
	busy.Write(strings.Repeat("random?\r\n", 20))
	busy.Expect(reply)
	stopServer(t, s)
	for range 19 {
		busy.Expect(reply)
	}
	busy.Expect(wire.ErrGoingAway)
	busy.ExpectEOF()
	v2.Expect(wire.ErrGoingAway)
	v2.ExpectEOF()
	v1.ExpectEOF()
}
