package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/harkapp/hark/internal/hostport"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// Tokens is what the server needs of its API tokens: checking a secret,
// seeing changes made elsewhere (by `hark token` in another process, or
// through another gateway), and recording use. store.TokenSet, a file in
// the data directory, is the default; store/jetstream's Store.Tokens is
// one that gateways share.
type Tokens interface {
	Check(secret string, scope store.Scope, now time.Time) (store.Token, error)
	Refresh() (changed bool, err error)
	Valid(id string, now time.Time) bool
	Used(id string, now time.Time)
	FlushUsage() error
}

// The one the server opens.
var _ Tokens = (*store.TokenSet)(nil)

// Failed attempts to authenticate are answered more slowly, per source
// (sourceOf): the first few at once (a typo), then after a delay that
// doubles up to maxAuthDelay. A source forgets its failures after
// authForget without one. The table is bounded: a stranger with many
// addresses can fill it, and then the source quiet longest is forgotten,
// which costs a guess at a 256-bit secret nothing it did not cost already.
const (
	authFreeTries  = 5
	firstAuthDelay = 250 * time.Millisecond
	maxAuthDelay   = 30 * time.Second
	authForget     = 15 * time.Minute
	maxAuthSources = 10000
)

type authFailures struct {
	mu  sync.Mutex
	src map[netip.Addr]*failRecord
}

type failRecord struct {
	n    int
	last time.Time
}

// fail records a failure from src at now and returns how long to wait
// before answering it.
func (a *authFailures) fail(src netip.Addr, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.src == nil {
		a.src = make(map[netip.Addr]*failRecord)
	}
	r := a.src[src]
	if r != nil && now.Sub(r.last) > authForget {
		r.n = 0
	}
	if r == nil {
		if len(a.src) >= maxAuthSources {
			a.forgetLocked(now)
		}
		if len(a.src) >= maxAuthSources {
			// Full of recent offenders: the one quiet longest makes
			// room. Penalising every new source instead would let one
			// stranger with a /48 slow down everybody's first typo.
			a.evictOldestLocked()
		}
		r = &failRecord{}
		a.src[src] = r
	}
	r.n++
	r.last = now
	if r.n <= authFreeTries {
		return 0
	}
	d := firstAuthDelay << min(r.n-authFreeTries-1, 16)
	return min(d, maxAuthDelay)
}

// forget drops sources without a failure for authForget.
func (a *authFailures) forget(now time.Time) {
	a.mu.Lock()
	a.forgetLocked(now)
	a.mu.Unlock()
}

func (a *authFailures) evictOldestLocked() {
	var oldest netip.Addr
	var at time.Time
	for k, r := range a.src {
		if at.IsZero() || r.last.Before(at) {
			oldest, at = k, r.last
		}
	}
	delete(a.src, oldest)
}

func (a *authFailures) forgetLocked(now time.Time) {
	for k, r := range a.src {
		if now.Sub(r.last) > authForget {
			delete(a.src, k)
		}
	}
}

// authResult is the outcome of checking a presented token.
type authResult struct {
	tok   store.Token
	reply string // the error line; "" when the token is good
	why   string // for the log: a fixed set, so ratelog's keys stay bounded
}

const whyScope = "token of another scope"

// checkToken checks secret for scope, from a peer at remote over a
// channel that is TLS or not.
func (s *Server) checkToken(secret string, scope store.Scope, remote net.Addr, overTLS bool) authResult {
	if !overTLS && !isLoopbackAddr(remote) {
		return authResult{reply: wire.ErrAuthInClear, why: "sent in plaintext from a non-loopback address"}
	}
	tok, err := s.tokens.Check(secret, scope, time.Now())
	switch {
	case err == nil:
		return authResult{tok: tok}
	case errors.Is(err, store.ErrTokenExpired):
		return authResult{reply: wire.ErrAuthExpired, why: "token expired"}
	case errors.Is(err, store.ErrTokenScope):
		return authResult{reply: wire.ErrAuthFailed, why: whyScope}
	}
	return authResult{reply: wire.ErrAuthFailed, why: "unknown or revoked token"}
}

// slowDown waits before answering a failed attempt from remote, as long
// as its source's record says but at most limit, or until the server
// shuts down.
func (s *Server) slowDown(ctx context.Context, remote net.Addr, limit time.Duration) {
	d := min(s.authFails.fail(sourceOf(remote), time.Now()), limit)
	if h := s.cfg.onSlow; h != nil {
		h(d)
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
}

// cmdAuth answers "auth <token>", the first command. It returns the
// reason to end the connection after the reply, or notEnded.
func (c *conn) cmdAuth(arg string) endReason {
	s := c.s
	secret, ok := cutSpace(arg)
	if !ok || len(secret) > wire.MaxTokenBytes {
		secret = "" // fails as an unknown token
	}
	res := s.checkToken(secret, store.ScopeSubscribe, c.sk.remote(), c.sk.overTLS())
	if res.reply != "" {
		s.slowDown(context.Background(), c.sk.remote(), maxAuthDelay)
		s.rl.Warn("auth failed: "+res.why, "remote", c.sk.remote())
		c.reply(res.reply)
		return endAuthFailed
	}
	s.tokens.Used(res.tok.ID, time.Now())
	s.mu.Lock()
	s.tokenConns[c] = res.tok.ID
	s.mu.Unlock()
	c.state.Or(stAuthed)
	c.reply(wire.OK)
	return notEnded
}

// dropRevoked ends every connection whose token was revoked or has
// expired. It runs after each change of the token file and every second.
func (s *Server) dropRevoked(now time.Time) {
	var gone []*conn
	s.mu.Lock()
	for c, id := range s.tokenConns {
		if !s.tokens.Valid(id, now) {
			gone = append(gone, c)
		}
	}
	s.mu.Unlock()
	for _, c := range gone { // no socket is touched under the hub's lock
		c.end(endTokenRevoked, nil)
	}
}

// isLoopbackAddr reports whether a peer is on this machine.
func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && hostport.IsLoopbackIP(ta.AddrPort().Addr())
}

// The watcher's periods: the tokens are checked often enough that a
// revocation takes effect within a second; the certificate files once a
// second; last-use times are written once a minute.
const (
	tokenCheckEvery = 250 * time.Millisecond
	certCheckTicks  = 4   // × tokenCheckEvery
	expiryTicks     = 4   // × tokenCheckEvery: tokens expiring while connected
	usageFlushTicks = 240 // × tokenCheckEvery
)

// watcher notices what other processes change: the tokens (`hark token
// add/revoke` on the running server's data directory, or on the store
// gateways share) and the certificate files (a renewal).
func (s *Server) watcher() {
	t := time.NewTicker(tokenCheckEvery)
	defer t.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		changed, err := s.tokens.Refresh()
		if err != nil {
			s.rl.Error("reading the tokens failed: the tokens read before stay in force", "err", err)
		}
		if changed || tick%expiryTicks == 0 {
			s.dropRevoked(now)
		}
		if s.certs != nil && tick%certCheckTicks == 0 && s.certs.changed() {
			_ = s.ReloadCert() // logs either way
		}
		if h := s.cfg.onWatch; h != nil {
			h()
		}
		if tick%usageFlushTicks == 0 {
			if err := s.tokens.FlushUsage(); err != nil {
				s.rl.Warn("recording when tokens were last used failed", "err", err)
			}
			s.authFails.forget(now)
		}
	}
}
