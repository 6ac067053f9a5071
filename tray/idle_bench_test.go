package tray_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/desktoptest"
)

// BenchmarkTrayIdle measures what the tray costs while nothing happens:
// hark connected to a server, its icon in a real panel, for
// $HARK_TRAY_IDLE (default 60s). It reports the process's resident memory
// at the end and its CPU use over the idle period. Run without -race for
// figures: then hark is built as released (static, CGO_ENABLED=0).
//
//	go test -run '^$' -bench TrayIdle -benchtime 1x -count 3 ./tray/
func BenchmarkTrayIdle(b *testing.B) {
	idle := 60 * time.Second
	if v := os.Getenv("HARK_TRAY_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("HARK_TRAY_IDLE=%q: %v", v, err)
		}
		idle = d
	}
	desktoptest.Require(b)
	for b.Loop() {
		d := desktoptest.Start(b)
		proto, _ := serve(b, d)
		hark := startProc(b, d, "hark", "--server", proto, "--log-level", "debug")
		trayItem(b, d, hark.cmd.Process.Pid)
		// Settled: connected, and the popup for the server's current
		// number (the last thing a start does) shown.
		hark.await(b, `msg=connected`)
		hark.await(b, `msg="popup shown"`)
		pid := hark.cmd.Process.Pid
		cpu0 := cpuTicks(b, pid)
		start := time.Now()
		time.Sleep(idle) // the measurement itself: idle is what is measured
		cpu1 := cpuTicks(b, pid)
		elapsed := time.Since(start)
		rss := statusKiB(b, pid, "VmRSS")
		b.ReportMetric(float64(statusKiB(b, pid, "RssAnon"))/1024, "anon_MiB")
		b.ReportMetric(float64(statusKiB(b, pid, "RssFile"))/1024, "file_MiB")
		// Linux counts CPU time in USER_HZ ticks, 100 per second on every
		// mainstream architecture.
		cpuPct := float64(cpu1-cpu0) / 100 / elapsed.Seconds() * 100
		b.ReportMetric(float64(rss)/1024, "rss_MiB")
		b.ReportMetric(cpuPct, "cpu_%")
	}
}

// cpuTicks is the process's user+system CPU time from /proc/PID/stat.
func cpuTicks(tb testing.TB, pid int) int64 {
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

// statusKiB is a memory figure (VmRSS, RssAnon, RssFile) from
// /proc/PID/status.
func statusKiB(tb testing.TB, pid int, field string) int64 {
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
