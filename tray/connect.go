package tray

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync/atomic"

	"github.com/harkapp/hark/internal/keyring"
	"github.com/harkapp/hark/netclient"
)

// caError is a ca_file that cannot be used; the tray then does not
// connect until it can (Reconnect now reads the file again).
type caError struct {
	path string
	err  error
}

func (e *caError) Error() string { return fmt.Sprintf("ca_file %s: %v", e.path, e.err) }
func (e *caError) Unwrap() error { return e.err }

// status is the menu's first line for e: short, the log has the rest.
func (e *caError) status() string {
	switch {
	case errors.Is(e.err, fs.ErrNotExist):
		return "ca_file not found: check config.toml"
	case errors.Is(e.err, netclient.ErrNoCert):
		return "ca_file holds no certificate: check config.toml"
	}
	return "Cannot read ca_file: see hark's log"
}

// loadCA is the TLS configuration for a tls:// server verified against
// the CA in path alone; "" is nil, the system's roots. Verification is
// never skipped (netclient enforces it too).
func loadCA(path string) (*tls.Config, error) {
	if path == "" {
		return nil, nil
	}
	conf, err := netclient.LoadCA(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in caError already
		}
		return nil, &caError{path, err}
	}
	return conf, nil
}

// tokenSource is the session's Token: the token kept for server, looked
// up anew before each connection, so that one stored while hark runs
// (hark login) is used from the next try on. tokenFile, when set, is the
// only place looked in; else the keyring, then the default token file.
// No token anywhere is no error: hark connects without one, and a server
// that needs one says so (netclient.ErrAuthRequired), which is what the
// user is then told. Where the token came from is logged when it
// changes; the token never is.
//
// The keyring is asked only when a token can be needed: for a TLS
// server, with a token_file, or once a server said it needs one (wanted,
// set by the app's loop). Asking starts the Secret Service, and a locked
// keyring asks for its password: neither should happen to someone whose
// hark talks to a server on this machine that needs no token.
//
// The func is called from the session's goroutine only.
func tokenSource(log *slog.Logger, server, tokenFile string, wanted *atomic.Bool, lookup lookupFunc) func(context.Context) (string, error) {
	key := KeyringServer(server)
	addrs, err := netclient.ParseAddrs(server)
	mayNeed := tokenFile != "" || err != nil || addrs[0].TLS // a list is all TLS or none
	last := ""
	said := func(level slog.Level, what string, args ...any) {
		if what != last {
			log.Log(context.Background(), level, what, args...)
			last = what
		}
	}
	return func(ctx context.Context) (string, error) {
		if !mayNeed && !wanted.Load() {
			return "", nil
		}
		tok, from, err := lookup(ctx, key, tokenFile)
		switch {
		case errors.Is(err, keyring.ErrNotFound):
			// Normal for a server on this machine: not worth more than debug.
			said(slog.LevelDebug, "no token stored: connecting without one", "server", key, "reason", err)
			return "", nil
		case err != nil:
			last = ""
			return "", err
		}
		said(slog.LevelInfo, "using the token from "+from, "server", key)
		return tok, nil
	}
}

// lookupFunc finds a token: keyring.Lookup.
type lookupFunc func(ctx context.Context, server, tokenFile string) (token, from string, err error)

// hint is one line for a person about why the session is offline, for
// the status line and a popup; "" when the error itself says it all and
// retrying may fix it (a server down, a network gone).
func hint(err error) string {
	if errors.Is(err, keyring.ErrLocked) {
		return "Keyring locked: unlock it, then Reconnect now"
	}
	return netclient.Hint(err)
}
