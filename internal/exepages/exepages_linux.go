package exepages

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release unmaps the resident pages of the running executable's private
// read-only mappings (code, read-only data, the runtime's tables), and
// returns how many bytes of mappings it advised. A mapping that holds any
// page of its own (smaps' Anonymous) is left alone: dropping such a page
// would bring back the file's bytes in its place. That is the case of
// the relocations the loader writes into a position-independent binary's
// read-only data before it write-protects them (GNU_RELRO), and of a
// debugger's breakpoints. Writable mappings are never touched.
func Release() (int, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("exepages: the executable: %w", err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("exepages: %w", err)
	}
	n := 0
	for _, s := range readOnly(smaps, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino) {
		// The addresses are the kernel's, not Go pointers: the system
		// call takes them as numbers.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, s.start, s.end-s.start, unix.MADV_DONTNEED); errno != 0 {
			return n, fmt.Errorf("exepages: madvise %#x-%#x: %w", s.start, s.end, errno)
		}
		n += int(s.end - s.start)
	}
	return n, nil
}

// span is an address range [start, end).
type span struct{ start, end uintptr }

// readOnly returns the ranges of /proc/self/smaps (smaps) that map the
// file with that device and inode privately and read-only, and hold no
// page of their own, in memory or in swap (Anonymous and Swap: 0 kB). The file is named by device and
// inode, not path: a binary replaced by an upgrade while it runs is still
// mapped, as "PATH (deleted)".
func readOnly(smaps []byte, major, minor uint32, ino uint64) []span {
	var spans []span
	var cur *span // the mapping whose fields follow, if a candidate
	// A candidate is taken only once both fields said 0: a page of its
	// own may be resident (Anonymous) or swapped out (Swap), and a
	// kernel that tells neither is not trusted.
	var anonZero, swapZero bool
	take := func() {
		if cur != nil && anonZero && swapZero {
			spans = append(spans, *cur)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping's first line
			take()
			cur, anonZero, swapZero = candidate(f, major, minor, ino), false, false
			continue
		}
		switch {
		case cur == nil:
		case f[0] == "Anonymous:":
			anonZero = len(f) >= 2 && f[1] == "0"
		case f[0] == "Swap:":
			swapZero = len(f) >= 2 && f[1] == "0"
		}
	}
	if sc.Err() != nil {
		return nil // a partial read: release nothing
	}
	take()
	return spans
}

// candidate parses a mapping's first line (address perms offset dev inode
// path) and returns its range when it maps the file privately read-only.
func candidate(f []string, major, minor uint32, ino uint64) *span {
	if len(f) < 5 || (f[1] != "r-xp" && f[1] != "r--p") {
		return nil
	}
	maj, mnr, ok := strings.Cut(f[3], ":")
	if !ok || !hexIs(maj, uint64(major)) || !hexIs(mnr, uint64(minor)) {
		return nil
	}
	if i, err := strconv.ParseUint(f[4], 10, 64); err != nil || i != ino || ino == 0 {
		return nil
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return nil
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil || end <= start {
		return nil
	}
	return &span{uintptr(start), uintptr(end)}
}

func hexIs(s string, v uint64) bool {
	n, err := strconv.ParseUint(s, 16, 32)
	return err == nil && n == v
}
