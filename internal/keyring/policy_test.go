package keyring

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/harkapp/hark/internal/desktoptest"
)

const policyServer = "news.example.org:6789"

// otherServer is a second server, whose token policyServer's must never
// be taken for.
const otherServer = "tls://other.example.org:6789"

// policyEnv points the session bus at addr ("" for none at all) and the
// config directory at a fresh one, and returns policyServer's default
// token file there.
func policyEnv(t *testing.T, addr string) (defaultFile string) {
	t.Helper()
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir()) // no bus socket there
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	def, err := DefaultTokenFile(policyServer)
	if err != nil {
		t.Fatal(err)
	}
	if dir := filepath.Join(cfg, "hark", "tokens"); filepath.Dir(def) != dir {
		t.Fatalf("DefaultTokenFile = %s, want a file in %s", def, dir)
	}
	return def
}

// The token file is where the tray's settings are: $XDG_CONFIG_HOME when
// it is an absolute path, else ~/.config, as the XDG spec says (a relative
// $XDG_CONFIG_HOME was an error here, and ignored by the tray).
func TestDefaultTokenFileDirectory(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for val, want := range map[string]string{
		"/cfg":     "/cfg/hark/tokens",
		"":         filepath.Join(home, ".config", "hark", "tokens"),
		"relative": filepath.Join(home, ".config", "hark", "tokens"),
	} {
		t.Setenv("XDG_CONFIG_HOME", val)
		def, err := DefaultTokenFile(policyServer)
		if err != nil || filepath.Dir(def) != want {
			t.Errorf("XDG_CONFIG_HOME=%q: %s, %v; want a file in %s", val, def, err, want)
		}
	}
	t.Setenv("HOME", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	if def, err := DefaultTokenFile(policyServer); err == nil || !strings.Contains(err.Error(), "set HOME or XDG_CONFIG_HOME, or name a token file") {
		t.Errorf("without a home: %s, %v; want an error saying what to set", def, err)
	}
}

// The default token file's name says which server it is for, and no two
// servers share one.
func TestDefaultTokenFileNames(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	def, err := DefaultTokenFile("tls://hark.example.org:6789")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^/cfg/hark/tokens/tls_hark\.example\.org_6789_[0-9a-f]{12}$`).MatchString(def) {
		t.Errorf("DefaultTokenFile = %s", def)
	}
	if again, _ := DefaultTokenFile("tls://hark.example.org:6789"); again != def {
		t.Errorf("DefaultTokenFile changed: %s, then %s", def, again)
	}
	seen := map[string]string{}
	for _, server := range []string{
		"tls://hark.example.org:6789", "hark.example.org:6789", "tls://hark.example.org:6790",
		"a:b", "a_b", "a/b", "a::b", "[::1]:6789", "tls://[::1]:6789", "..", ".", "-x", "a\x00b", "ü:1",
		strings.Repeat("x", 300), strings.Repeat("x", 301),
	} {
		name, err := tokenFileName(server)
		if err != nil {
			t.Fatalf("%q: %v", server, err)
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("%q and %q share the file %s", prev, server, name)
		}
		seen[name] = server
		if len(name) > 255 || !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(name) || name == "." || name == ".." {
			t.Errorf("%q: file name %q", server, name)
		}
	}
	if _, err := DefaultTokenFile(""); err == nil {
		t.Error("DefaultTokenFile of no server succeeded")
	}
}

func TestPolicySecretService(t *testing.T) {
	desktoptest.RequireKeyring(t)
	def := policyEnv(t, desktoptest.StartKeyringBus(t))
	ctx := testCtx(t)
	if _, _, err := Lookup(ctx, policyServer, ""); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "hark login") {
		t.Errorf("Lookup before Save: %v, want ErrNotFound saying to run hark login", err)
	}
	where, err := Save(ctx, policyServer, "tok", "")
	if err != nil || where != FromSecretService {
		t.Fatalf("Save = %q, %v; want the Secret Service", where, err)
	}
	tok, from, err := Lookup(ctx, policyServer, "")
	if err != nil || tok != "tok" || from != FromSecretService {
		t.Errorf("Lookup = %q, %q, %v", tok, from, err)
	}
	if _, err := os.Stat(def); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Save with a Secret Service wrote %s too", def)
	}
	// Another server has no token.
	if _, _, err := Lookup(ctx, "other:6789", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup of another server: %v", err)
	}
	// A file named explicitly wins, and is all that is read.
	explicit := filepath.Join(t.TempDir(), "tok")
	if err := WriteTokenFile(explicit, "file-tok"); err != nil {
		t.Fatal(err)
	}
	if tok, from, err := Lookup(ctx, policyServer, explicit); err != nil || tok != "file-tok" || from != explicit {
		t.Errorf("Lookup with a file = %q, %q, %v", tok, from, err)
	}
	if _, _, err := Lookup(ctx, policyServer, explicit+"-missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup with a missing file: %v", err)
	}
}

// TestPolicyFileWhenNotInService: a token saved to the default file
// while there was no Secret Service is still found once there is one.
func TestPolicyFileWhenNotInService(t *testing.T) {
	desktoptest.RequireKeyring(t)
	def := policyEnv(t, desktoptest.StartKeyringBus(t))
	if err := WriteTokenFile(def, "file-tok"); err != nil {
		t.Fatal(err)
	}
	tok, from, err := Lookup(testCtx(t), policyServer, "")
	if err != nil || tok != "file-tok" || from != def {
		t.Errorf("Lookup = %q, %q, %v; want the default file's", tok, from, err)
	}
	// It is policyServer's file: a server the Secret Service has no token
	// for does not get it.
	if tok, from, err := Lookup(testCtx(t), otherServer, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup of another server = %q, %q, %v; want ErrNotFound", tok, from, err)
	}
}

func TestPolicyLocked(t *testing.T) {
	desktoptest.RequireKeyring(t)
	addr := desktoptest.StartKeyringBus(t)
	def := policyEnv(t, addr)
	ctx := testCtx(t)
	if _, err := Save(ctx, policyServer, "tok", ""); err != nil {
		t.Fatal(err)
	}
	lockAll(t, dialTest(t, addr))
	if _, _, err := Lookup(ctx, policyServer, ""); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "unlock your keyring") {
		t.Errorf("Lookup in a locked keyring: %v, want ErrLocked", err)
	}
	// Save does not quietly put the credential in a file instead.
	if where, err := Save(ctx, policyServer, "tok2", ""); !errors.Is(err, ErrLocked) {
		t.Errorf("Save to a locked keyring = %q, %v; want ErrLocked", where, err)
	}
	if _, err := os.Stat(def); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Save to a locked keyring wrote %s", def)
	}
}

func TestPolicyNoService(t *testing.T) {
	desktoptest.RequireKeyring(t)
	testPolicyFile(t, desktoptest.StartSessionBus(t).Address())
}

func TestPolicyNoBus(t *testing.T) { testPolicyFile(t, "") }

func testPolicyFile(t *testing.T, addr string) {
	def := policyEnv(t, addr)
	ctx := testCtx(t)
	_, _, err := Lookup(ctx, policyServer, "")
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrNoService) || !strings.Contains(err.Error(), "hark login") {
		t.Errorf("Lookup before Save: %v, want ErrNotFound and ErrNoService, saying to run hark login", err)
	}
	where, err := Save(ctx, policyServer, "tok", "")
	if err != nil || where != def {
		t.Fatalf("Save = %q, %v; want %s", where, err, def)
	}
	mode(t, def, 0o600)
	tok, from, err := Lookup(ctx, policyServer, "")
	if err != nil || tok != "tok" || from != def {
		t.Errorf("Lookup = %q, %q, %v", tok, from, err)
	}
	// The file is policyServer's: another server finds no token, and
	// saving its own leaves policyServer's as it was.
	if tok, from, err := Lookup(ctx, otherServer, ""); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "hark login") {
		t.Errorf("Lookup of another server = %q, %q, %v; want ErrNotFound", tok, from, err)
	}
	otherDef, err := DefaultTokenFile(otherServer)
	if err != nil {
		t.Fatal(err)
	}
	if where, err := Save(ctx, otherServer, "other-tok", ""); err != nil || where != otherDef || otherDef == def {
		t.Fatalf("Save for another server = %q, %v; want %s, not %s", where, err, otherDef, def)
	}
	if tok, _, err := Lookup(ctx, otherServer, ""); err != nil || tok != "other-tok" {
		t.Errorf("Lookup of the other server = %q, %v", tok, err)
	}
	if tok, _, err := Lookup(ctx, policyServer, ""); err != nil || tok != "tok" {
		t.Errorf("Lookup after saving another server's = %q, %v", tok, err)
	}
	// The caller's file, when it names one.
	named := filepath.Join(t.TempDir(), "x", "token")
	if where, err := Save(ctx, policyServer, "tok2", named); err != nil || where != named {
		t.Fatalf("Save = %q, %v; want %s", where, err, named)
	}
	if tok, from, err := Lookup(ctx, policyServer, named); err != nil || tok != "tok2" || from != named {
		t.Errorf("Lookup = %q, %q, %v", tok, from, err)
	}
	// A default file others can read is refused, saying how to fix it.
	if err := os.Chmod(def, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Lookup(ctx, policyServer, ""); err == nil || !strings.Contains(err.Error(), "chmod 600 "+def) {
		t.Errorf("Lookup of a 0644 file: %v", err)
	}
}

func TestSaveRefusesBadInput(t *testing.T) {
	policyEnv(t, "")
	ctx := testCtx(t)
	for _, tc := range []struct{ server, token string }{{"", "tok"}, {policyServer, ""}, {policyServer, "a\nb"}} {
		if where, err := Save(ctx, tc.server, tc.token, ""); err == nil {
			t.Errorf("Save(%q, %q) = %q, want an error", tc.server, tc.token, where)
		}
	}
}
