package hostport_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/harkapp/hark/internal/hostport"
)

// Each address with the one answer every part of hark now gives. The
// comments say who answered otherwise before.
var addrs = []struct {
	in       string
	host     string
	port     uint16
	says     string // "" when Parse accepts it; else part of the error
	loopback bool
	dialOK   bool // ParseDial accepts it
}{
	{in: "127.0.0.1:6789", host: "127.0.0.1", port: 6789, loopback: true, dialOK: true},
	{in: "127.1.2.3:1", host: "127.1.2.3", port: 1, loopback: true, dialOK: true},
	{in: "[::1]:6789", host: "::1", port: 6789, loopback: true, dialOK: true},
	{in: "localhost:6789", host: "localhost", port: 6789, loopback: true, dialOK: true},
	// Loopback to the client only, before: host names ignore case.
	{in: "LOCALHOST:6789", host: "LOCALHOST", port: 6789, loopback: true, dialOK: true},
	{in: "LocalHost:6789", host: "LocalHost", port: 6789, loopback: true, dialOK: true},
	// Loopback everywhere before too, but through two libraries' own
	// rules (net.IP, netip): now by this package's.
	{in: "[::ffff:127.0.0.1]:6789", host: "::ffff:127.0.0.1", port: 6789, loopback: true, dialOK: true},
	// Not loopback to the command line (net.ParseIP knows no zones).
	{in: "[::1%lo]:6789", host: "::1%lo", port: 6789, loopback: true, dialOK: true},
	{in: "[fe80::1%eth0]:6789", host: "fe80::1%eth0", port: 6789, dialOK: true},
	{in: "hark.example:6789", host: "hark.example", port: 6789, dialOK: true},
	{in: "localhost.example:1", host: "localhost.example", port: 1, dialOK: true},
	{in: "192.0.2.1:1", host: "192.0.2.1", port: 1, dialOK: true},
	{in: "[2001:db8::1]:1", host: "2001:db8::1", port: 1, dialOK: true},
	{in: "0.0.0.0:6789", host: "0.0.0.0", port: 6789, dialOK: true},
	{in: "[::]:6789", host: "::", port: 6789, dialOK: true},
	// Every interface to a listener: not loopback.
	{in: ":6789", host: "", port: 6789, dialOK: true},
	// A name is not resolved, even one that resolves to loopback.
	{in: "localhost.:1", host: "localhost.", port: 1, dialOK: true},
	{in: "127.1:1", host: "127.1", port: 1, dialOK: true},
	// Port 0 is "any free port" to a listener, nothing to connect to.
	{in: "127.0.0.1:0", host: "127.0.0.1", port: 0, loopback: true},
	{in: "127.0.0.1:65535", host: "127.0.0.1", port: 65535, loopback: true, dialOK: true},
	{in: "127.0.0.1:080", host: "127.0.0.1", port: 80, loopback: true, dialOK: true},

	// The command line took these ports (strconv.Atoi), the client not.
	{in: "127.0.0.1:+80", says: `port "+80" is not a number from 0 to 65535`},
	{in: "127.0.0.1:-0", says: `port "-0" is not a number`},
	{in: "127.0.0.1:0x10", says: `port "0x10"`},
	{in: "127.0.0.1:1_000", says: `port "1_000"`},
	{in: "127.0.0.1:65536", says: `port "65536" is not a number from 0 to 65535`},
	{in: "127.0.0.1:99999", says: "0 to 65535"},
	{in: "localhost:http", says: `port "http"`},
	{in: "127.0.0.1:6789/", says: `port "6789/"`},
	// Loopback to the server, before (it only looked at the host).
	{in: "127.0.0.1:", says: "missing port after the colon: want host:port, e.g. 127.0.0.1:6789"},
	{in: "127.0.0.1", says: "missing port: want host:port, e.g. 127.0.0.1:6789"},
	{in: "hark.example", says: "missing port"},
	{in: "::1", says: "an IPv6 address goes in brackets, before the port: want [IPv6 address]:port, e.g. [::1]:6789"},
	{in: "::1:6789", says: "an IPv6 address goes in brackets"},
	{in: "[::1", says: "missing ']' in address"},
	{in: "", says: "empty address"},
	{in: "a b:1", says: `host "a b" has ' '`},
	{in: "user@host:1", says: `has '@'`},
	{in: "tls://host:1", says: "brackets"},
	{in: "a/b:1", says: `has '/'`},
}

func TestParse(t *testing.T) {
	for _, c := range addrs {
		host, port, err := hostport.Parse(c.in)
		if c.says != "" {
			if !errors.Is(err, hostport.ErrInvalid) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("Parse(%q) = %q, %d, %v; want ErrInvalid saying %q", c.in, host, port, err, c.says)
			}
			if err != nil && !strings.Contains(err.Error(), "want ") {
				t.Errorf("Parse(%q): %v: does not say what to write", c.in, err)
			}
			continue
		}
		if err != nil || host != c.host || port != c.port {
			t.Errorf("Parse(%q) = %q, %d, %v; want %q, %d", c.in, host, port, err, c.host, c.port)
		}
	}
}

func TestParseDial(t *testing.T) {
	for _, c := range addrs {
		host, port, err := hostport.ParseDial(c.in)
		if ok := err == nil; ok != c.dialOK {
			t.Errorf("ParseDial(%q) = %q, %d, %v; want ok=%v", c.in, host, port, err, c.dialOK)
		}
		if err != nil && !errors.Is(err, hostport.ErrInvalid) {
			t.Errorf("ParseDial(%q): %v, not ErrInvalid", c.in, err)
		}
	}
	_, _, err := hostport.ParseDial("127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), `port "0" is not a number from 1 to 65535`) {
		t.Errorf("ParseDial(127.0.0.1:0): %v, want it to say the range", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for _, c := range addrs {
		if got := hostport.IsLoopback(c.in); got != c.loopback {
			t.Errorf("IsLoopback(%q) = %v, want %v", c.in, got, c.loopback)
		}
		if c.says == "" {
			if got := hostport.IsLoopbackHost(c.host); got != c.loopback {
				t.Errorf("IsLoopbackHost(%q) = %v, want %v", c.host, got, c.loopback)
			}
		}
	}
	// A host as url.URL.Hostname gives it: no brackets, no port.
	for host, want := range map[string]bool{"localhost": true, "::1": true, "[::1]": false, "": false, "127.0.0.1:80": false} {
		if got := hostport.IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestIsLoopbackIP(t *testing.T) {
	for ip, want := range map[string]bool{
		"127.0.0.1": true, "127.255.255.254": true, "::1": true, "::ffff:127.0.0.1": true, "::1%lo": true,
		"0.0.0.0": false, "::": false, "192.0.2.1": false, "::ffff:192.0.2.1": false, "::127.0.0.1": false,
	} {
		if got := hostport.IsLoopbackIP(netip.MustParseAddr(ip)); got != want {
			t.Errorf("IsLoopbackIP(%s) = %v, want %v", ip, got, want)
		}
	}
	if hostport.IsLoopbackIP(netip.Addr{}) {
		t.Error("the zero Addr is loopback")
	}
}
