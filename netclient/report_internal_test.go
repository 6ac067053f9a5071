package netclient

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// TestConnReport: a server never reached is "cannot resolve" or "cannot
// connect", said once per distinct failure; its repeats are counted and
// reported in one line when something else happens, and every
// reportEvery while it lasts.
func TestConnReport(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	now := time.Unix(1e9, 0)
	r := newConnReport(log, "nosuchhost:1")
	r.now = func() time.Time { return now }
	dnsErr := fmt.Errorf("connect to nosuchhost:1: %w", &net.OpError{Op: "dial", Net: "tcp",
		Err: &net.DNSError{Err: "no such host", Name: "nosuchhost", IsNotFound: true}})
	refused := errors.New("connect to nosuchhost:1: dial tcp 192.0.2.1:1: connect: connection refused")
	up := false
	fail := func(err error, after time.Duration) {
		now = now.Add(after)
		r.failed(err, up, false, time.Second)
		up = false
	}
	fail(dnsErr, 0)
	for range 5 {
		fail(dnsErr, time.Second)
	}
	fail(refused, time.Second) // another failure: the count, then it
	fail(refused, time.Minute)
	now = now.Add(time.Second)
	r.connected()
	up = true
	fail(errors.New("read: connection reset by peer"), time.Hour) // it was up
	fail(refused, time.Second)
	for range 12 {
		fail(refused, time.Minute) // the 11th is 11 minutes on: reported
	}
	r.flush() // the session ends
	r.flush() // nothing more to say

	want := []string{
		`level=WARN msg="cannot resolve nosuchhost" err="dial tcp: lookup nosuchhost: no such host" retry_in=1s`,
		`level=WARN msg="cannot resolve nosuchhost (5 more times in the last 6s)" err="dial tcp: lookup nosuchhost: no such host"`,
		`level=WARN msg="cannot connect to nosuchhost:1" err="dial tcp 192.0.2.1:1: connect: connection refused" retry_in=1s`,
		`level=WARN msg="cannot connect to nosuchhost:1 (1 more time in the last 1m1s)" err="dial tcp 192.0.2.1:1: connect: connection refused"`,
		`level=INFO msg=disconnected err="read: connection reset by peer" retry_in=1s`,
		`level=WARN msg="cannot connect to nosuchhost:1" err="dial tcp 192.0.2.1:1: connect: connection refused" retry_in=1s`,
		`level=WARN msg="cannot connect to nosuchhost:1 (10 more times in the last 10m0s)" err="dial tcp 192.0.2.1:1: connect: connection refused"`,
		`level=WARN msg="cannot connect to nosuchhost:1 (2 more times in the last 2m0s)" err="dial tcp 192.0.2.1:1: connect: connection refused"`,
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
