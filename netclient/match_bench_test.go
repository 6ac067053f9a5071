package netclient_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// Benchmarks of reply matching (issue 6): Conn.Do queueing pipelined
// commands, the reading goroutine parsing each line, telling pushes from
// replies and matching each reply to the command at the head of the
// queue, and the caller collecting the results. Unlike the RoundTrip
// benchmarks in bench_test.go, which include a real server, the peer here
// is canned: it checks each batch of commands byte for byte and answers
// with one prepared write over net.Pipe, so what is measured is the
// client's side (plus an in-memory handoff), not the server's nor the
// kernel's.
//
//	go test -run '^$' -bench 'Match|Push' -benchmem ./netclient/

// exchange is one batch the canned peer expects and its answer.
type exchange struct{ cmds, replies string }

// pipeConn is the client's end of a net.Pipe without a write deadline.
// net.Pipe arms a fresh timer on every SetWriteDeadline, two allocations
// that a TCP socket does not make and that would be counted as Do's; the
// canned peer always reads, so the deadline has nothing to guard.
type pipeConn struct{ net.Conn }

func (pipeConn) SetWriteDeadline(time.Time) error { return nil }

// cannedConn returns a Conn over net.Pipe whose server end answers the
// exchanges in order, then the last one over and over. The Conn is closed,
// and the peer's goroutine waited for, when the benchmark ends: goleak
// checks the package for leftovers.
func cannedConn(b *testing.B, opts netclient.Options, script ...exchange) *netclient.Conn {
	b.Helper()
	// As bytes, converted once: the peer must not allocate either, since
	// allocs/op counts every goroutine.
	type wireExchange struct{ cmds, replies []byte }
	steps := make([]wireExchange, len(script))
	for i, x := range script {
		steps[i] = wireExchange{[]byte(x.cmds), []byte(x.replies)}
	}
	cc, sc := net.Pipe()
	c := netclient.New(pipeConn{cc}, opts)
	peerErr := make(chan error, 1)
	go func() {
		defer sc.Close()
		buf := make([]byte, 0, wire.MaxLine)
		for i := 0; ; i = min(i+1, len(steps)-1) {
			x := steps[i]
			buf = slices.Grow(buf[:0], len(x.cmds))[:len(x.cmds)]
			if _, err := io.ReadFull(sc, buf); err != nil {
				peerErr <- nil // the Conn was closed: the end of the benchmark
				return
			}
			if !bytes.Equal(buf, x.cmds) {
				// Closing makes the Conn's call fail, so the benchmark
				// stops on it and reports this.
				peerErr <- fmt.Errorf("peer: client sent %q, want %q", buf, x.cmds)
				return
			}
			if _, err := sc.Write(x.replies); err != nil {
				peerErr <- nil
				return
			}
		}
	}()
	b.Cleanup(func() {
		c.Close()
		if err := <-peerErr; err != nil {
			b.Error(err)
		}
	})
	return c
}

// lines joins ls, each with its CRLF, as they go on the wire.
func lines(ls ...string) string { return strings.Join(ls, "\r\n") + "\r\n" }

// repeat returns n copies of s.
func repeat[T any](n int, s ...T) []T {
	out := make([]T, 0, n*len(s))
	for range n {
		out = append(out, s...)
	}
	return out
}

// benchDo runs Do(cmds) per op, after checking once that it returns want,
// and reports the cost per command as ns/cmd (allocs/op and B/op are per
// Do, that is per len(cmds) commands).
func benchDo(b *testing.B, c *netclient.Conn, cmds []netclient.Cmd, want []netclient.Item) {
	b.Helper()
	got, err := c.Do(bg, cmds...)
	if err != nil || !slices.Equal(got, want) {
		b.Fatalf("Do = %+v, %v (Strays()=%d); want %+v", got, err, c.Strays(), want)
	}
	b.ReportAllocs()
	ops := 0
	for b.Loop() {
		if got, err := c.Do(bg, cmds...); err != nil || len(got) != len(cmds) {
			b.Fatalf("Do: %d items, %v", len(got), err)
		}
		ops++
	}
	if n := c.Strays(); n != 0 {
		b.Fatalf("Strays() = %d: the canned replies no longer match", n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*len(cmds)), "ns/cmd")
}

const benchAd = "Nice flat, 3 rooms, close to the station, 900 a month"

// BenchmarkMatchRandom: version-1 random? replies, one command per Do
// (the whole round trip through three goroutines each time) and 64
// pipelined in one write, where the per-command matching cost shows.
func BenchmarkMatchRandom(b *testing.B) {
	const number = "18446744073709551615" // the longest: the worst case
	for _, depth := range []int{1, 64} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			c := cannedConn(b, netclient.Options{}, exchange{
				cmds:    strings.Repeat(lines(wire.CmdRandom), depth),
				replies: strings.Repeat(lines(number), depth),
			})
			benchDo(b, c,
				repeat(depth, netclient.RandomCmd),
				repeat(depth, netclient.Item{Kind: wire.KindRandom, Value: number}))
		})
	}
}

// BenchmarkMatchClassifiedIdentified: 64 pipelined classified? on an
// identified connection, each reply an id and an ad (ParseItem and
// ValidateAd per reply), with a push between every eighth reply that must
// be routed to OnNotify, not taken for one.
func BenchmarkMatchClassifiedIdentified(b *testing.B) {
	const depth = 64
	reply := "1234567 " + benchAd
	var replies strings.Builder
	for i := range depth {
		if i%8 == 0 {
			replies.WriteString(lines(wire.NotifClassified))
		}
		replies.WriteString(lines(reply))
	}
	pushes := 0
	c := cannedConn(b, netclient.Options{OnNotify: func(wire.Kind) { pushes++ }, UnsolicitedRate: 1e9},
		exchange{cmds: lines("hello bench"), replies: lines(wire.OK)},
		exchange{cmds: strings.Repeat(lines(wire.CmdClassified), depth), replies: replies.String()})
	if _, err := c.Do(bg, netclient.HelloCmd("bench")); err != nil {
		b.Fatal(err)
	}
	benchDo(b, c,
		repeat(depth, netclient.ClassifiedCmd),
		repeat(depth, netclient.Item{Kind: wire.KindClassified, Value: benchAd, ID: 1234567}))
	// Every push comes before the last reply of its batch, so all were
	// routed when Do returned; pushes is read after the reading
	// goroutine's last write to it, ordered by the reply channel.
	if pushes == 0 || pushes%(depth/8) != 0 {
		b.Fatalf("%d pushes routed, want a multiple of %d", pushes, depth/8)
	}
}

// BenchmarkMatchSessionBatch: the batch an identified netclient.Session
// writes on each push (acknowledge, leave notification mode, fetch,
// re-enter), answered with a push crossing stop_notif as it does on a
// busy server. One op is one batch of four commands.
func BenchmarkMatchSessionBatch(b *testing.B) {
	pushes := 0
	c := cannedConn(b, netclient.Options{OnNotify: func(wire.Kind) { pushes++ }, UnsolicitedRate: 1e9},
		exchange{cmds: lines("hello bench"), replies: lines(wire.OK)},
		exchange{
			cmds:    lines("seen 1234566", wire.CmdStopNotify, wire.CmdClassified, wire.CmdNotify),
			replies: lines(wire.OK, wire.NotifClassified, wire.OK, "1234567 "+benchAd, wire.OK),
		})
	if _, err := c.Do(bg, netclient.HelloCmd("bench")); err != nil {
		b.Fatal(err)
	}
	benchDo(b, c,
		[]netclient.Cmd{netclient.SeenCmd(1234566), netclient.StopNotifyCmd, netclient.ClassifiedCmd, netclient.NotifyCmd},
		[]netclient.Item{{}, {}, {Kind: wire.KindClassified, Value: benchAd, ID: 1234567}, {}})
	if pushes == 0 {
		b.Fatal("no push routed")
	}
}

// BenchmarkPushRouting: pushes alone, as a connection in notification
// mode receives them, 64 per write; one op is the 64. The benchmark
// writes them itself and waits until OnNotify has had the last one.
func BenchmarkPushRouting(b *testing.B) {
	const perOp = 64
	batch := []byte(strings.Repeat(lines(wire.NotifClassified, wire.NotifRandom), perOp/2))
	routed := make(chan struct{}, 1)
	n := 0
	cc, sc := net.Pipe()
	c := netclient.New(cc, netclient.Options{OnNotify: func(wire.Kind) {
		if n++; n%perOp == 0 {
			routed <- struct{}{}
		}
	}})
	defer func() {
		c.Close()
		sc.Close()
	}()
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	ops := 0
	for b.Loop() {
		// net.Pipe's Write returns once the Conn has read it all.
		if _, err := sc.Write(batch); err != nil {
			b.Fatal(err)
		}
		select {
		case <-routed:
		case <-c.Done():
			b.Fatalf("connection closed: %v", c.Err())
		}
		ops++
	}
	if s := c.Strays(); s != 0 {
		b.Fatalf("Strays() = %d, want 0", s)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*perOp), "ns/push")
}
