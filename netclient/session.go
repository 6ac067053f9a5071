package netclient

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/harkapp/hark/wire"
)

// Delivery is one item handed to the session's user, exactly once.
type Delivery struct {
	Kind  wire.Kind
	Value string
	ID    uint64    // 0 when the server does not give ids (version 1)
	Time  time.Time // when the session fetched it
}

// State is what the session is doing, for a status line.
type State struct {
	Connected bool
	Addr      string
	RetryIn   time.Duration // while not connected: the wait before the next try
	Err       error         // while not connected: why
}

// SessionOptions configure a Session. Zero fields take the defaults.
type SessionOptions struct {
	Addr     string // host:port of the server
	ClientID string // identification; "" speaks plain version 1
	// Identity, when set, supplies ClientID and keeps the last delivered
	// ids across runs, so a restarted client repeats nothing.
	Identity *Identity
	// Refresh is how often notification mode is re-entered, to stay ahead
	// of the server's idle timeout (default 29m; must be below it).
	Refresh      time.Duration
	ReplyTimeout time.Duration // see Options (default 30s)
	HelloTimeout time.Duration // wait for hello's OK before falling back to version 1 (default 3s)
	MinBackoff   time.Duration // first reconnection delay (default 1s), doubled up to
	MaxBackoff   time.Duration // this (default 60s); reset after a healthy minute
	OnState      func(State)   // called on every connection change; must not block
	Logger       *slog.Logger
}

// maxFetch bounds the ads fetched in one cycle; the rest stay unread and
// are announced again when notification mode is re-entered.
const maxFetch = 64

// Session is the higher-level client the tray and `hark watch` use: it
// connects, identifies itself, fetches, sits in notification mode, fetches
// each announced item and delivers it once, in order, reconnecting with
// backoff for as long as it runs.
type Session struct {
	opts      SessionOptions
	log       *slog.Logger
	reconnect chan struct{}

	// Owned by Run's goroutine.
	skipHello bool      // the last connection's hello went unanswered: connect once without it
	lastID    [2]uint64 // per kind, for identified delivery
	received  uint64    // identified: the highest id received, delivered or not
	acked     uint64    // identified: the highest id acknowledged with seen
	lastAd    string    // version 1: the last ad delivered, to skip repeats
	lastRand  string
}

// NewSession returns a session; Run starts it.
func NewSession(opts SessionOptions) *Session {
	if opts.Refresh <= 0 {
		opts.Refresh = 29 * time.Minute
	}
	if opts.HelloTimeout <= 0 {
		opts.HelloTimeout = 3 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(60*time.Second, opts.MinBackoff)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Session{opts: opts, log: opts.Logger, reconnect: make(chan struct{}, 1)}
	if opts.Identity != nil {
		s.opts.ClientID = opts.Identity.ID()
		s.lastID[0], s.lastID[1] = opts.Identity.Seen()
	}
	return s
}

// Reconnect drops the current connection and connects again at once, e.g.
// after the machine woke from suspend, when the old connection is likely
// dead but would take a while to be found so.
func (s *Session) Reconnect() {
	select {
	case s.reconnect <- struct{}{}:
	default:
	}
}

var errReconnect = errors.New("reconnect requested")

// Run runs the session until ctx ends, calling deliver for each item from
// this goroutine. It returns nil when ctx ends.
func (s *Session) Run(ctx context.Context, deliver func(Delivery)) error {
	backoff := time.Duration(0)
	for {
		start := time.Now()
		err := s.runConn(ctx, deliver)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, errReconnect), errors.Is(err, ErrNoHello):
			backoff = 0 // at once
		case time.Since(start) > time.Minute:
			backoff = s.opts.MinBackoff // it was healthy: start over
		default:
			backoff = min(max(2*backoff, s.opts.MinBackoff), s.opts.MaxBackoff)
		}
		// Full jitter around the step keeps many clients of a restarted
		// server from reconnecting in lockstep.
		wait := backoff/2 + time.Duration(mrand.Int64N(int64(backoff/2)+1))
		s.log.Info("disconnected", "addr", s.opts.Addr, "err", err, "retry_in", wait.Round(time.Millisecond))
		s.state(State{Addr: s.opts.Addr, RetryIn: wait, Err: err})
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

func (s *Session) state(st State) {
	if s.opts.OnState != nil {
		s.opts.OnState(st)
	}
}

// pushes collects what OnNotify reports, from the connection's reader.
type pushes struct {
	mu     sync.Mutex
	random bool
	ads    int
	signal chan struct{}
}

func (p *pushes) add(k wire.Kind) {
	p.mu.Lock()
	if k == wire.KindRandom {
		p.random = true
	} else {
		p.ads++
	}
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

func (p *pushes) take(maxAds int) (random bool, ads int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	random, ads = p.random, min(p.ads, maxAds)
	p.random, p.ads = false, p.ads-ads
	return random, ads
}

// runConn serves one connection until it fails, ctx ends, or a reconnect
// is requested.
func (s *Session) runConn(ctx context.Context, deliver func(Delivery)) error {
	// A Reconnect asked for while no connection was up is already served.
	select {
	case <-s.reconnect:
	default:
	}
	p := &pushes{signal: make(chan struct{}, 1)}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := Dial(dctx, s.opts.Addr, Options{OnNotify: p.add, ReplyTimeout: s.opts.ReplyTimeout, Logger: s.log})
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()

	// After an unanswered hello, one connection goes without; the next
	// tries again, as the server may have been only slow, or upgraded.
	skipHello := s.skipHello
	s.skipHello = false
	ided := false
	if s.opts.ClientID != "" && !skipHello {
		hctx, cancel := context.WithTimeout(ctx, s.opts.HelloTimeout)
		err := c.Hello(hctx, s.opts.ClientID)
		cancel()
		var se *ServerError
		switch {
		case err == nil:
			ided = true
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrNoHello) || errors.As(err, &se) && se.Line == wire.ErrUnknownCommand:
			// Only these mean "no identification here"; any other ERR
			// (too many connections, say) is a failure to retry.
			s.log.Warn("the server does not know identification: falling back to version 1 for this connection; items published while hark is away will be missed", "addr", s.opts.Addr, "err", err)
			if errors.Is(err, ErrNoHello) {
				s.skipHello = true
				return err // that connection is unusable
			}
		default:
			return err
		}
	}

	// Catch up: the latest number and the oldest unread ad, then
	// notification mode, whose announcements say what else is unread.
	// Fetch batches run to the end even when ctx ends, bounded by the
	// reply timeout: an item the server has counted as read must reach
	// the user.
	bctx := context.WithoutCancel(ctx)
	lastWrite := time.Now()
	cmds, off, ack := s.withSeen(ided, RandomCmd, ClassifiedCmd, NotifyCmd)
	items, err := c.Do(bctx, cmds...)
	s.deliver(items[min(len(items), off):min(len(items), off+2)], ided, deliver)
	if err != nil {
		return err
	}
	s.acked = ack
	s.log.Info("connected", "addr", s.opts.Addr, "identified", ided)
	s.state(State{Connected: true, Addr: s.opts.Addr})

	// The refresh is scheduled from the last line written and checked
	// against the wall clock, which keeps counting during suspend, unlike
	// Go's timers (golang/go#24595).
	const maxSleep = 30 * time.Second
	for {
		due := lastWrite.Round(0).Add(s.opts.Refresh)
		t := time.NewTimer(min(time.Until(due), maxSleep))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.reconnect:
			t.Stop()
			return errReconnect
		case <-c.Done():
			t.Stop()
			return c.Err()
		case <-p.signal:
			t.Stop()
		case <-t.C:
		}
		random, ads := p.take(maxFetch)
		if !random && ads == 0 && time.Now().Round(0).Before(due) {
			continue
		}
		// Leave the mode, fetch, re-enter: one write. Re-entering also
		// resets the server's idle timer and re-announces what is unread.
		cmds := []Cmd{StopNotifyCmd}
		if random {
			cmds = append(cmds, RandomCmd)
		}
		for range ads {
			cmds = append(cmds, ClassifiedCmd)
		}
		cmds = append(cmds, NotifyCmd)
		cmds, off, ack := s.withSeen(ided, cmds...)
		lastWrite = time.Now()
		items, err := c.Do(bctx, cmds...)
		if len(items) > off+1 {
			s.deliver(items[off+1:min(len(items), len(cmds)-1)], ided, deliver)
		}
		if err != nil {
			return err
		}
		s.acked = ack
		if ads == maxFetch {
			p.add(wire.KindClassified) // more may be waiting: go round again
		}
	}
}

// withSeen puts, on an identified connection, a "seen" acknowledging the
// items received so far in front of cmds: the server keeps offering an
// item until it is acknowledged, so a reply lost with a connection or in a
// server crash is offered again rather than lost (and dropped here as a
// duplicate by its id). Riding on the next batch costs no extra write; an
// acknowledgement still pending when the session ends only means a
// duplicate next time. off is how many commands were put in front, and
// ack the id acknowledged: once the batch went through, it becomes
// s.acked (not s.received, which the batch's own items have raised).
func (s *Session) withSeen(ided bool, cmds ...Cmd) (_ []Cmd, off int, ack uint64) {
	if !ided || s.received <= s.acked {
		return cmds, 0, s.acked
	}
	return append([]Cmd{SeenCmd(s.received)}, cmds...), 1, s.received
}

// deliver hands over items not delivered before. Identified items are
// compared by id (ids only grow); version-1 items by value, which is all
// that protocol allows: an ad repeated verbatim right after itself is
// taken for the "most recent ad" answer, not a new ad.
func (s *Session) deliver(items []Item, ided bool, deliver func(Delivery)) {
	now := time.Now()
	for _, it := range items {
		if it.Empty {
			continue
		}
		k := 0
		last := &s.lastAd
		if it.Kind == wire.KindRandom {
			k, last = 1, &s.lastRand
		}
		if ided {
			s.received = max(s.received, it.ID)
			if it.ID <= s.lastID[k] {
				continue
			}
			s.lastID[k] = it.ID
		} else {
			if it.Value == *last {
				continue
			}
		}
		*last = it.Value
		deliver(Delivery{Kind: it.Kind, Value: it.Value, ID: it.ID, Time: now})
		if ided && s.opts.Identity != nil {
			if err := s.opts.Identity.SetSeen(s.lastID[0], s.lastID[1]); err != nil {
				s.log.Warn("cannot record the last item delivered; it may be shown again after a restart", "err", err)
			}
		}
	}
}

// maxSlots bounds how many instances of one user may run sessions at once,
// each with an id of its own.
const maxSlots = 8

// Identity is a client id kept in a file, with the ids of the last items
// delivered under it, so that a restarted client neither misses nor
// repeats anything. It holds a lock on its file until Close.
type Identity struct {
	id   string
	f    *os.File
	mu   sync.Mutex
	seen [2]uint64 // last ad id, last random id delivered
}

// OpenIdentity opens the client id kept in dir (the user's XDG state
// directory for hark), creating it on first use. Two sessions sharing an
// id would share one read position and split the items between them, so a
// second instance running at the same time gets the next slot's id
// (client-id.2, …), which is just as durable.
func OpenIdentity(dir string) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	for slot := 1; slot <= maxSlots; slot++ {
		path := filepath.Join(dir, "client-id")
		if slot > 1 {
			path += fmt.Sprintf(".%d", slot)
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open client id: %w", err)
		}
		if !tryLock(f) {
			f.Close()
			continue // another instance holds this one
		}
		idt := &Identity{f: f}
		if err := idt.load(); err != nil {
			idt.Close()
			return nil, fmt.Errorf("client id in %s: %w: delete the file to get a new id", path, err)
		}
		return idt, nil
	}
	return nil, fmt.Errorf("%d hark clients already run for this user; stop one, or use --v1", maxSlots)
}

// The file holds the id on its first line and, once something was
// delivered, "seen <ad id> <random id>" on the second.
func (idt *Identity) load() error {
	b, err := io.ReadAll(io.LimitReader(idt.f, 512))
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if id := strings.TrimSpace(lines[0]); id != "" {
		if err := wire.ValidateClientID(id); err != nil {
			return err
		}
		idt.id = id
		if len(lines) > 1 {
			// A damaged second line only costs a repeat: ignore it.
			_, _ = fmt.Sscanf(lines[1], "seen %d %d", &idt.seen[0], &idt.seen[1])
		}
		return nil
	}
	idt.id = strings.ToLower(rand.Text()) // 128 random bits, base32
	return idt.write()
}

func (idt *Identity) write() error {
	rec := fmt.Sprintf("%s\nseen %d %d\n", idt.id, idt.seen[0], idt.seen[1])
	if _, err := idt.f.WriteAt([]byte(rec), 0); err != nil {
		return err
	}
	return idt.f.Truncate(int64(len(rec)))
}

// ID is the client id.
func (idt *Identity) ID() string { return idt.id }

// Seen returns the ids of the last ad and random number delivered.
func (idt *Identity) Seen() (ad, random uint64) {
	idt.mu.Lock()
	defer idt.mu.Unlock()
	return idt.seen[0], idt.seen[1]
}

// SetSeen records the ids of the last items delivered. It is not synced
// to disk: losing it in a crash costs one repeated item, not a lost one.
func (idt *Identity) SetSeen(ad, random uint64) error {
	idt.mu.Lock()
	defer idt.mu.Unlock()
	idt.seen = [2]uint64{ad, random}
	return idt.write()
}

// Close releases the id for another instance.
func (idt *Identity) Close() error {
	unlock(idt.f)
	return idt.f.Close()
}
