// Package hostport checks "host:port" addresses and tells whether one is
// on loopback. It exists because the command line, the server and the
// client each had their own check, and they disagreed: "LOCALHOST" was
// loopback to the client only, "[::1%lo]" to all but the command line,
// "127.0.0.1:" (no port) was loopback to the server and an error to the
// others, and a port of "+80" passed one check and failed another. Which
// addresses may carry a token in plaintext, and which listeners need TLS,
// must not depend on which of them asks.
package hostport

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalid matches (errors.Is) every error of Parse and ParseDial.
var ErrInvalid = errors.New("not host:port")

type parseError struct{ msg string }

func (e *parseError) Error() string        { return e.msg }
func (e *parseError) Is(target error) bool { return target == ErrInvalid }

func invalid(problem, want string) error {
	return &parseError{problem + ": " + want}
}

// What to write, said after each problem.
const (
	wantHostPort = "want host:port, e.g. 127.0.0.1:6789"
	wantIPv6     = "want [IPv6 address]:port, e.g. [::1]:6789"
)

// Parse splits s, "host:port", into its host and port, and checks them.
// HOST is a name, an IPv4 address, an IPv6 address in brackets (with a
// zone or not), or empty (every interface, to a listener). PORT is
// decimal digits, from 0 to 65535: no sign, no hex, no service name
// (net.Listen takes "+80" and "http"; a person who wrote them most likely
// meant something else). 0 is "any free port" to a listener; an address
// to connect to wants ParseDial. A host is checked for what no host has
// (spaces, '/', '@'…), not looked up.
//
// The errors match ErrInvalid and say what is wrong and what to write,
// without repeating s: the caller says which address it was.
func Parse(s string) (host string, port uint16, err error) {
	return parse(s, 0)
}

// ParseDial is Parse for an address to connect to: port 0 is refused.
func ParseDial(s string) (host string, port uint16, err error) {
	return parse(s, 1)
}

func parse(s string, minPort uint64) (string, uint16, error) {
	if s == "" {
		return "", 0, invalid("empty address", wantHostPort)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		errors.As(err, &ae)
		switch {
		case ae != nil && ae.Err == "missing port in address":
			return "", 0, invalid("missing port", wantHostPort)
		case ae != nil && ae.Err == "too many colons in address":
			// An IPv6 address without brackets: "::1" or "::1:6789" (itself
			// an address, so which part was meant as the port is a guess).
			return "", 0, invalid("an IPv6 address goes in brackets, before the port", wantIPv6)
		case ae != nil:
			return "", 0, invalid(ae.Err, wantHostPort+", or [::1]:6789")
		}
		return "", 0, invalid(err.Error(), wantHostPort)
	}
	if port == "" {
		return "", 0, invalid("missing port after the colon", wantHostPort)
	}
	// Base 10 and 16 bits: no sign, no 0x, no underscore, nothing over
	// 65535.
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n < minPort {
		return "", 0, invalid("port "+strconv.Quote(port)+" is not a number from "+strconv.FormatUint(minPort, 10)+" to 65535", wantHostPort)
	}
	if i := strings.IndexFunc(host, badHostRune); i >= 0 {
		return "", 0, invalid("host "+strconv.Quote(host)+" has "+strconv.QuoteRune(rune(host[i]))+" in it", "want a host name or IP address, e.g. 127.0.0.1:6789")
	}
	return host, uint16(n), nil
}

// badHostRune: what no host name or IP literal has, and what a URL
// pasted as an address does (tls://a:1/, user@host:1).
func badHostRune(r rune) bool {
	return r <= ' ' || r == 0x7f || strings.ContainsRune("/?#@\\", r)
}

// IsLoopback reports whether addr ("host:port", as Parse takes it) is
// on this machine only: see IsLoopbackHost. An address Parse refuses is
// not.
func IsLoopback(addr string) bool {
	host, _, err := Parse(addr)
	return err == nil && IsLoopbackHost(host)
}

// IsLoopbackHost reports whether host is "localhost" (in any case: host
// names are case-insensitive) or a loopback IP literal: 127.0.0.0/8, ::1,
// and 127.x written as an IPv4-mapped IPv6 address, with or without a
// zone. host is without brackets, as net.SplitHostPort and
// url.URL.Hostname give it. Other names are not resolved: a name that
// resolves to loopback today is not trusted to keep doing so. An empty
// host is not loopback: to a listener it is every interface.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && IsLoopbackIP(ip)
}

// IsLoopbackIP reports whether ip is a loopback address, an IPv4 one
// seen through an IPv6 socket (::ffff:127.0.0.1) included.
func IsLoopbackIP(ip netip.Addr) bool {
	return ip.Unmap().IsLoopback()
}
