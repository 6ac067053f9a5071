package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/harkapp/hark/netclient"
)

// DefaultServer is where the client looks for hark serve.
const DefaultServer = "127.0.0.1:6789"

// Watch runs `hark watch`: a headless subscriber printing one line per
// item, the same session the tray runs.
func Watch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("watch", "[flags]", stderr)
	addr := fs.String("server", DefaultServer, "`address` of the hark server: host:port, or tls://host:port")
	var sec clientSecurity
	sec.register(fs, "subscribe")
	asJSON := fs.Bool("json", false, "print one JSON object per item: kind, value, id (when known), time")
	refresh := fs.Duration("refresh", 29*time.Minute, "re-enter notification mode at least this often; sooner, by itself, when the server says its idle timeout needs it (with --v1, keep it below the server's idle timeout)")
	v1 := fs.Bool("v1", false, "do not identify (plain version 1: items published while away are missed)")
	var level logLevel
	fs.Var(&level, "log-level", "debug, info, warn or error (default info)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: watch takes only flags", fs.Arg(0))
	}
	if _, err := netclient.ParseAddr(*addr); err != nil {
		return usagef("--server: %v", err)
	}
	tlsConf, err := sec.tlsConfig()
	if err != nil {
		return err
	}
	token, err := sec.token()
	if err != nil {
		return err
	}
	if *refresh <= 0 {
		return usagef("--refresh must be positive, e.g. 29m")
	}
	log := newLogger(stderr, &level)
	// The session's own "disconnected" lines are left to --log-level
	// debug: report, below, says why the server cannot be reached.
	opts := netclient.SessionOptions{Addr: *addr, Refresh: *refresh, Logger: slog.New(quietDisconnects{log.Handler()}), TLS: tlsConf}
	report := newConnReport(log, *addr)
	if token != "" {
		opts.Token = func(context.Context) (string, error) { return token, nil }
	}
	if !*v1 {
		dir, err := stateDir()
		if err != nil {
			return fmt.Errorf("%w (or run with --v1, without an identity)", err)
		}
		idt, err := netclient.OpenIdentity(dir)
		if err != nil {
			return fmt.Errorf("%w (or run with --v1, without an identity)", err)
		}
		defer idt.Close()
		opts.Identity = idt
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false) // a terminal, not a web page: print <, > and & as they are
	show := func(d netclient.Delivery) error {
		var err error
		if *asJSON {
			err = enc.Encode(jsonItem(d))
		} else {
			_, err = fmt.Fprintf(stdout, "%s %s\n", d.Kind, d.Value)
		}
		if err != nil {
			// The session counts the item as shown once it is taken: say
			// what it was, here on stderr, rather than lose it silently.
			return fmt.Errorf("writing an item: %w (it was: %s %q)", err, d.Kind, d.Value)
		}
		return nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sess := netclient.NewSession(opts)
	done := make(chan error, 1)
	go func() { done <- sess.Run(ctx) }()
	// Items are printed as they come; what was there before this client
	// first met the server (current) is not news, and not printed. A
	// write error (a full disk) ends the session, so that no more items
	// are taken than can be printed.
	var werr error
	var hint string
	for ev := range sess.Events() {
		if st := ev.State; st != nil {
			report.state(*st)
			// What to do about a failure retrying cannot fix, said once
			// per change.
			if st.Connected {
				hint = ""
			} else if h := netclient.Hint(st.Err); h != hint {
				if hint = h; h != "" {
					log.Warn(h, "retry_in", st.RetryIn.Round(time.Second))
				}
			}
			continue
		}
		if ev.Item == nil || ev.Item.Current {
			continue
		}
		if werr = show(*ev.Item); werr != nil {
			cancel()
			break
		}
	}
	cancel()
	report.flush()
	return errors.Join(<-done, werr)
}

// connReportEvery is how often, at most, a failure that goes on is
// reported again with the count of its repeats.
const connReportEvery = 10 * time.Minute

// connReport says why watch is not connected, for a person reading its
// log. The first failure of a kind is logged with its error: "cannot
// resolve HOST" or "cannot connect to ADDR" while the server was not
// reached (a warning), "disconnected from ADDR" when a connection ended
// (routine: a server restarts). The same failure again, try after try
// (the session backs off, up to a minute), is counted, and the count is
// logged in one line when something else happens (the server is reached,
// the failure changes, watch ends), and every connReportEvery while it
// lasts.
type connReport struct {
	log   *slog.Logger
	addr  string
	every time.Duration
	now   func() time.Time

	up    bool   // connected when last told
	key   string // the failure being counted: its message and error ("": none)
	level slog.Level
	msg   string
	cause string    // the error's text
	n     int       // repeats not yet reported
	since time.Time // when msg or its count was last logged
}

func newConnReport(log *slog.Logger, addr string) *connReport {
	return &connReport{log: log, addr: addr, every: connReportEvery, now: time.Now}
}

// state takes one of the session's states.
func (r *connReport) state(st netclient.State) {
	if st.Connected {
		r.flush()
		r.key, r.up = "", true
		return
	}
	level, msg, cause := slog.LevelWarn, r.describe(st.Err), errorText(st.Err, r.addr)
	if r.up {
		// The connection that was up ended: why is in cause.
		level, msg = slog.LevelInfo, "disconnected from "+r.addr
	}
	r.up = false
	if key := msg + "\x00" + cause; key != r.key {
		r.flush()
		r.key, r.level, r.msg, r.cause, r.n, r.since = key, level, msg, cause, 0, r.now()
		r.log.Log(context.Background(), level, msg, "err", cause, "retry_in", st.RetryIn.Round(time.Second))
		return
	}
	r.n++
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
		host, _, _ := net.SplitHostPort(strings.TrimPrefix(r.addr, "tls://"))
		if host == "" {
			host = r.addr
		}
		return "cannot resolve " + host
	}
	return "cannot connect to " + r.addr
}

// errorText is err's text without the session's "connect to ADDR: ",
// which the message already says.
func errorText(err error, addr string) string {
	if err == nil {
		return "connection closed"
	}
	s := err.Error()
	for _, a := range []string{addr, strings.TrimPrefix(addr, "tls://")} {
		if t, ok := strings.CutPrefix(s, "connect to "+a+": "); ok {
			return t
		}
	}
	return s
}

// quietDisconnects leaves out the session's own "disconnected" records
// above debug level: watch reports them itself (connReport), and the
// session says "disconnected" even of a server it never reached.
type quietDisconnects struct{ slog.Handler }

func (h quietDisconnects) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "disconnected" && r.Level > slog.LevelDebug {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietDisconnects) WithAttrs(as []slog.Attr) slog.Handler {
	return quietDisconnects{h.Handler.WithAttrs(as)}
}

func (h quietDisconnects) WithGroup(name string) slog.Handler {
	return quietDisconnects{h.Handler.WithGroup(name)}
}

type watchItem struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
	ID    uint64 `json:"id,omitempty"`
	Time  string `json:"time"`
}

func jsonItem(d netclient.Delivery) watchItem {
	return watchItem{Kind: string(d.Kind), Value: d.Value, ID: d.ID, Time: d.Time.Format(time.RFC3339)}
}

// stateDir is hark's XDG state directory: the client id lives there.
func stateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "hark"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("no home directory to keep hark's client id in: set XDG_STATE_HOME")
	}
	return filepath.Join(home, ".local", "state", "hark"), nil
}

func checkHostPort(flagName, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return usagef("%s %q: want host:port with a port from 0 to 65535, e.g. 127.0.0.1:6789", flagName, addr)
	}
	return nil
}
