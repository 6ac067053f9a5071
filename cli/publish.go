package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/harkapp/hark/internal/hostport"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// Publish runs `hark publish`.
func Publish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", "[flags] random [NUMBER] | classified TEXT", stderr)
	base := fs.String("http", "http://"+server.DefaultHTTP, "publish API `URL` of a hark serve")
	asJSON := fs.Bool("json", false, "print the server's JSON answer")
	var sec clientSecurity
	sec.register(fs, "publish")
	if err := parse(fs, args); err != nil {
		return err
	}
	kind, value, err := publishArgs(fs.Args())
	if err != nil {
		return err
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--http %q: want a URL such as http://127.0.0.1:6790, or https://HOST:6790 for a server with TLS", *base)
	}
	tlsConf, token, err := sec.load()
	if err != nil {
		return err
	}
	if token != "" && u.Scheme == "http" && !hostport.IsLoopbackHost(u.Hostname()) {
		return usagef("--http %s: not sending a token without TLS to another machine: use https://", *base)
	}
	api := publishAPI{base: u, tls: tlsConf, token: token}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// One key for the request and its retry: a server that stored the item
	// but whose answer was lost returns that item again, not a second one.
	key := rand.Text()
	p, raw, err := api.post(ctx, kind, value, key)
	var be *brokenError
	if errors.As(err, &be) && ctx.Err() == nil {
		fmt.Fprintf(stderr, "hark publish: %v; trying once more\n", be.err)
		p, raw, err = api.post(ctx, kind, value, key)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		_, err = stdout.Write(raw)
		return err
	}
	what := "random number " + p.Value
	if p.Kind == wire.KindClassified {
		what = "classified ad"
	}
	_, err = fmt.Fprintf(stdout, "published %s as item %d; %d connection(s) notified\n", what, p.ID, p.Notified)
	return err
}

// publishArgs checks the positional arguments locally, so that a mistake
// is caught before anything is sent.
func publishArgs(args []string) (wire.Kind, string, error) {
	if len(args) == 0 {
		return "", "", usagef("say what to publish: hark publish random [NUMBER], or hark publish classified TEXT")
	}
	// After the kind, "--" ends what may be a misplaced flag: what follows
	// is the value, even one starting with "-" (classified -- "-50% off").
	for i, a := range args[1:] {
		if a == "--" {
			args = append(args[:1+i:1+i], args[2+i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(args) > 2 {
			return "", "", usagef("flags go before the kind: hark publish %s random|classified ..., and -- before a value starting with -", a)
		}
	}
	switch wire.Kind(args[0]) {
	case wire.KindRandom:
		switch len(args) {
		case 1:
			return wire.KindRandom, "", nil // the server draws one
		case 2:
			// White space around the number is let go, as the API does.
			n := strings.TrimSpace(args[1])
			if _, err := wire.ParseRandom(n); err != nil {
				return "", "", usagef("%v", err)
			}
			return wire.KindRandom, n, nil
		}
		return "", "", usagef("random takes at most one number")
	case wire.KindClassified:
		if len(args) != 2 {
			return "", "", usagef("classified takes the ad as one argument: quote it, e.g. hark publish classified \"Bike for sale\"")
		}
		if err := wire.ValidateAd(args[1]); err != nil {
			return "", "", usagef("%v", err)
		}
		return wire.KindClassified, args[1], nil
	}
	return "", "", usagef("unknown kind %q: use random or classified", args[0])
}

// brokenError is a request whose answer never came because the
// connection broke after it was sent: the item may or may not be stored.
type brokenError struct{ err error }

func (e *brokenError) Error() string { return e.err.Error() }
func (e *brokenError) Unwrap() error { return e.err }

// publishAPI is a server's publish API as a client reaches it.
type publishAPI struct {
	base  *url.URL
	tls   *tls.Config // for https://: the roots to verify against
	token string      // "": none
}

// post posts one item with an Idempotency-Key (see docs/PROTOCOL.md).
func (a publishAPI) post(ctx context.Context, kind wire.Kind, value, key string) (server.Published, []byte, error) {
	base := a.base
	var p server.Published
	endpoint := base.JoinPath("v1", string(kind)).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewBufferString(value))
	if err != nil {
		return p, nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("Idempotency-Key", key)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	// A transport of its own, closed after: nothing outlives the command.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = a.tls
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		var op *net.OpError
		var ua x509.UnknownAuthorityError
		var he x509.HostnameError
		switch {
		case errors.As(err, &ua):
			return p, nil, fmt.Errorf("%s: the server's certificate is not trusted: for a private CA, give its certificate with --ca FILE: %w", base, err)
		case errors.As(err, &he):
			return p, nil, fmt.Errorf("%s: the server's certificate is not for this name: use the name it was issued for: %w", base, err)
		case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
			return p, nil, fmt.Errorf("%s does not speak TLS: use http:// (%w)", base, err)
		}
		if ctx.Err() != nil || errors.As(err, &op) && op.Op == "dial" {
			return p, nil, fmt.Errorf("cannot reach the publish API at %s: %w (is hark serve running? see --http)", base, err)
		}
		// Sent, perhaps, and stored, but the answer was lost (EOF, a reset).
		return p, nil, &brokenError{fmt.Errorf("the connection to %s broke before the answer: %w", base, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return p, nil, &brokenError{fmt.Errorf("reading the answer from %s: %w", endpoint, err)}
	}
	if resp.StatusCode != http.StatusCreated {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return p, raw, fmt.Errorf("the server refused it (%s): %s", resp.Status, e.Error)
		}
		if resp.StatusCode == http.StatusBadRequest && bytes.Contains(raw, []byte("HTTP request to an HTTPS server")) {
			return p, raw, fmt.Errorf("%s speaks TLS: use https://", base)
		}
		return p, raw, fmt.Errorf("unexpected answer from %s: %s", endpoint, resp.Status)
	}
	if err := json.Unmarshal(raw, &p); err != nil || p.ID == 0 {
		return p, raw, errors.New("the server answered 201 without a valid item: is that a hark serve?")
	}
	return p, raw, nil
}
