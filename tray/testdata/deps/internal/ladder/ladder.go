// Package ladder is what every program of the dependency ladder
// (BenchmarkTrayDependencies, tray/deps_bench_test.go) shares: what the
// tray does as a process, whatever it links. Each step then differs
// from the one before by its dependency alone, and the first step, which
// links nothing else, is the floor: the Go runtime and this harness.
//
// It speaks to the benchmark on stderr, where the tray writes its log:
// "ready" once the step's start-up returned; on SIGUSR1 (the benchmark
// saw start-up settle) it collects, reads the runtime's own figures,
// gives back the binary's pages as the tray does once quiet
// (internal/exepages), and says "released" with both. Anything else it writes there (a library's
// complaint, GODEBUG=gctrace=1) is in the benchmark's log of the step.
package ladder

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"syscall"

	"github.com/harkapp/hark/internal/exepages"
)

// Main runs start, the step's start-up, then idles until SIGTERM or an
// interrupt; ctx ends then, as hark's main.go has it. It does not return
// before that.
func Main(start func(ctx context.Context) error) {
	// As cli/tray.go runs the tray: without it, every step would carry
	// the default GOGC's heap headroom rather than its dependency.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Before start-up: a SIGUSR1 with no handler would end the process.
	settled := make(chan os.Signal, 1)
	signal.Notify(settled, syscall.SIGUSR1)
	if err := start(ctx); err != nil {
		say("failed: " + err.Error())
		os.Exit(1)
	}
	say("ready")
	for {
		select {
		case <-ctx.Done():
			return
		case <-settled:
			// A collection first, so that the figures say what is
			// live, and so that none starts in the idle window: the
			// allocations of reading smaps may start one once the pages
			// are given back, whose marking touches code and tables
			// again. (The tray's own Release was seen to start one while
			// it read smaps, before it advised: the same end state.) The
			// figures next: reading and formatting them touches pages
			// that Release then gives back.
			runtime.GC()
			figs := runtimeFigures()
			n, err := exepages.Release()
			if err != nil {
				say("failed: " + err.Error())
				os.Exit(1)
			}
			say("released mapped=" + strconv.Itoa(n) + figs)
		}
	}
}

// figures are runtime/metrics samples, named as the benchmark reads them.
// The memory classes add up to what the runtime has mapped read-write
// (/memory/classes/total), released heap pages included: committed, not
// necessarily resident.
var figures = []struct{ key, name string }{
	{"heap_objects", "/memory/classes/heap/objects:bytes"},
	{"heap_unused", "/memory/classes/heap/unused:bytes"},
	{"heap_free", "/memory/classes/heap/free:bytes"},
	{"heap_released", "/memory/classes/heap/released:bytes"},
	{"heap_stacks", "/memory/classes/heap/stacks:bytes"},
	{"os_stacks", "/memory/classes/os-stacks:bytes"},
	{"mspan_inuse", "/memory/classes/metadata/mspan/inuse:bytes"},
	{"mspan_free", "/memory/classes/metadata/mspan/free:bytes"},
	{"mcache_inuse", "/memory/classes/metadata/mcache/inuse:bytes"},
	{"mcache_free", "/memory/classes/metadata/mcache/free:bytes"},
	{"meta_other", "/memory/classes/metadata/other:bytes"},
	{"profiling", "/memory/classes/profiling/buckets:bytes"},
	{"other", "/memory/classes/other:bytes"},
	{"total", "/memory/classes/total:bytes"},
	{"live", "/gc/heap/live:bytes"},
	{"goroutines", "/sched/goroutines:goroutines"},
	{"gcs", "/gc/cycles/total:gc-cycles"},
}

// runtimeFigures returns " key=value" for each of figures. No fmt: the
// floor should not carry what only the harness needs.
func runtimeFigures() string {
	s := make([]metrics.Sample, len(figures))
	for i, f := range figures {
		s[i].Name = f.name
	}
	metrics.Read(s)
	var b []byte
	for i, f := range figures {
		if s[i].Value.Kind() != metrics.KindUint64 {
			continue // not in this Go version
		}
		b = append(b, ' ')
		b = append(b, f.key...)
		b = append(b, '=')
		b = strconv.AppendUint(b, s[i].Value.Uint64(), 10)
	}
	return string(b)
}

func say(line string) { os.Stderr.WriteString(line + "\n") }
