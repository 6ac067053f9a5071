package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// sock is how a connection's bytes move, and how its owner waits for
// them: everything else about a connection, the protocol's state machine
// (conn.serve, handle, the queue and its writes, the lifecycle), is the
// same whichever sock carries it. There are two:
//
//   - netSock, a net.Conn whose owner waits in the runtime's poller: one
//     goroutine per waiting connection, on every OS and for TLS;
//   - rawSock (loop_linux.go), a bare descriptor that waits in the
//     server's event loop: no goroutine and no buffer while it waits,
//     which is what an idle connection then costs (docs/PERFORMANCE.md).
type sock interface {
	remote() net.Addr
	overTLS() bool
	// open is called once, when the connection is admitted: it returns
	// what the line reader reads from.
	open() io.Reader
	// await hands the wait for more input over, once serve has answered
	// everything complete in the reader; serve returns after it. The
	// owner is whoever serves next: a goroutine parked in the poller, or
	// one the event loop starts when input comes.
	await(c *conn)
	// writeNow writes what the send buffer takes at once: errWouldBlock
	// for the rest.
	writeNow(buf []byte) (int, error)
	// writeWait writes buf, waiting for room at most timeout:
	// os.ErrDeadlineExceeded after that.
	writeWait(buf []byte, timeout time.Duration) error
	closeWrite() error
	// refuse writes a refused connection's one line, without waiting, and
	// drops what the peer already sent, so that the close that follows
	// sends no reset, which could destroy the line before it is read;
	// what arrives later may still cause one. buf is the scratch space.
	refuse(line, buf []byte)
	// drain reads and drops input until EOF, budget bytes, d or ctx's
	// end, whichever comes first (see lingerTimeout); once ctx is done,
	// only what is already there. buf is the scratch space.
	drain(ctx context.Context, d time.Duration, budget int, buf []byte)
	// abort makes every later read and write fail, from anywhere, without
	// a lock, and wakes the owner so that it tears the connection down.
	abort()
	// release frees the socket: teardown calls it, once, last.
	release()
	// wakeForShutdown makes the owner answer what it has and go: Shutdown
	// calls it with Server.mu held.
	wakeForShutdown()
}

// errShuttingDown ends a connection that would wait for input while the
// server shuts down: conn.finish takes it as the read deadline Shutdown
// sets on a waiting reader.
var errShuttingDown = fmt.Errorf("the server is shutting down: %w", os.ErrDeadlineExceeded)

var errNoCloseWrite = errors.New("the connection cannot close its write side alone")

// netSock carries a connection over a net.Conn (portable).
type netSock struct{ nc net.Conn }

func (k netSock) remote() net.Addr { return k.nc.RemoteAddr() }
func (k netSock) open() io.Reader  { return k.nc }

func (k netSock) overTLS() bool {
	_, ok := k.nc.(*tls.Conn)
	return ok
}

// await starts a fresh goroutine to wait: answering grows a goroutine's
// stack, and a grown stack parked in Read keeps its size; a fresh
// goroutine that only waits keeps the minimum.
func (k netSock) await(c *conn) {
	c.r.Release() // nothing complete is buffered: wait without the buffer, when nothing is
	c.s.goTracked(func() {
		defer c.recoverOwner()
		k.wait(c)
	})
}

func (k netSock) writeNow(buf []byte) (int, error) { return writeNow(k.nc, buf) }

func (k netSock) writeWait(buf []byte, timeout time.Duration) error {
	_ = k.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := k.nc.Write(buf)
	// Cleared after the wait, or it would fail the next write that does
	// not wait (writeNow) once it has passed.
	_ = k.nc.SetWriteDeadline(time.Time{})
	return err
}

// tlsSock is a netSock over TLS. crypto/tls cannot write without
// waiting, so every write waits (writeNow never writes), with a deadline:
// set for each write and cleared after it, that is two changes of a
// runtime timer per push, a tenth of the server's time with items in
// pushes. Here the deadline is moved only once less than nine tenths of
// the write timeout is left of it, and is never cleared: a write that
// blocks is still cut after at least nine tenths of the timeout, and
// writes come a second or more apart before the deadline moves again.
// Guarded by conn.wmu, as every write.
type tlsSock struct {
	netSock
	deadline time.Time // the write deadline set on the connection
}

func (k *tlsSock) writeWait(buf []byte, timeout time.Duration) error {
	if now := time.Now(); k.deadline.Sub(now) < timeout-timeout/10 {
		k.deadline = now.Add(timeout)
		_ = k.nc.SetWriteDeadline(k.deadline)
	}
	_, err := k.nc.Write(buf)
	return err
}

// closeWrite sends the TLS close_notify as before the deadline was kept:
// without one.
func (k *tlsSock) closeWrite() error {
	k.deadline = time.Time{}
	_ = k.nc.SetWriteDeadline(time.Time{})
	return k.netSock.closeWrite()
}

func (k netSock) closeWrite() error {
	cw, ok := k.nc.(interface{ CloseWrite() error })
	if !ok {
		return errNoCloseWrite
	}
	return cw.CloseWrite()
}

func (k netSock) refuse(line, buf []byte) {
	writeRefusal(k.nc, line)
	if k.closeWrite() == nil {
		discardReadable(k.nc, buf, refuseBudget)
	}
}

func (k netSock) drain(ctx context.Context, d time.Duration, budget int, buf []byte) {
	// Shutdown cancels ctx before it sets every connection's read
	// deadline in the past: either this deadline is overridden by its, or
	// the check below sees the cancellation.
	_ = k.nc.SetReadDeadline(time.Now().Add(d))
	if ctx.Err() != nil {
		discardReadable(k.nc, buf, budget)
		return
	}
	for n := 0; n < budget; {
		m, err := k.nc.Read(buf)
		n += m
		if err != nil {
			return
		}
	}
}

// abort closes the raw socket, never the TLS layer: tls.Conn.Close first
// sends a close_notify alert, which waits up to 5 s on a client that
// reads nothing, and abort is called with Server.mu held. The owner,
// woken by the closed socket, does the rest.
func (k netSock) abort() {
	if tc, ok := k.nc.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
		return
	}
	_ = k.nc.Close()
}

func (k netSock) release() { k.abort() }

func (k netSock) wakeForShutdown() { _ = k.nc.SetReadDeadline(time.Unix(1, 0)) }
