package tray_test

import (
	"os"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/desktoptest"
	"github.com/harkapp/hark/internal/proctest"
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
		// Settled: the server's current number in the menu (no popup: it
		// is not news), and connected: the last things a start does.
		hark.awaitAll(b, `msg=item kind=random .* current=true`, `msg=connected`)
		pid := hark.cmd.Process.Pid
		cpu0 := proctest.CPUTicks(b, pid)
		start := time.Now()
		time.Sleep(idle) // the measurement itself: idle is what is measured
		cpu1 := proctest.CPUTicks(b, pid)
		elapsed := time.Since(start)
		rss := proctest.StatusKiB(b, pid, "VmRSS")
		b.ReportMetric(float64(proctest.StatusKiB(b, pid, "RssAnon"))/1024, "anon_MiB")
		b.ReportMetric(float64(proctest.StatusKiB(b, pid, "RssFile"))/1024, "file_MiB")
		// Linux counts CPU time in USER_HZ ticks, 100 per second on every
		// mainstream architecture.
		cpuPct := float64(cpu1-cpu0) / 100 / elapsed.Seconds() * 100
		b.ReportMetric(float64(rss)/1024, "rss_MiB")
		b.ReportMetric(cpuPct, "cpu_%")
	}
}
