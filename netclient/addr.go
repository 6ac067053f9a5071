package netclient

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/harkapp/hark/internal/hostport"
)

// Addr is a server's protocol address: HOST:PORT for plaintext, written
// tls://HOST:PORT for TLS (docs/PROTOCOL.md, TLS).
type Addr struct {
	HostPort string // host:port, as net.Dial takes it
	TLS      bool
}

// TLSScheme is the prefix of a TLS server's address.
const TLSScheme = "tls://"

// ErrBadAddr matches (errors.Is) every error of ParseAddr.
var ErrBadAddr = errors.New("bad server address")

// String returns the address as ParseAddr reads it.
func (a Addr) String() string {
	if a.TLS {
		return TLSScheme + a.HostPort
	}
	return a.HostPort
}

// Host is the address without its port (and without the brackets of an
// IPv6 literal).
func (a Addr) Host() string {
	h, _, err := net.SplitHostPort(a.HostPort)
	if err != nil {
		return a.HostPort
	}
	return h
}

// Loopback reports whether the host is "localhost" or a loopback IP
// literal (hostport.IsLoopbackHost): the only hosts a token is sent to
// without TLS. A name is not resolved (a name that resolves to a loopback
// address is not trusted to keep doing so).
func (a Addr) Loopback() bool { return hostport.IsLoopbackHost(a.Host()) }

type addrError struct{ msg string }

func (e *addrError) Error() string        { return e.msg }
func (e *addrError) Is(target error) bool { return target == ErrBadAddr }

func badAddr(format string, args ...any) error {
	return &addrError{fmt.Sprintf(format, args...)}
}

// ParseAddr reads a server's protocol address: HOST:PORT (plaintext) or
// tls://HOST:PORT. HOST:PORT is checked by hostport.ParseDial: HOST is a
// name or an IP literal ([…] for IPv6), PORT a number from 1 to 65535.
// Other schemes are refused: http:// and https:// name the
// publish API, not this protocol.
func ParseAddr(s string) (Addr, error) {
	var a Addr
	rest := s
	if scheme, after, ok := strings.Cut(s, "://"); ok {
		switch strings.ToLower(scheme) {
		case "tls":
			a.TLS, rest = true, after
		case "http", "https":
			return Addr{}, badAddr("%q is a publish API address (HTTP); the server's protocol address is HOST:PORT, or tls://HOST:PORT for TLS", s)
		default:
			return Addr{}, badAddr("%q: unknown scheme %q; the server's address is HOST:PORT, or tls://HOST:PORT for TLS", s, scheme+"://")
		}
	}
	if rest == "" {
		return Addr{}, badAddr("%q: no host and port; the server's address is HOST:PORT, or tls://HOST:PORT for TLS", s)
	}
	host, _, err := hostport.ParseDial(rest)
	if err != nil {
		return Addr{}, badAddr("%q: %v", s, err)
	}
	if host == "" && a.TLS {
		return Addr{}, badAddr("%q: a TLS address needs the host name its certificate is for", s)
	}
	a.HostPort = rest
	return a, nil
}
