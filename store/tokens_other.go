//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

import (
	"errors"
	"os"
	"runtime"
)

// lockTokens refuses where this package has no flock: writing the token
// file without the lock could lose a concurrent writer's change. Reading
// (ListTokens, OpenTokens) works everywhere.
func lockTokens(string) (func(), error) {
	return nil, errors.New("changing tokens is not supported on " + runtime.GOOS + ": manage them on the server's (Linux) machine")
}

func chownLikeDir(*os.File, string) error { return nil }

// fileIno is 0: a change is seen through size and mtime alone.
func fileIno(os.FileInfo) uint64 { return 0 }
