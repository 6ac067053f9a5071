//go:build linux

package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The event loop: plaintext connections wait for input in one epoll
// instance of the server's own instead of each in a goroutine of its own.
// A waiting connection is then its conn, its descriptor and a slot in the
// loop's table: no goroutine, no stack, no buffer. When input comes, the
// loop starts a goroutine that reads it and runs the same conn.serve as
// the portable path; when that has answered everything, it arms the
// descriptor again (EPOLLONESHOT) and returns.
//
// Ownership: a connection has one owner at a time, as on the portable
// path. While armed, its owner is its slot in the table; the loop, taking
// the slot under evloop.mu, hands it to exactly one goroutine. A stale
// event (a descriptor since re-armed, or closed and reused) finds an empty
// slot, or wakes a connection that then finds nothing to read and waits
// again: harmless either way.
//
// The rare waits that are not for input (a full send buffer, the linger
// of a close) use a duplicate of the descriptor in the runtime's poller,
// with its deadlines: they cost a few system calls, and only the
// connections that wait pay them.
type evloop struct {
	epfd int
	ep   *os.File        // epfd, waiting in the runtime's poller (pollable)
	rc   syscall.RawConn // ep's
	wake int             // an eventfd: written to stop the loop
	wg   *sync.WaitGroup // Server.wg: an admitted connection counts in it until released
	// noDup: dup fails as at the open-file limit (tests).
	noDup bool

	// The listener, accepted from without a net.Conn: the loop tells
	// acceptable (capacity 1) when it is readable. lnfd and lnAdded are
	// the accept loop's; lnfd is read by the loop after the epoll_ctl
	// that registers it, which orders the two.
	ln         syscall.RawConn
	lnfd       atomic.Int64
	lnAdded    bool
	acceptable chan struct{}

	mu     sync.Mutex
	armed  []*conn // by descriptor: the connections waiting for input
	closed bool    // Shutdown has begun: nothing is armed any more
}

// haveLoop: this system has the event loop.
const haveLoop = true

// loopEvents is how many ready connections one epoll_wait hands over.
const loopEvents = 256

// newLoop creates the epoll instance and its wake-up descriptor.
func newLoop(ln net.Listener, wg *sync.WaitGroup, noDup bool) (*evloop, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, errors.New("event loop: not a TCP listener")
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("event loop: %w", err)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("event loop: %w", os.NewSyscallError("epoll_create1", err))
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("event loop: %w", os.NewSyscallError("eventfd", err))
	}
	l := &evloop{epfd: epfd, wake: wake, ln: rc, wg: wg, noDup: noDup, acceptable: make(chan struct{}, 1)}
	l.lnfd.Store(-1)
	if err := l.pollable(); err != nil {
		l.close()
		return nil, fmt.Errorf("event loop: %w", err)
	}
	return l, nil
}

// pollable registers the wake-up descriptor, and makes the epoll instance
// itself wait in the runtime's poller: the loop's goroutine then parks
// like any other waiting on the network, and is scheduled as they are,
// rather than holding a thread in epoll_wait and queueing for a processor
// each time it returns.
func (l *evloop) pollable() error {
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.wake)}); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	if err := unix.SetNonblock(l.epfd, true); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	l.ep = os.NewFile(uintptr(l.epfd), "epoll")
	rc, err := l.ep.SyscallConn()
	if err != nil {
		return err
	}
	l.rc = rc
	return nil
}

// run waits for ready descriptors and starts each one's owner, until
// stop. A batch takes the table's lock once. The callback drains the
// instance: the runtime's poller is edge-triggered, and the instance
// becomes readable again only when a new descriptor is ready.
func (l *evloop) run(s *Server) {
	evs := make([]unix.EpollEvent, loopEvents)
	var ready []*conn
	stop := false
	err := l.rc.Read(func(uintptr) bool {
		for {
			n, err := unix.EpollWait(l.epfd, evs, 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				// Not expected with a valid instance.
				s.log.Error("event loop stopped", "err", os.NewSyscallError("epoll_wait", err))
				return true
			}
			ready, stop = l.take(evs[:n], ready)
			for _, c := range ready {
				s.goTracked(c.runReady)
			}
			clear(ready)
			ready = ready[:0]
			if stop {
				return true
			}
			if n < len(evs) {
				return false // drained: wait for the next one
			}
		}
	})
	if err != nil && !stop {
		s.log.Error("event loop stopped", "err", err)
	}
	if !stop {
		l.failed(s)
	}
}

// failed ends what waits in a loop that stopped on an error, and makes
// every later wait fail: the connections end (their clients reconnect,
// and the accept loop, refused, logs and retries) rather than hang.
func (l *evloop) failed(s *Server) {
	for _, c := range l.closeArms() {
		s.goTracked(func() {
			defer c.recoverOwner()
			c.finish(errLoopStopped)
		})
	}
	select {
	case l.acceptable <- struct{}{}: // wakes the accept loop to find the loop closed
	default:
	}
}

var errLoopStopped = errors.New("the event loop stopped")

// take takes, from a batch of events, the connections they make ready,
// and tells the accept loop of the listener's. stop is whether the
// wake-up descriptor was among them.
func (l *evloop) take(evs []unix.EpollEvent, ready []*conn) (_ []*conn, stop bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range evs {
		fd := int(ev.Fd)
		switch int64(fd) {
		case int64(l.wake):
			stop = true
			continue
		case l.lnfd.Load():
			select {
			case l.acceptable <- struct{}{}:
			default:
			}
			continue
		}
		if fd < len(l.armed) && l.armed[fd] != nil {
			ready = append(ready, l.armed[fd])
			l.armed[fd] = nil
		}
	}
	return ready, stop
}

// arm makes c's descriptor wait for input, c's slot its owner.
func (l *evloop) arm(c *conn, k *rawSock) error {
	fd := int(k.fd)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errShuttingDown
	}
	if fd >= len(l.armed) {
		l.armed = append(l.armed, make([]*conn, fd+1-len(l.armed))...)
	}
	op := unix.EPOLL_CTL_MOD
	if !k.added {
		op = unix.EPOLL_CTL_ADD
	}
	// Under mu, as closeArms: once it has taken a connection, whose new
	// owner may close the descriptor, nobody arms that number again.
	err := unix.EpollCtl(l.epfd, op, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)})
	if err == nil {
		l.armed[fd] = c // from here the loop may hand c over
		k.added = true  // under mu: the next owner, which the loop starts, reads it
	}
	l.mu.Unlock()
	return os.NewSyscallError("epoll_ctl", err)
}

// closeArms stops arming and returns the connections waiting, whose
// owner the caller becomes.
func (l *evloop) closeArms() []*conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	var waiting []*conn
	for fd, c := range l.armed {
		if c != nil {
			waiting = append(waiting, c)
			l.armed[fd] = nil
		}
	}
	return waiting
}

func (l *evloop) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// stop wakes the loop to return; close, once it has, frees the instance.
func (l *evloop) stop() {
	var one = [8]byte{1}
	_, _ = unix.Write(l.wake, one[:])
}

func (l *evloop) close() {
	_ = unix.Close(l.wake)
	if l.ep != nil {
		_ = l.ep.Close()
		return
	}
	_ = unix.Close(l.epfd)
}

// acceptRaw takes the next connection from the listener, and sets on it
// what the portable path's listener does: no Nagle delay, keep-alives
// (half-open peers found in ~2 min). When none is there, it waits for
// the loop to see the listener readable. The listener's descriptor is
// used inside Control only: a Close meanwhile waits for the call to
// end, so the number is never another file's by then.
func (s *Server) acceptRaw() (sock, error) {
	l := s.loop
	for {
		var nfd int
		var sa unix.Sockaddr
		var aerr error
		err := l.ln.Control(func(fd uintptr) {
			for {
				nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
				if !errors.Is(aerr, unix.EINTR) && !errors.Is(aerr, unix.ECONNABORTED) {
					return // ECONNABORTED: gone before it was taken; the next one
				}
			}
		})
		if err != nil {
			return nil, err // the listener closed
		}
		if errors.Is(aerr, unix.EAGAIN) {
			if l.isClosed() && s.ctx.Err() == nil {
				return nil, errLoopStopped
			}
			if err := l.armListener(); err != nil {
				return nil, err
			}
			select {
			case <-l.acceptable:
			case <-s.ctx.Done():
				return nil, net.ErrClosed
			}
			continue
		}
		if aerr != nil {
			return nil, os.NewSyscallError("accept4", aerr)
		}
		for _, o := range [...]struct{ level, opt, v int }{
			{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
			{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
			{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 60},
			{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15},
			{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 4},
		} {
			_ = unix.SetsockoptInt(nfd, o.level, o.opt, o.v)
		}
		if n := s.cfg.SendBuffer; n > 0 {
			if err := unix.SetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_SNDBUF, n); err != nil {
				s.rl.Warn("cannot set the send buffer", "err", os.NewSyscallError("setsockopt", err))
			}
		}
		return &rawSock{lp: l, fd: int32(nfd), ap: addrPort(sa)}, nil
	}
}

// armListener makes the loop tell acceptable once the listener has a
// connection waiting. Only the accept loop calls it.
func (l *evloop) armListener() error {
	var err error
	cerr := l.ln.Control(func(fd uintptr) {
		op := unix.EPOLL_CTL_MOD
		if !l.lnAdded {
			op = unix.EPOLL_CTL_ADD
		}
		l.lnfd.Store(int64(fd))
		err = unix.EpollCtl(l.epfd, op, int(fd), &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(fd)})
		l.lnAdded = err == nil || l.lnAdded
	})
	if cerr != nil {
		return cerr
	}
	return os.NewSyscallError("epoll_ctl", err)
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// rawSock carries a connection over a bare descriptor in the event loop.
type rawSock struct {
	lp    *evloop
	mu    sync.Mutex // abort against release: never shut down a descriptor once closed, and maybe reused
	fd    int32
	added bool // in the epoll instance; only the owner touches it
	held  bool // admitted: counted in evloop.wg until released
	gone  bool // released: guarded by mu
	ap    netip.AddrPort
}

func (k *rawSock) remote() net.Addr { return net.TCPAddrFromAddrPort(k.ap) }
func (k *rawSock) overTLS() bool    { return false }

// open counts an admitted connection in the server's goroutines until it
// is released: while it waits, it has none to count. Its line reader
// reads from nothing: see Read.
func (k *rawSock) open() io.Reader {
	k.held = true
	k.lp.wg.Add(1)
	return k
}

// Read makes the line reader's blocking read an error: serve reads only
// what the loop found (runReady), and waits by arming.
func (k *rawSock) Read([]byte) (int, error) { return 0, errNoBlockingRead }

var errNoBlockingRead = errors.New("internal error: a blocking read on an event-loop connection")

func (k *rawSock) await(c *conn) {
	c.r.Release() // a partial line keeps its buffer
	if err := k.lp.arm(c, k); err != nil {
		// Not waited for by the caller: the accept loop may be it.
		c.s.goTracked(func() {
			defer c.recoverOwner()
			c.finish(err)
		})
	}
}

// runReady is the owner the loop starts when input has come: it reads
// it as the portable path's waiting goroutine does (readReady).
func (c *conn) runReady() {
	defer c.recoverOwner()
	k := c.sk.(*rawSock)
	if !readReady(c, uintptr(k.fd)) {
		k.await(c) // a stale event: nothing after all
		return
	}
	c.serve()
}

func (k *rawSock) writeNow(buf []byte) (int, error) { return writeFd(int(k.fd), buf) }

func (k *rawSock) writeWait(buf []byte, timeout time.Duration) error {
	nc, err := k.dup()
	if err != nil {
		return k.writePolling(buf, time.Now().Add(timeout))
	}
	defer nc.Close()
	return netSock{nc}.writeWait(buf, timeout)
}

func (k *rawSock) refuse(line, buf []byte) {
	_, _ = k.writeNow(line)
	if k.closeWrite() == nil {
		discardFd(int(k.fd), buf, refuseBudget)
	}
}

func (k *rawSock) closeWrite() error {
	return os.NewSyscallError("shutdown", unix.Shutdown(int(k.fd), unix.SHUT_WR))
}

func (k *rawSock) drain(ctx context.Context, d time.Duration, budget int, buf []byte) {
	if ctx.Err() != nil {
		discardFd(int(k.fd), buf, budget)
		return
	}
	nc, err := k.dup()
	if err != nil {
		k.drainPolling(time.Now().Add(d), budget, buf)
		return
	}
	defer nc.Close()
	// Shutdown cannot reach the duplicate, as it reaches a portable
	// connection's read deadline: the context does.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	netSock{nc}.drain(ctx, d, budget, buf)
}

// dup returns the socket as a net.Conn of its own descriptor, waiting in
// the runtime's poller: for a wait with a deadline. Shutting the socket
// down (abort) ends that wait too.
func (k *rawSock) dup() (net.Conn, error) {
	if k.lp.noDup {
		return nil, os.NewSyscallError("fcntl", unix.EMFILE)
	}
	d, err := unix.FcntlInt(uintptr(k.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(d), "")
	defer f.Close() // FileConn makes a duplicate of its own
	return net.FileConn(f)
}

// writePolling and drainPolling are writeWait's and drain's way when no
// descriptor is left to duplicate (EMFILE: the server near its open-file
// limit, which is when it holds the most connections): poll(2) on the
// descriptor itself, which holds a thread while it waits, rather than
// dropping a slow reader at once or closing without the linger. abort's
// shutdown(2) ends the wait.
func (k *rawSock) writePolling(buf []byte, deadline time.Time) error {
	for {
		n, err := writeFd(int(k.fd), buf)
		if !errors.Is(err, errWouldBlock) {
			return err
		}
		buf = buf[n:]
		if ready, err := pollFd(int(k.fd), unix.POLLOUT, deadline); err != nil || !ready {
			return cmp.Or(err, os.ErrDeadlineExceeded)
		}
	}
}

func (k *rawSock) drainPolling(deadline time.Time, budget int, buf []byte) {
	for budget > 0 {
		if ready, err := pollFd(int(k.fd), unix.POLLIN, deadline); err != nil || !ready {
			return
		}
		n, err := readFd(int(k.fd), buf[:min(len(buf), budget)])
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		budget -= n
	}
}

// pollFd waits until fd is ready for events, or the deadline.
func pollFd(fd int, events int16, deadline time.Time) (bool, error) {
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return false, nil
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: events}}, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, os.NewSyscallError("poll", err)
		}
		return n > 0, nil
	}
}

// abort shuts the socket down both ways, from anywhere: reads and writes
// fail, and the loop sees it ready, which starts an owner to tear it down.
// The descriptor itself stays open until then (release), so that no other
// connection can get its number while someone may still use it.
func (k *rawSock) abort() {
	k.mu.Lock()
	if !k.gone {
		_ = unix.Shutdown(int(k.fd), unix.SHUT_RDWR)
	}
	k.mu.Unlock()
}

func (k *rawSock) release() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gone {
		return
	}
	k.gone = true
	_ = unix.Close(int(k.fd)) // leaves the epoll instance with it
	if k.held {
		k.lp.wg.Done()
	}
}

// wakeForShutdown: Shutdown takes the armed connections from the loop
// (closeArms); a busy one finds the loop closed when it would wait.
func (k *rawSock) wakeForShutdown() {}
