// Package netclient is hark's protocol client. Conn is one connection:
// commands matched to replies in order (pipelined when several are in
// flight), and pushes routed to a handler whatever state the connection is
// in. It trusts nothing the server sends: a line that cannot be the reply
// to the command at the head of the queue is a stray, counted and ignored,
// and a server that floods it with lines nobody asked for is read more
// slowly, so it cannot pin the client's CPU.
package netclient

import (
	"bytes"
	"context"
	"crypto/tls"
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

	"github.com/harkapp/hark/internal/hostport"
	"github.com/harkapp/hark/internal/ratelog"
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

// ErrLateHello closes a connection on which the server accepted hello
// after the client had taken another line for hello's answer (a banner
// that started with ERR, say): the server now sends item ids the client
// would not expect. Identify again on a new connection, or go without.
var ErrLateHello = errors.New("the server accepted hello after another line had been taken for its answer")

// ProtocolError says the server broke the protocol badly enough that the
// connection cannot go on (a line too long, invalid UTF-8, no reply in
// time, a malformed push with an item).
type ProtocolError struct {
	Msg string
	err error // what found it malformed, if anything (wire.ErrInvalid's kind)
}

func (e *ProtocolError) Error() string { return "protocol error: " + e.Msg }

func (e *ProtocolError) Unwrap() error { return e.err }

// ServerError is an ERR reply. A farewell that means something more
// specific (ErrAuthRequired, ErrAuthFailed, ErrServerWantsTLS…) unwraps
// to it, for errors.Is.
type ServerError struct {
	Line string
	err  error
}

func (e *ServerError) Error() string {
	if e.err != nil {
		return e.err.Error() + " (server answered " + strconv.Quote(e.Line) + ")"
	}
	return "server answered " + strconv.Quote(e.Line)
}

func (e *ServerError) Unwrap() error { return e.err }

// Options configure a Conn. Zero fields take the defaults.
type Options struct {
	// OnNotify receives each plain push (wire.KindRandom or
	// KindClassified), from the reading goroutine, in order. It must not
	// block. Pushes that carry their item go to Items instead.
	OnNotify func(wire.Kind)
	// QueuedItems bounds the items that pushes carried (after
	// NotifyItemsCmd) held until the user takes them from Items (default
	// 1024: about 1 MiB at most, an ad being at most 1000 bytes). When it
	// is full the connection stops reading until one is taken: see Items.
	QueuedItems int
	// ReplyTimeout bounds how long the oldest command may wait for its
	// reply before the peer is taken for dead and the connection closed
	// (default 30s). Context deadlines bound each call separately.
	ReplyTimeout time.Duration
	// UnsolicitedRate and UnsolicitedBurst bound the lines nobody asked
	// for (pushes and strays) that are read at full speed: a burst, then a
	// rate per second (defaults 20,000 and 1,000). Beyond them the reader
	// slows down, and TCP slows the server. The burst covers announcing a
	// server's whole retention of 10,000 ads at once.
	UnsolicitedRate  float64
	UnsolicitedBurst int
	Logger           *slog.Logger
	// TLS configures the TLS of a tls://HOST:PORT address: its roots (a
	// CA for a private deployment), a client certificate. nil takes the
	// system's roots. The address alone says whether TLS is spoken: this
	// is ignored for a plaintext one. Verification cannot be skipped, and
	// the version is TLS 1.2 at least, whatever it says.
	TLS *tls.Config
	// Token, when not "", is presented with "auth <token>" as the
	// connection's first command; Dial waits for its answer. A server that
	// does not know auth (ERR unknown command) is served without. Dial
	// refuses to send a token without TLS to a host other than localhost
	// or a loopback IP (ErrTokenInClear).
	Token string
}

// Defaults for Options.
const (
	DefaultReplyTimeout     = 30 * time.Second
	DefaultUnsolicitedRate  = 1000
	DefaultUnsolicitedBurst = 20000
	DefaultQueuedItems      = 1024
)

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
	helloSent  bool    // a hello went out: a later "OK hello" is no stray
	authOK     bool    // the server accepted the token
	pending    pending // pushes since the last notif's OK, for TakePushes
	stalled    bool    // the reader waits for room in items, not for the server
	err        error   // set once the connection is closed

	// itemsAsked: a notif items went out. Only then is a line that looks
	// like a push with an item taken for one; before, it is an unknown
	// push (a stray), as for a client that never heard of them, and
	// nothing fills a queue that nobody reads.
	itemsAsked atomic.Bool
	items      chan PushedItem // pushed items, in the order read, until the user takes them
	seq        uint64          // lines dispatched so far; owned by the reader

	strays atomic.Int64
	pushed chan struct{} // one token: pending has something
	quit   chan struct{} // closed by fail, wakes a throttled reader
	done   chan struct{} // closed when the reader has exited
	timer  *time.Timer   // reply deadline for the head of the queue
	rl     *ratelog.Logger
}

// pending is what pushes announced since the last notif's OK.
type pending struct {
	random bool
	ads    int
}

type cmdKind int

const (
	cmdRandom cmdKind = iota
	cmdClassified
	cmdOK     // stop_notif
	cmdNotify // notif: its OK also resets the pushes pending
	// notif items: like notif, or an ERR from a server that does not
	// offer items in pushes (or not before hello)
	cmdNotifyItems
	cmdSeen
	cmdHello   // hello <id>: OK
	cmdHelloV2 // hello <id> v2: OK hello epoch=… latest=…
	cmdAuth    // auth <token>: OK, or ERR unknown command from a server without auth
)

type call struct {
	kind  cmdKind
	line  string
	res   chan result
	since time.Time
}

type result struct {
	item  Item
	hello wire.Hello // of a hello v2
	err   error
	seq   uint64 // the reply's place among the lines read (PushedItem's seq)
}

// PushedItem is an item a push carried (wire.ParsePushItem), as Items
// delivers it.
type PushedItem struct {
	Item
	// seq is the line's place among the lines the connection read, so
	// that a Session can hand pushed and fetched items over in the order
	// the server sent them: a newer item first would make the older one
	// look like a repeat.
	seq uint64
}

// Dial connects to a hark server at addr, HOST:PORT or tls://HOST:PORT
// (see ParseAddr), runs the TLS handshake of a TLS address and, with
// opts.Token, presents the token and waits for the answer, all under ctx.
//
// A TLS server that answers in plaintext is told apart: ErrServerNotTLS
// for a port without TLS, the farewell's *ServerError for a refusal
// (too many connections). A certificate that fails verification returns
// an error that errors.As takes for its x509 error. A token refused is
// ErrAuthFailed (ErrTokenExpired, …).
func Dial(ctx context.Context, addr string, opts Options) (*Conn, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if opts.Token != "" {
		if err := checkToken(opts.Token); err != nil {
			return nil, err
		}
		if !a.TLS && !a.Loopback() {
			return nil, fmt.Errorf("not sending the token to %s without TLS (use %s%s): %w", a.HostPort, TLSScheme, a.HostPort, ErrTokenInClear)
		}
	}
	var d net.Dialer
	d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3}
	nc, err := d.DialContext(ctx, "tcp", a.HostPort)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if a.TLS {
		tc, err := handshake(ctx, nc, a, opts.TLS)
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	c, auth := newConn(nc, opts)
	if opts.Token == "" {
		return c, nil
	}
	err = c.Err() // ended before auth went out
	if auth != nil {
		select {
		case r := <-auth.res:
			err = r.err
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return c, nil
}

// New runs the protocol over an established connection, which the Conn
// then owns. With opts.Token, it writes auth before it returns, and
// commands queue behind it; an auth refused ends the connection with
// ErrAuthFailed (…). A token is refused (ErrTokenInClear, the connection
// ended before anything is written) over TCP to a non-loopback peer,
// unless nc is a *tls.Conn.
func New(nc net.Conn, opts Options) *Conn {
	c, _ := newConn(nc, opts)
	return c
}

// newConn is New, and returns the auth command in flight, if any.
func newConn(nc net.Conn, opts Options) (*Conn, *call) {
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = DefaultReplyTimeout
	}
	if opts.UnsolicitedRate <= 0 {
		opts.UnsolicitedRate = DefaultUnsolicitedRate
	}
	if opts.UnsolicitedBurst <= 0 {
		opts.UnsolicitedBurst = DefaultUnsolicitedBurst
	}
	if opts.QueuedItems <= 0 {
		opts.QueuedItems = DefaultQueuedItems
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		nc: nc, opts: opts, log: opts.Logger, rl: ratelog.New(opts.Logger, 0),
		pushed: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		items: make(chan PushedItem, opts.QueuedItems),
	}
	c.timer = time.AfterFunc(time.Hour, c.replyTimedOut)
	c.timer.Stop()
	go c.readLoop()
	if opts.Token == "" {
		return c, nil
	}
	if err := checkToken(opts.Token); err != nil {
		c.fail(err)
		return c, nil
	}
	if _, isTLS := nc.(*tls.Conn); !isTLS {
		if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok && !hostport.IsLoopbackIP(ta.AddrPort().Addr()) {
			c.fail(fmt.Errorf("not sending the token to %s without TLS: %w", ta, ErrTokenInClear))
			return c, nil
		}
	}
	calls, err := c.send([]Cmd{Cmd(wire.CmdAuth + " " + opts.Token)})
	if err != nil {
		return c, nil // c has failed with err
	}
	return c, calls[0]
}

// Authenticated reports whether the server accepted the connection's
// token. It is false without one, and on a server that does not know
// auth, which serves the connection without.
func (c *Conn) Authenticated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.authOK
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
	c.rl.Close()
	return nil
}

// Pushed receives a value when a push has arrived since the last
// TakePushes.
func (c *Conn) Pushed() <-chan struct{} { return c.pushed }

// TakePushes returns what pushes have announced since the last call, or
// since the OK of the last notif, whichever came later, and starts
// counting afresh. Right after notif's OK the server announces every
// unread ad and a newer random number, so pushes read before that OK are
// covered: however many arrive while a fetch cycle is pending, they add
// up to one more cycle, never to one per push.
func (c *Conn) TakePushes() (random bool, ads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending
	c.pending = pending{}
	return p.random, p.ads
}

// Items delivers, in the order read, each item a push carried: after
// NotifyItemsCmd, every announcement and push of notification mode
// carries its item, which the server has then handed out (the read
// position moved), so it must reach the user: acknowledge it with SeenCmd
// once it has. They may arrive while any reply is awaited (one queued
// before a stop_notif comes before its OK). Items the connection read
// before it ended stay
// in the channel, for the user to take after Done.
//
// The queue holds Options.QueuedItems. When it is full, the connection
// stops reading until an item is taken: nothing read is dropped, TCP
// slows the server down, and a server that cannot wait drops the
// connection, then offers what was not acknowledged again on the next.
// Replies queue behind the items, without counting against the reply
// timeout while the user is the one who is late: a user that waits for a
// reply must keep taking items meanwhile (Session does).
func (c *Conn) Items() <-chan PushedItem { return c.items }

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

// NotifyItems enters notification mode with items in the pushes, which
// Items then delivers: only after Hello, on a server whose reply offered
// it (wire.Hello.PushItems). Another server answers a ServerError, and
// the connection stays as it was.
func (c *Conn) NotifyItems(ctx context.Context) error {
	_, err := c.Do(ctx, NotifyItemsCmd)
	return err
}

// StopNotify leaves notification mode.
func (c *Conn) StopNotify(ctx context.Context) error {
	_, err := c.Do(ctx, StopNotifyCmd)
	return err
}

// Hello identifies the connection (hark's extension) and returns what the
// server told of its store. It asks for the extended reply first ("hello
// <id> v2"); a hark server from before epochs refuses that form with ERR
// bad client id, and Hello then identifies with the plain form, whose OK
// tells nothing: the result's Epoch is then "". A version-1 server answers
// a ServerError (ERR unknown command), or nothing, which the reply timeout
// ends like any other silence. Lines that cannot be hello's answer, a
// banner "OK" or "Welcome!" for instance, are strays. From hello's OK on,
// replies carry item ids (the switch follows the wire: commands pipelined
// behind hello are parsed with ids).
func (c *Conn) Hello(ctx context.Context, clientID string) (wire.Hello, error) {
	if err := wire.ValidateClientID(clientID); err != nil {
		return wire.Hello{}, err
	}
	r, err := c.do(ctx, []Cmd{HelloV2Cmd(clientID)})
	var se *ServerError
	if errors.As(err, &se) && se.Line == wire.ErrBadClientID {
		// The id is valid (checked above), so the server knows hello but
		// not its second word.
		_, err = c.do(ctx, []Cmd{HelloCmd(clientID)})
		return wire.Hello{}, err
	}
	if err != nil {
		return wire.Hello{}, err
	}
	return r[0].hello, nil
}

// Cmd is a command line for Do, which pipelines several in one write.
type Cmd string

// The commands.
const (
	RandomCmd     Cmd = wire.CmdRandom
	ClassifiedCmd Cmd = wire.CmdClassified
	NotifyCmd     Cmd = wire.CmdNotify
	StopNotifyCmd Cmd = wire.CmdStopNotify
	// NotifyItemsCmd enters notification mode with items in the pushes
	// (see NotifyItems and Items).
	NotifyItemsCmd Cmd = wire.CmdNotifyItems
)

// HelloCmd is the plain identification command for clientID, answered OK.
func HelloCmd(clientID string) Cmd { return Cmd(wire.CmdHello + " " + clientID) }

// HelloV2Cmd asks for the extended reply, which tells the store's epoch.
func HelloV2Cmd(clientID string) Cmd { return HelloCmd(clientID) + " " + wire.HelloV2 }

// SeenCmd acknowledges, after hello, every item received with an id up to
// id. The server answers OK at once and writes the position soon after.
func SeenCmd(id uint64) Cmd { return Cmd(wire.CmdSeen + " " + strconv.FormatUint(id, 10)) }

func (c Cmd) kind() cmdKind {
	switch c {
	case RandomCmd:
		return cmdRandom
	case ClassifiedCmd:
		return cmdClassified
	case NotifyCmd:
		return cmdNotify
	case NotifyItemsCmd:
		return cmdNotifyItems
	}
	switch {
	case isAuth(c):
		return cmdAuth
	case strings.HasPrefix(string(c), wire.CmdSeen+" "):
		return cmdSeen
	case strings.HasPrefix(string(c), wire.CmdHello+" ") && strings.HasSuffix(string(c), " "+wire.HelloV2):
		return cmdHelloV2
	case strings.HasPrefix(string(c), wire.CmdHello+" "):
		return cmdHello
	}
	return cmdOK
}

// check refuses what would put other than exactly one command line on the
// wire: the reply queue must match what the server reads.
func (c Cmd) check() error {
	if c == "" || len(c) > wire.MaxLine || strings.ContainsAny(string(c), "\r\n") {
		if isAuth(c) {
			return errors.New("netclient: an auth command is not a single command line")
		}
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
	rs, err := c.do(ctx, cmds)
	items := make([]Item, len(rs))
	for i, r := range rs {
		items[i] = r.item
	}
	return items, err
}

func (c *Conn) do(ctx context.Context, cmds []Cmd) ([]result, error) {
	calls, err := c.start(ctx, cmds)
	if calls == nil {
		return nil, err
	}
	rs := make([]result, len(calls))
	for i, cl := range calls {
		select {
		case r := <-cl.res:
			if r.err != nil {
				return rs[:i], r.err
			}
			rs[i] = r
		case <-ctx.Done():
			return rs[:i], ctx.Err()
		}
	}
	return rs, nil
}

// start checks cmds and sends them, unless ctx has ended. It returns the
// calls to wait for, or nil (nothing to wait for) and why.
func (c *Conn) start(ctx context.Context, cmds []Cmd) ([]*call, error) {
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
	return c.send(cmds)
}

// send queues cmds and writes them in one write. It returns nil and the
// connection's error when it has already failed; the calls when they were
// queued, whose results then tell of a failed write.
func (c *Conn) send(cmds []Cmd) ([]*call, error) {
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
		switch calls[i].kind {
		case cmdHello, cmdHelloV2:
			c.helloSent = true
		case cmdNotifyItems:
			// Before the write, so before any push it makes the server send.
			c.itemsAsked.Store(true)
		case cmdAuth:
			calls[i].line = authLine // the token goes in no message
		}
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
	return calls, nil
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
	close(c.quit)
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
		switch {
		case c.stalled:
			// The reply may well be there, behind items the user has not
			// taken: the server is not the one who is late.
			c.timer.Reset(c.opts.ReplyTimeout)
		case wait < c.opts.ReplyTimeout:
			c.timer.Reset(c.opts.ReplyTimeout - wait)
		default:
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
	b := bucket{rate: c.opts.UnsolicitedRate, burst: float64(c.opts.UnsolicitedBurst), tokens: float64(c.opts.UnsolicitedBurst), at: time.Now()}
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
		if !c.dispatch(line) {
			if wait := b.take(time.Now()); wait > 0 && !c.throttle(wait) {
				return // closed while waiting; fail has run
			}
		}
	}
}

// bucket is a token bucket for the lines nobody asked for.
type bucket struct {
	rate, burst, tokens float64
	at                  time.Time
}

// take takes a token, and returns how long to wait before reading on
// when there was none: long enough for a batch of tokens, so that a
// flood costs a timer per hundred lines, not one per line.
func (b *bucket) take(now time.Time) time.Duration {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	batch := min(100, b.burst)
	return time.Duration((batch - b.tokens) / b.rate * float64(time.Second))
}

// throttle waits before the next read, and reports false if the
// connection closed meanwhile.
func (c *Conn) throttle(wait time.Duration) bool {
	c.rl.Warn("the server sends more lines than were asked for: reading more slowly", "addr", c.nc.RemoteAddr(), "pause", wait.Round(time.Millisecond))
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.quit:
		return false
	}
}

// dispatch routes one line: a plain push to the pending pushes and
// OnNotify, a push with an item to Items, a reply to the command at the
// head of the queue if it can be that command's reply, anything else to
// the stray count. It reports whether the line answered a command (or
// ended the connection); pushes and strays are what a flooding server
// sends.
func (c *Conn) dispatch(line []byte) (reply bool) {
	c.seq++
	if bytes.HasPrefix(line, []byte(wire.NotifPrefix)) {
		switch string(line) {
		case wire.NotifRandom:
			c.notify(wire.KindRandom)
		case wire.NotifClassified:
			c.notify(wire.KindClassified)
		default:
			if !c.itemsAsked.Load() {
				c.stray(line, "unknown push")
				return false
			}
			k, id, v, ok, err := wire.ParsePushItem(string(line))
			switch {
			case !ok:
				c.stray(line, "unknown push")
			case err != nil:
				// It handed an item out, which cannot be told: ignoring it
				// would lose that item without a trace. Ending the
				// connection unacknowledged makes the server offer it
				// again, to a client that then says why it cannot take it.
				c.fail(&ProtocolError{Msg: fmt.Sprintf("malformed push with an item %q: %v", clip(line), err), err: err})
				return true
			default:
				c.queueItem(PushedItem{Item: Item{Kind: k, Value: v, ID: id}, seq: c.seq})
			}
		}
		return false
	}
	if wire.IsFarewell(string(line)) {
		// The server closes after it, whatever was asked.
		c.fail(farewell(string(line)))
		return true
	}
	c.mu.Lock()
	var head *call
	var res result
	ok := false
	if len(c.queue) > 0 {
		head = c.queue[0]
		// Replies carry ids from the hello's OK on: the queue is in wire
		// order, so everything behind the hello was read by the server
		// after it.
		res, ok = match(head, string(line), c.identified)
	}
	if !ok {
		late := wire.IsHelloReply(string(line)) && c.helloSent && !c.identified
		c.mu.Unlock()
		switch {
		case late:
			c.fail(ErrLateHello)
			return true
		case head == nil:
			c.stray(line, "no command waiting")
		default:
			c.stray(line, "cannot be the reply to "+strconv.Quote(head.line))
		}
		return false
	}
	var pe *ProtocolError
	if errors.As(res.err, &pe) {
		// A malformed reply to hello: the server now sends ids, but
		// against which store is unknown. Nothing more can be trusted here.
		c.mu.Unlock()
		c.fail(res.err)
		return true
	}
	if (head.kind == cmdHello || head.kind == cmdHelloV2) && res.err == nil {
		c.identified = true
	}
	if head.kind == cmdAuth && res.err == nil {
		if string(line) == wire.OK {
			c.authOK = true
		} else {
			c.log.Debug("the server does not know auth: going on without a token", "addr", c.nc.RemoteAddr())
		}
	}
	res.seq = c.seq
	if (head.kind == cmdNotify || head.kind == cmdNotifyItems) && res.err == nil {
		// What follows is the announcement of everything unfetched.
		c.pending = pending{}
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
	return true
}

// queueItem hands a pushed item to Items. When the queue is full, it
// waits for room, reading nothing meanwhile, or for the connection to
// end: the item was handed out to this client, so it is never dropped
// while the connection lives, and memory stays bounded. Dropping the
// connection instead would cost a reconnection for a user that is
// only briefly late; a server that cannot wait drops it anyway.
func (c *Conn) queueItem(p PushedItem) {
	select {
	case c.items <- p:
		return
	default:
	}
	c.rl.Warn("pushed items are not taken as fast as they arrive: reading stops until they are", "addr", c.nc.RemoteAddr(), "queued", cap(c.items))
	c.mu.Lock()
	c.stalled = true
	c.mu.Unlock()
	select {
	case c.items <- p:
	case <-c.quit: // the connection ended: the server offers it again
	}
	c.mu.Lock()
	c.stalled = false
	if len(c.queue) > 0 {
		// Its reply could not be read meanwhile: time it from now.
		c.queue[0].since = time.Now()
	}
	c.mu.Unlock()
}

func (c *Conn) notify(k wire.Kind) {
	c.mu.Lock()
	if k == wire.KindRandom {
		c.pending.random = true
	} else {
		c.pending.ads++
	}
	c.mu.Unlock()
	select {
	case c.pushed <- struct{}{}:
	default:
	}
	if c.opts.OnNotify != nil {
		c.opts.OnNotify(k)
	}
}

func (c *Conn) stray(line []byte, why string) {
	c.strays.Add(1)
	c.rl.Debug("ignoring a stray line", "line", clip(line), "why", why)
}

// match decides whether line can be the reply to cl, using what the
// protocol guarantees: OK answers only notif, notif items, stop_notif,
// seen, auth and the plain hello; "OK hello …" only hello v2; ERR only
// hello, seen, notif items and auth (the other commands are always
// valid, so an ERR line before their reply is a banner or noise, and
// taking it for their reply would shift every reply after it onto the
// wrong command); random? answers a decimal number; no item is ever OK,
// ERR… or notif:. Auth's failures are
// farewells, handled before: what answers it here is OK, ERR unknown
// command (a server without auth: the connection goes on), or ERR auth
// must be the first command.
func match(cl *call, line string, ided bool) (result, bool) {
	if strings.HasPrefix(line, wire.ErrPrefix) {
		switch cl.kind {
		case cmdHello, cmdHelloV2, cmdSeen, cmdNotifyItems:
			return result{err: &ServerError{Line: line}}, true
		case cmdAuth:
			switch line {
			case wire.ErrUnknownCommand:
				return result{}, true
			case wire.ErrAuthNotFirst:
				return result{err: &ServerError{Line: line}}, true
			}
		}
		return result{}, false
	}
	switch cl.kind {
	case cmdOK, cmdNotify, cmdNotifyItems, cmdHello, cmdSeen, cmdAuth:
		return result{}, line == wire.OK
	case cmdHelloV2:
		if !wire.IsHelloReply(line) {
			return result{}, false
		}
		h, err := wire.ParseHello(line)
		if err != nil {
			// The server did identify the connection; its reply just
			// cannot be trusted to say against which store.
			return result{err: &ProtocolError{Msg: "the reply to hello is malformed: " + err.Error()}}, true
		}
		return result{hello: h}, true
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
