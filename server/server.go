// Package server is hark's reference server: the line protocol of
// docs/PROTOCOL.md on TCP, an HTTP API to publish items, and a durable
// store behind both. It is what `hark serve` and `hark --demo` run.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// Config is what a server needs to run. Zero fields take the defaults
// documented on each.
type Config struct {
	Listen  string // protocol address (default 127.0.0.1:6789)
	HTTP    string // publish API address; "" disables it
	DataDir string // the store's directory (required)

	IdleTimeout  time.Duration // notification mode ends after this long without a line (default 30m)
	WriteTimeout time.Duration // a client whose socket takes nothing for this long is dropped (default 10s)
	MaxConns     int           // protocol connections at once (default 10,000)
	MaxQueue     int           // bytes of notifications queued for one connection before it is dropped (default 64 KiB)
	SendBuffer   int           // the kernel's send buffer per connection, in bytes (0: the system's default)

	RandomEvery     time.Duration // built-in random number generator period (0: off)
	ClassifiedEvery time.Duration // built-in sample ad generator period (0: off)

	Retention store.Retention // what the store keeps (zero: store.DefaultRetention)
	Logger    *slog.Logger    // default: discard
}

// Defaults.
const (
	DefaultListen       = "127.0.0.1:6789"
	DefaultHTTP         = "127.0.0.1:6790"
	DefaultIdleTimeout  = 30 * time.Minute
	DefaultWriteTimeout = 10 * time.Second
	DefaultMaxConns     = 10000
	DefaultMaxQueue     = 64 << 10
)

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ErrClosed is returned by Publish once the server is shutting down.
var ErrClosed = errors.New("server is shutting down")

// Server is a running hark server. Create it with Start; stop it with
// Shutdown.
type Server struct {
	cfg   Config
	log   *slog.Logger
	st    *store.Store
	ln    net.Listener
	hln   net.Listener
	hsrv  *http.Server
	start time.Time // base of the monotonic clock used for idle timers
	bufs  sync.Pool // read buffers (*[]byte), held only by talking connections

	ctx    context.Context // cancelled when Shutdown begins
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server starts
	once   sync.Once
	err    error // Shutdown's result

	pubMu sync.Mutex // serialises publishes, so id order is fan-out order

	kmu   sync.Mutex    // taken after mu
	pushq []*conn       // guarded by kmu: connections the pusher must kick, in fan-out order
	kwake chan struct{} // capacity 1: pushq has work

	mu        sync.Mutex // the hub: guards everything below
	ads       []store.Item
	random    store.Item
	conns     map[*conn]struct{}
	notifying int                // connections in notification mode
	clients   map[string]*client // identified clients with a live connection
	closing   bool
}

// client is an identified client's read positions, shared by all of its
// connections: pos is what has been handed out, acked what the client has
// confirmed receiving ("seen"), which alone is persisted. A reply lost in
// a crash or a dropped connection is thus offered again, with the same id,
// and the client drops the duplicate.
type client struct {
	id    string
	pos   cursor
	acked cursor
	refs  int
}

// cursor is a read position: the id of the last ad read and of the last
// random number fetched.
type cursor struct{ ad, random uint64 }

// Start opens the store, listens, and serves until Shutdown. If the store
// holds no random number yet it draws one, so random? always has an answer.
func Start(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	st, err := store.Open(cfg.DataDir, cfg.Retention)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		st:      st,
		start:   time.Now(),
		bufs:    sync.Pool{New: func() any { b := make([]byte, wire.MaxLine+2); return &b }},
		conns:   make(map[*conn]struct{}),
		clients: make(map[string]*client),
		kwake:   make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	st.OnCommitError(func(err error) {
		s.log.Error("saving read positions failed; clients may be offered items again after a restart", "err", err)
	})
	ads, random := st.Loaded()
	s.ads, s.random = append([]store.Item(nil), ads...), random
	if s.random.ID == 0 {
		n, err := drawRandom()
		if err == nil {
			_, _, err = s.Publish(s.ctx, wire.KindRandom, n)
		}
		if err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("draw the first random number: %w", err)
		}
	}

	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
		// Half-open peers (a laptop that vanished) are found in ~2 min.
		Enable: true, Idle: 60 * time.Second, Interval: 15 * time.Second, Count: 4,
	}}
	if s.ln, err = lc.Listen(s.ctx, "tcp", cfg.Listen); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if cfg.HTTP != "" {
		if s.hln, err = net.Listen("tcp", cfg.HTTP); err != nil {
			_ = s.ln.Close()
			_ = st.Close()
			return nil, fmt.Errorf("listen for the publish API on %s: %w", cfg.HTTP, err)
		}
		s.hsrv = &http.Server{
			Handler:           s.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		s.goTracked(func() {
			if err := s.hsrv.Serve(s.hln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("publish API stopped", "err", err)
			}
		})
	}
	s.goTracked(s.acceptLoop)
	s.goTracked(s.pusher)
	s.goTracked(s.janitor)
	if cfg.RandomEvery > 0 {
		s.goTracked(func() { s.generate(wire.KindRandom, cfg.RandomEvery) })
	}
	if cfg.ClassifiedEvery > 0 {
		s.goTracked(func() { s.generate(wire.KindClassified, cfg.ClassifiedEvery) })
	}
	return s, nil
}

// Addr is the protocol's listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// HTTPAddr is the publish API's listening address, or nil when disabled.
func (s *Server) HTTPAddr() net.Addr {
	if s.hln == nil {
		return nil
	}
	return s.hln.Addr()
}

// StorePath is the database file the server writes.
func (s *Server) StorePath() string { return s.st.Path() }

func (s *Server) goTracked(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// since is a monotonic clock for idle timers, in nanoseconds.
func (s *Server) since() int64 { return int64(time.Since(s.start)) }

func (s *Server) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			// Out of file descriptors and similar: wait and retry, as
			// net/http does, instead of spinning or giving up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed, retrying", "err", err, "in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		c := s.newConn(nc)
		if c == nil {
			continue
		}
		s.goTracked(c.wait)
	}
}

// newConn registers a connection, or refuses it when the server is full
// or closing.
func (s *Server) newConn(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		_ = nc.Close()
		return nil
	}
	if len(s.conns) >= s.cfg.MaxConns {
		s.log.Warn("connection refused: too many connections", "remote", nc.RemoteAddr(), "max_conns", s.cfg.MaxConns)
		// A fresh socket's send buffer is empty, so this write does not
		// block; the deadline is there in case it ever would.
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write([]byte(wire.ErrTooManyConns + "\r\n"))
		_ = nc.Close()
		return nil
	}
	if tc, ok := nc.(*net.TCPConn); ok && s.cfg.SendBuffer > 0 {
		if err := tc.SetWriteBuffer(s.cfg.SendBuffer); err != nil {
			s.log.Warn("cannot set the send buffer", "err", err)
		}
	}
	c := &conn{s: s, nc: nc}
	c.r = wire.NewPooledReader(nc, &s.bufs)
	// Unread, for a connection that has not identified itself, means
	// published after it connected.
	if n := len(s.ads); n > 0 {
		c.own.ad = s.ads[n-1].ID
	}
	c.own.random = s.random.ID
	c.lastLine.Store(s.since())
	s.conns[c] = struct{}{}
	s.log.Debug("connection opened", "remote", nc.RemoteAddr(), "conns", len(s.conns))
	return c
}

// forget unregisters a closed connection.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.setNotifying(c, false)
	if cl := c.cl; cl != nil {
		if cl.refs--; cl.refs == 0 {
			delete(s.clients, cl.id)
		}
	}
}

// Publish stores an item and notifies every connection in notification
// mode. It returns once the item is on disk, with the number of
// connections notified. value must already be valid for its kind.
func (s *Server) Publish(ctx context.Context, kind wire.Kind, value string) (store.Item, int, error) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if err := ctx.Err(); err != nil {
		return store.Item{}, 0, err
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return store.Item{}, 0, ErrClosed
	}
	it, err := s.st.Append(kind, value, time.Now())
	if err != nil {
		return store.Item{}, 0, err
	}
	s.mu.Lock()
	if kind == wire.KindClassified {
		s.ads = append(s.ads, it)
		if keep := s.st.Retention().Ads; len(s.ads) > keep {
			s.ads = s.ads[len(s.ads)-keep:]
		}
	} else {
		s.random = it
	}
	n := s.fanout(kind)
	s.mu.Unlock()
	select {
	case s.kwake <- struct{}{}:
	default: // the pusher is awake already
	}
	s.log.Info("published", "kind", kind, "id", it.ID, "notified", n)
	return it, n, nil
}

// setNotifying moves c in or out of notification mode. Those in it are
// counted rather than kept in a set of their own: an entry in a second map
// would cost every idle connection more than scanning the few that are
// not in notification mode costs a fan-out. s.mu must be held.
func (s *Server) setNotifying(c *conn, on bool) {
	if c.notifying != on {
		c.notifying = on
		if on {
			s.notifying++
		} else {
			s.notifying--
		}
	}
}

// fanout queues a notification on every connection in notification mode,
// and hands those that need a write to the pusher. It never blocks on a
// socket: a connection whose queue is full is dropped, and everyone else is
// notified on time. s.mu must be held.
func (s *Server) fanout(kind wire.Kind) int {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	line := kind.Notification() + "\r\n"
	now, idle := s.since(), int64(s.cfg.IdleTimeout)
	n := 0
	for c := range s.conns {
		if !c.notifying {
			continue
		}
		// The idle timeout is checked here, when it matters, rather than
		// by a timer per connection: leaving notification mode is silent,
		// so the two are indistinguishable on the wire.
		if now-c.lastLine.Load() > idle {
			s.setNotifying(c, false)
			s.log.Debug("notification mode ended: idle", "remote", c.nc.RemoteAddr())
			continue
		}
		ok, kick := c.push(line)
		if !ok {
			s.setNotifying(c, false)
			continue
		}
		n++
		if kick {
			s.pushq = append(s.pushq, c)
		}
	}
	return n
}

// pusher writes the pushes that fan-out queued, one connection after
// another, without waiting on any socket (see conn.kick). A publish thus
// returns once its pushes are queued, and when publishes come faster than
// their pushes are written, a connection's queued pushes go out in one
// write. A connection's kick is pending at most once, so pushq holds at
// most one entry per connection. At shutdown, what is left is flushed by
// each connection as it closes.
func (s *Server) pusher() {
	var batch []*conn
	for {
		select {
		case <-s.kwake:
		case <-s.ctx.Done():
			return
		}
		s.kmu.Lock()
		batch, s.pushq = s.pushq, batch[:0]
		s.kmu.Unlock()
		for _, c := range batch {
			c.kick()
		}
		clear(batch)
	}
}

// janitor applies the retention by age once an hour.
func (s *Server) janitor() {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		s.prune(time.Now())
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Server) prune(now time.Time) {
	dropped, err := s.st.Prune(now)
	if err != nil {
		s.log.Error("retention pass failed", "err", err)
		return
	}
	if len(dropped) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last := dropped[len(dropped)-1]
	i := 0
	for i < len(s.ads) && s.ads[i].ID <= last {
		i++
	}
	s.ads = s.ads[i:]
	s.log.Info("retention: dropped old ads", "count", len(dropped))
}

// Shutdown stops accepting, lets in-flight publishes and commands finish,
// flushes what each connection has been sent, closes the connections and
// the store. When ctx ends first, remaining connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() { s.err = s.shutdown(ctx) })
	return s.err
}

func (s *Server) shutdown(ctx context.Context) error {
	s.cancel()
	_ = s.ln.Close()
	if s.hsrv != nil {
		if err := s.hsrv.Shutdown(ctx); err != nil {
			_ = s.hsrv.Close()
		}
	}
	s.pubMu.Lock() // no publish is in flight past this point
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		// Wake each reader: it answers the lines it already has, flushes
		// and closes.
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
	s.pubMu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			_ = c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
	return s.st.Close()
}
