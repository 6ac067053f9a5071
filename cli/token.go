package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/jetstream"
)

const tokenUsage = `Usage:
  hark token add [--data DIR | --store nats://HOST:PORT[,…]] --scope publish|subscribe [--label TEXT] [--expires DURATION]
  hark token list [--data DIR | --store nats://HOST:PORT[,…]]
  hark token revoke [--data DIR | --store nats://HOST:PORT[,…]] ID

Tokens are kept (hashed) in the server's data directory, or with --store
nats://… in the NATS JetStream store that hark serve gateways share (give
--nats-creds FILE and --nats-ca FILE as to hark serve). A running hark serve
sees additions and revocations within a second. Run 'hark token add -h' for
a subcommand's flags.
`

// Token runs `hark token`: the tokens are changed where they are kept (the
// data directory's file, or the JetStream store's bucket), not through a
// running server, so that they can be managed whether or not one runs.
func Token(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("say add, list or revoke")
	}
	if isHelp(args[0]) || args[0] == "help" {
		fmt.Fprint(stderr, tokenUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "add":
		return tokenAdd(ctx, args[1:], stdout, stderr)
	case "list":
		return tokenList(ctx, args[1:], stdout, stderr)
	case "revoke":
		return tokenRevoke(ctx, args[1:], stdout, stderr)
	}
	return usagef("unknown subcommand %q: say add, list or revoke", args[0])
}

// tokenFlags are where `hark token` finds the tokens: --data, or --store
// and its NATS flags as hark serve takes them.
type tokenFlags struct {
	data string
	sf   storeFlags
}

// addTokenFlags adds the flags; replicas adds --nats-replicas, for add,
// which may create the JetStream store's tokens bucket.
func addTokenFlags(fs *flag.FlagSet, replicas bool) *tokenFlags {
	f := &tokenFlags{}
	fs.StringVar(&f.data, "data", "", "the server's data `directory` (default $XDG_DATA_HOME/hark/server)")
	fs.StringVar(&f.sf.spec, "store", "", "the `store` of hark serve gateways, whose tokens they share: nats://HOST:PORT[,…] (NATS JetStream); or bolt:DIR, as --data")
	fs.StringVar(&f.sf.creds, "nats-creds", "", "NATS credentials `file` for --store nats://")
	fs.StringVar(&f.sf.ca, "nats-ca", "", "CA certificate `file` (PEM) that NATS servers' certificates are verified against (tls:// URLs)")
	if replicas {
		fs.IntVar(&f.sf.replicas, "nats-replicas", 0, "JetStream replicas of the tokens bucket when this creates it (default: 3 when the cluster has 3 servers or more, else 1)")
	}
	return f
}

// tokenPlace is where the tokens are: a data directory, or a JetStream
// store.
type tokenPlace struct {
	dir  string // the token file's directory, unless nats
	nats *jetstream.Options
}

// place checks the flags given (fs, once parsed) and says where the
// tokens are.
func (f *tokenFlags) place(fs *flag.FlagSet) (tokenPlace, error) {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg := server.Config{DataDir: f.data}
	if err := f.sf.check(&cfg, set); err != nil {
		return tokenPlace{}, err
	}
	if f.sf.nats() {
		if set["data"] {
			return tokenPlace{}, usagef("--store %s and --data %s name two stores: give one (the tokens of hark serve --store nats:// are in JetStream)", f.sf.spec, f.data)
		}
		opts := f.sf.options()
		return tokenPlace{nats: &opts}, nil
	}
	dir, err := dataDir(cfg.DataDir)
	return tokenPlace{dir: dir}, err
}

// String names the place for messages (without NATS credentials).
func (p tokenPlace) String() string {
	if p.nats != nil {
		return jetstream.DescribeTokens(*p.nats)
	}
	return p.dir
}

func (p tokenPlace) add(ctx context.Context, scope store.Scope, label string, expires time.Time) (string, store.Token, error) {
	if p.nats != nil {
		return jetstream.AddToken(ctx, *p.nats, scope, label, expires)
	}
	return store.AddToken(p.dir, scope, label, expires)
}

func (p tokenPlace) list(ctx context.Context) ([]store.Token, error) {
	if p.nats != nil {
		return jetstream.ListTokens(ctx, *p.nats)
	}
	return store.ListTokens(p.dir)
}

func (p tokenPlace) revoke(ctx context.Context, id string) (store.Token, error) {
	if p.nats != nil {
		return jetstream.RevokeToken(ctx, *p.nats, id)
	}
	return store.RevokeToken(p.dir, id)
}

// dataDir is --data, or the default hark serve uses.
func dataDir(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	return defaultDataDir()
}

const storeUsage = "[--data DIR | --store nats://HOST:PORT[,…] [--nats-creds FILE] [--nats-ca FILE]]"

func tokenAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token add", storeUsage+" --scope publish|subscribe [--label TEXT] [--expires DURATION]", stderr)
	where := addTokenFlags(fs, true)
	scope := fs.String("scope", "", "what the token may do: publish (the publish API) or subscribe (the protocol); required")
	label := fs.String("label", "", "what or who the token is for, shown by 'hark token list'")
	var exp expiryFlag
	fs.Var(&exp, "expires", "the token stops working after this `duration`: 30d, 12h, 90m (default: never)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: add takes only flags (quote a --label with spaces)", fs.Arg(0))
	}
	if *scope == "" {
		return usagef("--scope is required: publish (the publish API) or subscribe (the protocol)")
	}
	sc, err := store.ParseScope(*scope)
	if err != nil {
		return usagef("--scope %q: use publish or subscribe", *scope)
	}
	if err := store.CheckTokenLabel(*label); err != nil {
		return usagef("--label: %s", strings.TrimPrefix(err.Error(), store.ErrBadTokenLabel.Error()+": "))
	}
	place, err := where.place(fs)
	if err != nil {
		return err
	}
	var expires time.Time
	if exp.d > 0 {
		expires = time.Now().Add(exp.d)
	}
	secret, tok, err := place.add(ctx, sc, *label, expires)
	if err != nil {
		return err
	}
	// The secret alone on stdout, so that TOKEN=$(hark token add …)
	// works; everything for people goes to stderr.
	if _, err := fmt.Fprintln(stdout, secret); err != nil {
		return err
	}
	until := "never expires"
	if !tok.Expires.IsZero() {
		until = "expires " + tok.Expires.Local().Format(tokenTimeLayout)
	}
	fmt.Fprintf(stderr, "hark token: created %s token %s (%s) in %s\n", tok.Scope, tok.ID, until, place)
	fmt.Fprintln(stderr, "This is the only time the token is shown: hark keeps only its hash. Store it now.")
	switch tok.Scope {
	case store.ScopePublish:
		fmt.Fprintln(stderr, "Use it with the publish API: 'Authorization: Bearer TOKEN', or 'hark publish --token-file FILE'.")
	case store.ScopeSubscribe:
		fmt.Fprintln(stderr, "Use it on a subscriber: 'hark login' asks for it.")
	}
	revoke := "hark token revoke"
	if place.nats != nil {
		revoke += " --store …"
	}
	fmt.Fprintf(stderr, "Revoke it with '%s %s'.\n", revoke, tok.ID)
	return nil
}

// tokenTimeLayout shows times in the table and messages: local time to
// the minute, which is what a person checking a token wants.
const tokenTimeLayout = "2006-01-02 15:04 MST"

func tokenList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token list", storeUsage, stderr)
	where := addTokenFlags(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: list takes only flags", fs.Arg(0))
	}
	place, err := where.place(fs)
	if err != nil {
		return err
	}
	toks, err := place.list(ctx)
	if err != nil {
		return err
	}
	if len(toks) == 0 {
		_, err := fmt.Fprintf(stdout, "no tokens in %s: create one with 'hark token add --scope publish|subscribe'\n", place)
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSCOPE\tLABEL\tCREATED\tLAST USED\tEXPIRES")
	for _, t := range toks {
		label := t.Label
		if label == "" {
			label = "-"
		}
		expires := "never"
		if !t.Expires.IsZero() {
			expires = t.Expires.Local().Format(tokenTimeLayout)
			if t.Expired(now) {
				expires += " (expired)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Scope, label,
			t.Created.Local().Format(tokenTimeLayout), orNever(t.LastUsed), expires)
	}
	return tw.Flush()
}

func orNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format(tokenTimeLayout)
}

func tokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token revoke", storeUsage+" ID", stderr)
	where := addTokenFlags(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		return usagef("say which token: hark token revoke ID ('hark token list' shows the ids)")
	case fs.NArg() > 1:
		return usagef("unexpected argument %q: revoke takes one ID, after the flags", fs.Arg(1))
	case strings.HasPrefix(fs.Arg(0), store.TokenPrefix):
		// Not echoed: it is a secret, and this is a terminal or a log.
		return usagef("give the token's ID, not the token itself ('hark token list' shows the ids)")
	}
	place, err := where.place(fs)
	if err != nil {
		return err
	}
	tok, err := place.revoke(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	label := ""
	if tok.Label != "" {
		label = fmt.Sprintf(" %q", tok.Label)
	}
	who := "a running hark serve refuses it"
	if place.nats != nil {
		who = "every hark serve of the store refuses it"
	}
	what := "token"
	if tok.Scope != "" { // "": a damaged record in JetStream, removed all the same
		what = string(tok.Scope) + " token"
	}
	_, err = fmt.Fprintf(stdout, "revoked %s %s%s; %s and drops its connections within a second\n", what, tok.ID, label, who)
	return err
}

// expiryFlag is --expires: a Go duration (12h, 90m) or whole days (30d),
// which Go's durations lack and tokens are usually given in.
type expiryFlag struct{ d time.Duration }

// maxExpiryDays keeps a duration in days within time.Duration's range.
const maxExpiryDays = 100 * 366

func (e *expiryFlag) String() string {
	if e == nil || e.d == 0 {
		return ""
	}
	return e.d.String()
}

func (e *expiryFlag) Set(s string) error {
	d, err := parseExpiry(s)
	if err != nil {
		return err
	}
	e.d = d
	return nil
}

func parseExpiry(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a duration: use whole days (30d) or a Go duration (12h, 90m)", s)
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || strings.HasPrefix(days, "+") {
			return 0, bad
		}
		if n > maxExpiryDays {
			return 0, fmt.Errorf("%q is too long: at most %dd", s, maxExpiryDays)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad
		}
	}
	if d <= 0 {
		return 0, errors.New("must be positive, e.g. 30d; leave it out for a token that never expires")
	}
	return d, nil
}
