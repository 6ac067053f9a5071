package tray

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/harkapp/hark/internal/atomicfile"
)

// writeAtomic replaces path with data (atomicfile), readable by the user
// only, creating its directory (0700) if needed. A symbolic link at path
// is replaced, not written through: a caller that wants a link kept
// resolves it first, as SaveSettings does.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, data, 0o600)
}
