package tray

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/keyring"
	"github.com/harkapp/hark/internal/tlstest"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// The lines the tray shows for the failures these tests cause, as
// netclient.Hint words them.
const (
	needsToken   = "Server needs a token: run hark login (see man hark)"
	tokenRefused = "Token refused by the server: run hark login"
	notTrusted   = "Certificate not trusted: set ca_file"
)

func TestKeyringServer(t *testing.T) {
	for in, want := range map[string]string{
		"example.org:6789":          "example.org:6789",
		"tls://example.org:6789":    "tls://example.org:6789",
		"TLS://example.org:6789":    "tls://example.org:6789",
		"Tls://[::1]:6789":          "tls://[::1]:6789",
		"127.0.0.1:1":               "127.0.0.1:1",
		"https://example.org:6790":  "https://example.org:6790", // refused by ParseAddr: as it is
		"not an address":            "not an address",
		"tls://hark.example.org:1 ": "tls://hark.example.org:1 ",
	} {
		if got := KeyringServer(in); got != want {
			t.Errorf("KeyringServer(%q) = %q, want %q", in, got, want)
		}
	}
	// Gateways of one store share one token, whatever the list's order.
	if a, b := KeyringServer("TLS://b:2,tls://a:1"), KeyringServer("tls://a:1, tls://b:2"); a != b || a != "tls://a:1,tls://b:2" {
		t.Errorf("KeyringServer of a list: %q and %q, want both tls://a:1,tls://b:2", a, b)
	}
	if KeyringServer("tls://h:1") == KeyringServer("h:1") {
		t.Error("a TLS server and the same host in plaintext share a keyring entry")
	}
}

func TestResolvePath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfg := "/etc/xdg/hark/config.toml"
	for in, want := range map[string]string{
		"":                "",
		"/abs/ca.pem":     "/abs/ca.pem",
		"ca.pem":          "/etc/xdg/hark/ca.pem",
		"certs/ca.pem":    "/etc/xdg/hark/certs/ca.pem",
		"../ca.pem":       "/etc/xdg/ca.pem",
		"~/hark/token":    filepath.Join(home, "hark/token"),
		"~":               home,
		"~other/ca.pem":   "/etc/xdg/hark/~other/ca.pem", // not a user's home: a name like any other
		"./token":         "/etc/xdg/hark/token",
		"dir/../ca.pem":   "/etc/xdg/hark/ca.pem",
		"/with space/ca":  "/with space/ca",
		"name with space": "/etc/xdg/hark/name with space",
	} {
		got, err := ResolvePath(cfg, in)
		if err != nil || got != want {
			t.Errorf("ResolvePath(%q, %q) = %q, %v; want %q", cfg, in, got, err, want)
		}
	}
}

func TestLoadSettingsTLSAndFiles(t *testing.T) {
	path := writeConfig(t, "server = \"tls://hark.example.org:6789\"\nca_file = \"ca.pem\"\ntoken_file = \"/run/hark/token\"\n")
	s, err := LoadSettings(path)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultSettings()
	want.Server, want.CAFile, want.TokenFile = "tls://hark.example.org:6789", "ca.pem", "/run/hark/token"
	if !s.equal(want) {
		t.Fatalf("loaded %+v, want %+v", s, want)
	}
	// Saved as written: relative stays relative.
	if err := SaveSettings(path, s); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`server = "tls://hark.example.org:6789"`, `ca_file = "ca.pem"`, `token_file = "/run/hark/token"`} {
		if !strings.Contains(string(raw), "\n"+line+"\n") {
			t.Errorf("the saved file lacks the line %s:\n%s", line, raw)
		}
	}
}

func TestLoadSettingsRefusesBadFiles(t *testing.T) {
	for _, c := range []struct{ content, key string }{
		{`ca_file = 1`, "ca_file"},
		{`token_file = true`, "token_file"},
		{`ca_file = ["a", "b"]`, "ca_file"},
		{"ca_file = \"a\\u0000b\"", "ca_file"},
		{`cafile = "ca.pem"`, "cafile"},
		{`token = "hark_secret"`, "token"},
	} {
		_, msg := loadBroken(t, c.content+"\n")
		if !strings.Contains(msg, c.key) {
			t.Errorf("%s: the message does not name %s: %s", c.content, c.key, msg)
		}
	}
}

// statusAt makes an app whose session is offline with err, and returns
// its status line and tooltip.
func statusAt(t *testing.T, err error) (status, tooltip string) {
	t.Helper()
	a := newApp(Options{Server: "tls://example.org:6789", ConfigPath: filepath.Join(t.TempDir(), "config.toml")}, slog.New(slog.DiscardHandler))
	a.servers[0].state = netclient.State{Addr: "tls://example.org:6789", RetryIn: 5 * time.Minute, Err: err}
	a.servers[0].stateAt = time.Date(2025, 3, 1, 12, 0, 0, 0, time.Local)
	return a.servers[0].status(), a.view().Tooltip
}

func TestAppStatusLineSaysWhatToFix(t *testing.T) {
	appEnv(t)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"auth required, wrapped", fmt.Errorf("hello: %w", netclient.ErrAuthRequired), needsToken},
		{"unknown authority", fmt.Errorf("TLS handshake with example.org:6789: %w", x509.UnknownAuthorityError{}), notTrusted},
		{"token refused", netclient.ErrAuthFailed, tokenRefused},
		{"keyring locked", fmt.Errorf("cannot get the token: %w", keyring.ErrLocked), "Keyring locked: unlock it, then Reconnect now"},
	} {
		status, tooltip := statusAt(t, c.err)
		if status != c.want || tooltip != "hark: "+c.want {
			t.Errorf("%s: status %q, tooltip %q; want %q (and no next try)", c.name, status, tooltip, c.want)
		}
	}
	// A failure that retrying may fix says when the next try is.
	status, tooltip := statusAt(t, errors.New("connection refused"))
	if status != "Offline, reconnecting to tls://example.org:6789…" ||
		tooltip != "hark: Offline, reconnecting to tls://example.org:6789… (next try at 12:05:00)" {
		t.Errorf("connection refused: %q, tooltip %q", status, tooltip)
	}
}

// authServer configures a server that requires a token, and returns a
// subscribe token for it.
func authServer(t *testing.T) (func(*server.Config), string) {
	t.Helper()
	dir := t.TempDir()
	tok, _, err := store.AddToken(dir, store.ScopeSubscribe, "tray test", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return func(c *server.Config) { c.DataDir, c.Auth = dir, true }, tok
}

func writeToken(t *testing.T, path, tok string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// awaitRetries waits until the session has failed n more times with an
// error that contains what.
func (f *fixture) awaitRetries(n int, what string) {
	f.t.Helper()
	for i := range n {
		f.logs.await(f.t, fmt.Sprintf("failure %d of %d: %s", i+1, n, what), func(r logRecord) bool {
			// Each try is one record: "disconnected", or "cannot connect"
			// (its repeats at debug level), not the count of repeats.
			retry := r.Msg == "disconnected" || strings.HasPrefix(r.Msg, "cannot connect to ") && !strings.Contains(r.Msg, " more time")
			return retry && strings.Contains(r.Attrs["err"], what)
		})
	}
}

// A server that needs a token: without one, the status says so and one
// popup tells the user, however often the session retries; a refused
// token is another problem, with a popup of its own; the token file,
// once right, connects.
func TestAppTokenProblems(t *testing.T) {
	srvConf, tok := authServer(t)
	var tokenFile string
	f := newFixtureServer(t, srvConf, func(f *fixture, o *Options) {
		tokenFile = filepath.Join(filepath.Dir(o.ConfigPath), "token")
		if err := SaveSettings(o.ConfigPath, Settings{Random: true, Classified: true, TokenFile: "token"}); err != nil {
			t.Fatal(err)
		}
	})
	f.a.opts.configRetry = 20 * time.Millisecond
	f.start()

	v := f.awaitView("the status saying a token is needed", func(v view) bool { return v.Status == needsToken })
	if v.Tooltip != "hark: "+needsToken || iconName(v.Icon) != "offline" {
		t.Fatalf("view %s", formatView(v))
	}
	f.awaitRetries(4, "requires a token")
	f.nextPopup(Popup{Title: "hark cannot connect", Body: needsToken, Group: problemGroup})

	writeToken(t, tokenFile, "hark_"+strings.Repeat("a", 52))
	f.awaitView("the status saying the token was refused", func(v view) bool { return v.Status == tokenRefused })
	f.awaitRetries(2, "refused the token")
	f.nextPopup(Popup{Title: "hark cannot connect", Body: tokenRefused, Group: problemGroup})

	writeToken(t, tokenFile, tok)
	f.connected()
	f.publish(wire.KindClassified, "for token holders")
	f.nextPopup(Popup{Title: "New classified ad", Body: "for token holders"})
	if p := f.popups.all(); len(p) != 3 {
		t.Fatalf("popups: %+v; want one per problem, and the ad", p)
	}
	if !slices.ContainsFunc(f.logs.all(), func(r logRecord) bool { return r.Msg == "using the token from "+tokenFile }) {
		t.Errorf("the log does not say where the token came from:\n%s", f.logs.dump())
	}
}

// The status line holds still while it says what to fix: no view a
// second for a countdown that is minutes long.
func TestAppProblemStatusDoesNotTick(t *testing.T) {
	srvConf, _ := authServer(t)
	f := newFixtureServer(t, srvConf, nil)
	f.start()
	f.awaitView("the status saying a token is needed", func(v view) bool { return v.Status == needsToken })
	n := len(f.views.all())
	time.Sleep(2500 * time.Millisecond)
	if views := f.views.all(); len(views) != n {
		t.Fatalf("%d views rendered while nothing changed:\n%s", len(views)-n, f.views.dump())
	}
}

// Do not disturb keeps the problem's popup back until it is left.
func TestAppProblemPopupWaitsForDoNotDisturb(t *testing.T) {
	srvConf, _ := authServer(t)
	f := newFixtureServer(t, srvConf, func(f *fixture, o *Options) {
		if err := SaveSettings(o.ConfigPath, Settings{Random: true, Classified: true, DoNotDisturb: true}); err != nil {
			t.Fatal(err)
		}
	})
	f.start()
	f.awaitView("the status saying a token is needed", func(v view) bool { return v.Status == needsToken })
	if p := f.popups.all(); len(p) != 0 {
		t.Fatalf("popups in do not disturb: %+v", p)
	}
	f.act(actDND)
	f.nextPopup(Popup{Title: "hark cannot connect", Body: needsToken, Group: problemGroup})
}

// tlsServer configures a TLS server with a certificate from a new CA for
// 127.0.0.1, and returns the CA's PEM.
func tlsServer(t *testing.T) (func(*server.Config), []byte) {
	t.Helper()
	ca := tlstest.NewCA(t, "hark test CA")
	certFile, keyFile := ca.Issue(t, "127.0.0.1").Write(t, t.TempDir())
	return func(c *server.Config) { c.CertFile, c.KeyFile = certFile, keyFile }, ca.CertPEM
}

func TestAppTLSWithoutCAFile(t *testing.T) {
	srvConf, _ := tlsServer(t)
	f := newFixtureServer(t, srvConf, func(f *fixture, o *Options) { o.Server = "tls://" + f.addr })
	f.start()
	f.awaitView("the status saying the certificate is not trusted", func(v view) bool { return v.Status == notTrusted })
	f.nextPopup(Popup{Title: "hark cannot connect", Body: notTrusted, Group: problemGroup})
}

func TestAppTLSWithCAFile(t *testing.T) {
	srvConf, caPEM := tlsServer(t)
	f := newFixtureServer(t, srvConf, func(f *fixture, o *Options) {
		o.Server, f.addr = "", "tls://"+f.addr
		// Relative to the config file's directory.
		if err := os.MkdirAll(filepath.Dir(o.ConfigPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(o.ConfigPath), "ca.pem"), caPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := SaveSettings(o.ConfigPath, Settings{Server: f.addr, Random: true, Classified: true, CAFile: "ca.pem"}); err != nil {
			t.Fatal(err)
		}
	})
	f.start()
	f.connected()
	f.publish(wire.KindClassified, "over TLS")
	f.nextPopup(Popup{Title: "New classified ad", Body: "over TLS"})
}

// A ca_file that is missing, or holds no certificate, is said in the
// status line, a popup and the log; hark does not connect (nor crash),
// and Reconnect now reads the file again.
func TestAppBrokenCAFile(t *testing.T) {
	srvConf, caPEM := tlsServer(t)
	var caFile string
	f := newFixtureServer(t, srvConf, func(f *fixture, o *Options) {
		o.Server, f.addr = "tls://"+f.addr, "tls://"+f.addr
		caFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := SaveSettings(o.ConfigPath, Settings{Random: true, Classified: true, CAFile: caFile}); err != nil {
			t.Fatal(err)
		}
	})
	f.start()
	v := f.views.next(t, "the first view")
	if v.Status != "ca_file not found: check config.toml" || iconName(v.Icon) != "offline" {
		t.Fatalf("first view %s", formatView(v))
	}
	p := f.popups.next(t, "the popup about ca_file")
	if p.Title != "hark cannot connect" || !strings.Contains(p.Body, caFile) || !strings.Contains(p.Body, "no such file") {
		t.Fatalf("popup %+v; want it to name %s and say it does not exist", p, caFile)
	}
	f.logs.await(t, "the error logged", func(r logRecord) bool {
		return r.Level == slog.LevelError && strings.Contains(r.Attrs["err"], caFile)
	})

	if err := os.WriteFile(caFile, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.act(actReconnect)
	f.awaitView("the status saying there is no certificate", func(v view) bool {
		return v.Status == "ca_file holds no certificate: check config.toml"
	})
	p = f.popups.next(t, "the popup about the certificate")
	if !strings.Contains(p.Body, "no PEM certificate") {
		t.Fatalf("popup %+v", p)
	}

	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	f.act(actReconnect)
	f.connected()
	f.publish(wire.KindClassified, "trusted at last")
	f.nextPopup(Popup{Title: "New classified ad", Body: "trusted at last"})
}

// The keyring is asked only where a token can be needed: a TLS server,
// a token_file, or after a server said it needs one. Asking starts the
// Secret Service and may ask for the keyring's password, which a user of
// a server on this machine without tokens should never see.
func TestTokenSourceAsksTheKeyringOnlyWhenNeeded(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var asked []string
	lookup := func(_ context.Context, server, tokenFile string) (string, string, error) {
		asked = append(asked, server+"|"+tokenFile)
		return "", "", fmt.Errorf("none: %w", keyring.ErrNotFound)
	}
	var wanted atomic.Bool
	plain := tokenSource(log, "127.0.0.1:6789", "", &wanted, lookup)
	if tok, err := plain(context.Background()); tok != "" || err != nil || len(asked) != 0 {
		t.Fatalf("plaintext server, no token_file: %q, %v, asked %v; want no lookup", tok, err, asked)
	}
	wanted.Store(true) // the server said ERR auth required
	if _, err := plain(context.Background()); err != nil || len(asked) != 1 {
		t.Fatalf("after auth required: %v, asked %v; want one lookup", err, asked)
	}
	var fresh atomic.Bool
	for _, c := range []struct{ server, file string }{{"tls://hark.example.org:6789", ""}, {"127.0.0.1:6789", "/tmp/token"}} {
		asked = nil
		if _, err := tokenSource(log, c.server, c.file, &fresh, lookup)(context.Background()); err != nil || len(asked) != 1 {
			t.Fatalf("%s with token_file %q: %v, asked %v; want a lookup", c.server, c.file, err, asked)
		}
	}
}

// A server on this machine that needs a token, and a token saved by hark
// login where the tray looks without a token_file (no keyring here: the
// server's own default token file): the first "auth required" makes the
// tray look and try again at once, not after the slow retry.
func TestAppLooksForATokenWhenTheServerAsks(t *testing.T) {
	srvConf, tok := authServer(t)
	f := newFixtureServer(t, srvConf, func(f *fixture, o *Options) {
		def, err := keyring.DefaultTokenFile(KeyringServer(f.addr))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(def), 0o700); err != nil {
			t.Fatal(err)
		}
		writeToken(t, def, tok)
	})
	f.a.opts.configRetry = time.Hour // a connection proves the immediate retry
	f.start()
	f.connected()
	f.publish(wire.KindClassified, "found the token")
	f.nextPopup(Popup{Title: "New classified ad", Body: "found the token"})
}
