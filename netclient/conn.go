// Package netclient is hark's protocol client. Conn is one connection:
// commands matched to replies in order (pipelined when several are in
// flight), and pushes routed to a handler whatever state the connection is
// in. It trusts nothing the server sends: a line that cannot be the reply
// to the command at the head of the queue is a stray, counted and ignored.
package netclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/harkapp/hark/wire"
)

// Item is what random? or classified? returned. ID is 0 unless the
// connection identified itself with Hello; Empty is set when classified?
// answered that no ad exists.
type Item struct {
	Kind  wire.Kind
	Value string
	ID    uint64
	Empty bool
}

// ErrClosed is returned by calls on a closed connection.
var ErrClosed = errors.New("connection closed")

// ErrNoHello is returned by Hello when the server did not answer in time,
// as a version-1 server may not. The connection is then closed: replies to
// later commands could not be parsed safely on it (a late OK switches them
// to carrying ids). Reconnect without hello.
var ErrNoHello = errors.New("no reply to hello: the server may speak only version 1; reconnect without it")

// ProtocolError says the server broke the protocol badly enough that the
// connection cannot go on (a line too long, invalid UTF-8, no reply in
// time).
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "protocol error: " + e.Msg }

// ServerError is an ERR reply.
type ServerError struct{ Line string }

func (e *ServerError) Error() string { return "server answered " + strconv.Quote(e.Line) }

// Options configure a Conn. Zero fields take the defaults.
type Options struct {
	// OnNotify receives each push (wire.KindRandom or KindClassified), from
	// the reading goroutine, in order. It must not block.
	OnNotify func(wire.Kind)
	// ReplyTimeout bounds how long the oldest command may wait for its
	// reply before the peer is taken for dead and the connection closed
	// (default 30s). Context deadlines bound each call separately.
	ReplyTimeout time.Duration
	Logger       *slog.Logger
}

// Conn is a protocol connection. Its methods are safe for concurrent use;
// commands from several goroutines are queued and pipelined.
type Conn struct {
	nc   net.Conn
	opts Options
	log  *slog.Logger

	wmu sync.Mutex // serialises writes and keeps the queue in write order

	mu         sync.Mutex
	queue      []*call // commands written, oldest first, awaiting replies
	identified bool
	err        error // set once the connection is closed

	strays atomic.Int64
	done   chan struct{} // closed when the reader has exited
	timer  *time.Timer   // reply deadline for the head of the queue
}

type cmdKind int

const (
	cmdRandom cmdKind = iota
	cmdClassified
	cmdOK // notif, stop_notif
	cmdHello
)

type call struct {
	kind  cmdKind
	line  string
	res   chan result
	since time.Time
}

type result struct {
	item Item
	err  error
}

// Dial connects to a hark server at addr (host:port).
func Dial(ctx context.Context, addr string, opts Options) (*Conn, error) {
	var d net.Dialer
	d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return New(nc, opts), nil
}

// New runs the protocol over an established connection, which the Conn
// then owns.
func New(nc net.Conn, opts Options) *Conn {
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{nc: nc, opts: opts, log: opts.Logger, done: make(chan struct{})}
	c.timer = time.AfterFunc(time.Hour, c.replyTimedOut)
	c.timer.Stop()
	go c.readLoop()
	return c
}

// Strays counts the lines ignored because they could not be the reply to
// the command waiting for one.
func (c *Conn) Strays() int64 { return c.strays.Load() }

// Done is closed once the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection and waits for its reader to exit. Calls in
// flight return ErrClosed.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	<-c.done
	return nil
}

// Random asks for the latest random number.
func (c *Conn) Random(ctx context.Context) (Item, error) {
	r, err := c.Do(ctx, RandomCmd)
	return first(r, err)
}

// Classified asks for the oldest unread classified ad.
func (c *Conn) Classified(ctx context.Context) (Item, error) {
	r, err := c.Do(ctx, ClassifiedCmd)
	return first(r, err)
}

// Notify enters notification mode.
func (c *Conn) Notify(ctx context.Context) error {
	_, err := c.Do(ctx, NotifyCmd)
	return err
}

// StopNotify leaves notification mode.
func (c *Conn) StopNotify(ctx context.Context) error {
	_, err := c.Do(ctx, StopNotifyCmd)
	return err
}

// Hello identifies the connection (hark's extension). A version-1 server
// answers with an error, or not at all: the caller bounds the wait with
// ctx; when its deadline passes first, Hello closes the connection and
// returns ErrNoHello. After the OK, replies carry item ids (the switch follows the
// wire: commands pipelined behind hello are parsed with ids).
func (c *Conn) Hello(ctx context.Context, clientID string) error {
	if err := wire.ValidateClientID(clientID); err != nil {
		return err
	}
	_, err := c.Do(ctx, HelloCmd(clientID))
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		c.fail(ErrNoHello)
		return fmt.Errorf("%w (%w)", ErrNoHello, err)
	}
	return err
}

// Cmd is a command line for Do, which pipelines several in one write.
type Cmd string

// The commands.
const (
	RandomCmd     Cmd = wire.CmdRandom
	ClassifiedCmd Cmd = wire.CmdClassified
	NotifyCmd     Cmd = wire.CmdNotify
	StopNotifyCmd Cmd = wire.CmdStopNotify
)

// HelloCmd is the identification command for clientID.
func HelloCmd(clientID string) Cmd { return Cmd(wire.CmdHello + " " + clientID) }

// SeenCmd acknowledges, after hello, every item received with an id up to
// id; the server answers OK once that is on disk.
func SeenCmd(id uint64) Cmd { return Cmd(wire.CmdSeen + " " + strconv.FormatUint(id, 10)) }

func (c Cmd) kind() cmdKind {
	switch c {
	case RandomCmd:
		return cmdRandom
	case ClassifiedCmd:
		return cmdClassified
	}
	if strings.HasPrefix(string(c), wire.CmdHello+" ") {
		return cmdHello
	}
	return cmdOK
}

// check refuses what would put other than exactly one command line on the
// wire: the reply queue must match what the server reads.
func (c Cmd) check() error {
	if c == "" || len(c) > wire.MaxLine || strings.ContainsAny(string(c), "\r\n") {
		return fmt.Errorf("netclient: %q is not a single command line", clip([]byte(c)))
	}
	return nil
}

func first(r []Item, err error) (Item, error) {
	if err != nil {
		return Item{}, err
	}
	return r[0], nil
}

// Do writes cmds in one write and waits for all their replies, returned in
// order (the Item of an OK reply is zero). On an error it returns the
// replies received before it with the error: a fetched item must not be
// thrown away, since the server may already count it as read. When ctx
// ends first, the replies still in flight are read and discarded.
func (c *Conn) Do(ctx context.Context, cmds ...Cmd) ([]Item, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	for _, cmd := range cmds {
		if err := cmd.check(); err != nil {
			return nil, err
		}
	}
	// A caller whose time is up must not write: a write cut short by its
	// deadline would break the connection for every other caller.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	calls := make([]*call, len(cmds))
	var buf []byte
	c.wmu.Lock()
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		c.wmu.Unlock()
		return nil, err
	}
	now := time.Now()
	for i, cmd := range cmds {
		calls[i] = &call{kind: cmd.kind(), line: string(cmd), res: make(chan result, 1), since: now}
		buf = append(buf, cmd...)
		buf = append(buf, '\r', '\n')
	}
	if len(c.queue) == 0 {
		c.timer.Reset(c.opts.ReplyTimeout)
	}
	c.queue = append(c.queue, calls...)
	c.mu.Unlock()
	// The write deadline is the connection's, not the caller's: a peer
	// that takes nothing for the reply timeout is dead for everyone.
	_ = c.nc.SetWriteDeadline(now.Add(c.opts.ReplyTimeout))
	_, err := c.nc.Write(buf)
	c.wmu.Unlock()
	if err != nil {
		c.fail(fmt.Errorf("write: %w", err))
	}

	items := make([]Item, len(calls))
	for i, cl := range calls {
		select {
		case r := <-cl.res:
			if r.err != nil {
				return items[:i], r.err
			}
			items[i] = r.item
		case <-ctx.Done():
			return items[:i], ctx.Err()
		}
	}
	return items, nil
}

// fail closes the connection with err (the first error wins) and fails
// every queued call.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	q := c.queue
	c.queue = nil
	c.timer.Stop()
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, cl := range q {
		cl.res <- result{err: err}
	}
}

func (c *Conn) replyTimedOut() {
	c.mu.Lock()
	var late bool
	if len(c.queue) > 0 {
		wait := time.Since(c.queue[0].since)
		if wait < c.opts.ReplyTimeout {
			c.timer.Reset(c.opts.ReplyTimeout - wait)
		} else {
			late = true
		}
	}
	c.mu.Unlock()
	if late {
		c.fail(&ProtocolError{Msg: fmt.Sprintf("no reply within %v: the server is gone or stuck", c.opts.ReplyTimeout)})
	}
}

func (c *Conn) readLoop() {
	defer close(c.done)
	r := wire.NewReader(c.nc)
	for {
		line, err := r.ReadLine()
		if err != nil {
			switch {
			case errors.Is(err, wire.ErrLineTooLong):
				err = &ProtocolError{Msg: "the server sent a line over 4096 bytes"}
			case errors.Is(err, io.EOF):
				err = fmt.Errorf("server closed the connection: %w", io.EOF)
			case errors.Is(err, io.ErrUnexpectedEOF):
				err = fmt.Errorf("server closed the connection in the middle of a line: %w", err)
			}
			c.fail(err)
			return
		}
		if !utf8.Valid(line) {
			c.fail(&ProtocolError{Msg: "the server sent a line that is not UTF-8"})
			return
		}
		c.dispatch(line)
	}
}

// dispatch routes one line: a push to OnNotify, a reply to the command at
// the head of the queue if it can be that command's reply, anything else
// to the stray count.
func (c *Conn) dispatch(line []byte) {
	if bytes.HasPrefix(line, []byte(wire.NotifPrefix)) {
		switch string(line) {
		case wire.NotifRandom:
			c.notify(wire.KindRandom)
		case wire.NotifClassified:
			c.notify(wire.KindClassified)
		default:
			c.stray(line, "unknown push")
		}
		return
	}
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.mu.Unlock()
		c.stray(line, "no command waiting")
		return
	}
	head := c.queue[0]
	// Replies carry ids from the hello's OK on: the queue is in wire order,
	// so everything behind the hello was read by the server after it.
	res, ok := match(head, string(line), c.identified)
	if !ok {
		c.mu.Unlock()
		c.stray(line, "cannot be the reply to "+strconv.Quote(head.line))
		return
	}
	if head.kind == cmdHello && res.err == nil {
		c.identified = true
	}
	c.queue = c.queue[1:]
	if len(c.queue) == 0 {
		c.timer.Stop()
		c.queue = nil
	} else {
		c.queue[0].since = time.Now() // its reply is next: time it from here
		c.timer.Reset(c.opts.ReplyTimeout)
	}
	c.mu.Unlock()
	head.res <- res
}

func (c *Conn) notify(k wire.Kind) {
	if c.opts.OnNotify != nil {
		c.opts.OnNotify(k)
	}
}

func (c *Conn) stray(line []byte, why string) {
	c.strays.Add(1)
	c.log.Debug("ignoring a stray line", "line", clip(line), "why", why)
}

// match decides whether line can be the reply to cl, using what the
// protocol guarantees: OK answers only notif, stop_notif and hello;
// random? answers a decimal number; no item is ever OK, ERR… or notif:.
func match(cl *call, line string, ided bool) (result, bool) {
	if len(line) >= len(wire.ErrPrefix) && line[:len(wire.ErrPrefix)] == wire.ErrPrefix {
		return result{err: &ServerError{Line: line}}, true
	}
	switch cl.kind {
	case cmdOK, cmdHello:
		return result{}, line == wire.OK
	case cmdRandom:
		id, v, ok := splitID(ided, line)
		if !ok {
			return result{}, false
		}
		if _, err := wire.ParseRandom(v); err != nil {
			return result{}, false
		}
		return result{item: Item{Kind: wire.KindRandom, Value: v, ID: id}}, true
	default: // classified?
		if line == wire.OK {
			return result{}, false
		}
		if line == "" {
			return result{item: Item{Kind: wire.KindClassified, Empty: true}}, true
		}
		id, v, ok := splitID(ided, line)
		if !ok || wire.ValidateAd(v) != nil {
			return result{}, false
		}
		return result{item: Item{Kind: wire.KindClassified, Value: v, ID: id}}, true
	}
}

func splitID(ided bool, line string) (uint64, string, bool) {
	if !ided {
		return 0, line, true
	}
	id, v, err := wire.ParseItem(line)
	return id, v, err == nil && id != 0
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
