package netclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/harkapp/hark/wire"
)

// plaintextWait bounds the wait for the rest of a plaintext line met
// where a TLS record should start.
const plaintextWait = 2 * time.Second

// clientTLS is the configuration of a TLS connection to host: base's
// settings (roots, client certificates), verification always on, TLS 1.2
// at least, and the address's host as the name to verify unless base
// names another.
func clientTLS(base *tls.Config, host string) *tls.Config {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{} // the system's roots
	}
	// There is no way to skip verification: a client never does
	// (docs/PROTOCOL.md, TLS).
	cfg.InsecureSkipVerify = false
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// handshake runs a TLS client handshake over nc under ctx. A server that
// answers it with a plaintext line (ERR …: no TLS on this port, or a
// refusal sent before the handshake) gets the error that line means;
// other failures are wrapped, so that errors.As finds the x509 errors.
func handshake(ctx context.Context, nc net.Conn, a Addr, base *tls.Config) (*tls.Conn, error) {
	rc := &recordingConn{Conn: nc}
	tc := tls.Client(rc, clientTLS(base, a.Host()))
	err := tc.HandshakeContext(ctx)
	rc.stop()
	if err == nil {
		return tc, nil
	}
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) && ctx.Err() == nil {
		if string(rhe.RecordHeader[:4]) == wire.ErrPrefix+" " {
			line := rc.plaintextLine(ctx)
			// Only what a server may say before a handshake is taken at
			// its word: a refusal, or TLS on one side only. Anything else
			// in plaintext (an "ERR auth failed" a man in the middle
			// made up, to send the client into its slow retry) is just
			// not TLS.
			if strings.HasPrefix(line, wire.ErrTooManyConns) || line == wire.ErrTLSRequired || line == wire.ErrNoTLS {
				return nil, fmt.Errorf("TLS handshake with %s: %w", a.HostPort, farewell(line))
			}
			return nil, fmt.Errorf("TLS handshake with %s: %w", a.HostPort, &ServerError{Line: line, err: &sentinel{"no TLS on this port", []error{ErrServerNotTLS}}})
		}
		// Something other than TLS answered: no TLS there either.
		return nil, fmt.Errorf("TLS handshake with %s: %w (%w)", a.HostPort, ErrServerNotTLS, err)
	}
	return nil, fmt.Errorf("TLS handshake with %s: %w", a.HostPort, err)
}

// recordingConn keeps the first bytes read through it, until stopped,
// so that a plaintext line found where a TLS record should start can be
// read whole: crypto/tls reads ahead past the record header.
type recordingConn struct {
	net.Conn
	mu      sync.Mutex
	stopped bool
	buf     []byte // the first bytes read, up to maxRecorded
}

const maxRecorded = wire.MaxLine + 2

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	if !r.stopped && len(r.buf) < maxRecorded {
		r.buf = append(r.buf, p[:min(n, maxRecorded-len(r.buf))]...)
	}
	r.mu.Unlock()
	return n, err
}

func (r *recordingConn) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

// plaintextLine returns the line that started where a record header was
// expected: what crypto/tls read of it, then the rest from the socket up
// to its end, at most wire.MaxLine bytes, waiting plaintextWait at most.
// It is what arrived when the line is cut short.
func (r *recordingConn) plaintextLine(ctx context.Context) string {
	r.mu.Lock()
	buf := bytes.Clone(r.buf)
	r.mu.Unlock()
	deadline := time.Now().Add(plaintextWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = r.Conn.SetReadDeadline(deadline)
	chunk := make([]byte, 512)
	for bytes.IndexByte(buf, '\n') < 0 && len(buf) < maxRecorded {
		n, err := r.Conn.Read(chunk[:min(len(chunk), maxRecorded-len(buf))])
		buf = append(buf, chunk[:n]...)
		if err != nil {
			break
		}
	}
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i]
	}
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	if len(buf) > wire.MaxLine {
		buf = buf[:wire.MaxLine]
	}
	return string(buf)
}

// ErrNoCert is LoadCA's error for a file without a PEM certificate.
var ErrNoCert = errors.New("no PEM certificate in it (want the CA's certificate, -----BEGIN CERTIFICATE-----)")

// LoadCA is the TLS configuration of a client that trusts the CA
// certificates in path alone (a private CA), instead of the system's
// roots. Its errors are the file's (fs.ErrNotExist…) or ErrNoCert.
func LoadCA(path string) (*tls.Config, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, ErrNoCert
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
