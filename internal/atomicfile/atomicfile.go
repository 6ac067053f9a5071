// Package atomicfile replaces a file so that a reader, or a crash, sees
// the old contents or the new, never a part. It exists because hark wrote
// files this way in several places with different care: one used a fixed
// ".tmp" name (two writers collided, and a link planted there was
// followed) and never synced; others synced the file but not the
// directory, or ignored every error after the rename.
//
// The way: a new temporary file with a unique name in the same directory
// (created with O_EXCL, so it never opens an existing file or a symbolic
// link), the contents written and the mode set on it, synced, closed,
// renamed over path, and the directory synced so that the rename itself
// survives a power cut.
//
// A symbolic link at path is replaced by the new file, and what it
// pointed to is left as it was: nothing is ever written through a link.
// A caller that wants a linked file (a config file kept in a dotfiles
// repository) to stay a link resolves path first (filepath.EvalSymlinks)
// and writes to the target.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, with mode perm. perm is the mode
// the file gets, exactly: the umask does not apply (the caller picked it
// for what the file holds: 0600 for a secret). The directory must exist.
//
// On an error nothing is left behind and path is as it was, except when
// syncing the directory after the rename fails: then path has the new
// contents, but a crash might still undo that.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// Write is WriteFile with fill writing the contents to the temporary
// file, and doing there whatever else must be done before the file takes
// path's place (a chown). The temporary file is mode 0600 until then.
// fill must not close it.
func Write(path string, perm os.FileMode, fill func(tmp *os.File) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// A leading dot keeps it out of directory listings; ".tmp" in the
	// name says what it is to whoever finds one after a crash.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			_ = tmp.Close() // a second Close only errs
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := fill(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Before the sync, so that the mode is as durable as the contents.
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: the file is written, but syncing its directory failed: %w", path, err)
	}
	return nil
}
