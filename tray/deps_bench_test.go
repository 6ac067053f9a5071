package tray_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/desktoptest"
	"github.com/harkapp/hark/internal/proctest"
)

// BenchmarkTrayDependencies says what each of the tray's dependencies
// costs while idle, which BenchmarkTrayIdle's one figure cannot: it runs
// a ladder of small programs (testdata/deps), each adding one dependency
// to the step before and using it as the tray does, then the real tray,
// each built as released and on a real headless desktop of its own, and
// reports for each its resident memory once idle:
//
//   - bare: the Go runtime, plus what every step does as the tray does
//     (GOGC=25, signals, giving back the binary's pages once quiet);
//   - dbus: + godbus, the tray's own session-bus connection and the
//     calls it makes on it at start;
//   - systray: + systray, hark's icon registered in the panel with a
//     menu of the tray's shape, drawn once;
//   - notify: + one popup as the tray sends them on Linux (the icon
//     decoded into the image-data hint, esiqveland/notify's type);
//   - beeep: the systray step + one popup through beeep instead, which
//     the tray uses only off Linux: what it would cost here;
//   - hark: the tray itself, with one server (a `hark serve` process),
//     as BenchmarkTrayIdle's servers-1, in the same run; at the default
//     log level, as users run it, and (hark-debuglog) at debug, as
//     BenchmarkTrayIdle runs it: the line it logs when it gives its
//     pages back touches the logging code again.
//
// Each step is measured the same way: once its start-up is seen from
// outside (its item registered with the panel, its popup answered by
// the daemon, hark's session connected), start-up settles (a whole
// second without a CPU tick, at most 15 s, as in trayIdle); then the
// binary's pages are given back, as the tray does once quiet for 30 s
// (hark by itself: the benchmark waits for it; the ladder's programs on
// SIGUSR1, at least 7 s after they said ready, after a collection), and
// after $HARK_TRAY_IDLE (default 10s) of idling VmRSS, RssAnon and
// RssFile are read from /proc/PID/status, and where the anonymous
// memory is from /proc/PID/smaps: the Go heap arena (objects, free
// pages kept, goroutine stacks), the runtime's structures outside it,
// and the binary's own anonymous pages (relocated read-only data, data,
// bss). startfile_MiB is RssFile before the pages went back: what
// start-up touched of the binary. The ladder's programs also report the
// runtime's own figures (runtime/metrics, rt_*), read when they give
// their pages back; hark would need a change of code for those. Run
// without -race for figures:
//
//	go test -run '^$' -bench TrayDependencies -benchtime 1x -count 3 -timeout 30m ./tray/
func BenchmarkTrayDependencies(b *testing.B) {
	idle := 10 * time.Second
	if v := os.Getenv("HARK_TRAY_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("HARK_TRAY_IDLE=%q: %v", v, err)
		}
		idle = d
	}
	desktoptest.Require(b)
	for _, s := range ladder {
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				ladderIdle(b, s, idle)
			}
		})
	}
	for _, debug := range []bool{false, true} {
		name := "hark"
		if debug {
			name = "hark-debuglog"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				harkIdle(b, idle, debug)
			}
		})
	}
}

// step is one of the ladder's programs, testdata/deps/NAME, and how its
// start-up is seen to be over from outside.
type step struct {
	name  string
	item  bool   // it registers a tray item with the panel
	popup string // the summary of the popup it shows, if it shows one
}

var ladder = []step{
	{name: "bare"},
	{name: "dbus"},
	{name: "systray", item: true},
	{name: "notify", item: true, popup: "New random number"},
	{name: "beeep", item: true, popup: "New random number"},
}

// ladderBinaries builds the ladder once per test binary, into one
// directory, exactly as harkBinary builds hark: their figures are
// compared.
var ladderBinaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "hark-deps-bin-")
	if err != nil {
		return "", err
	}
	var pkgs []string
	for _, s := range ladder {
		pkgs = append(pkgs, "./testdata/deps/"+s.name)
	}
	return dir, goBuild(dir+string(filepath.Separator), pkgs...)
})

func ladderIdle(b *testing.B, s step, idle time.Duration) {
	dir, err := ladderBinaries()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, s.name)
	d := desktoptest.Start(b)
	var shown <-chan desktoptest.Notification
	if s.popup != "" {
		shown = popups(b, d) // before the program starts: its call is not missed
	}
	p := startBinaryEnv(b, d, s.name, bin, d.Env())
	p.await(b, `^ready$`)
	ready := time.Now()
	pid := p.cmd.Process.Pid
	if s.item {
		trayItem(b, d, pid)
	}
	if s.popup != "" {
		n := nextPopup(b, shown)
		if n.Summary != s.popup || n.Error != "" || n.ID == 0 {
			b.Fatalf("popup %q answered with id %d, error %q; want %q shown", n.Summary, n.ID, n.Error, s.popup)
		}
	}
	idleFigures(b, pid, bin, idle, func() map[string]float64 {
		// Start-up has a tail that the tick rule cannot see, each under
		// a tick: a collection about 2 s after start in the systray
		// steps; beeep's popup expiring after its 5 s. The tray gives its
		// pages back only 30 s after its last event; the ladder's steps,
		// which have no events, 7 s after ready.
		time.Sleep(time.Until(ready.Add(7 * time.Second)))
		if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			b.Fatal(err)
		}
		return parseFigures(b, p.await(b, `^released (.*)$`)[1])
	})
}

// harkIdle is the real tray with one server, as trayIdle runs it, with
// its log at the default level or, as trayIdle has it, at debug. It
// gives its pages back by itself once quiet for 30 s.
func harkIdle(b *testing.B, idle time.Duration, debug bool) {
	bin, err := harkBinary()
	if err != nil {
		b.Fatal(err)
	}
	d := desktoptest.Start(b)
	proto, _ := serve(b, d)
	cfg := filepath.Join(d.Home(), "hark.toml")
	conf := fmt.Sprintf("[[servers]]\nname = \"s0\"\naddress = %q\n", proto)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	if debug {
		hark := startProc(b, d, "hark", "--config", cfg, "--log-level", "debug")
		pid := hark.cmd.Process.Pid
		trayItem(b, d, pid)
		hark.awaitAll(b, `msg=item server=s0 kind=random .* current=true`, `msg=connected server=s0 `)
		idleFigures(b, pid, bin, idle, func() map[string]float64 {
			hark.awaitWithin(b, `msg="quiet: gave back the binary's pages"`, 2*time.Minute)
			return nil
		})
		return
	}
	hark := startProc(b, d, "hark", "--config", cfg)
	pid := hark.cmd.Process.Pid
	trayItem(b, d, pid)
	hark.await(b, `msg=connected server=s0 `)
	idleFigures(b, pid, bin, idle, func() map[string]float64 {
		// Nothing is logged at this level when the pages go back: the
		// binary's resident pages drop from megabytes to a few.
		touched := proctest.StatusKiB(b, pid, "RssFile")
		deadline := time.Now().Add(2 * time.Minute)
		for proctest.StatusKiB(b, pid, "RssFile") > touched/2 {
			if time.Now().After(deadline) {
				b.Fatalf("hark did not give its pages back within 2 minutes (RssFile %d KiB)", touched)
			}
			time.Sleep(100 * time.Millisecond) // polling /proc: the process is not disturbed
		}
		return nil
	})
}

// idleFigures waits for start-up to settle, has the process give back
// its binary's pages (release, which returns the runtime's figures if it
// has them), idles, and reports.
func idleFigures(b *testing.B, pid int, bin string, idle time.Duration, release func() map[string]float64) {
	awaitSettled(b, pid)
	// What start-up touched of the binary, before it is given back: the
	// figure a dependency's code would weigh without exepages.
	touched := proctest.StatusKiB(b, pid, "RssFile")
	rt := release()
	cpu0 := proctest.CPUTicks(b, pid)
	time.Sleep(idle) // the measurement itself: idle is what is measured
	cpu1 := proctest.CPUTicks(b, pid)
	rss := proctest.StatusKiB(b, pid, "VmRSS")
	anon := proctest.StatusKiB(b, pid, "RssAnon")
	file := proctest.StatusKiB(b, pid, "RssFile")
	parts := residentParts(b, pid)

	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	b.ReportMetric(mib(rss), "rss_MiB")
	b.ReportMetric(mib(anon), "anon_MiB")
	b.ReportMetric(mib(file), "file_MiB")
	b.ReportMetric(mib(touched), "startfile_MiB")
	b.ReportMetric(mib(parts.arena), "arena_MiB")
	b.ReportMetric(mib(parts.offHeap), "offheap_MiB")
	b.ReportMetric(mib(parts.exeAnon), "exeanon_MiB")
	b.ReportMetric(float64(cpu1-cpu0), "idle_ticks")
	if fi, err := os.Stat(bin); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "bin_MiB")
	}
	if rt == nil {
		return
	}
	// The runtime's own accounting, in the same units: committed, which
	// for the heap and stacks is close to resident (the scavenger returns
	// what is free beyond its goal), and for the metadata an upper bound.
	rtMiB := func(keys ...string) float64 {
		var sum float64
		for _, k := range keys {
			sum += rt[k]
		}
		return sum / (1 << 20)
	}
	b.ReportMetric(rtMiB("heap_objects"), "rt_objects_MiB")
	b.ReportMetric(rtMiB("live"), "rt_live_MiB")
	b.ReportMetric(rtMiB("heap_unused", "heap_free"), "rt_heapfree_MiB")
	b.ReportMetric(rtMiB("heap_stacks", "os_stacks"), "rt_stacks_MiB")
	b.ReportMetric(rtMiB("mspan_inuse", "mspan_free", "mcache_inuse", "mcache_free", "meta_other"), "rt_meta_MiB")
	// The memory profiler's bucket table, mapped whole at the first
	// sampled allocation and touched only where buckets are.
	b.ReportMetric(rtMiB("profiling"), "rt_prof_MiB")
	b.ReportMetric(rtMiB("other"), "rt_other_MiB")
	b.ReportMetric(rt["goroutines"], "goroutines")
}

// parseFigures reads the ladder's " key=value" list.
func parseFigures(t testing.TB, s string) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		n, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			t.Fatalf("figure %q in %q", f, s)
		}
		m[k] = n
	}
	return m
}

// resident is where a process's resident memory is, in KiB.
type resident struct {
	arena   int64 // the Go heap arena: objects, free pages kept, goroutine stacks
	offHeap int64 // other anonymous mappings: the runtime's structures outside the heap
	exeAnon int64 // the binary's own anonymous pages: relocated read-only data, data, bss
}

// heapArenaBytes is the size and alignment of the Go heap's arenas on
// 64-bit Linux (runtime/malloc.go). The runtime reserves them whole, so
// an arena shows in smaps as a run of unnamed mappings that starts and
// ends on that alignment; since Go 1.26 their address is random (it was
// 0xc000000000), so they are told by that shape.
const heapArenaBytes = 64 << 20

// mapping is one /proc/PID/smaps entry.
type mapping struct {
	start, end uint64
	path       string
	rss, anon  int64 // KiB
}

// residentParts splits the anonymous resident memory of pid by
// /proc/PID/smaps: the mappings of its executable (file-backed, whose
// anonymous pages are those the loader or the program wrote) and the
// unnamed mapping right after them (bss); the heap arenas; and the
// other anonymous mappings. The main thread's [stack], the vdso and the
// dynamic loader are in none. A kernel that names Go's mappings
// ("[anon: Go: heap]", CONFIG_ANON_VMA_NAME) is read by name.
func residentParts(t testing.TB, pid int) resident {
	t.Helper()
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var maps []mapping
	for _, line := range strings.Split(string(data), "\n") {
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		if !strings.HasSuffix(fs[0], ":") { // a mapping's first line
			lo, hi, _ := strings.Cut(fs[0], "-")
			m := mapping{}
			m.start, _ = strconv.ParseUint(lo, 16, 64)
			m.end, _ = strconv.ParseUint(hi, 16, 64)
			if len(fs) > 5 {
				m.path = strings.Join(fs[5:], " ")
			}
			maps = append(maps, m)
			continue
		}
		if len(maps) == 0 || len(fs) < 2 {
			continue
		}
		kib, _ := strconv.ParseInt(fs[1], 10, 64)
		switch fs[0] {
		case "Rss:":
			maps[len(maps)-1].rss = kib
		case "Anonymous:":
			maps[len(maps)-1].anon = kib
		}
	}
	unnamed := func(m mapping) bool { return m.path == "" || strings.HasPrefix(m.path, "[anon:") }
	var r resident
	var arenas int
	for i := 0; i < len(maps); i++ {
		m := maps[i]
		switch {
		case m.path == exe:
			r.exeAnon += m.anon
			if i+1 < len(maps) && maps[i+1].start == m.end && maps[i+1].path == "" {
				i++
				r.exeAnon += maps[i].rss // bss
			}
		case m.path == "[anon: Go: heap]":
			r.arena += m.rss
			arenas++
		case unnamed(m):
			// The run of unnamed mappings that m starts: an arena
			// when it has an arena's shape.
			j, rss := i, int64(0)
			for ; j < len(maps) && unnamed(maps[j]) && (j == i || maps[j].start == maps[j-1].end); j++ {
				rss += maps[j].rss
			}
			if m.path == "" && m.start%heapArenaBytes == 0 && maps[j-1].end%heapArenaBytes == 0 {
				r.arena += rss
				arenas++
				i = j - 1
			} else {
				r.offHeap += m.rss
			}
		}
	}
	if arenas == 0 {
		t.Fatalf("no Go heap arena in /proc/%d/smaps", pid)
	}
	return r
}
