package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// flushAt bounds the replies a pipelined batch accumulates before they are
// written, so a flood of commands cannot grow a connection's buffer.
const flushAt = 32 << 10

// Closing without destroying the last line (net/http's closeWriteAndWait).
// A socket closed with unread input sends a TCP reset, and a reset can
// destroy what the peer has not read yet: the ERR line that explains the
// close. So the server shuts down its write side (the peer reads the line,
// then EOF) and reads and drops input for a while before it closes.
const (
	lingerTimeout = time.Second // how long a closing connection's input is drained, at most
	lingerBudget  = 256 << 10   // how much of it, at most
	refuseBudget  = 16 << 10    // what a refused connection may already have sent that is dropped
)

// conn is one protocol connection. One owner at a time reads and
// answers commands (serve): a goroutine while there is input, and while
// idle, a goroutine parked in the runtime's poller or a slot in the
// server's event loop (sock.go). Fan-out appends notifications to out,
// and the server's pusher writes them without waiting (kick), leaving a
// goroutine to wait only for a full socket.
//
// Lifecycle (as net/http's conn): state says, in one word, whether the
// connection is in notification mode and whether, and why, it has ended.
// Anyone may end it (end: the first reason wins, the socket is aborted,
// which wakes the owner); only the owner tears it down (teardown:
// unregister, one log line, the socket released), exactly once, when it
// leaves.
//
// Lock order: conn.wmu, then Server.mu, then conn.omu; fan-out, which
// runs under Server.mu, therefore never waits for a socket.
type conn struct {
	s  *Server
	sk sock // how its bytes move: the one thing that differs by path (sock.go)
	r  *wire.Reader

	lastLine atomic.Int64 // Server.since() when the last line arrived

	// Guarded by Server.mu.
	own cursor  // read position while not identified
	cl  *client // set by hello; the read position then lives there

	wmu sync.Mutex // held while writing to nc, so lines never interleave

	omu sync.Mutex // guards out and scheduled
	out []byte     // replies and notifications not yet written, in order

	// The two share a word: every byte of a conn is paid by every idle
	// connection (docs/PERFORMANCE.md).
	state     atomic.Uint32 // see the st* bits
	scheduled bool          // guarded by omu: a kick or flush is on its way
}

// The bits of conn.state. The mode bit changes only under Server.mu (it
// is counted in Server.notifying); the end bits are set once, by end,
// from anywhere; the torn-down bit by the owner's teardown.
const (
	stNotifying = 1 << 0 // in notification mode
	stTornDown  = 1 << 1 // teardown has run (or is running)
	stSpoke     = 1 << 2 // the peer's first bytes were looked at (a TLS handshake on the plaintext port?)
	stStarted   = 1 << 3 // the first command has been handled: auth is no longer allowed
	stAuthed    = 1 << 4 // auth succeeded (its token is in Server.tokenConns)
	stItems     = 1 << 5 // pushes carry their items (notif items); changes under Server.mu, with stNotifying
	stWhyShift  = 8      // bits 8–15: why it ended (an endReason; 0 while open)
	stErrShift  = 16     // bits 16–31: the errno that ended it, if any, for the log
)

// endReason says why a connection ended. The set is fixed, so log lines
// keyed on it (ratelog keys on the message) are bounded whatever a
// stranger does.
type endReason uint8

const (
	notEnded endReason = iota
	endClientClosed
	endShutdown
	endLineTooLong
	endReadFailed
	endWriteFailed
	endWriteTimeout
	endQueueFull
	endCommandTimeout
	endPanic
	endHandshake
	endPlainOnTLS
	endTLSOnPlain
	endAuthRequired
	endAuthFailed
	endTokenRevoked
	endStoreUnavailable
)

// reasons are the log line and level of each endReason. Levels: what a
// peer does as a matter of course is DEBUG; what the server imposes on
// it, INFO; a bug, ERROR.
var reasons = [...]struct {
	msg   string
	level slog.Level
}{
	notEnded:          {"connection closed", slog.LevelDebug}, // not reached: teardown follows end
	endClientClosed:   {"connection closed by the client", slog.LevelDebug},
	endShutdown:       {"connection closed: the server is shutting down", slog.LevelDebug},
	endLineTooLong:    {"connection closed: line too long", slog.LevelInfo},
	endReadFailed:     {"connection closed: read failed", slog.LevelDebug},
	endWriteFailed:    {"connection closed: write failed", slog.LevelInfo},
	endWriteTimeout:   {"connection closed: slow reader, a write timed out", slog.LevelInfo},
	endQueueFull:      {"connection closed: slow reader, its notification queue is full", slog.LevelInfo},
	endCommandTimeout: {"connection closed: no command for the command timeout", slog.LevelInfo},
	endPanic:          {"connection closed: panic while serving it", slog.LevelError},
	endHandshake:      {"connection closed: TLS handshake failed", slog.LevelDebug},
	endPlainOnTLS:     {"connection closed: plaintext on the TLS port", slog.LevelInfo},
	endTLSOnPlain:     {"connection closed: a TLS handshake on the plaintext port", slog.LevelInfo},
	endAuthRequired:   {"connection closed: no token (auth required)", slog.LevelInfo},
	endAuthFailed:     {"connection closed: auth failed", slog.LevelDebug}, // logged, counted, where it failed
	endTokenRevoked:   {"connection closed: its token was revoked or expired", slog.LevelInfo},
	// Logged once per reason by ratelog, with the store's error where
	// it failed.
	endStoreUnavailable: {"connection closed: the store could not tell the client's position; told to come back", slog.LevelInfo},
}

// notifying reports whether c is in notification mode.
func (c *conn) notifying() bool { return c.state.Load()&stNotifying != 0 }

// closed reports whether c has ended: nothing more is queued or written.
func (c *conn) closed() bool { return c.state.Load()>>stWhyShift&0xff != 0 }

// mark records why c ends, unless a reason is recorded already: the first
// one wins. It reports whether this call recorded it. It takes no lock.
func (c *conn) mark(r endReason, err error) bool {
	var errno syscall.Errno
	errors.As(err, &errno)
	for {
		old := c.state.Load()
		if old>>stWhyShift&0xff != 0 {
			return false
		}
		st := old | uint32(r)<<stWhyShift | uint32(min(errno, 0xffff))<<stErrShift
		if c.state.CompareAndSwap(old, st) {
			return true
		}
	}
}

// end ends c from anywhere: it records why (the first reason wins) and
// aborts the socket, which wakes the owner to tear the connection down.
// It is idempotent and never waits, so it is safe to call with
// Server.mu held. Aborting again is harmless, and needed: the owner
// records its reason before it lingers (finish), and a shutdown that
// runs out of time must still be able to cut the linger short.
func (c *conn) end(r endReason, err error) {
	c.mark(r, err)
	c.sk.abort()
}

// recoverOwner is deferred by every owner's goroutine. A panic while
// serving ends this connection only: it is logged with its stack, and the
// server and every other connection carry on. (Code that panics holding
// Server.mu would still leave it locked: those sections are kept short
// and free of I/O.)
func (c *conn) recoverOwner() {
	if v := recover(); v != nil {
		c.end(endPanic, nil)
		c.teardown("panic", v, "stack", string(debug.Stack()))
	}
}

// teardown unregisters c and logs, in one line, why it ended. Only the
// owner calls it, once, as it leaves; the socket is closed by then.
func (c *conn) teardown(args ...any) {
	if c.state.Or(stTornDown)&stTornDown != 0 {
		return // recoverOwner, after a panic inside teardown: never unregister twice
	}
	// Deferred: even after a panic below, the socket is released (on the
	// event loop that also ends the connection's count in Server.wg,
	// which Shutdown waits for). Under wmu: a write that checked the
	// connection open (under omu) before it ended is over, and later ones
	// see it closed; a raw descriptor's number could otherwise be another
	// connection's by then.
	defer func() {
		c.wmu.Lock()
		c.sk.release()
		c.wmu.Unlock()
	}()
	s := c.s
	s.mu.Lock()
	s.unregister(c)
	s.mu.Unlock()
	c.omu.Lock()
	c.out = nil
	c.omu.Unlock()
	st := c.state.Load()
	w := reasons[st>>stWhyShift&0xff]
	attrs := append(make([]any, 0, 4+len(args)), "remote", c.sk.remote())
	if errno := syscall.Errno(st >> stErrShift); errno != 0 {
		attrs = append(attrs, "err", errno.Error())
	}
	s.rl.Log(w.level, w.msg, append(attrs, args...)...)
}

// pos returns the connection's read position. Server.mu must be held.
func (c *conn) pos() *cursor {
	if c.cl != nil {
		return &c.cl.pos
	}
	return &c.own
}

// serve answers the lines in the reader until no complete one is left,
// then hands the wait for more over (sock.await) and returns: to the event
// loop, or to a fresh goroutine. It never reads from the socket itself, so
// the protocol runs the same whichever way the bytes came. serve is
// entered with input, or an error, in the reader.
func (c *conn) serve() {
	if c.state.Load()&stSpoke == 0 {
		c.state.Or(stSpoke)
		if b := c.r.Peek(); len(b) > 0 && b[0] == tlsRecordHandshake && c.s.certs == nil {
			// A TLS client at the plaintext port: tell it, in the only
			// language both speak, and close (docs/PROTOCOL.md, TLS).
			c.reply(wire.ErrNoTLS)
			c.farewell(endTLSOnPlain)
			return
		}
	}
	for c.r.Ready() {
		if c.closed() {
			// Ended meanwhile (a revoked token, a full queue, Shutdown
			// out of time): what is still buffered is not served. The
			// portable path's read fails the same way once the buffer
			// is empty; the event loop's abort leaves queued input
			// readable, so this check is what stops it.
			c.finish(net.ErrClosed)
			return
		}
		line, err := c.r.ReadLine()
		if err != nil {
			c.finish(err)
			return
		}
		c.lastLine.Store(c.s.since())
		if h := c.s.cfg.onLine; h != nil {
			h(line)
		}
		if r := c.handle(line); r != notEnded {
			c.farewell(r)
			return
		}
		if !c.r.Buffered() || c.queued() >= flushAt {
			if err := c.flush(); err != nil {
				c.end(endWriteFailed, err) // the writer has recorded the real reason
				c.teardown()
				return
			}
		}
	}
	c.sk.await(c)
}

// finish ends the connection from its owner after a read error, answering
// first what was received before it, and tears it down.
func (c *conn) finish(err error) {
	r := endReadFailed
	switch {
	case errors.Is(err, wire.ErrLineTooLong):
		r = endLineTooLong
		c.reply(wire.ErrLineTooLongLine)
	case errors.Is(err, os.ErrDeadlineExceeded): // Shutdown woke the reader
		r = endShutdown
		if c.cl != nil {
			// It said hello: a client that can go to another server of
			// this store does so at once (docs/PROTOCOL.md, Going away),
			// once what it acknowledged here is in the store, where that
			// server reads it. Never before hello: a version-1 client
			// would take the line for a reply.
			c.commitPosition()
			c.reply(wire.ErrGoingAway)
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		r = endClientClosed
	case errors.Is(err, net.ErrClosed): // ended by someone else, who said why
	}
	switch r {
	case endClientClosed:
		// A client may shut down its side after its last commands (a
		// half-close) and still read their replies.
		_ = c.flush()
	case endLineTooLong, endShutdown:
		// The peer may have sent more that will never be read: close so
		// that the last line survives (see lingerTimeout). Recording the
		// reason first stops the pushes.
		if c.flush() == nil && c.mark(r, err) {
			c.closeWriteAndWait(c.s.ctx)
		}
	}
	c.end(r, err)
	c.teardown()
}

// farewell ends the connection from its owner after a line that closes it
// (an auth failure): what is queued is written, the rest of the batch is
// not answered, and the close lingers so the line survives.
func (c *conn) farewell(r endReason) {
	if c.flush() == nil && c.mark(r, nil) {
		c.closeWriteAndWait(c.s.ctx)
	}
	c.end(r, nil)
	c.teardown()
}

// closeWriteAndWait shuts down the write side (after every line written:
// the peer reads them, then EOF), then reads and drops input until EOF,
// lingerBudget bytes or the linger time (lingerTimeout), whichever comes
// first, so that closing the socket does not send a reset. ctx is the
// server's: once it is done (a shutdown in progress) the wait is cut
// short, and only what is already there is dropped. Ending c (end)
// meanwhile closes the socket and ends the wait.
func (c *conn) closeWriteAndWait(ctx context.Context) {
	c.wmu.Lock() // no write in flight: the FIN follows every line
	err := c.sk.closeWrite()
	c.wmu.Unlock()
	if err != nil {
		return
	}
	bp := c.s.bufs.Get().(*[]byte)
	defer c.s.bufs.Put(bp)
	c.sk.drain(ctx, c.s.cfg.linger, lingerBudget, *bp)
}

// handle answers one line. It returns why the connection must end after
// the reply (an auth failure), or notEnded.
func (c *conn) handle(line []byte) endReason {
	if len(line) == 0 {
		return notEnded // ignored, as the protocol says: a stray CRLF is harmless
	}
	isAuth := string(line) == wire.CmdAuth || bytes.HasPrefix(line, []byte(wire.CmdAuth+" "))
	if c.state.Or(stStarted)&stStarted == 0 { // the first command
		if isAuth {
			return c.cmdAuth(string(line[len(wire.CmdAuth):]))
		}
		if c.s.cfg.Auth {
			c.reply(wire.ErrAuthRequired)
			return endAuthRequired
		}
	} else if isAuth {
		c.reply(wire.ErrAuthNotFirst)
		return notEnded
	}
	switch {
	case string(line) == wire.CmdRandom:
		c.cmdRandom()
	case string(line) == wire.CmdClassified:
		c.cmdClassified()
	case string(line) == wire.CmdNotify:
		c.cmdNotify(false)
	case string(line) == wire.CmdNotifyItems:
		c.s.mu.Lock()
		ided := c.cl != nil
		c.s.mu.Unlock()
		if !ided {
			c.reply(wire.ErrNotIdentified) // an item's id means something only after hello
			break
		}
		c.cmdNotify(true)
	case string(line) == wire.CmdStopNotify:
		c.s.mu.Lock()
		c.s.setNotifying(c, false)
		c.s.mu.Unlock()
		c.reply(wire.OK)
	case bytes.HasPrefix(line, []byte(wire.CmdSeen+" ")):
		c.cmdSeen(string(line[len(wire.CmdSeen)+1:]))
	case string(line) == wire.CmdHello || bytes.HasPrefix(line, []byte(wire.CmdHello+" ")):
		return c.cmdHello(string(bytes.TrimPrefix(line, []byte(wire.CmdHello))))
	default:
		c.reply(wire.ErrUnknownCommand)
	}
	return notEnded
}

// cmdRandom and cmdClassified queue an identified reply while they hold
// the hub's lock, as fan-out queues a push: on one connection, items then
// reach the wire in the order they were handed out, and a client that
// keeps the highest id per kind never takes an older one for a repeat.
func (c *conn) cmdRandom() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.random
	p := c.pos()
	p.random = max(p.random, it.ID)
	if c.cl == nil {
		c.reply(it.Value)
		return
	}
	c.replyItem(it)
}

func (c *conn) cmdClassified() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
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
	switch {
	case c.cl == nil:
		c.reply(it.Value) // "" when no ad exists: an empty line
	case it.ID == 0:
		c.reply("")
	default:
		c.replyItem(it)
	}
}

// cmdNotify enters notification mode, with items in the pushes when items
// is true (notif items, after hello). The OK, then one announcement per
// item the client has not fetched, must reach the wire before any
// notification fanned out after this point, and none fanned out before
// this point may follow them (they are counted in the announcement).
// Pushes with items are the exception: each handed its item out when it
// was queued, so none is dropped; they go before the OK.
func (c *conn) cmdNotify(items bool) {
	s := c.s
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// Earlier replies of this batch go first, in the same write as the OK
	// and the announcements: one write per fetch cycle instead of two.
	c.omu.Lock()
	if c.closed() {
		c.omu.Unlock()
		return
	}
	buf := c.out
	c.out = nil
	c.omu.Unlock()
	if h := s.cfg.onAnnounce; h != nil {
		h()
	}

	s.mu.Lock()
	hadItems := c.state.Load()&stItems != 0
	s.setNotifying(c, true)
	if items {
		c.state.Or(stItems)
		c.cl.items = c
	} else {
		c.state.And(^uint32(stItems))
		if c.cl != nil && c.cl.items == c {
			c.cl.items = nil
		}
	}
	p := c.pos()
	first := sort.Search(len(s.ads), func(i int) bool { return s.ads[i].ID > p.ad })
	unread := s.ads[first:] // s.ads is only appended to and resliced: this view stays valid
	var random store.Item
	if s.random.ID > p.random {
		random = s.random
	}
	withItems := 0 // the unread ads announced with their items: the oldest
	if items {
		// Announced with their items: handed out, as fetches would. At
		// most maxAnnouncedItems: a client back after a week must not
		// get megabytes in one go, which pushes queued meanwhile would
		// overflow (dropped, it would come back to the same backlog);
		// the rest are announced plainly and fetched, or announced with
		// their items by the next notif items.
		withItems = min(len(unread), maxAnnouncedItems)
		if withItems > 0 {
			p.ad = unread[withItems-1].ID
		}
		p.random = max(p.random, random.ID)
	}
	c.omu.Lock()
	if hadItems {
		buf = append(buf, c.out...) // handed out already: never dropped
	}
	c.out = c.out[:0] // plain notifications; the announcement replaces them
	c.omu.Unlock()
	s.mu.Unlock()

	size := 4 + len(unread)*(len(wire.NotifClassified)+2) + len(wire.NotifRandom) + 2
	if items {
		// Each line with its id and value, as far as one chunk goes: a
		// stranger's notif items with nothing unread costs a few bytes.
		size += len(random.Value) + 21
		for _, ad := range unread[:withItems] {
			if size += len(ad.Value) + 21; size >= flushAt {
				break
			}
		}
	}
	buf = slices.Grow(buf, min(flushAt, size))
	buf = append(buf, wire.OK+"\r\n"...)
	for i, ad := range unread {
		if i < withItems {
			buf = wire.AppendPushItem(buf, wire.KindClassified, ad.ID, ad.Value)
			buf = append(buf, '\r', '\n')
		} else {
			buf = append(buf, wire.NotifClassified+"\r\n"...)
		}
		if len(buf) >= flushAt-64 {
			if c.writeLocked(buf) != nil {
				return
			}
			buf = buf[:0]
		}
	}
	switch {
	case random.ID == 0:
	case items:
		buf = wire.AppendPushItem(buf, wire.KindRandom, random.ID, random.Value)
		buf = append(buf, '\r', '\n')
	default:
		buf = append(buf, wire.NotifRandom+"\r\n"...)
	}
	_ = c.writeLocked(buf)
}

// maxAnnouncedItems bounds the unread ads that one notif items announces
// with their items (docs/PROTOCOL.md, Items in pushes): as many as hark's
// client fetches in one cycle.
const maxAnnouncedItems = 64

// cmdHello identifies the connection: "hello <id>" is answered OK,
// "hello <id> v2" with the extended reply, which says against which store
// (epoch) ids are valid, whether this server knows the id, and the idle
// timeout of notification mode, so that the client re-enters it in time.
//
// Saying hello costs a stranger's id nothing durable: the id gets a
// position in memory, shared by its connections and gone with the last
// of them, and the store keeps it only once the id acknowledges (seen).
// A million strangers' hellos thus write nothing, while a client that
// acknowledged once keeps its position however many come after it.
//
// When the store cannot say where the client is (JetStream unavailable),
// the connection ends with wire.ErrStoreUnavailable: starting the client
// from now would lose what it has not read, and a client told to come
// back loses nothing.
func (c *conn) cmdHello(arg string) endReason {
	s := c.s
	id, v2, ok := parseHello(arg)
	if !ok || wire.ValidateClientID(id) != nil {
		c.reply(wire.ErrBadClientID)
		return notEnded
	}
	// A client with another connection here has its position in memory:
	// the store is read only for one that has none, and read after all
	// when that connection ended meanwhile.
	var cl *client
	var known bool
	for cl == nil {
		s.mu.Lock()
		already, live := c.cl != nil, s.clients[id] != nil
		s.mu.Unlock()
		if already {
			c.reply(wire.ErrAlreadyHello)
			return notEnded
		}
		var rec store.Client
		var found bool
		if !live {
			var err error
			rec, found, err = s.st.Client(id)
			switch {
			case errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrClosed):
				s.rl.Warn("identification: cannot read the client's position; it is told to come back", "client", id, "err", err)
				c.reply(wire.ErrStoreUnavailable)
				return endStoreUnavailable
			case err != nil:
				// A damaged record: telling the client to come back would
				// refuse it for ever; it starts from now, and its next
				// seen writes a sound record.
				s.rl.Error("identification: reading the client's position failed; it starts from now", "client", id, "err", err)
			}
		}
		s.mu.Lock()
		cl = s.clients[id]
		if cl == nil && live {
			s.mu.Unlock()
			continue // its other connection ended meanwhile: read the store
		}
		known = cl != nil || found
		if cl == nil {
			cl = &client{id: id, pos: c.own, acked: c.own} // a new client: unread is what came since it connected
			if found {
				cl.pos = cursor{ad: rec.Ad, random: rec.Random}
				cl.acked, cl.stored = cl.pos, true
			}
			s.clients[id] = cl
		}
	}
	if cl.refs > 0 {
		// The id has another connection here, which may be one its
		// client has left (a laptop back from suspend, say) without the
		// server knowing: what was handed out there but not acknowledged
		// is handed out again here, and it gets no more pushes with
		// items (client.items). A connection still in use gets plain
		// pushes, and items again once it re-enters notif items; the
		// client drops the repeats by id.
		cl.pos, cl.items = cl.acked, nil
	}
	cl.refs++
	c.cl = cl
	snap, stored := cl.acked, cl.stored
	// The newest item when the connection opened: where a new id starts.
	latest := max(c.own.ad, c.own.random)
	s.mu.Unlock()
	if stored {
		c.persist(id, snap) // records that it was seen
	}
	if !v2 {
		c.reply(wire.OK)
		return notEnded
	}
	c.omu.Lock()
	c.out = wire.AppendHello(c.out, wire.Hello{Epoch: s.st.Epoch(), Latest: latest, New: !known, Idle: s.cfg.IdleTimeout, PushItems: true})
	c.out = append(c.out, '\r', '\n')
	c.omu.Unlock()
	return notEnded
}

// parseHello splits hello's argument: " <id>", or " <id> v2".
func parseHello(arg string) (id string, v2, ok bool) {
	id, ok = cutSpace(arg)
	if !ok {
		return "", false, false
	}
	if rest, found := strings.CutSuffix(id, " "+wire.HelloV2); found {
		return rest, true, true
	}
	return id, false, true
}

// cmdSeen takes the client's acknowledgement of every item it received
// with an id up to n, and stages it for the disk. Only items actually
// handed out can be acknowledged: n beyond them acknowledges what was
// handed out.
func (c *conn) cmdSeen(arg string) {
	s := c.s
	// Decimal without a sign or a leading zero: ParseUint takes no sign,
	// so the first byte tells the rest (no string made to compare).
	n, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || n == 0 || arg[0] == '0' {
		c.reply(wire.ErrBadSeenID)
		return
	}
	s.mu.Lock()
	cl := c.cl
	var snap cursor
	write := false
	if cl != nil {
		a := cursor{ad: max(cl.acked.ad, min(n, cl.pos.ad)), random: max(cl.acked.random, min(n, cl.pos.random))}
		// The first acknowledgement stores the id, even one that moves
		// nothing (a client acknowledging where it starts): from then on
		// its position outlives its connections.
		write = a != cl.acked || !cl.stored
		cl.acked, cl.stored = a, true
		snap = a
	}
	s.mu.Unlock()
	if cl == nil {
		c.reply(wire.ErrNotIdentified)
		return
	}
	if write {
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

// commitPosition writes the identified client's acknowledged position to
// the store and waits, at most goingAwayWait and no longer than Shutdown's
// context, until it is there: the client is about to be told to go to
// another server of the store.
func (c *conn) commitPosition() {
	s := c.s
	s.mu.Lock()
	id, snap, stored := c.cl.id, c.cl.acked, c.cl.stored
	parent := s.shutCtx
	s.mu.Unlock()
	if !stored {
		return // nothing acknowledged: nothing to write
	}
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, goingAwayWait)
	defer cancel()
	if err := s.st.StageClient(id, store.Client{Ad: snap.ad, Random: snap.random, Seen: time.Now(), Source: sourceKey(c.sk.remote())}).Wait(ctx); err != nil {
		s.rl.Warn("going away: a client's position is not written; another server may offer it items again", "err", err)
	}
}

// goingAwayWait bounds commitPosition: the connections of a shutdown wait
// together, for one group commit.
const goingAwayWait = 2 * time.Second

// persist stages an identified client's position for the store's next
// group commit, without waiting for the disk: the reply goes out at once.
// Until the commit lands (within a tenth of a second; an Append carries it
// too) a crash can only cost a repeat, which the client drops by id.
// A failed commit is logged through the store's OnCommitError handler.
// The store keeps a new id only within its budgets (per source, in all);
// beyond them the id keeps its position in memory while it is connected.
// The source goes with every write, not only the first: a store that
// refused a new id (its source's budget spent) must be able to refuse it
// again.
func (c *conn) persist(id string, p cursor) {
	c.s.st.StageClient(id, store.Client{Ad: p.ad, Random: p.random, Seen: time.Now(), Source: sourceKey(c.sk.remote())})
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
	if c.closed() {
		c.omu.Unlock()
		return false, false
	}
	if len(c.out)+len(line) > c.s.cfg.MaxQueue {
		c.omu.Unlock()
		c.end(endQueueFull, nil)
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
		defer c.recoverWriter()
		c.omu.Lock()
		c.scheduled = false
		c.omu.Unlock()
		_ = c.flush()
	})
}

// recoverWriter is run's recover for a goroutine that only writes to c:
// it logs the panic and ends c, whose owner then tears it down.
func (c *conn) recoverWriter() {
	if v := recover(); v != nil {
		c.s.rl.Error("panic while writing to a connection", "remote", c.sk.remote(), "panic", v, "stack", string(debug.Stack()))
		c.end(endPanic, nil)
	}
}

// writeQueuedNow writes the queue without waiting, and reports whether it
// is done: false leaves what the socket did not take at the queue's front
// for a flush. c.wmu must be held.
func (c *conn) writeQueuedNow() bool {
	c.omu.Lock()
	if c.closed() {
		c.omu.Unlock()
		return true
	}
	c.scheduled = false
	buf := c.out
	c.out = nil
	c.omu.Unlock()
	n, err := c.sk.writeNow(buf)
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
	c.end(endWriteFailed, err)
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
		if c.closed() {
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
// timeout: a client that takes nothing for that long is dropped. c.wmu
// must be held.
func (c *conn) writeLocked(buf []byte) error {
	n, err := c.sk.writeNow(buf)
	if err == nil {
		return nil
	}
	if errors.Is(err, errWouldBlock) {
		err = c.sk.writeWait(buf[n:], c.s.cfg.WriteTimeout)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.end(endWriteTimeout, err)
	default:
		c.end(endWriteFailed, err)
	}
	return err
}
