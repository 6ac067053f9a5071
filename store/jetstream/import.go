package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// ErrNotEmpty is wrapped by Import when the stream or buckets it would
// fill already hold something: it moves a store into a new one only.
var ErrNotEmpty = errors.New("the NATS store is not empty")

const (
	// importWindow bounds the items Import has published and not yet seen
	// acknowledged: enough to keep a distant server busy, few enough that
	// a failure stops it soon.
	importWindow = 256
	// gapPurgeEvery is how many placeholders Import lets pile up before it
	// purges them: a store whose random numbers came every minute for a
	// year has half a million ids with no item.
	gapPurgeEvery = 16384
)

// Source is what Import moves: a store's content, as
// store.OpenSnapshot reads a bbolt one.
type Source struct {
	Epoch string // kept: the ids mean under it what they meant
	// Latest is the last id the store handed out: the next item gets
	// Latest+1, whether or not the item with id Latest is still held.
	Latest uint64
	Items  []store.Item // the items held, in id order, ids up to Latest
	// EachClient calls its function with each client id and read
	// position, stopping at its first error (store.Snapshot.EachClient).
	// Nil: none.
	EachClient func(func(id string, c store.Client) error) error
}

// Report is what Import moved.
type Report struct {
	Servers         string // the NATS servers, without credentials
	Stream          string // the items stream
	Epoch           string
	Items           int    // items moved (ads and the latest random number)
	FirstID, LastID uint64 // of the items moved; 0 when none
	Latest          uint64 // the stream's last id: the next item gets Latest+1
	Gaps            uint64 // ids without an item (dropped by the retention), kept unused
	Clients         int    // client ids moved, with their read positions
}

// Import moves src into a new JetStream store of opts (the stream
// P_ITEMS, the buckets P_META and P_CLIENTS), so that a hark serve opening
// it (Open) serves what the source served: the same item ids, the same
// epoch, every client's read position. Clients that reconnect to it
// neither miss nor repeat an item. Idempotency keys are not moved (a
// publish retried across the move is appended again), nor are API tokens.
//
// It refuses, wrapping ErrNotEmpty, a stream that ever held an item or a
// positions bucket that holds one: it never merges into a live store. An
// empty stream no hark serve follows is made again. No retention applies
// here: the first Open applies its own Retention (Options.Retention only
// gives the positions bucket's TTL when Import creates it).
//
// Each item is published with the sequence it must get as a condition
// (JetStream's expected last sequence), so that no other publisher can
// shift the ids. An id without an item is filled with a placeholder on a
// subject of its own, P.items.gap, and the placeholders are purged (the
// stream keeps their sequences used) before that subject is taken off the
// stream; neither the follower nor load ever see one. The first id is the
// stream's FirstSeq, or, on a server that ignores FirstSeq (nats-server
// before 2.10), placeholders from 1.
//
// On failure, what was created stays: delete it before trying again.
// After the import it reads back the stream's state, the epoch and the
// count of positions to check them.
func Import(ctx context.Context, opts Options, src Source) (rep Report, err error) {
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !prefixRe.MatchString(prefix) {
		return Report{}, fmt.Errorf("import: prefix %q: use 1 to 64 letters, digits, _ or -", prefix)
	}
	if strings.TrimSpace(opts.URLs) == "" {
		return Report{}, errors.New("import: no NATS server given")
	}
	if err := checkSource(src); err != nil {
		return Report{}, fmt.Errorf("import: %w", err)
	}
	keep := opts.Retention.WithDefaults()
	im := &importer{
		src:        src,
		stream:     prefix + "_ITEMS",
		subjRandom: prefix + ".items.random",
		subjAds:    prefix + ".items.classified",
		subjGap:    prefix + ".items.gap",
		metaName:   prefix + "_META",
		posName:    prefix + "_CLIENTS",
	}
	rep = Report{Servers: redact(opts.URLs), Stream: im.stream, Epoch: src.Epoch, Items: len(src.Items), Latest: src.Latest}
	if n := len(src.Items); n > 0 {
		rep.FirstID, rep.LastID = src.Items[0].ID, src.Items[n-1].ID
	}
	rep.Gaps = src.Latest - uint64(len(src.Items))
	where := fmt.Sprintf("%s stream %s", rep.Servers, im.stream)
	made := false // the stream was created: a failure leaves it half filled
	defer func() {
		switch {
		case err != nil && made:
			err = fmt.Errorf("import into %s: %w: delete what it made (%s) before trying again", where, err, im.removal())
		case err != nil:
			err = fmt.Errorf("import into %s: %w", where, err)
		}
	}()

	nopts := []nats.Option{
		nats.Name("hark store migrate"),
		// A connection lost half-way fails the import: what it published
		// without an answer may or may not be stored.
		nats.NoReconnect(),
		nats.Timeout(opTimeout),
	}
	if opts.CredsFile != "" {
		nopts = append(nopts, nats.UserCredentials(opts.CredsFile))
	}
	if opts.CAFile != "" {
		nopts = append(nopts, nats.RootCAs(opts.CAFile))
	}
	nc, err := nats.Connect(opts.URLs, nopts...)
	if err != nil {
		return Report{}, unavailable(err)
	}
	defer nc.Close()
	if im.js, err = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(4*opTimeout)); err != nil {
		return Report{}, err
	}
	replicas := opts.Replicas
	if replicas <= 0 {
		replicas = 1
		if len(nc.Servers()) >= 3 {
			replicas = 3
		}
	}

	if err := im.checkEmpty(ctx); err != nil {
		return Report{}, err
	}
	if err := im.create(ctx, replicas); err != nil {
		return Report{}, err
	}
	made = true
	if err := im.writeEpoch(ctx, replicas); err != nil {
		return Report{}, err
	}
	if err := im.publish(ctx); err != nil {
		return Report{}, err
	}
	if rep.Clients, err = im.writeClients(ctx, replicas, keep.ClientIdle); err != nil {
		return Report{}, err
	}
	if err := im.verify(ctx, rep); err != nil {
		return Report{}, fmt.Errorf("check what was imported: %w", err)
	}
	return rep, nil
}

// checkSource refuses what Import could not move as it is.
func checkSource(src Source) error {
	if !wire.ValidEpoch(src.Epoch) {
		return fmt.Errorf("epoch %q: want 1 to %d letters and digits: %w", src.Epoch, wire.MaxEpochBytes, wire.ErrInvalid)
	}
	var prev uint64
	for _, it := range src.Items {
		switch {
		case it.ID <= prev:
			return fmt.Errorf("item %d after item %d: items go in increasing id order: %w", it.ID, prev, wire.ErrInvalid)
		case it.ID > src.Latest:
			return fmt.Errorf("item %d beyond the last id handed out, %d: %w", it.ID, src.Latest, wire.ErrInvalid)
		case !it.Kind.Valid():
			return fmt.Errorf("item %d: unknown kind %q: %w", it.ID, it.Kind, wire.ErrInvalid)
		}
		if err := store.ValidValue(it.Kind, it.Value); err != nil {
			return fmt.Errorf("item %d: %w", it.ID, err)
		}
		prev = it.ID
	}
	return nil
}

// importer is the state of one Import.
type importer struct {
	src                          Source
	js                           jetstream.JetStream
	items                        jetstream.Stream
	created                      time.Time // the items stream's creation, for the epoch record
	stream, metaName, posName    string
	subjRandom, subjAds, subjGap string
}

// checkEmpty refuses a stream that ever held an item, or one a hark serve
// follows, and a positions bucket that holds a position. An empty stream
// is deleted, to be made again with the first id.
func (im *importer) checkEmpty(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	what := "delete them (" + im.removal() + ") if they hold nothing you need, or migrate into another NATS"
	st, err := im.js.Stream(cctx, im.stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return unavailable(err)
	default:
		state := st.CachedInfo().State
		if state.LastSeq > 0 {
			return fmt.Errorf("%w: stream %s holds items up to id %d: %s", ErrNotEmpty, im.stream, state.LastSeq, what)
		}
		if state.Consumers > 0 {
			// A hark serve's consumer outlives it by 5 minutes (nats.go's
			// ordered consumer's inactive threshold).
			return fmt.Errorf("%w: stream %s has no item but %d consumers: a hark serve runs on it, or stopped less than 5 minutes ago: stop every hark serve of it and try again in 5 minutes, or %s",
				ErrNotEmpty, im.stream, state.Consumers, what)
		}
	}
	pos, err := im.js.Stream(cctx, "KV_"+im.posName)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return unavailable(err)
	case pos.CachedInfo().State.Msgs > 0:
		return fmt.Errorf("%w: bucket %s holds %d read positions: %s", ErrNotEmpty, im.posName, pos.CachedInfo().State.Msgs, what)
	}
	if st != nil {
		// Empty, and never held an item: a hark serve that found no item
		// made it, and its epoch named no id. It is made again, so that it
		// starts at the first id.
		if err := im.js.DeleteStream(cctx, im.stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return unavailable(err)
		}
	}
	return nil
}

// removal says how to delete the stream and buckets Import fills, with
// the nats command-line tool.
func (im *importer) removal() string {
	return "nats stream rm " + im.stream + "; nats kv rm " + im.metaName + "; nats kv rm " + im.posName
}

// create makes the items stream, its first sequence the first id, with a
// subject for the placeholders besides the items' two, and no limits: the
// first Open sets its own.
func (im *importer) create(ctx context.Context, replicas int) error {
	first := im.src.Latest + 1
	if len(im.src.Items) > 0 {
		first = im.src.Items[0].ID
	}
	cctx, cancel := context.WithTimeout(ctx, 4*opTimeout)
	defer cancel()
	var err error
	im.items, err = im.js.CreateStream(cctx, jetstream.StreamConfig{
		Name:        im.stream,
		Description: "hark serve: published items",
		Subjects:    []string{im.subjRandom, im.subjAds, im.subjGap},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		AllowDirect: true,
		FirstSeq:    first,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("%w: stream %s was created meanwhile: is a hark serve starting on it?", ErrNotEmpty, im.stream)
	}
	if err != nil {
		return fmt.Errorf("items stream: %w", unavailable(err))
	}
	im.created = im.items.CachedInfo().Created
	return nil
}

// writeEpoch stores the source's epoch for the new stream, as Open's
// epoch finds it: with the stream's creation time, so that Open keeps it
// rather than minting a new one. It is written before the items, so that
// a hark serve that opens the store half-way takes this epoch too.
func (im *importer) writeEpoch(ctx context.Context, replicas int) error {
	cctx, cancel := context.WithTimeout(ctx, 4*opTimeout)
	defer cancel()
	meta, err := importBucket(cctx, im.js, jetstream.KeyValueConfig{Bucket: im.metaName, Description: "hark serve: the store's epoch", Replicas: replicas})
	if err != nil {
		return err
	}
	rec, err := json.Marshal(epochRecord{Epoch: im.src.Epoch, Stream: im.created})
	if err != nil {
		return err
	}
	// The record of a stream deleted since names no id of this one: it is
	// replaced, with compare-and-set against one more writer.
	e, err := meta.Get(cctx, "epoch")
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		_, err = meta.Create(cctx, "epoch", rec)
	case err == nil:
		_, err = meta.Update(cctx, "epoch", rec, e.Revision())
	}
	if err != nil {
		return fmt.Errorf("write the epoch: %w", unavailable(err))
	}
	return nil
}

// publish publishes every id from the stream's next sequence to Latest:
// each item with its id, a placeholder for each id without one; then
// purges the placeholders and takes their subject off the stream.
func (im *importer) publish(ctx context.Context) error {
	next := im.items.CachedInfo().State.LastSeq + 1
	if len(im.src.Items) > 0 && im.src.Items[0].ID < next {
		// Not on a stream just made; checked all the same, as the ids
		// are the point.
		return fmt.Errorf("the stream starts at id %d, after the first item's, %d", next, im.src.Items[0].ID)
	}
	var pending []pendingAck
	settle := func(keep int) error {
		for len(pending) > keep {
			if err := pending[0].wait(ctx); err != nil {
				return err
			}
			pending = pending[1:]
		}
		return nil
	}
	items := im.src.Items
	gaps := 0
	for seq := next; seq <= im.src.Latest; seq++ {
		m := nats.NewMsg(im.subjGap)
		if len(items) > 0 && items[0].ID == seq {
			it := items[0]
			items = items[1:]
			m = nats.NewMsg(im.subjAds)
			if it.Kind == wire.KindRandom {
				m = nats.NewMsg(im.subjRandom)
			}
			m.Data = []byte(it.Value)
			m.Header.Set(hdrTime, strconv.FormatInt(it.Time.UnixNano(), 10))
		} else {
			gaps++
		}
		f, err := im.js.PublishMsgAsync(m, jetstream.WithExpectLastSequence(seq-1))
		if err != nil {
			return fmt.Errorf("publish id %d: %w", seq, unavailable(err))
		}
		pending = append(pending, pendingAck{seq, f})
		if err := settle(importWindow); err != nil {
			return err
		}
		if gaps >= gapPurgeEvery {
			if err := settle(0); err != nil {
				return err
			}
			if err := im.purgeGaps(ctx); err != nil {
				return err
			}
			gaps = 0
		}
	}
	if err := settle(0); err != nil {
		return err
	}
	if err := im.purgeGaps(ctx); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 4*opTimeout)
	defer cancel()
	cfg := im.items.CachedInfo().Config
	cfg.Subjects = []string{im.subjRandom, im.subjAds}
	cfg.FirstSeq = 0 // as Open configures it: it has done its work
	var err error
	if im.items, err = im.js.UpdateStream(cctx, cfg); err != nil {
		return fmt.Errorf("take the placeholders' subject off the stream: %w", unavailable(err))
	}
	return nil
}

func (im *importer) purgeGaps(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 4*opTimeout)
	defer cancel()
	if err := im.items.Purge(cctx, jetstream.WithPurgeSubject(im.subjGap)); err != nil {
		return fmt.Errorf("purge the placeholders: %w", unavailable(err))
	}
	return nil
}

// pendingAck is a publish of Import awaiting its acknowledgement.
type pendingAck struct {
	seq uint64
	f   jetstream.PubAckFuture
}

// wait returns once the publish is acknowledged with its sequence, or
// with why not. The publisher's timeout bounds it.
func (p pendingAck) wait(ctx context.Context) error {
	select {
	case ack := <-p.f.Ok():
		if ack.Sequence != p.seq {
			return fmt.Errorf("id %d was stored as %d: another publisher? delete the stream and try again", p.seq, ack.Sequence)
		}
		return nil
	case err := <-p.f.Err():
		var api *jetstream.APIError
		if errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return fmt.Errorf("publish id %d: %w: another publisher wrote to the stream meanwhile (is a hark serve running on it?)", p.seq, err)
		}
		return fmt.Errorf("publish id %d: %w", p.seq, unavailable(err))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeClients writes every position of the source into a positions
// bucket as Open makes it, a few at a time, each as a new key: a key
// written meanwhile is a conflict, not overwritten.
func (im *importer) writeClients(ctx context.Context, replicas int, ttl time.Duration) (int, error) {
	if im.src.EachClient == nil {
		return 0, nil
	}
	bctx, cancel := context.WithTimeout(ctx, 4*opTimeout)
	kv, err := importBucket(bctx, im.js, jetstream.KeyValueConfig{
		Bucket: im.posName, Description: "hark serve: read positions",
		TTL: ttl, Replicas: replicas,
	})
	cancel()
	if err != nil {
		return 0, err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		n     int
		slots = make(chan struct{}, commitWorkers)
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
			stop()
		}
		mu.Unlock()
	}
	err = im.src.EachClient(func(id string, c store.Client) error {
		if id == "" || len(id) > wire.MaxClientIDBytes || len(c.Source) > store.MaxSourceBytes {
			return fmt.Errorf("client %q: an id of 1 to %d bytes, a source of at most %d: %w", id, wire.MaxClientIDBytes, store.MaxSourceBytes, wire.ErrInvalid)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		n++
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			cctx, cancel := context.WithTimeout(ctx, opTimeout)
			defer cancel()
			if _, err := kv.Create(cctx, clientKey(id), encodeClient(c)); err != nil {
				fail(fmt.Errorf("client %q: %w", id, unavailable(err)))
			}
		}()
		return nil
	})
	wg.Wait()
	if first != nil { // the first cause, rather than the cancellation it made
		return 0, fmt.Errorf("write read positions: %w", first)
	}
	if err != nil {
		return 0, fmt.Errorf("write read positions: %w", err)
	}
	return n, nil
}

// verify reads back what Import wrote: the stream's ids and count, the
// epoch, the count of positions.
func (im *importer) verify(ctx context.Context, rep Report) error {
	cctx, cancel := context.WithTimeout(ctx, 4*opTimeout)
	defer cancel()
	info, err := im.items.Info(cctx)
	if err != nil {
		return unavailable(err)
	}
	s := info.State
	if s.LastSeq != rep.Latest || s.Msgs != uint64(rep.Items) || rep.Items > 0 && s.FirstSeq != rep.FirstID {
		return fmt.Errorf("the stream holds %d items, ids %d to %d; want %d, ids %d to %d", s.Msgs, s.FirstSeq, s.LastSeq, rep.Items, rep.FirstID, rep.Latest)
	}
	meta, err := im.js.KeyValue(cctx, im.metaName)
	if err != nil {
		return unavailable(err)
	}
	e, err := meta.Get(cctx, "epoch")
	if err != nil {
		return fmt.Errorf("read the epoch: %w", unavailable(err))
	}
	var r epochRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil || r.Epoch != rep.Epoch || !r.Stream.Equal(info.Created) {
		return fmt.Errorf("the epoch record is %s, want epoch %s of the stream created %v", e.Value(), rep.Epoch, info.Created)
	}
	if rep.Clients == 0 {
		return nil
	}
	pos, err := im.js.Stream(cctx, "KV_"+im.posName)
	if err != nil {
		return unavailable(err)
	}
	if got := pos.CachedInfo().State.Msgs; got != uint64(rep.Clients) {
		return fmt.Errorf("the positions bucket holds %d read positions, want %d", got, rep.Clients)
	}
	return nil
}

// importBucket opens the key-value bucket of cfg, creating it when missing
// (a bucket made since is an error: Import is not a gateway racing others).
func importBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, unavailable(err))
	}
	return kv, nil
}
