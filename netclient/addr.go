package netclient

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
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

// MaxAddrs bounds the addresses of one list (ParseAddrs).
const MaxAddrs = 16

// ParseAddrs reads a server's addresses: one address as ParseAddr reads
// it, or several separated by commas, the servers (gateways) of one store
// that a Session fails over between (docs/PROTOCOL.md, Several
// addresses): "a:6789,b:6789", "tls://a:6789,tls://b:6789". Spaces around
// an element are ignored. Every element must parse, all of them speak
// TLS or none does (a deployment is one or the other, and a list that
// mixes them is a typo more likely than a plan), none may come twice (by
// Key), and there are at most MaxAddrs. Errors match ErrBadAddr and name
// the element that is wrong.
func ParseAddrs(s string) ([]Addr, error) {
	if !strings.Contains(s, ",") {
		a, err := ParseAddr(s)
		if err != nil {
			return nil, err
		}
		return []Addr{a}, nil
	}
	elems := strings.Split(s, ",")
	if len(elems) > MaxAddrs {
		return nil, badAddr("%q: %d addresses; a list holds at most %d", s, len(elems), MaxAddrs)
	}
	addrs := make([]Addr, 0, len(elems))
	seen := map[string]int{}
	for i, e := range elems {
		e = strings.TrimSpace(e)
		if e == "" {
			return nil, badAddr("%q: address %d of the list is empty; separate addresses with one comma, e.g. a:6789,b:6789", s, i+1)
		}
		a, err := ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("address %d of the list: %w", i+1, err)
		}
		if len(addrs) > 0 && a.TLS != addrs[0].TLS {
			return nil, badAddr("%q: %q and %q: either every address speaks TLS (tls://HOST:PORT) or none does", s, addrs[0], a)
		}
		if j, dup := seen[a.Key()]; dup {
			return nil, badAddr("%q: addresses %d and %d are both %s: list each server once", s, j+1, i+1, a.Key())
		}
		seen[a.Key()] = i
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// Key is the server the address names, for comparing addresses: the
// host in lower case, an IP literal in its canonical form and the port as
// a number, TLS or not ("LOCALHOST:06789" and "tls://localhost:6789" are
// one server).
func (a Addr) Key() string {
	host, port, err := hostport.Parse(a.HostPort)
	if err != nil {
		return a.HostPort
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(int(port)))
}

// MarksKey is the name a Session keeps its marks under (Identity's
// server) for SessionOptions.Addr addr. One address: its host:port as
// written, as before lists, so that marks kept then stay valid. A list:
// the Key of each address, sorted and joined with commas, so that the
// gateways of one store share their marks, whatever order the list is
// written in. An address that does not parse is its own key.
func MarksKey(addr string) string {
	addrs, err := ParseAddrs(addr)
	switch {
	case err != nil:
		return addr
	case len(addrs) == 1:
		return addrs[0].HostPort
	}
	keys := make([]string, len(addrs))
	for i, a := range addrs {
		keys[i] = a.Key()
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}
