package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// openBolt opens the bbolt file at path, shared (readOnly) or exclusive,
// waiting at most half a second for the other lock. What it refuses is
// sorted for its callers' messages: ErrLocked (another process holds the
// file), the system's error (permissions, a missing directory), or
// ErrCorrupt wrapping bbolt's complaint about the content. *file is set
// to the file bbolt opened, for closeAfterFault: a fault inside Open
// returns no db.
func openBolt(path string, readOnly bool, file **os.File) (*bolt.DB, error) {
	mode := os.FileMode(0o600)
	if readOnly {
		mode = 0
	}
	db, err := bolt.Open(path, mode, &bolt.Options{
		ReadOnly: readOnly,
		Timeout:  500 * time.Millisecond,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			*file = f
			return f, err
		},
	})
	var errno syscall.Errno
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, ErrLocked
	case err != nil && (errors.As(err, &pathErr) || errors.As(err, &errno)):
		return nil, err
	case err != nil:
		// Everything else bbolt refuses is the content: a bad magic or
		// checksum, another version, a file too short for its meta pages.
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return db, nil
}

// closeAfterFault closes what a fault (recovered) left open: db, or the
// file bbolt opened when Open itself faulted, with its lock; otherwise the
// directory stays locked until the process exits. The mapping bbolt made
// is leaked.
func closeAfterFault(db *bolt.DB, file *os.File) {
	switch {
	case db != nil:
		_ = db.Close()
	case file != nil:
		unlockFile(file)
		_ = file.Close()
	}
}
