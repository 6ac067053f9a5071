package bench

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/harkapp/hark/wire"
)

// maxBatch bounds the ads one cycle fetches, as hark's own client does;
// the rest stay unread and are announced again after the cycle's notif.
const maxBatch = 64

// writeTimeout bounds a client's write: a server that takes nothing for
// this long is stuck.
const writeTimeout = 10 * time.Second

// A client is one connection and one goroutine, which reads every line and
// reacts to pushes itself: no reader goroutine, no channel per command.
// That keeps ten thousand of them cheap in memory and CPU, which matters
// when the bench shares the machine with the server it measures. Each
// holds a 512-byte read buffer, a bit per item and its samples.
type client struct {
	r  *run
	i  int
	id string // the hello id; "" in version 1

	nc net.Conn
	br *bufio.Reader

	// Replies expected, in the order the commands were written.
	expect []expect
	eh     int // expect[eh] is the next one

	ready   bool // the setup's notif has been answered
	inCycle bool // stop_notif … notif written, its notif's OK not yet read

	// Notification times. Each notif: line of the bench's kind is a token
	// standing for one unread item, in publish order: the announcements
	// after a notif's OK are the unread ads in id order, and the pushes
	// that follow are for the ads published after it. tokens are the
	// unread items' tokens; a cycle takes its fetches' tokens out into
	// fetchTok, in the order the replies will come. A push that crosses
	// the cycle on the wire (sent before the server read stop_notif) is
	// for an ad that stays unread and is announced again after the notif:
	// its token is kept, and skip drops the announcement that repeats it,
	// so each ad's notif time is the first time this client heard of it.
	tokens   []int64
	fetchTok []int64
	tokI     int
	skip     int

	received, acked uint64 // identified: the highest id received, and acknowledged with seen
	pushItems       bool   // in notification mode with items in pushes (notif items)
	ackedAt         int64  // when seen was last sent (run.since)

	wbuf []byte

	// Results, read by the run once the goroutine has exited.
	got       []uint64 // bit n: item n fetched
	notifUS   []uint32
	fetchUS   []uint32
	dup       int
	foreign   int
	maxBatch  int
	lastFetch int64
	dropped   bool
	err       error
}

type expect uint8

const (
	expOK    expect = iota // stop_notif, seen
	expHello               // hello
	expItem                // classified? or random?
	expNotif               // notif
)

func newClient(r *run, i int) *client {
	// Acknowledgements start at a random point of their period, as hark's
	// client's do: not all at once after the first item.
	c := &client{r: r, i: i, got: make([]uint64, (r.cfg.Items+63)/64), ackedAt: -rand.Int64N(r.ackEvery)}
	if !r.cfg.V1 {
		// A fresh id per run and client: the server has never seen it, so
		// it starts from the moment it connects, as a version-1 client
		// does. (The server keeps these ids for 30 days, or until 100,000
		// newer ones push them out: bench a scratch server.)
		c.id = "bench-" + r.tag + "-" + strconv.Itoa(i)
	}
	return c
}

// server is the host:port the client connects to: the servers take the
// clients in turn.
func (c *client) server() string { return c.r.servers[c.i%len(c.r.servers)] }

func (c *client) has(n int) bool { return c.got[n/64]&(1<<(n%64)) != 0 }
func (c *client) set(n int)      { c.got[n/64] |= 1 << (n % 64) }

// run is the client's goroutine: connect, hello, notif, then the fetch
// cycle until the run closes the connection. sem is the dial slot, given
// back once the client is in notification mode.
func (c *client) run(sem chan struct{}) {
	released := false
	release := func() {
		if !released {
			released = true
			<-sem
		}
	}
	defer release()
	if err := c.setup(); err != nil {
		if c.nc != nil {
			_ = c.nc.Close()
		}
		if !c.r.closing.Load() {
			c.r.setupFailed(fmt.Errorf("client %d of %d: %w", c.i+1, c.r.cfg.Clients, err))
		}
		return
	}
	release()
	c.r.clientReady()
	err := c.loop()
	_ = c.nc.Close()
	if !c.r.closing.Load() {
		c.dropped, c.err = true, err
		c.r.dropped(c)
	}
}

var errOver = errors.New("the run is over")

func (c *client) setup() error {
	cfg := c.r.cfg
	d := net.Dialer{Timeout: cfg.SetupTimeout}
	if la := c.r.src.addr(c.i); la != nil { // not a nil *TCPAddr in the interface
		d.LocalAddr = la
	}
	server := c.server()
	nc, err := d.Dial("tcp", server)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", server, err)
	}
	if cfg.TLS != nil {
		// The handshake is part of what a client costs the server: it is
		// inside the setup, not the measured fetches.
		tc := tls.Client(nc, c.r.tls[c.i%len(c.r.tls)])
		_ = nc.SetDeadline(time.Now().Add(cfg.SetupTimeout))
		if err := tc.Handshake(); err != nil {
			_ = nc.Close()
			return fmt.Errorf("TLS handshake with %s: %w", server, err)
		}
		nc = tc
	}
	if !c.r.track(nc) {
		return errOver
	}
	return c.start(nc)
}

// start identifies the client (unless version 1) and enters notification
// mode on nc.
func (c *client) start(nc net.Conn) error {
	cfg := c.r.cfg
	c.nc, c.br = nc, bufio.NewReaderSize(nc, 512)
	_ = nc.SetDeadline(time.Now().Add(cfg.SetupTimeout))
	buf := c.wbuf[:0]
	if cfg.Token != "" {
		buf = append(append(append(buf, wire.CmdAuth...), ' '), cfg.Token...)
		buf = append(buf, '\r', '\n')
		c.expect = append(c.expect, expOK)
	}
	if c.id != "" {
		buf = append(append(append(buf, wire.CmdHello...), ' '), c.id...)
		buf = append(buf, " "+wire.HelloV2+"\r\n"...)
		c.expect = append(c.expect, expHello)
	}
	if c.id != "" && !cfg.Classic {
		// hello's reply says whether the server offers items in pushes:
		// it is read before notif is chosen, as hark's client does. (A
		// classic client pipelines notif behind hello, as before.)
		if _, err := nc.Write(buf); err != nil {
			return fmt.Errorf("write to %s: %w", c.server(), err)
		}
		buf = buf[:0]
		for c.eh < len(c.expect) {
			line, err := c.readLine()
			if err != nil {
				return c.setupError(err)
			}
			if err := c.handle(line, c.r.since()); err != nil {
				return err
			}
		}
	}
	buf = c.appendNotif(buf)
	c.expect = append(c.expect, expNotif)
	c.wbuf = buf
	if _, err := nc.Write(buf); err != nil {
		return fmt.Errorf("write to %s: %w", c.server(), err)
	}
	for !c.ready {
		line, err := c.readLine()
		if err != nil {
			return c.setupError(err)
		}
		if err := c.handle(line, c.r.since()); err != nil {
			return err
		}
	}
	return nc.SetDeadline(time.Time{})
}

func (c *client) setupError(err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && c.id != "" && c.eh == 0 && c.r.cfg.Token == "":
		return fmt.Errorf("no reply to hello within %v: a version-1 server may not answer it; run with --v1", c.r.cfg.SetupTimeout)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no reply to notif within %v", c.r.cfg.SetupTimeout)
	case errors.Is(err, io.EOF):
		return errors.New("the server closed the connection before the client was in notification mode")
	}
	return err
}

func (c *client) loop() error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		now := c.r.since()
		if err := c.handle(line, now); err != nil {
			return err
		}
		// Act once the announcements of the ads whose tokens are held
		// have all come (skip is 0): a cycle started before would take
		// the rest for news, and fetch those ads twice. They can take
		// more than one read: a batch of announcements is one write, but
		// longer than the read buffer. Beyond that, read what is already
		// here first, so that one cycle fetches it all.
		if !c.inCycle && c.skip == 0 && len(c.tokens) > 0 && !c.lineBuffered() {
			if err := c.cycle(); err != nil {
				return err
			}
		}
	}
}

// readLine returns the next line without its terminator, valid until the
// next call.
func (c *client) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Longer than the buffer (an ad from someone else): gather it,
		// up to the protocol's limit.
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(long) <= wire.MaxLine+2 {
			line, err = c.br.ReadSlice('\n')
			long = append(long, line...)
		}
		if err == nil && len(long) > wire.MaxLine+2 {
			err = errors.New("the server sent a line over 4096 bytes")
		}
		line = long
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// lineBuffered reports whether a whole line is already buffered.
func (c *client) lineBuffered() bool {
	n := c.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := c.br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

func (c *client) handle(line []byte, now int64) error {
	if bytes.HasPrefix(line, []byte(wire.NotifPrefix)) {
		// Only a client that asked for items gets them: the others' plain
		// pushes are not converted to a string to be looked at.
		switch string(line) {
		case c.r.cfg.Kind.Notification():
			c.notified(now)
		case wire.NotifRandom, wire.NotifClassified:
			// The other kind: not this run's.
		default:
			// Only a client that asked for items gets them.
			if k, id, v, ok, err := wire.ParsePushItem(string(line)); c.pushItems && ok {
				if err != nil {
					return err
				}
				return c.pushed(k, id, v, now)
			}
			return fmt.Errorf("unknown push %q", clip(line))
		}
		return nil
	}
	if c.eh == len(c.expect) {
		return fmt.Errorf("the server sent %q with no command waiting", clip(line))
	}
	e := c.expect[c.eh]
	c.eh++
	if bytes.HasPrefix(line, []byte(wire.ErrPrefix)) {
		return c.serverError(e, string(line))
	}
	switch e {
	case expOK:
		if string(line) != wire.OK {
			return fmt.Errorf("the server answered %q where OK was due", clip(line))
		}
	case expHello:
		if string(line) == wire.OK {
			return nil // a server that answers hello plainly: no items in pushes
		}
		h, err := wire.ParseHello(string(line))
		if err != nil {
			return fmt.Errorf("the reply to hello: %w", err)
		}
		c.pushItems = h.PushItems && !c.r.cfg.Classic
	case expNotif:
		if string(line) != wire.OK {
			return fmt.Errorf("the server answered %q to notif", clip(line))
		}
		c.enteredNotif()
	case expItem:
		return c.item(string(line), now)
	}
	return nil
}

func (c *client) serverError(e expect, line string) error {
	switch {
	case line == wire.ErrTooManyConns:
		return fmt.Errorf("the server refused the connection: %q (its --max-conns is below the clients asked for?)", line)
	case line == wire.ErrTooManyFromAddr:
		return fmt.Errorf("the server refused the connection: %q (its --max-conns-per-addr is below the %d clients this run connects from one address?)",
			line, c.r.src.perSource(c.r.cfg.Clients))
	case e == expHello:
		return fmt.Errorf("the server answered %q to hello: it does not know identification; run with --v1", line)
	case wire.IsAuthFarewell(line):
		return fmt.Errorf("the server refused the token: %q (--token-file: a subscribe token of this server)", line)
	}
	return fmt.Errorf("the server answered %q", line)
}

// notified takes a notif: line of the bench's kind.
func (c *client) notified(now int64) {
	switch {
	case c.inCycle:
		c.tokens = append(c.tokens, now) // crossed the cycle: announced again
	case c.skip > 0:
		c.skip-- // the announcement of an ad whose token is kept
	default:
		c.tokens = append(c.tokens, now)
	}
}

// enteredNotif takes the OK of a notif.
func (c *client) enteredNotif() {
	// notif ends every batch; a seen written after it is still due.
	c.expect, c.eh = c.expect[:copy(c.expect, c.expect[c.eh:])], 0
	if !c.ready {
		c.ready = true
		return
	}
	c.inCycle = false
	if c.r.cfg.Kind == wire.KindRandom {
		// random? answered the latest number: a push that crossed the
		// cycle was for that one or an older one. After the OK, a
		// notif: random is news (an announcement of a number published
		// since the random?, or a push).
		c.tokens, c.skip = c.tokens[:0], 0
		return
	}
	// Every ad whose token is held is unread, and older than any ad the
	// server announces without a token here: the first announcements are
	// theirs.
	c.skip = len(c.tokens)
}

// cycle runs the classic fetch cycle in one write: (seen,) stop_notif,
// the fetches, notif.
func (c *client) cycle() error {
	m := len(c.tokens)
	fetches := 1 // random? answers the latest number, whatever the pushes
	if c.r.cfg.Kind == wire.KindClassified {
		m = min(m, maxBatch)
		fetches = m
	}
	if fetches == 1 {
		c.fetchTok = append(c.fetchTok[:0], c.tokens[m-1])
	} else {
		c.fetchTok = append(c.fetchTok[:0], c.tokens[:m]...)
	}
	c.tokens = c.tokens[:copy(c.tokens, c.tokens[m:])]
	c.tokI = 0
	c.maxBatch = max(c.maxBatch, m)

	buf := c.wbuf[:0]
	if c.id != "" && c.received > c.acked {
		// Acknowledge what was received, as hark's client does: at the
		// front of its next batch.
		buf = c.appendSeen(buf, c.r.since())
	}
	buf = append(buf, wire.CmdStopNotify+"\r\n"...)
	c.expect = append(c.expect, expOK)
	fetch := wire.CmdClassified + "\r\n"
	if c.r.cfg.Kind == wire.KindRandom {
		fetch = wire.CmdRandom + "\r\n"
	}
	for range fetches {
		buf = append(buf, fetch...)
		c.expect = append(c.expect, expItem)
	}
	buf = c.appendNotif(buf)
	c.expect = append(c.expect, expNotif)
	c.inCycle = true
	return c.write(buf)
}

// appendNotif appends the command that (re-)enters notification mode.
func (c *client) appendNotif(buf []byte) []byte {
	if c.pushItems {
		return append(buf, wire.CmdNotifyItems+"\r\n"...)
	}
	return append(buf, wire.CmdNotify+"\r\n"...)
}

// appendSeen appends the acknowledgement of everything received, at now.
func (c *client) appendSeen(buf []byte, now int64) []byte {
	buf = strconv.AppendUint(append(buf, wire.CmdSeen+" "...), c.received, 10)
	c.expect = append(c.expect, expOK)
	c.acked, c.ackedAt = c.received, now
	return append(buf, '\r', '\n')
}

// write writes buf, the client's next batch, kept as its write buffer.
func (c *client) write(buf []byte) error {
	c.wbuf = buf
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.nc.Write(buf)
	return err
}

// ackEvery paces the acknowledgements of items that come in pushes, as
// hark's client does (netclient.DefaultAckEvery): a seen at most once a
// minute, or at the front of a fetch cycle.
const ackEvery = int64(time.Minute)

// pushed takes a push that carries its item: notified and fetched at once.
// Items of the other kind are acknowledged, not counted.
func (c *client) pushed(k wire.Kind, id uint64, v string, now int64) error {
	c.received = max(c.received, id)
	if k == c.r.cfg.Kind {
		c.deliver(v, now, now)
	}
	if c.inCycle || c.received <= c.acked || now-c.ackedAt < c.r.ackEvery {
		return nil // a cycle's batch carries it, or it waits for the next
	}
	return c.write(c.appendSeen(c.wbuf[:0], now))
}

// item takes the reply to a fetch.
func (c *client) item(v string, now int64) error {
	var tok int64
	if c.tokI < len(c.fetchTok) {
		tok = c.fetchTok[c.tokI]
	}
	c.tokI++
	if c.id != "" {
		id, val, err := wire.ParseItem(v)
		if err != nil {
			return err
		}
		c.received = max(c.received, id)
		v = val
	}
	c.deliver(v, now, tok)
	return nil
}

// deliver counts an item received at now, whose notification came at tok.
func (c *client) deliver(v string, now, tok int64) {
	if v == "" {
		return // no ad at all on the server: nothing to count
	}
	n := c.r.item(v)
	switch {
	case n < 0:
		c.foreign++
		return
	case c.has(n):
		c.dup++
		return
	}
	c.set(n)
	at := c.r.pubAt[n].Load()
	c.fetchUS = append(c.fetchUS, micros(now-at))
	// The token stands for this item unless the server broke the order
	// (or, for random numbers, the push was for an older number).
	if tok >= at {
		c.notifUS = append(c.notifUS, micros(tok-at))
	}
	c.lastFetch = now
	c.r.fetched(n)
}

// micros converts nanoseconds to whole microseconds.
func micros(ns int64) uint32 {
	switch {
	case ns < 0:
		return 0
	case ns/1000 > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(ns / 1000)
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
