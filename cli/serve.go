package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/harkapp/hark/internal/hostport"
	"github.com/harkapp/hark/internal/xdg"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/store"
)

// shutdownGrace is how long serve waits for connections to drain after
// SIGINT/SIGTERM before closing the rest.
const shutdownGrace = 10 * time.Second

// Serve runs `hark serve`.
func Serve(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("serve", "[flags]", stderr)
	keep := store.DefaultRetention()
	cfg := server.Config{}
	var level logLevel
	var pprofAddr string
	fs.StringVar(&cfg.Listen, "listen", server.DefaultListen, "protocol `address` (host:port); loopback unless you mean to serve other machines")
	fs.StringVar(&cfg.HTTP, "http", server.DefaultHTTP, "publish API `address`; empty disables it")
	fs.StringVar(&cfg.DataDir, "data", "", "store `directory`, for hark.db and tokens.json (default $XDG_DATA_HOME/hark/server); unused with --store nats://")
	var sf storeFlags
	fs.StringVar(&sf.spec, "store", "", "where items and read positions live: bolt:`DIR` (the default, one machine; as --data) or nats://HOST:PORT[,…] (NATS JetStream, shared by several hark serve)")
	fs.StringVar(&sf.creds, "nats-creds", "", "NATS credentials `file` for --store nats://")
	fs.StringVar(&sf.ca, "nats-ca", "", "CA certificate `file` (PEM) that NATS servers' certificates are verified against (tls:// URLs)")
	fs.IntVar(&sf.replicas, "nats-replicas", 0, "JetStream replicas of hark's stream and buckets (default: 3 when the cluster has 3 servers or more, else 1)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", server.DefaultIdleTimeout, "notification mode ends after this long without a line from the client")
	fs.DurationVar(&cfg.CommandTimeout, "command-timeout", server.DefaultCommandTimeout, "close a connection not in notification mode after this long without a line from the client")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", server.DefaultWriteTimeout, "drop a client whose socket accepts nothing for this long")
	fs.IntVar(&cfg.MaxConns, "max-conns", server.DefaultMaxConns, "most protocol connections at once")
	fs.IntVar(&cfg.MaxConnsPerAddr, "max-conns-per-addr", 0, "most protocol connections at once from one source: an IPv4 address, or an IPv6 /64 (default: a tenth of --max-conns, at least 1)")
	fs.DurationVar(&cfg.RandomEvery, "random-every", 0, "publish a random number this often (0: off)")
	fs.DurationVar(&cfg.ClassifiedEvery, "classified-every", 0, "publish a sample classified ad this often (0: off)")
	fs.IntVar(&keep.Ads, "keep-ads", keep.Ads, "newest classified ads kept for clients that were away")
	fs.DurationVar(&keep.AdAge, "keep-for", keep.AdAge, "classified ads older than this are dropped")
	fs.StringVar(&cfg.CertFile, "tls-cert", "", "TLS certificate `file` (PEM, the chain after the leaf): both ports then speak TLS; reloaded when it changes or on SIGHUP")
	fs.StringVar(&cfg.KeyFile, "tls-key", "", "TLS private key `file` (PEM) of --tls-cert")
	fs.BoolVar(&cfg.Auth, "auth", false, "require tokens (hark token add): auth <token> on the protocol, Authorization: Bearer on the publish API; always on beyond loopback")
	fs.BoolVar(&cfg.InsecureListen, "insecure-listen", false, "allow listening beyond loopback WITHOUT TLS; tokens are still never taken in plaintext from other machines, so only clients on this machine can authenticate")
	fs.Var((*hostList)(&cfg.HTTPHosts), "http-host", "a host `name` the publish API answers to (repeatable, or comma-separated), besides localhost, IP addresses and the certificate's names")
	fs.StringVar(&pprofAddr, "pprof", "", "serve Go's profiling endpoints (/debug/pprof/) on this loopback `address`; empty: off")
	fs.Var(&level, "log-level", "debug, info, warn or error (default info)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: serve takes only flags", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := checkServeFlags(&cfg, keep, set); err != nil {
		return err
	}
	if err := sf.check(&cfg, set); err != nil {
		return err
	}
	if pprofAddr != "" {
		if err := checkHostPort("--pprof", pprofAddr); err != nil {
			return err
		}
		if !hostport.IsLoopback(pprofAddr) {
			return usagef("--pprof %q: the profiling endpoints are served on loopback only (127.0.0.1, ::1, localhost)", pprofAddr)
		}
	}
	cfg.Retention = keep
	if cfg.DataDir == "" && !sf.nats() {
		dir, err := defaultDataDir()
		if err != nil {
			return err
		}
		cfg.DataDir = dir
	}
	log := newLogger(stderr, &level)
	cfg.Logger = log
	if sf.nats() {
		warnUnusedTokens(log, cfg.DataDir)
	}
	beyond := !hostport.IsLoopback(cfg.Listen) || (cfg.HTTP != "" && !hostport.IsLoopback(cfg.HTTP))
	if beyond && cfg.CertFile == "" && cfg.InsecureListen {
		log.Warn("listening beyond loopback without TLS (--insecure-listen): nothing is encrypted, and tokens from other machines are refused")
	}
	if cfg.IdleTimeout < time.Minute {
		// hark's own clients learn it from hello's reply and refresh in
		// time; others go by their own period.
		log.Warn("--idle-timeout is below a minute: clients that do not learn it from hello (version-1 clients, hark watch --v1) re-enter notification mode far less often (hark's every 29m by default), and miss items until they do",
			"idle_timeout", cfg.IdleTimeout)
	}

	st, toks, err := sf.open(ctx, keep, log)
	if err != nil {
		return err
	}
	cfg.Store, cfg.Tokens = st, toks
	srv, err := server.Start(cfg)
	if errors.Is(err, server.ErrInsecure) {
		return usagef("--listen %s / --http %s reach beyond loopback: give --tls-cert and --tls-key (see README, Running hark for others), or --insecure-listen for a TLS proxy in front", cfg.Listen, cfg.HTTP)
	}
	if err != nil {
		return err
	}
	scheme, hscheme := "", "http://"
	if cfg.CertFile != "" {
		scheme, hscheme = "tls://", "https://"
	}
	attrs := []any{"protocol", scheme + srv.Addr().String(), "store", srv.StorePath(), "epoch", srv.Epoch(), "auth", srv.AuthRequired(),
		"idle_timeout", cfg.IdleTimeout, "command_timeout", cfg.CommandTimeout, "max_conns", cfg.MaxConns, "max_conns_per_addr", cfg.MaxConnsPerAddr}
	if a := srv.HTTPAddr(); a != nil {
		attrs = append(attrs, "publish_api", hscheme+a.String())
	}
	if pprofAddr != "" {
		prof, err := startProfiler(pprofAddr, log)
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return err
		}
		defer prof.stop()
		attrs = append(attrs, "pprof", prof.URL())
	}
	log.Info("hark serve is running", attrs...)
	// SIGHUP reloads the certificate (it is also reloaded when its files
	// change), as nginx and most daemons do on a renewal.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			if cfg.CertFile == "" {
				log.Info("SIGHUP: nothing to reload without TLS")
				continue
			}
			_ = srv.ReloadCert() // logs either way; the old certificate stays on failure
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// checkServeFlags checks the flags' values; set holds the flags given.
// --max-conns-per-addr, unless given, follows --max-conns.
func checkServeFlags(cfg *server.Config, keep store.Retention, set map[string]bool) error {
	for _, a := range []struct{ flag, addr string }{{"--listen", cfg.Listen}, {"--http", cfg.HTTP}} {
		if a.addr == "" && a.flag == "--http" {
			continue
		}
		if err := checkHostPort(a.flag, a.addr); err != nil {
			return err
		}
	}
	switch {
	case cfg.IdleTimeout <= 0:
		return usagef("--idle-timeout must be positive, e.g. 30m")
	case cfg.WriteTimeout <= 0:
		return usagef("--write-timeout must be positive, e.g. 10s")
	case cfg.CommandTimeout <= 0:
		return usagef("--command-timeout must be positive, e.g. 2m")
	case cfg.MaxConns <= 0:
		return usagef("--max-conns must be at least 1")
	case set["max-conns-per-addr"] && cfg.MaxConnsPerAddr <= 0:
		return usagef("--max-conns-per-addr must be at least 1")
	case cfg.MaxConnsPerAddr > cfg.MaxConns:
		// Not clamped: a value above --max-conns is a mistake about one
		// of the two, and saying so beats guessing which.
		return usagef("--max-conns-per-addr %d is above --max-conns %d: give at most %d (equal: no limit per address)", cfg.MaxConnsPerAddr, cfg.MaxConns, cfg.MaxConns)
	case cfg.RandomEvery < 0 || cfg.ClassifiedEvery < 0:
		return usagef("--random-every and --classified-every take a positive duration, or 0 for off")
	case keep.Ads <= 0:
		return usagef("--keep-ads must be at least 1")
	case keep.AdAge <= 0:
		return usagef("--keep-for must be positive, e.g. 168h")
	case (cfg.CertFile == "") != (cfg.KeyFile == ""):
		return usagef("--tls-cert and --tls-key go together: give both files, or neither")
	}
	for _, h := range cfg.HTTPHosts {
		if h == "" || strings.ContainsAny(h, " /:@") {
			return usagef("--http-host %q: give a host name such as hark.example.org, without scheme or port", h)
		}
	}
	if !set["max-conns-per-addr"] {
		cfg.MaxConnsPerAddr = server.DefaultMaxConnsPerAddr(cfg.MaxConns)
	}
	return nil
}

// warnUnusedTokens warns when a gateway's data directory (dir, or the
// default) holds tokens: with --store nats:// the tokens are the store's,
// and a token file left from a single server would otherwise be dropped
// without a word, every client refused.
func warnUnusedTokens(log *slog.Logger, dir string) {
	if dir == "" {
		var err error
		if dir, err = defaultDataDir(); err != nil {
			return
		}
	}
	toks, err := store.ListTokens(dir)
	if err != nil || len(toks) == 0 {
		return
	}
	log.Warn("the data directory holds tokens that --store nats:// does not use: the store's own are used; add them there with 'hark token add --store …' (see hark token -h)",
		"file", filepath.Join(dir, store.TokensFileName), "tokens", len(toks))
}

// defaultDataDir follows the XDG base directory spec: the store is data
// the user would back up, so it goes under $XDG_DATA_HOME.
func defaultDataDir() (string, error) {
	d, err := xdg.DataHome()
	if err != nil {
		return "", fmt.Errorf("%w, or pass --data DIR", err)
	}
	return filepath.Join(d, "hark", "server"), nil
}

// checkHostPort checks a flag's address to listen on (port 0: any free
// port).
func checkHostPort(flagName, addr string) error {
	if _, _, err := hostport.Parse(addr); err != nil {
		return usagef("%s %q: %v", flagName, addr, err)
	}
	return nil
}

// hostList is a repeatable, comma-separated flag.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

func (h *hostList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		*h = append(*h, strings.TrimSpace(p))
	}
	return nil
}
