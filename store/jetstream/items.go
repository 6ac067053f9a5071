package jetstream

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// Headers of an item's message besides its value, the data.
const (
	hdrTime = "Hark-Time" // the item's time, Unix ns in decimal
	hdrFp   = "Hark-Fp"   // a keyed publish's fingerprint, in hex
)

// scanBatch is how many messages one pull of a scan asks for.
const scanBatch = 512

// adMark is one retained ad, as the handle follows them: its id and time
// (Unix ns; 0 when its message has none).
type adMark struct {
	id uint64
	at int64
}

// adQueue is the retained ads, oldest first: pushed at the back, dropped
// from the front.
type adQueue struct {
	q    []adMark
	head int
}

func (a *adQueue) len() int          { return len(a.q) - a.head }
func (a *adQueue) at(i int) adMark   { return a.q[a.head+i] }
func (a *adQueue) push(m adMark)     { a.q = append(a.q, m) }
func (a *adQueue) back() (m adMark)  { return a.q[len(a.q)-1] }
func (a *adQueue) front() (m adMark) { return a.q[a.head] }

// pop drops the n oldest and returns their ids.
func (a *adQueue) pop(n int) []uint64 {
	ids := make([]uint64, n)
	for i := range n {
		ids[i] = a.q[a.head+i].id
	}
	a.head += n
	if a.head > len(a.q)/2 { // the slice would only grow
		a.q = append(a.q[:0], a.q[a.head:]...)
		a.head = 0
	}
	return ids
}

// AppendKeyed publishes an item to the items stream and returns it with its
// id, the stream sequence, once JetStream has stored it (on a quorum of its
// replicas) and OnAppend's function was told of it. The value must pass the
// rules of its kind. A key makes it idempotent, as the bbolt store's: a
// later call with the key appends nothing and returns the first item with
// replayed true, or an error wrapping store.ErrKeyReused when its
// fingerprint differs; keys are kept Retention.KeyAge (the stream's
// duplicate window). When JetStream cannot be reached or does not answer
// within opTimeout, the error wraps store.ErrUnavailable.
func (s *Store) AppendKeyed(kind wire.Kind, value string, at time.Time, key string, fp [32]byte) (store.Item, bool, error) {
	if !kind.Valid() {
		return store.Item{}, false, fmt.Errorf("append: unknown kind %q: %w", kind, wire.ErrInvalid)
	}
	if err := store.ValidValue(kind, value); err != nil {
		return store.Item{}, false, fmt.Errorf("append %s: %w", kind, err)
	}
	if len(key) > store.MaxKeyBytes {
		return store.Item{}, false, fmt.Errorf("append %s: an idempotency key is 1 to %d bytes, this one is %d: %w", kind, store.MaxKeyBytes, len(key), wire.ErrInvalid)
	}
	if s.closing.Load() {
		return store.Item{}, false, fmt.Errorf("append %s: %w", kind, store.ErrClosed)
	}
	m := nats.NewMsg(s.subject(kind))
	m.Data = []byte(value)
	m.Header.Set(hdrTime, strconv.FormatInt(at.UnixNano(), 10))
	if key != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID(key))
		m.Header.Set(hdrFp, hex.EncodeToString(fp[:]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	ack, err := s.js.PublishMsg(ctx, m)
	if err != nil {
		return store.Item{}, false, fmt.Errorf("append %s: %w", kind, s.fail(err))
	}
	it := store.Item{ID: ack.Sequence, Kind: kind, Value: value, Time: at}
	if ack.Duplicate {
		return s.replay(ctx, it, key, fp)
	}
	s.waitTold(ack.Sequence)
	return it, false, nil
}

// replay answers a publish JetStream found to be a duplicate of the item
// with it.ID.
func (s *Store) replay(ctx context.Context, it store.Item, key string, fp [32]byte) (store.Item, bool, error) {
	raw, err := s.items.GetMsg(ctx, it.ID)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// The retention dropped the first item within the key's window: its
		// id is all that is known of it.
		return it, true, nil
	}
	if err != nil {
		return store.Item{}, false, fmt.Errorf("append %s with idempotency key %q: %w", it.Kind, clip(key), s.fail(err))
	}
	if raw.Header.Get(hdrFp) != hex.EncodeToString(fp[:]) {
		return store.Item{}, false, fmt.Errorf("append %s with idempotency key %q: %w", it.Kind, clip(key), store.ErrKeyReused)
	}
	first, err := s.decode(raw.Subject, raw.Sequence, raw.Header, raw.Data)
	if err != nil {
		return store.Item{}, false, fmt.Errorf("append %s with idempotency key %q: the first item: %w: publish it with a new key", it.Kind, clip(key), err)
	}
	return first, true, nil
}

// waitTold returns once the follower has taken seq, or after tellWait, or
// when the store closes.
func (s *Store) waitTold(seq uint64) {
	timer := time.NewTimer(tellWait)
	defer timer.Stop()
	for {
		s.tmu.Lock()
		ch := s.advanced
		s.tmu.Unlock()
		if s.told.Load() >= seq {
			return
		}
		select {
		case <-ch:
		case <-s.closed:
			return
		case <-timer.C:
			s.lagging()
			s.rl.Warn("NATS store: an item is stored but not yet followed; it is fanned out when the store is back",
				"id", seq, "waited", tellWait)
			return
		}
	}
}

// OnAppend sets f to be told of every new item, whichever gateway appended
// it, once each, in id order, one at a time (see take). It is not told of a
// replay or a failure. f must not call the store.
func (s *Store) OnAppend(f func(store.Appended)) { s.onAppend.Store(&f) }

// take is the ordered consumer's handler: each message of the items
// stream, in sequence order.
func (s *Store) take(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		s.rl.Warn("NATS store: a message of the items stream without its metadata", "err", err)
		return
	}
	seq := meta.Sequence.Stream
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if s.stopped || seq <= s.told.Load() {
		return // after Close, or already told (the consumer restarted earlier)
	}
	it, err := s.decode(m.Subject(), seq, m.Headers(), m.Data())
	var dropped []uint64
	if it.Kind == wire.KindClassified {
		s.ads.push(adMark{seq, it.Time.UnixNano()})
		if n := s.ads.len() - s.keep.Ads; n > 0 {
			dropped = s.ads.pop(n)
		}
	}
	switch {
	case err != nil:
		// Not hark's, or damaged: a client would take it for a protocol
		// line. It still counts for the ads retention, as in the stream.
		s.rl.Warn("NATS store: skipped an item that cannot be sent", "id", seq, "err", err)
	case it.Kind == wire.KindRandom:
		s.random = it
	}
	if f := s.onAppend.Load(); f != nil && err == nil {
		(*f)(store.Appended{Item: it, Dropped: dropped})
	}
	s.tmu.Lock()
	s.told.Store(seq)
	close(s.advanced)
	s.advanced = make(chan struct{})
	s.tmu.Unlock()
}

// Items returns the retained ads, oldest first, read from the stream, and
// the latest random number (ID 0 when none): what the handle has followed
// so far, so that OnAppend's function is told of what comes after. A
// closed store holds nothing.
func (s *Store) Items() (ads []store.Item, random store.Item) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if s.stopped {
		return nil, store.Item{}
	}
	random = s.random
	if s.ads.len() == 0 {
		return nil, random
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*opTimeout)
	defer cancel()
	i := 0 // the next retained ad, in s.ads
	err := s.scan(ctx, s.ads.front().id, s.ads.back().id, s.subjAds, false, func(raw *jetstream.RawStreamMsg) {
		for i < s.ads.len() && s.ads.at(i).id < raw.Sequence {
			i++
		}
		if i < s.ads.len() && s.ads.at(i).id == raw.Sequence {
			if it, err := s.decode(raw.Subject, raw.Sequence, raw.Header, raw.Data); err == nil {
				ads = append(ads, it)
			}
		}
	})
	if err != nil {
		s.log.Error("NATS store: reading the retained ads failed; some are missing", "store", s.path, "err", err)
	}
	return ads, random
}

// load reads what the stream holds: the ids and times of the retained
// ads, and the latest random number. It returns the stream sequence it
// read up to, where the follower starts.
func (s *Store) load(ctx context.Context) (uint64, error) {
	var last uint64
	for {
		s.infoMu.Lock() // nats.go's Stream.Info writes the handle's cached info
		info, err := s.items.Info(ctx)
		s.infoMu.Unlock()
		if err != nil {
			return 0, fmt.Errorf("items stream: %w", err)
		}
		upTo := info.State.LastSeq
		err = s.scan(ctx, max(last+1, info.State.FirstSeq), upTo, s.subjAds, true, func(raw *jetstream.RawStreamMsg) {
			s.ads.push(adMark{raw.Sequence, itemTime(raw.Header).UnixNano()})
		})
		if err != nil {
			return 0, fmt.Errorf("read the ads: %w", err)
		}
		last = max(last, upTo)
		raw, err := s.items.GetLastMsgForSubject(ctx, s.subjRandom)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read the latest random number: %w", err)
		}
		if raw.Sequence <= last {
			s.random, err = s.decode(raw.Subject, raw.Sequence, raw.Header, raw.Data)
			if err != nil {
				s.log.Warn("NATS store: the latest random number cannot be sent; a new one is drawn", "id", raw.Sequence, "err", err)
			}
			break
		}
		// A number newer than what was read: read on to it, so that the
		// follower starts after both.
	}
	if n := s.ads.len() - s.keep.Ads; n > 0 {
		s.ads.pop(n)
	}
	return last, nil
}

// scan calls each with the messages of subject from sequence from to to,
// in order, through a short-lived consumer. headersOnly leaves their data
// out.
func (s *Store) scan(ctx context.Context, from, to uint64, subject string, headersOnly bool, each func(*jetstream.RawStreamMsg)) error {
	if from > to || to == 0 {
		return nil
	}
	cons, err := s.items.CreateConsumer(ctx, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       max(from, 1),
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     subject,
		HeadersOnly:       headersOnly,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		_ = s.items.DeleteConsumer(ctx, cons.CachedInfo().Name)
	}()
	for {
		batch, err := cons.FetchNoWait(scanBatch)
		if err != nil {
			return err
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil || done || meta.Sequence.Stream > to {
				done = true
				continue // the channel is drained all the same
			}
			each(&jetstream.RawStreamMsg{Subject: m.Subject(), Sequence: meta.Sequence.Stream, Header: m.Headers(), Data: m.Data()})
			done = meta.Sequence.Stream == to || meta.NumPending == 0
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if done || n == 0 {
			return ctx.Err()
		}
	}
}

// Prune applies the age retention to the ads: it purges the classified
// subject up to the first ad younger than Retention.AdAge (an ad without
// a time counts as old), and returns the ids it dropped, oldest first.
// Client ids expire by the positions bucket's TTL and idempotency keys by
// the stream's duplicate window, with no work here; Prune refreshes the
// count Clients reports.
func (s *Store) Prune(now time.Time) (droppedAds []uint64, err error) {
	if s.closing.Load() {
		return nil, fmt.Errorf("prune: %w", store.ErrClosed)
	}
	cut := now.Add(-s.keep.AdAge).UnixNano()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	s.dmu.Lock()
	n := 0
	for n < s.ads.len() && s.ads.at(n).at < cut {
		n++
	}
	if n > 0 {
		err = s.items.Purge(ctx, jetstream.WithPurgeSubject(s.subjAds), jetstream.WithPurgeSequence(s.ads.at(n-1).id+1))
		if err == nil {
			droppedAds = s.ads.pop(n)
		}
	}
	s.dmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("prune ads: %w", s.fail(err))
	}
	if err := s.countClients(ctx); err != nil {
		return droppedAds, fmt.Errorf("count client ids: %w", err)
	}
	return droppedAds, nil
}

func (s *Store) subject(kind wire.Kind) string {
	if kind == wire.KindRandom {
		return s.subjRandom
	}
	return s.subjAds
}

// decode turns a message of the items stream into an item, and checks its
// value against the rules of its kind.
func (s *Store) decode(subject string, seq uint64, h nats.Header, data []byte) (store.Item, error) {
	it := store.Item{ID: seq, Value: string(data), Time: itemTime(h)}
	switch subject {
	case s.subjRandom:
		it.Kind = wire.KindRandom
	case s.subjAds:
		it.Kind = wire.KindClassified
	default:
		return it, fmt.Errorf("a message on %q, not an item's subject", subject)
	}
	if err := store.ValidValue(it.Kind, it.Value); err != nil {
		return it, err
	}
	return it, nil
}

// itemTime is the time an item's message carries (the zero time when it
// has none).
func itemTime(h nats.Header) time.Time {
	ns, err := strconv.ParseInt(h.Get(hdrTime), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// msgID is the deduplication id of an idempotency key: a key may hold bytes
// that a header cannot.
func msgID(key string) string {
	h := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// clip shortens a key for a message.
func clip(k string) string {
	if len(k) > 64 {
		return k[:64] + "…"
	}
	return k
}
