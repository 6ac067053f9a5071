//go:build unix

package netclient

import (
	"os"
	"syscall"
)

// tryLock takes an exclusive advisory lock on f without waiting. The
// kernel drops it when the process dies, so a crash never strands an id.
func tryLock(f *os.File) bool {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}

func unlock(f *os.File) { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
