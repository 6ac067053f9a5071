package sessionbus_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/harkapp/hark/internal/sessionbus"
)

// The bus socket in $XDG_RUNTIME_DIR is found when the variable is an
// absolute path, and ignored when it is relative, as the XDG spec says
// of every relative path in its variables.
func TestAddressFromRuntimeDir(t *testing.T) {
	dir := t.TempDir()
	rt := filepath.Join(dir, "rt")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(rt, "bus"))
	if err != nil {
		t.Skipf("no unix socket here: %v", err)
	}
	defer ln.Close()
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")

	t.Setenv("XDG_RUNTIME_DIR", rt)
	a, err := sessionbus.Address()
	if err != nil || !strings.HasPrefix(a, "unix:path=") || !strings.HasSuffix(a, "/rt/bus") {
		t.Fatalf("with XDG_RUNTIME_DIR=%s: %q, %v; want its bus socket", rt, a, err)
	}

	t.Chdir(dir)
	t.Setenv("XDG_RUNTIME_DIR", "rt")
	if a, err := sessionbus.Address(); !errors.Is(err, sessionbus.ErrNoBus) {
		t.Fatalf("with a relative XDG_RUNTIME_DIR: %q, %v; want ErrNoBus", a, err)
	}
}
