//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// errSyncDirUnsupported is what fsync of a directory returns on file
// systems that cannot (some FUSE and network ones): nothing to make
// durable there, so not an error.
var errSyncDirUnsupported = syscall.EINVAL

// lockTokens takes the writers' exclusive flock on dir's lock file,
// creating it.
// The lock goes with the open file, so a writer that dies releases it.
// Blocking is fine: a writer holds it for one read and one write.
func lockTokens(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, tokensLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock tokens: %w", err)
	}
	if err := chownLikeDir(f, dir); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock tokens: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock tokens: flock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// chownLikeDir gives f the owner of dir when run as root, so that
// `sudo hark token add --data /var/lib/hark` leaves files the server's own
// user can still read (they are 0600). Otherwise f keeps the caller's.
func chownLikeDir(f *os.File, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}

// fileIno is fi's inode number: a rename over the file changes it even
// when size and mtime stay the same.
func fileIno(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
