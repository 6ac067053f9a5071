package server

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// flushAt bounds the replies a pipelined batch accumulates before they are
// written, so a flood of commands cannot grow a connection's buffer.
const flushAt = 32 << 10

// conn is one protocol connection. One goroutine at a time (serve, or
// wait while idle) reads and answers commands; fan-out appends
// notifications to out, and the server's pusher writes them without
// waiting (kick), leaving a goroutine to wait only for a full socket.
// Lock order: conn.wmu, then Server.mu, then conn.omu; fan-out, which
// runs under Server.mu, therefore never waits for a socket.
type conn struct {
	s  *Server
	nc net.Conn
	r  *wire.Reader

	lastLine atomic.Int64 // Server.since() when the last line arrived

	// Guarded by Server.mu (and notifying, below).
	own cursor  // read position while not identified
	cl  *client // set by hello; the read position then lives there

	wmu sync.Mutex // held while writing to nc, so lines never interleave

	omu       sync.Mutex // guards out, scheduled and dead
	out       []byte     // replies and notifications not yet written, in order
	scheduled bool       // a kick or flush is on its way
	dead      bool

	// Here rather than with the fields Server.mu guards, because the
	// three bools share a word: every byte of a conn is paid by every
	// idle connection.
	notifying bool
}

// pos returns the connection's read position. Server.mu must be held.
func (c *conn) pos() *cursor {
	if c.cl != nil {
		return &c.cl.pos
	}
	return &c.own
}

// serve reads and answers lines until nothing is buffered, then hands the
// wait for more to a fresh goroutine (wait) and returns. Answering grows a
// goroutine's stack, and a grown stack parked in Read keeps its size; a
// fresh goroutine that only waits keeps the minimum, which is most of what
// an idle connection costs. serve is entered with input, or an error, in
// the reader.
func (c *conn) serve() {
	for {
		line, err := c.r.ReadLine()
		if err != nil {
			c.end(err)
			return
		}
		c.lastLine.Store(c.s.since())
		c.handle(line)
		if !c.r.Buffered() || c.queued() >= flushAt {
			if c.flush() != nil {
				c.close()
				return
			}
		}
		if c.r.Release() { // nothing buffered: the read buffer went back to the pool
			c.s.goTracked(c.wait)
			return
		}
	}
}

// end closes the connection after a read error, answering first what was
// received before it.
func (c *conn) end(err error) {
	switch {
	case errors.Is(err, wire.ErrLineTooLong):
		c.s.log.Info("closing connection: line too long", "remote", c.nc.RemoteAddr())
		c.reply(wire.ErrLineTooLongLine)
	case errors.Is(err, os.ErrDeadlineExceeded): // shutdown
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		c.s.log.Debug("read failed", "remote", c.nc.RemoteAddr(), "err", err)
	}
	_ = c.flush()
	c.close()
}

func (c *conn) handle(line []byte) {
	switch {
	case len(line) == 0:
		// Ignored, as the protocol says: a stray CRLF is harmless.
	case string(line) == wire.CmdRandom:
		c.cmdRandom()
	case string(line) == wire.CmdClassified:
		c.cmdClassified()
	case string(line) == wire.CmdNotify:
		c.cmdNotify()
	case string(line) == wire.CmdStopNotify:
		c.s.mu.Lock()
		c.s.setNotifying(c, false)
		c.s.mu.Unlock()
		c.reply(wire.OK)
	case bytes.HasPrefix(line, []byte(wire.CmdSeen+" ")):
		c.cmdSeen(string(line[len(wire.CmdSeen)+1:]))
	case string(line) == wire.CmdHello || bytes.HasPrefix(line, []byte(wire.CmdHello+" ")):
		c.cmdHello(string(bytes.TrimPrefix(line, []byte(wire.CmdHello))))
	default:
		c.reply(wire.ErrUnknownCommand)
	}
}

func (c *conn) cmdRandom() {
	s := c.s
	s.mu.Lock()
	it := s.random
	p := c.pos()
	p.random = max(p.random, it.ID)
	cl := c.cl
	s.mu.Unlock()
	if cl == nil {
		c.reply(it.Value)
		return
	}
	c.replyItem(it)
}

func (c *conn) cmdClassified() {
	s := c.s
	s.mu.Lock()
	p := c.pos()
	var it store.Item
	// The oldest unread ad; when none is unread, the most recent one.
	i := sort.Search(len(s.ads), func(i int) bool { return s.ads[i].ID > p.ad })
	switch {
	case i < len(s.ads):
		it = s.ads[i]
		p.ad = it.ID
	case len(s.ads) > 0:
		it = s.ads[len(s.ads)-1]
	}
	cl := c.cl
	s.mu.Unlock()
	if cl == nil {
		c.reply(it.Value) // "" when no ad exists: an empty line
		return
	}
	if it.ID == 0 {
		c.reply("")
		return
	}
	c.replyItem(it)
}

// cmdNotify enters notification mode. The OK, then one announcement per
// item the client has not fetched, must reach the wire before any
// notification fanned out after this point, and none fanned out before
// this point may follow them (they are counted in the announcement).
func (c *conn) cmdNotify() {
	s := c.s
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// Earlier replies of this batch go first, in the same write as the OK
	// and the announcements: one write per fetch cycle instead of two.
	c.omu.Lock()
	if c.dead {
		c.omu.Unlock()
		return
	}
	buf := c.out
	c.out = nil
	c.omu.Unlock()

	s.mu.Lock()
	s.setNotifying(c, true)
	p := c.pos()
	unread := len(s.ads) - sort.Search(len(s.ads), func(i int) bool { return s.ads[i].ID > p.ad })
	random := s.random.ID > p.random
	c.omu.Lock()
	c.out = c.out[:0] // only notifications can be here; the announcement replaces them
	c.omu.Unlock()
	s.mu.Unlock()

	buf = slices.Grow(buf, min(flushAt, 4+unread*(len(wire.NotifClassified)+2)+len(wire.NotifRandom)+2))
	buf = append(buf, wire.OK+"\r\n"...)
	for i := 0; i < unread; i++ {
		buf = append(buf, wire.NotifClassified+"\r\n"...)
		if len(buf) >= flushAt-64 {
			if c.writeLocked(buf) != nil {
				return
			}
			buf = buf[:0]
		}
	}
	if random {
		buf = append(buf, wire.NotifRandom+"\r\n"...)
	}
	_ = c.writeLocked(buf)
}

func (c *conn) cmdHello(arg string) {
	s := c.s
	id, ok := cutSpace(arg)
	if !ok || wire.ValidateClientID(id) != nil {
		c.reply(wire.ErrBadClientID)
		return
	}
	s.mu.Lock()
	already := c.cl != nil
	s.mu.Unlock()
	if already {
		c.reply(wire.ErrAlreadyHello)
		return
	}
	rec, found, err := s.st.Client(id)
	if err != nil {
		s.log.Error("identification: reading the client's position failed; it starts from now", "client", id, "err", err)
	}
	s.mu.Lock()
	cl := s.clients[id]
	if cl == nil {
		cl = &client{id: id, pos: c.own, acked: c.own} // a new client: unread is what came since it connected
		if found {
			cl.pos = cursor{ad: rec.Ad, random: rec.Random}
			cl.acked = cl.pos
		}
		s.clients[id] = cl
	}
	cl.refs++
	c.cl = cl
	snap := cl.acked
	s.mu.Unlock()
	c.persist(id, snap) // records that it was seen
	c.reply(wire.OK)
}

// cmdSeen takes the client's acknowledgement of every item it received
// with an id up to n, and stages it for the disk. Only items actually
// handed out can be acknowledged: n beyond them acknowledges what was
// handed out.
func (c *conn) cmdSeen(arg string) {
	s := c.s
	n, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != arg {
		c.reply(wire.ErrBadSeenID)
		return
	}
	s.mu.Lock()
	cl := c.cl
	var snap cursor
	moved := false
	if cl != nil {
		a := cursor{ad: max(cl.acked.ad, min(n, cl.pos.ad)), random: max(cl.acked.random, min(n, cl.pos.random))}
		moved = a != cl.acked
		cl.acked = a
		snap = a
	}
	s.mu.Unlock()
	if cl == nil {
		c.reply(wire.ErrNotIdentified)
		return
	}
	if moved {
		c.persist(cl.id, snap)
	}
	c.reply(wire.OK)
}

func cutSpace(arg string) (string, bool) {
	if len(arg) < 2 || arg[0] != ' ' {
		return "", false
	}
	return arg[1:], true
}

// persist stages an identified client's position for the store's next
// group commit, without waiting for the disk: the reply goes out at once.
// Until the commit lands (about a disk sync later; an Append carries it
// too) a crash can only cost a repeat, which the client drops by id.
// A failed commit is logged through the store's OnCommitError handler.
func (c *conn) persist(id string, p cursor) {
	c.s.st.StageClient(id, store.Client{Ad: p.ad, Random: p.random, Seen: time.Now()})
}

func (c *conn) reply(line string) {
	c.omu.Lock()
	c.out = append(c.out, line...)
	c.out = append(c.out, '\r', '\n')
	c.omu.Unlock()
}

func (c *conn) replyItem(it store.Item) {
	c.omu.Lock()
	c.out = wire.AppendItem(c.out, it.ID, it.Value)
	c.out = append(c.out, '\r', '\n')
	c.omu.Unlock()
}

func (c *conn) queued() int {
	c.omu.Lock()
	defer c.omu.Unlock()
	return len(c.out)
}

// push queues a notification line. It reports false, and drops the
// connection, when the client has stopped reading: its queue is full.
// kick is true when the line is the first one queued since the last
// write, and the caller must kick the connection once it has released
// Server.mu. Called with Server.mu held; never blocks on the socket.
func (c *conn) push(line string) (ok, kick bool) {
	c.omu.Lock()
	if c.dead {
		c.omu.Unlock()
		return false, false
	}
	if len(c.out)+len(line) > c.s.cfg.MaxQueue {
		n := len(c.out)
		c.omu.Unlock()
		c.kill("slow reader: notification queue full", "queued_bytes", n)
		return false, false
	}
	c.out = append(c.out, line...)
	kick = !c.scheduled
	c.scheduled = true
	c.omu.Unlock()
	return true, kick
}

// kick writes what push queued. When nobody else is writing and the
// socket takes it all at once, which is the usual case, the caller writes
// it; otherwise a goroutine waits to write it, so a publish never waits
// for one client.
func (c *conn) kick() {
	if c.wmu.TryLock() {
		done := c.writeQueuedNow()
		c.wmu.Unlock()
		if done {
			return
		}
	}
	c.s.goTracked(func() {
		c.omu.Lock()
		c.scheduled = false
		c.omu.Unlock()
		_ = c.flush()
	})
}

// writeQueuedNow writes the queue without waiting, and reports whether it
// is done: false leaves what the socket did not take at the queue's front
// for a flush. c.wmu must be held.
func (c *conn) writeQueuedNow() bool {
	c.omu.Lock()
	if c.dead {
		c.omu.Unlock()
		return true
	}
	c.scheduled = false
	buf := c.out
	c.out = nil
	c.omu.Unlock()
	n, err := c.writeNow(buf)
	switch {
	case err == nil:
		return true
	case errors.Is(err, errWouldBlock):
		c.omu.Lock()
		c.out = append(buf[n:], c.out...) // replies queued meanwhile go after it
		c.scheduled = true
		c.omu.Unlock()
		return false
	}
	c.kill("write failed", "err", err)
	return true
}

// flush writes everything queued.
func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.drainLocked()
}

var (
	errDead       = errors.New("connection closed")
	errWouldBlock = errors.New("the socket's send buffer is full")
)

// drainLocked writes the queue until it is empty. c.wmu must be held.
func (c *conn) drainLocked() error {
	for {
		c.omu.Lock()
		if c.dead {
			c.omu.Unlock()
			return errDead
		}
		buf := c.out
		c.out = nil
		c.omu.Unlock()
		if len(buf) == 0 {
			return nil
		}
		if err := c.writeLocked(buf); err != nil {
			return err
		}
	}
}

// writeLocked writes buf. What the socket takes at once is written without
// a deadline; only when it is full does the write wait, with the write
// timeout: a client that takes nothing for that long is dropped. The
// deadline is cleared after that wait, or it would fail the next write
// that does not wait (writeNow) once it has passed. c.wmu must be held.
func (c *conn) writeLocked(buf []byte) error {
	n, err := c.writeNow(buf)
	if err == nil {
		return nil
	}
	if errors.Is(err, errWouldBlock) {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
		_, err = c.nc.Write(buf[n:])
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.kill("slow reader: write timed out", "timeout", c.s.cfg.WriteTimeout)
	default:
		c.kill("write failed", "err", err)
	}
	return err
}

// kill closes the connection at once; the reader then unregisters it.
func (c *conn) kill(reason string, args ...any) {
	c.omu.Lock()
	if c.dead {
		c.omu.Unlock()
		return
	}
	c.dead = true
	c.out = nil
	c.omu.Unlock()
	c.s.log.Info("dropping connection: "+reason, append([]any{"remote", c.nc.RemoteAddr()}, args...)...)
	_ = c.nc.Close()
}

func (c *conn) close() {
	c.omu.Lock()
	c.dead = true
	c.out = nil
	c.omu.Unlock()
	_ = c.nc.Close()
	c.s.forget(c)
	c.s.log.Debug("connection closed", "remote", c.nc.RemoteAddr())
}
