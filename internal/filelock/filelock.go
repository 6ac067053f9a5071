// Package filelock takes and releases advisory whole-file locks (flock)
// on open files. It exists so that the client id's slots, the tray's
// one-instance lock, the store's token writers and the release of
// bbolt's lock share one implementation: one build constraint (the
// platforms where flock exists, rather than "unix", which includes AIX
// and Solaris where it does not), one retry on EINTR, and one error for
// "someone else holds it".
//
// A flock belongs to an open file description: the kernel drops it when
// the last descriptor of that open is closed, so a process that dies
// never strands a lock. Two separate opens of one file conflict even in
// one process.
//
// Where flock does not exist, every function returns an error that
// matches errors.ErrUnsupported, and each caller decides what that means
// for it (go on unguarded, or refuse).
package filelock

import "errors"

// ErrLocked matches (errors.Is) TryLock's error when another open file
// description holds the lock.
var ErrLocked = errors.New("already locked by another process")
