package ratelog

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// records is an slog.Handler that sends every record's message down a
// channel, so a test can await a report instead of sleeping.
type records chan string

func (r records) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r records) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r <- b.String()
	return nil
}
func (r records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r records) WithGroup(string) slog.Handler      { return r }

func next(t *testing.T, r records) string {
	t.Helper()
	select {
	case s := <-r:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no log line")
		return ""
	}
}

func none(t *testing.T, r records) {
	t.Helper()
	select {
	case s := <-r:
		t.Fatalf("unexpected log line %q", s)
	default:
	}
}

func TestRepeatsAreLoggedOnceWithACount(t *testing.T) {
	r := make(records, 100)
	l := New(slog.New(r), 20*time.Millisecond)
	defer l.Close()
	for i := range 3412 + 1 {
		l.Warn("connection refused", "remote", i)
	}
	if got := next(t, r); got != "connection refused remote=0" {
		t.Fatalf("first line %q, want the first event as it was", got)
	}
	none(t, r) // the repeats wait for the window's end
	if got, want := next(t, r), "connection refused (… 3,412 more in the last 20ms) remote=3412"; got != want {
		t.Fatalf("report %q, want %q", got, want)
	}
}

// A window without repeats forgets its event: the next one is logged at
// once. (tick is what the window's timer calls.)
func TestQuietWindowForgets(t *testing.T) {
	r := make(records, 100)
	l := New(slog.New(r), time.Hour)
	defer l.Close()
	l.Warn("refused", "n", 1)
	l.Warn("refused", "n", 2)
	next(t, r)
	l.tick() // the window ends with one repeat: reported, still active
	if got := next(t, r); got != "refused (… 1 more in the last 1h0m0s) n=2" {
		t.Fatalf("report %q", got)
	}
	l.Warn("refused", "n", 3) // counted in the next window
	none(t, r)
	l.tick()
	next(t, r)
	l.tick() // a window without repeats: forgotten, no report
	none(t, r)
	l.Warn("refused", "n", 4)
	if got := next(t, r); got != "refused n=4" {
		t.Fatalf("after a quiet window: %q, want the event logged at once", got)
	}
}

func TestMessagesAreCountedApart(t *testing.T) {
	r := make(records, 100)
	l := New(slog.New(r), time.Hour)
	l.Info("a")
	l.Info("b")
	l.Info("a")
	l.Info("a")
	l.Info("b")
	if a, b := next(t, r), next(t, r); a != "a" || b != "b" {
		t.Fatalf("first lines %q, %q", a, b)
	}
	none(t, r)
	l.Close() // reports what the hour-long window still counts
	got := map[string]bool{next(t, r): true, next(t, r): true}
	if !got["a (… 2 more in the last 1h0m0s)"] || !got["b (… 1 more in the last 1h0m0s)"] {
		t.Fatalf("reports at Close: %v", got)
	}
	none(t, r)
	l.Info("a") // after Close: one line per event
	l.Info("a")
	if a, b := next(t, r), next(t, r); a != "a" || b != "a" {
		t.Fatalf("after Close: %q, %q", a, b)
	}
}

func TestDisabledLevelCostsNothing(t *testing.T) {
	r := make(records, 10)
	l := New(slog.New(r), time.Hour)
	defer l.Close()
	l.Debug("noise")
	l.mu.Lock()
	n := len(l.events)
	l.mu.Unlock()
	if n != 0 {
		t.Fatalf("a disabled level was counted")
	}
	none(t, r)
}

func TestCommas(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 3412: "3,412", 1234567: "1,234,567"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
}
