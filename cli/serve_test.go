package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"

	"github.com/harkapp/hark/cli"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// inProcess is a cli.Serve running in a goroutine of the test.
type inProcess struct {
	log    *serveLog
	cancel context.CancelFunc
	done   chan error // receives Serve's result
	proto  string     // protocol address, from the log
	api    string     // publish API base URL, from the log
}

// startServe runs cli.Serve with args and waits, bounded, until it logs
// that it is running. The test fails if Serve returns first.
func startServe(t *testing.T, args ...string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcess{log: newServeLog(), cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- cli.Serve(ctx, args, io.Discard, p.log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(2 * testTimeout):
			t.Errorf("cli.Serve did not return after its context was cancelled")
		}
	})
	select {
	case <-p.log.running:
	case err := <-p.done:
		p.done <- err // for the cleanup
		t.Fatalf("cli.Serve returned before running: %v\nlog:\n%s", err, p.log)
	case <-time.After(testTimeout):
		t.Fatalf("cli.Serve did not log that it is running within %v\nlog:\n%s", testTimeout, p.log)
	}
	p.proto, p.api = p.log.addrs()
	if p.api == "" {
		t.Fatalf("no publish_api address in the log:\n%s", p.log)
	}
	return p
}

// stop cancels Serve's context and returns its result.
func (p *inProcess) stop(t *testing.T) error {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(2 * testTimeout):
		t.Fatalf("cli.Serve did not return within %v of its context's end\nlog:\n%s", 2*testTimeout, p.log)
		return nil
	}
}

func TestServeGracefulStop(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", dir)
	if !strings.HasPrefix(p.api, "http://127.0.0.1:") || !strings.HasPrefix(p.proto, "127.0.0.1:") {
		t.Fatalf("addresses %q and %q: want kernel-chosen loopback ports", p.proto, p.api)
	}

	c := linetest.Dial(t, p.proto)
	c.Send("hello serve-test")
	c.Expect("OK")
	ad := postItem(t, p.api, "classified", "Room to let, garden")
	c.Send("classified?", fmt.Sprintf("seen %d", ad.ID))
	c.Expect(itemLine(ad), "OK")

	if err := p.stop(t); err != nil {
		t.Fatalf("cli.Serve after cancel: %v, want nil (graceful exit)\nlog:\n%s", err, p.log)
	}
	log := p.log.String()
	for _, w := range []string{"shutting down", "stopped"} {
		if !strings.Contains(log, w) {
			t.Errorf("the log does not say %q:\n%s", w, log)
		}
	}
	// The connected client was let go, told (it said hello) that the
	// server is going away.
	c.Expect(wire.ErrGoingAway)
	c.ExpectEOF()

	// The store is closed and intact: another opener gets it, with the ad.
	st, err := store.Open(dir, store.Retention{})
	if err != nil {
		t.Fatalf("reopen the store after a graceful stop: %v", err)
	}
	defer st.Close()
	ads, _ := st.Items()
	if len(ads) != 1 || ads[0].ID != ad.ID || ads[0].Value != ad.Value {
		t.Errorf("store after stop holds %+v, want the ad %d %q", ads, ad.ID, ad.Value)
	}
	cl, found, err := st.Client("serve-test")
	if err != nil || !found || cl.Ad != ad.ID {
		t.Errorf("client position after stop: %+v found=%v err=%v, want ad %d", cl, found, err, ad.ID)
	}
}

func TestServeHTTPDisabled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log, done := newServeLog(), make(chan error, 1)
	go func() {
		done <- cli.Serve(ctx, []string{"--listen", "127.0.0.1:0", "--http", "", "--data", t.TempDir()}, io.Discard, log)
	}()
	select {
	case <-log.running:
	case err := <-done:
		t.Fatalf("cli.Serve --http '': %v\nlog:\n%s", err, log)
	case <-time.After(testTimeout):
		t.Fatalf("cli.Serve did not start\nlog:\n%s", log)
	}
	if proto, api := log.addrs(); proto == "" || api != "" {
		t.Errorf("with --http '': protocol %q, publish_api %q; want a protocol address and no API", proto, api)
	}
	c := linetest.Dial(t, mustAddr(t, log))
	c.Send("random?")
	if n := c.Line(); n == "" {
		t.Errorf("random? answered nothing")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("cli.Serve: %v", err)
		}
	case <-time.After(2 * testTimeout):
		t.Fatal("cli.Serve did not return")
	}
}

func mustAddr(t *testing.T, l *serveLog) string {
	t.Helper()
	proto, _ := l.addrs()
	if proto == "" {
		t.Fatalf("no protocol address in the log:\n%s", l)
	}
	return proto
}

// TestServeCorruptStore: a file that is not a hark store is refused with a
// message that says what to do, and is left as it was.
func TestServeCorruptStore(t *testing.T) {
	// A real store, cut short as a full disk or a bad copy would leave it.
	truncated := func(t *testing.T) []byte {
		dir := t.TempDir()
		st, err := store.Open(dir, store.Retention{})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, store.FileName))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 8192 {
			t.Fatalf("a fresh store is only %d bytes", len(b))
		}
		return b[:6000]
	}
	cases := []struct {
		name    string
		content func(t *testing.T) []byte
	}{
		{"short garbage", func(*testing.T) []byte { return []byte("this is not a bolt database\n") }},
		{"one page of garbage", func(*testing.T) []byte { return bytes.Repeat([]byte("garbage!"), 5000/8) }},
		{"64 KiB of garbage", func(*testing.T) []byte { return bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 16<<10) }},
		{"truncated store", truncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, store.FileName)
			content := tc.content(t)
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			err := cli.Serve(ctx, []string{"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", dir}, io.Discard, &stderr)
			if err == nil {
				t.Fatalf("cli.Serve on a corrupt store returned nil\nlog:\n%s", &stderr)
			}
			if ctx.Err() != nil {
				t.Fatalf("cli.Serve ran on a corrupt store until the test's deadline: %v", err)
			}
			msg := err.Error()
			for _, w := range []string{"corrupt", "move the file aside", path} {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("error %q does not wrap store.ErrCorrupt", msg)
			}
			after, rerr := os.ReadFile(path)
			if rerr != nil || !bytes.Equal(after, content) {
				t.Errorf("the corrupt file was changed (%d bytes before, %d after, %v)", len(content), len(after), rerr)
			}
			// Through Run it is a failure, not a usage mistake.
			code, _, runErr := run(t, "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", dir)
			if code != 1 || !strings.Contains(runErr, "move the file aside") {
				t.Errorf("hark serve on a corrupt store: exit status %d, stderr %q; want 1 and the advice", code, runErr)
			}
		})
	}
}

// TestServeStoreInUse: a second server on the same data directory is
// refused at once, and the first one is not disturbed.
func TestServeStoreInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	code, _, stderr := run(t, "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", dir)
	if code != 1 || !strings.Contains(stderr, "in use") || !strings.Contains(stderr, "--data") {
		t.Errorf("second hark serve on %s: exit status %d, stderr %q; want 1 and a message saying the store is in use", dir, code, stderr)
	}
	c := linetest.Dial(t, s.Addr().String())
	c.Send("random?")
	if n := c.Line(); n == "" {
		t.Errorf("the first server no longer answers random?")
	}
}

// TestServeAddressInUse: a port already taken is a failure that names it,
// found before anything is created in the data directory or published.
func TestServeAddressInUse(t *testing.T) {
	s := startServer(t)
	for _, taken := range []string{s.Addr().String(), s.HTTPAddr().String()} {
		data := t.TempDir()
		args := []string{"serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", data}
		if taken == s.Addr().String() {
			args[2] = taken
		} else {
			args[4] = taken
		}
		code, _, stderr := run(t, args...)
		if code != 1 || !strings.Contains(stderr, taken) {
			t.Errorf("hark %q (%s taken): exit status %d, stderr %q", args, taken, code, stderr)
		}
		if strings.Contains(stderr, "published") {
			t.Errorf("hark %q (%s taken) published before failing: %q", args, taken, stderr)
		}
		if ents, _ := os.ReadDir(data); len(ents) > 0 {
			t.Errorf("hark %q (%s taken) created %s in the data directory", args, taken, ents[0].Name())
		}
	}
}

func TestServePprof(t *testing.T) {
	p := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--pprof", "127.0.0.1:0")
	m := regexp.MustCompile(`\bpprof=(\S+)`).FindStringSubmatch(p.log.String())
	if m == nil {
		t.Fatalf("the running line names no pprof address:\n%s", p.log)
	}
	resp, err := http.Get(m[1] + "goroutine?debug=1")
	if err != nil {
		t.Fatalf("GET the goroutine profile: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("GET %sgoroutine?debug=1: %s\n%.300s", m[1], resp.Status, body)
	}
	// The publish API does not serve the profiles.
	resp, err = http.Get(p.api + "/debug/pprof/")
	if err != nil {
		t.Fatalf("GET the publish API: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the publish API answers /debug/pprof/ with %s, want 404", resp.Status)
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := http.Get(m[1]); err == nil {
		t.Errorf("the pprof endpoint still answers after the server stopped")
	}
}

func TestServePprofLoopbackOnly(t *testing.T) {
	var stderr bytes.Buffer
	err := cli.Serve(context.Background(), []string{"--data", t.TempDir(), "--pprof", "0.0.0.0:6060"}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "loopback only") {
		t.Fatalf("serve --pprof 0.0.0.0:6060: %v, want a loopback-only usage error", err)
	}
}

// TestServeLimitFlagsChecked: the limits on strangers take positive
// values, and one address cannot be allowed more than the server.
func TestServeLimitFlagsChecked(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--max-conns-per-addr", "0"}, "--max-conns-per-addr must be at least 1"},
		{[]string{"--max-conns-per-addr", "-5"}, "--max-conns-per-addr must be at least 1"},
		{[]string{"--max-conns-per-addr", "many"}, "max-conns-per-addr"},
		{[]string{"--max-conns", "10", "--max-conns-per-addr", "11"}, "--max-conns-per-addr 11 is above --max-conns 10"},
		{[]string{"--max-conns-per-addr", "10001"}, "--max-conns-per-addr 10001 is above --max-conns 10000"},
		{[]string{"--command-timeout", "0"}, "--command-timeout must be positive"},
		{[]string{"--command-timeout", "-1s"}, "--command-timeout must be positive"},
		{[]string{"--command-timeout", "soon"}, "command-timeout"},
	}
	for _, tc := range cases {
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--http", "", "--data", t.TempDir()}, tc.args...)
		code, stdout, stderr := run(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("hark %q: exit status %d, stdout %q, stderr %q; want 2 and a message saying %q", args, code, stdout, stderr, tc.want)
		}
	}
}

func TestServeHelpListsLimits(t *testing.T) {
	code, _, stderr := run(t, "serve", "--help")
	if code != 0 {
		t.Errorf("hark serve --help: exit status %d, want 0", code)
	}
	for _, w := range []string{"-max-conns-per-addr", "a tenth of --max-conns", "IPv6 /64", "-command-timeout", "(default 2m0s)"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("hark serve --help does not say %q:\n%s", w, stderr)
		}
	}
}

// TestServeLimits: --max-conns-per-addr and --command-timeout reach the
// server, and the per-address limit follows --max-conns unless given.
func TestServeLimits(t *testing.T) {
	p := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", t.TempDir(),
		"--max-conns-per-addr", "2", "--command-timeout", "200ms")
	if !strings.Contains(p.log.String(), "command_timeout=200ms max_conns=10000 max_conns_per_addr=2") {
		t.Errorf("the running line does not give the limits:\n%s", p.log)
	}
	a, b := linetest.Dial(t, p.proto), linetest.Dial(t, p.proto)
	for _, c := range []*linetest.Conn{a, b} {
		c.Send("random?")
		c.Line()
	}
	refused := linetest.Dial(t, p.proto)
	refused.Expect("ERR too many connections from your address")
	expectEOF(t, refused)
	// Silent since their reply: closed by the command timeout.
	expectEOF(t, a)
	expectEOF(t, b)

	q := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--max-conns", "30")
	if !strings.Contains(q.log.String(), "max_conns=30 max_conns_per_addr=3") {
		t.Errorf("with --max-conns 30, want 3 connections per address:\n%s", q.log)
	}
}

// expectEOF reads until the server closes the connection, failing on
// any line, a reset, or a read that times out.
func expectEOF(t *testing.T, c *linetest.Conn) {
	t.Helper()
	c.NC.SetReadDeadline(time.Now().Add(testTimeout))
	rest, err := io.ReadAll(c.BR)
	if err != nil || len(rest) > 0 {
		t.Fatalf("want the connection closed, got %q, %v", rest, err)
	}
}
