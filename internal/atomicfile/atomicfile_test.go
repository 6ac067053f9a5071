//go:build unix

package atomicfile_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/harkapp/hark/internal/atomicfile"
)

func TestWriteFileNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.toml")
	if err := atomicfile.WriteFile(path, []byte("a = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check(t, path, "a = 1\n", 0o600)
	onlyFiles(t, filepath.Dir(path), "settings.toml")
}

// perm is the mode, exactly: the umask does not take bits away.
func TestWriteFileModeIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "hark.desktop")
	if err := atomicfile.WriteFile(path, []byte("[Desktop Entry]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(t, path, "[Desktop Entry]\n", 0o644)
}

// An existing file is replaced, not rewritten: a new inode, with the new
// mode, so that a file that was readable by others does not hold a
// secret even for a moment.
func TestWriteFileReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("old, longer contents\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(path, []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check(t, path, "new\n", 0o600)
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(before, after) {
		t.Error("the file was rewritten in place, not replaced")
	}
}

// A symbolic link at path is replaced by the file; what it points to,
// existing or not, is not touched.
func TestWriteFileReplacesSymlink(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	victim := filepath.Join(elsewhere, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(elsewhere, "made")
	for name, to := range map[string]string{"link": victim, "dangling": dangling} {
		path := filepath.Join(dir, name)
		if err := os.Symlink(to, path); err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.WriteFile(path, []byte("new\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s after writing: %v, %v; want a regular file", path, fi, err)
		}
		check(t, path, "new\n", 0o600)
	}
	check(t, victim, "precious\n", 0o644)
	if _, err := os.Lstat(dangling); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dangling link's target was created: %v", err)
	}
}

// Whatever waits at a predictable temporary name (a link planted at
// PATH.tmp, as an older hark wrote there) is neither followed nor
// removed.
func TestWriteFileIgnoresFixedTempName(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hark.desktop")
	if err := os.Symlink(victim, path+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(path, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(t, path, "new\n", 0o644)
	check(t, victim, "precious\n", 0o600)
	if fi, err := os.Lstat(path + ".tmp"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the planted link was touched: %v, %v", fi, err)
	}
}

// On a failure the error names the file and wraps the cause, path keeps
// its old contents and no temporary file is left.
func TestWriteFileFailures(t *testing.T) {
	t.Run("rename over a directory", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "token")
		if err := os.MkdirAll(filepath.Join(path, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
		err := atomicfile.WriteFile(path, []byte("x"), 0o600)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("WriteFile over a non-empty directory: %v, want an error naming %s", err, path)
		}
		var le *os.LinkError
		if !errors.As(err, &le) {
			t.Errorf("the rename's error is not wrapped: %v", err)
		}
		onlyFiles(t, dir, "token")
	})
	t.Run("no directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing", "file")
		err := atomicfile.WriteFile(path, []byte("x"), 0o600)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Fatalf("WriteFile in a missing directory: %v, want ErrNotExist naming %s", err, path)
		}
	})
	t.Run("fill fails", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "tokens.json")
		if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := atomicfile.Write(path, 0o600, func(f *os.File) error {
			if _, err := f.WriteString("half"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
			t.Fatalf("Write with a failing fill: %v, want boom naming %s", err, path)
		}
		check(t, path, "old\n", 0o600)
		onlyFiles(t, dir, "tokens.json")
	})
	t.Run("read-only directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes into a read-only directory")
		}
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		err := atomicfile.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600)
		if !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("WriteFile in a read-only directory: %v, want ErrPermission", err)
		}
	})
}

// fill writes to a private temporary file next to path, before the mode
// is set: where the store chowns it.
func TestWriteFill(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.json")
	err := atomicfile.Write(path, 0o640, func(f *os.File) error {
		if filepath.Dir(f.Name()) != filepath.Clean(dir) || f.Name() == path {
			t.Errorf("the temporary file is %s, want another file in %s", f.Name(), dir)
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("the temporary file has mode %04o while it is written, want 0600", fi.Mode().Perm())
		}
		_, err = f.WriteString("{}\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, path, "{}\n", 0o640)
}

// A relative name is relative to the working directory.
func TestWriteFileRelative(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := atomicfile.WriteFile("plain", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	check(t, filepath.Join(dir, "plain"), "x", 0o600)
}

// Readers alongside concurrent writers see one whole version or another,
// never a mix or an empty file, and writers never collide on a
// temporary name.
func TestWriteFileConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	versions := [][]byte{bytes.Repeat([]byte("a"), 64<<10), bytes.Repeat([]byte("b"), 64<<10)}
	if err := atomicfile.WriteFile(path, versions[0], 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				if err := atomicfile.WriteFile(path, versions[(w+i)%2], 0o600); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		b, err := os.ReadFile(path)
		if err != nil || (!bytes.Equal(b, versions[0]) && !bytes.Equal(b, versions[1])) {
			t.Fatalf("read %d bytes, %v: not one whole version", len(b), err)
		}
	}
	onlyFiles(t, dir, "f")
}

func check(t *testing.T, path, want string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Errorf("%s holds %q, %v; want %q", path, b, err, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != mode {
		t.Errorf("%s has mode %04o, want %04o", path, got, mode)
	}
}

// onlyFiles checks that dir holds names and nothing else: no temporary
// file left behind.
func onlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}
