package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/harkapp/hark/bench"
	"github.com/harkapp/hark/internal/hostport"
	"github.com/harkapp/hark/internal/keyring"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// Bench runs `hark bench`: a load test of any server of the protocol, on
// loopback. The engine is package bench; this is its flags and its report.
func Bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", "[flags]", stderr)
	cfg := bench.Config{}
	fs.StringVar(&cfg.Server, "server", DefaultServer, "protocol `address` of the server: host:port, or tls://host:port (loopback only); or several, separated by commas (a:6789,b:6789), which the clients are spread over in turn")
	httpURL := fs.String("http", "http://"+server.DefaultHTTP, "publish API `URL` of the server, like hark serve's (loopback only)")
	fs.StringVar(&cfg.PublishCmd, "publish-cmd", "", "instead of --http, run this shell `command` per item; {value} and {kind} are replaced, quoted")
	fs.IntVar(&cfg.Clients, "clients", 1000, "clients connected at once, each in notification mode")
	fs.IntVar(&cfg.Items, "items", 100, "items to publish")
	fs.Float64Var(&cfg.Rate, "rate", 0, "items per second; 0 publishes each item once every client has fetched the previous one")
	kind := fs.String("kind", string(wire.KindClassified), "what to publish: classified (fetched with classified?) or random (random?)")
	fs.BoolVar(&cfg.V1, "v1", false, "do not identify the clients (plain version 1: no hello, no seen)")
	fs.BoolVar(&cfg.Classic, "classic", false, "identified clients fetch each item after its push (stop_notif, fetch, notif) even when the server offers items in pushes")
	fs.DurationVar(&cfg.Settle, "settle", bench.DefaultSettle, "how long to wait for the last fetches (and, with --rate 0, for each item) before counting what is missing as lost")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "`pid` of the server process, to report its CPU time and memory (Linux)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the table")
	var sec clientSecurity
	sec.register(fs, "subscribe")
	pubTokenFile := fs.String("publish-token-file", "", "read the publish token, sent with each publish, from this `file` (mode 0600)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: bench takes only flags", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := checkBenchFlags(&cfg, *kind, *httpURL, set); err != nil {
		return err
	}
	if cfg.PublishCmd == "" {
		cfg.PublishURL = *httpURL
	}
	if err := benchSecurity(&cfg, sec, *pubTokenFile); err != nil {
		return err
	}
	cfg.Progress = func(msg string) { fmt.Fprintf(stderr, "hark bench: %s\n", msg) }

	res, err := bench.Run(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		err = enc.Encode(res)
	} else {
		err = printBench(stdout, cfg, res)
	}
	if err != nil {
		return err
	}
	if !res.OK() {
		msg := fmt.Sprintf("not every client fetched every item exactly once: %d lost, %d duplicated, %d client(s) dropped", res.Lost, res.Duplicated, res.Dropped)
		if res.FirstError != "" {
			msg += " (" + res.FirstError + ")"
		}
		return errors.New(msg)
	}
	return nil
}

// benchSecurity sets the run's TLS and tokens: TLS for a tls:// server
// (verified against --ca, or the system's roots, and the server's host
// name), the subscribe token of --token-file or $HARK_TOKEN, and the
// publish token.
func benchSecurity(cfg *bench.Config, sec clientSecurity, pubTokenFile string) error {
	addrs, err := netclient.ParseAddrs(cfg.Server)
	if err != nil {
		return usagef("--server: %v", err)
	}
	hostPorts := make([]string, len(addrs))
	for i, a := range addrs {
		hostPorts[i] = a.HostPort
	}
	cfg.Server = strings.Join(hostPorts, ",")
	// Each client verifies the host it connects to (bench sets the
	// ServerName per server); a list is all TLS or none.
	if addrs[0].TLS || strings.HasPrefix(cfg.PublishURL, "https://") {
		if cfg.TLS, err = sec.tlsConfig(); err != nil {
			return err
		}
	}
	if cfg.Token, err = sec.token(); err != nil {
		return err
	}
	if pubTokenFile != "" {
		tok, err := keyring.ReadTokenFile(pubTokenFile)
		if err != nil {
			return fmt.Errorf("--publish-token-file: %w", err)
		}
		cfg.PublishToken = tok
	}
	return nil
}

func checkBenchFlags(cfg *bench.Config, kind, httpURL string, set map[string]bool) error {
	addrs, err := netclient.ParseAddrs(cfg.Server)
	if err != nil {
		return usagef("--server: %v", err)
	}
	// A load test from here can only be of a server on this machine: it
	// would flood anything else, and measure the network besides.
	for _, a := range addrs {
		if !a.Loopback() {
			return usagef("--server %q: hark bench runs on loopback only (127.0.0.1, ::1, localhost), and %s is not", cfg.Server, a)
		}
	}
	switch {
	case cfg.Clients < 1:
		return usagef("--clients must be at least 1")
	case cfg.Items < 1 || cfg.Items > bench.MaxItems:
		return usagef("--items must be from 1 to %d", bench.MaxItems)
	case cfg.Rate < 0:
		return usagef("--rate must be 0 (each item once the previous one is fetched) or a positive number of items per second")
	case cfg.Settle <= 0:
		return usagef("--settle must be positive, e.g. 10s")
	case cfg.ServerPID < 0:
		return usagef("--server-pid must be a process id")
	case cfg.V1 && cfg.Classic:
		return usagef("--classic is for identified clients: with --v1 every client fetches after each push")
	}
	cfg.Kind = wire.Kind(kind)
	if !cfg.Kind.Valid() {
		return usagef("--kind %q: use classified or random", kind)
	}
	if cfg.PublishCmd != "" {
		if set["http"] {
			return usagef("--http and --publish-cmd are alternatives: give one")
		}
		if !strings.Contains(cfg.PublishCmd, "{value}") {
			return usagef("--publish-cmd %q: it must contain {value}, where each item's value goes", cfg.PublishCmd)
		}
	} else {
		u, err := url.Parse(httpURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--http %q: want a URL such as http://127.0.0.1:6790", httpURL)
		}
		if !hostport.IsLoopbackHost(u.Hostname()) {
			return usagef("--http %q: hark bench runs on loopback only (127.0.0.1, ::1, localhost)", httpURL)
		}
	}
	if cfg.ServerPID > 0 {
		if err := bench.CheckPID(cfg.ServerPID); err != nil {
			return usagef("--server-pid %d: %v", cfg.ServerPID, err)
		}
	}
	return nil
}

func printBench(w io.Writer, cfg bench.Config, r *bench.Result) error {
	var b strings.Builder
	who := "identified"
	switch {
	case !r.Identified:
		who = "version-1"
	case r.PushItems == r.Clients:
		who = "identified (items in pushes)"
	case r.PushItems > 0:
		who = fmt.Sprintf("identified (%d with items in pushes)", r.PushItems)
	default:
		who = "identified (fetch cycle)"
	}
	what := "classified ad"
	if r.Kind == string(wire.KindRandom) {
		what = "random number"
	}
	if r.Items != 1 {
		what += "s"
	}
	pace := fmt.Sprintf("at %g/s", r.Rate)
	if r.Rate == 0 {
		pace = "closed loop (each once every client has fetched the previous one)"
	}
	via := cfg.PublishURL
	if cfg.PublishCmd != "" {
		via = "the command " + cfg.PublishCmd
	}
	fmt.Fprintf(&b, "hark bench: %d %s clients, %d %s, %s\n", r.Clients, who, r.Items, what, pace)
	fmt.Fprintf(&b, "server %s, publishing through %s\n\n", r.Server, via)

	fmt.Fprintf(&b, "%-26s %9s %9s %9s %9s %9s\n", "from publish to (ms)", "p50", "p90", "p99", "max", "samples")
	row := func(name string, d bench.Dist) {
		fmt.Fprintf(&b, "%-26s %9.3f %9.3f %9.3f %9.3f %9d\n", name, d.P50, d.P90, d.P99, d.Max, d.N)
	}
	row("  notif: received", r.NotifMS)
	row("  item fetched", r.FetchMS)
	row("  publish call returned", r.PublishMS)
	b.WriteString("\n")

	fmt.Fprintf(&b, "delivered   %d of %d (item × client); lost %d, duplicated %d", r.Delivered, r.Items*r.Clients, r.Lost, r.Duplicated)
	if r.Superseded > 0 {
		fmt.Fprintf(&b, ", superseded %d (random? returns only the latest)", r.Superseded)
	}
	if r.Dropped > 0 {
		fmt.Fprintf(&b, "; %d client(s) dropped", r.Dropped)
	}
	if r.Foreign > 0 {
		fmt.Fprintf(&b, "; %d item(s) fetched that this run did not publish", r.Foreign)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "throughput  %.1f items/s to every client (%d in %.3f s, first publish to last fetch); published at %.1f/s", r.ItemsPerS, r.Items, r.DurationS, r.PublishedPerS)
	if r.Rate > 0 && r.PublishedPerS < 0.95*r.Rate {
		fmt.Fprintf(&b, ", below the %g/s asked: the publish calls could not keep up", r.Rate)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "clients     connected in %.2f s; largest fetch batch %d", r.ConnectS, r.MaxBatch)
	if r.MaxBatch <= 1 {
		b.WriteString(" (nobody fell behind)")
	}
	if r.SlowItems > 0 {
		fmt.Fprintf(&b, "; %d item(s) not fetched by everyone within --settle %v", r.SlowItems, cfg.Settle)
	}
	b.WriteString("\n")
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first drop  %s\n", r.FirstError)
	}

	if r.ServerProc != nil || r.BenchProc != nil {
		fmt.Fprintf(&b, "\n%-20s %12s %12s %13s %13s %13s %13s\n", "process", "CPU connect", "CPU run", "RSS before", "RSS idle", "RSS end", "RSS peak")
		proc := func(name string, p *bench.Proc) {
			if p == nil {
				return
			}
			fmt.Fprintf(&b, "%-20s %10.2f s %10.2f s %9.1f MiB %9.1f MiB %9.1f MiB %9.1f MiB\n",
				fmt.Sprintf("  %s %d", name, p.PID), p.ConnectCPUS, p.CPUS, p.StartRSSMiB, p.ConnRSSMiB, p.RSSMiB, p.PeakRSSMiB)
		}

		proc("server", r.ServerProc)
		proc("bench", r.BenchProc)
		b.WriteString("CPU connect: while the clients connected; CPU run: first publish to the end;\nRSS idle: every client connected, before the first publish.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
