package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/jetstream"
)

// storeFlags are hark serve's flags that choose its store.
type storeFlags struct {
	spec     string // --store: bolt:PATH, or nats://HOST:PORT[,…]
	creds    string // --nats-creds
	ca       string // --nats-ca
	replicas int    // --nats-replicas
}

// nats reports whether the flags name a JetStream store.
func (f storeFlags) nats() bool {
	return strings.HasPrefix(f.spec, "nats://") || strings.HasPrefix(f.spec, "tls://")
}

// check checks the store flags against --data (set: the flags given), and
// sets cfg.DataDir from --store bolt:PATH.
func (f storeFlags) check(cfg *server.Config, set map[string]bool) error {
	switch {
	case f.spec == "":
	case strings.HasPrefix(f.spec, "bolt:"):
		path := strings.TrimPrefix(f.spec, "bolt:")
		if path == "" {
			return usagef("--store bolt: needs the store's directory: --store bolt:/var/lib/hark")
		}
		if set["data"] && cfg.DataDir != path {
			return usagef("--store %s and --data %s name two stores: give one", f.spec, cfg.DataDir)
		}
		cfg.DataDir = path
	case f.nats():
		for _, u := range strings.Split(f.spec, ",") {
			if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
				return usagef("--store %q: every element is nats://HOST:PORT (or tls://HOST:PORT), got %q", f.spec, u)
			}
		}
		if f.replicas < 0 || f.replicas > 5 {
			return usagef("--nats-replicas %d: JetStream keeps 1 to 5 replicas (0: 3 when the cluster has 3 servers or more, else 1)", f.replicas)
		}
	default:
		return usagef("--store %q: want bolt:DIRECTORY (the default store, one machine) or nats://HOST:PORT[,nats://HOST:PORT…] (JetStream, shared by several hark serve)", f.spec)
	}
	if !f.nats() {
		for _, name := range []string{"nats-creds", "nats-ca", "nats-replicas"} {
			if set[name] {
				return usagef("--%s is for --store nats://…", name)
			}
		}
	}
	return nil
}

// options are the JetStream options the flags give.
func (f storeFlags) options() jetstream.Options {
	return jetstream.Options{URLs: f.spec, CredsFile: f.creds, CAFile: f.ca, Replicas: f.replicas}
}

// open opens the JetStream store the flags name, for server.Config.Store,
// with its tokens, for server.Config.Tokens: gateways share both. Both
// are nil for the bbolt store, which the server opens itself, with the
// token file beside it.
func (f storeFlags) open(ctx context.Context, keep store.Retention, log *slog.Logger) (server.Store, server.Tokens, error) {
	if !f.nats() {
		return nil, nil, nil
	}
	opts := f.options()
	opts.Retention, opts.Logger = keep, log
	st, err := jetstream.Open(ctx, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("--store %s: %w", f.spec, err)
	}
	return st, st.Tokens(), nil
}
