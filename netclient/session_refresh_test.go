package netclient

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// The refresh rule: the configured period, or sooner when the server's
// idle timeout needs it (a tenth below it, from 1s to 1m, in whole
// seconds), never under a second; a server that does not tell its
// timeout gets the configured period.
func TestRefreshFor(t *testing.T) {
	const dflt = DefaultRefresh
	for _, tc := range []struct {
		configured, idle, want time.Duration
	}{
		{dflt, 0, dflt}, // not told (version 1): as configured
		{5 * time.Second, 0, 5 * time.Second},
		{dflt, 2 * time.Second, time.Second},
		{dflt, 3 * time.Second, 2 * time.Second},
		{dflt, 10 * time.Second, 9 * time.Second},
		{dflt, 45 * time.Second, 40 * time.Second}, // 40.5s, rounded down
		{dflt, time.Minute, 54 * time.Second},
		{dflt, 20 * time.Minute, 19 * time.Minute}, // the margin is at most a minute
		{dflt, 30 * time.Minute, 29 * time.Minute}, // the default server: as configured
		{dflt, time.Hour, dflt},
		{dflt, wire.MaxIdle, dflt},
		{5 * time.Minute, 30 * time.Minute, 5 * time.Minute}, // Refresh is an upper bound
		{300 * time.Millisecond, 2 * time.Second, 300 * time.Millisecond},
		// A server saying idle=1 cannot make the session spin.
		{dflt, time.Second, minRefresh},
		{dflt, time.Nanosecond, minRefresh},
	} {
		if got := refreshFor(tc.configured, tc.idle); got != tc.want {
			t.Errorf("refreshFor(%v, idle %v) = %v, want %v", tc.configured, tc.idle, got, tc.want)
		}
	}
}

// A server with a 2s idle timeout and a client configured to refresh every
// 29 minutes: the server tells its timeout in hello's reply, and the
// client refreshes below it by itself, so an item published once the
// timeout has passed is still pushed and delivered, not 29 minutes later
// (or when the command timeout drops the connection). The shorter period
// is said once, not on every connection.
func TestSessionRefreshesBelowServerIdle(t *testing.T) {
	const idle = 2 * time.Second
	srv, err := server.Start(server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), IdleTimeout: idle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	logs := &refreshLog{}
	sess := NewSession(SessionOptions{Addr: srv.Addr().String(), ClientID: "laptop", Logger: slog.New(logs)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sess.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range sess.Events() { // drain, so that Run can return
		}
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	await := func(what string, ok func(Event) bool) {
		t.Helper()
		timeout := time.After(10 * time.Second) // far below the command timeout's 2m
		for {
			select {
			case ev := <-sess.Events():
				if ok(ev) {
					return
				}
			case <-timeout:
				t.Fatalf("timed out waiting for %s; log:\n%s", what, logs)
			}
		}
	}
	connected := func(ev Event) bool { return ev.State != nil && ev.State.Connected }
	await("the connection", connected)

	// Without a refresh below it, the server ends notification mode
	// silently within a quarter of the idle timeout after it passes.
	time.Sleep(idle + idle/2)
	if _, _, err := srv.Publish(context.Background(), wire.KindClassified, "after the idle timeout"); err != nil {
		t.Fatal(err)
	}
	await("the ad published after the idle timeout", func(ev Event) bool {
		return ev.Item != nil && ev.Item.Value == "after the idle timeout"
	})

	sess.Reconnect()
	await("the reconnection", connected)
	const said = "INFO the server ends notification mode after 2s idle: refreshing every 1s"
	if n := logs.count(said); n != 1 {
		t.Errorf("%q logged %d times, want once; log:\n%s", said, n, logs)
	}
}

// refreshLog is a slog.Handler that keeps each record's level and message.
type refreshLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *refreshLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *refreshLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *refreshLog) WithGroup(string) slog.Handler            { return l }

func (l *refreshLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	return nil
}

func (l *refreshLog) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

func (l *refreshLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, "\n")
}
