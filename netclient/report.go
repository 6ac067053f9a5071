package netclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// reportEvery is how often, at most, a failure that goes on is reported
// again with the count of its repeats.
const reportEvery = 10 * time.Minute

// connReport logs why a session is not connected, for a person reading
// the log. A server never reached is "cannot resolve HOST" or "cannot
// connect to ADDR" (a warning); a connection that was up and ended is
// "disconnected" (routine: a server restarts). The same failure again,
// try after try, goes to debug level only and is counted; the count is
// logged in one line when something else happens (the server is reached,
// the failure changes, the session ends) and every reportEvery while it
// lasts. Owned by Run's goroutine.
type connReport struct {
	log   *slog.Logger
	addr  string
	every time.Duration
	now   func() time.Time

	key   string // the failure being counted: its message and error ("": none)
	level slog.Level
	msg   string
	cause string    // the error's text
	n     int       // repeats not yet reported
	since time.Time // when msg or its count was last logged
}

func newConnReport(log *slog.Logger, addr string) *connReport {
	return &connReport{log: log, addr: addr, every: reportEvery, now: time.Now}
}

// connected ends the failure being counted.
func (r *connReport) connected() {
	r.flush()
	r.key = ""
}

// failed takes one failure: err, after a connection that was up or not;
// slow when only a change of settings can fix it; wait until the next try.
func (r *connReport) failed(err error, wasUp, slow bool, wait time.Duration) {
	level, msg := slog.LevelWarn, r.describe(err)
	if wasUp {
		level, msg = slog.LevelInfo, "disconnected"
		if slow {
			level = slog.LevelWarn
		}
	}
	cause := errorText(err, r.addr)
	args := []any{"err", cause, "retry_in", wait.Round(time.Millisecond)}
	if h := Hint(err); h != "" {
		args = append(args, "hint", h)
	}
	if key := msg + "\x00" + cause; key != r.key || wasUp {
		r.flush()
		r.key, r.level, r.msg, r.cause, r.n, r.since = key, level, msg, cause, 0, r.now()
		r.log.Log(context.Background(), level, msg, args...)
		return
	}
	r.n++
	r.log.Log(context.Background(), slog.LevelDebug, msg, args...)
	if r.now().Sub(r.since) >= r.every {
		r.flush()
	}
}

// flush logs the repeats counted since the failure was last logged.
func (r *connReport) flush() {
	if r.n == 0 {
		return
	}
	times := "times"
	if r.n == 1 {
		times = "time"
	}
	now := r.now()
	msg := fmt.Sprintf("%s (%d more %s in the last %s)", r.msg, r.n, times, now.Sub(r.since).Round(time.Second))
	r.log.Log(context.Background(), r.level, msg, "err", r.cause)
	r.n, r.since = 0, now
}

// describe says what failed, for a server never reached.
func (r *connReport) describe(err error) string {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		a, perr := ParseAddr(r.addr)
		if perr != nil {
			return "cannot resolve " + r.addr
		}
		return "cannot resolve " + a.Host()
	}
	return "cannot connect to " + r.addr
}

// errorText is err's text without "connect to ADDR: ", which the message
// already says.
func errorText(err error, addr string) string {
	if err == nil {
		return "connection closed"
	}
	s := err.Error()
	for _, a := range []string{addr, strings.TrimPrefix(addr, TLSScheme)} {
		if t, ok := strings.CutPrefix(s, "connect to "+a+": "); ok {
			return t
		}
	}
	return s
}
