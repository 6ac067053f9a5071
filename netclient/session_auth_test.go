package netclient_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/tlstest"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

func awaitDown(t *testing.T, r *running, what string) netclient.State {
	t.Helper()
	select {
	case st := <-r.down:
		return st
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
		return netclient.State{}
	}
}

// A token refused: the session waits ConfigRetry, not the backoff, asks
// for the token again before the next connection (a new one saved by
// hark login meanwhile is used), and Reconnect still tries at once.
func TestSessionAuthFailureRetriesSlowly(t *testing.T) {
	k := newPKI(t)
	addr, peers := serveTLSPeers(t, k.server)
	var calls atomic.Int64
	r := startSession(t, netclient.SessionOptions{
		Addr: "tls://" + addr, TLS: k.client,
		Token: func(context.Context) (string, error) {
			return fmt.Sprintf("hark_token%d", calls.Add(1)), nil
		},
		ConfigRetry: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
	})
	p := await(t, peers, "the first connection")
	p.expect("auth hark_token1")
	p.write(wire.ErrAuthFailed + "\r\n")
	st := awaitDown(t, r, "the refusal")
	if st.RetryIn != time.Hour || !errors.Is(st.Err, netclient.ErrAuthFailed) {
		t.Fatalf("after a refused token: %+v; want ErrAuthFailed and a retry in ConfigRetry (1h)", st)
	}
	requireHint(t, st.Err, "Token refused by the server: run hark login")

	r.sess.Reconnect()
	p = await(t, peers, "the connection asked for")
	p.expect("auth hark_token2")
	p.write("OK\r\n")
	p.expect("random?", "classified?", "notif")
	p.write("7\r\n\r\nOK\r\n")
	if st := awaitState(t, r.connected, "connect"); !st.Connected {
		t.Fatalf("state %+v", st)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("Token called %d times, want once per connection: 2", n)
	}
}

// Each failure that retrying soon cannot fix waits ConfigRetry, with a
// hint; ordinary ones (the server is full) back off as usual.
func TestSessionConfigErrorsWaitConfigRetry(t *testing.T) {
	k := newPKI(t)
	const retry = 42 * time.Hour
	tlsAddr, _ := serveTLSPeers(t, k.server) // no handshake succeeds here
	for _, tc := range []struct {
		name string
		opts netclient.SessionOptions
		hint string
		slow bool
	}{
		{"auth required", netclient.SessionOptions{Addr: plaintextServer(t, false, wire.ErrAuthRequired)}, "Server needs a token", true},
		{"expired", netclient.SessionOptions{Addr: plaintextServer(t, false, wire.ErrAuthExpired), Token: constToken(testToken)}, "Token expired", true},
		{"wants TLS", netclient.SessionOptions{Addr: tlsAddr}, "Server speaks TLS", true},
		{"not TLS", netclient.SessionOptions{Addr: "tls://" + plaintextServer(t, true, wire.ErrNoTLS), TLS: k.client}, "Server does not speak TLS", true},
		{"untrusted", netclient.SessionOptions{Addr: "tls://" + tlsAddr, TLS: &tls.Config{RootCAs: tlstest.NewCA(t, "other").Pool()}}, "Certificate not trusted: set ca_file", true},
		{"in clear", netclient.SessionOptions{Addr: "192.0.2.1:6789", Token: constToken(testToken)}, "Not sending the token without TLS", true},
		{"bad address", netclient.SessionOptions{Addr: "https://hark.example"}, "Bad server address", true},
		{"no token", netclient.SessionOptions{Addr: "tls://" + tlsAddr, TLS: k.client, Token: func(context.Context) (string, error) {
			return "", errors.New("the keyring is locked")
		}}, "Cannot read the saved token", true},
		{"full", netclient.SessionOptions{Addr: plaintextServer(t, false, wire.ErrTooManyConns)}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.ConfigRetry, opts.MinBackoff, opts.MaxBackoff = retry, time.Hour, time.Hour
			r := startSession(t, opts)
			st := awaitDown(t, r, "the failure")
			if got := netclient.Hint(st.Err); !strings.HasPrefix(got, tc.hint) || (tc.hint == "") != (got == "") {
				t.Fatalf("Hint(%v) = %q, want %q…", st.Err, got, tc.hint)
			}
			if slow := st.RetryIn == retry; slow != tc.slow {
				t.Fatalf("%v: retry in %v, want ConfigRetry %v", st.Err, st.RetryIn, tc.slow)
			}
		})
	}
}

func constToken(tok string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return tok, nil }
}

// levelLog keeps each record's level and message.
type levelLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *levelLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *levelLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}
func (l *levelLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levelLog) WithGroup(string) slog.Handler      { return l }

// The same failure, retry after retry, is logged once; the others at
// debug level.
func TestSessionLogsAFailureOnce(t *testing.T) {
	logs := &levelLog{}
	r := startSession(t, netclient.SessionOptions{
		Addr: "127.0.0.1:1", ConfigRetry: time.Millisecond, Logger: slog.New(logs),
		Token: func(context.Context) (string, error) { return "", errors.New("no token saved") },
	})
	for i := range 3 {
		awaitDown(t, r, fmt.Sprintf("failure %d", i+1))
	}
	r.stop()
	logs.mu.Lock()
	defer logs.mu.Unlock()
	// A server never reached: "cannot connect", once loudly, the repeats
	// at debug level, and their count in one line when the session ends.
	loud, quiet, counted := 0, 0, 0
	for _, rec := range logs.recs {
		switch {
		case !strings.HasPrefix(rec.Message, "cannot connect to 127.0.0.1:1"):
		case strings.Contains(rec.Message, " more time"):
			counted++
		case rec.Level >= slog.LevelInfo:
			loud++
		default:
			quiet++
		}
	}
	if loud != 1 || quiet < 2 || counted != 1 {
		t.Fatalf("the same failure logged %d times, %d at debug level, its count in %d lines; want once, then quietly, then counted once", loud, quiet, counted)
	}
}
