package tray

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: the
// app starts a session, a popup goroutine and a sleep watcher, and must
// end every one of them when it returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every wait, so that a bug shows as a failure with a
// message rather than a hung test binary. No test measures time with it.
const testTimeout = 10 * time.Second

// stream records what another goroutine produces (popups, views, log
// records) in order, without ever blocking the producer, and lets the
// test goroutine consume it in that same order.
type stream[T any] struct {
	mu    sync.Mutex
	items []T
	more  chan struct{} // one token: something was added

	format func(T) string // for failure messages; nil: %+v

	read int // the consumer's cursor; test goroutine only
}

func newStream[T any]() *stream[T] { return &stream[T]{more: make(chan struct{}, 1)} }

func (s *stream[T]) add(v T) {
	s.mu.Lock()
	s.items = append(s.items, v)
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// all returns everything recorded so far.
func (s *stream[T]) all() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]T(nil), s.items...)
}

// await consumes items until one matches, and returns it. Items skipped
// on the way are gone for later calls: the order is what tests prove.
func (s *stream[T]) await(t testing.TB, what string, match func(T) bool) T {
	t.Helper()
	timeout := time.NewTimer(testTimeout)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		for s.read < len(s.items) {
			v := s.items[s.read]
			s.read++
			if match(v) {
				s.mu.Unlock()
				return v
			}
		}
		s.mu.Unlock()
		select {
		case <-s.more:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s; recorded so far:\n%s", what, s.dump())
		}
	}
}

// next consumes the very next item, whatever it is.
func (s *stream[T]) next(t testing.TB, what string) T {
	t.Helper()
	return s.await(t, what, func(T) bool { return true })
}

func (s *stream[T]) dump() string {
	var b strings.Builder
	for i, v := range s.all() {
		if s.format != nil {
			fmt.Fprintf(&b, "  %d: %s\n", i, s.format(v))
		} else {
			fmt.Fprintf(&b, "  %d: %+v\n", i, v)
		}
	}
	return b.String()
}
