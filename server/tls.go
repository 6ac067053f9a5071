package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/harkapp/hark/wire"
)

// handshakeTimeout bounds a TLS handshake: a stranger that opens a
// connection and sends half a ClientHello holds it for this long at most.
const handshakeTimeout = 10 * time.Second

// certs holds the server's certificate, reloaded when its files change
// (checked by the watcher) or on Reload (SIGHUP). A handshake takes the
// current one; connections already open keep the session they have.
type certs struct {
	certFile, keyFile string

	cur atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // serialises reloads
	seen [2]fileStamp
}

// fileStamp says whether a file changed: an editor or certbot replaces it
// (a new inode) or rewrites it (size, time).
type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func stamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{ino: inode(fi), size: fi.Size(), mtime: fi.ModTime()}
}

func loadCerts(certFile, keyFile string) (*certs, error) {
	c := &certs{certFile: certFile, keyFile: keyFile}
	if _, err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload reads the pair and, when it is valid, makes it current. A bad
// pair (a half-written renewal, say) leaves the current one in place.
func (c *certs) reload() (*x509.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// What was tried is remembered even when it fails: a broken pair is
	// tried again when its files change again (or on SIGHUP), not every
	// second with an error each time.
	c.seen = [2]fileStamp{stamp(c.certFile), stamp(c.keyFile)}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w (they must be PEM files, the key matching the certificate)", c.certFile, c.keyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", c.certFile, err)
		}
		pair.Leaf = leaf
	}
	c.cur.Store(&pair)
	return leaf, nil
}

// changed reports whether either file changed since the last reload.
func (c *certs) changed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return [2]fileStamp{stamp(c.certFile), stamp(c.keyFile)} != c.seen
}

func (c *certs) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

func (c *certs) config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}
}

// ReloadCert reloads the TLS certificate and key from their files (what
// SIGHUP does). Connections already open are not touched. Without TLS it
// does nothing.
func (s *Server) ReloadCert() error {
	if s.certs == nil {
		return nil
	}
	leaf, err := s.certs.reload()
	if err != nil {
		s.log.Error("TLS certificate not reloaded: the old one stays in use", "err", err)
		return err
	}
	s.log.Info("TLS certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC())
	s.checkExpiry(leaf, time.Now())
	return nil
}

// expiryWarning is how long before its end a certificate is warned about.
const expiryWarning = 14 * 24 * time.Hour

// checkExpiry says, once per load, when the certificate in use has
// expired or soon will: clients refuse it then, each with "certificate
// expired", and the operator should hear it first.
func (s *Server) checkExpiry(leaf *x509.Certificate, now time.Time) {
	switch {
	case now.After(leaf.NotAfter):
		s.log.Error("the TLS certificate has expired: clients refuse it; renew it (the server reloads it when its files change)", "not_after", leaf.NotAfter.UTC())
	case now.Before(leaf.NotBefore):
		s.log.Error("the TLS certificate is not valid yet: clients refuse it; check it, and this machine's clock", "not_before", leaf.NotBefore.UTC())
	case leaf.NotAfter.Sub(now) < expiryWarning:
		s.log.Warn("the TLS certificate expires soon: renew it", "not_after", leaf.NotAfter.UTC())
	}
}

// handshake runs a TLS connection's handshake, bounded in time, from its
// owner's goroutine. A peer that speaks plaintext to the TLS port is told
// so, in plaintext, as net/http tells an HTTP client at an HTTPS port.
func (c *conn) handshake() bool {
	k, ok := c.sk.(*tlsSock)
	if !ok {
		return true
	}
	tc := k.nc.(*tls.Conn)
	raw := tc.NetConn()
	_ = raw.SetDeadline(time.Now().Add(handshakeTimeout))
	err := tc.HandshakeContext(c.s.ctx)
	_ = raw.SetDeadline(time.Time{})
	if err == nil {
		c.lastLine.Store(c.s.since())
		return true
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) && rh.Conn != nil && looksLikeText(rh.RecordHeader[:]) {
		c.mark(endPlainOnTLS, nil)
		// As a refused connection: the one plaintext line, not destroyed
		// by a reset.
		bp := c.s.bufs.Get().(*[]byte)
		netSock{raw}.refuse([]byte(wire.ErrTLSRequired+"\r\n"), *bp)
		c.s.bufs.Put(bp)
	}
	c.end(endHandshake, err)
	c.teardown("err", err)
	return false
}

// looksLikeText reports whether a would-be TLS record header is printable
// ASCII: a protocol line (a version-1 client's "notif"), not noise.
func looksLikeText(b []byte) bool {
	for _, x := range b {
		if (x < 0x20 || x > 0x7e) && x != '\r' && x != '\n' {
			return false
		}
	}
	return true
}

// tlsRecordHandshake is the first byte of a TLS connection: a handshake
// record (the ClientHello).
const tlsRecordHandshake = 0x16

// AuthRequired reports whether the server requires tokens: asked for, or
// forced by an address beyond loopback.
func (s *Server) AuthRequired() bool { return s.cfg.Auth }

// TLS reports whether the server speaks TLS.
func (s *Server) TLS() bool { return s.certs != nil }
