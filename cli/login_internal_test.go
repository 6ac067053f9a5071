package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/desktoptest"
	"github.com/harkapp/hark/internal/keyring"
	"github.com/harkapp/hark/internal/tlstest"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/tray"
)

// loginServer is a TLS server requiring tokens, with one subscribe and
// one publish token, and a tray config that names it and its CA.
func loginServer(t *testing.T) (cfgPath, addr, sub, pub string) {
	t.Helper()
	dir, files := t.TempDir(), t.TempDir()
	ca := tlstest.NewCA(t, "hark test CA")
	cert, key := ca.Issue(t, "127.0.0.1").Write(t, files)
	sub, _, err := store.AddToken(dir, store.ScopeSubscribe, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err = store.AddToken(dir, store.ScopePublish, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", HTTP: "", DataDir: dir, CertFile: cert, KeyFile: key, Auth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	addr = "tls://" + s.Addr().String()
	cfgPath = filepath.Join(t.TempDir(), "config.toml")
	if err := tray.SaveSettings(cfgPath, tray.Settings{Server: addr, CAFile: ca.WriteCA(t, files)}); err != nil {
		t.Fatal(err)
	}
	return cfgPath, addr, sub, pub
}

func runLogin(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err = login(ctx, args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

// Without a Secret Service, hark login checks the token against the
// server named in the tray's config, over TLS with the config's CA, and
// writes it to the default token file, mode 0600, where the tray finds
// it. A refused token is not stored.
func TestLoginWithoutKeyring(t *testing.T) {
	cfgHome := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgHome)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	cfgPath, addr, sub, pub := loginServer(t)

	if _, _, err := runLogin(t, pub+"\n", "--config", cfgPath); err == nil || !strings.Contains(err.Error(), "Token refused") {
		t.Fatalf("login with a publish token: %v; want it refused", err)
	}
	tokenFile, err := keyring.DefaultTokenFile(tray.KeyringServer(addr))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(tokenFile) != filepath.Join(cfgHome, "hark", "tokens") {
		t.Fatalf("default token file %s", tokenFile)
	}
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Fatalf("a refused token was stored: %v", err)
	}
	stdout, stderr, err := runLogin(t, sub+"\n", "--config", cfgPath)
	if err != nil {
		t.Fatalf("login: %v (%s)", err, stderr)
	}
	if !strings.Contains(stdout, tokenFile) || !strings.Contains(stderr, "no Secret Service") {
		t.Fatalf("login said %q / %q; want where the token went", stdout, stderr)
	}
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", fi, err)
	}
	got, from, err := keyring.Lookup(context.Background(), tray.KeyringServer(addr), "")
	if err != nil || got != sub || from != tokenFile {
		t.Fatalf("the tray's lookup: %q from %q, %v", got, from, err)
	}
	// The file is this server's: a tray pointed at another server does
	// not send it there.
	if got, from, err := keyring.Lookup(context.Background(), tray.KeyringServer("tls://other.example:6789"), ""); !errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("another server's lookup: %q from %q, %v; want ErrNotFound", got, from, err)
	}
	if _, _, err := runLogin(t, "", "--config", cfgPath); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("login with nothing on stdin: %v", err)
	}
	if _, _, err := runLogin(t, sub, "--config", cfgPath, sub); err == nil || !strings.Contains(err.Error(), "history") {
		t.Fatalf("login with the token as an argument: %v", err)
	}
}

// With a Secret Service on the session bus (a real gnome-keyring), hark
// login keeps the token there, not in a file, and the tray's lookup finds
// it.
func TestLoginToKeyring(t *testing.T) {
	desktoptest.RequireKeyring(t)
	cfgHome := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgHome)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", desktoptest.StartKeyringBus(t))
	cfgPath, addr, sub, _ := loginServer(t)
	stdout, stderr, err := runLogin(t, sub+"\n", "--config", cfgPath)
	if err != nil {
		t.Fatalf("login: %v (%s)", err, stderr)
	}
	if !strings.Contains(stdout, keyring.FromSecretService) {
		t.Fatalf("login said %q; want the Secret Service", stdout)
	}
	if _, err := os.Stat(filepath.Join(cfgHome, "hark", "tokens")); !os.IsNotExist(err) {
		t.Fatalf("a token file was written beside the keyring: %v", err)
	}
	got, from, err := keyring.Lookup(context.Background(), tray.KeyringServer(addr), "")
	if err != nil || got != sub || from != keyring.FromSecretService {
		t.Fatalf("the tray's lookup: %q from %q, %v", got, from, err)
	}
}

// loginTables is loginServer, without a keyring, with a config file of
// [[servers]] tables instead, which tables makes from the server's
// address and CA file.
func loginTables(t *testing.T, tables func(addr, caFile string) []tray.ServerSettings) (cfgPath, addr, sub string) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	one, addr, sub, _ := loginServer(t)
	s, err := tray.LoadSettings(one)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(filepath.Dir(one), "tables.toml")
	if err := tray.SaveSettings(cfgPath, tray.Settings{Random: true, Classified: true, Servers: tables(addr, s.CAFile)}); err != nil {
		t.Fatal(err)
	}
	return cfgPath, addr, sub
}

// With several servers in the tray's settings, hark login asks which one
// and then takes that one's address and ca_file, by name.
func TestLoginNamesOneOfSeveralServers(t *testing.T) {
	cfgPath, addr, sub := loginTables(t, func(addr, caFile string) []tray.ServerSettings {
		return []tray.ServerSettings{{Name: "work", Address: addr, CAFile: caFile}, {Name: "home", Address: "127.0.0.1:1"}}
	})
	_, _, err := runLogin(t, sub+"\n", "--config", cfgPath)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "(work, home): say which with --server NAME") {
		t.Fatalf("login without --server: %v; want a usage error naming both", err)
	}
	if stdout, stderr, err := runLogin(t, sub+"\n", "--config", cfgPath, "--server", "Work"); err != nil || !strings.Contains(stdout, "Token accepted by "+addr) {
		t.Fatalf("login --server Work: %v (%s%s)", err, stdout, stderr)
	}
}

// A table whose address is a list (servers of one store, which share
// their tokens): hark login checks the token with the first that can be
// reached, and stores it under the list's name, where the tray looks.
func TestLoginToAList(t *testing.T) {
	var list string
	cfgPath, addr, sub := loginTables(t, func(addr, caFile string) []tray.ServerSettings {
		list = "tls://127.0.0.1:1," + addr // nobody at the first
		return []tray.ServerSettings{{Name: "work", Address: list, CAFile: caFile}}
	})
	if stdout, stderr, err := runLogin(t, sub+"\n", "--config", cfgPath, "--server", "work"); err != nil || !strings.Contains(stdout, "Token accepted by "+addr) {
		t.Fatalf("login --server work: %v (%s%s)", err, stdout, stderr)
	}
	if got, _, err := keyring.Lookup(context.Background(), tray.KeyringServer(list), ""); err != nil || got != sub {
		t.Fatalf("the tray's lookup for %s: %q, %v", list, got, err)
	}
}
