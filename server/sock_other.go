//go:build !unix

package server

import (
	"net"
	"os"
	"time"
)

// wait reads as usual: the buffer-free wait of sock_unix.go needs a
// non-blocking read of the raw socket.
func (k netSock) wait(c *conn) {
	c.r.Filled(k.nc.Read(c.r.Free()))
	c.serve()
}

// writeNow leaves all writing to flush: writing without waiting needs the
// raw socket.
func writeNow(net.Conn, []byte) (int, error) { return 0, errWouldBlock }

// writeRefusal writes a refused connection's only line, waiting briefly
// at most: without the raw socket it cannot avoid waiting altogether.
func writeRefusal(nc net.Conn, line []byte) {
	_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = nc.Write(line)
}

// discardReadable would drop what the socket already holds without
// waiting, which needs the raw socket: here the close is left as is.
func discardReadable(net.Conn, []byte, int) {}

// inode is 0 where the file's inode is not at hand: size and time decide.
func inode(os.FileInfo) uint64 { return 0 }
