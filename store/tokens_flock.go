//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"fmt"
	"os"
	"syscall"

	"github.com/harkapp/hark/internal/filelock"
)

// lockTokens takes the writers' exclusive flock on dir itself. Locking
// the directory, rather than a lock file in it, creates nothing and
// follows nothing: a lock file would be opened (and, as root, chowned)
// through whatever symlink the directory's owner (the service user, the
// one with least privilege here) left in its place.
// The lock goes with the open descriptor, so a writer that dies
// releases it. Blocking is fine: a writer holds it for one read and one
// write.
func lockTokens(dir string) (unlock func(), err error) {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("lock tokens: %w", err)
	}
	if err := filelock.Lock(d); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("lock tokens: %w", err)
	}
	return func() {
		_ = filelock.Unlock(d)
		_ = d.Close()
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
