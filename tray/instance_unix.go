//go:build unix

package tray

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/harkapp/hark/internal/filelock"
	"github.com/harkapp/hark/internal/xdg"
)

// errRunning means another hark tray holds the instance lock.
var errRunning = errors.New("hark is already running in this session")

// lockInstance takes the lock that allows one tray per user session: an
// exclusive flock on a file in $XDG_RUNTIME_DIR (the session's own
// directory), or in the state directory when there is none. The kernel
// drops it when the process dies, so a crash never leaves hark locked out.
func lockInstance(stateDir string) (release func(), err error) {
	dir, ok := xdg.RuntimeDir()
	if !ok {
		dir = stateDir
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s for the instance lock: %w", dir, err)
	}
	path := filepath.Join(dir, "hark-tray.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the instance lock: %w", err)
	}
	switch err := filelock.TryLock(f); {
	case errors.Is(err, filelock.ErrLocked):
		f.Close()
		return nil, errRunning
	case errors.Is(err, errors.ErrUnsupported):
		// A Unix without flock (AIX, Solaris): no guard, as outside Unix.
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("the instance lock: %w", err)
	}
	return func() { f.Close() }, nil
}
