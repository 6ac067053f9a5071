package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A second `hark --demo` in a session where hark runs says so before it
// starts anything: no demo server, no publish address that would be dead
// a moment later.
func TestDemoChecksTheInstanceFirst(t *testing.T) {
	runtime := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	// Another tray holds the lock, as a running one does.
	f, err := os.OpenFile(filepath.Join(runtime, "hark-tray.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "--demo")
	if code != 0 {
		t.Fatalf("second demo: exit %d, %s", code, stderr)
	}
	if want := "hark is already running"; !strings.Contains(stderr, want) || strings.Contains(stderr, "demo server is running") || strings.Contains(stderr, "publish --http") {
		t.Fatalf("second demo said %q; want only %q", stderr, want)
	}
}
