package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/wire"
)

// logRecords is an slog.Handler that keeps every record at INFO or above
// as one line: the message, then its attributes.
type logRecords struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecords) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *logRecords) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	return nil
}
func (r *logRecords) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecords) WithGroup(string) slog.Handler      { return r }

func (r *logRecords) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// dialFrom connects to s from the loopback address src (127.0.0.2 and
// the like: Linux routes all of 127.0.0.0/8 to the loopback interface),
// or skips the test where that address cannot be used.
func dialFrom(t *testing.T, s *Server, src string) *linetest.Conn {
	t.Helper()
	nc, _, err := dialRaw(s, src)
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Skipf("cannot connect from %s on this system: %v", src, err)
	}
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { nc.Close() })
	return linetest.New(t, nc)
}

// expectClosed reads until the server closes the connection: EOF, with
// no line before it. (A read that times out fails, as does a reset.)
func expectClosed(t *testing.T, c *linetest.Conn) {
	t.Helper()
	c.NC.SetReadDeadline(time.Now().Add(testTimeout))
	rest, err := io.ReadAll(c.BR)
	if err != nil || len(rest) > 0 {
		t.Fatalf("want the connection closed, got %q, %v", rest, err)
	}
}

// TestPanicEndsOnlyItsConnection: a handler that panics closes its own
// connection, logs the panic with its stack at ERROR, and the server and
// every other connection carry on.
func TestPanicEndsOnlyItsConnection(t *testing.T) {
	log := &logRecords{}
	s := startServer(t, Config{Logger: slog.New(log), onLine: func(line []byte) {
		if string(line) == "boom" {
			panic("test: a handler bug")
		}
	}})
	publish(t, s, "random", "42")
	other := dialNotifying(t, s)
	victim := dial(t, s)
	victim.Send("random?")
	victim.Expect("42")
	victim.Send("boom")
	expectClosed(t, victim)

	publish(t, s, "classified", "still here")
	other.Expect("notif: classified")
	later := dial(t, s)
	later.Send("classified?")
	later.Expect("still here")
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.conns) == 2 }) // the victim was unregistered

	stopServer(t, s)
	var panics []string
	for _, l := range log.all() {
		if strings.Contains(l, "panic") {
			panics = append(panics, l)
		}
	}
	if len(panics) != 1 || !strings.HasPrefix(panics[0], "ERROR connection closed: panic") ||
		!strings.Contains(panics[0], "test: a handler bug") || !strings.Contains(panics[0], "stack=goroutine") {
		t.Errorf("want one ERROR line for the panic, with its value and stack; got %q", panics)
	}
}

// TestEndFirstReasonWins: a connection ended twice, for two reasons, is
// closed and torn down once, and the one log line gives the first reason.
func TestEndFirstReasonWins(t *testing.T) {
	log := &logRecords{}
	s := startServer(t, Config{Logger: slog.New(log)})
	c := dialNotifying(t, s)
	s.mu.Lock()
	for sc := range s.conns {
		sc.end(endQueueFull, nil) // as fan-out does, with Server.mu held
		sc.end(endWriteFailed, syscall.EPIPE)
	}
	s.mu.Unlock()
	expectClosed(t, c)
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.conns) == 0 && len(s.perSource) == 0 && s.notifying == 0
	})
	stopServer(t, s)
	var closed []string
	for _, l := range log.all() {
		if strings.Contains(l, "connection closed") {
			closed = append(closed, l)
		}
	}
	if len(closed) != 1 || !strings.HasPrefix(closed[0], "INFO connection closed: slow reader, its notification queue is full") {
		t.Errorf("want one INFO line for the first reason, got %q", closed)
	}
}

// TestMaxConnsPerAddr: one source address cannot take every connection;
// a client from elsewhere still gets in, and a slot freed is reusable.
func TestMaxConnsPerAddr(t *testing.T) {
	s := startServer(t, Config{MaxConns: 50, MaxConnsPerAddr: 10})
	publish(t, s, "random", "7")
	var served []*linetest.Conn
	refused := 0
	for range 50 {
		c := dialFrom(t, s, "127.0.0.1")
		if len(served) < 10 {
			c.Send("random?")
			c.Expect("7")
			served = append(served, c)
			continue
		}
		c.Expect(wire.ErrTooManyFromAddr)
		expectClosed(t, c)
		refused++
	}
	if len(served) != 10 || refused != 40 {
		t.Fatalf("%d served and %d refused, want 10 and 40", len(served), refused)
	}
	elsewhere := dialFrom(t, s, "127.0.0.2")
	elsewhere.Send("random?")
	elsewhere.Expect("7")

	served[0].NC.Close()
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.perSource[netip.MustParseAddr("127.0.0.1")] == 9
	})
	again := dialFrom(t, s, "127.0.0.1")
	again.Send("random?")
	again.Expect("7")
}

// TestSourceOf: IPv4 addresses count one by one, IPv6 ones by their /64,
// and an IPv4 peer of a dual-stack socket as its IPv4 address.
func TestSourceOf(t *testing.T) {
	src := func(s string) netip.Addr {
		return sourceOf(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)))
	}
	cases := []struct{ a, b string }{
		{"[2001:db8:1:2:aaaa::1]:1000", "[2001:db8:1:2:bbbb::9]:2000"},
		{"[::ffff:192.0.2.7]:1000", "192.0.2.7:2000"},
		{"[fe80::1%eth0]:1000", "[fe80::2]:2000"},
	}
	for _, tc := range cases {
		if src(tc.a) != src(tc.b) {
			t.Errorf("%s and %s count separately (%v, %v), want as one source", tc.a, tc.b, src(tc.a), src(tc.b))
		}
	}
	seen := map[netip.Addr]string{}
	for _, a := range []string{"192.0.2.7:1", "192.0.2.8:1", "[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1"} {
		if prev, ok := seen[src(a)]; ok {
			t.Errorf("%s and %s count as one source, want two", prev, a)
		}
		seen[src(a)] = a
	}
	if got := sourceOf(&net.UnixAddr{Name: "x", Net: "unix"}); got.IsValid() {
		t.Errorf("a non-TCP address has source %v, want the zero one", got)
	}
}

// TestCommandTimeout: a connection that sends nothing, or nothing more,
// in command mode is closed silently after the command timeout; one in
// notification mode is not.
func TestCommandTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	s := startServer(t, Config{CommandTimeout: timeout})
	listening := dialNotifying(t, s)
	// Connected after listening's last line: once the server closes them
	// for their silence, it has seen listening silent for longer.
	silent, done := dial(t, s), dial(t, s)
	done.Send("random?")
	done.Line()
	expectClosed(t, silent) // no line first: the close is silent
	expectClosed(t, done)

	publish(t, s, "classified", "for the listener")
	listening.Expect("notif: classified")
	listening.Send("classified?")
	listening.Expect("for the listener")
}

// TestCommandTimeoutAfterIdleNotification: a connection whose
// notification mode ended for lack of lines counts as command mode, and
// the command timeout then closes it.
func TestCommandTimeoutAfterIdleNotification(t *testing.T) {
	s := startServer(t, Config{IdleTimeout: 100 * time.Millisecond, CommandTimeout: 150 * time.Millisecond})
	c := dialNotifying(t, s)
	expectClosed(t, c)
}

// TestLineTooLongSurvivesUnreadInput: after a line too long, the server
// closes without destroying its error line, however much the peer sent
// after it: the peer reads the line, then EOF, never a reset. The peer's
// small send buffer keeps most of its input in flight until the server
// reads it: closing before that would reset the connection under the
// peer's write.
func TestLineTooLongSurvivesUnreadInput(t *testing.T) {
	s := startServer(t, Config{})
	input := []byte(strings.Repeat("x", 5000) + "\r\n" + strings.Repeat("more input\r\n", 200<<10/12))
	for i := range 20 {
		c := linetest.New(t, dialWithBuffer(t, s, syscall.SO_SNDBUF, 4<<10))
		c.NC.SetWriteDeadline(time.Now().Add(testTimeout))
		if _, err := c.NC.Write(input); err != nil {
			t.Fatalf("run %d: writing the line too long and 200 KiB after it: %v", i+1, err)
		}
		c.NC.SetReadDeadline(time.Now().Add(testTimeout))
		got, err := io.ReadAll(c.BR)
		if err != nil || string(got) != wire.ErrLineTooLongLine+"\r\n" {
			t.Fatalf("run %d: read %q, %v; want the error line, then EOF", i+1, got, err)
		}
		c.NC.Close()
	}
}

// TestLingerIsBounded: a closing connection drains its peer's input for
// a bounded time and a bounded number of bytes, then closes.
func TestLingerIsBounded(t *testing.T) {
	s := startServer(t, Config{linger: time.Hour})
	c := dial(t, s)
	c.Write(strings.Repeat("x", 5000) + "\r\n")
	c.Expect(wire.ErrLineTooLongLine)
	expectClosed(t, c)
	// The peer keeps writing: after the budget, the server closes, and a
	// write fails (a reset) instead of being drained for the hour.
	chunk := []byte(strings.Repeat("y", 64<<10))
	c.NC.SetWriteDeadline(time.Now().Add(testTimeout))
	written := 0
	for {
		n, err := c.NC.Write(chunk)
		written += n
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the server was still draining after %d bytes, want a close after %d", written, lingerBudget)
			}
			break
		}
	}
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.conns) == 0 })

	// The time bound: a peer that sends nothing more is closed when the
	// linger time is over.
	s2 := startServer(t, Config{linger: 50 * time.Millisecond})
	quiet := dial(t, s2)
	quiet.Write(strings.Repeat("x", 5000) + "\r\n")
	quiet.Expect(wire.ErrLineTooLongLine)
	expectClosed(t, quiet)
	waitFor(t, func() bool { s2.mu.Lock(); defer s2.mu.Unlock(); return len(s2.conns) == 0 })
}

// TestShutdownCutsLingerShort: a connection draining its peer's input
// after a line too long does not hold up Shutdown.
func TestShutdownCutsLingerShort(t *testing.T) {
	s := startServer(t, Config{linger: time.Hour})
	c := dial(t, s)
	c.Write(strings.Repeat("x", 5000) + "\r\n")
	c.Expect(wire.ErrLineTooLongLine)
	expectClosed(t, c) // the write side is shut: the server lingers now
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Shutdown waited for a lingering connection")
	}
}

// TestRefusalSurvivesUnreadInput: a client refused at connect that has
// already sent its first commands still reads the refusal, then EOF.
func TestRefusalSurvivesUnreadInput(t *testing.T) {
	s := startServer(t, Config{MaxConns: 1})
	held := dial(t, s)
	held.Send("random?")
	held.Line()
	for i := range 20 {
		// The server's accept loop waits for s.mu to admit the
		// connection: by then the client's commands have arrived.
		s.mu.Lock()
		c := dial(t, s)
		c.Send("hello someone", "notif")
		s.mu.Unlock()
		c.NC.SetReadDeadline(time.Now().Add(testTimeout))
		got, err := io.ReadAll(c.BR)
		if err != nil || string(got) != wire.ErrTooManyConns+"\r\n" {
			t.Fatalf("run %d: read %q, %v; want the refusal, then EOF", i+1, got, err)
		}
	}
}

// TestLogFloodIsCounted: what strangers repeat at will is logged once,
// then counted, not logged line by line.
func TestLogFloodIsCounted(t *testing.T) {
	log := &logRecords{}
	s := startServer(t, Config{Logger: slog.New(log), MaxConnsPerAddr: 1})
	held := dialFrom(t, s, "127.0.0.1")
	held.Send("random?")
	held.Line()
	const n = 500
	for range n {
		c := dialFrom(t, s, "127.0.0.1")
		c.Expect(wire.ErrTooManyFromAddr)
		expectClosed(t, c)
		c.NC.Close()
	}
	for i := range n { // each from its own address: the limit is one
		c := dialFrom(t, s, fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250))
		c.Write(strings.Repeat("x", wire.MaxLine+1) + "\r\n")
		c.Expect(wire.ErrLineTooLongLine)
		expectClosed(t, c)
		c.NC.Close()
	}
	stopServer(t, s) // reports what is still counted
	lines := log.all()
	counted := map[string]int{}
	more := regexp.MustCompile(`\(… ([0-9,]+) more in the last`)
	for _, l := range lines {
		for _, msg := range []string{"connection refused: too many connections from its address", "connection closed: line too long"} {
			if !strings.Contains(l, msg) {
				continue
			}
			if m := more.FindStringSubmatch(l); m != nil {
				k, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
				counted[msg] += k
			} else {
				counted[msg]++
			}
		}
	}
	if len(lines) > 6 {
		t.Errorf("%d log lines for %d refused connections and %d lines too long, want a handful:\n%s", len(lines), n, n, strings.Join(lines, "\n"))
	}
	for msg, k := range counted {
		if k != n {
			t.Errorf("%q: %d logged or counted, want %d:\n%s", msg, k, n, strings.Join(lines, "\n"))
		}
	}
	if len(counted) != 2 {
		t.Errorf("want both events in the log:\n%s", strings.Join(lines, "\n"))
	}
}

// TestStartBindsFirst: an address in use fails before the store is
// created or a first number drawn and published, and the address that
// could be taken is let go again.
func TestStartBindsFirst(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct{ name, listen, http string }{
		{"protocol", busy.Addr().String(), linetest.ClosedAddr(t)},
		{"publish API", linetest.ClosedAddr(t), busy.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var logs logRecords
			s, err := Start(Config{Listen: tc.listen, HTTP: tc.http, DataDir: dir, Logger: slog.New(&logs)})
			if err == nil {
				_ = s.Shutdown(context.Background())
				t.Fatalf("Start with %s in use: no error", busy.Addr())
			}
			if !strings.Contains(err.Error(), busy.Addr().String()) {
				t.Errorf("Start with %s in use: %v, want the address named", busy.Addr(), err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) > 0 {
				t.Errorf("Start with %s in use left %d file(s) in the data directory, e.g. %s", busy.Addr(), len(ents), ents[0].Name())
			}
			if l := logs.all(); len(l) > 0 {
				t.Errorf("Start with %s in use logged %q, want nothing before the bind", busy.Addr(), l)
			}
			// The other address, taken first, is free again.
			free := tc.listen
			if free == busy.Addr().String() {
				free = tc.http
			}
			ln, err := net.Listen("tcp", free)
			if err != nil {
				t.Fatalf("%s is still taken after Start failed: %v", free, err)
			}
			ln.Close()
		})
	}
}
