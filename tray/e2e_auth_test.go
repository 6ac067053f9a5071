package tray_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/internal/desktoptest"
	"github.com/harkapp/hark/internal/keyring"
	"github.com/harkapp/hark/internal/tlstest"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/tray"
)

// authServer is a real `hark serve` that speaks TLS with a certificate
// from a private CA and requires a token, as README's "Running hark for
// others" sets one up.
type authServer struct {
	proto, api string // tls://127.0.0.1:PORT, https://127.0.0.1:PORT
	ca         *tlstest.CA
	subscribe  string // a subscribe token, for the tray
	publish    string // a publish token, for the test
}

func serveTLS(t *testing.T, d *desktoptest.Desktop) *authServer {
	t.Helper()
	s := &authServer{ca: tlstest.NewCA(t, "hark e2e CA")}
	certFile, keyFile := s.ca.Issue(t, "127.0.0.1").Write(t, t.TempDir())
	data := t.TempDir()
	var err error
	if s.subscribe, _, err = store.AddToken(data, store.ScopeSubscribe, "tray", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if s.publish, _, err = store.AddToken(data, store.ScopePublish, "e2e", time.Time{}); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, d, "serve", "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", data,
		"--tls-cert", certFile, "--tls-key", keyFile, "--auth")
	m := p.await(t, `hark serve is running" protocol=(tls://\S+) .*auth=true .*publish_api=(https://\S+)`)
	s.proto, s.api = m[1], m[2]
	return s
}

// publishAd publishes over HTTPS with the publish token, trusting the
// test's CA alone.
func (s *authServer) publishAd(t *testing.T, ad string) {
	t.Helper()
	c := &http.Client{Timeout: e2eTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ca.Pool()}}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest("POST", s.api+"/v1/classified", strings.NewReader(ad))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.publish)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish %q: %s", ad, resp.Status)
	}
}

// writeTrayConfig writes the tray's config.toml where hark looks for it
// by default ($XDG_CONFIG_HOME/hark), with the CA beside it.
func writeTrayConfig(t *testing.T, d *desktoptest.Desktop, s *authServer, extra string) {
	t.Helper()
	dir := filepath.Join(d.ConfigHome(), "hark")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.ca.WriteCA(t, dir)
	cfg := "server = \"" + s.proto + "\"\nca_file = \"ca.pem\"\n" + extra
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

func stopTray(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Errorf("hark after SIGTERM: %v, want exit status 0", err)
	}
}

func menuHas(t *testing.T, d *desktoptest.Desktop, bus, label string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	body, err := d.Call(ctx, bus, "/StatusNotifierItem/menu", "com.canonical.dbusmenu.GetLayout", int32(0), int32(-1), []string{})
	if err != nil {
		t.Fatal(err)
	}
	_, ok := findLabel(body[1], label)
	return ok
}

// TestTrayTLSAndToken runs the tray against a server beyond what a local
// setup needs: TLS with a private CA (ca_file) and a subscribe token,
// found in the desktop's real Secret Service (gnome-keyring) or in a
// token_file. Without a token, the user is told so, in a popup and the
// menu's first line.
func TestTrayTLSAndToken(t *testing.T) {
	desktoptest.Require(t)
	desktoptest.RequireKeyring(t)
	d := desktoptest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*e2eTimeout)
	defer cancel()
	if err := d.StartSecretService(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := dbus.Connect(d.BusAddress())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	secrets, err := keyring.Connect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	s := serveTLS(t, d)
	shown := popups(t, d)
	key := tray.KeyringServer(s.proto) // what hark login stores under

	// 1. No token anywhere: one popup, and the menu's first line, say
	// that the server needs one.
	writeTrayConfig(t, d, s, "")
	hark := startProc(t, d, "hark-no-token", "--log-level", "debug")
	bus := trayItem(t, d, hark.cmd.Process.Pid)
	hark.await(t, `msg="cannot connect to [^"]*" .*hint="Server needs a token: run hark login \(see man hark\)"`)
	n := nextPopup(t, shown)
	if n.Summary != "hark cannot connect" || n.Body != "Server needs a token: run hark login (see man hark)" || n.AppName != "hark" {
		t.Errorf("popup %q %q from %q, want \"hark cannot connect\" saying the server needs a token", n.Summary, n.Body, n.AppName)
	}
	hark.await(t, `msg="popup shown" title="hark cannot connect"`)
	if !menuHas(t, d, bus, "Server needs a token: run hark login (see man hark)") {
		t.Error("the menu's first line does not say the server needs a token")
	}
	screenshotMenu(t, d, "needs-a-token", isOfflineGrey)

	// 2. The token goes into the keyring, as hark login puts it there;
	// Reconnect now uses it at once, and an ad pops up.
	if err := secrets.Set(ctx, key, s.subscribe); err != nil {
		t.Fatal(err)
	}
	click(t, d, bus, "Reconnect now")
	hark.awaitAll(t, `msg="using the token from Secret Service"`, `msg=connected .*authenticated=true`)
	s.publishAd(t, "Bike for sale, 50 EUR")
	if n := nextPopup(t, shown); n.Summary != "New classified ad" || n.Body != "Bike for sale, 50 EUR" {
		t.Errorf("popup %q %q, want the ad", n.Summary, n.Body)
	}
	hark.await(t, `msg="popup shown" title="New classified ad"`)
	stopTray(t, hark)

	// 3. A fresh start with the token in the keyring (and in no file).
	if _, err := os.Stat(filepath.Join(d.ConfigHome(), "hark", "token")); !os.IsNotExist(err) {
		t.Fatalf("a default token file exists (%v): the token could have come from it", err)
	}
	hark = startProc(t, d, "hark-keyring", "--log-level", "debug")
	hark.awaitAll(t, `msg="using the token from Secret Service"`, `msg=connected .*authenticated=true`)
	s.publishAd(t, "Sofa, free to collect")
	if n := nextPopup(t, shown); n.Summary != "New classified ad" || n.Body != "Sofa, free to collect" {
		t.Errorf("popup %q %q, want the ad", n.Summary, n.Body)
	}
	hark.await(t, `msg="popup shown" title="New classified ad"`)
	stopTray(t, hark)

	// 4. token_file, with no token in the keyring.
	if err := secrets.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(d.Home(), "hark-token")
	if err := os.WriteFile(tokenFile, []byte(s.subscribe+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeTrayConfig(t, d, s, "token_file = \""+tokenFile+"\"\n")
	hark = startProc(t, d, "hark-token-file", "--log-level", "debug")
	hark.awaitAll(t, `msg="using the token from `+tokenFile+`"`, `msg=connected .*authenticated=true`)
	s.publishAd(t, "Lamp, 5 EUR")
	if n := nextPopup(t, shown); n.Summary != "New classified ad" || n.Body != "Lamp, 5 EUR" {
		t.Errorf("popup %q %q, want the ad", n.Summary, n.Body)
	}
	hark.await(t, `msg="popup shown" title="New classified ad"`)
	stopTray(t, hark)

	// What dunst displayed: one problem, three ads.
	hist, err := d.Popups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range hist {
		got = append(got, p.Summary+": "+p.Body)
	}
	want := []string{
		"hark cannot connect: Server needs a token: run hark login (see man hark)",
		"New classified ad: Bike for sale, 50 EUR",
		"New classified ad: Sofa, free to collect",
		"New classified ad: Lamp, 5 EUR",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("dunst showed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
