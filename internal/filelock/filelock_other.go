//go:build !(linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd)

package filelock

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// errNoFlock matches errors.ErrUnsupported: the caller decides whether to
// go on without the lock.
var errNoFlock = fmt.Errorf("no flock on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// TryLock returns an error matching errors.ErrUnsupported.
func TryLock(f *os.File) error { return fmt.Errorf("lock %s: %w", f.Name(), errNoFlock) }

// Lock returns an error matching errors.ErrUnsupported.
func Lock(f *os.File) error { return fmt.Errorf("lock %s: %w", f.Name(), errNoFlock) }

// Unlock returns an error matching errors.ErrUnsupported.
func Unlock(f *os.File) error { return fmt.Errorf("unlock %s: %w", f.Name(), errNoFlock) }
