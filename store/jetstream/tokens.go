package jetstream

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/harkapp/hark/store"
)

// API tokens live in the key-value bucket P_TOKENS, so that a token added
// or revoked once counts at every gateway: key the token's id, value its
// record in the token file's format (store.EncodeTokenRecord), which
// holds the SHA-256 of the secret and never the secret. A revocation
// deletes the key; each gateway follows the bucket with a watcher and
// answers Check from memory.

// tokensBucketBytes bounds the tokens bucket's storage: store.MaxTokens
// records of the largest size, and the delete markers of as many
// revocations, fit with room to spare. Past it JetStream refuses new
// tokens, not revocations (a delete marker is smaller than a record).
const tokensBucketBytes = 64 << 20

func tokensBucket(prefix string, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       prefix + "_TOKENS",
		Description:  "hark serve: API tokens (the SHA-256 of each, never the secret)",
		MaxValueSize: store.MaxTokenRecordBytes,
		MaxBytes:     tokensBucketBytes,
		Replicas:     replicas,
	}
}

// Tokens is the API tokens of a JetStream store, as the gateway's server
// needs them (server.Tokens): Check answers from memory, which a watcher
// of the bucket keeps up to date, with the semantics of store.TokenSet
// (scopes, expiry, revocation seen within the server's refresh, last use
// recorded in batches by FlushUsage). It is safe for concurrent use, and
// lives as long as its Store: Close stops the watcher.
type Tokens struct {
	st  *Store
	kv  jetstream.KeyValue
	log *slog.Logger

	mu     sync.RWMutex // guards the maps; entries are never modified once in them
	byID   map[string]*tokenEntry
	byHash map[[sha256.Size]byte]*tokenEntry
	bad    map[string]error // keys whose last record was refused, and why

	changed atomic.Bool // the tokens accepted changed since the last Refresh
	lost    atomic.Bool // the watch ended, and a new one could not be started yet

	uses store.TokenUses // since the last FlushUsage

	quit    chan struct{} // closed by stop
	done    chan struct{} // closed when the watcher's goroutine is gone
	trouble chan struct{} // capacity 1: the watch's consumer reported an error

	onApply atomic.Pointer[func()] // tests: called after each record applied
}

// tokenEntry is one token as a gateway holds it.
type tokenEntry struct {
	sum [sha256.Size]byte
	tok store.Token
}

// errWatchLost is Refresh's error while the bucket is not followed.
var errWatchLost = errors.New("not following the tokens bucket (retrying every second): additions and revocations are not seen meanwhile")

// rewatchEvery is how soon a watch of the tokens bucket that could not be
// started is tried again.
const rewatchEvery = time.Second

// Tokens is the store's API tokens, for server.Config.Tokens: gateways
// of one store share them, over the store's own connection.
func (s *Store) Tokens() *Tokens { return s.tokens }

// openTokens opens (or creates) the tokens bucket and reads it whole
// before returning, so that a gateway accepts the tokens that exist as
// soon as it serves; the watcher then follows it.
func (s *Store) openTokens(ctx context.Context, prefix string, replicas int) error {
	kv, err := s.bucket(ctx, tokensBucket(prefix, replicas))
	if err != nil {
		return err
	}
	t := &Tokens{
		st: s, kv: kv, log: s.log,
		byID:    make(map[string]*tokenEntry),
		byHash:  make(map[[sha256.Size]byte]*tokenEntry),
		bad:     make(map[string]error),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		trouble: make(chan struct{}, 1),
	}
	w, err := t.watch(ctx)
	if err != nil {
		return fmt.Errorf("follow the tokens: %w", err)
	}
	s.tokens = t // from here Close stops it
	ready := make(chan struct{})
	go t.follow(w, ready)
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("read the tokens: %w", ctx.Err())
	}
}

// tokensHeartbeat is the idle heartbeat of the watch's ordered consumer:
// two missed and nats.go recreates the consumer, on a node that is still
// there, so that a revocation is seen within seconds of losing the node
// that held it (nats.go's key-value watcher, at 5 s, would take 10).
const tokensHeartbeat = time.Second

// tokenWatch is one watch of the bucket: an ordered consumer of its
// stream, from the latest record of each key on.
type tokenWatch struct {
	cc      jetstream.ConsumeContext
	closed  <-chan struct{} // cc's Closed, asked once: each call starts a goroutine
	updates chan tokenUpdate
	stop    chan struct{} // closed by end: the consumer's handler gives up
	read    bool          // follow has had all that was there at the start
}

// tokenUpdate is one record of the bucket, or with key "" only the news
// that the watch has read all that was there at its start.
type tokenUpdate struct {
	key     string
	value   []byte
	deleted bool // a delete or purge marker: the token was revoked
	last    bool // no record was pending after this one
}

// watch starts a watch of the bucket. ctx bounds only the start.
func (t *Tokens) watch(ctx context.Context) (*tokenWatch, error) {
	bucket := t.kv.Bucket()
	st, err := t.st.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, t.st.fail(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"$KV." + bucket + ".>"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
		// One try of its own: past it, follow watches anew (trouble), as
		// the items' watchdog does (follow.go).
		MaxResetAttempts: 1,
	})
	if err != nil {
		return nil, t.st.fail(err)
	}
	w := &tokenWatch{updates: make(chan tokenUpdate, 256), stop: make(chan struct{})}
	if st.CachedInfo().State.Msgs == 0 {
		w.updates <- tokenUpdate{last: true} // nothing to read: read
	}
	keyAt := len("$KV." + bucket + ".")
	w.cc, err = cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil || len(m.Subject()) <= keyAt {
			return
		}
		u := tokenUpdate{key: m.Subject()[keyAt:], value: m.Data(), last: md.NumPending == 0,
			deleted: m.Headers().Get("KV-Operation") != "" || m.Headers().Get(jetstream.MarkerReasonHeader) != ""}
		select {
		case w.updates <- u:
		case <-w.stop:
		}
	}, jetstream.PullHeartbeat(tokensHeartbeat), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// nats.go's ordered consumer may stall for long after the node
		// holding it died (follow.go): follow watches anew soon. A
		// disconnection is logged once by the handle.
		t.log.Debug("NATS store: following the tokens", "err", err)
		select {
		case t.trouble <- struct{}{}:
		default:
		}
	}))
	if err != nil {
		return nil, t.st.fail(err)
	}
	w.closed = w.cc.Closed()
	return w, nil
}

// end stops the watch's consumer and waits until it has.
func (w *tokenWatch) end() {
	close(w.stop)
	w.cc.Stop()
	<-w.closed
}

// follow applies the bucket's records as the watch delivers them: first
// the latest of each key (then ready is closed), then every change. After
// each reconnection to NATS it watches the bucket anew and drops the keys
// that are gone from it: the consumer, on a server that may have
// restarted meanwhile, is not trusted to resume where it was, and a
// revocation made during an outage must be seen once NATS is back. When a
// watch cannot be started, or ends by itself, it tries again every
// rewatchEvery; meanwhile the tokens read so far stay in force.
func (t *Tokens) follow(cur *tokenWatch, ready chan struct{}) {
	defer close(t.done)
	defer func() {
		if cur != nil {
			cur.end()
		}
	}()
	var (
		seen  map[string]bool // keys read by a new watch, until it has read them all
		retry <-chan time.Time
	)
	for {
		var (
			updates <-chan tokenUpdate
			ended   <-chan struct{}
		)
		if cur != nil {
			updates, ended = cur.updates, cur.closed
		}
		select {
		case <-t.quit:
			return
		case u := <-updates:
			if u.key != "" {
				if seen != nil {
					seen[u.key] = true
				}
				t.apply(u)
				if f := t.onApply.Load(); f != nil {
					(*f)()
				}
			}
			if u.last && !cur.read { // all the records there were at the start
				cur.read = true
				if ready != nil {
					t.changed.Store(false) // what Open read is not a change
					close(ready)
					ready = nil
				}
				if seen != nil {
					t.keepOnly(seen)
					seen = nil
				}
			}
			continue
		case <-ended: // the connection is closed for good
			cur.end()
			cur = nil
			if !t.st.closing.Load() {
				t.lost.Store(true)
				t.log.Warn("NATS store: the watch of the tokens bucket ended; watching it again", "store", t.st.path)
			}
			retry = time.After(rewatchEvery)
			continue
		case <-t.st.reconnected:
		case <-t.trouble:
			if retry == nil {
				retry = time.After(refollowEvery) // not at every report: soon
			}
			continue
		case <-retry:
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		next, err := t.watch(ctx)
		cancel()
		if err != nil {
			t.log.Debug("NATS store: watching the tokens again", "err", err)
			retry = time.After(rewatchEvery)
			continue
		}
		if cur != nil {
			cur.end()
		}
		cur, seen, retry = next, map[string]bool{}, nil
		t.lost.Store(false)
	}
}

// stop ends the watch and waits for the watcher's goroutine.
func (t *Tokens) stop() {
	close(t.quit)
	<-t.done
}

// keepOnly drops the tokens whose keys a new watch did not find: they
// were revoked while the old one was not following.
func (t *Tokens) keepOnly(seen map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, e := range t.byID {
		if !seen[key] {
			delete(t.byID, key)
			delete(t.byHash, e.sum)
			t.changed.Store(true)
		}
	}
	for key := range t.bad {
		if !seen[key] {
			delete(t.bad, key)
		}
	}
	if f := t.onApply.Load(); f != nil {
		(*f)()
	}
}

// apply takes one record (or deletion) of the bucket. A record that is
// refused (malformed, under another key than its id, of a hash another
// token has, or one token too many) leaves what the key held before in
// force, as a malformed token file leaves the tokens read before, and
// Refresh reports it until the key is written again or deleted.
func (t *Tokens) apply(u tokenUpdate) {
	key := u.key
	if u.deleted {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.bad, key)
		if old := t.byID[key]; old != nil {
			delete(t.byID, key)
			delete(t.byHash, old.sum)
			t.changed.Store(true)
		}
		return
	}
	tok, sum, err := store.DecodeTokenRecord(u.value)
	if err == nil && tok.ID != key {
		err = fmt.Errorf("%w: the key holds token %q", store.ErrTokensCorrupt, tok.ID)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.byID[key]
	if err == nil {
		if other := t.byHash[sum]; other != nil && other != old {
			err = fmt.Errorf("%w: the hash of token %s", store.ErrTokensCorrupt, other.tok.ID)
		}
	}
	if err == nil && old == nil && len(t.byID) >= store.MaxTokens {
		err = fmt.Errorf("%w: more than %d in the bucket", store.ErrTooManyTokens, store.MaxTokens)
	}
	if err != nil {
		// Bounded as the tokens are: past it a refused key is still
		// refused, only not named.
		if _, ok := t.bad[key]; ok || len(t.bad) < store.MaxTokens {
			t.bad[key] = err
		}
		return
	}
	delete(t.bad, key)
	n := &tokenEntry{sum: sum, tok: tok}
	if old != nil {
		delete(t.byHash, old.sum)
	}
	t.byID[key], t.byHash[sum] = n, n
	// A new last use or label changes nothing that is checked.
	if old == nil || old.sum != sum || old.tok.Scope != tok.Scope || !old.tok.Expires.Equal(tok.Expires) {
		t.changed.Store(true)
	}
}

// Refresh reports whether the tokens accepted changed since the last
// call: one added, revoked, or of another scope or expiry. It costs no
// request: the watcher has applied the changes as they came. Its error
// says which records of the bucket were refused (they are reported on
// every call until fixed), or that the watch ended.
//
// While NATS cannot be reached nothing changes: the gateway keeps
// answering from the tokens it last knew, and a revocation made
// meanwhile takes effect once the watcher is back.
func (t *Tokens) Refresh() (changed bool, err error) {
	changed = t.changed.Swap(false)
	if t.lost.Load() {
		return changed, errWatchLost
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.bad) == 0 {
		return changed, nil
	}
	first := slices.Min(keysOf(t.bad)) // the same one each time, for the log
	return changed, fmt.Errorf("tokens bucket %s: %d records refused (what their keys held before stays in force), e.g. %s: %w",
		t.kv.Bucket(), len(t.bad), first, t.bad[first])
}

func keysOf(m map[string]error) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// Check reports whether secret is a token of scope that is valid at now,
// and returns it, as store.TokenSet.Check does: the errors are
// store.ErrTokenUnknown (malformed, unknown or revoked: the Token is
// zero), store.ErrTokenScope and store.ErrTokenExpired (with the Token,
// for the log). It answers from memory, also while NATS is down.
func (t *Tokens) Check(secret string, scope store.Scope, now time.Time) (store.Token, error) {
	sum, ok := store.TokenSum(secret)
	if !ok {
		return store.Token{}, store.ErrTokenUnknown
	}
	t.mu.RLock()
	e := t.byHash[sum]
	t.mu.RUnlock()
	// As store.TokenSet: the answer does not depend on how a map
	// compares keys.
	if e == nil || subtle.ConstantTimeCompare(e.sum[:], sum[:]) != 1 {
		return store.Token{}, store.ErrTokenUnknown
	}
	if e.tok.Scope != scope {
		return e.tok, store.ErrTokenScope
	}
	if e.tok.Expired(now) {
		return e.tok, store.ErrTokenExpired
	}
	return e.tok, nil
}

// Valid reports whether the token with id is still known and not expired
// at now: the server ends the connections of a token that is not.
func (t *Tokens) Valid(id string, now time.Time) bool {
	t.mu.RLock()
	e := t.byID[id]
	t.mu.RUnlock()
	return e != nil && !e.tok.Expired(now)
}

// Used records that the token with id was used at now, in memory;
// FlushUsage writes it to the bucket. Unknown ids are ignored, so that
// the record stays bounded by the tokens that exist.
func (t *Tokens) Used(id string, now time.Time) {
	t.mu.RLock()
	known := t.byID[id] != nil
	t.mu.RUnlock()
	if !known {
		return
	}
	t.uses.Record(id, now)
}

// FlushUsage writes the uses recorded since the last flush to the
// records' last_used, keeping the later of the two, with compare-and-set
// (another gateway may write the same record). A token revoked meanwhile
// stays revoked. On an error the uses not written are kept for the next
// try.
func (t *Tokens) FlushUsage() error {
	used := t.uses.Take()
	for id, u := range used {
		if err := t.recordUse(id, u); err != nil {
			t.uses.Keep(used)
			return fmt.Errorf("record token use: %w", err)
		}
		delete(used, id)
	}
	return nil
}

func (t *Tokens) recordUse(id string, at time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for range casTries {
		e, err := t.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil // revoked: nothing to record
		}
		if err != nil {
			return t.st.fail(err)
		}
		tok, sum, err := store.DecodeTokenRecord(e.Value())
		if err != nil {
			return fmt.Errorf("token %s: %w", id, err) // not rewritten: whoever wrote it should see it as it is
		}
		if !at.After(tok.LastUsed) {
			return nil
		}
		tok.LastUsed = at
		_, err = t.kv.Update(ctx, id, store.EncodeTokenRecord(tok, sum), e.Revision())
		if conflict(err) {
			continue // another gateway recorded a use, or it was revoked: read again
		}
		if err != nil {
			return t.st.fail(err)
		}
		return nil
	}
	return fmt.Errorf("token %s: %d writes of others in a row", id, casTries)
}

// The functions below manage the tokens of a JetStream store for `hark
// token … --store nats://`: each connects, does its work on the tokens
// bucket alone (never the items stream, whose limits Open would set from
// its own Retention) and disconnects. Running gateways see the change
// through their watchers.

// DescribeTokens names the tokens of the store opts names, for messages:
// the NATS servers, without credentials, and the bucket.
func DescribeTokens(opts Options) string {
	return fmt.Sprintf("%s bucket %s_TOKENS", redact(opts.URLs), cmp.Or(opts.Prefix, DefaultPrefix))
}

// tokenAdmin is a short connection to the tokens bucket.
type tokenAdmin struct {
	nc   *nats.Conn
	kv   jetstream.KeyValue // nil: no bucket, so no tokens
	name string             // for messages: the servers and the bucket
}

// openTokenAdmin connects to the store opts name; create makes the
// tokens bucket when missing, as Open would.
func openTokenAdmin(ctx context.Context, opts Options, create bool) (*tokenAdmin, error) {
	prefix, err := checkOptions(opts)
	if err != nil {
		return nil, err
	}
	cfg := tokensBucket(prefix, opts.Replicas)
	a := &tokenAdmin{name: DescribeTokens(opts)}
	nopts := append(authOptions(opts), nats.Name("hark token"), nats.Timeout(opTimeout), nats.NoReconnect())
	if a.nc, err = nats.Connect(opts.URLs, nopts...); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", a.name, store.ErrUnavailable, err)
	}
	js, err := jetstream.New(a.nc)
	if err != nil {
		a.nc.Close()
		return nil, fmt.Errorf("%s: %w", a.name, err)
	}
	if create {
		if cfg.Replicas <= 0 {
			cfg.Replicas = defaultReplicas(a.nc)
		}
		a.kv, err = openBucket(ctx, js, cfg)
	} else if a.kv, err = js.KeyValue(ctx, cfg.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		a.kv, err = nil, nil
	}
	if err != nil {
		a.nc.Close()
		return nil, fmt.Errorf("%s: %w", a.name, unavailable(err))
	}
	return a, nil
}

func (a *tokenAdmin) close() { a.nc.Close() }

// entries reads the bucket's records, deletions left out; metaOnly
// leaves out the values too (for counting).
func (a *tokenAdmin) entries(ctx context.Context, metaOnly bool) ([]jetstream.KeyValueEntry, error) {
	if a.kv == nil {
		return nil, nil
	}
	// Cancelled on return: the watcher's subscription lives as long as
	// its context.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wopts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if metaOnly {
		wopts = append(wopts, jetstream.MetaOnly())
	}
	w, err := a.kv.WatchAll(ctx, wopts...)
	if err != nil {
		return nil, unavailable(err)
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return nil, fmt.Errorf("%w: the connection ended while reading the tokens", store.ErrUnavailable)
			case e == nil:
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, unavailable(ctx.Err())
		}
	}
}

// AddToken creates a token of scope in the tokens bucket of the store
// opts names (creating the bucket, with opts.Replicas, when missing) and
// returns its secret, which is stored nowhere: the caller shows it once.
// It is store.AddToken for gateways: the same token, the same checks,
// and at most store.MaxTokens tokens.
func AddToken(ctx context.Context, opts Options, scope store.Scope, label string, expires time.Time) (secret string, tok store.Token, err error) {
	// Checked before connecting: a mistake is not a network problem.
	if _, _, _, err := store.MintToken(scope, label, expires); err != nil {
		return "", store.Token{}, fmt.Errorf("add token: %w", err)
	}
	a, err := openTokenAdmin(ctx, opts, true)
	if err != nil {
		return "", store.Token{}, fmt.Errorf("add token: %w", err)
	}
	defer a.close()
	have, err := a.entries(ctx, true)
	if err != nil {
		return "", store.Token{}, fmt.Errorf("add token: %s: %w", a.name, err)
	}
	if len(have) >= store.MaxTokens {
		return "", store.Token{}, fmt.Errorf("add token: %w: %s holds %d, the most hark allows: revoke unused ones first ('hark token list', 'hark token revoke ID')",
			store.ErrTooManyTokens, a.name, len(have))
	}
	for range casTries {
		secret, tok, sum, err := store.MintToken(scope, label, expires)
		if err != nil {
			return "", store.Token{}, fmt.Errorf("add token: %w", err)
		}
		// Create only: an id already taken is never overwritten.
		_, err = a.kv.Create(ctx, tok.ID, store.EncodeTokenRecord(tok, sum))
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // 50 random bits collided: another id
		}
		if err != nil {
			return "", store.Token{}, fmt.Errorf("add token: %s: %w", a.name, unavailable(err))
		}
		return secret, tok, nil
	}
	return "", store.Token{}, fmt.Errorf("add token: %s: no free id in %d tries", a.name, casTries)
}

// ImportTokens writes toks (another store's, with their hashes) into the
// tokens bucket of the store opts names, creating it when missing, so that
// the same secrets work on its gateways. A token already there with the
// same record is left as it is (a migrate run again); one whose id is
// there with another hash is an error, and nothing of it is overwritten.
// It returns how many it wrote.
func ImportTokens(ctx context.Context, opts Options, toks []store.HashedToken) (int, error) {
	if len(toks) == 0 {
		return 0, nil
	}
	a, err := openTokenAdmin(ctx, opts, true)
	if err != nil {
		return 0, fmt.Errorf("import tokens: %w", err)
	}
	defer a.close()
	have, err := a.entries(ctx, true)
	if err != nil {
		return 0, fmt.Errorf("import tokens: %s: %w", a.name, err)
	}
	if len(have)+len(toks) > store.MaxTokens {
		return 0, fmt.Errorf("import tokens: %w: %s holds %d, and %d more would pass %d", store.ErrTooManyTokens, a.name, len(have), len(toks), store.MaxTokens)
	}
	n := 0
	for _, t := range toks {
		_, err := a.kv.Create(ctx, t.ID, store.EncodeTokenRecord(t.Token, t.Sum))
		if errors.Is(err, jetstream.ErrKeyExists) {
			e, gerr := a.kv.Get(ctx, t.ID)
			if gerr != nil {
				return n, fmt.Errorf("import tokens: %s: token %s: %w", a.name, t.ID, unavailable(gerr))
			}
			if _, sum, derr := store.DecodeTokenRecord(e.Value()); derr != nil || sum != t.Sum {
				return n, fmt.Errorf("import tokens: %s already holds a token %s with another secret: revoke one of them ('hark token revoke') and run it again", a.name, t.ID)
			}
			continue
		}
		if err != nil {
			return n, fmt.Errorf("import tokens: %s: token %s: %w", a.name, t.ID, unavailable(err))
		}
		n++
	}
	return n, nil
}

// ListTokens returns the tokens of the store opts names, oldest first (by
// Created, then ID), as store.ListTokens does. A store without a tokens
// bucket has none. A record that is not a token's is an error that names
// its key.
func ListTokens(ctx context.Context, opts Options) ([]store.Token, error) {
	a, err := openTokenAdmin(ctx, opts, false)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer a.close()
	es, err := a.entries(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %s: %w", a.name, err)
	}
	toks := make([]store.Token, 0, len(es))
	for _, e := range es {
		tok, _, err := store.DecodeTokenRecord(e.Value())
		if err != nil {
			return nil, fmt.Errorf("list tokens: %s: key %q: %w: 'hark token revoke %s' removes it", a.name, e.Key(), err, e.Key())
		}
		toks = append(toks, tok)
	}
	slices.SortFunc(toks, func(a, b store.Token) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return toks, nil
}

// RevokeToken removes the token with id from the store opts names and
// returns what it was; store.ErrNoToken is wrapped when there is none.
// The deletion is compare-and-set on the record read, so that what is
// returned is what was removed. Every gateway stops accepting the token,
// and ends the connections it authenticated, when its watcher sees the
// deletion. A record that is not a token's is removed all the same (its
// Token has only the ID): revoking is how to be rid of one.
func RevokeToken(ctx context.Context, opts Options, id string) (store.Token, error) {
	a, err := openTokenAdmin(ctx, opts, false)
	if err != nil {
		return store.Token{}, fmt.Errorf("revoke token %q: %w", id, err)
	}
	defer a.close()
	noToken := fmt.Errorf("revoke token %q: %w in %s: 'hark token list --store …' shows the ids", id, store.ErrNoToken, a.name)
	if a.kv == nil {
		return store.Token{}, noToken
	}
	for range casTries {
		e, err := a.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return store.Token{}, noToken
		}
		if err != nil {
			return store.Token{}, fmt.Errorf("revoke token %q: %s: %w", id, a.name, unavailable(err))
		}
		tok, _, derr := store.DecodeTokenRecord(e.Value())
		if derr != nil {
			tok = store.Token{ID: id}
		}
		err = a.kv.Delete(ctx, id, jetstream.LastRevision(e.Revision()))
		if conflict(err) {
			continue // a gateway recorded a use meanwhile: read again
		}
		if err != nil {
			return store.Token{}, fmt.Errorf("revoke token %q: %s: %w", id, a.name, unavailable(err))
		}
		return tok, nil
	}
	return store.Token{}, fmt.Errorf("revoke token %q: %s: %d writes of others in a row", id, a.name, casTries)
}
