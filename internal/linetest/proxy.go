package linetest

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards loopback connections to upstream, a real server, and
// tampers with what the server says: a banner first, a delay before its
// first line, a line held back or rewritten, no identification at all
// (v1), or a path to the client that dies unseen (CutPath). It is the
// "different server" of the tests, built on a real one, and it can record
// what clients put on the wire.
type Proxy struct {
	t        testing.TB
	upstream string
	addr     string

	// Set before Start.
	Banner string // written to each client just before the first line it is answered
	// ClientLine and ServerLine, when set, rewrite each line (terminator
	// included) on its way to the server, or to the client.
	ClientLine, ServerLine func(line string) string
	FirstDelay             time.Duration // before forwarding the server's first line of each connection
	HoldSuffix             string        // the first server line ending with it is held for good (Held says when)
	CutAfter               string        // the first server line ending with it is forwarded, then the connection cut (Held says when)
	// V1 makes the server a version-1 server: the proxy answers hello
	// itself with ERR unknown command and does not pass it on. (Clients
	// send hello alone and wait for its answer, so answering it at once
	// keeps replies in order.)
	V1 bool
	// Record keeps every line either way, for Sent, AwaitSent and
	// AwaitHeard: what a client really put on the wire.
	Record bool

	// Connections numbered up to cutUpTo (from 1, in the order accepted)
	// have lost their path to the client, as across a laptop's suspend
	// (CutPath).
	accepted, cutUpTo atomic.Int64

	mu       sync.Mutex
	lostPath []net.Conn    // server ends of cut-path connections whose client left
	sent     []string      // with Record: every client line, in order, across connections
	wire     chan string   // with Record: "C: …" and "S: …" lines, in the order seen
	conns    []net.Conn    // both ends of each connection, for Cut
	armed    atomic.Bool   // HoldSuffix or CutAfter is still to come
	held     chan struct{} // closed when it came
	release  chan struct{} // closed when the test ends
}

// NewProxy returns a proxy to upstream; set its fields, then Start it.
func NewProxy(t testing.TB, upstream string) *Proxy {
	return &Proxy{t: t, upstream: upstream, held: make(chan struct{}), release: make(chan struct{}), wire: make(chan string, 100000)}
}

// Start accepts connections until the test ends.
func (p *Proxy) Start() *Proxy {
	p.armed.Store(p.HoldSuffix != "" || p.CutAfter != "")
	p.addr = Serve(p.t, p.handle)
	// Registered after Serve's: runs before it, so that a held line does
	// not keep Serve waiting for its handler.
	p.t.Cleanup(func() {
		close(p.release)
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, u := range p.lostPath {
			u.Close()
		}
	})
	return p
}

// CutPath makes the connections open so far lose their path to the
// client: what the server sends them is dropped, and their client's close
// does not reach the server, which holds them open until the test ends.
func (p *Proxy) CutPath() { p.cutUpTo.Store(p.accepted.Load()) }

// Sent returns what clients sent so far (with Record), without
// terminators.
func (p *Proxy) Sent() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.sent...)
}

// AwaitSent waits until a client sends line (with Record), skipping what
// came before it either way.
func (p *Proxy) AwaitSent(t testing.TB, line string) {
	t.Helper()
	p.await(t, "C: "+line)
}

// AwaitHeard waits until the server sends line (with Record), skipping
// what came before it either way.
func (p *Proxy) AwaitHeard(t testing.TB, line string) {
	t.Helper()
	p.await(t, "S: "+line)
}

func (p *Proxy) await(t testing.TB, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l := <-p.wire:
			if l == want {
				return
			}
		case <-timeout:
			t.Fatalf("never seen on the wire: %q; clients sent %q", want, p.Sent())
		}
	}
}

// record notes a line (with its terminator) that went "C" or "S".
func (p *Proxy) record(dir, l string) {
	if !p.Record {
		return
	}
	l = strings.TrimRight(l, "\r\n")
	if dir == "C" {
		p.mu.Lock()
		p.sent = append(p.sent, l)
		p.mu.Unlock()
	}
	p.wire <- dir + ": " + l
}

// Addr is where clients connect, once started.
func (p *Proxy) Addr() string { return p.addr }

// handle forwards one connection both ways until either end closes.
func (p *Proxy) handle(c net.Conn) {
	n := p.accepted.Add(1)
	cut := func() bool { return n <= p.cutUpTo.Load() }
	u, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, u)
	p.mu.Unlock()
	cw := &clientWriter{c: c, banner: p.Banner}
	up := make(chan struct{})
	go func() {
		defer close(up)
		defer func() {
			if cut() {
				p.mu.Lock()
				p.lostPath = append(p.lostPath, u) // the server never hears the client left
				p.mu.Unlock()
				return
			}
			u.Close()
		}()
		p.clientToServer(c, u, cw)
	}()
	p.serverToClient(cw, u, cut)
	c.Close()
	<-up
}

func (p *Proxy) clientToServer(c, u net.Conn, cw *clientWriter) {
	if !p.V1 && !p.Record && p.ClientLine == nil {
		_, _ = io.Copy(u, c)
		return
	}
	br := bufio.NewReader(c)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		p.record("C", l)
		if p.ClientLine != nil {
			l = p.ClientLine(l)
		}
		if p.V1 && strings.HasPrefix(l, "hello ") {
			err = cw.write("ERR unknown command\r\n")
		} else {
			_, err = u.Write([]byte(l))
		}
		if err != nil {
			return
		}
	}
}

// clientWriter writes to the client, the banner first.
type clientWriter struct {
	mu     sync.Mutex
	c      net.Conn
	banner string // until written
}

// write writes l, after the banner if it has not gone yet: a banner read
// after the client sent its first command is the one that tests it (one
// read before that is a stray whatever it says).
func (w *clientWriter) write(l string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	l, w.banner = w.banner+l, ""
	_, err := w.c.Write([]byte(l))
	return err
}

func (p *Proxy) serverToClient(c *clientWriter, u net.Conn, cut func() bool) {
	br := bufio.NewReader(u)
	for first := true; ; first = false {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if cut() {
			continue // lost on the way
		}
		if p.ServerLine != nil {
			l = p.ServerLine(l)
		}
		p.record("S", l)
		if first && p.FirstDelay > 0 {
			select {
			case <-time.After(p.FirstDelay): // the slowness under test
			case <-p.release:
			}
		}
		if p.tampered(l) {
			close(p.held)
			if p.CutAfter == "" {
				<-p.release // held for good: the connection dies with it
			} else {
				_ = c.write(l) // then cut: the handler closes both ends
			}
			return
		}
		if err := c.write(l); err != nil {
			return
		}
	}
}

// tampered reports whether l is the line HoldSuffix or CutAfter names,
// the first time only.
func (p *Proxy) tampered(l string) bool {
	l = strings.TrimRight(l, "\r\n")
	match := p.HoldSuffix != "" && strings.HasSuffix(l, p.HoldSuffix) || p.CutAfter != "" && strings.HasSuffix(l, p.CutAfter)
	return match && p.armed.CompareAndSwap(true, false)
}

// Held is closed once the line HoldSuffix or CutAfter names has come.
func (p *Proxy) Held() <-chan struct{} { return p.held }

// Cut closes every connection through the proxy.
// Cut closes every connection through the proxy.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
