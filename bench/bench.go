// Package bench is `hark bench`'s engine: it drives load against a server
// of hark's line protocol and measures what comes out. N clients connect
// (identified with hello, or plain version 1), enter notification mode and
// run the classic fetch cycle; M items are published through an HTTP
// publish API like hark serve's (or a command) at a given rate; every
// client counts which items it fetched, and the latencies from publish to
// notif: received and to item fetched are kept for every item × client.
//
// It has one job: drive the load and measure. Flags and printing are in
// package cli.
package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/harkapp/hark/wire"
)

// Config says what to run. Zero fields take the defaults documented on
// each; Server, Clients, Items and one of PublishURL and PublishCmd are
// required.
type Config struct {
	// Server is the protocol host:port; or several, separated by
	// commas, the servers (gateways) of one store: client i connects to
	// the (i mod n)-th, so the clients spread evenly over them.
	Server string

	// TLS, when set, makes each client speak TLS to Server (and is the
	// publish API's TLS configuration for an https:// PublishURL). Without
	// a ServerName, each client verifies the host it connects to.
	TLS *tls.Config
	// Token, when set, is each client's first command: auth <Token> (a
	// subscribe token). PublishToken is sent as a Bearer token with each
	// publish.
	Token, PublishToken string

	// PublishURL is the base of an HTTP publish API like hark serve's
	// (POST {PublishURL}/v1/random, /v1/classified; success is 201).
	PublishURL string
	// PublishCmd, when set instead, is run with sh -c for each item, with
	// {value} and {kind} replaced by the item's value and kind, quoted for
	// the shell. It must exit 0 once the item is published.
	PublishCmd string

	Clients int
	Items   int
	// Rate is items per second. 0 is a closed loop: the next item is
	// published only once every client has fetched the previous one (or
	// Settle has passed without it).
	Rate float64
	Kind wire.Kind // default wire.KindClassified
	V1   bool      // do not identify: plain version 1
	// Classic makes identified clients run the fetch cycle after each
	// push even when the server offers items in pushes (notif items,
	// docs/PROTOCOL.md), as clients written before it do.
	Classic bool

	// Settle bounds the wait for the last fetches once everything is
	// published (and, in a closed loop, for each item). Items not fetched
	// by then are lost. Default 10s.
	Settle time.Duration
	// SetupTimeout bounds each client's connect, hello and notif (default
	// 10s).
	SetupTimeout time.Duration
	// DialConcurrency bounds the clients connecting at once (default 64):
	// a burst of thousands of connects would overflow the server's accept
	// queue and measure SYN retries instead of the server.
	DialConcurrency int

	// ServerPID, when not 0, is the server's process: its CPU time and
	// resident memory are read from /proc (Linux only).
	ServerPID int

	// Progress, when set, receives one-line progress messages.
	Progress func(msg string)
}

// Dist is a latency distribution in milliseconds. Percentiles are nearest
// rank over every sample (the smallest sample with at least p% of the
// samples at or below it), exact to the microsecond.
type Dist struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int     `json:"n"` // samples
}

// Proc is a process's resource use, from /proc (and getrusage for the
// bench itself).
type Proc struct {
	PID         int     `json:"pid"`
	ConnectCPUS float64 `json:"connect_cpu_s"`     // user+system CPU while the clients connected
	CPUS        float64 `json:"cpu_s"`             // user+system CPU from the first publish to the end
	StartRSSMiB float64 `json:"start_rss_mib"`     // before the clients connected
	ConnRSSMiB  float64 `json:"connected_rss_mib"` // every client connected and idle in notification mode, before the first publish
	RSSMiB      float64 `json:"rss_mib"`           // at the end, every client still connected
	PeakRSSMiB  float64 `json:"peak_rss_mib"`      // high-water mark over the process's life
}

// Result is what a run measured.
type Result struct {
	Server     string  `json:"server"`
	Clients    int     `json:"clients"`
	Identified bool    `json:"identified"`
	Kind       string  `json:"kind"`
	Items      int     `json:"items"`
	Rate       float64 `json:"rate"` // as asked; 0 is the closed loop
	// PushItems counts the clients that took items in pushes (notif
	// items): identified, not Classic, and offered by the server.
	PushItems int `json:"push_items"`

	ConnectS  float64 `json:"connect_s"`   // connecting every client, hello and notif included
	DurationS float64 `json:"duration_s"`  // first publish to last fetch
	ItemsPerS float64 `json:"items_per_s"` // Items / DurationS: items delivered to every client per second
	// PublishedPerS is Items over the time from the first publish to the
	// last publish call's return: below Rate when publishing could not keep
	// up (more than 32 calls in flight).
	PublishedPerS float64 `json:"published_per_s"`

	NotifMS   Dist `json:"notif_ms"`   // publish to notif: received, every item × client
	FetchMS   Dist `json:"fetch_ms"`   // publish to the item's reply received, every item × client
	PublishMS Dist `json:"publish_ms"` // the publish call itself (HTTP round trip, or the command)

	Delivered  int `json:"delivered"`  // item × client pairs fetched
	Lost       int `json:"lost"`       // item × client pairs never fetched
	Duplicated int `json:"duplicated"` // fetches of an item the client already had
	// Superseded counts, for random numbers only, items a client did not
	// fetch because a newer number had replaced them: random? returns only
	// the latest. They are not lost. (Classified ads are never superseded.)
	Superseded int `json:"superseded"`
	Foreign    int `json:"foreign"`    // items fetched that this run did not publish
	Dropped    int `json:"dropped"`    // clients whose connection ended during the run
	MaxBatch   int `json:"max_batch"`  // the most items one client fetched in one cycle: 1 means nobody fell behind
	SlowItems  int `json:"slow_items"` // closed loop: items not fetched by every client within Settle

	ServerProc *Proc `json:"server_process,omitempty"`
	BenchProc  *Proc `json:"bench_process,omitempty"`

	FirstError string `json:"first_error,omitempty"` // why the first dropped client ended
}

// OK reports whether every client fetched every item exactly once.
func (r *Result) OK() bool { return r.Lost == 0 && r.Duplicated == 0 && r.Dropped == 0 }

// Defaults.
const (
	DefaultSettle          = 10 * time.Second
	DefaultSetupTimeout    = 10 * time.Second
	DefaultDialConcurrency = 64

	// MaxItems bounds Items: every client keeps one bit per item, and
	// random-number values are base + n with base below 10^18.
	MaxItems = 100_000_000
	// fdMargin is the descriptors the bench needs besides its clients:
	// standard streams, the poller, the publish API's connection, /proc.
	fdMargin = 64
)

func (c Config) withDefaults() Config {
	if c.Kind == "" {
		c.Kind = wire.KindClassified
	}
	if c.Settle <= 0 {
		c.Settle = DefaultSettle
	}
	if c.SetupTimeout <= 0 {
		c.SetupTimeout = DefaultSetupTimeout
	}
	if c.DialConcurrency <= 0 {
		c.DialConcurrency = DefaultDialConcurrency
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	return c
}

func (c Config) check() error {
	switch {
	case c.Server == "":
		return errors.New("bench: no server address")
	case c.Clients < 1:
		return errors.New("bench: at least one client")
	case c.Items < 1 || c.Items > MaxItems:
		return fmt.Errorf("bench: items from 1 to %d", MaxItems)
	case c.Rate < 0:
		return errors.New("bench: the rate cannot be negative")
	case !c.Kind.Valid():
		return fmt.Errorf("bench: unknown kind %q", c.Kind)
	case (c.PublishURL == "") == (c.PublishCmd == ""):
		return errors.New("bench: exactly one of PublishURL and PublishCmd")
	case c.PublishCmd != "" && !strings.Contains(c.PublishCmd, "{value}"):
		return errors.New("bench: the publish command must contain {value}")
	}
	return nil
}

// run is one benchmark run: what the clients and the publisher share.
type run struct {
	cfg   Config
	start time.Time // the time base of every timestamp: since() is monotonic

	ackEvery int64 // nanoseconds between a client's acknowledgements of pushed items (ackEvery)

	// Item n's value is classified: "bench <tag> <n>"; random: base+n.
	tag  string
	base uint64

	servers []string      // Server's host:ports; client i connects to servers[i%len]
	tls     []*tls.Config // per server, with TLS: its ServerName set
	src     sources       // where the clients connect from

	pubAt []atomic.Int64 // since() just before item n was published; 0: not yet
	got   []atomic.Int64 // clients still connected that have fetched item n
	alive atomic.Int64   // clients still connected
	done  []chan struct{}
	once  []sync.Once // closes done[n]
	// complete is closed when every client has fetched every item (for
	// random numbers: the last one, which supersedes the rest).
	complete  chan struct{}
	completed atomic.Int64 // items fetched by every client

	ready   chan struct{} // closed when every client is in notification mode
	nready  atomic.Int64
	setupMu sync.Mutex
	setupEr error         // the first setup failure
	failed  chan struct{} // closed with setupEr

	closing atomic.Bool // the run is over: connections ending now are not drops
	connMu  sync.Mutex
	conns   []net.Conn // every client's connection, to close at the end
	wg      sync.WaitGroup
}

// since is the time since the run's start, in nanoseconds (monotonic).
func (r *run) since() int64 { return int64(time.Since(r.start)) }

// value returns item n's value.
func (r *run) value(n int) string {
	if r.cfg.Kind == wire.KindRandom {
		return strconv.FormatUint(r.base+uint64(n), 10)
	}
	return "bench " + r.tag + " " + strconv.Itoa(n)
}

// item returns the number of the item whose value is v, or -1 when this
// run did not publish it.
func (r *run) item(v string) int {
	if r.cfg.Kind == wire.KindRandom {
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil || x < r.base || x-r.base >= uint64(r.cfg.Items) {
			return -1
		}
		return int(x - r.base)
	}
	rest, ok := strings.CutPrefix(v, "bench "+r.tag+" ")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n >= r.cfg.Items || strconv.Itoa(n) != rest {
		return -1
	}
	return n
}

// fetched records that one more client has fetched item n, for the first
// time.
func (r *run) fetched(n int) {
	r.got[n].Add(1)
	r.check(n)
}

// check closes done[n] once every client still connected has fetched
// item n.
func (r *run) check(n int) {
	if r.got[n].Load() < r.alive.Load() {
		return
	}
	r.once[n].Do(func() {
		close(r.done[n])
		if r.cfg.Kind == wire.KindRandom {
			if n == r.cfg.Items-1 {
				close(r.complete)
			}
			return
		}
		if int(r.completed.Add(1)) == r.cfg.Items {
			close(r.complete)
		}
	})
}

// dropped takes a client whose connection ended during the run out of the
// count: the closed loop and the final wait then go on with the others
// rather than wait out --settle for every item. (Its items are lost, and
// counted so.)
func (r *run) dropped(c *client) {
	// Its fetches first, then itself: in between, an item can only look
	// less complete than it is, never more.
	for n := range r.cfg.Items {
		if c.has(n) {
			r.got[n].Add(-1)
		}
	}
	r.alive.Add(-1)
	for n := range r.cfg.Items {
		r.check(n)
	}
}

func (r *run) setupFailed(err error) {
	r.setupMu.Lock()
	defer r.setupMu.Unlock()
	if r.setupEr == nil {
		r.setupEr = err
		close(r.failed)
	}
}

// Run connects the clients, publishes the items and returns what was
// measured. An error means the run could not be carried out (a client
// could not connect, a publish failed); lost or duplicated items are in
// the Result (see OK).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if err := raiseFileLimit(cfg.Clients+fdMargin, cfg.Progress); err != nil {
		return nil, err
	}
	r := newRun(cfg)
	pub, err := newPublisher(cfg)
	if err != nil {
		return nil, err
	}
	defer pub.close()

	snap0 := snapshot(cfg.ServerPID)
	clients, err := r.connect(ctx)
	defer r.stop()
	if err != nil {
		return nil, err
	}
	connectS := time.Since(r.start).Seconds()
	cfg.Progress(fmt.Sprintf("%d clients in notification mode after %.2f s; publishing %d %s", cfg.Clients, connectS, cfg.Items, plural(cfg.Kind, cfg.Items)))

	snap1 := snapshot(cfg.ServerPID)
	ps, err := r.publish(ctx, pub)
	if err != nil {
		return nil, err
	}
	snap2 := snapshot(cfg.ServerPID)
	r.stop()

	res := &Result{
		Server: cfg.Server, Clients: cfg.Clients, Identified: !cfg.V1, Kind: string(cfg.Kind),
		Items: cfg.Items, Rate: cfg.Rate, ConnectS: round3(connectS), SlowItems: ps.slow,
	}
	r.tally(res, clients, ps.first)
	res.PublishMS = distOf(ps.us)
	if d := time.Duration(ps.last - ps.first).Seconds(); d > 0 {
		res.PublishedPerS = round3(float64(cfg.Items) / d)
	}
	res.ServerProc, res.BenchProc = procs(cfg.ServerPID, snap0, snap1, snap2)
	return res, nil
}

func newRun(cfg Config) *run {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	r := &run{
		cfg:      cfg,
		start:    time.Now(),
		ackEvery: ackEvery,
		// Values unique to this run: a server that still holds ads or
		// numbers of an earlier run cannot be mistaken for this one.
		tag:      fmt.Sprintf("%x", rnd[:4]),
		base:     (1 + binary.BigEndian.Uint64(rnd[4:])%999_999_999) * 1_000_000_000,
		pubAt:    make([]atomic.Int64, cfg.Items),
		got:      make([]atomic.Int64, cfg.Items),
		done:     make([]chan struct{}, cfg.Items),
		once:     make([]sync.Once, cfg.Items),
		complete: make(chan struct{}),
		ready:    make(chan struct{}),
		failed:   make(chan struct{}),
		conns:    make([]net.Conn, 0, cfg.Clients),
		servers:  strings.Split(cfg.Server, ","),
	}
	r.src = spread(r.servers, cfg.Clients)
	if cfg.TLS != nil {
		for _, srv := range r.servers {
			c := cfg.TLS.Clone()
			if host, _, err := net.SplitHostPort(srv); err == nil && c.ServerName == "" {
				c.ServerName = host
			}
			r.tls = append(r.tls, c)
		}
	}
	for i := range r.done {
		r.done[i] = make(chan struct{})
	}
	r.alive.Store(int64(cfg.Clients))
	return r
}

// connect starts every client and returns once all of them are in
// notification mode, or with the first failure.
func (r *run) connect(ctx context.Context) ([]*client, error) {
	clients := make([]*client, r.cfg.Clients)
	sem := make(chan struct{}, r.cfg.DialConcurrency)
	r.cfg.Progress(fmt.Sprintf("connecting %d clients to %s (%s) from %s", r.cfg.Clients, r.cfg.Server, map[bool]string{true: "version 1", false: "identified"}[r.cfg.V1], r.src))
launch:
	for i := range clients {
		select {
		case sem <- struct{}{}:
		case <-r.failed:
			break launch
		case <-ctx.Done():
			break launch
		}
		c := newClient(r, i)
		clients[i] = c
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			c.run(sem)
		}()
	}
	select {
	case <-r.ready:
		return clients, nil
	case <-r.failed:
		return nil, r.setupEr
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// clientReady counts a client in notification mode.
func (r *run) clientReady() {
	if int(r.nready.Add(1)) == r.cfg.Clients {
		close(r.ready)
	}
}

// track registers a client's connection so that stop can close it. It
// reports false, having closed it, when the run is already over.
func (r *run) track(nc net.Conn) bool {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if r.closing.Load() {
		_ = nc.Close()
		return false
	}
	r.conns = append(r.conns, nc)
	return true
}

// stop closes every connection and waits for the clients to exit.
func (r *run) stop() {
	r.connMu.Lock()
	r.closing.Store(true)
	for _, nc := range r.conns {
		_ = nc.Close()
	}
	r.conns = nil
	r.connMu.Unlock()
	r.wg.Wait()
}

// pubStats is what the publisher saw.
type pubStats struct {
	us          []uint32 // each publish call's duration, µs
	slow        int      // closed loop: items not fetched by everyone within Settle
	first, last int64    // since(): the first publish began, the last returned
}

// maxInFlight bounds the publish calls in flight at a rate. Beyond it
// the schedule slips, which published_per_s shows.
const maxInFlight = 32

// publish publishes every item, at the rate or in a closed loop, then
// waits for the last fetches.
//
// At a rate, each item is published at its time on an absolute schedule,
// whether or not the calls before it have returned: a load generator that
// waited for each answer would slow down exactly when the server does, and
// measure a lighter load than asked (coordinated omission). The calls then
// overlap, up to maxInFlight. In the closed loop they are one at a time.
func (r *run) publish(ctx context.Context, pub publisher) (ps pubStats, err error) {
	cfg := r.cfg
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		perr  error
		ends  = make([]int64, cfg.Items)
		sem   = make(chan struct{}, maxInFlight)
	)
	ps.us = make([]uint32, cfg.Items)
	one := func(n int, at int64) {
		err := pub.publish(pctx, cfg.Kind, r.value(n))
		end := r.since()
		ps.us[n], ends[n] = micros(end-at), end
		if err != nil {
			errMu.Lock()
			if perr == nil {
				perr = fmt.Errorf("publishing item %d of %d: %w", n+1, cfg.Items, err)
				cancel()
			}
			errMu.Unlock()
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	wait := func(d time.Duration, until <-chan struct{}) bool {
		timer.Reset(d)
		defer timer.Stop()
		select {
		case <-until:
			return true
		case <-timer.C:
		case <-pctx.Done():
		}
		return false
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	var t0 time.Time
	for n := 0; n < cfg.Items && pctx.Err() == nil; n++ {
		if cfg.Rate > 0 && n > 0 {
			if d := time.Until(t0.Add(time.Duration(n) * interval)); d > 0 && !wait(d, nil) && pctx.Err() != nil {
				break
			}
		}
		if cfg.Rate > 0 {
			select {
			case sem <- struct{}{}:
			case <-pctx.Done():
				continue
			}
		}
		at := r.since()
		if n == 0 {
			t0, ps.first = time.Now(), at
		}
		r.pubAt[n].Store(at)
		if cfg.Rate > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				one(n, at)
			}()
			continue
		}
		one(n, at)
		if pctx.Err() == nil && !wait(cfg.Settle, r.done[n]) && pctx.Err() == nil {
			ps.slow++
		}
	}
	wg.Wait()
	errMu.Lock()
	err = perr
	errMu.Unlock()
	switch {
	case err != nil:
		return ps, err
	case ctx.Err() != nil:
		return ps, ctx.Err()
	}
	for _, e := range ends {
		ps.last = max(ps.last, e)
	}
	wait(cfg.Settle, r.complete)
	return ps, ctx.Err()
}

// tally counts, per client, what was fetched, and merges the samples.
func (r *run) tally(res *Result, clients []*client, first int64) {
	var notif, fetch []uint32
	var last int64
	for _, c := range clients {
		notif = append(notif, c.notifUS...)
		fetch = append(fetch, c.fetchUS...)
		res.Duplicated += c.dup
		if c.pushItems {
			res.PushItems++
		}
		res.Foreign += c.foreign
		res.MaxBatch = max(res.MaxBatch, c.maxBatch)
		last = max(last, c.lastFetch)
		if c.dropped {
			res.Dropped++
			if res.FirstError == "" && c.err != nil {
				res.FirstError = fmt.Sprintf("client %d: %v", c.i+1, c.err)
			}
		}
		highest := -1
		for n := r.cfg.Items - 1; n >= 0; n-- {
			if c.has(n) {
				highest = n
				break
			}
		}
		for n := 0; n < r.cfg.Items; n++ {
			switch {
			case c.has(n):
				res.Delivered++
			case r.cfg.Kind == wire.KindRandom && n < highest:
				res.Superseded++
			default:
				res.Lost++
			}
		}
	}
	res.NotifMS, res.FetchMS = distOf(notif), distOf(fetch)
	if last > first {
		res.DurationS = round3(time.Duration(last - first).Seconds())
		res.ItemsPerS = round3(float64(r.cfg.Items) / time.Duration(last-first).Seconds())
	}
}

func plural(k wire.Kind, n int) string {
	s := "random numbers"
	if k == wire.KindClassified {
		s = "classified ads"
	}
	if n == 1 {
		s = strings.TrimSuffix(s, "s")
	}
	return s
}
