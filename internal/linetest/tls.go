package linetest

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/harkapp/hark/wire"
)

// ServeTLS is Serve for a scripted TLS server, which speaks as
// docs/PROTOCOL.md's TLS section says: a connection whose first byte is
// not a TLS handshake's (0x16) gets wire.ErrTLSRequired in plaintext, as a
// farewell; the others get a TLS handshake with cfg, and handle runs
// with the connection once it succeeded (a failed one is closed).
func ServeTLS(t testing.TB, cfg *tls.Config, handle func(tc *tls.Conn)) string {
	t.Helper()
	return Serve(t, func(nc net.Conn) {
		defer nc.Close()
		br := bufio.NewReader(nc)
		_ = nc.SetReadDeadline(time.Now().Add(Timeout))
		first, err := br.Peek(1)
		if err != nil {
			return
		}
		pc := &peekedConn{Conn: nc, r: br}
		if first[0] != 0x16 {
			Farewell(pc, wire.ErrTLSRequired)
			return
		}
		tc := tls.Server(pc, cfg)
		_ = nc.SetDeadline(time.Now().Add(Timeout))
		if err := tc.Handshake(); err != nil {
			return
		}
		_ = nc.SetDeadline(time.Time{})
		handle(tc)
	})
}

// peekedConn reads through the reader that peeked at its first bytes.
type peekedConn struct {
	net.Conn
	r io.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Farewell sends line (CRLF added) and closes nc as hark's server closes
// after an error line: it shuts down its sending side, then reads what
// the client still sends until the client closes (at most Timeout), so
// that the line is not destroyed by a TCP reset before the client reads
// it. nc may be a *tls.Conn (whose close_notify goes first), or a raw
// connection, or one wrapping either.
func Farewell(nc net.Conn, line string) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(Timeout))
	if _, err := nc.Write([]byte(line + "\r\n")); err != nil {
		return
	}
	closeWrite(nc)
	_, _ = io.Copy(io.Discard, nc)
}

func closeWrite(nc net.Conn) {
	switch c := nc.(type) {
	case interface{ CloseWrite() error }:
		_ = c.CloseWrite()
	case *peekedConn:
		closeWrite(c.Conn)
	}
}
