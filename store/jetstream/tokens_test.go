package jetstream_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/jetstream"
)

// hark serve can take them.
var _ server.Tokens = (*jetstream.Tokens)(nil)

// tokenAwait lets a test await what a handle's token watcher applies.
type tokenAwait struct {
	toks    *jetstream.Tokens
	applied chan struct{} // a record was applied (capacity 1)
}

func watchTokens(st *jetstream.Store) *tokenAwait {
	w := &tokenAwait{toks: st.Tokens(), applied: make(chan struct{}, 1)}
	jetstream.OnApply(w.toks, func() {
		select {
		case w.applied <- struct{}{}:
		default:
		}
	})
	return w
}

// await waits, bounded, until cond holds, looking again after each record
// the watcher applies.
func (w *tokenAwait) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(testTimeout)
	defer timeout.Stop()
	for !cond() {
		select {
		case <-w.applied:
		case <-timeout.C:
			t.Fatalf("the token watcher did not see %s within %v", what, testTimeout)
		}
	}
}

// checks reports whether Check gives want for secret of scope.
func (w *tokenAwait) checks(secret string, scope store.Scope, want error) func() bool {
	return func() bool {
		_, err := w.toks.Check(secret, scope, time.Now())
		return errors.Is(err, want)
	}
}

func tokenOpts(ns *natsServer, prefix string) jetstream.Options {
	return jetstream.Options{URLs: ns.URL, Prefix: prefix}
}

func addToken(t *testing.T, opts jetstream.Options, scope store.Scope, label string, expires time.Time) (string, store.Token) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	secret, tok, err := jetstream.AddToken(ctx, opts, scope, label, expires)
	if err != nil {
		t.Fatalf("add token: %v", err)
	}
	return secret, tok
}

func listTokens(t *testing.T, opts jetstream.Options) []store.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	toks, err := jetstream.ListTokens(ctx, opts)
	if err != nil {
		t.Fatalf("list tokens: %v", err)
	}
	return toks
}

func revokeToken(t *testing.T, opts jetstream.Options, id string) store.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tok, err := jetstream.RevokeToken(ctx, opts, id)
	if err != nil {
		t.Fatalf("revoke token %s: %v", id, err)
	}
	return tok
}

// A token added once is accepted by every gateway of the store, for its
// scope only, as soon as each one's watcher has seen it; revoked once, it
// is refused by every gateway. Refresh reports each change once.
func TestTokensSharedByGateways(t *testing.T) {
	ns := startNATS(t)
	a := openStore(t, ns, "TOK", store.Retention{}, nil)
	defer a.Close()
	b := openStore(t, ns, "TOK", store.Retention{}, nil)
	defer b.Close()
	wa, wb := watchTokens(a), watchTokens(b)
	if changed, err := wb.toks.Refresh(); changed || err != nil {
		t.Errorf("Refresh of a fresh store: %v, %v; want no change, no error", changed, err)
	}
	opts := tokenOpts(ns, "TOK")

	secret, tok := addToken(t, opts, store.ScopeSubscribe, "desk", time.Time{})
	wb.await(t, "the token added", wb.checks(secret, store.ScopeSubscribe, nil))
	wa.await(t, "the token added", wa.checks(secret, store.ScopeSubscribe, nil))
	got, err := wb.toks.Check(secret, store.ScopeSubscribe, time.Now())
	if err != nil || got.ID != tok.ID || got.Label != "desk" {
		t.Errorf("Check on the other gateway: %+v, %v; want %+v", got, err, tok)
	}
	if got, err := wb.toks.Check(secret, store.ScopePublish, time.Now()); !errors.Is(err, store.ErrTokenScope) || got.ID != tok.ID {
		t.Errorf("Check for the other scope: %+v, %v; want ErrTokenScope with the token", got, err)
	}
	if other, _, _ := mint(t); !wb.checks(other, store.ScopeSubscribe, store.ErrTokenUnknown)() {
		t.Error("Check of another secret: not ErrTokenUnknown")
	}
	if !wb.toks.Valid(tok.ID, time.Now()) {
		t.Errorf("Valid(%s) on the other gateway: false", tok.ID)
	}
	if changed, err := wb.toks.Refresh(); !changed || err != nil {
		t.Errorf("Refresh after an add: %v, %v; want a change", changed, err)
	}
	if changed, _ := wb.toks.Refresh(); changed {
		t.Error("Refresh again: a change, want none")
	}

	if gone := revokeToken(t, opts, tok.ID); gone.ID != tok.ID || gone.Scope != store.ScopeSubscribe || gone.Label != "desk" {
		t.Errorf("RevokeToken returned %+v, want %+v", gone, tok)
	}
	wb.await(t, "the revocation", wb.checks(secret, store.ScopeSubscribe, store.ErrTokenUnknown))
	wa.await(t, "the revocation", wa.checks(secret, store.ScopeSubscribe, store.ErrTokenUnknown))
	if wb.toks.Valid(tok.ID, time.Now()) {
		t.Errorf("Valid(%s) after the revocation: true", tok.ID)
	}
	if changed, err := wb.toks.Refresh(); !changed || err != nil {
		t.Errorf("Refresh after a revocation: %v, %v; want a change", changed, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := jetstream.RevokeToken(ctx, opts, tok.ID); !errors.Is(err, store.ErrNoToken) {
		t.Errorf("revoking %s again: %v, want ErrNoToken", tok.ID, err)
	}

	// A gateway opened later reads the tokens there are at Open.
	secret2, _ := addToken(t, opts, store.ScopePublish, "ci", time.Time{})
	c := openStore(t, ns, "TOK", store.Retention{}, nil)
	defer c.Close()
	if _, err := c.Tokens().Check(secret2, store.ScopePublish, time.Now()); err != nil {
		t.Errorf("Check right after Open: %v", err)
	}
	if changed, _ := c.Tokens().Refresh(); changed {
		t.Error("Refresh right after Open: a change, want none (what Open read is not one)")
	}
}

// A token past its expiry is refused as expired, and no longer Valid.
func TestTokensExpire(t *testing.T) {
	ns := startNATS(t)
	st := openStore(t, ns, "TOKEXP", store.Retention{}, nil)
	defer st.Close()
	w := watchTokens(st)
	expires := time.Now().Add(time.Hour).Truncate(time.Second)
	secret, tok := addToken(t, tokenOpts(ns, "TOKEXP"), store.ScopePublish, "", expires)
	w.await(t, "the token added", w.checks(secret, store.ScopePublish, nil))
	if !tok.Expires.Equal(expires) {
		t.Errorf("the token expires %v, want %v", tok.Expires, expires)
	}
	later := expires.Add(time.Second)
	if got, err := w.toks.Check(secret, store.ScopePublish, later); !errors.Is(err, store.ErrTokenExpired) || got.ID != tok.ID {
		t.Errorf("Check after the expiry: %+v, %v; want ErrTokenExpired", got, err)
	}
	if w.toks.Valid(tok.ID, later) {
		t.Error("Valid after the expiry: true")
	}
	if !w.toks.Valid(tok.ID, expires.Add(-time.Second)) {
		t.Error("Valid before the expiry: false")
	}
}

// The bucket holds the SHA-256 of a token, never the secret, and bounds
// what it takes; a record that is not a token's is refused by the
// gateways, who say so through Refresh and keep accepting the others.
func TestTokensStoredHashed(t *testing.T) {
	ns := startNATS(t)
	st := openStore(t, ns, "TOKHASH", store.Retention{}, nil)
	defer st.Close()
	w := watchTokens(st)
	secret, tok := addToken(t, tokenOpts(ns, "TOKHASH"), store.ScopeSubscribe, "desk", time.Time{})

	js := ns.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, "TOKHASH_TOKENS")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	v := string(e.Value())
	if strings.Contains(v, secret) || strings.Contains(v, secret[len(store.TokenPrefix):]) || strings.Contains(v, secret[len(store.TokenPrefix):][:20]) {
		t.Errorf("the bucket holds the secret: %s", v)
	}
	if !strings.Contains(v, hex.EncodeToString(sum[:])) {
		t.Errorf("the bucket's record has no SHA-256 of the secret: %s", v)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := status.Config(); c.MaxValueSize != store.MaxTokenRecordBytes || c.MaxBytes <= 0 || c.History != 1 {
		t.Errorf("the tokens bucket takes values of %d bytes, %d in all, %d revisions; want %d, a bound, 1",
			c.MaxValueSize, c.MaxBytes, c.History, store.MaxTokenRecordBytes)
	}
	if _, err := kv.Put(ctx, "huge", make([]byte, store.MaxTokenRecordBytes+1)); err == nil {
		t.Error("the bucket took a value larger than a token's record")
	}

	w.await(t, "the token added", w.checks(secret, store.ScopeSubscribe, nil))
	w.toks.Refresh()
	if _, err := kv.Put(ctx, "aaaaaaaaaa", []byte(`{"id":"aaaaaaaaaa","secret":"hark_x"}`)); err != nil {
		t.Fatal(err)
	}
	w.await(t, "a bad record", func() bool {
		_, err := w.toks.Refresh()
		return err != nil
	})
	if _, err := w.toks.Refresh(); !errors.Is(err, store.ErrTokensCorrupt) || !strings.Contains(err.Error(), "aaaaaaaaaa") {
		t.Errorf("Refresh with a bad record: %v; want ErrTokensCorrupt naming its key", err)
	}
	if _, err := w.toks.Check(secret, store.ScopeSubscribe, time.Now()); err != nil {
		t.Errorf("Check of a good token beside a bad record: %v", err)
	}
	// Revoking it is how to be rid of it.
	revokeToken(t, tokenOpts(ns, "TOKHASH"), "aaaaaaaaaa")
	w.await(t, "the bad record's deletion", func() bool {
		_, err := w.toks.Refresh()
		return err == nil
	})
}

// A gateway records when a token was last used in batches (FlushUsage),
// which ListTokens shows; a token revoked before the flush stays revoked.
func TestTokensUsage(t *testing.T) {
	ns := startNATS(t)
	st := openStore(t, ns, "TOKUSE", store.Retention{}, nil)
	defer st.Close()
	w := watchTokens(st)
	opts := tokenOpts(ns, "TOKUSE")
	s1, t1 := addToken(t, opts, store.ScopePublish, "one", time.Time{})
	s2, t2 := addToken(t, opts, store.ScopePublish, "two", time.Time{})
	w.await(t, "both tokens", func() bool {
		return w.checks(s1, store.ScopePublish, nil)() && w.checks(s2, store.ScopePublish, nil)()
	})
	used := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	w.toks.Used(t1.ID, used.Add(-time.Minute))
	w.toks.Used(t1.ID, used)
	w.toks.Used(t2.ID, used)
	w.toks.Used("bbbbbbbbbb", used) // unknown: ignored
	if toks := listTokens(t, opts); len(toks) != 2 || !toks[0].LastUsed.IsZero() {
		t.Fatalf("before FlushUsage: %+v; want two tokens never used", toks)
	}
	revokeToken(t, opts, t2.ID)
	if err := w.toks.FlushUsage(); err != nil {
		t.Fatal(err)
	}
	toks := listTokens(t, opts)
	if len(toks) != 1 || toks[0].ID != t1.ID || !toks[0].LastUsed.Equal(used) {
		t.Fatalf("after FlushUsage: %+v; want only %s, last used %v", toks, t1.ID, used)
	}
	// An earlier use does not move it back.
	w.toks.Used(t1.ID, used.Add(-time.Hour))
	if err := w.toks.FlushUsage(); err != nil {
		t.Fatal(err)
	}
	if toks := listTokens(t, opts); !toks[0].LastUsed.Equal(used) {
		t.Errorf("an earlier use moved last used to %v", toks[0].LastUsed)
	}
}

// While NATS is down a gateway answers from the tokens it knew; recording
// uses fails (they are kept for the next flush); once NATS is back, the
// watcher goes on and a revocation made then is seen.
func TestTokensDuringOutage(t *testing.T) {
	ns := startNATS(t)
	logs := newLogWatch()
	st := openStore(t, ns, "TOKOUT", store.Retention{}, logs.logger())
	defer st.Close()
	w := watchTokens(st)
	opts := tokenOpts(ns, "TOKOUT")
	secret, tok := addToken(t, opts, store.ScopeSubscribe, "", time.Time{})
	w.await(t, "the token added", w.checks(secret, store.ScopeSubscribe, nil))

	ns.Stop()
	logs.await(t, "disconnected", 1)
	if _, err := w.toks.Check(secret, store.ScopeSubscribe, time.Now()); err != nil {
		t.Errorf("Check while NATS is down: %v, want the token known before", err)
	}
	if !w.toks.Valid(tok.ID, time.Now()) {
		t.Error("Valid while NATS is down: false")
	}
	used := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	w.toks.Used(tok.ID, used)
	if err := w.toks.FlushUsage(); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("FlushUsage while NATS is down: %v, want ErrUnavailable", err)
	}

	ns.Start()
	logs.await(t, "reconnected", 1)
	if err := w.toks.FlushUsage(); err != nil {
		t.Errorf("FlushUsage once NATS is back: %v", err)
	}
	if toks := listTokens(t, opts); len(toks) != 1 || !toks[0].LastUsed.Equal(used) {
		t.Errorf("after the outage: %+v; want the use kept and written", toks)
	}
	revokeToken(t, opts, tok.ID)
	w.await(t, "a revocation after the outage", w.checks(secret, store.ScopeSubscribe, store.ErrTokenUnknown))
}

// The token functions work on the tokens bucket alone: listing or
// revoking in a store that has none creates nothing, a mistake is said
// before connecting, and past store.MaxTokens a token is refused, by add
// and by the gateways.
func TestTokensAdmin(t *testing.T) {
	ns := startNATS(t)
	opts := tokenOpts(ns, "TOKADM")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if toks, err := jetstream.ListTokens(ctx, opts); err != nil || len(toks) != 0 {
		t.Errorf("ListTokens of a store with no bucket: %v, %v; want none", toks, err)
	}
	if _, err := jetstream.RevokeToken(ctx, opts, "aaaaaaaaaa"); !errors.Is(err, store.ErrNoToken) {
		t.Errorf("RevokeToken in a store with no bucket: %v, want ErrNoToken", err)
	}
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := njs.New(nc, njs.WithPublishAsyncMaxPending(2*store.MaxTokens))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(ctx, "TOKADM_TOKENS"); !errors.Is(err, njs.ErrBucketNotFound) {
		t.Errorf("list and revoke created the bucket: %v", err)
	}
	if _, err := js.Stream(ctx, "TOKADM_ITEMS"); !errors.Is(err, njs.ErrStreamNotFound) {
		t.Errorf("the token functions touched the items stream: %v", err)
	}
	gone := jetstream.Options{URLs: "nats://127.0.0.1:1", Prefix: "TOKADM"}
	if _, _, err := jetstream.AddToken(ctx, gone, "admin", "", time.Time{}); !errors.Is(err, store.ErrBadScope) {
		t.Errorf("AddToken of a bad scope: %v, want ErrBadScope", err)
	}
	if _, _, err := jetstream.AddToken(ctx, gone, store.ScopePublish, "", time.Time{}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("AddToken with no NATS: %v, want ErrUnavailable", err)
	}

	a := addTokenList(t, opts, 3)
	if toks := listTokens(t, opts); len(toks) != 3 || toks[0].ID != a[0].ID || toks[2].ID != a[2].ID {
		t.Errorf("ListTokens: %+v; want the three, oldest first", toks)
	}

	// Fill the bucket up to the bound behind hark's back.
	kv, err := js.KeyValue(ctx, "TOKADM_TOKENS")
	if err != nil {
		t.Fatal(err)
	}
	fill(t, js, "TOKADM_TOKENS", store.MaxTokens-3)
	if _, _, err := jetstream.AddToken(ctx, opts, store.ScopePublish, "", time.Time{}); !errors.Is(err, store.ErrTooManyTokens) {
		t.Errorf("AddToken past %d tokens: %v, want ErrTooManyTokens", store.MaxTokens, err)
	}
	st := openStore(t, ns, "TOKADM", store.Retention{}, nil)
	defer st.Close()
	w := watchTokens(st)
	if _, err := w.toks.Refresh(); err != nil {
		t.Fatalf("Refresh of a full bucket: %v", err)
	}
	secret, tok, sum := mint(t)
	if _, err := kv.Create(ctx, tok.ID, store.EncodeTokenRecord(tok, sum)); err != nil {
		t.Fatal(err)
	}
	w.await(t, "one token too many", func() bool {
		_, err := w.toks.Refresh()
		return err != nil
	})
	if _, err := w.toks.Refresh(); !errors.Is(err, store.ErrTooManyTokens) {
		t.Errorf("Refresh past %d tokens: %v, want ErrTooManyTokens", store.MaxTokens, err)
	}
	if _, err := w.toks.Check(secret, store.ScopePublish, time.Now()); !errors.Is(err, store.ErrTokenUnknown) {
		t.Errorf("Check of a token past the bound: %v, want ErrTokenUnknown", err)
	}
}

func addTokenList(t *testing.T, opts jetstream.Options, n int) []store.Token {
	t.Helper()
	var toks []store.Token
	for i := range n {
		_, tok := addToken(t, opts, store.ScopePublish, fmt.Sprint("t", i), time.Time{})
		toks = append(toks, tok)
	}
	return toks
}

func mint(t *testing.T) (string, store.Token, [sha256.Size]byte) {
	t.Helper()
	secret, tok, sum, err := store.MintToken(store.ScopePublish, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return secret, tok, sum
}

// fill writes n token records into bucket, published at once.
func fill(t *testing.T, js njs.JetStream, bucket string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		_, tok, sum := mint(t)
		if _, err := js.PublishAsync("$KV."+bucket+"."+tok.ID, store.EncodeTokenRecord(tok, sum)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(testTimeout):
		t.Fatalf("writing %d tokens took over %v", n, testTimeout)
	}
}

// A gateway cut off from NATS reads the tokens bucket anew once it is
// back, so that it drops a token revoked meanwhile even when the delete
// marker is gone by then (`nats kv purge-deletes`, a restore): its
// consumer, which resumes after the last record it had, would never see
// the revocation.
func TestTokensReadAgainAfterReconnecting(t *testing.T) {
	ns := startNATS(t)
	px := startCutProxy(t, ns.URL)
	logs := newLogWatch()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := jetstream.Open(ctx, jetstream.Options{URLs: px.url, Prefix: "TOKCUT", Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := watchTokens(st)
	opts := tokenOpts(ns, "TOKCUT")
	gone, tok := addToken(t, opts, store.ScopeSubscribe, "revoked while away", time.Time{})
	kept, _ := addToken(t, opts, store.ScopeSubscribe, "kept", time.Time{})
	w.await(t, "both tokens", func() bool {
		return w.checks(gone, store.ScopeSubscribe, nil)() && w.checks(kept, store.ScopeSubscribe, nil)()
	})

	px.cut()
	logs.await(t, "disconnected", 1)
	revokeToken(t, opts, tok.ID)
	js := ns.JetStream(t)
	kv, err := js.KeyValue(ctx, "TOKCUT_TOKENS")
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.PurgeDeletes(ctx, njs.DeleteMarkersOlderThan(-1)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.toks.Check(gone, store.ScopeSubscribe, time.Now()); err != nil {
		t.Fatalf("Check while cut off: %v, want the token known before", err)
	}

	px.restore()
	logs.await(t, "reconnected", 1)
	w.await(t, "the revocation made while it was cut off", w.checks(gone, store.ScopeSubscribe, store.ErrTokenUnknown))
	if _, err := w.toks.Check(kept, store.ScopeSubscribe, time.Now()); err != nil {
		t.Errorf("Check of the token kept: %v", err)
	}
	if changed, err := w.toks.Refresh(); !changed || err != nil {
		t.Errorf("Refresh after reading the bucket anew: %v, %v; want a change", changed, err)
	}
}

// cutProxy forwards TCP connections to a NATS server, and can cut them
// all and refuse new ones for a while: an outage of one client's network,
// while the server and everybody else carry on.
type cutProxy struct {
	url    string
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startCutProxy(t *testing.T, natsURL string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{url: "nats://" + ln.Addr().String(), ln: ln, target: strings.TrimPrefix(natsURL, "nats://"), conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut closes every connection and refuses new ones until restore.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// Tokens moved from a bbolt store's file keep their secrets: imported
// again they are left as they are, and an id already there with another
// secret is refused, not overwritten.
func TestImportTokens(t *testing.T) {
	ns := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	dir := t.TempDir()
	secret, tok, err := store.AddToken(dir, store.ScopeSubscribe, "alice", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	toks, err := store.ExportTokens(dir)
	if err != nil || len(toks) != 1 {
		t.Fatalf("export: %v, %v", toks, err)
	}
	opts := jetstream.Options{URLs: ns.URL, Prefix: "MOVED"}
	if n, err := jetstream.ImportTokens(ctx, opts, toks); n != 1 || err != nil {
		t.Fatalf("import: %d, %v; want 1", n, err)
	}
	if n, err := jetstream.ImportTokens(ctx, opts, toks); n != 0 || err != nil {
		t.Fatalf("import again: %d, %v; want 0 and no error", n, err)
	}
	other := toks[0]
	other.Sum[0] ^= 1
	if _, err := jetstream.ImportTokens(ctx, opts, []store.HashedToken{other}); err == nil || !strings.Contains(err.Error(), "another secret") {
		t.Fatalf("import of another secret under the same id: %v", err)
	}
	st := openStore(t, ns, "MOVED", store.Retention{}, nil)
	defer st.Close()
	if got, err := st.Tokens().Check(secret, store.ScopeSubscribe, time.Now()); err != nil || got.ID != tok.ID {
		t.Fatalf("the moved token: %+v, %v; want %s", got, err, tok.ID)
	}
}
