package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
)

// MaxPerSource is the most clients that connect from one source address.
// A server may bound the connections one address holds (hark serve's
// --max-conns-per-addr, 1,000 by default), so that one stranger cannot
// take them all; a bench of 10,000 clients from one address would be
// that stranger. Against a server on 127.0.0.0/8 the clients therefore
// connect from 127.0.0.2, 127.0.0.3, … (Linux routes the whole block to
// the loopback interface), at most MaxPerSource from each.
const MaxPerSource = 100

// sources is how the clients of a run spread over source addresses.
type sources struct {
	first netip.Addr // the first source address; invalid: the system chooses, as usual
	n     int        // how many addresses, from first on
}

// spread returns the sources for clients connecting to servers
// (host:ports). Only Linux routes all of 127.0.0.0/8 to the loopback
// interface without configuration; elsewhere, and when any server's
// address is another, the system chooses the source as usual.
func spread(servers []string, clients int) sources {
	if runtime.GOOS != "linux" {
		return sources{}
	}
	for _, server := range servers {
		host, _, err := net.SplitHostPort(server)
		if err != nil {
			return sources{}
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is4() || !ip.IsLoopback() {
			return sources{}
		}
	}
	// 127.0.0.1 is left to everything else on the machine.
	return sources{first: netip.AddrFrom4([4]byte{127, 0, 0, 2}), n: (clients + MaxPerSource - 1) / MaxPerSource}
}

// addr returns client i's source address: the clients take the
// addresses in turn, so none has more than MaxPerSource. nil: the system
// chooses.
func (s sources) addr(i int) *net.TCPAddr {
	if s.n == 0 {
		return nil
	}
	b := s.first.As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(i%s.n)
	return &net.TCPAddr{IP: binary.BigEndian.AppendUint32(nil, v)}
}

// String says where the clients connect from, for the progress line.
func (s sources) String() string {
	switch s.n {
	case 0:
		return "the system's source address"
	case 1:
		return s.addr(0).IP.String()
	}
	return fmt.Sprintf("%d loopback addresses, %s to %s", s.n, s.addr(0).IP, s.addr(s.n-1).IP)
}

// perSource is the most clients connecting from one address.
func (s sources) perSource(clients int) int {
	if s.n == 0 {
		return clients
	}
	return (clients + s.n - 1) / s.n
}
