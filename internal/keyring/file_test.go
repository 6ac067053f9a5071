package keyring

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestTokenFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "token")
	if err := WriteTokenFile(path, "tok-1"); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadTokenFile(path); err != nil || got != "tok-1" {
		t.Fatalf("ReadTokenFile = %q, %v", got, err)
	}
	mode(t, path, 0o600)
	mode(t, filepath.Dir(path), 0o700)
	b, _ := os.ReadFile(path)
	if string(b) != "tok-1\n" {
		t.Errorf("file holds %q, want one line", b)
	}
	// Replacing a file that others could read leaves one they cannot.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteTokenFile(path, "tok-2"); err != nil {
		t.Fatal(err)
	}
	mode(t, path, 0o600)
	if got, err := ReadTokenFile(path); err != nil || got != "tok-2" {
		t.Fatalf("ReadTokenFile = %q, %v", got, err)
	}
	noTemps(t, filepath.Dir(path))
}

func TestReadTokenFileRefusesOpenModes(t *testing.T) {
	for _, m := range []os.FileMode{0o640, 0o604, 0o620, 0o602, 0o660, 0o666, 0o700 | 0o070} {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte("tok\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, m); err != nil {
			t.Fatal(err)
		}
		_, err := ReadTokenFile(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: %v, want an error saying chmod 600 %s", m, err, path)
		}
	}
	// Owner-only modes other than 0600 are fine.
	for _, m := range []os.FileMode{0o400, 0o700} {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte("tok"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, m); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadTokenFile(path); err != nil || got != "tok" {
			t.Errorf("mode %04o: %q, %v", m, got, err)
		}
	}
}

func TestReadTokenFileContents(t *testing.T) {
	long := strings.Repeat("x", MaxTokenLen)
	for _, tc := range []struct {
		content, want, errPart string
	}{
		{"tok", "tok", ""},
		{"  tok \n\n", "tok", ""},
		{"\r\n\ttok\r\n", "tok", ""},
		{long + "\n", long, ""},
		{"", "", "empty"},
		{" \n\t\n", "", "empty"},
		{long + "x", "", "more than 128"},
		{strings.Repeat("x", 10000), "", "not a token"},
		{"tok\nother\n", "", "several lines"},
		{"tok\rother", "", "several lines"},
		{"to\x00k", "", "control character"},
		{"to\x1bk", "", "control character"},
	} {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadTokenFile(path)
		switch {
		case tc.errPart == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %q, %v; want %q", tc.content, got, err, tc.want)
		case tc.errPart != "" && (err == nil || !strings.Contains(err.Error(), tc.errPart) || !strings.Contains(err.Error(), path)):
			t.Errorf("%q: %q, %v; want an error naming the file and saying %q", tc.content, got, err, tc.errPart)
		}
	}
}

func TestReadTokenFileNotAFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing file: %v, want ErrNotFound", err)
	}
	if _, err := ReadTokenFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

// A FIFO is refused at once, not read from: reading would block until a
// writer came, and the tray with it.
func TestReadTokenFileFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	err := readWithin(t, path)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), "FIFO") {
		t.Errorf("FIFO: %v, want an error saying it is not a regular file", err)
	}
}

// A FIFO swapped in for the file between looking and opening is refused
// too: the open does not wait for a writer.
func TestReadTokenFileFIFOSwappedIn(t *testing.T) {
	dir := t.TempDir()
	path, reg, fifo := filepath.Join(dir, "token"), filepath.Join(dir, "reg"), filepath.Join(dir, "fifo")
	if err := os.WriteFile(path, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stop, swapped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(swapped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			if i%2 == 0 {
				if err = syscall.Mkfifo(fifo, 0o600); err == nil {
					err = os.Rename(fifo, path)
				}
			} else if err = os.WriteFile(reg, []byte("tok\n"), 0o600); err == nil {
				err = os.Rename(reg, path)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); <-swapped }()
	deadline := time.Now().Add(time.Second)
	for n := 0; n < 100 || time.Now().Before(deadline); n++ {
		err := readWithin(t, path)
		if err != nil && !strings.Contains(err.Error(), "not a regular file") && !errors.Is(err, ErrNotFound) {
			t.Fatalf("read %d: %v", n, err)
		}
	}
}

// readWithin reads the token file at path, failing the test if that
// takes more than a few seconds (a blocked open or read).
func readWithin(t *testing.T, path string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := ReadTokenFile(path)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		// Unblock the reader, if a FIFO holds it, so the test can end.
		if w, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		t.Fatalf("ReadTokenFile(%s) blocked", path)
		return nil
	}
}

// A symbolic link at the token file's name is replaced by the file, not
// written through: what it points to stays as it was.
func TestWriteTokenFileReplacesSymlink(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	victim := filepath.Join(elsewhere, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(elsewhere, "made")
	for target, to := range map[string]string{"token": victim, "token2": dangling} {
		path := filepath.Join(dir, target)
		if err := os.Symlink(to, path); err != nil {
			t.Fatal(err)
		}
		if err := WriteTokenFile(path, "tok"); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s after writing: %v, %v; want a regular file, mode 0600", path, fi, err)
		}
		if got, err := ReadTokenFile(path); err != nil || got != "tok" {
			t.Errorf("ReadTokenFile = %q, %v", got, err)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
		t.Errorf("the link's target holds %q, %v: written through the link", b, err)
	}
	mode(t, victim, 0o644)
	if _, err := os.Lstat(dangling); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dangling link's target was created: %v", err)
	}
	noTemps(t, dir)
}

func TestWriteTokenFileRefusesBadTokens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	for _, tok := range []string{"", " tok", "tok\n", "a\nb", strings.Repeat("x", MaxTokenLen+1), "a\x00b"} {
		if err := WriteTokenFile(path, tok); err == nil {
			t.Errorf("WriteTokenFile(%q) succeeded", tok)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused token left %s: %v", path, err)
	}
	noTemps(t, dir)
}

// TestWriteTokenFileFails: when the rename fails, the old content stays
// and no temporary file is left.
func TestWriteTokenFileFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.MkdirAll(filepath.Join(path, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteTokenFile(path, "tok"); err == nil {
		t.Fatal("WriteTokenFile over a non-empty directory succeeded")
	}
	noTemps(t, dir)
}

// TestWriteTokenFileAtomic: a reader running alongside writers sees one
// whole token or another, never a mix or an empty file.
func TestWriteTokenFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	a, b := strings.Repeat("a", MaxTokenLen), strings.Repeat("b", MaxTokenLen)
	if err := WriteTokenFile(path, a); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tok := a
			if i%2 == 1 {
				tok = b
			}
			if err := WriteTokenFile(path, tok); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 300 {
		got, err := ReadTokenFile(path)
		if err != nil || (got != a && got != b) {
			t.Errorf("read %q, %v", got, err)
			break
		}
	}
	close(stop)
	wg.Wait()
	noTemps(t, filepath.Dir(path))
}

func mode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %04o, want %04o", path, got, want)
	}
}

func noTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}
