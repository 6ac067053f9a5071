package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/jetstream"
)

// migrateAbout follows the flags in hark store migrate's usage.
const migrateAbout = `
migrate moves the store of one hark serve (bolt:DIR, its --data directory)
into a new NATS JetStream store for hark serve --store nats://… gateways:
item ids, the epoch and every client's read position are kept, so that
clients neither miss nor repeat an item, and the API tokens (their
hashes: the same secrets work on the gateways). Stop the hark serve
first; its store is read, not changed. Idempotency keys are not moved.
`

// Store runs `hark store`. migrate is its only subcommand; hark store -h
// prints migrate's usage, flags included.
func Store(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("say migrate: hark store migrate --from bolt:DIR --to nats://HOST:PORT")
	}
	if isHelp(args[0]) || args[0] == "help" {
		return storeMigrate(ctx, []string{"-h"}, stdout, stderr)
	}
	if args[0] == "migrate" {
		return storeMigrate(ctx, args[1:], stdout, stderr)
	}
	return usagef("unknown subcommand %q: say migrate (hark store migrate --from bolt:DIR --to nats://HOST:PORT)", args[0])
}

// storeMigrate runs `hark store migrate`: the bbolt store is read under
// its lock (so no hark serve runs on it meanwhile) and imported into a new
// JetStream store, which must be empty.
func storeMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("store migrate", "--from bolt:DIR --to nats://HOST:PORT[,…] [--nats-creds FILE] [--nats-ca FILE] [--nats-replicas N]", stderr)
	flagsUsage := fs.Usage
	fs.Usage = func() {
		flagsUsage()
		fmt.Fprint(fs.Output(), migrateAbout)
	}
	var from string
	var sf storeFlags
	fs.StringVar(&from, "from", "", "the store to move: bolt:`DIR`, the --data directory of the hark serve it belongs to (stopped)")
	fs.StringVar(&sf.spec, "to", "", "the NATS `servers` of the new store: nats://HOST:PORT[,…] (or tls://), as hark serve --store takes them")
	fs.StringVar(&sf.creds, "nats-creds", "", "NATS credentials `file`")
	fs.StringVar(&sf.ca, "nats-ca", "", "CA certificate `file` (PEM) that NATS servers' certificates are verified against (tls:// URLs)")
	fs.IntVar(&sf.replicas, "nats-replicas", 0, "JetStream replicas of the stream and buckets it creates (default: 3 when the cluster has 3 servers or more, else 1)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: migrate takes only flags: hark store migrate --from bolt:DIR --to nats://HOST:PORT", fs.Arg(0))
	}
	dir, ok := strings.CutPrefix(from, "bolt:")
	switch {
	case from == "":
		return usagef("--from is missing: give the store to move, --from bolt:/var/lib/hark (the --data directory of its hark serve)")
	case !ok || dir == "":
		return usagef("--from %q: want bolt:DIR, the --data directory of the hark serve whose store moves, e.g. --from bolt:/var/lib/hark", from)
	case sf.spec == "":
		return usagef("--to is missing: give the NATS servers of the new store, --to nats://HOST:PORT[,nats://HOST:PORT…]")
	case !sf.nats():
		return usagef("--to %q: want nats://HOST:PORT[,nats://HOST:PORT…] (or tls://…), the NATS servers of the JetStream store", sf.spec)
	}
	if err := sf.check(&server.Config{}, nil); err != nil {
		// check speaks of hark serve's --store, which is --to here.
		msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
		return usagef("%s", strings.Replace(msg, "--store ", "--to ", 1))
	}

	// A store in use (store.ErrLocked) is refused with what to do: stop
	// its hark serve.
	snap, err := store.OpenSnapshot(dir)
	if err != nil {
		return err
	}
	defer snap.Close()
	ads, random := snap.Items()
	nAds, items := len(ads), ads
	if random.ID != 0 {
		// Items go in id order: the random number among the ads.
		i, _ := slices.BinarySearchFunc(items, random.ID, func(it store.Item, id uint64) int { return cmp.Compare(it.ID, id) })
		items = slices.Insert(items, i, random)
	}
	// The tokens are read first: a broken tokens file stops the move
	// before anything reaches NATS.
	toks, err := store.ExportTokens(filepath.Dir(snap.Path()))
	if err != nil {
		return fmt.Errorf("%w (nothing was moved)", err)
	}
	opts := jetstream.Options{URLs: sf.spec, CredsFile: sf.creds, CAFile: sf.ca, Replicas: sf.replicas}
	rep, err := jetstream.Import(ctx, opts, jetstream.Source{
		Epoch: snap.Epoch(), Latest: snap.Latest(), Items: items, EachClient: snap.EachClient,
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrNotEmpty) {
			return fmt.Errorf("%w (nothing was moved; the store of --from is as it was)", err)
		}
		return fmt.Errorf("%w (the store of --from is as it was)", err)
	}

	moved, err := jetstream.ImportTokens(ctx, opts, toks)
	if err != nil {
		return fmt.Errorf("items, epoch and positions were moved, the API tokens not: %w; make new ones with 'hark token add --store %s' (the store of --from is as it was)", err, rep.Servers)
	}
	w := &errWriter{w: stdout}
	w.printf("moved %s to %s (stream %s):\n", snap.Path(), rep.Servers, rep.Stream)
	w.printf("  epoch     %s, kept: clients keep their marks\n", rep.Epoch)
	switch {
	case rep.Items == 0:
		w.printf("  items     none\n")
	default:
		kinds := fmt.Sprintf("%d ads", nAds)
		if random.ID != 0 {
			kinds += " and the latest random number"
		}
		w.printf("  items     %d (%s), ids %d to %d\n", rep.Items, kinds, rep.FirstID, rep.LastID)
	}
	w.printf("  last id   %d: the next item gets %d", rep.Latest, rep.Latest+1)
	if rep.Gaps > 0 {
		w.printf(" (%d earlier ids whose items the retention dropped stay unused)", rep.Gaps)
	}
	w.printf("\n  clients   %d, with their read positions\n", rep.Clients)
	w.printf("  tokens    %d moved (their hashes: the same secrets work on the gateways), %d there already\n", moved, len(toks)-moved)
	w.printf("not moved:\n")
	w.printf("  idempotency keys: %d; a publish retried across the move is appended again\n", snap.Keys())
	if n := snap.Skipped(); n > 0 {
		w.printf("  damaged items: %d, which hark serve skipped too\n", n)
	}
	w.printf("Start hark serve --store %s on each gateway. The store of --from is left as it was: keep it as a backup, and run no hark serve on it again (what it took would not reach the gateways).\n",
		rep.Servers)
	return w.err
}

// errWriter keeps the first write error, so that a run of prints is
// checked once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
