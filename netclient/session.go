package netclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	"github.com/harkapp/hark/internal/ratelog"
	"github.com/harkapp/hark/wire"
)

// Delivery is one item handed to the session's user, once.
type Delivery struct {
	Kind  wire.Kind
	Value string
	ID    uint64    // 0 when the server does not give ids (version 1)
	Time  time.Time // when the session received it
	// Current marks an item that is not news: what the server already
	// held when this client first met it, or the latest number and ad
	// again after a restart. Show it (a menu's "latest"), do not announce
	// it as new. Each is handed over at most once per session.
	Current bool
}

// State is what the session is doing, for a status line.
type State struct {
	Connected bool
	// Addr is the address connected to; while not connected, the one
	// that just failed (Err says why). With several addresses, one of
	// them, as written in SessionOptions.Addr.
	Addr       string
	Identified bool          // while connected: items published while away are kept for this client
	RetryIn    time.Duration // while not connected: the wait before the next try
	Err        error         // while not connected: why
}

// Event is what a session tells its user, in order: a change of state or
// an item. Exactly one field is set.
type Event struct {
	State *State
	Item  *Delivery
}

// SessionOptions configure a Session. Zero fields take the defaults.
type SessionOptions struct {
	// Addr is the server: host:port, or tls://host:port (see ParseAddr);
	// or several servers of one store (gateways), separated by commas
	// (see ParseAddrs), which the session fails over between as
	// docs/PROTOCOL.md's Several addresses says. Marks are kept for the
	// list as one server (MarksKey).
	Addr     string
	ClientID string // identification; "" speaks plain version 1
	// Identity, when set, supplies ClientID and keeps, per server, the
	// marks of the last items delivered, so that a restarted client
	// repeats nothing. Without it they are kept for the session only.
	Identity *Identity
	// Refresh is how often, at most, notification mode is re-entered, to
	// stay ahead of the server's idle timeout (default 29m). A server that
	// tells its idle timeout in hello's reply makes the session refresh
	// sooner when that timeout needs it (see refreshFor); one that does
	// not (version 1, or a session that does not identify) gets Refresh,
	// which must then be below its timeout.
	Refresh time.Duration
	// AckEvery is how often, at most, the session acknowledges with a
	// seen of its own the items that pushes carried (docs/PROTOCOL.md,
	// Items in pushes; default 1m); a batch it sends anyway carries it
	// sooner. The server offers what was not acknowledged again after it
	// restarts or the client reconnects, and the marks drop those repeats
	// by id, so a rare acknowledgement costs nothing but them; a frequent
	// one costs the server a read, a reply and a position written per
	// desktop, which at many desktops is most of its work.
	AckEvery     time.Duration
	ReplyTimeout time.Duration // see Options (default 30s); hello waits as long as any command
	MinBackoff   time.Duration // first reconnection delay (default 1s), doubled up to
	MaxBackoff   time.Duration // this (default 60s); reset after a healthy minute
	// IdentifyRetry is how long the session speaks version 1 to a server
	// that does not identify it (it answered ERR unknown command, or
	// identification failed twice in a row) before it tries again on its
	// next connection (default 1h).
	IdentifyRetry time.Duration
	// TLS configures TLS for a tls:// address (see Options.TLS); when set,
	// it wins over Conn.TLS.
	TLS *tls.Config
	// Token, when set, is called before each connection for the token to
	// present ("" for none), so that a token saved while the session runs
	// (hark login) is used from the next try on. An error is a failure
	// that retrying soon cannot fix, as below.
	Token func(ctx context.Context) (string, error)
	// ConfigRetry is the wait after a failure that retrying soon cannot
	// fix, because a setting or a token must change first: the server
	// requires a token or refused it, TLS spoken on one side only, a
	// certificate that does not verify, a bad address, Token failing
	// (default 5m). Reconnect still retries at once.
	ConfigRetry time.Duration
	Logger      *slog.Logger
	// Conn, when set, configures each connection: its limits, say (its
	// Logger is the session's; ReplyTimeout, when set above, wins).
	Conn Options
}

// Defaults for SessionOptions.
const (
	DefaultRefresh       = 29 * time.Minute
	DefaultAckEvery      = time.Minute
	DefaultIdentifyRetry = time.Hour
	DefaultConfigRetry   = 5 * time.Minute
)

const (
	// maxFetch bounds the ads fetched in one cycle; the rest stay unread
	// and are announced again when notification mode is re-entered.
	maxFetch = 64
	// identifyTries is how many identification failures in a row make the
	// session speak version 1 to a server for IdentifyRetry.
	identifyTries = 2
	// A fetch cycle that pushes asked for and that brought nothing new
	// makes the next one wait, from minQuiet doubling to maxQuiet: a server
	// that floods pushes gets a few cycles a second at most.
	minQuiet = 100 * time.Millisecond
	maxQuiet = 5 * time.Second
	// minRefresh bounds how often a server's idle timeout can make the
	// session re-enter notification mode: a server saying idle=1 cannot
	// make it spin.
	minRefresh = time.Second
	// itemStreak bounds how many pushed items the session hands over in
	// a row before it looks at anything else (an acknowledgement due, a
	// reconnection asked for): a burst is acknowledged once, after it,
	// and a server that pushes without pause does not starve the rest.
	itemStreak = 256
)

// refreshFor is the period at which a session configured to refresh every
// configured re-enters notification mode on a server whose idle timeout
// is idle (0: the server did not tell it): configured, or sooner when
// that would not stay ahead of idle. The margin below idle is a tenth of
// it, at least a second (for the network and timers) and at most a
// minute (30m gives 29m, the classic period); the period is rounded down
// to whole seconds and is never under minRefresh, so with idle at 1s the
// server may end the mode just before each refresh, whose announcements
// then cover what it missed.
func refreshFor(configured, idle time.Duration) time.Duration {
	if idle <= 0 {
		return configured
	}
	margin := min(max(idle/10, time.Second), time.Minute)
	return min(configured, max((idle-margin).Truncate(time.Second), minRefresh))
}

// Session is the higher-level client the tray and `hark watch` use: it
// connects, identifies itself, fetches, sits in notification mode, fetches
// each announced item and hands it over once, in order, reconnecting with
// backoff for as long as it runs. On a server that offers items in pushes
// (wire.Hello.PushItems) it enters the mode with notif items and takes
// each item from its push, without the fetch cycle. It reports through
// one channel, Events, which its user reads from the loop that owns its
// state.
type Session struct {
	opts      SessionOptions
	log       *slog.Logger
	book      markBook
	key       string // the server, for book: MarksKey(opts.Addr)
	members   []Addr // the addresses of a list (nil for one): their marks are taken over once
	addrErr   error  // opts.Addr does not parse: every try fails with it
	fo        *failover
	moves     *ratelog.Logger // "failing over to X", once per move and window, then counted
	reconnect chan struct{}
	events    chan Event

	// Owned by Run's goroutine.
	marks   Marks          // of the server's store, under its epoch
	met     bool           // a catch-up went through: what was there then has been shown
	shown   [2]shown       // per kind (kindIndex): what was last handed over
	fails   int            // identification failures in a row
	v1Since time.Time      // when the session fell back to version 1 (zero: it identifies)
	quiet   time.Duration  // the wait after a fetch cycle that brought nothing new
	nagged  map[string]int // warnings said once per session, by reason
	told    time.Duration  // the last idle timeout said to shorten the refresh, logged once
	reports []*connReport  // per address: why it is not connected, logged once per kind with a count
	wasUp   bool           // the current connection was up (its Connected state emitted)
}

// shown is the last item of a kind handed over in this session.
type shown struct {
	ok    bool
	value string
}

// NewSession returns a session; Run starts it.
func NewSession(opts SessionOptions) *Session {
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.AckEvery <= 0 {
		opts.AckEvery = DefaultAckEvery
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(60*time.Second, opts.MinBackoff)
	}
	if opts.IdentifyRetry <= 0 {
		opts.IdentifyRetry = DefaultIdentifyRetry
	}
	if opts.ConfigRetry <= 0 {
		opts.ConfigRetry = DefaultConfigRetry
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		opts: opts, log: opts.Logger, book: memBook{},
		reconnect: make(chan struct{}, 1), events: make(chan Event),
		nagged: map[string]int{}, key: MarksKey(opts.Addr),
		moves: ratelog.New(opts.Logger, reportEvery),
	}
	addrs := []string{opts.Addr}
	if as, err := ParseAddrs(opts.Addr); err != nil {
		s.addrErr = err
	} else {
		addrs = make([]string, len(as))
		for i, a := range as {
			addrs[i] = a.String()
		}
		if len(as) > 1 {
			s.members = as
		}
	}
	s.fo = newFailover(addrs)
	for _, a := range addrs {
		s.reports = append(s.reports, newConnReport(s.log, a))
	}
	if opts.Identity != nil {
		s.opts.ClientID = opts.Identity.ID()
		s.book = opts.Identity
	}
	return s
}

// Events delivers the session's states and items, in order, while Run
// runs, and is closed when Run returns. Run waits for each to be taken,
// so an item is only counted as shown once its user has it; an item still
// waiting when the session ends is offered again next time.
func (s *Session) Events() <-chan Event { return s.events }

// Reconnect drops the current connection and connects again at once, e.g.
// after the machine woke from suspend, when the old connection is likely
// dead but would take a while to be found so.
func (s *Session) Reconnect() {
	select {
	case s.reconnect <- struct{}{}:
	default:
	}
}

var (
	errReconnect = errors.New("reconnect requested")
	// errRetryNow ends a connection that should be replaced at once, not
	// after a backoff: identification went wrong, but the server answers.
	errRetryNow = errors.New("identification failed; trying again")
)

// Run runs the session until ctx ends, then returns nil. It may be called
// once; Events is closed when it returns.
func (s *Session) Run(ctx context.Context) error {
	defer close(s.events)
	defer s.moves.Close()
	defer func() { // what was counted and not said yet
		for _, r := range s.reports {
			r.flush()
		}
	}()
	backoff := time.Duration(0)
	for {
		start := time.Now()
		s.wasUp = false
		at := s.fo.cur
		err := s.runConn(ctx)
		if ctx.Err() != nil {
			return nil
		}
		slow := retryLater(err)
		gone := errors.Is(err, ErrServerGoingAway)
		var wait time.Duration
		if errors.Is(err, errReconnect) || errors.Is(err, errRetryNow) {
			backoff = 0 // at once, to the same address
		} else {
			switch over, allSlow := s.fo.fail(slow, gone); {
			case over && allSlow:
				// A setting or a token must change first: retry slowly
				// instead of hammering the servers. Once fixed, a failure
				// of another kind starts the backoff over.
				backoff, wait = 0, s.opts.ConfigRetry
			case over, s.wasUp && !gone:
				// Every address failed in this round; or a connection
				// that was up ended, which every client of that server
				// sees at the same moment: the jitter spreads them over
				// the others.
				if time.Since(start) > time.Minute {
					backoff = s.opts.MinBackoff // it was healthy: start over
				} else {
					backoff = min(max(2*backoff, s.opts.MinBackoff), s.opts.MaxBackoff)
				}
				// Full jitter around the step keeps many clients of a
				// restarted server from reconnecting in lockstep.
				wait = backoff/2 + time.Duration(mrand.Int64N(int64(backoff/2)+1))
			}
		}
		// Otherwise another address is tried at once: the server said it
		// is going away, or this one could not be reached and that one
		// has not failed in this round.
		from := s.fo.addrs[at]
		s.reports[at].failed(err, s.wasUp, slow, wait)
		if to := s.fo.addr(); to != from {
			s.moves.Info("failing over to "+to, "from", from, "err", errorText(err, from), "retry_in", wait.Round(time.Millisecond))
		}
		if !s.emit(ctx, Event{State: &State{Addr: from, RetryIn: wait, Err: err}}) {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.reconnect:
			t.Stop()
		case <-t.C:
		}
	}
}

// emit hands ev to the user, and reports false when ctx ended first.
func (s *Session) emit(ctx context.Context, ev Event) bool {
	select {
	case s.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// link is one connection and what the session knows of it.
type link struct {
	c         *Conn
	ided      bool
	establish uint64        // identified as new: acknowledge this id at once, so the server keeps the position
	received  uint64        // identified: the highest id received, handed over or dropped as a repeat
	acked     uint64        // identified: the highest id acknowledged with seen
	lastWrite time.Time     // of the last batch, for the refresh
	refresh   time.Duration // how often notification mode is re-entered on this connection (refreshFor)
	// items: the server offered items in pushes, and notification mode
	// is entered with notif items: pushes carry the items, which no
	// fetch follows, and the session acknowledges them by itself.
	items   bool
	ackedAt time.Time   // when the last seen went out, which paces the next
	ahead   *PushedItem // read after the last reply of a batch: handed over next
}

// ackDue says when the session acknowledges, with a seen of its own, the
// items pushes carried: AckEvery after the last seen (or the connection's
// start), when any came since.
// Without items in pushes, seen rides on the next batch, as before. The
// time is the monotonic clock's, unlike the refresh's: a wall clock set
// back must not hold acknowledgements back with it.
func (l *link) ackDue(every time.Duration) (time.Time, bool) {
	if !l.items || l.received <= l.acked {
		return time.Time{}, false
	}
	return l.ackedAt.Add(every), true
}

// runConn serves one connection until it fails, ctx ends, or a reconnect
// is requested.
func (s *Session) runConn(ctx context.Context) error {
	// A Reconnect asked for while no connection was up is already served.
	select {
	case <-s.reconnect:
	default:
	}
	opts := s.opts.Conn
	opts.Logger = s.log
	if s.opts.ReplyTimeout > 0 {
		opts.ReplyTimeout = s.opts.ReplyTimeout
	}
	if s.opts.TLS != nil {
		opts.TLS = s.opts.TLS
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if s.opts.Token != nil {
		tok, err := s.opts.Token(dctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &tokenError{err}
		}
		opts.Token = tok
	}
	if s.addrErr != nil {
		return s.addrErr
	}
	c, err := Dial(dctx, s.fo.addr(), opts)
	cancel()
	if err != nil {
		return err
	}
	// The acknowledgements start at a random point of their period:
	// desktops that reconnected together (to a restarted server, say)
	// and then get each item at once do not all acknowledge at once.
	l := &link{c: c, refresh: s.opts.Refresh, ackedAt: time.Now().Add(-mrand.N(s.opts.AckEvery))}
	err = s.useConn(ctx, l)
	c.Close()
	s.drain(ctx, l)
	return err
}

// useConn identifies, catches up and serves l until it fails, ctx ends,
// or a reconnect is requested.
func (s *Session) useConn(ctx context.Context, l *link) error {
	if err := s.identify(ctx, l); err != nil {
		return err
	}
	if err := s.catchUp(ctx, l); err != nil {
		return err
	}
	c := l.c
	s.wasUp = true
	s.fo.connected()
	for i, r := range s.reports {
		if i == s.fo.cur {
			r.connected()
		} else {
			r.flush() // the others' counts, now that one works
		}
	}
	s.log.Info("connected", "addr", s.fo.addr(), "identified", l.ided, "authenticated", c.Authenticated(), "push_items", l.items)
	if !s.emit(ctx, Event{State: &State{Connected: true, Addr: s.fo.addr(), Identified: l.ided}}) {
		return ctx.Err()
	}
	return s.serve(ctx, l)
}

// drain hands over the items pushes carried that the connection read
// before it ended, once it has (its reader has exited, so nothing more
// comes): the server handed them out to this client, and might not offer
// them again to the next connection if it has not yet noticed this one
// closed. They are not acknowledged; when they are offered again, they
// are repeats. Nothing is handed over once ctx has ended: the session is
// closing and must not wait for its user.
func (s *Session) drain(ctx context.Context, l *link) {
	if ctx.Err() != nil {
		return
	}
	if !s.handAhead(ctx, l) {
		return
	}
	for {
		select {
		case p := <-l.c.Items():
			if !s.handPushed(ctx, l, p) {
				return
			}
		default:
			return
		}
	}
}

// identify says hello, unless the session speaks version 1 to this
// server for now, and takes the server's word on what is news.
func (s *Session) identify(ctx context.Context, l *link) error {
	if s.opts.ClientID == "" {
		return nil
	}
	if !s.v1Since.IsZero() {
		if time.Since(s.v1Since) < s.opts.IdentifyRetry {
			return nil
		}
		s.log.Info("trying identification again", "addr", s.fo.addr())
	}
	h, err := l.c.Hello(ctx, s.opts.ClientID)
	var se *ServerError
	switch {
	case err == nil:
		s.fails, s.v1Since = 0, time.Time{}
		l.ided = true
		l.items = h.PushItems
		s.adopt(h, l)
		s.pace(h.Idle, l)
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &se) && se.Line == wire.ErrUnknownCommand:
		// A version-1 server. The connection goes on without: a reply
		// taken for hello's that was in fact a banner shows up as a late
		// hello, which ends this connection and the next goes without.
		s.fallBack("the server does not know identification")
		return nil
	case errors.As(err, &se) && wire.IsFarewell(se.Line), !identificationFailure(err):
		return err // a full server, a lost connection: retry as usual
	}
	s.fails++
	s.log.Warn("identification failed", "addr", s.fo.addr(), "err", err, "try", s.fails)
	if s.fails >= identifyTries {
		s.fallBack(fmt.Sprintf("identification failed %d times in a row", s.fails))
	}
	return fmt.Errorf("%w: %w", errRetryNow, err)
}

// identificationFailure tells an answer that cannot identify (an ERR, a
// malformed or late reply, silence from a server that is still there) from
// a connection that was lost, which says nothing of identification.
func identificationFailure(err error) bool {
	var se *ServerError
	var pe *ProtocolError
	return errors.As(err, &se) || errors.As(err, &pe) || errors.Is(err, ErrLateHello)
}

// fallBack makes the session speak version 1 to the server until
// IdentifyRetry has passed. Never staying disconnected from a server that
// answers matters more than identification.
func (s *Session) fallBack(why string) {
	s.fails, s.v1Since = 0, time.Now()
	s.log.Warn(why+": speaking version 1 to it, so items published while this client is away will be missed; identification is tried again later",
		"addr", s.fo.addr(), "retry_after", s.opts.IdentifyRetry)
}

// adopt takes the server's word on which of its items are news. Marks
// are only valid under the epoch they were made in: a new epoch (another
// server, a wiped or restored store), or a latest id below them, voids
// them. A client id the server does not know starts from now, so nothing
// the server holds is news then.
func (s *Session) adopt(h wire.Hello, l *link) {
	old, known := s.marksKept()
	m := old
	var why string
	switch {
	case h.Epoch == "": // a server from before epochs: ids as they come
		if known && old.Epoch != "" {
			why = "the server no longer tells its store's epoch"
			m = Marks{}
		}
	case known && old.Epoch == "" && !h.New && h.Latest >= old.max():
		// Marks from before epochs: this server's, most likely, since it
		// knows this client and has handed out every id in them.
	case known && old.Epoch == h.Epoch && h.Latest < old.max():
		why = fmt.Sprintf("the server's latest item id %d is below the %d this client has seen (a store restored from a backup?)", h.Latest, old.max())
		m = Marks{}
	case known && old.Epoch != h.Epoch:
		why = fmt.Sprintf("the server's store is not the one this client saw last (epoch %s, was %s)", h.Epoch, orNone(old.Epoch))
		m = Marks{}
	case known && h.New && old.max() < h.Latest:
		s.warnOnce("forgotten", "the server no longer knows this client (away longer than it keeps clients?): items published while it was away are missed", "addr", s.fo.addr())
	}
	if why != "" {
		s.log.Warn(why+": earlier marks no longer apply, taking the server's position", "addr", s.fo.addr())
	}
	m.Epoch = h.Epoch
	if h.New {
		// First contact: nothing from before is news. Acknowledging the
		// starting position at once makes the server keep it, so items
		// published after this are kept for this client even if none
		// reaches it before it goes away.
		m.Ad, m.Random = max(m.Ad, h.Latest), max(m.Random, h.Latest)
		l.establish = h.Latest
	}
	s.setMarks(m)
}

// marksKept are the marks kept for the server. A list kept none yet
// takes those of the first of its addresses that has some, from when it
// was used alone: the epoch then confirms them, or voids them.
func (s *Session) marksKept() (Marks, bool) {
	if m, ok := s.book.Marks(s.key); ok {
		return m, true
	}
	for _, a := range s.members {
		if m, ok := s.book.Marks(a.HostPort); ok {
			return m, true
		}
	}
	return Marks{}, false
}

// pace sets how often l re-enters notification mode, given the idle
// timeout the server told (0: not told), and says once per timeout when
// that is sooner than configured.
func (s *Session) pace(idle time.Duration, l *link) {
	l.refresh = refreshFor(s.opts.Refresh, idle)
	if l.refresh >= s.opts.Refresh || idle == s.told {
		return
	}
	s.told = idle
	s.log.Info(fmt.Sprintf("the server ends notification mode after %v idle: refreshing every %v", idle, l.refresh),
		"addr", s.fo.addr(), "configured_refresh", s.opts.Refresh)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (s *Session) warnOnce(key, msg string, args ...any) {
	if s.nagged[key]++; s.nagged[key] == 1 {
		s.log.Warn(msg, args...)
	}
}

func (s *Session) setMarks(m Marks) {
	s.marks = m
	if err := s.book.SetMarks(s.key, m); err != nil {
		s.warnOnce("marks", "cannot record the last items delivered; some may be shown again after a restart", "err", err)
	}
}

// catchUp fetches the latest number and the oldest unread ad, and enters
// notification mode, whose announcements say what else is unread.
func (s *Session) catchUp(ctx context.Context, l *link) error {
	b := batch{random: true, ads: 1, enter: true}
	if l.establish > 0 {
		b.ack = l.establish
	}
	if _, err := s.run(ctx, l, b); err != nil {
		return err
	}
	s.met = true
	return nil
}

// serve sits in notification mode: it hands over the items pushes carry,
// acknowledges them, fetches what plain pushes announce, re-enters the
// mode before the server's idle timeout, and returns when the connection
// fails, ctx ends, or a reconnect is requested.
func (s *Session) serve(ctx context.Context, l *link) error {
	// The refresh is scheduled from the last line written and checked
	// against the wall clock, which keeps counting during suspend, unlike
	// Go's timers (golang/go#24595).
	const maxSleep = 30 * time.Second
	carry := 0  // ads announced beyond the last cycle's maximum
	streak := 0 // pushed items handed over in a row
	for {
		if !s.handAhead(ctx, l) {
			return ctx.Err()
		}
		// Items already read go first, so that a burst is acknowledged
		// once, after it.
		if streak < itemStreak {
			select {
			case p := <-l.c.Items():
				streak++
				if !s.handPushed(ctx, l, p) {
					return ctx.Err()
				}
				continue
			default:
			}
		}
		streak = 0
		due := l.lastWrite.Round(0).Add(l.refresh)
		ackAt, ack := l.ackDue(s.opts.AckEvery)
		if carry == 0 {
			wait := min(time.Until(due), maxSleep)
			if ack {
				wait = min(wait, time.Until(ackAt))
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-s.reconnect:
				t.Stop()
				return errReconnect
			case <-l.c.Done():
				t.Stop()
				return l.c.Err() // runConn hands over what it read before
			case p := <-l.c.Items():
				t.Stop()
				if !s.handPushed(ctx, l, p) {
					return ctx.Err()
				}
				continue
			case <-l.c.Pushed():
				t.Stop()
			case <-t.C:
			}
		}
		random, ads := l.c.TakePushes()
		// A server announces what is unread after each notif, so what
		// was carried is counted again in ads; max, not a sum.
		ads = max(ads, carry)
		pushed := random || ads > 0
		if !pushed && time.Now().Round(0).Before(due) {
			if ack && !time.Now().Before(ackAt) {
				// Nothing else to send: the seen goes alone (run puts it
				// in front of the batch).
				if _, err := s.run(ctx, l, batch{}); err != nil {
					return err
				}
			}
			continue
		}
		// Leave the mode, fetch, re-enter: one write. Re-entering also
		// resets the server's idle timer and re-announces what is unread.
		// With items in pushes, only plain pushes (from a server that
		// sent them before the mode switched) ask for a fetch; a refresh
		// only re-enters, which announces, with their items, whatever
		// the server has not handed out.
		b := batch{leave: !l.items || pushed, random: random, ads: min(ads, maxFetch), enter: true}
		fresh, err := s.run(ctx, l, b)
		if err != nil {
			return err
		}
		carry = ads - b.ads
		if fresh[kindIndex(wire.KindClassified)] < b.ads {
			carry = 0 // an answer was the most recent ad again: none is unread
		}
		if !pushed {
			continue
		}
		if fresh[0]+fresh[1] > 0 {
			s.quiet = 0
			continue
		}
		// Pushes asked for this cycle and it brought nothing new: pushes
		// that crossed a stop_notif, or a server flooding them. Wait a
		// little before the next, while they pile up into one cycle.
		s.quiet = min(max(2*s.quiet, minQuiet), maxQuiet)
		if err := s.pause(ctx, l, s.quiet); err != nil {
			return err
		}
	}
}

// pause waits d, unless the connection or the session ends first. Items
// that pushes carry meanwhile are handed over: only fetches wait.
func (s *Session) pause(ctx context.Context, l *link, d time.Duration) error {
	if !s.handAhead(ctx, l) {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.reconnect:
			return errReconnect
		case <-l.c.Done():
			return l.c.Err()
		case p := <-l.c.Items():
			if !s.handPushed(ctx, l, p) {
				return ctx.Err()
			}
		case <-t.C:
			return nil
		}
	}
}

// batch is one write of commands: in order, an acknowledgement, leaving
// notification mode, the fetches, entering it again.
type batch struct {
	ack    uint64 // seen <ack> first, when not 0
	leave  bool   // stop_notif
	random bool   // random?
	ads    int    // that many classified?
	enter  bool   // notif
}

// cmds are b's commands; entering is with notif items when items.
func (b batch) cmds(items bool) []Cmd {
	var cmds []Cmd
	if b.ack > 0 {
		cmds = append(cmds, SeenCmd(b.ack))
	}
	if b.leave {
		cmds = append(cmds, StopNotifyCmd)
	}
	if b.random {
		cmds = append(cmds, RandomCmd)
	}
	for range b.ads {
		cmds = append(cmds, ClassifiedCmd)
	}
	switch {
	case b.enter && items:
		cmds = append(cmds, NotifyItemsCmd)
	case b.enter:
		cmds = append(cmds, NotifyCmd)
	}
	return cmds
}

// run writes b, with an acknowledgement of what the connection received
// so far in front of it, and hands over the items it fetched, also when
// the batch failed part-way: a reply that did arrive is not thrown away.
// Items that pushes carry meanwhile are handed over too, in the order the
// connection read them. It returns how many of each kind (by kindIndex)
// were news.
//
// The acknowledgement rides on the next batch rather than costing a
// write of its own: the server offers an item again until it is
// acknowledged, so one lost with a connection, a crash, or a session that
// ended before its user took it, comes back (and is dropped here as a
// repeat if it was taken after all). With items in pushes no batch
// follows an item, so serve also sends the seen alone, AckEvery after
// the last one (ackDue).
func (s *Session) run(ctx context.Context, l *link, b batch) (fresh [2]int, err error) {
	if l.ided && l.received > max(l.acked, b.ack) {
		b.ack = l.received
	}
	l.lastWrite = time.Now()
	if b.ack > 0 {
		l.ackedAt = l.lastWrite
	}
	cmds := b.cmds(l.items)
	fresh, replies, err := s.exchange(ctx, l, cmds)
	var se *ServerError
	if err != nil && b.enter && l.items && replies == len(cmds)-1 && errors.As(err, &se) && l.c.Err() == nil {
		// The server offered items in pushes, then refused notif items
		// (a gateway of another version behind the same address, say):
		// the connection is fine, and the classic cycle works on it.
		s.warnOnce("no items", "the server offered items in pushes but refused them: fetching each item instead", "addr", s.fo.addr(), "err", err)
		l.items = false
		l.acked = max(l.acked, b.ack)
		more, err := s.run(ctx, l, batch{enter: true})
		return [2]int{fresh[0] + more[0], fresh[1] + more[1]}, err
	}
	if err != nil {
		return fresh, err
	}
	l.acked = max(l.acked, b.ack)
	return fresh, nil
}

// exchange writes cmds in one write and waits for their replies, handing
// over the items they carry and those that pushes carry meanwhile, in the
// order the connection read them: marks go by the highest id, so a newer
// item handed over first would make an older one look like a repeat. It
// takes pushed items all the while, so that replies queued behind them
// (Conn.Items) come through. It returns how many replies came before an
// error.
func (s *Session) exchange(ctx context.Context, l *link, cmds []Cmd) (fresh [2]int, replies int, err error) {
	calls, err := l.c.start(ctx, cmds)
	if calls == nil {
		return fresh, 0, err
	}
	var r *result // the next reply, not handed over yet
	for replies < len(calls) {
		if r == nil && l.ahead == nil {
			select {
			case res := <-calls[replies].res:
				r = &res
			case p := <-l.c.Items():
				l.ahead = &p
			case <-ctx.Done():
				return fresh, replies, ctx.Err()
			}
		}
		// One of the two is in hand. The other, if the connection read it
		// first, was queued before the one in hand was: it is there now.
		if r == nil {
			select {
			case res := <-calls[replies].res:
				r = &res
			default:
			}
		}
		if l.ahead == nil {
			select {
			case p := <-l.c.Items():
				l.ahead = &p
			default:
			}
		}
		if p := l.ahead; p != nil && (r == nil || p.seq < r.seq) {
			l.ahead = nil
			if !s.handOne(ctx, l, p.Item, &fresh) {
				return fresh, replies, ctx.Err()
			}
			continue
		}
		if r.err != nil {
			return fresh, replies, r.err
		}
		if !s.handOne(ctx, l, r.item, &fresh) {
			return fresh, replies, ctx.Err()
		}
		r = nil
		replies++
	}
	return fresh, replies, nil
}

// handAhead hands over the pushed item that the last batch read after its
// last reply, if any: it comes before anything in Conn.Items. It reports
// false when ctx ended before the user took it.
func (s *Session) handAhead(ctx context.Context, l *link) bool {
	p := l.ahead
	if p == nil {
		return true
	}
	l.ahead = nil
	return s.handPushed(ctx, l, *p)
}

// handPushed hands over an item a push carried: no fetch cycle follows
// it, so its news are not counted.
func (s *Session) handPushed(ctx context.Context, l *link, p PushedItem) bool {
	return s.handOne(ctx, l, p.Item, nil)
}

// handOne hands over it (a reply's, which is zero for OK, or a push's)
// if it is news, or, in the session's first catch-up, the first item of
// each kind even when it is not news (as current); it drops repeats, and
// counts the news in fresh by kindIndex (nil: not counted). It reports
// false when ctx ended before the user took it.
func (s *Session) handOne(ctx context.Context, l *link, it Item, fresh *[2]int) bool {
	if it.Kind == "" || it.Empty {
		return true
	}
	k := kindIndex(it.Kind)
	news := s.isNews(it, l.ided)
	if !news && (s.met || s.shown[k].ok) {
		// A repeat: an item offered again because its acknowledgement
		// was lost, the most recent ad answered when none is unread, or
		// a push that another connection of this id got too. Only the
		// first catch-up shows what is not news, as current.
		if l.ided {
			l.received = max(l.received, it.ID)
		}
		return true
	}
	d := &Delivery{Kind: it.Kind, Value: it.Value, ID: it.ID, Time: time.Now(), Current: !news}
	if !s.emit(ctx, Event{Item: d}) {
		return false
	}
	if l.ided {
		l.received = max(l.received, it.ID)
	}
	s.shown[k] = shown{true, it.Value}
	if news {
		if fresh != nil {
			fresh[k]++
		}
		if l.ided {
			m := s.marks
			m.set(it.Kind, it.ID)
			s.setMarks(m)
		}
	}
	return true
}

// isNews tells a new item from one the user has seen, or that was there
// before the client first met the server. Identified items go by id,
// under the epoch's marks. Version-1 items go by value, which is all that
// protocol allows: what the first catch-up finds is current, later a value
// other than the last shown is news (an ad repeated verbatim right after
// itself is taken for the "most recent ad" answer, not a new ad).
func (s *Session) isNews(it Item, ided bool) bool {
	if ided {
		return it.ID > s.marks.of(it.Kind)
	}
	last := s.shown[kindIndex(it.Kind)]
	return s.met && (!last.ok || last.value != it.Value)
}

func kindIndex(k wire.Kind) int {
	if k == wire.KindRandom {
		return 1
	}
	return 0
}
