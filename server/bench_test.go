package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/harkapp/hark/wire"
)

// BenchmarkFanout publishes one ad per iteration to 1,000 connections in
// notification mode and measures, from the moment Publish is called (the
// store's disk sync included), when each client has received its notif:
// line and when each has fetched the ad with the classic cycle
// (stop_notif, classified?, notif). It reports the median and the last
// client of each, averaged over iterations.
//
//	go test -run '^$' -bench Fanout -benchtime 50x ./server/
func BenchmarkFanout(b *testing.B) {
	const n = 1000
	s := startServer(b, Config{MaxConnsPerAddr: n}) // every client comes from 127.0.0.1
	type event struct {
		fetched bool
		at      time.Time
	}
	events := make(chan event, 2*n)
	conns := make([]net.Conn, n)
	done := make(chan struct{})
	for i := range conns {
		nc, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = nc
		br := bufio.NewReaderSize(nc, 256)
		if _, err := nc.Write([]byte("notif\r\n")); err != nil {
			b.Fatal(err)
		}
		if l, err := br.ReadString('\n'); err != nil || l != "OK\r\n" {
			b.Fatalf("notif: %q, %v", l, err)
		}
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				if l, err := br.ReadString('\n'); err != nil || l != "notif: classified\r\n" {
					return // closed at the end of the benchmark
				}
				events <- event{false, time.Now()}
				if _, err := nc.Write([]byte("stop_notif\r\nclassified?\r\nnotif\r\n")); err != nil {
					return
				}
				for range 3 {
					if _, err := br.ReadString('\n'); err != nil {
						return
					}
				}
				events <- event{true, time.Now()}
			}
		}()
	}
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
		for range conns {
			<-done
		}
	}()

	var notifP50, notifMax, fetchP50, fetchMax time.Duration
	notif := make([]time.Duration, 0, n)
	fetch := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		notif, fetch = notif[:0], fetch[:0]
		start := time.Now()
		if _, got, err := s.Publish(context.Background(), wire.KindClassified, fmt.Sprintf("ad %d", i)); err != nil || got != n {
			b.Fatalf("publish: notified %d, %v", got, err)
		}
		for len(fetch) < n {
			e := <-events
			if e.fetched {
				fetch = append(fetch, e.at.Sub(start))
			} else {
				notif = append(notif, e.at.Sub(start))
			}
		}
		slices.Sort(notif)
		slices.Sort(fetch)
		notifP50 += notif[n/2]
		notifMax += notif[n-1]
		fetchP50 += fetch[n/2]
		fetchMax += fetch[n-1]
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / 1e6 }
	b.ReportMetric(ms(notifP50), "notif-p50-ms")
	b.ReportMetric(ms(notifMax), "notif-all-ms")
	b.ReportMetric(ms(fetchP50), "fetch-p50-ms")
	b.ReportMetric(ms(fetchMax), "fetch-all-ms")
}

// BenchmarkIdleConnMemory measures the Go heap and stacks that the server
// holds per idle connection in notification mode. The clients live in the
// same process; their share is measured against a bare listener that only
// holds its accepted sockets, and subtracted.
//
//	go test -run '^$' -bench IdleConnMemory -benchtime 3x ./server/
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 1000
	var server, bare float64
	for i := 0; i < b.N; i++ {
		bare += float64(bareConnBytes(b, n)) / n
		s := startServer(b, Config{MaxConnsPerAddr: n}) // every client comes from 127.0.0.1
		before := liveBytes()
		conns := make([]net.Conn, n)
		buf := make([]byte, 4)
		for j := range conns {
			nc, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			conns[j] = nc
			if _, err := nc.Write([]byte("notif\r\n")); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "OK\r\n" {
				b.Fatalf("notif: %q, %v", buf, err)
			}
		}
		server += float64(liveBytes()-before) / n
		for _, nc := range conns {
			nc.Close()
		}
		stopServer(b, s)
	}
	b.ReportMetric(server/float64(b.N)-bare/float64(b.N)/2, "server-B/conn")
	b.ReportMetric(bare/float64(b.N)/2, "client-B/conn")
}

// bareConnBytes is what n loopback connections cost this process with no
// protocol at all: both ends' sockets, nothing reading.
func bareConnBytes(b *testing.B, n int) uint64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	before := liveBytes()
	held := make([]net.Conn, 0, 2*n)
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		a, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		held = append(held, c, a)
	}
	used := liveBytes() - before
	for _, c := range held {
		c.Close()
	}
	return used
}

// liveBytes is the live heap plus goroutine stacks after a full GC.
func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}
