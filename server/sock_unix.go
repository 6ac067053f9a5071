//go:build unix

package server

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// wait waits, without a read buffer, until the socket has input, then
// reads it into a buffer from the pool in the same step and serves it: one
// read system call per batch of commands, and an idle connection holds
// only its goroutine's minimal stack. A connection without a descriptor
// reads as usual, holding a buffer while it waits.
func (c *conn) wait() {
	if c.rc == nil {
		c.r.FillFrom(c.nc)
		c.serve()
		return
	}
	var sr sockReader
	err := c.rc.Read(func(fd uintptr) bool {
		// Called at once, then each time the poller says the socket is
		// readable, until it returns true. Reading (not just polling)
		// first matters: the poller is edge-triggered, so input that is
		// already there raises no new event.
		sr = sockReader{fd: int(fd)}
		c.r.FillFrom(&sr)
		if sr.again {
			c.r.Release()
			return false
		}
		return true
	})
	if err != nil { // a deadline (shutdown) or the socket closed by kill
		c.end(err)
		return
	}
	c.serve()
}

// sockReader is one non-blocking read(2) of a socket, reporting EAGAIN as
// again rather than as an error, and end of stream as io.EOF as net.Conn
// does.
type sockReader struct {
	fd    int
	again bool
}

func (s *sockReader) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(s.fd, p)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			s.again = true
			return 0, nil
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// writeNow writes what the socket's send buffer takes at once, without
// waiting: errWouldBlock when it takes nothing, or less than all of buf.
func (c *conn) writeNow(buf []byte) (int, error) {
	if c.rc == nil {
		return 0, errWouldBlock
	}
	var n int
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
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
