package netclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// benchConn connects to a real hark serve on loopback.
func benchConn(b *testing.B) *netclient.Conn {
	b.Helper()
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	c, err := netclient.Dial(context.Background(), s.Addr().String(), netclient.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		if err := s.Shutdown(context.Background()); err != nil {
			b.Error(err)
		}
	})
	return c
}

// BenchmarkRoundTrip: one random? at a time on one connection.
//
//	go test -run '^$' -bench RoundTrip -count 5 ./netclient/
func BenchmarkRoundTrip(b *testing.B) {
	c := benchConn(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Random(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
}

// BenchmarkRoundTripPipelined: 64 random? per write on one connection;
// rt/s counts commands answered.
func BenchmarkRoundTripPipelined(b *testing.B) {
	const depth = 64
	c := benchConn(b)
	ctx := context.Background()
	cmds := make([]netclient.Cmd, depth)
	for i := range cmds {
		cmds[i] = netclient.RandomCmd
	}
	for b.Loop() {
		items, err := c.Do(ctx, cmds...)
		if err != nil || len(items) != depth {
			b.Fatalf("%d items, %v", len(items), err)
		}
	}
	b.ReportMetric(float64(b.N*depth)/b.Elapsed().Seconds(), "rt/s")
}

// BenchmarkPublishToDelivery: from Publish (its disk sync included) until
// an identified session has fetched the ad and handed it over.
//
//	go test -run '^$' -bench PublishToDelivery -count 5 ./netclient/
func BenchmarkPublishToDelivery(b *testing.B) {
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := s.Shutdown(context.Background()); err != nil {
			b.Error(err)
		}
	}()
	sess := netclient.NewSession(netclient.SessionOptions{Addr: s.Addr().String(), ClientID: "bench"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sess.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The consumer is this goroutine, as in the tray's loop: items of the
	// catch-up at connect are skipped by id below.
	got := make(chan netclient.Delivery)
	go func() {
		for ev := range sess.Events() {
			if ev.Item != nil {
				select {
				case got <- *ev.Item:
				case <-ctx.Done():
				}
			}
		}
	}()
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		it, _, err := s.Publish(ctx, wire.KindClassified, "bench ad")
		if err != nil {
			b.Fatal(err)
		}
		for d := range got {
			if d.ID == it.ID {
				break
			}
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total)/float64(b.N)/1e6, "ms/delivery")
}
