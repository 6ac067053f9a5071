//go:build unix

package tray

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// errRunning means another hark tray holds the instance lock.
var errRunning = errors.New("hark is already running in this session")

// lockInstance takes the lock that allows one tray per user session: an
// exclusive flock on a file in $XDG_RUNTIME_DIR (the session's own
// directory), or in the state directory when there is none. The kernel
// drops it when the process dies, so a crash never leaves hark locked out.
func lockInstance(stateDir string) (release func(), err error) {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if !filepath.IsAbs(dir) {
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
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errRunning
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
