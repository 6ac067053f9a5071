package tray_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/desktoptest"
	"github.com/harkapp/hark/internal/proctest"
)

// BenchmarkTrayIdle measures what the tray costs while nothing happens:
// hark connected to one server, then to three (each a `hark serve` of its
// own, listed in the settings file), its icon in a real panel, for
// $HARK_TRAY_IDLE (default 60s) once start-up has settled. It reports the process's resident memory
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
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("servers-%d", n), func(b *testing.B) {
			for b.Loop() {
				trayIdle(b, n, idle)
			}
		})
	}
}

func trayIdle(b *testing.B, servers int, idle time.Duration) {
	d := desktoptest.Start(b)
	var conf strings.Builder
	var settled []string
	for i := range servers {
		proto, _ := serve(b, d)
		fmt.Fprintf(&conf, "[[servers]]\nname = \"s%d\"\naddress = %q\n", i, proto)
		if servers > 1 {
			// Settled: the server's current number in the menu (no
			// popup: it is not news), and connected: the last things a
			// start does.
			settled = append(settled, fmt.Sprintf(`msg=item server=s%d kind=random .* current=true`, i), fmt.Sprintf(`msg=connected server=s%d `, i))
		} else {
			settled = append(settled, `msg=item server=s0 kind=random .* current=true`, `msg=connected server=s0 `)
		}
	}
	cfg := filepath.Join(d.Home(), "hark.toml")
	if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	hark := startProc(b, d, "hark", "--config", cfg, "--log-level", "debug")
	trayItem(b, d, hark.cmd.Process.Pid)
	hark.awaitAll(b, settled...)
	pid := hark.cmd.Process.Pid
	awaitSettled(b, pid)
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

// awaitSettled waits out start-up's tail after the last session connected
// (the first collections, the scavenger giving pages back): until a whole
// second passed without a CPU tick of pid, or 15 s.
func awaitSettled(b *testing.B, pid int) {
	for range 15 {
		t0 := proctest.CPUTicks(b, pid)
		time.Sleep(time.Second) // the measurement's own clock, not synchronisation
		if proctest.CPUTicks(b, pid) == t0 {
			return
		}
	}
}
