//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package filelock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// TryLock takes an exclusive lock on f without waiting. When another
// open file description holds it, the error matches ErrLocked.
func TryLock(f *os.File) error {
	err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("lock %s: %w", f.Name(), ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return nil
}

// Lock takes an exclusive lock on f, waiting for as long as another open
// file description holds it. It is for locks held briefly (one read and
// one write); a lock that can be held for long wants TryLock.
func Lock(f *os.File) error {
	if err := flock(f, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return nil
}

// Unlock releases f's lock, whoever took it through f's open file
// description (bbolt's own, for one). Closing f releases it too, unless
// another descriptor of the same open (a dup, a memory map's hold) keeps
// the open alive.
func Unlock(f *os.File) error {
	if err := flock(f, syscall.LOCK_UN); err != nil {
		return fmt.Errorf("unlock %s: %w", f.Name(), err)
	}
	return nil
}

// flock runs flock(2) on f's descriptor. SyscallConn keeps f open for the
// call (a concurrent Close waits) and, unlike Fd, leaves the descriptor's
// blocking mode alone. A signal can interrupt a waiting lock: it is
// asked for again.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	cerr := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if !errors.Is(ferr, syscall.EINTR) {
				return
			}
		}
	})
	if cerr != nil {
		return cerr
	}
	return ferr
}
