// Package server is hark's reference server: the line protocol of
// docs/PROTOCOL.md on TCP, an HTTP API to publish items, and a durable
// store behind both. It is what `hark serve` and `hark --demo` run.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/harkapp/hark/internal/hostport"
	"github.com/harkapp/hark/internal/ratelog"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// Config is what a server needs to run. Zero fields take the defaults
// documented on each.
type Config struct {
	Listen string // protocol address (default 127.0.0.1:6789)
	HTTP   string // publish API address; "" disables it
	// DataDir is the bbolt store's directory and the token file's
	// (store.OpenTokens): required unless Store and Tokens are both set.
	DataDir string
	// Store, when set, is the store to use instead of the bbolt store in
	// DataDir: one shared by gateways (store/jetstream). Start owns it
	// from the call: it closes it when it fails, and Shutdown closes it.
	// Retention is then the store's own.
	Store Store
	// Tokens, when set, are the API tokens to use instead of the token
	// file in DataDir: the ones gateways share (store/jetstream's
	// Store.Tokens). Start does not close them: they end with whatever
	// holds them (Store, for a JetStream store's); Shutdown flushes their
	// last uses before it closes Store.
	Tokens Tokens

	IdleTimeout    time.Duration // notification mode ends after this long without a line (default 30m)
	CommandTimeout time.Duration // a connection not in notification mode is closed after this long without a line (default 2m)
	WriteTimeout   time.Duration // a client whose socket takes nothing for this long is dropped (default 10s)
	MaxConns       int           // protocol connections at once (default 10,000)
	// MaxConnsPerAddr bounds the connections from one source at once: an
	// IPv4 address, or the /64 of an IPv6 address (what one subscriber
	// is usually given). Default: a tenth of MaxConns, at least 1; at
	// most MaxConns.
	MaxConnsPerAddr int
	MaxQueue        int // bytes of notifications queued for one connection before it is dropped (default 64 KiB)
	SendBuffer      int // the kernel's send buffer per connection, in bytes (0: the system's default)

	RandomEvery     time.Duration // built-in random number generator period (0: off)
	ClassifiedEvery time.Duration // built-in sample ad generator period (0: off)

	// TLS: with both set, the protocol port and the publish API speak TLS
	// (1.2 or later) from the first byte. The pair is reloaded when the
	// files change, and on ReloadCert.
	CertFile, KeyFile string
	// Auth requires a token: "auth <subscribe token>" as a connection's
	// first command, "Authorization: Bearer <publish token>" on the
	// publish API. Forced on when either address is beyond loopback.
	Auth bool
	// InsecureListen allows listening beyond loopback without TLS. Tokens
	// are still never accepted in plaintext from a non-loopback peer.
	InsecureListen bool
	// HTTPHosts are further names the publish API answers to in Host,
	// besides localhost, IP addresses, the listen address's host and the
	// certificate's names: any other Host is refused (DNS rebinding).
	HTTPHosts []string

	Retention store.Retention // what the store keeps (zero: store.DefaultRetention)
	Logger    *slog.Logger    // default: discard

	// Only tests set these.
	onLine  func(line []byte)   // called with each line before it is handled (to make a handler panic)
	onWatch func()              // called after each look of the watcher at the token and certificate files
	onSlow  func(time.Duration) // called with each failed auth's delay before it is waited
	linger  time.Duration       // instead of lingerTimeout
	// onAnnounce is called by notif and notif items between taking the
	// batch's replies and computing the announcement: a push fanned out
	// then is the one a careless notif would drop.
	onAnnounce func()
	// portable makes every connection wait in a goroutine of its own,
	// as on systems without the event loop (sock.go): the tests run
	// against both paths.
	portable bool
	noDup    bool // the event loop's waits behave as if no descriptor were left (EMFILE)
}

// Defaults.
const (
	DefaultListen         = "127.0.0.1:6789"
	DefaultHTTP           = "127.0.0.1:6790"
	DefaultIdleTimeout    = 30 * time.Minute
	DefaultCommandTimeout = 2 * time.Minute
	DefaultWriteTimeout   = 10 * time.Second
	DefaultMaxConns       = 10000
	DefaultMaxQueue       = 64 << 10
)

// DefaultMaxConnsPerAddr is the per-source limit for a server of
// maxConns connections: a tenth of them, so that ten strangers are needed
// to fill the server, and at least one.
func DefaultMaxConnsPerAddr(maxConns int) int { return max(maxConns/10, 1) }

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
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerAddr <= 0 {
		c.MaxConnsPerAddr = DefaultMaxConnsPerAddr(c.MaxConns)
	}
	c.MaxConnsPerAddr = min(c.MaxConnsPerAddr, c.MaxConns)
	if c.MaxQueue <= 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.linger <= 0 {
		c.linger = lingerTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ErrClosed is returned by Publish once the server is shutting down.
var ErrClosed = errors.New("server is shutting down")

// secured applies the rules of reaching beyond loopback: not without TLS
// unless InsecureListen says so, and never without tokens. Naming the
// publish API with HTTPHosts means others reach it (through a reverse
// proxy on this machine, whose requests come from loopback): tokens too.
func (c Config) secured() (Config, error) {
	// Checked here, before asking whether they are loopback: an address
	// that is not host:port is not "beyond loopback", it is a mistake.
	if _, _, err := hostport.Parse(c.Listen); err != nil {
		return c, fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	if _, _, err := hostport.Parse(c.HTTP); c.HTTP != "" && err != nil {
		return c, fmt.Errorf("publish API address %q: %w", c.HTTP, err)
	}
	beyond := !hostport.IsLoopback(c.Listen) || (c.HTTP != "" && !hostport.IsLoopback(c.HTTP))
	tlsOn := c.CertFile != "" || c.KeyFile != ""
	switch {
	case tlsOn && (c.CertFile == "" || c.KeyFile == ""):
		return c, errors.New("TLS needs both a certificate and its key")
	case beyond && !tlsOn && !c.InsecureListen:
		return c, fmt.Errorf("%w: listening beyond loopback (%s) needs TLS (a certificate and key), or an explicit insecure listen", ErrInsecure, strings.TrimSpace(c.Listen+" "+c.HTTP))
	}
	if beyond || len(c.HTTPHosts) > 0 {
		c.Auth = true
	}
	return c, nil
}

// ErrInsecure is returned by Start for an address beyond loopback without
// TLS, unless Config.InsecureListen says so.
var ErrInsecure = errors.New("refusing to listen without TLS")

// Server is a running hark server. Create it with Start; stop it with
// Shutdown.
type Server struct {
	cfg Config
	log *slog.Logger
	// rl logs what strangers can repeat at will (refused connections,
	// connections ending, accept errors): once, then a count per window.
	rl  *ratelog.Logger
	st  Store
	ln  net.Listener
	hln net.Listener
	// loop, when set, is where plaintext connections wait for input
	// (loop_linux.go); nil: each waits in a goroutine (portable).
	loop    *evloop
	certs   *certs      // nil: plaintext
	tlsConf *tls.Config // built on certs: one for both listeners
	// Tokens, checked by auth and the publish API; tokenConns are the
	// connections that authenticated, with their token's id, so that a
	// revocation ends them. authFails slows down guessing.
	tokens     Tokens
	tokenConns map[*conn]string // guarded by mu
	authFails  authFailures
	hosts      map[string]bool // Host names the publish API answers to, besides IP literals
	hsrv       *http.Server
	start      time.Time // base of the monotonic clock used for idle timers
	bufs       sync.Pool // read buffers (*[]byte), held only by talking connections

	ctx    context.Context // cancelled when Shutdown begins
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server starts
	once   sync.Once
	err    error // Shutdown's result

	kmu   sync.Mutex    // taken after mu
	pushq []*conn       // guarded by kmu: connections the pusher must kick, in fan-out order
	kwake chan struct{} // capacity 1: pushq has work

	mu        sync.Mutex // the hub: guards everything below
	ads       []store.Item
	random    store.Item
	fanned    [64]fanned // the last fan-outs, at fannedAt (mod 64)
	fannedAt  int
	conns     map[*conn]struct{}
	perSource map[netip.Addr]int // connections by source (sourceOf), for MaxConnsPerAddr
	notifying int                // connections in notification mode
	clients   map[string]*client // identified clients with a live connection
	closing   bool
	// shutCtx is Shutdown's context, set with closing: what a connection
	// waits for as it goes away ends with it.
	shutCtx context.Context
}

// client is an identified client's read positions, shared by all of its
// connections: pos is what has been handed out, acked what the client has
// confirmed receiving ("seen"), which alone is persisted. A reply lost in
// a crash or a dropped connection is thus offered again, with the same id,
// and the client drops the duplicate.
type client struct {
	id     string
	pos    cursor
	acked  cursor
	refs   int
	stored bool // the store was given its position: it was found there, or has acknowledged
	// items is the one connection of the id that gets pushes with items:
	// the last to enter notification mode with them, unless a hello came
	// since. A push with an item hands it out, so a connection the client
	// has left for a new one, dead without the server knowing yet, must
	// not get any: what it was handed would be lost. The others get
	// plain pushes, which hand nothing out (docs/PROTOCOL.md).
	items *conn
}

// cursor is a read position: the id of the last ad read and of the last
// random number fetched.
type cursor struct{ ad, random uint64 }

// Start listens, opens the store, and serves until Shutdown. If the store
// holds no random number yet it draws one, so random? always has an answer.
// An address it cannot listen on fails before the store is touched.
func Start(cfg Config) (*Server, error) {
	s, err := start(cfg)
	if err != nil && cfg.Store != nil {
		_ = cfg.Store.Close() // Start owns it
	}
	return s, err
}

func start(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	cfg, err := cfg.secured()
	if err != nil {
		return nil, err
	}
	tlsOn := cfg.CertFile != ""
	var crt *certs
	if tlsOn {
		var err error
		if crt, err = loadCerts(cfg.CertFile, cfg.KeyFile); err != nil {
			return nil, err
		}
	}
	// Both addresses first: a port in use fails before anything is
	// created or published, and nothing is left to undo but the sockets.
	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
		// Half-open peers (a laptop that vanished) are found in ~2 min.
		Enable: true, Idle: 60 * time.Second, Interval: 15 * time.Second, Count: 4,
	}}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	var hln net.Listener
	if cfg.HTTP != "" {
		if hln, err = net.Listen("tcp", cfg.HTTP); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("listen for the publish API on %s: %w", cfg.HTTP, err)
		}
	}
	closeListeners := func() {
		_ = ln.Close()
		if hln != nil {
			_ = hln.Close()
		}
	}
	toks := cfg.Tokens
	if toks == nil {
		set, err := store.OpenTokens(cfg.DataDir)
		if err != nil {
			closeListeners()
			return nil, err
		}
		toks = set
	}
	var st Store = cfg.Store
	if st == nil {
		bolt, err := store.OpenWith(cfg.DataDir, store.Options{Retention: cfg.Retention, Logger: cfg.Logger})
		if err != nil {
			closeListeners()
			return nil, err
		}
		st = bolt
	}
	s := &Server{
		ln:         ln,
		hln:        hln,
		cfg:        cfg,
		log:        cfg.Logger,
		st:         st,
		start:      time.Now(),
		bufs:       sync.Pool{New: func() any { b := make([]byte, wire.MaxLine+2); return &b }},
		conns:      make(map[*conn]struct{}),
		perSource:  make(map[netip.Addr]int),
		clients:    make(map[string]*client),
		kwake:      make(chan struct{}, 1),
		certs:      crt,
		tokens:     toks,
		tokenConns: make(map[*conn]string),
	}
	if crt != nil {
		s.tlsConf = crt.config()
		s.checkExpiry(crt.cur.Load().Leaf, time.Now())
	}
	s.hosts = s.apiHosts()
	if crt == nil && !cfg.portable {
		// Where there is no event loop, the portable path is as correct:
		// it costs an idle connection a goroutine (docs/PERFORMANCE.md).
		if s.loop, err = newLoop(ln, &s.wg, cfg.noDup); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			closeListeners()
			_ = st.Close()
			return nil, err
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	st.OnAppend(s.took)
	// Commits start with connections, after s.rl is set below. Both
	// lines are rate-limited: a store that is down fails every commit.
	st.OnCommitError(func(err error) {
		if errors.Is(err, store.ErrUnavailable) {
			s.rl.Warn("saving read positions: the store is unavailable; they are kept and tried again", "err", err)
			return
		}
		s.rl.Error("saving read positions failed; clients may be offered items again after a restart", "err", err)
	})
	// Not under s.mu: a shared store tells of new items (took, which
	// takes s.mu) holding a lock of its own, which Items takes too. What
	// took took meanwhile is merged: it comes after what Items read, or
	// is in it. (An ad it dropped for the retention stays until the next
	// prune.)
	ads, random := st.Items()
	s.mu.Lock()
	var last uint64
	if len(ads) > 0 {
		last = ads[len(ads)-1].ID
	}
	for _, it := range s.ads {
		if it.ID > last {
			ads = append(ads, it)
		}
	}
	s.ads = ads
	if random.ID > s.random.ID {
		s.random = random
	}
	noRandom := s.random.ID == 0 // read under s.mu: took may write it
	s.mu.Unlock()
	if noRandom {
		n, err := drawRandom()
		if err == nil {
			_, _, err = s.Publish(s.ctx, wire.KindRandom, n)
		}
		if err != nil {
			s.cancel()
			_ = st.Close()
			closeListeners()
			if s.loop != nil {
				s.loop.close()
			}
			return nil, fmt.Errorf("draw the first random number: %w", err)
		}
	}

	if cfg.HTTP != "" {
		s.hsrv = &http.Server{
			Handler:           s.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		serve := func() error { return s.hsrv.Serve(s.hln) }
		if crt != nil {
			s.hsrv.TLSConfig = s.tlsConf.Clone()
			serve = func() error { return s.hsrv.ServeTLS(s.hln, "", "") }
		}
		s.goTracked(func() {
			if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("publish API stopped", "err", err)
			}
		})
	}
	s.rl = ratelog.New(s.log, ratelog.DefaultWindow) // closed by Shutdown, once every connection is gone
	if s.loop != nil {
		s.goTracked(func() { s.loop.run(s) })
	}
	s.goTracked(s.acceptLoop)
	s.goTracked(s.pusher)
	s.goTracked(s.janitor)
	s.goTracked(s.sweeper)
	s.goTracked(s.watcher)
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

// Epoch is the store's epoch: item ids are comparable under one epoch
// only (docs/PROTOCOL.md, Identification).
func (s *Server) Epoch() string { return s.st.Epoch() }

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
		k, err := s.accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			// Out of file descriptors and similar: wait and retry, as
			// net/http does, instead of spinning or giving up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.rl.Warn("accept failed, retrying", "err", err, "in", backoff)
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
		// A refusal goes out in plaintext, before any handshake: the
		// handshake is the most a stranger can make the server spend.
		c, refusal := s.admit(k)
		if c == nil {
			s.refuse(k, refusal)
			continue
		}
		if k, ok := c.sk.(*tlsSock); ok {
			// The handshake first, in the connection's goroutine.
			s.goTracked(func() {
				defer c.recoverOwner()
				if c.handshake() {
					k.wait(c)
				}
			})
			continue
		}
		c.sk.await(c)
	}
}

// accept takes the next connection: a descriptor for the event loop, or
// a net.Conn.
func (s *Server) accept() (sock, error) {
	if s.loop != nil {
		return s.acceptRaw()
	}
	nc, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok && s.cfg.SendBuffer > 0 {
		if err := tc.SetWriteBuffer(s.cfg.SendBuffer); err != nil {
			s.rl.Warn("cannot set the send buffer", "err", err)
		}
	}
	return netSock{nc}, nil
}

// admit registers a new connection, or returns why it is refused: the
// line to send before closing it ("" when the server is closing).
func (s *Server) admit(k sock) (*conn, string) {
	src := sourceOf(k.remote())
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return nil, ""
	case len(s.conns) >= s.cfg.MaxConns: // full for everyone, whatever the source
		return nil, wire.ErrTooManyConns
	case s.perSource[src] >= s.cfg.MaxConnsPerAddr:
		return nil, wire.ErrTooManyFromAddr
	}
	if ns, ok := k.(netSock); ok && s.certs != nil {
		k = &tlsSock{netSock: netSock{tls.Server(ns.nc, s.tlsConf)}}
	}
	c := &conn{s: s, sk: k}
	c.r = wire.NewPooledReader(k.open(), &s.bufs)
	// Unread, for a connection that has not identified itself, means
	// published after it connected.
	if n := len(s.ads); n > 0 {
		c.own.ad = s.ads[n-1].ID
	}
	c.own.random = s.random.ID
	c.lastLine.Store(s.since())
	s.conns[c] = struct{}{}
	s.perSource[src]++
	s.rl.Debug("connection opened", "remote", k.remote(), "conns", len(s.conns))
	return c, ""
}

// refuse closes a connection that admit refused, after its one line. The
// line goes out before a FIN, and what the peer already sent (a hello, a
// notif) is dropped first, so that closing does not send a reset, which
// could destroy the line before it is read; what arrives later may still
// cause one. No waiting: the accept loop does this.
func (s *Server) refuse(k sock, line string) {
	if line != "" {
		if line == wire.ErrTooManyFromAddr {
			s.rl.Warn("connection refused: too many connections from its address", "remote", k.remote(), "max_conns_per_addr", s.cfg.MaxConnsPerAddr)
		} else {
			s.rl.Warn("connection refused: too many connections", "remote", k.remote(), "max_conns", s.cfg.MaxConns)
		}
		bp := s.bufs.Get().(*[]byte)
		k.refuse([]byte(line+"\r\n"), *bp)
		s.bufs.Put(bp)
	}
	k.release()
}

// sourceOf is what MaxConnsPerAddr counts by: the IPv4 address, or the
// /64 of the IPv6 address, of a peer. One subscriber is usually given a
// whole /64, so counting single IPv6 addresses would give a stranger
// 2^64 quotas. An IPv4 peer of a dual-stack listener (::ffff:a.b.c.d)
// counts as its IPv4 address.
func sourceOf(a net.Addr) netip.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip := ta.AddrPort().Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64) // cannot fail: 64 bits of 128
		return p.Addr()
	}
	return ip
}

// sourceKey names a peer's source for the store's budget of client ids
// per source: what sourceOf counts connections by.
func sourceKey(a net.Addr) string {
	src := sourceOf(a)
	switch {
	case !src.IsValid():
		return ""
	case src.Is6():
		return src.String() + "/64"
	}
	return src.String()
}

// unregister forgets a connection that has ended. s.mu must be held.
func (s *Server) unregister(c *conn) {
	delete(s.conns, c)
	src := sourceOf(c.sk.remote())
	if s.perSource[src]--; s.perSource[src] <= 0 {
		delete(s.perSource, src)
	}
	s.setNotifying(c, false)
	delete(s.tokenConns, c)
	if cl := c.cl; cl != nil {
		if cl.items == c {
			cl.items = nil
		}
		if cl.refs--; cl.refs == 0 {
			delete(s.clients, cl.id)
		}
	}
}

// Publish stores an item and notifies every connection in notification
// mode. It returns once the item is on disk, with the number of
// connections notified. value must already be valid for its kind.
func (s *Server) Publish(ctx context.Context, kind wire.Kind, value string) (store.Item, int, error) {
	it, n, _, err := s.publish(ctx, kind, value, "", [32]byte{})
	return it, n, err
}

// publish is Publish with an idempotency key ("": none): when key was
// used before, with the same request fingerprint, the first item is
// returned (replayed, nobody notified) and nothing is stored; with
// another, an error wrapping store.ErrKeyReused.
func (s *Server) publish(ctx context.Context, kind wire.Kind, value, key string, fp [32]byte) (it store.Item, n int, replayed bool, err error) {
	if err := ctx.Err(); err != nil {
		return store.Item{}, 0, false, err
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return store.Item{}, 0, false, ErrClosed
	}
	it, replayed, err = s.st.AppendKeyed(kind, value, time.Now(), key, fp)
	if err != nil || replayed {
		return it, 0, replayed, err
	}
	n = s.notifiedFor(it.ID)
	s.log.Info("published", "kind", kind, "id", it.ID, "notified", n)
	return it, n, false, nil
}

// took puts an item the store has just appended in the server's copy of
// the items, without the ads the store's retention dropped for it, and
// fans it out. The store calls it (OnAppend) for each item in id order,
// one at a time, before the append returns: no lock of the server's own
// serialises publishes.
func (s *Server) took(a store.Appended) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Item.Kind == wire.KindClassified {
		if n := len(s.ads); n > 0 && a.Item.ID <= s.ads[n-1].ID {
			return // loaded with Items already, at start
		}
		s.ads = append(s.ads, a.Item)
		s.dropAds(a.Dropped)
	} else {
		if a.Item.ID <= s.random.ID {
			return
		}
		s.random = a.Item
	}
	n := s.fanout(a.Item)
	s.fanned[s.fannedAt%len(s.fanned)] = fanned{a.Item.ID, n}
	s.fannedAt++
	// The pusher writes what fanout queued: whoever appended the item,
	// this server or another over a shared store.
	select {
	case s.kwake <- struct{}{}:
	default: // the pusher is awake already
	}
}

// fanned is how many connections an item's fan-out notified, for the
// publish that made it. The last few are kept (Server.fanned): enough for
// the publishes in flight, whatever else the store tells of.
type fanned struct {
	id uint64
	n  int
}

// notifiedFor is how many connections the fan-out of item id notified (0
// when it is no longer known).
func (s *Server) notifiedFor(id uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.fanned {
		if f.id == id {
			return f.n
		}
	}
	return 0
}

// dropAds drops from the server's copy the ads the store dropped (their
// ids, oldest first): retention is decided by the store alone. s.mu must
// be held.
func (s *Server) dropAds(dropped []uint64) {
	if len(dropped) == 0 {
		return
	}
	last := dropped[len(dropped)-1]
	i := 0
	for i < len(s.ads) && s.ads[i].ID <= last {
		i++
	}
	s.ads = s.ads[i:]
}

// setNotifying moves c in or out of notification mode. Those in it are
// counted rather than kept in a set of their own: an entry in a second map
// would cost every idle connection more than scanning the few that are
// not in notification mode costs a fan-out. s.mu must be held.
func (s *Server) setNotifying(c *conn, on bool) {
	switch {
	case on && c.state.Or(stNotifying)&stNotifying == 0:
		s.notifying++
	case !on && c.state.And(^uint32(stNotifying))&stNotifying != 0:
		s.notifying--
	}
}

// fanout queues a notification of it on every connection in notification
// mode, and hands those that need a write to the pusher. It never blocks on
// a socket: a connection whose queue is full is dropped, and everyone else
// is notified on time. A connection in notification mode with items gets
// the item itself, which hands it out as a fetch would. s.mu must be held.
func (s *Server) fanout(it store.Item) int {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	line := it.Kind.Notification() + "\r\n"
	var withItem string // made once, for the first connection that takes items
	var prev uint64     // the ad before it: a connection that has not read it gets a plain push
	if n := len(s.ads); it.Kind == wire.KindClassified && n > 1 && s.ads[n-1].ID == it.ID {
		prev = s.ads[n-2].ID
	}
	now := s.since()
	n := 0
	for c := range s.conns {
		// The idle timeout is checked here, when it matters, as well as by
		// the sweeper, rather than by a timer per connection: leaving
		// notification mode is silent, so the two are indistinguishable on
		// the wire.
		if !c.notifying() || s.endIdleNotify(c, now) {
			continue
		}
		l := line
		items := c.state.Load()&stItems != 0 && c.cl.items == c
		if items && it.Kind == wire.KindClassified && c.pos().ad < prev {
			// Older ads are unread here (announced plainly, beyond the
			// announcement's items): handing this one out would move the
			// position past them. A plain push; the fetch that follows
			// gets the oldest.
			items = false
		}
		if items {
			if withItem == "" {
				withItem = string(append(wire.AppendPushItem(nil, it.Kind, it.ID, it.Value), '\r', '\n'))
			}
			l = withItem
		}
		ok, kick := c.push(l)
		if !ok {
			s.setNotifying(c, false)
			continue
		}
		if items {
			p := c.pos()
			if it.Kind == wire.KindClassified {
				p.ad = max(p.ad, it.ID)
			} else {
				p.random = max(p.random, it.ID)
			}
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
		kickAll(batch)
		clear(batch)
	}
}

// kickAll kicks every connection of batch, spread over the processors: a
// push is a system call of about 10 µs on loopback (the kernel runs the
// receiver's side in it), so one goroutine writing a fan-out to 10,000
// connections would take 100 ms on one core while the others wait. A
// connection is in batch at most once, so no two goroutines write to one.
func kickAll(batch []*conn) {
	parts := min(runtime.GOMAXPROCS(0), len(batch)/minKicks)
	if parts <= 1 {
		for _, c := range batch {
			c.kick()
		}
		return
	}
	var wg sync.WaitGroup
	for i := 1; i < parts; i++ {
		part := batch[len(batch)*i/parts : len(batch)*(i+1)/parts]
		wg.Go(func() {
			for _, c := range part {
				c.kick()
			}
		})
	}
	for _, c := range batch[:len(batch)/parts] {
		c.kick()
	}
	wg.Wait()
}

// minKicks is the fewest kicks worth a goroutine of their own.
const minKicks = 64

// janitor applies the retention every minute. The store works in short
// steps and lets publishes in between, so this bounds how long anything
// outlives its retention, not how long a publish waits.
func (s *Server) janitor() {
	t := time.NewTicker(time.Minute)
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

// minSweep bounds how often the sweeper runs, whatever the timeouts.
const minSweep = 10 * time.Millisecond

// sweeper applies the command timeout, and the idle timeout of
// notification mode, to every connection a few times per timeout: one
// goroutine for all, rather than a timer per connection, which every
// idle connection would pay for. A connection is thus closed between one
// timeout and a quarter more after its last line.
func (s *Server) sweeper() {
	t := time.NewTicker(max(min(s.cfg.CommandTimeout, s.cfg.IdleTimeout)/4, minSweep))
	defer t.Stop()
	var quiet []*conn
	for {
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		quiet = s.sweep(quiet[:0])
		// Closed outside s.mu: a burst of closes must not hold up
		// publishes and new connections.
		for _, c := range quiet {
			c.end(endCommandTimeout, nil)
		}
		clear(quiet)
	}
}

// sweep ends notification mode where the idle timeout has passed (as
// fan-out does, when there is a publish), and returns, appended to quiet,
// the connections in command mode from which no line has come for the
// command timeout. Leaving notification mode is silent, and so is the
// close: nothing is sent that a client could take for a reply.
func (s *Server) sweep(quiet []*conn) []*conn {
	now := s.since()
	cmd := int64(s.cfg.CommandTimeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.notifying() && !s.endIdleNotify(c, now) {
			continue
		}
		if now-c.lastLine.Load() > cmd && !c.closed() {
			quiet = append(quiet, c)
		}
	}
	return quiet
}

// endIdleNotify ends c's notification mode, silently, when no line has
// come from it for the idle timeout, and reports whether it did. s.mu must
// be held.
func (s *Server) endIdleNotify(c *conn, now int64) bool {
	if now-c.lastLine.Load() <= int64(s.cfg.IdleTimeout) {
		return false
	}
	s.setNotifying(c, false)
	s.rl.Debug("notification mode ended: idle", "remote", c.sk.remote())
	return true
}

func (s *Server) prune(now time.Time) {
	dropped, err := s.st.Prune(now)
	if err != nil {
		s.log.Error("retention pass failed", "err", err)
	}
	if len(dropped) == 0 { // the ads dropped before a failure are gone too
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropAds(dropped)
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
	// A publish that begins after this fails with ErrClosed; one under
	// way fans out to connections that may have flushed already: their
	// clients catch up on their next connection, as from any drop.
	s.mu.Lock()
	s.closing = true
	s.shutCtx = ctx // bounds what connections wait for as they go (commitPosition)
	for c := range s.conns {
		// Wake each reader: it answers the lines it already has, flushes
		// and closes.
		c.sk.wakeForShutdown()
	}
	s.mu.Unlock()
	if s.loop != nil {
		// Those waiting in the loop have no reader to wake: each gets
		// one, which does the same.
		for _, c := range s.loop.closeArms() {
			s.goTracked(func() {
				defer c.recoverOwner()
				c.finish(errShuttingDown)
			})
		}
		s.loop.stop()
	}

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.end(endShutdown, nil)
		}
		s.mu.Unlock()
		<-done
	}
	if s.loop != nil {
		s.loop.close() // its goroutine, counted in wg, has returned
	}
	s.rl.Close() // every connection is gone: report what was counted
	if err := s.tokens.FlushUsage(); err != nil {
		s.log.Warn("recording when tokens were last used failed", "err", err)
	}
	return s.st.Close()
}
