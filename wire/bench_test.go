package wire_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/harkapp/hark/wire"
)

// Benchmarks of the line-parsing hot path (issue 6). Every line a server
// or a client handles goes through Reader.ReadLine, and every identified
// item through AppendItem (server) or ParseItem, ParseRandom and
// ValidateAd (client). The steady state of each must not allocate: a
// server answers thousands of lines a second per core, and garbage there
// is paid for in GC pauses on every connection. Kind.Notification is
// left out: it returns one of two constants, once per publish.
//
//	go test -run '^$' -bench . -benchmem ./wire/

// clientBatch is what a notified, identified client (netclient.Session)
// sends when a push arrives: acknowledge, leave the mode, fetch, re-enter.
const clientBatch = "seen 123\r\nstop_notif\r\nclassified?\r\nnotif\r\n"

// serverStream is what such a client reads: pushes, OKs and items with
// ids, some crossing one another, as a server writes them back to back.
const serverStream = "notif: classified\r\n" +
	"OK\r\n" +
	"notif: random\r\n" +
	"OK\r\n" +
	"124 Nice flat, 3 rooms, close to the station, 900 a month\r\n" +
	"125 18446744073709551615\r\n" +
	"OK\r\n" +
	"notif: classified\r\n"

// loopReader serves data over and over, never ending. A Read returns the
// rest of data, as one peer write usually arrives, or, with fill set, as
// much as fits, wrapping around, as a stream written back to back does.
// It does not allocate, so what a benchmark reports is the Reader's own
// cost.
type loopReader struct {
	data []byte
	off  int
	fill bool
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], l.data[l.off:])
		n += k
		l.off = (l.off + k) % len(l.data)
		if !l.fill {
			break
		}
	}
	return n, nil
}

// checkLines reads one round of want from r, failing b on any difference.
// It runs before the timed loop: the loop itself only counts lines, so the
// comparison is not part of what is measured.
func checkLines(b *testing.B, r *wire.Reader, want string) {
	b.Helper()
	for _, w := range strings.SplitAfter(want, "\n") {
		if w == "" {
			continue
		}
		w = strings.TrimSuffix(strings.TrimSuffix(w, "\n"), "\r")
		line, err := r.ReadLine()
		if err != nil || string(line) != w {
			b.Fatalf("ReadLine = %q, %v; want %q", line, err, w)
		}
	}
}

// BenchmarkReadLineClientBatch: a server's Reader reading a client's
// pipelined batch, one batch per underlying Read as one client write
// usually arrives. One op is the whole batch; Buffered is called after
// each line as the server's serve loop does to decide when to flush.
func BenchmarkReadLineClientBatch(b *testing.B) {
	n := strings.Count(clientBatch, "\n")
	r := wire.NewReader(&loopReader{data: []byte(clientBatch)})
	checkLines(b, r, clientBatch)
	b.SetBytes(int64(len(clientBatch)))
	b.ReportAllocs()
	for b.Loop() {
		for range n {
			if _, err := r.ReadLine(); err != nil {
				b.Fatal(err)
			}
			r.Buffered()
		}
	}
}

// BenchmarkReadLinePooledCycle: a server's pooled Reader, which gives its
// buffer back to the pool once a batch is answered (Release) so that idle
// connections hold none, and takes one again for the next batch. One op
// is a batch with that round trip through the pool, which is what the
// pooling costs a busy connection over BenchmarkReadLineClientBatch. The
// batch is read into Free, as the server reads once its socket is
// readable.
func BenchmarkReadLinePooledCycle(b *testing.B) {
	lines := strings.Count(clientBatch, "\n")
	pool := &sync.Pool{New: func() any { buf := make([]byte, wire.MaxLine+2); return &buf }}
	src := &loopReader{data: []byte(clientBatch)}
	r := wire.NewPooledReader(src, pool)
	cycle := func() {
		if !r.Release() {
			b.Fatal("Release() = false with nothing buffered")
		}
		r.Filled(src.Read(r.Free()))
		for range lines {
			if _, err := r.ReadLine(); err != nil {
				b.Fatal(err)
			}
			r.Buffered()
		}
	}
	checkLines(b, r, clientBatch) // the pool's first buffer is made here
	b.SetBytes(int64(len(clientBatch)))
	b.ReportAllocs()
	for b.Loop() {
		cycle()
	}
}

// BenchmarkReadLineServerStream: a client's Reader reading what a server
// wrote back to back, each underlying Read filling as much of the buffer
// as it can, so lines straddle reads and are slid to the front. One op is
// one pass over serverStream.
func BenchmarkReadLineServerStream(b *testing.B) {
	n := strings.Count(serverStream, "\n")
	r := wire.NewReader(&loopReader{data: []byte(serverStream), fill: true})
	checkLines(b, r, serverStream)
	b.SetBytes(int64(len(serverStream)))
	b.ReportAllocs()
	for b.Loop() {
		for range n {
			if _, err := r.ReadLine(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// A typical identified item: an id well into the store and an ad of a
// common length.
const (
	benchID = 1234567
	benchAd = "Nice flat, 3 rooms, close to the station, 900 a month"
)

// BenchmarkAppendItem: the server formatting an identified reply into its
// output queue, which it reuses (here dst[:0]).
func BenchmarkAppendItem(b *testing.B) {
	dst := wire.AppendItem(nil, benchID, benchAd)
	want := string(dst)
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	for b.Loop() {
		dst = wire.AppendItem(dst[:0], benchID, benchAd)
	}
	if string(dst) != want {
		b.Fatalf("AppendItem = %q, want %q", dst, want)
	}
}

// BenchmarkParseItem: the client splitting an identified reply, for an ad
// and for a random number.
func BenchmarkParseItem(b *testing.B) {
	for _, tc := range []struct{ name, line, value string }{
		{"ad", "1234567 " + benchAd, benchAd},
		{"random", "1234568 18446744073709551615", "18446744073709551615"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.line)))
			b.ReportAllocs()
			var (
				id  uint64
				v   string
				err error
			)
			for b.Loop() {
				id, v, err = wire.ParseItem(tc.line)
			}
			if err != nil || v != tc.value || id == 0 {
				b.Fatalf("ParseItem = %d, %q, %v", id, v, err)
			}
		})
	}
}

// BenchmarkParseRandom: the client checking that a reply to random? can be
// one, which it does for every such reply to tell it from a stray.
func BenchmarkParseRandom(b *testing.B) {
	const s = "18446744073709551615" // the longest: the worst case
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	var (
		n   uint64
		err error
	)
	for b.Loop() {
		n, err = wire.ParseRandom(s)
	}
	if err != nil || n != 1<<64-1 {
		b.Fatalf("ParseRandom = %d, %v", n, err)
	}
}

// BenchmarkValidateAd: the client checking that a reply to classified? can
// be an ad, for every such reply; it decodes every rune, so its cost grows
// with the ad, up to MaxAdBytes.
func BenchmarkValidateAd(b *testing.B) {
	for _, tc := range []struct{ name, ad string }{
		{"typical", benchAd},
		{"max-ascii", strings.Repeat("x", wire.MaxAdBytes)},
		// Three-byte runes, as a non-Latin ad is.
		{"max-utf8", strings.Repeat("広", wire.MaxAdBytes/len("広"))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.ad)))
			b.ReportAllocs()
			var err error
			for b.Loop() {
				err = wire.ValidateAd(tc.ad)
			}
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
