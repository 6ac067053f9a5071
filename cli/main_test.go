package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/harkapp/hark/cli"
	"github.com/harkapp/hark/server"
)

// reexecEnv, set to 1, makes the test binary behave as the hark command:
// the end-to-end tests run it as a real `hark serve` process.
const reexecEnv = "HARK_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(reexecEnv) == "1" {
		// What main.main does.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait, so that a bug shows as a failure with a
// message rather than a hung test binary.
const testTimeout = 10 * time.Second

// run runs cli.Run with buffers and returns the exit status and output.
func run(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	code = cli.Run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// startServer runs an in-process server on kernel-chosen loopback ports
// with a fresh store, shut down when the test ends.
func startServer(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// postItem publishes through a publish API with the test's own transport
// (closed at the end of the test, for goleak) and requires 201.
func postItem(t testing.TB, base, kind, value string) server.Published {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: testTimeout}
	resp, err := hc.Post(base+"/v1/"+kind, "text/plain; charset=utf-8", strings.NewReader(value))
	if err != nil {
		t.Fatalf("POST %s %q: %v", kind, value, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s %q: reading the answer: %v", kind, value, err)
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s %q: %s %s", kind, value, resp.Status, raw)
	}
	var p server.Published
	if err := json.Unmarshal(raw, &p); err != nil || p.ID == 0 {
		t.Fatalf("POST %s %q: answer %s: %v", kind, value, raw, err)
	}
	return p
}

// serveLog collects what `hark serve` logs, and extracts the listening
// addresses from the line that says it is running. It is an io.Writer safe
// for concurrent use.
type serveLog struct {
	mu      sync.Mutex
	tees    []io.Writer // also given every write (benchmarks count lines)
	buf     bytes.Buffer
	scanned int
	running chan struct{} // closed once the "is running" line has arrived
	proto   string
	api     string
}

func newServeLog() *serveLog { return &serveLog{running: make(chan struct{})} }

var (
	protoAttr = regexp.MustCompile(`\bprotocol=(\S+)`)
	apiAttr   = regexp.MustCompile(`\bpublish_api=(\S+)`)
)

// tee gives w every write from now on.
func (l *serveLog) tee(w io.Writer) {
	l.mu.Lock()
	l.tees = append(l.tees, w)
	l.mu.Unlock()
}

func (l *serveLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.tees {
		_, _ = w.Write(p)
	}
	l.buf.Write(p)
	for {
		rest := l.buf.Bytes()[l.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := string(rest[:i])
		l.scanned += i + 1
		if l.proto != "" || !strings.Contains(line, "hark serve is running") {
			continue
		}
		pm, am := protoAttr.FindStringSubmatch(line), apiAttr.FindStringSubmatch(line)
		if pm == nil {
			continue // the test fails on the missing address, with the log
		}
		l.proto = pm[1]
		if am != nil {
			l.api = am[1]
		}
		close(l.running)
	}
	return len(p), nil
}

func (l *serveLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *serveLog) addrs() (proto, api string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.proto, l.api
}

// itemLine is what an identified connection is answered for an item.
func itemLine(p server.Published) string { return fmt.Sprintf("%d %s", p.ID, p.Value) }
