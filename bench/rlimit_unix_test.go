//go:build unix

package bench

import (
	"strings"
	"syscall"
	"testing"
)

// TestRaiseFileLimit lowers this process's soft open-file limit, then
// checks that the bench raises it to the hard limit and says so, and
// refuses, saying what to change, when even the hard limit is too low.
func TestRaiseFileLimit(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Skip(err)
	}
	if uint64(orig.Max) < 1024 || uint64(orig.Max) > 1<<30 {
		t.Skipf("hard limit %d: nothing to lower, or too large to exceed", orig.Max)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := orig
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	var said []string
	progress := func(s string) { said = append(said, s) }
	if err := raiseFileLimit(900, progress); err != nil {
		t.Fatal(err)
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil || now.Cur != orig.Max {
		t.Errorf("soft limit %d (%v), want the hard limit %d", now.Cur, err, orig.Max)
	}
	if len(said) != 1 || !strings.Contains(said[0], "raised the open-file soft limit from 256") {
		t.Errorf("said %q", said)
	}

	said = nil
	err := raiseFileLimit(int(orig.Max)+1, progress)
	if err == nil || !strings.Contains(err.Error(), "hard limit") || len(said) != 0 {
		t.Errorf("beyond the hard limit: %v, said %q", err, said)
	}
	if err := raiseFileLimit(100, progress); err != nil || len(said) != 0 {
		t.Errorf("within the limit: %v, said %q", err, said)
	}
}
