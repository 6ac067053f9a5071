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
// rather than kept: every byte of a conn is paid by every idle connection.
func (k netSock) wait(c *conn) {
	sc, ok := k.nc.(syscall.Conn)
	if !ok {
		c.r.Filled(k.nc.Read(c.r.Free()))
		c.serve()
		return
	}
	rc, err := sc.SyscallConn()
	if err == nil {
		err = rc.Read(func(fd uintptr) bool { return readReady(c, fd) })
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
func readReady(c *conn, fd uintptr) bool {
	n, err := readFd(int(fd), c.r.Free())
	switch {
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

// readFd reads from a non-blocking descriptor, again after a signal.
func readFd(fd int, buf []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, buf)
		if !errors.Is(err, syscall.EINTR) {
			return n, err
		}
	}
}

// writeFd writes what a non-blocking descriptor's send buffer takes at
// once: errWouldBlock when it takes nothing, or less than all of buf.
func writeFd(fd int, buf []byte) (int, error) {
	var n int
	var err error
	for {
		n, err = syscall.Write(fd, buf)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case errors.Is(err, syscall.EAGAIN):
		return 0, errWouldBlock
	case err != nil:
		return 0, os.NewSyscallError("write", err)
	case n < len(buf):
		return n, errWouldBlock
	}
	return n, nil
}

// discardFd reads and drops what a non-blocking descriptor holds, up to
// budget bytes, through buf, without waiting.
func discardFd(fd int, buf []byte, budget int) {
	for budget > 0 {
		n, err := readFd(fd, buf[:min(len(buf), budget)])
		if err != nil || n <= 0 { // EAGAIN: nothing more for now
			return
		}
		budget -= n
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
		n, werr = writeFd(int(fd), buf)
		return true // never wait: whoever flushes next does
	})
	if err != nil {
		return 0, err
	}
	return n, werr
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
	_ = rc.Control(func(fd uintptr) { discardFd(int(fd), buf, budget) })
}

// inode is a file's inode number: a renewal that replaces the file
// changes it even when size and time happen to match.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
