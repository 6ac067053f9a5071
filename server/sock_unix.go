//go:build unix

package server

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// wait waits, without a read buffer, until the socket has input, then
// reads it into a buffer from the pool in the same step and serves it: one
// read system call per batch of commands, and an idle connection holds
// only its goroutine's minimal stack. The raw socket is looked up here
// rather than kept in the conn: every byte of the conn is paid by every
// idle connection.
func (c *conn) wait() {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		c.r.Filled(c.nc.Read(c.r.Free()))
		c.serve()
		return
	}
	rc, err := sc.SyscallConn()
	if err == nil {
		err = rc.Read(c.readReady)
	}
	if err != nil { // a deadline (shutdown), or the socket closed by end
		c.finish(err)
		return
	}
	c.serve()
}

// readReady is called by the poller at once, then each time the socket is
// readable, until it returns true. Reading (not just polling) first
// matters: the poller is edge-triggered, so input that is already there
// raises no new event.
func (c *conn) readReady(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), c.r.Free())
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			c.r.Release() // nothing after all: wait without the buffer
			return false
		case err != nil:
			c.r.Filled(0, os.NewSyscallError("read", err))
		case n == 0:
			c.r.Filled(0, io.EOF)
		default:
			c.r.Filled(n, nil)
		}
		return true
	}
}

// writeNow writes what the socket's send buffer takes at once, without
// waiting: errWouldBlock when it takes nothing, or less than all of buf.
func writeNow(nc net.Conn, buf []byte) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, errWouldBlock
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), buf)
			if !errors.Is(werr, syscall.EINTR) {
				return true // never wait: whoever flushes next does
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errors.Is(werr, syscall.EAGAIN):
		return 0, errWouldBlock
	case werr != nil:
		return 0, os.NewSyscallError("write", werr)
	case n < len(buf):
		return n, errWouldBlock
	}
	return n, nil
}

// writeRefusal writes a refused connection's only line without waiting:
// a peer that advertises no room for it (a zero window) must not stall
// the accept loop.
func writeRefusal(nc net.Conn, line []byte) { _, _ = writeNow(nc, line) }

// discardReadable reads and drops what the socket already holds, up to
// budget bytes, without waiting, through buf. It works whatever the
// read deadline: a shutdown sets every deadline in the past.
func discardReadable(nc net.Conn, buf []byte, budget int) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		for budget > 0 {
			n, err := syscall.Read(int(fd), buf[:min(len(buf), budget)])
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || n <= 0 { // EAGAIN: nothing more for now
				return
			}
			budget -= n
		}
	})
}

// inode is a file's inode number: a renewal that replaces the file
// changes it even when size and time happen to match.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
