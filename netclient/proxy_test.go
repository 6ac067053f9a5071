package netclient_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// proxy forwards loopback connections to upstream, a real server, and
// tampers with what the server says: a banner first, a delay before its
// first line, a line held back. It is the "different server" of the
// tests, built on a real one.
type proxy struct {
	t        *testing.T
	ln       net.Listener
	upstream string

	// Set before the first connection.
	banner     string        // written to each client just before the server's first line (hello's reply)
	firstDelay time.Duration // before forwarding the server's first line of each connection
	holdSuffix string        // the first server line ending with it is held until release

	mu       sync.Mutex
	conns    []net.Conn
	held     chan struct{} // closed when a line was held
	release  chan struct{}
	accepted chan struct{}
	wg       sync.WaitGroup
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{
		t: t, ln: ln, upstream: upstream,
		held: make(chan struct{}), release: make(chan struct{}), accepted: make(chan struct{}, 100),
	}
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) start() *proxy {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			select {
			case p.accepted <- struct{}{}:
			default:
			}
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(u, c)
				u.Close()
			}()
			go func() {
				defer p.wg.Done()
				defer c.Close()
				p.serverToClient(c, u)
			}()
		}
	}()
	return p
}

func (p *proxy) serverToClient(c, u net.Conn) {
	br := bufio.NewReader(u)
	for first := true; ; first = false {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if first && p.firstDelay > 0 {
			select {
			case <-time.After(p.firstDelay): // the slowness under test
			case <-p.release:
			}
		}
		// A banner the client reads after it sent its first command: a
		// banner read before that is a stray whatever it says, so this is
		// the order that tests the client.
		if first && p.banner != "" {
			l = p.banner + l
		}
		p.mu.Lock()
		hold := p.holdSuffix
		p.mu.Unlock()
		if hold != "" && strings.HasSuffix(strings.TrimRight(l, "\r\n"), hold) {
			p.mu.Lock()
			armed := p.holdSuffix == hold
			p.holdSuffix = ""
			p.mu.Unlock()
			if armed {
				close(p.held)
				<-p.release
				return // held for good: the connection dies with it
			}
		}
		if _, err := c.Write([]byte(l)); err != nil {
			return
		}
	}
}

// cut closes every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) close() {
	p.ln.Close()
	select {
	case <-p.release:
	default:
		close(p.release)
	}
	p.cut()
	p.wg.Wait()
}
