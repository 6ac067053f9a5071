//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package filelock_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/filelock"
)

// open opens path anew: a second open of one file is a second open file
// description, whose flock conflicts with the first's, as another
// process's would.
func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, b := open(t, path), open(t, path)
	if err := filelock.TryLock(a); err != nil {
		t.Fatalf("TryLock(a): %v", err)
	}
	// Asking again through the same open is no conflict.
	if err := filelock.TryLock(a); err != nil {
		t.Fatalf("TryLock(a) again: %v", err)
	}
	err := filelock.TryLock(b)
	if !errors.Is(err, filelock.ErrLocked) {
		t.Fatalf("TryLock(b) while a holds it: %v, want ErrLocked", err)
	}
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("the error does not name the file: %v", err)
	}
	if err := filelock.Unlock(a); err != nil {
		t.Fatalf("Unlock(a): %v", err)
	}
	if err := filelock.TryLock(b); err != nil {
		t.Fatalf("TryLock(b) after Unlock(a): %v", err)
	}
	if err := filelock.TryLock(a); !errors.Is(err, filelock.ErrLocked) {
		t.Fatalf("TryLock(a) while b holds it: %v, want ErrLocked", err)
	}
}

// Closing the file releases its lock: what happens when a process dies.
func TestCloseReleases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, b := open(t, path), open(t, path)
	if err := filelock.TryLock(a); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := filelock.TryLock(b); err != nil {
		t.Fatalf("TryLock(b) after a was closed: %v", err)
	}
}

// Unlock releases a lock taken through another descriptor of the same
// open file description: how the store releases the lock bbolt took
// when a mapping keeps the file open.
func TestUnlockThroughAnotherDescriptor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, b := open(t, path), open(t, path)
	if err := filelock.TryLock(a); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(int(a.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	dup := os.NewFile(uintptr(fd), path)
	defer dup.Close()
	a.Close() // the dup keeps the open, and with it the lock
	if err := filelock.TryLock(b); !errors.Is(err, filelock.ErrLocked) {
		t.Fatalf("TryLock(b) while a dup holds the lock: %v, want ErrLocked", err)
	}
	if err := filelock.Unlock(dup); err != nil {
		t.Fatal(err)
	}
	if err := filelock.TryLock(b); err != nil {
		t.Fatalf("TryLock(b) after Unlock(dup): %v", err)
	}
}

// Lock waits for the holder, on a directory as on a file.
func TestLockWaits(t *testing.T) {
	dir := t.TempDir()
	openDir := func() *os.File {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a, b := openDir(), openDir()
	if err := filelock.Lock(a); err != nil {
		t.Fatalf("Lock(a): %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- filelock.Lock(b) }()
	select {
	case err := <-got:
		t.Fatalf("Lock(b) returned while a holds the lock: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := filelock.Unlock(a); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Lock(b): %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Lock(b) still waits after Unlock(a)")
	}
	if err := filelock.TryLock(a); !errors.Is(err, filelock.ErrLocked) {
		t.Fatalf("TryLock(a) while b holds it: %v, want ErrLocked", err)
	}
}

// An error other than a conflict is not ErrLocked: a closed file.
func TestClosedFile(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "lock"))
	f.Close()
	for name, fn := range map[string]func(*os.File) error{"TryLock": filelock.TryLock, "Lock": filelock.Lock, "Unlock": filelock.Unlock} {
		if err := fn(f); err == nil || errors.Is(err, filelock.ErrLocked) {
			t.Errorf("%s on a closed file: %v, want an error other than ErrLocked", name, err)
		}
	}
}
