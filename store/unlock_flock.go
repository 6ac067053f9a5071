//go:build !windows && !plan9 && !solaris && !aix && !android

package store

import (
	"os"

	"github.com/harkapp/hark/internal/filelock"
)

// unlockFile releases the flock bbolt took on f (these are the platforms
// where bbolt locks with flock). Closing f alone is not enough when bbolt
// has mapped the file: the mapping keeps the locked file open.
func unlockFile(f *os.File) {
	_ = filelock.Unlock(f)
}
