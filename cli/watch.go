package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/harkapp/hark/internal/xdg"
	"github.com/harkapp/hark/netclient"
)

// DefaultServer is where the client looks for hark serve.
const DefaultServer = "127.0.0.1:6789"

// Watch runs `hark watch`: a headless subscriber printing one line per
// item, the same session the tray runs.
func Watch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("watch", "[flags]", stderr)
	addr := fs.String("server", DefaultServer, "`address` of the hark server: host:port, or tls://host:port; or several servers of one store, separated by commas (a:6789,b:6789), tried in turn when one fails")
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
	if _, err := netclient.ParseAddrs(*addr); err != nil {
		return usagef("--server: %v", err)
	}
	tlsConf, token, err := sec.load()
	if err != nil {
		return err
	}
	if *refresh <= 0 {
		return usagef("--refresh must be positive, e.g. 29m")
	}
	log := newLogger(stderr, &level)
	opts := netclient.SessionOptions{Addr: *addr, Refresh: *refresh, Logger: log, TLS: tlsConf}
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
	// The session logs its connection's changes, with a hint of what to
	// do where one helps.
	var werr error
	for ev := range sess.Events() {
		if ev.Item == nil || ev.Item.Current {
			continue
		}
		if werr = show(*ev.Item); werr != nil {
			cancel()
			break
		}
	}
	cancel()
	return errors.Join(<-done, werr)
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
	d, err := xdg.StateHome()
	if err != nil {
		return "", fmt.Errorf("keeping hark's client id: %w", err)
	}
	return filepath.Join(d, "hark"), nil
}
