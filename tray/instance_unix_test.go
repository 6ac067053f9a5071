//go:build unix

package tray

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// One tray per session: a second lock is errRunning until the first is
// released. The lock is in $XDG_RUNTIME_DIR, or in the state directory
// when that is unset or not an absolute path.
func TestInstanceLock(t *testing.T) {
	for _, c := range []struct{ name, runtime string }{
		{"runtime dir", "abs"},
		{"no runtime dir", ""},
		{"relative runtime dir", "relative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rt, state := t.TempDir(), filepath.Join(t.TempDir(), "state")
			want := filepath.Join(state, "hark-tray.lock")
			switch c.runtime {
			case "abs":
				t.Setenv("XDG_RUNTIME_DIR", rt)
				want = filepath.Join(rt, "hark-tray.lock")
			default:
				t.Setenv("XDG_RUNTIME_DIR", c.runtime)
			}
			release, err := lockInstance(state)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(want); err != nil {
				t.Errorf("no lock file at %s: %v", want, err)
			}
			if _, err := lockInstance(state); !errors.Is(err, errRunning) {
				t.Fatalf("second lockInstance = %v, want errRunning", err)
			}
			if running, err := Running(state); err != nil || !running {
				t.Fatalf("Running = %v, %v while locked", running, err)
			}
			release()
			if running, err := Running(state); err != nil || running {
				t.Fatalf("Running = %v, %v after release", running, err)
			}
			again, err := lockInstance(state)
			if err != nil {
				t.Fatalf("lockInstance after release: %v", err)
			}
			again()
		})
	}
}
