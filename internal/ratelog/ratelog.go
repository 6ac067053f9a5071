// Package ratelog logs events that outside input can repeat at will (a
// refused connection, an over-long line, a stray line from a server) once,
// then counts the repeats and reports them in one line per window:
//
//	connection refused: too many connections remote=… (… 3,412 more in the last 10s)
//
// A stranger can then make a process do work, but not fill its disk with
// log lines. Events are told apart by their message, which the code
// chooses, never by their attributes, which the stranger does: the set of
// counters is as bounded as the set of messages in the source.
package ratelog

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// DefaultWindow is how long repeats are counted before they are reported.
const DefaultWindow = 10 * time.Second

// Logger logs through an slog.Logger, one line per message per window.
// It is safe for concurrent use; Close reports what is still counted.
type Logger struct {
	log    *slog.Logger
	window time.Duration

	mu     sync.Mutex
	events map[string]*event // by message
	timer  *time.Timer       // runs while any event is active
	closed bool
}

// event is a message seen in the current window: the first one was
// logged; n more were counted, the last with these attributes.
type event struct {
	level slog.Level
	n     int
	args  []any
}

// New returns a Logger that writes to log (nil: discard) and reports
// repeats every window (0: DefaultWindow).
func New(log *slog.Logger, window time.Duration) *Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if window <= 0 {
		window = DefaultWindow
	}
	return &Logger{log: log, window: window, events: make(map[string]*event)}
}

// Slog is the logger underneath, for events that cannot repeat.
func (l *Logger) Slog() *slog.Logger { return l.log }

// Log logs msg at level with args, unless msg was already logged in the
// current window: then it is only counted.
func (l *Logger) Log(level slog.Level, msg string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.log.Log(context.Background(), level, msg, args...)
		return
	}
	if e, ok := l.events[msg]; ok {
		e.n++
		e.args = args
		l.mu.Unlock()
		return
	}
	l.events[msg] = &event{level: level}
	if l.timer == nil {
		l.timer = time.AfterFunc(l.window, l.tick)
	}
	l.mu.Unlock()
	l.log.Log(context.Background(), level, msg, args...)
}

// Debug, Info, Warn and Error are Log at that level.
func (l *Logger) Debug(msg string, args ...any) { l.Log(slog.LevelDebug, msg, args...) }
func (l *Logger) Info(msg string, args ...any)  { l.Log(slog.LevelInfo, msg, args...) }
func (l *Logger) Warn(msg string, args ...any)  { l.Log(slog.LevelWarn, msg, args...) }
func (l *Logger) Error(msg string, args ...any) { l.Log(slog.LevelError, msg, args...) }

// tick ends a window: counted repeats are reported and keep their event
// active for one more window (a flood yields one line per window); an
// event without repeats is forgotten, so its next occurrence is logged at
// once.
func (l *Logger) tick() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	reports := l.drain(false)
	if len(l.events) > 0 {
		l.timer.Reset(l.window)
	} else {
		l.timer = nil
	}
	l.mu.Unlock()
	l.report(reports)
}

type report struct {
	msg string
	e   event
}

// drain takes the counted repeats; all: forget every event. l.mu held.
func (l *Logger) drain(all bool) []report {
	var out []report
	for msg, e := range l.events {
		if e.n > 0 {
			out = append(out, report{msg, *e})
			e.n, e.args = 0, nil
			if !all {
				continue
			}
		}
		delete(l.events, msg)
	}
	return out
}

func (l *Logger) report(reports []report) {
	for _, r := range reports {
		msg := fmt.Sprintf("%s (… %s more in the last %s)", r.msg, commas(r.e.n), l.window)
		l.log.Log(context.Background(), r.e.level, msg, r.e.args...)
	}
}

// Close reports the repeats still counted and stops the window's timer.
// Later events are logged one by one.
func (l *Logger) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	reports := l.drain(true)
	l.mu.Unlock()
	l.report(reports)
}

// commas formats n with thousands separators: 3,412.
func commas(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
