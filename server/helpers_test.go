package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/harkapp/hark/internal/linetest"

	"github.com/harkapp/hark/wire"
)

// portableIO makes this run's servers take the portable path: TestMain
// runs every test twice, first with the event loop where there is one,
// then with each connection waiting in a goroutine of its own, so that
// the two paths cannot diverge unseen.
var portableIO bool

func TestMain(m *testing.M) { goleak.VerifyTestMain(bothPaths{m}) }

type bothPaths struct{ m *testing.M }

func (b bothPaths) Run() int {
	if code := b.m.Run(); code != 0 || !haveLoop {
		return code
	}
	fmt.Println("--- the same tests again, on the portable path (no event loop)")
	portableIO = true
	return b.m.Run()
}

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
	cfg.portable = portableIO
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

// dial connects a raw protocol client to s.
func dial(t testing.TB, s *Server) *linetest.Conn { return linetest.Dial(t, s.Addr().String()) }

// dialNotifying connects a raw protocol client to s and puts it in
// notification mode.
func dialNotifying(t testing.TB, s *Server) *linetest.Conn {
	t.Helper()
	c := dial(t, s)
	c.Send("notif")
	c.Expect("OK")
	return c
}

// publish publishes through the server's API and fails the test on error.
func publish(t testing.TB, s *Server, kind wire.Kind, value string) (id uint64, notified int) {
	t.Helper()
	it, n, err := s.Publish(context.Background(), kind, value)
	if err != nil {
		t.Fatalf("publish %s %q: %v", kind, value, err)
	}
	return it.ID, n
}
