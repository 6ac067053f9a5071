package server

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/harkapp/hark/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every wait in these tests, so that a bug shows as a
// failure with a message rather than a hung test binary.
const testTimeout = 10 * time.Second

// startServer runs a server on loopback ports chosen by the kernel, with a
// fresh store, and shuts it down when the test ends. cfg.DataDir, when
// set, is kept (restart tests).
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.HTTP == "" {
		cfg.HTTP = "127.0.0.1:0"
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { stopServer(t, s) })
	return s
}

func stopServer(t testing.TB, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// client is a raw protocol client for tests: it writes exactly the bytes
// it is given and reads line by line, with a deadline on every read.
type testClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, s *Server) *testClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr().String(), testTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &testClient{t: t, nc: nc, br: newReader(nc)}
}

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReader(nc) }

// send writes lines, each ended by CRLF, in one write.
func (c *testClient) send(lines ...string) {
	c.t.Helper()
	c.write(strings.Join(lines, "\r\n") + "\r\n")
}

func (c *testClient) write(raw string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(testTimeout))
	if _, err := c.nc.Write([]byte(raw)); err != nil {
		c.t.Fatalf("write %q: %v", raw, err)
	}
}

// line reads one line and returns it without its CRLF. It fails the test
// when the line does not end with CRLF.
func (c *testClient) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	s, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read line: %v (got %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.t.Fatalf("line %q does not end with CRLF", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// expect reads len(want) lines and compares them.
func (c *testClient) expect(want ...string) {
	c.t.Helper()
	for i, w := range want {
		if got := c.line(); got != w {
			c.t.Fatalf("line %d: got %q, want %q", i+1, got, w)
		}
	}
}

// expectEOF reads until the server closes the connection, failing on any
// further line.
func (c *testClient) expectEOF() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	s, err := c.br.ReadString('\n')
	if err == nil || s != "" {
		c.t.Fatalf("want the connection closed, got %q, %v", s, err)
	}
}

// publish publishes through the server's API and fails the test on error.
func publish(t testing.TB, s *Server, kind string, value string) (id uint64, notified int) {
	t.Helper()
	it, n, err := s.Publish(context.Background(), kindOf(kind), value)
	if err != nil {
		t.Fatalf("publish %s %q: %v", kind, value, err)
	}
	return it.ID, n
}

func kindOf(s string) wire.Kind { return wire.Kind(s) }
