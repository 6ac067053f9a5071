package store_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// BenchmarkPruneClients prunes 100,000 client ids, all idle past the
// retention, while a publisher appends in a loop. It reports the peak heap
// in use during the pass (sampled every millisecond) and the longest
// Append: Prune must neither load the table nor hold the store for long.
func BenchmarkPruneClients(b *testing.B) {
	const n = 100000
	tmpl := b.TempDir()
	st, err := store.Open(tmpl, store.Retention{})
	if err != nil {
		b.Fatal(err)
	}
	var last *store.Commit
	for i := range n {
		last = st.StageClient(fmt.Sprintf("client-%06d", i), store.Client{Ad: uint64(i), Seen: t0})
	}
	if err := last.Wait(context.Background()); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	tmplFile := st.Path() // and let the populated store go: it weighs on the heap
	st, last = nil, nil
	later := t0.Add(31 * 24 * time.Hour)

	var peak, base uint64
	var worst time.Duration
	appends := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		copyFile(b, tmplFile, filepath.Join(dir, store.FileName))
		st, err := store.Open(dir, store.Retention{})
		if err != nil {
			b.Fatal(err)
		}
		// What is left of populating and opening; twice, since pooled
		// page buffers survive one collection.
		runtime.GC()
		runtime.GC()
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		base = max(base, ms0.HeapAlloc)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // heap sampler
			defer wg.Done()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		go func() { // publisher
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if _, err := st.Append(wire.KindRandom, "7", later); err != nil {
					b.Error(err)
					return
				}
				worst = max(worst, time.Since(start))
				appends++
			}
		}()
		b.StartTimer()
		_, err = st.Prune(later)
		b.StopTimer()
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		if _, found, _ := st.Client("client-000000"); found {
			b.Fatal("Prune left an idle client")
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(base)/(1<<20), "heap-before-MiB")
	b.ReportMetric(float64(worst)/float64(time.Millisecond), "max-append-ms")
	b.ReportMetric(float64(appends)/float64(b.N), "appends/op")
}

// copyFile copies a store file without holding it in memory, which would
// weigh on the heap figures.
func copyFile(b *testing.B, from, to string) {
	b.Helper()
	in, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}
