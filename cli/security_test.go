package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/cli"
	"github.com/harkapp/hark/internal/tlstest"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/store"
)

// secureServer is a hark serve with TLS from a private CA and tokens
// required, as README's "Running hark for others" sets one up, with a
// token of each scope in files a client can name.
type secureServer struct {
	s                  *server.Server
	proto, api         string // tls://… and https://…
	caFile             string
	subFile, pubFile   string // mode 0600
	subToken, pubToken string
}

func startSecureServer(t *testing.T) *secureServer {
	t.Helper()
	dir, files := t.TempDir(), t.TempDir()
	ca := tlstest.NewCA(t, "hark test CA")
	cert, key := ca.Issue(t, "127.0.0.1", "localhost").Write(t, files)
	sub, _, err := store.AddToken(dir, store.ScopeSubscribe, "desk", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := store.AddToken(dir, store.ScopePublish, "ci", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", DataDir: dir, CertFile: cert, KeyFile: key, Auth: true})
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
	ss := &secureServer{s: s, proto: "tls://" + s.Addr().String(), api: "https://" + s.HTTPAddr().String(),
		caFile: ca.WriteCA(t, files), subToken: sub, pubToken: pub,
		subFile: filepath.Join(files, "sub.token"), pubFile: filepath.Join(files, "pub.token")}
	for f, tok := range map[string]string{ss.subFile: sub, ss.pubFile: pub} {
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ss
}

// A subscriber with a token and the private CA gets what a publisher with
// a publish token publishes, both over TLS, through hark's own commands.
func TestWatchAndPublishOverTLSWithTokens(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	ss := startSecureServer(t)
	out, logs := newLines(), newLines()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cli.Watch(ctx, []string{"--server", ss.proto, "--ca", ss.caFile, "--token-file", ss.subFile}, out, logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	logs.next(t, "msg=connected")
	code, stdout, stderr := run(t, "publish", "--http", ss.api, "--ca", ss.caFile, "--token-file", ss.pubFile, "classified", "Bike for sale")
	if code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "published classified ad") {
		t.Fatalf("publish said %q", stdout)
	}
	out.next(t, "classified Bike for sale")
}

// Each mistake a person can make gets its own message: no token, the
// wrong scope, an untrusted certificate, TLS on one side only.
func TestClientsSayWhatIsWrong(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("HARK_TOKEN", "")
	ss := startSecureServer(t)
	plain := startServer(t)
	watch := func(want string, args ...string) {
		t.Helper()
		logs := newLines()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cli.Watch(ctx, args, newLines(), logs) }()
		logs.next(t, want)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch %v: %v", args, err)
		}
	}
	watch("Server needs a token", "--server", ss.proto, "--ca", ss.caFile)
	watch("Token refused by the server", "--server", ss.proto, "--ca", ss.caFile, "--token-file", ss.pubFile)
	watch("Certificate not trusted", "--server", ss.proto, "--token-file", ss.subFile)
	watch("Server speaks TLS", "--server", strings.TrimPrefix(ss.proto, "tls://"))
	watch("Server does not speak TLS", "--server", "tls://"+plain.Addr().String())

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--ca", ss.caFile}, "needs a publish token"},
		{[]string{"--ca", ss.caFile, "--token-file", ss.subFile}, "may not publish"},
		{[]string{"--token-file", ss.pubFile}, "not trusted"},
	} {
		args := append(append([]string{"publish", "--http", ss.api}, c.args...), "classified", "x")
		if code, _, stderr := run(t, args...); code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("hark %s: exit %d, %q; want 1 and %q", strings.Join(args, " "), code, stderr, c.want)
		}
	}
	if code, _, stderr := run(t, "publish", "--http", "http://192.0.2.1:6790", "--token-file", ss.pubFile, "classified", "x"); code != 2 || !strings.Contains(stderr, "https://") {
		t.Errorf("a token in plaintext to another machine: exit %d, %q", code, stderr)
	}
	loose := filepath.Join(t.TempDir(), "loose.token")
	if err := os.WriteFile(loose, []byte(ss.pubToken), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "publish", "--http", ss.api, "--ca", ss.caFile, "--token-file", loose, "classified", "x"); code != 1 || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("a token file others can read: exit %d, %q", code, stderr)
	}
}

// hark bench runs over TLS with tokens, and checks its counts as always.
func TestBenchOverTLSWithTokens(t *testing.T) {
	ss := startSecureServer(t)
	code, stdout, stderr := run(t, "bench", "--server", ss.proto, "--http", ss.api, "--ca", ss.caFile,
		"--token-file", ss.subFile, "--publish-token-file", ss.pubFile, "--clients", "50", "--items", "5", "--json")
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	r := benchJSON(t, stdout)
	if r.Lost != 0 || r.Duplicated != 0 || r.Clients != 50 || r.Items != 5 {
		t.Fatalf("bench over TLS: %+v", r)
	}
}
