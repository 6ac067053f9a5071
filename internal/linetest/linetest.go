// Package linetest is a raw client of hark's line protocol for tests: it
// writes exactly the bytes it is given and reads line by line, with a
// deadline on every read and write, failing the test on anything else.
// Tests in several packages talk to real servers with it. It also holds
// what those tests play the other end with: Serve, the plumbing of a
// scripted server; FrozenServer; and Proxy, which makes a real server
// look like a banner server, a slow one or a version-1 one.
package linetest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/wire"
)

// Timeout bounds every read and write, so that a bug shows as a failure
// with a message rather than a hung test binary.
const Timeout = 10 * time.Second

// Conn is a test's end of a protocol connection. NC and BR are there for
// tests that need the socket itself.
type Conn struct {
	T  testing.TB
	NC net.Conn
	BR *bufio.Reader
}

// Dial connects to addr and closes the connection when the test ends.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return New(t, nc)
}

// New wraps an established connection.
func New(t testing.TB, nc net.Conn) *Conn { return &Conn{T: t, NC: nc, BR: bufio.NewReader(nc)} }

// Send writes lines, each ended by CRLF, in one write.
func (c *Conn) Send(lines ...string) {
	c.T.Helper()
	c.Write(strings.Join(lines, "\r\n") + "\r\n")
}

// Write writes raw bytes.
func (c *Conn) Write(raw string) {
	c.T.Helper()
	c.NC.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.NC.Write([]byte(raw)); err != nil {
		c.T.Fatalf("write %q: %v", raw, err)
	}
}

// Line reads one line and returns it without its CRLF, failing the test
// when it does not end with CRLF.
func (c *Conn) Line() string {
	c.T.Helper()
	c.NC.SetReadDeadline(time.Now().Add(Timeout))
	s, err := c.BR.ReadString('\n')
	if err != nil {
		c.T.Fatalf("read line: %v (got %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.T.Fatalf("line %q does not end with CRLF", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// Expect reads len(want) lines and compares them.
func (c *Conn) Expect(want ...string) {
	c.T.Helper()
	for i, w := range want {
		if got := c.Line(); got != w {
			c.T.Fatalf("line %d: got %q, want %q", i+1, got, w)
		}
	}
}

// ExpectEOF reads until the server closes the connection, failing on any
// further line.
func (c *Conn) ExpectEOF() {
	c.T.Helper()
	c.NC.SetReadDeadline(time.Now().Add(Timeout))
	s, err := c.BR.ReadString('\n')
	// A timeout is not a close: the server kept the connection open.
	if err == nil || s != "" || errors.Is(err, os.ErrDeadlineExceeded) {
		c.T.Fatalf("want the connection closed, got %q, %v", s, err)
	}
}

// Identify says "hello <id> v2" and acknowledges the position the id
// starts from, as hark's client does: from then on the server keeps the
// id's position across connections and restarts (an id that only said
// hello is forgotten with its last connection). It returns the server's
// extended reply.
func (c *Conn) Identify(id string) wire.Hello {
	c.T.Helper()
	c.Send("hello " + id + " " + wire.HelloV2)
	line := c.Line()
	h, err := wire.ParseHello(line)
	if err != nil {
		c.T.Fatalf("hello %s: %v", id, err)
	}
	c.Send("seen " + strconv.FormatUint(max(h.Latest, 1), 10))
	c.Expect("OK")
	return h
}

// FrozenServer is a scripted version-1 server that answers a client's
// catch-up (random? 7, classified? with no ad, notif's OK and an
// announced ad), then freezes at the client's next command, as a server
// whose process hangs while its kernel still acknowledges: from then on
// it reads everything and answers nothing. frozen receives a value when
// that happens, with the client's fetch cycle pending. It is stopped when
// the test ends.
func FrozenServer(t testing.TB) (addr string, frozen <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{}, 1)
	addr = Serve(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			var reply string
			switch strings.TrimSpace(l) {
			case "random?":
				reply = "7\r\n"
			case "classified?":
				reply = "\r\n"
			case "notif":
				reply = "OK\r\n" + wire.NotifClassified + "\r\n"
			default:
				select {
				case ch <- struct{}{}:
				default:
				}
				_, _ = io.Copy(io.Discard, br) // frozen
				return
			}
			if _, err := nc.Write([]byte(reply)); err != nil {
				return
			}
		}
	})
	return addr, ch
}

// ClosedAddr is a loopback address where nothing listens (as of now: the
// kernel may hand the port out again later), for a connection that must
// be refused.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
