//go:build !unix

package server

// wait reads as usual: the buffer-free wait of sock_unix.go needs a
// non-blocking read of the raw socket.
func (c *conn) wait() {
	c.r.Filled(c.nc.Read(c.r.Free()))
	c.serve()
}

// writeNow leaves all writing to flush: writing without waiting needs the
// raw socket.
func (c *conn) writeNow([]byte) (int, error) { return 0, errWouldBlock }
