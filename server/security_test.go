package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/internal/tlstest"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// tlsServer starts a server whose two ports speak TLS with a certificate
// for 127.0.0.1 and localhost, issued by a CA made for the test.
func tlsServer(t *testing.T, cfg Config) (*Server, *tlstest.CA, string) {
	t.Helper()
	ca := tlstest.NewCA(t, "hark test CA")
	dir := t.TempDir()
	cfg.CertFile, cfg.KeyFile = ca.Issue(t, "127.0.0.1", "localhost").Write(t, dir)
	return startServer(t, cfg), ca, dir
}

// dialTLS opens a TLS protocol connection that trusts ca.
func dialTLS(t *testing.T, s *Server, ca *tlstest.CA) *linetest.Conn {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: testTimeout}, Config: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	nc, err := d.DialContext(ctx, "tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return linetest.New(t, nc)
}

// addToken creates a token in dir, as `hark token add` does.
func addToken(t *testing.T, dir string, scope store.Scope, expires time.Time) (string, store.Token) {
	t.Helper()
	secret, tok, err := store.AddToken(dir, scope, "test", expires)
	if err != nil {
		t.Fatalf("add token: %v", err)
	}
	return secret, tok
}

// The protocol over TLS: every command as in plaintext, and pushes.
func TestTLSProtocol(t *testing.T) {
	s, ca, _ := tlsServer(t, Config{})
	c := dialTLS(t, s, ca)
	c.Send("notif")
	c.Expect("OK")
	publish(t, s, wire.KindClassified, "over TLS")
	c.Expect(wire.NotifClassified)
	c.Send("classified?")
	c.Expect("over TLS")
	if !s.TLS() {
		t.Fatal("TLS() = false")
	}
}

// A plaintext client at the TLS port is told so in plaintext, and a TLS
// client at a plaintext port too: one line each, then the close.
func TestTLSMismatch(t *testing.T) {
	s, _, _ := tlsServer(t, Config{})
	plain := dial(t, s)
	plain.Send("notif")
	plain.Expect(wire.ErrTLSRequired)
	plain.ExpectEOF()

	// The first bytes of a ClientHello: a handshake record, TLS 1.0 framing.
	p := startServer(t, Config{})
	hello := dial(t, p)
	hello.Write("\x16\x03\x01\x00\xf4\x01\x00\x00\xf0\x03\x03")
	hello.Expect(wire.ErrNoTLS)
	hello.ExpectEOF()
}

// A refusal (too many connections) goes out in plaintext before any
// handshake, which a TLS client reads where the record header would be.
func TestTLSRefusalIsPlaintext(t *testing.T) {
	s, ca, _ := tlsServer(t, Config{MaxConns: 1})
	first := dialTLS(t, s, ca)
	first.Send("random?")
	first.Line()
	// Read as a TLS client would see it: the bytes before any handshake.
	refused := dial(t, s)
	refused.Expect(wire.ErrTooManyConns)
	refused.ExpectEOF()
}

// A new certificate is taken when its files change and on ReloadCert;
// connections opened before keep working.
func TestCertReload(t *testing.T) {
	looked := make(chan struct{}, 1)
	s, ca, dir := tlsServer(t, Config{onWatch: func() {
		select {
		case looked <- struct{}{}:
		default:
		}
	}})
	before := dialTLS(t, s, ca)
	before.Send("notif")
	before.Expect("OK")
	serialOf := func(c *linetest.Conn) string {
		return c.NC.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	old := serialOf(before)

	// A renewal as certbot does it: new files in place.
	next := ca.Issue(t, "127.0.0.1", "localhost")
	next.Write(t, dir)
	deadline := time.Now().Add(testTimeout)
	for {
		c := dialTLS(t, s, ca)
		if serialOf(c) == next.Cert.SerialNumber.String() {
			break
		}
		c.NC.Close()
		select { // the watcher's next look at the files
		case <-looked:
		case <-time.After(time.Until(deadline)):
			t.Fatal("the server still presents the old certificate after its files changed")
		}
	}
	if serialOf(before) != old {
		t.Fatal("an open connection changed certificate")
	}
	publish(t, s, wire.KindClassified, "still here")
	before.Expect(wire.NotifClassified)

	// A broken renewal (key of another certificate) keeps the current one.
	other := ca.Issue(t, "127.0.0.1")
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), other.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadCert(); err == nil {
		t.Fatal("ReloadCert with a mismatched key succeeded")
	}
	if c := dialTLS(t, s, ca); serialOf(c) != next.Cert.SerialNumber.String() {
		t.Fatal("a failed reload replaced the certificate")
	}
}

// A broken renewal noticed by the watcher is reported once, not at
// every look, and tried again only when its files change again.
func TestBrokenCertReportedOnce(t *testing.T) {
	looks := make(chan struct{}, 64)
	log := &logRecords{}
	s, ca, dir := tlsServer(t, Config{Logger: slog.New(log), onWatch: func() {
		select {
		case looks <- struct{}{}:
		default:
		}
	}})
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), ca.Issue(t, "127.0.0.1").KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	failed := func() int {
		n := 0
		for _, l := range log.all() {
			if strings.Contains(l, "TLS certificate not reloaded") {
				n++
			}
		}
		return n
	}
	for seen := 0; seen < 5*certCheckTicks; { // five looks at the files at least
		select {
		case <-looks:
			seen++
		case <-time.After(testTimeout):
			t.Fatal("the watcher stopped")
		}
	}
	if n := failed(); n != 1 {
		t.Fatalf("the broken pair was reported %d times, want once", n)
	}
	dialTLS(t, s, ca) // the old pair still serves
}

// With --auth, a subscriber needs a subscribe token as its first command;
// a version-1 client is told so and never served.
func TestAuthRequired(t *testing.T) {
	dir := t.TempDir()
	sub, _ := addToken(t, dir, store.ScopeSubscribe, time.Time{})
	pub, _ := addToken(t, dir, store.ScopePublish, time.Time{})
	s := startServer(t, Config{DataDir: dir, Auth: true})

	v1 := dial(t, s)
	v1.Send("notif", "random?")
	v1.Expect(wire.ErrAuthRequired)
	v1.ExpectEOF()

	hello := dial(t, s)
	hello.Send("hello laptop v2")
	hello.Expect(wire.ErrAuthRequired)
	hello.ExpectEOF()

	for _, bad := range []string{"auth " + pub, "auth hark_" + strings.Repeat("a", 52), "auth", "auth " + strings.Repeat("x", 200)} {
		c := dial(t, s)
		c.Send(bad, "random?") // pipelined: never answered after a failure
		c.Expect(wire.ErrAuthFailed)
		c.ExpectEOF()
	}

	c := dial(t, s)
	c.Send("", "auth "+sub, "hello laptop v2", "notif") // an empty line is not a command
	c.Expect("OK")
	if _, err := wire.ParseHello(c.Line()); err != nil {
		t.Fatal(err)
	}
	c.Expect("OK")
	publish(t, s, wire.KindClassified, "for token holders")
	c.Expect(wire.NotifClassified)
	c.Send("auth " + sub)
	c.Expect(wire.ErrAuthNotFirst)
	c.Send("classified?")
	if !strings.HasSuffix(c.Line(), " for token holders") {
		t.Fatal("identified fetch after auth failed")
	}
}

// Without --auth, auth is optional but checked: a client can verify its
// token (hark login), and a wrong one is refused.
func TestAuthOptional(t *testing.T) {
	dir := t.TempDir()
	sub, _ := addToken(t, dir, store.ScopeSubscribe, time.Time{})
	s := startServer(t, Config{DataDir: dir})
	c := dial(t, s)
	c.Send("random?")
	c.Line()
	ok := dial(t, s)
	ok.Send("auth " + sub)
	ok.Expect("OK")
	bad := dial(t, s)
	bad.Send("auth hark_" + strings.Repeat("b", 52))
	bad.Expect(wire.ErrAuthFailed)
	bad.ExpectEOF()
}

// Tokens added or revoked by another process (hark token) take effect on
// the running server; a revoked or expired token's connections end.
func TestTokensChangeWhileRunning(t *testing.T) {
	dir := t.TempDir()
	hook, waitFor := watched()
	var looks atomic.Int64
	s := startServer(t, Config{DataDir: dir, Auth: true, onWatch: func() { looks.Add(1); hook() }})
	sub, tok := addToken(t, dir, store.ScopeSubscribe, time.Time{})
	waitFor(t, "the server to see the new token", func() bool {
		_, err := s.tokens.Check(sub, store.ScopeSubscribe, time.Now())
		return err == nil
	})
	c := dial(t, s)
	c.Send("auth "+sub, "notif")
	c.Expect("OK", "OK")
	before := looks.Load()
	if _, err := store.RevokeToken(dir, tok.ID); err != nil {
		t.Fatal(err)
	}
	c.ExpectEOF() // ended by the revocation, without a line
	// Within a second: the watcher looks every 250 ms, and the look that
	// sees the change ends the connection (counted, not timed).
	if n := looks.Load() - before; n > int64(time.Second/tokenCheckEvery) {
		t.Fatalf("the revoked token's connection ended %d looks (of %v) after the revocation", n, tokenCheckEvery)
	}

	soon := time.Now().Add(2 * time.Second)
	exp, _ := addToken(t, dir, store.ScopeSubscribe, soon)
	waitFor(t, "the server to see the expiring token", func() bool {
		_, err := s.tokens.Check(exp, store.ScopeSubscribe, time.Now())
		return err == nil
	})
	e := dial(t, s)
	e.Send("auth "+exp, "notif")
	e.Expect("OK", "OK")
	e.ExpectEOF() // ended when it expired
	late := dial(t, s)
	late.Send("auth " + exp)
	late.Expect(wire.ErrAuthExpired)
	late.ExpectEOF()
}

// watched returns a Config hook that signals each look of the watcher,
// and a wait for cond to hold after one of them.
func watched() (func(), func(t *testing.T, what string, cond func() bool)) {
	looked := make(chan struct{}, 1)
	hook := func() {
		select {
		case looked <- struct{}{}:
		default:
		}
	}
	wait := func(t *testing.T, what string, cond func() bool) {
		t.Helper()
		deadline := time.After(testTimeout)
		for !cond() {
			select {
			case <-looked:
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	return hook, wait
}

// No token is taken in plaintext from another machine, whatever it is.
func TestTokenNeverInClearFromAfar(t *testing.T) {
	dir := t.TempDir()
	sub, _ := addToken(t, dir, store.ScopeSubscribe, time.Time{})
	s := startServer(t, Config{DataDir: dir})
	far := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
	if r := s.checkToken(sub, store.ScopeSubscribe, far, false); r.reply != wire.ErrAuthInClear {
		t.Fatalf("plaintext from afar: %q", r.reply)
	}
	if r := s.checkToken(sub, store.ScopeSubscribe, far, true); r.reply != "" {
		t.Fatalf("TLS from afar: %q", r.reply)
	}
	near := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 40000}
	if r := s.checkToken(sub, store.ScopeSubscribe, near, false); r.reply != "" {
		t.Fatalf("plaintext from loopback: %q", r.reply)
	}
}

// Failures from one source are answered more slowly each time, up to a
// bound; a source forgets them after a quiet while.
func TestAuthSlowDown(t *testing.T) {
	var a authFailures
	src := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	var got []time.Duration
	for range authFreeTries + 20 {
		got = append(got, a.fail(src, now))
	}
	for i, d := range got {
		switch {
		case i < authFreeTries && d != 0:
			t.Fatalf("try %d delayed %v: the first %d are free", i+1, d, authFreeTries)
		case i >= authFreeTries && (d <= 0 || d > maxAuthDelay || d < got[i-1]):
			t.Fatalf("try %d delayed %v after %v", i+1, d, got[i-1])
		}
	}
	if got[len(got)-1] != maxAuthDelay {
		t.Fatalf("delay did not reach its bound: %v", got[len(got)-1])
	}
	if d := a.fail(netip.MustParseAddr("192.0.2.2"), now); d != 0 {
		t.Fatalf("another source was slowed: %v", d)
	}
	if d := a.fail(src, now.Add(authForget+time.Second)); d != 0 {
		t.Fatalf("failures not forgotten after a quiet while: %v", d)
	}
	for i := range maxAuthSources + 10 { // bounded, whatever the sources
		a.fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if n := len(a.src); n > maxAuthSources {
		t.Fatalf("%d sources recorded, bound %d", n, maxAuthSources)
	}
	if d := a.fail(netip.MustParseAddr("192.0.2.99"), now); d != 0 {
		t.Fatalf("a new source's first failure waits %v with the table full: everyone pays for one stranger", d)
	}
}

// The server slows down guessing through both doors: after the free
// tries, each failed auth of a source, on the protocol or the API, waits.
func TestAuthSlowDownOnTheWire(t *testing.T) {
	var delays []time.Duration
	var mu sync.Mutex
	s := startServer(t, Config{Auth: true, onSlow: func(d time.Duration) {
		mu.Lock()
		delays = append(delays, d)
		mu.Unlock()
	}})
	bad := "hark_" + strings.Repeat("d", 52)
	for range authFreeTries {
		c := dial(t, s)
		c.Send("auth " + bad)
		c.Expect(wire.ErrAuthFailed)
	}
	status, _, _ := apiRequest(t, "http://"+s.HTTPAddr().String(), "", "/v1/classified", "x", nil, "Authorization", "Bearer "+bad)
	if status != http.StatusUnauthorized {
		t.Fatalf("bad Bearer token: %d", status)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(delays) != authFreeTries+1 || delays[authFreeTries-1] != 0 || delays[authFreeTries] != firstAuthDelay {
		t.Fatalf("delays %v: want %d free tries, then %v", delays, authFreeTries, firstAuthDelay)
	}
}

// Nothing beyond loopback without TLS, unless the operator insists; and
// beyond loopback, tokens are always required.
func TestListenPolicy(t *testing.T) {
	_, err := Start(Config{Listen: "0.0.0.0:0", HTTP: "", DataDir: t.TempDir()})
	if !errors.Is(err, ErrInsecure) {
		t.Fatalf("plaintext beyond loopback: %v, want ErrInsecure", err)
	}
	_, err = Start(Config{Listen: "127.0.0.1:0", HTTP: "[::]:0", DataDir: t.TempDir()})
	if !errors.Is(err, ErrInsecure) {
		t.Fatalf("publish API beyond loopback: %v, want ErrInsecure", err)
	}
	if _, err := Start(Config{DataDir: t.TempDir(), CertFile: "x.pem"}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("a certificate without its key: %v", err)
	}
	// The rules themselves, without listening anywhere.
	for _, c := range []struct {
		name     string
		cfg      Config
		auth     bool
		insecure bool
	}{
		{"loopback", Config{Listen: "127.0.0.1:6789", HTTP: "127.0.0.1:6790"}, false, false},
		{"loopback, --auth", Config{Listen: "127.0.0.1:6789", Auth: true}, true, false},
		{"beyond, TLS", Config{Listen: "0.0.0.0:6789", CertFile: "c", KeyFile: "k"}, true, false},
		{"API beyond, TLS", Config{Listen: "127.0.0.1:6789", HTTP: "[::]:6790", CertFile: "c", KeyFile: "k"}, true, false},
		{"beyond, --insecure-listen", Config{Listen: "0.0.0.0:6789", InsecureListen: true}, true, false},
		{"beyond, plaintext", Config{Listen: "0.0.0.0:6789"}, false, true},
		{"behind a proxy (--http-host)", Config{Listen: "127.0.0.1:6789", HTTP: "127.0.0.1:6790", HTTPHosts: []string{"hark.example.org"}}, true, false},
		// Loopback by hostport's rule: these were "beyond" before.
		{"LOCALHOST", Config{Listen: "LOCALHOST:6789", HTTP: "Localhost:6790"}, false, false},
		{"IPv4-mapped loopback", Config{Listen: "[::ffff:127.0.0.1]:6789"}, false, false},
		{"zoned ::1", Config{Listen: "[::1%lo]:6789"}, false, false},
		{"every interface", Config{Listen: ":6789"}, false, true},
	} {
		got, err := c.cfg.secured()
		if errors.Is(err, ErrInsecure) != c.insecure || (!c.insecure && err != nil) {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !c.insecure && got.Auth != c.auth {
			t.Errorf("%s: tokens required = %v, want %v", c.name, got.Auth, c.auth)
		}
	}
}

// An address that is not host:port is refused as such, not taken for one
// beyond loopback (nor, as "127.0.0.1:" was, for loopback on port 0).
func TestListenAddressChecked(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		says string
	}{
		{Config{Listen: "127.0.0.1:"}, `listen address "127.0.0.1:": missing port`},
		{Config{Listen: "127.0.0.1"}, "missing port"},
		{Config{Listen: "127.0.0.1:+6789"}, `port "+6789"`},
		{Config{Listen: "127.0.0.1:http"}, `port "http"`},
		{Config{Listen: "127.0.0.1:0", HTTP: "::1:6790"}, `publish API address "::1:6790": an IPv6 address goes in brackets`},
	} {
		_, err := c.cfg.secured()
		if err == nil || errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("secured(%q, %q) = %v, want an error saying %q", c.cfg.Listen, c.cfg.HTTP, err, c.says)
		}
	}
}

// apiRequest sends one request to the publish API with full control of
// Host and headers, over TLS when rootCAs is set.
func apiRequest(t *testing.T, base, host, path, body string, rootCAs *x509.CertPool, header ...string) (int, http.Header, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: rootCAs, ServerName: "127.0.0.1"}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e map[string]string
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/json" && !strings.HasPrefix(string(raw), "Client sent an HTTP request to an HTTPS server") {
		t.Fatalf("POST %s: %d with body %q, want a JSON reason", path, resp.StatusCode, raw)
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") == "application/json" {
		if json.Unmarshal(raw, &e) != nil || e["error"] == "" {
			t.Fatalf("POST %s: %d with body %q, want a JSON reason", path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, resp.Header, string(bytes.TrimSpace(raw))
}

// What a web page can make a browser send is refused, with or without a
// token: another origin, or a Host that only DNS rebinding would send.
// A terminal's request (no Origin, the address as Host) is served.
func TestPublishRefusesWebPages(t *testing.T) {
	cases := []struct {
		name   string
		host   string
		header []string
		want   int
	}{
		{"curl", "", nil, http.StatusCreated},
		{"localhost", "localhost:6790", nil, http.StatusCreated},
		{"a name not given", "hark.example.org", nil, http.StatusForbidden},
		{"cross-origin form", "", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"fetch metadata", "", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"DNS rebinding", "evil.example:6790", []string{"Origin", "http://evil.example:6790", "Sec-Fetch-Site", "same-origin"}, http.StatusForbidden},
		{"same-origin page on the server", "", []string{"Sec-Fetch-Site", "same-origin"}, http.StatusCreated},
	}
	check := func(s *Server, extra ...string) {
		t.Helper()
		base := "http://" + s.HTTPAddr().String()
		for _, c := range cases {
			status, _, body := apiRequest(t, base, c.host, "/v1/classified", "ad from "+c.name, nil, append(c.header, extra...)...)
			if status != c.want {
				t.Errorf("%s: %d %s, want %d", c.name, status, body, c.want)
			}
		}
	}
	// Without tokens: a browser is the only guard that is needed.
	check(startServer(t, Config{}))

	// Behind a reverse proxy that gives the API a public name: that name
	// is served, tokens are required, and a token does not make a web
	// page's request acceptable.
	dir := t.TempDir()
	pub, _ := addToken(t, dir, store.ScopePublish, time.Time{})
	cases[2].want = http.StatusCreated
	check(startServer(t, Config{DataDir: dir, HTTPHosts: []string{"hark.example.org"}}), "Authorization", "Bearer "+pub)
}

// A wildcard certificate's names are served Hosts: a rebinding page
// cannot get a valid session for them, and refusing them would refuse the
// server's own name.
func TestPublishHostFromWildcardCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "hark test CA")
	dir := t.TempDir()
	cert, key := ca.Issue(t, "*.example.org", "127.0.0.1").Write(t, dir)
	s := startServer(t, Config{CertFile: cert, KeyFile: key})
	base := "https://" + s.HTTPAddr().String()
	for host, want := range map[string]int{"hark.example.org": http.StatusCreated, "HARK.Example.org.": http.StatusCreated, "evil.example": http.StatusForbidden, "a.b.example.org": http.StatusForbidden} {
		if status, _, body := apiRequest(t, base, host, "/v1/classified", "ad", ca.Pool()); status != want {
			t.Errorf("Host %s: %d %s, want %d", host, status, body, want)
		}
	}
}

// With tokens required, publishing needs a publish token: 401 with a
// challenge without one or with a bad one, 403 for a subscribe token.
// Over TLS (HTTPS) it works as in plaintext.
func TestPublishBearer(t *testing.T) {
	dir := t.TempDir()
	pub, _ := addToken(t, dir, store.ScopePublish, time.Time{})
	sub, _ := addToken(t, dir, store.ScopeSubscribe, time.Time{})
	s, ca, _ := tlsServer(t, Config{DataDir: dir, Auth: true})
	base := "https://" + s.HTTPAddr().String()
	status, h, _ := apiRequest(t, base, "", "/v1/classified", "no token", ca.Pool())
	if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d, WWW-Authenticate %q", status, h.Get("WWW-Authenticate"))
	}
	status, h, _ = apiRequest(t, base, "", "/v1/classified", "bad token", ca.Pool(), "Authorization", "Bearer hark_"+strings.Repeat("c", 52))
	if status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("bad token: %d, WWW-Authenticate %q", status, h.Get("WWW-Authenticate"))
	}
	if status, _, body := apiRequest(t, base, "", "/v1/classified", "wrong scope", ca.Pool(), "Authorization", "Bearer "+sub); status != http.StatusForbidden {
		t.Fatalf("subscribe token: %d %s", status, body)
	}
	if status, _, body := apiRequest(t, base, "", "/v1/classified", "with token", ca.Pool(), "Authorization", "Bearer "+pub); status != http.StatusCreated {
		t.Fatalf("publish token: %d %s", status, body)
	}
	if status, _, body := apiRequest(t, base, "", "/v1/classified", "cross-origin with token", ca.Pool(), "Authorization", "Bearer "+pub, "Origin", "https://evil.example"); status != http.StatusForbidden {
		t.Fatalf("cross-origin with a token: %d %s", status, body)
	}
	// Plaintext HTTP at the HTTPS port is refused by net/http.
	if status, _, _ := apiRequest(t, "http://"+s.HTTPAddr().String(), "", "/v1/classified", "plaintext", nil); status != http.StatusBadRequest {
		t.Fatalf("plaintext at the HTTPS port: %d", status)
	}
}

// The server keeps no token in clear: not in the token file, not in the
// store, after they were used.
func TestNoTokenInClear(t *testing.T) {
	dir := t.TempDir()
	sub, _ := addToken(t, dir, store.ScopeSubscribe, time.Time{})
	s := startServer(t, Config{DataDir: dir, Auth: true})
	c := dial(t, s)
	c.Send("auth "+sub, "hello desk v2")
	c.Expect("OK")
	c.Line()
	stopServer(t, s)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(sub)) || bytes.Contains(b, []byte(strings.TrimPrefix(sub, "hark_"))) {
			t.Fatalf("%s holds the token in clear", e.Name())
		}
	}
}
