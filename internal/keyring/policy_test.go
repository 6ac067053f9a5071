package keyring

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/harkapp/hark/internal/desktoptest"
)

const policyServer = "news.example.org:6789"

// policyEnv points the session bus at addr ("" for none at all) and the
// config directory at a fresh one, whose token path it returns.
func policyEnv(t *testing.T, addr string) (defaultFile string) {
	t.Helper()
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir()) // no bus socket there
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	return filepath.Join(cfg, "hark", "token")
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
