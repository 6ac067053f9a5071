package linetest

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy forwards loopback connections to upstream, a real server, and
// tampers with what the server says: a banner first, a delay before its
// first line, a line held back, or no identification at all (v1). It is
// the "different server" of the tests, built on a real one.
type Proxy struct {
	ln       net.Listener
	upstream string

	// Set before the first connection.
	Banner     string        // written to each client just before the first line it is answered
	FirstDelay time.Duration // before forwarding the server's first line of each connection
	HoldSuffix string        // the first server line ending with it is held for good (Held says when)
	// V1 makes the server a version-1 server: the proxy answers hello
	// itself with ERR unknown command and does not pass it on. (Clients
	// send hello alone and wait for its answer, so answering it at once
	// keeps replies in order.)
	V1 bool

	mu      sync.Mutex
	conns   []net.Conn
	held    chan struct{} // closed when a line was held
	release chan struct{}
	wg      sync.WaitGroup
}

// NewProxy returns a proxy to upstream; set its fields, then Start it.
// It is closed when the test ends.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		ln: ln, upstream: upstream,
		held: make(chan struct{}), release: make(chan struct{}),
	}
	t.Cleanup(p.close)
	return p
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Start accepts connections until the test ends.
func (p *Proxy) Start() *Proxy {
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
			cw := &clientWriter{c: c, banner: p.Banner}
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				defer u.Close()
				if !p.V1 {
					_, _ = io.Copy(u, c)
					return
				}
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(l, "hello ") {
						if cw.write("ERR unknown command\r\n") != nil {
							return
						}
						continue
					}
					if _, err := u.Write([]byte(l)); err != nil {
						return
					}
				}
			}()
			go func() {
				defer p.wg.Done()
				defer c.Close()
				p.serverToClient(cw, u)
			}()
		}
	}()
	return p
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

func (p *Proxy) serverToClient(c *clientWriter, u net.Conn) {
	br := bufio.NewReader(u)
	for first := true; ; first = false {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if first && p.FirstDelay > 0 {
			select {
			case <-time.After(p.FirstDelay): // the slowness under test
			case <-p.release:
			}
		}
		p.mu.Lock()
		hold := p.HoldSuffix
		p.mu.Unlock()
		if hold != "" && strings.HasSuffix(strings.TrimRight(l, "\r\n"), hold) {
			p.mu.Lock()
			armed := p.HoldSuffix == hold
			p.HoldSuffix = ""
			p.mu.Unlock()
			if armed {
				close(p.held)
				<-p.release
				return // held for good: the connection dies with it
			}
		}
		if err := c.write(l); err != nil {
			return
		}
	}
}

// Held is closed once the line HoldSuffix names has been held.
func (p *Proxy) Held() <-chan struct{} { return p.held }

// Cut closes every connection through the proxy.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *Proxy) close() {
	p.ln.Close()
	select {
	case <-p.release:
	default:
		close(p.release)
	}
	p.Cut()
	p.wg.Wait()
}
