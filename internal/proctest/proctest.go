// Package proctest reads what benchmarks measure of another process from
// /proc: its CPU time and its memory.
package proctest

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// CPUTicks is the process's user+system CPU time from /proc/PID/stat, in
// USER_HZ ticks (100 per second on every mainstream architecture).
func CPUTicks(tb testing.TB, pid int) int64 {
	tb.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis. utime and stime are fields 14, 15.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// StatusKiB is a memory figure (VmRSS, RssAnon, RssFile) from
// /proc/PID/status, in KiB.
func StatusKiB(tb testing.TB, pid int, field string) int64 {
	tb.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
