package jetstream_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/harkapp/hark/internal/natstest"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/jetstream"
	"github.com/harkapp/hark/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every wait of these tests.
const testTimeout = 10 * time.Second

// natsServer is a real NATS server in the test (internal/natstest).
type natsServer = natstest.Server

func startNATS(t testing.TB) *natsServer { return natstest.Start(t) }

// prefixOf names a location's stream and buckets: opening one location
// again opens the same ones.
func prefixOf(loc string) string {
	h := sha256.Sum256([]byte(loc))
	return "T" + hex.EncodeToString(h[:8])
}

func openStore(t testing.TB, ns *natsServer, prefix string, keep store.Retention, log *slog.Logger) *jetstream.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := jetstream.Open(ctx, jetstream.Options{URLs: ns.URL, Retention: keep, Prefix: prefix, Logger: log})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return st
}

// opener opens stores on ns, one stream and set of buckets per location.
func opener(ns *natsServer) storetest.Opener {
	return func(t *testing.T, loc string, keep store.Retention) storetest.Store {
		return openStore(t, ns, prefixOf(loc), keep, nil)
	}
}

// logWatch is a slog handler that lets a test await a message.
type logWatch struct {
	mu   sync.Mutex
	msgs []string
	more chan struct{} // a message was logged (capacity 1)
}

func newLogWatch() *logWatch { return &logWatch{more: make(chan struct{}, 1)} }

func (l *logWatch) logger() *slog.Logger { return slog.New(l) }

func (l *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (l *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logWatch) WithGroup(string) slog.Handler            { return l }
func (l *logWatch) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	select {
	case l.more <- struct{}{}:
	default:
	}
	return nil
}

// await waits for the n-th message (counting from 1) that contains part.
func (l *logWatch) await(t testing.TB, part string, n int) {
	t.Helper()
	timeout := time.NewTimer(testTimeout)
	defer timeout.Stop()
	for l.count(part) < n {
		select {
		case <-l.more:
		case <-timeout.C:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("no log line %q (#%d) in:\n%s", part, n, strings.Join(l.msgs, "\n"))
		}
	}
}

func (l *logWatch) count(part string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, part) {
			n++
		}
	}
	return n
}
