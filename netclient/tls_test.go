package netclient_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/internal/tlstest"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

const testToken = "hark_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx"

// pki is a test's CA, a server configuration with a certificate from it
// for 127.0.0.1, and a client configuration that trusts it.
type pki struct {
	ca     *tlstest.CA
	server *tls.Config
	client *tls.Config
}

func newPKI(t *testing.T, hosts ...string) pki {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	ca := tlstest.NewCA(t, "hark test CA")
	leaf := ca.Issue(t, hosts...)
	return pki{
		ca:     ca,
		server: &tls.Config{Certificates: []tls.Certificate{leaf.TLS(t)}, MinVersion: tls.VersionTLS12},
		client: &tls.Config{RootCAs: ca.Pool()},
	}
}

// serveTLSPeers runs a scripted TLS server: each connection, once its
// handshake succeeded, is handed to the test as a peer, which the test
// goroutine scripts. It stays open until the test ends.
func serveTLSPeers(t *testing.T, cfg *tls.Config) (addr string, peers <-chan *peer) {
	t.Helper()
	ch := make(chan *peer, 16)
	release := make(chan struct{})
	addr = linetest.ServeTLS(t, cfg, func(tc *tls.Conn) {
		ch <- &peer{t: t, nc: tc, br: bufio.NewReader(tc)}
		<-release
	})
	t.Cleanup(func() { close(release) }) // before ServeTLS's cleanup waits for handlers
	return addr, ch
}

// listenPeers listens on loopback in plaintext; accept returns the next
// connection as a peer, closed when the test ends.
func listenPeers(t *testing.T) (addr string, accept func() *peer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() *peer {
		t.Helper()
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitFor))
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
		return &peer{t: t, nc: sc, br: bufio.NewReader(sc)}
	}
}

type dialResult struct {
	c   *netclient.Conn
	err error
}

// goDial runs Dial in a goroutine (it waits for auth's answer, which the
// test goroutine scripts); a Conn it returns is closed when the test ends.
func goDial(t *testing.T, addr string, opts netclient.Options) <-chan dialResult {
	ch := make(chan dialResult, 1)
	ctx, cancel := context.WithTimeout(bg, waitFor)
	go func() {
		defer cancel()
		c, err := netclient.Dial(ctx, addr, opts)
		ch <- dialResult{c, err}
	}()
	return ch
}

func awaitDial(t *testing.T, ch <-chan dialResult) (*netclient.Conn, error) {
	t.Helper()
	r := await(t, ch, "Dial")
	if r.c != nil {
		t.Cleanup(func() { r.c.Close() })
	}
	return r.c, r.err
}

func dialNow(t *testing.T, addr string, opts netclient.Options) (*netclient.Conn, error) {
	t.Helper()
	return awaitDial(t, goDial(t, addr, opts))
}

func requireHint(t *testing.T, err error, want string) {
	t.Helper()
	if got := netclient.Hint(err); !strings.HasPrefix(got, want) {
		t.Fatalf("Hint(%v) = %q, want %q…", err, got, want)
	}
}

// A TLS client with the right CA and a token: auth is the first command,
// then the protocol as usual, inside TLS.
func TestTLSWithTokenWorks(t *testing.T) {
	k := newPKI(t)
	addr, peers := serveTLSPeers(t, k.server)
	pushes, onNotify := pushRecorder()
	res := goDial(t, "tls://"+addr, netclient.Options{TLS: k.client, Token: testToken, OnNotify: onNotify})
	p := await(t, peers, "the TLS connection")
	p.expect("auth " + testToken)
	p.write("OK\r\n")
	c, err := awaitDial(t, res)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if !c.Authenticated() {
		t.Fatal("Authenticated() = false after auth's OK")
	}
	hello(t, c, p)
	nres := goErr(func() error { return c.Notify(bg) })
	p.expect("notif")
	p.write("OK\r\nnotif: classified\r\n")
	if err := await(t, nres, "Notify"); err != nil {
		t.Fatal(err)
	}
	if k := await(t, pushes, "the push"); k != wire.KindClassified {
		t.Fatalf("push %q", k)
	}
	ires := goItem(func() (netclient.Item, error) { return c.Classified(bg) })
	p.expect("classified?")
	p.write("17 Nice flat\r\n")
	if r := await(t, ires, "Classified"); r.err != nil || r.item.ID != 17 {
		t.Fatalf("Classified = %+v, %v", r.item, r.err)
	}
	if n := c.Strays(); n != 0 {
		t.Fatalf("Strays() = %d", n)
	}
}

// Without a token, nothing is sent before the first command, TLS or not.
func TestTLSWithoutToken(t *testing.T) {
	k := newPKI(t)
	addr, peers := serveTLSPeers(t, k.server)
	c, err := dialNow(t, "tls://"+addr, netclient.Options{TLS: k.client})
	if err != nil {
		t.Fatal(err)
	}
	p := await(t, peers, "the TLS connection")
	ires := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("5\r\n")
	if r := await(t, ires, "Random"); r.err != nil || r.item.Value != "5" {
		t.Fatalf("Random = %+v, %v", r.item, r.err)
	}
}

func TestTLSUntrustedCertificate(t *testing.T) {
	k := newPKI(t)
	other := tlstest.NewCA(t, "another CA")
	addr, _ := serveTLSPeers(t, k.server)
	_, err := dialNow(t, "tls://"+addr, netclient.Options{TLS: &tls.Config{RootCAs: other.Pool()}, Token: testToken})
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("Dial with the wrong CA = %v, want an x509.UnknownAuthorityError", err)
	}
	requireHint(t, err, "Certificate not trusted")
	// Verification cannot be turned off.
	_, err = dialNow(t, "tls://"+addr, netclient.Options{TLS: &tls.Config{RootCAs: other.Pool(), InsecureSkipVerify: true}})
	if !errors.As(err, &ua) {
		t.Fatalf("Dial with InsecureSkipVerify = %v, want verification to fail all the same", err)
	}
}

func TestTLSCertificateForAnotherName(t *testing.T) {
	k := newPKI(t, "hark.example")
	addr, _ := serveTLSPeers(t, k.server)
	_, err := dialNow(t, "tls://"+addr, netclient.Options{TLS: k.client})
	var he x509.HostnameError
	if !errors.As(err, &he) {
		t.Fatalf("Dial = %v, want an x509.HostnameError", err)
	}
	requireHint(t, err, "Certificate is not for this server name")
	// The name to verify can be given.
	cfg := k.client.Clone()
	cfg.ServerName = "hark.example"
	if _, err := dialNow(t, "tls://"+addr, netclient.Options{TLS: cfg}); err != nil {
		t.Fatalf("Dial with ServerName: %v", err)
	}
}

// A plaintext client at a TLS port: the server's plaintext farewell says
// so, with a token (Dial fails) or without (the first command fails).
func TestPlaintextClientAtATLSPort(t *testing.T) {
	k := newPKI(t)
	addr, _ := serveTLSPeers(t, k.server)
	_, err := dialNow(t, addr, netclient.Options{Token: testToken})
	if !errors.Is(err, netclient.ErrServerWantsTLS) {
		t.Fatalf("Dial with a token = %v, want ErrServerWantsTLS", err)
	}
	requireHint(t, err, "Server speaks TLS: use tls://")

	c, err := dialNow(t, addr, netclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Random(bg); !errors.Is(err, netclient.ErrServerWantsTLS) {
		t.Fatalf("Random = %v, want ErrServerWantsTLS", err)
	}
	requireDone(t, c)
	if !errors.Is(c.Err(), netclient.ErrServerWantsTLS) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

// plaintextServer answers each connection with lines in plaintext, in
// separate writes, then closes as hark's server does after a farewell.
// With afterHello, it first waits for the client's first byte.
func plaintextServer(t *testing.T, afterHello bool, lines ...string) string {
	return linetest.Serve(t, func(nc net.Conn) {
		if afterHello {
			_ = nc.SetReadDeadline(time.Now().Add(linetest.Timeout))
			b := make([]byte, 1)
			if _, err := nc.Read(b); err != nil || b[0] != 0x16 {
				nc.Close()
				return
			}
		}
		for _, l := range lines[:len(lines)-1] {
			if _, err := nc.Write([]byte(l)); err != nil {
				nc.Close()
				return
			}
		}
		linetest.Farewell(nc, lines[len(lines)-1])
	})
}

// A TLS client at a plaintext port that answers its handshake with
// ErrNoTLS, in one write or cut in pieces.
func TestTLSClientAtAPlaintextPort(t *testing.T) {
	k := newPKI(t)
	for _, lines := range [][]string{
		{wire.ErrNoTLS},
		{"ERR ", "this port does not speak TLS", ": connect without tls://"},
	} {
		addr := plaintextServer(t, true, lines...)
		_, err := dialNow(t, "tls://"+addr, netclient.Options{TLS: k.client, Token: testToken})
		if !errors.Is(err, netclient.ErrServerNotTLS) {
			t.Fatalf("Dial = %v, want ErrServerNotTLS", err)
		}
		var se *netclient.ServerError
		if !errors.As(err, &se) || se.Line != wire.ErrNoTLS {
			t.Fatalf("Dial = %v, want the ServerError of %q", err, wire.ErrNoTLS)
		}
		requireHint(t, err, "Server does not speak TLS: remove tls://")
	}
}

// Before a handshake, only a refusal or a word about TLS is taken at its
// word: an auth verdict in plaintext there (a man in the middle's) is no
// TLS, not a refused token that sends the client into its slow retry.
func TestPlaintextAuthVerdictBeforeTheHandshake(t *testing.T) {
	k := newPKI(t)
	for _, line := range []string{wire.ErrAuthFailed, wire.ErrAuthExpired, wire.ErrAuthRequired} {
		addr := plaintextServer(t, false, line)
		_, err := dialNow(t, "tls://"+addr, netclient.Options{TLS: k.client, Token: testToken})
		if errors.Is(err, netclient.ErrAuthFailed) || errors.Is(err, netclient.ErrAuthRequired) || !errors.Is(err, netclient.ErrServerNotTLS) {
			t.Fatalf("%q before the handshake: %v; want ErrServerNotTLS", line, err)
		}
	}
}

// A TLS server refuses a connection in plaintext, before the handshake:
// the client returns the same error as for that farewell without TLS.
func TestTLSRefusedBeforeTheHandshake(t *testing.T) {
	k := newPKI(t)
	for _, line := range []string{wire.ErrTooManyConns, wire.ErrTooManyFromAddr} {
		addr := plaintextServer(t, false, line)
		_, err := dialNow(t, "tls://"+addr, netclient.Options{TLS: k.client})
		var se *netclient.ServerError
		if !errors.As(err, &se) || se.Line != line {
			t.Fatalf("Dial = %v, want the ServerError of %q", err, line)
		}
		if errors.Is(err, netclient.ErrServerNotTLS) || netclient.Hint(err) != "" {
			t.Fatalf("Dial = %v (hint %q): a refusal taken for a port without TLS", err, netclient.Hint(err))
		}
	}
	// Another line: quoted.
	addr := plaintextServer(t, false, "ERR something else")
	_, err := dialNow(t, "tls://"+addr, netclient.Options{TLS: k.client})
	if err == nil || !strings.Contains(err.Error(), `"ERR something else"`) {
		t.Fatalf("Dial = %v, want the line quoted", err)
	}
}

// Auth's failures are farewells: Dial returns them.
func TestAuthRefused(t *testing.T) {
	for _, tc := range []struct {
		line   string
		target error
		hint   string
	}{
		{wire.ErrAuthFailed, netclient.ErrAuthFailed, "Token refused by the server: run hark login"},
		{wire.ErrAuthFailed + ": revoked", netclient.ErrAuthFailed, "Token refused by the server: run hark login"},
		{wire.ErrAuthExpired, netclient.ErrTokenExpired, "Token expired: ask for a new one, then run hark login"},
		{wire.ErrAuthInClear, netclient.ErrTokenInClear, "Not sending the token without TLS: use tls://"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			addr, accept := listenPeers(t)
			res := goDial(t, addr, netclient.Options{Token: testToken})
			p := accept()
			p.expect("auth " + testToken)
			p.write(tc.line + "\r\n")
			_, err := awaitDial(t, res)
			if !errors.Is(err, tc.target) || !errors.Is(err, netclient.ErrAuthFailed) {
				t.Fatalf("Dial = %v, want %v and ErrAuthFailed", err, tc.target)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("the error %q holds the token", err)
			}
			requireHint(t, err, tc.hint)
		})
	}
}

// loopbackPair is a real loopback TCP connection: the client's end and
// the scripted server's.
func loopbackPair(t *testing.T) (net.Conn, *peer) {
	t.Helper()
	addr, accept := listenPeers(t)
	nc, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	return nc, accept()
}

// New with a token writes auth first; commands queue behind it, and all
// fail with the auth's farewell.
func TestAuthFailureFailsPendingCommands(t *testing.T) {
	nc, p := loopbackPair(t)
	c := netclient.New(nc, netclient.Options{Token: testToken})
	t.Cleanup(func() { c.Close() })
	hres := goHello(func() (wire.Hello, error) { return c.Hello(bg, "client-1") })
	p.expect("auth "+testToken, "hello client-1 v2")
	dres := goDo(bg, c, netclient.RandomCmd, netclient.NotifyCmd)
	p.expect("random?", "notif")
	p.write(wire.ErrAuthExpired + "\r\n")
	if r := await(t, hres, "Hello"); !errors.Is(r.err, netclient.ErrTokenExpired) {
		t.Fatalf("Hello = %v, want ErrTokenExpired", r.err)
	}
	if r := await(t, dres, "Do"); !errors.Is(r.err, netclient.ErrTokenExpired) {
		t.Fatalf("Do = %v, want ErrTokenExpired", r.err)
	}
	requireDone(t, c)
	if !errors.Is(c.Err(), netclient.ErrAuthFailed) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

// Without a token, a server that requires one ends the connection: every
// command pending fails with ErrAuthRequired.
func TestAuthRequired(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	hres := goHello(func() (wire.Hello, error) { return c.Hello(bg, "client-1") })
	p.expect("hello client-1 v2")
	dres := goDo(bg, c, netclient.RandomCmd, netclient.ClassifiedCmd)
	p.expect("random?", "classified?")
	p.write(wire.ErrAuthRequired + "\r\n")
	if r := await(t, hres, "Hello"); !errors.Is(r.err, netclient.ErrAuthRequired) {
		t.Fatalf("Hello = %v, want ErrAuthRequired", r.err)
	}
	r := await(t, dres, "Do")
	if !errors.Is(r.err, netclient.ErrAuthRequired) {
		t.Fatalf("Do = %v, want ErrAuthRequired", r.err)
	}
	var se *netclient.ServerError
	if !errors.As(r.err, &se) || se.Line != wire.ErrAuthRequired {
		t.Fatalf("Do = %v, want the ServerError", r.err)
	}
	requireHint(t, r.err, "Server needs a token: run hark login (see man hark)")
	requireDone(t, c)
}

// A server without auth answers it ERR unknown command: the client goes
// on without, on the same connection.
func TestAuthUnknownGoesOn(t *testing.T) {
	addr, accept := listenPeers(t)
	res := goDial(t, addr, netclient.Options{Token: testToken})
	p := accept()
	p.expect("auth " + testToken)
	p.write("ERR unknown command\r\n")
	c, err := awaitDial(t, res)
	if err != nil {
		t.Fatalf("Dial against a server without auth: %v", err)
	}
	if c.Authenticated() {
		t.Fatal("Authenticated() = true without an OK")
	}
	ires := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("5\r\n")
	if r := await(t, ires, "Random"); r.err != nil || r.item.Value != "5" {
		t.Fatalf("Random = %+v, %v", r.item, r.err)
	}
	if n := c.Strays(); n != 0 {
		t.Fatalf("Strays() = %d", n)
	}
}

// A token is not sent in plaintext off loopback: Dial refuses before it
// connects. Its ctx has already ended, so a Dial that tried to connect
// would fail with the ctx's error, not this one.
func TestTokenNotSentInClear(t *testing.T) {
	ctx, cancel := context.WithCancel(bg)
	cancel()
	for _, addr := range []string{"192.0.2.1:6789", "hark.example:6789", "[2001:db8::1]:6789", "0.0.0.0:6789"} {
		_, err := netclient.Dial(ctx, addr, netclient.Options{Token: testToken})
		if !errors.Is(err, netclient.ErrTokenInClear) || errors.Is(err, context.Canceled) {
			t.Fatalf("Dial(%s) with a token = %v, want ErrTokenInClear before any connect", addr, err)
		}
		if strings.Contains(err.Error(), testToken) {
			t.Fatalf("the error %q holds the token", err)
		}
		requireHint(t, err, "Not sending the token without TLS: use tls://")
	}
	// Loopback is fine (then the ctx ends the dial), and so is TLS.
	for _, addr := range []string{"127.0.0.1:6789", "localhost:6789", "[::1]:6789", "127.0.0.2:6789", "tls://192.0.2.1:6789"} {
		if _, err := netclient.Dial(ctx, addr, netclient.Options{Token: testToken}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Dial(%s) with a token = %v, want the ctx's error", addr, err)
		}
	}
}

func TestTokenMustBeOneWord(t *testing.T) {
	for _, tok := range []string{"a b", "tok\r\nrandom?", "tök", strings.Repeat("a", wire.MaxTokenBytes+1)} {
		_, err := netclient.Dial(bg, "127.0.0.1:1", netclient.Options{Token: tok})
		if err == nil || strings.Contains(err.Error(), tok) {
			t.Fatalf("Dial with token %q = %v, want an error that does not hold it", tok, err)
		}
	}
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want netclient.Addr
	}{
		{"127.0.0.1:6789", netclient.Addr{HostPort: "127.0.0.1:6789"}},
		{"hark.example:6789", netclient.Addr{HostPort: "hark.example:6789"}},
		{"tls://hark.example:6789", netclient.Addr{HostPort: "hark.example:6789", TLS: true}},
		{"TLS://[::1]:6789", netclient.Addr{HostPort: "[::1]:6789", TLS: true}},
		{"[::1]:6789", netclient.Addr{HostPort: "[::1]:6789"}},
	} {
		got, err := netclient.ParseAddr(tc.in)
		if err != nil || got != tc.want {
			t.Fatalf("ParseAddr(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if again, err := netclient.ParseAddr(got.String()); err != nil || again != got {
			t.Fatalf("ParseAddr(%q.String()) = %+v, %v", tc.in, again, err)
		}
	}
	for _, tc := range []struct{ in, says string }{
		{"http://hark.example:6790", "publish API"},
		{"https://hark.example:6790", "publish API"},
		{"ftp://hark.example:21", "unknown scheme"},
		{"hark.example", "missing port"},
		{"tls://hark.example", "missing port"},
		{"::1", "brackets"},
		{"::1:6789", "[::1]:6789"},
		{"hark.example:+6789", "port"},
		{"hark.example:", "missing port"},
		{"user@hark.example:6789", "host"},
		{"hark.example:http", "port"},
		{"hark.example:0", "port"},
		{"hark.example:65536", "port"},
		{"tls://hark.example:6789/", "port"},
		{"tls://:6789", "host"},
		{"", "no host"},
		{"tls://", "no host"},
	} {
		_, err := netclient.ParseAddr(tc.in)
		if !errors.Is(err, netclient.ErrBadAddr) || !strings.Contains(err.Error(), tc.says) {
			t.Fatalf("ParseAddr(%q) = %v, want ErrBadAddr saying %q", tc.in, err, tc.says)
		}
	}
	if _, err := netclient.Dial(bg, "https://hark.example:6790", netclient.Options{}); !errors.Is(err, netclient.ErrBadAddr) {
		t.Fatalf("Dial(https://…) = %v, want ErrBadAddr", err)
	}
}

func TestAddrLoopback(t *testing.T) {
	for in, want := range map[string]bool{
		"127.0.0.1:1": true, "127.1.2.3:1": true, "[::1]:1": true, "localhost:1": true, "LOCALHOST:1": true,
		"tls://localhost:1": true, "[::ffff:127.0.0.1]:1": true, "[::1%lo]:1": true,
		"192.0.2.1:1": false, "localhost.example:1": false, "[2001:db8::1]:1": false, "0.0.0.0:1": false, ":1": false,
	} {
		a, err := netclient.ParseAddr(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Loopback(); got != want {
			t.Errorf("ParseAddr(%q).Loopback() = %v, want %v", in, got, want)
		}
	}
}

func TestHintWithoutAnything(t *testing.T) {
	for _, err := range []error{nil, errors.New("connection refused"), netclient.ErrClosed, &netclient.ServerError{Line: wire.ErrTooManyConns}} {
		if h := netclient.Hint(err); h != "" {
			t.Errorf("Hint(%v) = %q, want none", err, h)
		}
	}
}
