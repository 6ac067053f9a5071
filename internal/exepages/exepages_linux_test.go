package exepages

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Only the executable's private read-only mappings that hold no page of
// their own are released: not a writable one, another file's, a shared
// one, or the relocated read-only data of a position-independent binary
// (its pages are the loader's copies: dropping them would bring back the
// file's unrelocated bytes), whether those copies are in memory or
// swapped out, nor one whose fields do not say.
func TestReadOnlyPicksTheExecutablesReadOnlyMappings(t *testing.T) {
	smaps := `00400000-0092f000 r-xp 00000000 fd:01 1234 /usr/bin/hark
Size:               5308 kB
Rss:                4348 kB
Anonymous:             0 kB
Swap:                  0 kB
0092f000-00eb5000 r--p 0052f000 fd:01 1234 /usr/bin/hark
Rss:                5144 kB
Anonymous:             0 kB
Swap:                  0 kB
00eb5000-00eb7000 r--p 00ab5000 fd:01 1234 /usr/bin/hark
Rss:                   8 kB
Anonymous:             8 kB
Swap:                  0 kB
00eb7000-00eb8000 r--p 00ab7000 fd:01 1234 /usr/bin/hark
Rss:                   0 kB
Anonymous:             0 kB
Swap:                  4 kB
00eb8000-00eb9000 r--p 00ab8000 fd:01 1234 /usr/bin/hark
Rss:                   0 kB
00eb7000-00f1b000 rw-p 00ab7000 fd:01 1234 /usr/bin/hark
Anonymous:            12 kB
00f1b000-02f5f000 rw-p 00000000 00:00 0
Anonymous:           104 kB
7f0000000000-7f0000001000 r--p 00000000 fd:01 99 /usr/lib/locale/C.utf8/LC_CTYPE
Anonymous:             0 kB
7f0000001000-7f0000002000 r--s 00000000 fd:01 1234 /usr/bin/hark
Anonymous:             0 kB
7f0000002000-7f0000003000 r-xp 00000000 fd:02 1234 /mnt/other
Anonymous:             0 kB
7f0000003000-7f0000004000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
7f0000004000-7f0000005000 r-xp 00000000 fd:01 1234 /usr/bin/hark (deleted)
Anonymous:             0 kB
Swap:                  0 kB
`
	got := readOnly([]byte(smaps), 0xfd, 0x01, 1234)
	want := []span{{0x400000, 0x92f000}, {0x92f000, 0xeb5000}, {0x7f0000004000, 0x7f0000005000}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("readOnly = %x, want %x", got, want)
	}
}

// A position-independent binary, built as hark is released
// (-buildmode=pie), goes on after Release: its relocated read-only data
// is not given back. (Before that was checked, such a binary crashed on
// the next use of an interface.)
func TestReleaseInAPIEBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the test program")
	}
	bin := filepath.Join(t.TempDir(), "pie")
	build := exec.Command(goTool, "build", "-trimpath", "-buildmode=pie", "-o", bin, "./testdata/pie")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildmode=pie: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "still running after") {
		t.Fatalf("the PIE program after Release: %v\n%s", err, out)
	}
}

// Release gives back the executable's pages: in a process that then
// waits (this test binary again, as a helper), the resident part of its
// read-only mappings falls well below what it was (the helper runs some code after, which comes back).
func TestReleaseShrinksTheResidentSet(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "EXEPAGES_HELPER=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close()
	lines := bufio.NewScanner(out)
	next := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("helper said %q (%v), want %q", lines.Text(), lines.Err(), want)
		}
	}
	next("ready")
	before := exeRssKiB(t, cmd.Process.Pid)
	fmt.Fprintln(in, "release")
	next("released")
	after := exeRssKiB(t, cmd.Process.Pid)
	if after > before*3/4 {
		t.Fatalf("the executable's read-only mappings: %d KiB resident before Release, %d KiB after; want less than three quarters: the helper touches little after it", before, after)
	}
	t.Logf("%d KiB -> %d KiB resident", before, after)
}

// helper is TestReleaseShrinksTheResidentSet's other process (this test
// binary again): told to, it releases and says so, then waits for its
// input to end.
func helper() {
	r := bufio.NewReader(os.Stdin)
	fmt.Println("ready")
	if _, err := r.ReadString('\n'); err != nil {
		return
	}
	n, err := Release()
	if err != nil || n == 0 {
		fmt.Printf("Release: %d bytes, %v\n", n, err)
		return
	}
	fmt.Println("released")
	r.ReadString('\n')
}

// exeRssKiB sums the resident sizes of the mappings Release would advise,
// from /proc/PID/smaps.
func exeRssKiB(t *testing.T, pid int) int {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	starts := map[uintptr]bool{}
	for _, sp := range readOnly(data, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino) {
		starts[sp.start] = true
	}
	total, found, in := 0, 0, false
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			lo, _, _ := strings.Cut(f[0], "-")
			a, _ := strconv.ParseUint(lo, 16, 64)
			in = starts[uintptr(a)]
			continue
		}
		if in && f[0] == "Rss:" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("Rss %q: %v", line, err)
			}
			total += n
			found++
		}
	}
	if found == 0 {
		t.Fatal("no mapping of the executable in /proc/self/smaps")
	}
	return total
}
