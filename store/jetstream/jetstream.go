// Package jetstream is a store of hark serve kept in NATS JetStream, so
// that several hark serve processes (gateways) share one store: one epoch,
// one sequence of item ids, one set of read positions. It meets the same
// contract as the bbolt store (store/storetest), and store/storetest's
// RunShared for gateways that share it.
//
// The mapping, all names under Options.Prefix (P, default "HARK"):
//
//   - Items are the stream P_ITEMS, subjects P.items.random and
//     P.items.classified. An item's id is its stream sequence: one sequence
//     for both kinds, handed out by the stream's leader, so ids never collide
//     across gateways. The value is the message's data; its time (the
//     publisher's, in Unix ns) and a publish's fingerprint are headers
//     (Hark-Time, Hark-Fp). The count retention is the stream's
//     MaxMsgsPerSubject = Retention.Ads (so the random subject keeps as many
//     numbers; only the last one matters). The age retention is Prune, which
//     purges the classified subject up to the first ad young enough, not the
//     stream's MaxAge: that would drop the latest random number too.
//   - Idempotency keys are JetStream's message deduplication: the header
//     Nats-Msg-Id is a hash of the key (a key may hold bytes a header cannot),
//     and the stream's duplicate window is Retention.KeyAge (capped at the
//     server's limit when it has one). A duplicate is answered from the first
//     message, read back by its sequence; its Hark-Fp tells a reused key.
//   - Live items reach the server through one ordered consumer per handle,
//     started at Open after what Open read. It tells OnAppend's function of
//     every item, whichever gateway appended it, in sequence order, one at a
//     time, and never twice (it skips what it already told, should the
//     consumer restart from an earlier point). AppendKeyed waits until its own
//     item was told, so that a gateway fans an item out once, in id order.
//     A watchdog (follow.go) replaces that consumer on any sign of trouble,
//     since nats.go's own recovery may stall for long after a node died.
//     The ids and times of the retained ads (no values: the server holds the
//     only copy of those) are kept in memory to report what the count
//     retention drops (Appended.Dropped) and what Prune drops; Items reads
//     the ads themselves from the stream.
//   - Read positions are the key-value bucket P_CLIENTS: key the client id in
//     unpadded base64url, value the record in JSON. A position moves forward
//     only, across gateways: each write reads the record and its revision,
//     merges as the bbolt store does, and writes with compare-and-set,
//     again on a conflict. The bucket's TTL is Retention.ClientIdle: a record
//     is written again at least hourly while its client is seen, so the ids
//     not seen for that long expire with no scan. Its stream's MaxMsgs is
//     Retention.Clients with JetStream's discard-new policy: once full, a new
//     id is refused (not stored, logged, not an error) and a stored one is
//     never evicted for it. A source (Client.Source) establishes at most
//     Retention.ClientsPerSource new ids through one gateway per
//     Retention.ClientIdle: counted by the gateway, which cannot count
//     another's without a scan, so the store's bound is that times the
//     gateways (and twice it across a window's turn). Positions staged
//     together are written together, up to commitWorkers at a time.
//   - The epoch is the key "epoch" of the bucket P_META, created once by the
//     first gateway (the others read it), with the items stream's creation
//     time: when the stream was created again since (its sequence restarts),
//     the next Open mints a new epoch with compare-and-set.
//   - API tokens are the key-value bucket P_TOKENS (Store.Tokens, and
//     AddToken, ListTokens and RevokeToken for `hark token --store`): key
//     the token's id, value its record in the token file's JSON
//     (store.EncodeTokenRecord), which holds the SHA-256 of the secret and
//     never the secret. Adding creates the key (create-only); revoking
//     deletes it with compare-and-set on the record read; a gateway records
//     last uses in batches with compare-and-set. Each handle reads the
//     bucket at Open and follows it (an ordered consumer of its stream, from
//     the latest record of each key), so that Check answers from memory,
//     also while NATS is down, and a change made through any gateway or
//     `hark token` is seen at once; after each reconnection it reads the
//     bucket anew, so that a revocation made meanwhile is not missed even
//     when its delete marker was purged since.
//     Values are at most store.MaxTokenRecordBytes, the bucket at most
//     tokensBucketBytes, and a handle holds at most store.MaxTokens tokens
//     (AddToken refuses more; a handle refuses, and reports through
//     Refresh, the records it cannot take).
//
// Durability is JetStream's: an append returns once the stream's leader
// and a quorum of its replicas hold the item. JetStream syncs its files to
// disk every two minutes by default (the server's sync_interval), not per
// message as the bbolt store does: a single node that loses power may lose
// the last of them; replicas on separate machines are what make an
// acknowledged item survive one.
//
// Outages: the handle reconnects by itself, without end, and logs one line
// per change of state (disconnected, reconnected, closed). While it cannot
// reach NATS, AppendKeyed fails at once (nothing is buffered to be sent
// later: what fails was not stored), or within opTimeout when the server is
// connected but does not answer, with an error wrapping
// store.ErrUnavailable; so do reads of positions. After a reconnection the
// ordered consumer goes on from the item after the last one it told.
//
// Each Open sets the stream's and buckets' limits from its own Retention:
// gateways of one store should be given the same one (the last to open
// wins in JetStream; each keeps its own in memory). Open fails, wrapping
// store.ErrUnavailable, when NATS cannot be reached at start.
//
// Not done (yet): the count bound of idempotency keys (Retention.Keys) is
// not applied, only their age (JetStream's duplicate window; only holders
// of a publish token can add keys beyond loopback);
// a replay whose first item the retention has already dropped is answered
// with the id of that item and the replayed request's own value, its
// fingerprint unchecked; the delete markers of revoked tokens are never
// purged (one small message per revocation).
package jetstream

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/harkapp/hark/internal/ratelog"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

const (
	// opTimeout bounds one request to JetStream: a publish, a read or a
	// write of a position. A handle that is disconnected fails at once.
	opTimeout = 3 * time.Second
	// reconnectWait is the pause between two tries to reach NATS again (plus
	// nats.go's jitter).
	reconnectWait = 500 * time.Millisecond
	// tellWait bounds how long AppendKeyed waits for the ordered consumer to
	// tell OnAppend of its stored item. Only an outage right after the
	// publish makes it wait that long; the item is then told when the
	// consumer resumes. With opTimeout, it stays below the publish API's
	// 10 s write timeout: a publisher is answered (201, notified 0), not
	// cut off, for an item that is stored.
	tellWait = 5 * time.Second
	// followHeartbeat is the ordered consumer's idle heartbeat: two missed
	// and nats.go recreates the consumer, on a node that is still there.
	// Its default, 5 s, made a gateway fan out nothing for 10 s after the
	// node holding its consumer died.
	followHeartbeat = time.Second
	// pingInterval is how often an idle connection checks that NATS is
	// still there.
	pingInterval = 10 * time.Second
)

// DefaultPrefix names the stream and buckets unless Options.Prefix does.
const DefaultPrefix = "HARK"

// Options configure Open.
type Options struct {
	URLs      string // NATS servers: "nats://h1:4222,nats://h2:4222"
	CredsFile string // NATS credentials file ("" none)
	CAFile    string // PEM CA for tls:// NATS URLs ("" system roots)
	// Replicas of the stream and buckets. 0: 3 when the cluster has 3 or
	// more servers (as the connection learns them), else 1. It applies when
	// they are created.
	Replicas  int
	Retention store.Retention // zero fields take the defaults
	Logger    *slog.Logger    // nil discards
	Prefix    string          // names of the stream and buckets (default "HARK"): letters, digits, _ and -
}

// Store is a hark serve store in NATS JetStream. It is safe for concurrent
// use.
type Store struct {
	keep    store.Retention
	log     *slog.Logger
	rl      *ratelog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	items   jetstream.Stream
	clients jetstream.KeyValue
	cstream jetstream.Stream // the clients bucket's stream, for its count
	path    string
	epoch   string

	streamName, subjRandom, subjAds string

	closing  atomic.Bool   // Close began: writes fail with ErrClosed
	closed   chan struct{} // Close began
	connDone chan struct{} // the connection is closed for good
	// reconnected tells the token watcher of each reconnection (capacity
	// 1), after which it reads the tokens bucket again.
	reconnected chan struct{}

	// dmu is held while the follower takes an item, by Items and by Prune:
	// it guards what follows.
	dmu     sync.Mutex
	ads     adQueue // the retained ads, oldest first
	random  store.Item
	stopped bool // Close stopped the follower: tell no more
	follow  jetstream.ConsumeContext

	told     atomic.Uint64 // the last stream sequence the follower took
	tmu      sync.Mutex
	advanced chan struct{} // closed when told moves (then replaced)
	onAppend atomic.Pointer[func(store.Appended)]
	// infoMu serialises Info on the stream handles (items, cstream):
	// nats.go's Stream.Info updates the handle's cached info unguarded.
	infoMu sync.Mutex

	positions         // read positions: clients.go
	tokens    *Tokens // API tokens: tokens.go; set by setup
	watch             // the follower's watchdog: follow.go

	closeOnce sync.Once
	closeErr  error
}

var prefixRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Open connects to NATS, creates or opens the stream and buckets, reads
// what the store holds and starts following it.
func Open(ctx context.Context, opts Options) (_ *Store, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prefix, err := checkOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("open NATS store: %w", err)
	}
	s := &Store{
		keep:        opts.Retention.WithDefaults(),
		log:         log,
		rl:          ratelog.New(log, 0),
		streamName:  prefix + "_ITEMS",
		subjRandom:  prefix + ".items.random",
		subjAds:     prefix + ".items.classified",
		closed:      make(chan struct{}),
		connDone:    make(chan struct{}),
		reconnected: make(chan struct{}, 1),
		watch:       watch{behind: make(chan struct{}, 1), watchDone: make(chan struct{})},
		advanced:    make(chan struct{}),
	}
	s.path = fmt.Sprintf("%s stream %s", redact(opts.URLs), s.streamName)
	defer func() {
		if err != nil {
			s.shut()
			err = fmt.Errorf("open NATS store %s: %w", s.path, err)
		}
	}()

	nopts := []nats.Option{
		nats.Name("hark serve"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		// Nothing is kept to be sent after a reconnection: a publish that
		// fails now was not stored, and its caller is told so.
		nats.ReconnectBufSize(-1),
		nats.Timeout(opTimeout),
		// A server gone without closing the connection (a partition) is
		// noticed after two unanswered pings.
		nats.PingInterval(pingInterval),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if !s.closing.Load() {
				log.Warn("NATS store disconnected; publishing fails until it is back", "store", s.path, "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS store reconnected", "store", s.path, "server", redact(nc.ConnectedUrl()))
			s.lagging() // its consumer may have been on a server that is gone
			select {
			case s.reconnected <- struct{}{}:
			default: // the token watcher has yet to take the last one
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			if !s.closing.Load() {
				log.Error("NATS store connection closed", "store", s.path)
			}
			close(s.connDone)
		}),
	}
	nopts = append(nopts, authOptions(opts)...)
	s.nc, err = nats.Connect(opts.URLs, nopts...)
	if err != nil {
		close(s.connDone) // no connection, no ClosedHandler
		return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return nil, err
	}
	replicas := opts.Replicas
	if replicas <= 0 {
		replicas = defaultReplicas(s.nc)
	}
	if err := s.setup(ctx, prefix, replicas); err != nil {
		return nil, unavailable(err)
	}
	s.initPositions()
	go s.commitClients()
	go s.watchFollower()
	return s, nil
}

// checkOptions checks what Open and the token functions need of opts,
// and returns the prefix.
func checkOptions(opts Options) (prefix string, err error) {
	prefix = cmp.Or(opts.Prefix, DefaultPrefix)
	if !prefixRe.MatchString(prefix) {
		return "", fmt.Errorf("prefix %q: use 1 to 64 letters, digits, _ or -", prefix)
	}
	if strings.TrimSpace(opts.URLs) == "" {
		return "", errors.New("no NATS server given")
	}
	return prefix, nil
}

// authOptions are the connection options of opts' credentials and CA.
func authOptions(opts Options) []nats.Option {
	var nopts []nats.Option
	if opts.CredsFile != "" {
		nopts = append(nopts, nats.UserCredentials(opts.CredsFile))
	}
	if opts.CAFile != "" {
		nopts = append(nopts, nats.RootCAs(opts.CAFile))
	}
	return nopts
}

// defaultReplicas is Options.Replicas' default: 3 when the cluster has 3
// servers or more (as the connection learns them), else 1.
func defaultReplicas(nc *nats.Conn) int {
	if len(nc.Servers()) >= 3 {
		return 3
	}
	return 1
}

// setup creates or opens the stream and buckets, reads the epoch, what the
// stream holds and the tokens, and starts the follower.
func (s *Store) setup(ctx context.Context, prefix string, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, 4*opTimeout)
	defer cancel()
	cfg := jetstream.StreamConfig{
		Name:              s.streamName,
		Description:       "hark serve: published items",
		Subjects:          []string{s.subjRandom, s.subjAds},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: int64(s.keep.Ads),
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		Replicas:          replicas,
		Duplicates:        max(s.keep.KeyAge, 100*time.Millisecond),
		AllowDirect:       true,
	}
	var err error
	s.items, err = s.js.CreateOrUpdateStream(ctx, cfg)
	if limit, ok := duplicatesLimit(err); ok && limit < cfg.Duplicates {
		s.log.Warn("NATS caps the idempotency window: keys are kept for less than --keep-keys says", "limit", limit)
		cfg.Duplicates = limit
		s.items, err = s.js.CreateOrUpdateStream(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("items stream: %w", err)
	}
	created := s.items.CachedInfo().Created

	meta, err := s.bucket(ctx, jetstream.KeyValueConfig{Bucket: prefix + "_META", Description: "hark serve: the store's epoch", Replicas: replicas})
	if err != nil {
		return err
	}
	if s.epoch, err = epoch(ctx, meta, created, s.log); err != nil {
		return err
	}

	s.clients, err = s.bucket(ctx, jetstream.KeyValueConfig{
		Bucket: prefix + "_CLIENTS", Description: "hark serve: read positions",
		TTL: s.keep.ClientIdle, Replicas: replicas,
	})
	if err != nil {
		return err
	}
	// The bound on ids: past it JetStream refuses a new key (the bucket
	// discards new) and takes updates of stored ones.
	if s.cstream, err = s.js.Stream(ctx, "KV_"+prefix+"_CLIENTS"); err != nil {
		return fmt.Errorf("client positions: %w", err)
	}
	if c := s.cstream.CachedInfo().Config; c.MaxMsgs != int64(s.keep.Clients) || c.MaxAge != s.keep.ClientIdle {
		c.MaxMsgs, c.MaxAge = int64(s.keep.Clients), s.keep.ClientIdle
		if s.cstream, err = s.js.UpdateStream(ctx, c); err != nil {
			return fmt.Errorf("client positions: %w", err)
		}
	}
	s.nClients.Store(int64(s.cstream.CachedInfo().State.Msgs))

	if err := s.openTokens(ctx, prefix, replicas); err != nil {
		return err
	}

	last, err := s.load(ctx)
	if err != nil {
		return err
	}
	s.told.Store(last)
	s.follow, err = s.followFrom(ctx, last+1)
	return err
}

// bucket opens the key-value bucket of cfg, creating it when missing.
func (s *Store) bucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return openBucket(ctx, s.js, cfg)
}

func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) { // another gateway was first
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// epochRecord is the value of the meta bucket's "epoch".
type epochRecord struct {
	Epoch  string    `json:"epoch"`
	Stream time.Time `json:"stream_created"` // the items stream the epoch's ids are of
}

// epoch reads the store's epoch, creating it on first use, and minting a
// new one when the items stream is not the one it was minted for.
func epoch(ctx context.Context, meta jetstream.KeyValue, created time.Time, log *slog.Logger) (string, error) {
	fresh, err := json.Marshal(epochRecord{Epoch: newEpoch(), Stream: created})
	if err != nil {
		return "", err
	}
	for range 10 {
		e, err := meta.Get(ctx, "epoch")
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if _, err := meta.Create(ctx, "epoch", fresh); errors.Is(err, jetstream.ErrKeyExists) {
				continue // another gateway created it: read that one
			} else if err != nil {
				return "", fmt.Errorf("create the epoch: %w", err)
			}
			var r epochRecord
			_ = json.Unmarshal(fresh, &r)
			return r.Epoch, nil
		}
		if err != nil {
			return "", fmt.Errorf("read the epoch: %w", err)
		}
		var r epochRecord
		if err := json.Unmarshal(e.Value(), &r); err == nil && wire.ValidEpoch(r.Epoch) && r.Stream.Equal(created) {
			return r.Epoch, nil
		}
		log.Warn("NATS store: the items stream was created again (or the epoch is damaged): a new epoch, clients start over",
			"was", r.Epoch, "stream_created", created)
		if _, err := meta.Update(ctx, "epoch", fresh, e.Revision()); conflict(err) {
			continue // another gateway rotated it first
		} else if err != nil {
			return "", fmt.Errorf("rotate the epoch: %w", err)
		}
		var n epochRecord
		_ = json.Unmarshal(fresh, &n)
		return n.Epoch, nil
	}
	return "", errors.New("the epoch: too many concurrent changes")
}

// newEpoch mints an epoch: 64 random bits, in hex, as the bbolt store's.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Epoch is the store's epoch, shared by every gateway of the store.
func (s *Store) Epoch() string { return s.epoch }

// Path names the store for logs: the NATS servers (without credentials)
// and the items stream.
func (s *Store) Path() string { return s.path }

// Retention is what the store keeps, defaults filled in.
func (s *Store) Retention() store.Retention { return s.keep }

// Close writes the positions staged so far, stops following the items and
// closes the connection. No goroutine of the handle outlives it. It may
// be called more than once, also concurrently.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		close(s.closed)
		<-s.watchDone
		s.stopPositions()
		s.shut()
	})
	return s.closeErr
}

// shut stops the follower and closes the connection, waiting for both.
func (s *Store) shut() {
	s.closing.Store(true)
	s.dmu.Lock()
	s.stopped = true
	follow := s.follow
	s.dmu.Unlock()
	// The consumers before the connection: a consumer stopped after its
	// connection closed may never report itself closed. (Stop may wait
	// for one reset try of nats.go's, up to 10 s during an outage.)
	if follow != nil {
		follow.Stop()
		<-follow.Closed()
	}
	if s.tokens != nil {
		s.tokens.stop()
	}
	s.retired.Wait() // before the connection closes, for the same reason
	if s.nc != nil {
		s.nc.Close()
	}
	<-s.connDone
	s.rl.Close()
}

// unavailable marks a failure to reach or use JetStream.
func unavailable(err error) error {
	if errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

// fail is the error of a request to JetStream that failed: ErrClosed once
// Close began, else ErrUnavailable.
func (s *Store) fail(err error) error {
	if s.closing.Load() {
		return store.ErrClosed
	}
	return unavailable(err)
}

// conflict reports a compare-and-set that lost: the revision moved.
func conflict(err error) bool {
	var api *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

var dupLimitRe = regexp.MustCompile(`server limit of ([0-9a-zµ.]+)`)

// duplicatesLimit reads the server's cap on duplicate windows from the
// error of a stream configuration that exceeds it.
func duplicatesLimit(err error) (time.Duration, bool) {
	if err == nil {
		return 0, false
	}
	m := dupLimitRe.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	d, perr := time.ParseDuration(m[1])
	return d, perr == nil && d > 0
}

// redact drops credentials from a list of NATS URLs.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
