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
// returns how many bytes of mappings it advised. Writable mappings are
// never touched: dropping a private page that was written would lose what
// was written.
func Release() (int, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("exepages: the executable: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("exepages: %w", err)
	}
	n := 0
	for _, s := range readOnly(maps, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino) {
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

// readOnly returns the ranges of /proc/self/maps (maps) that map the file
// with that device and inode privately and read-only. The file is named
// by device and inode, not path: a binary replaced by an upgrade while it
// runs is still mapped, as "PATH (deleted)".
func readOnly(maps []byte, major, minor uint32, ino uint64) []span {
	var spans []span
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		// address perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 5 || (f[1] != "r-xp" && f[1] != "r--p") {
			continue
		}
		maj, mnr, ok := strings.Cut(f[3], ":")
		if !ok || !hexIs(maj, uint64(major)) || !hexIs(mnr, uint64(minor)) {
			continue
		}
		if i, err := strconv.ParseUint(f[4], 10, 64); err != nil || i != ino || ino == 0 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		spans = append(spans, span{uintptr(start), uintptr(end)})
	}
	return spans
}

func hexIs(s string, v uint64) bool {
	n, err := strconv.ParseUint(s, 16, 32)
	return err == nil && n == v
}
