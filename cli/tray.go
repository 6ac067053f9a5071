package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/tray"
)

// Demo generator periods: often enough to see popups within a minute.
const (
	demoRandomEvery     = 10 * time.Second
	demoClassifiedEvery = 30 * time.Second
	// trayGCPercent is the tray's GOGC (see runTray).
	trayGCPercent = 25
)

// trayFlags are the flags that decide what the tray connects to and
// where its settings live; start on login repeats them.
type trayFlags struct {
	server, config string
	demo           bool
}

func (f *trayFlags) register(fs *flag.FlagSet, withDemo bool) {
	fs.StringVar(&f.server, "server", "", "the hark server: `host:port`, or tls://host:port for one that speaks TLS; or several servers of one store, separated by commas (default: the config file's, else "+DefaultServer+")")
	fs.StringVar(&f.config, "config", "", "settings `file` (default $XDG_CONFIG_HOME/hark/config.toml)")
	if withDemo {
		fs.BoolVar(&f.demo, "demo", false, "run a demo server with sample items inside hark, and connect to it")
	}
}

func (f *trayFlags) check() error {
	if f.server != "" {
		if err := tray.CheckServer(f.server); err != nil {
			return usagef("--server takes host:port or tls://host:port, or a comma-separated list of them: %v", err)
		}
	}
	if f.demo && f.server != "" {
		return usagef("--demo runs its own server: leave out --server")
	}
	return nil
}

// configPath resolves --config to an absolute path, so start on login
// finds the same file whatever its working directory.
func (f *trayFlags) configPath() (string, error) {
	if f.config == "" {
		return tray.DefaultConfigPath()
	}
	p, err := filepath.Abs(f.config)
	if err != nil {
		return "", fmt.Errorf("--config %q: %w", f.config, err)
	}
	return p, nil
}

// autostart is the start-on-login entry for this binary and these flags.
func (f *trayFlags) autostart() (*tray.Autostart, error) {
	exe, note, err := selfPath()
	if err != nil {
		return nil, err
	}
	argv := []string{exe}
	switch {
	case f.demo:
		argv = append(argv, "--demo")
	case f.server != "":
		argv = append(argv, "--server", f.server)
	}
	if f.config != "" {
		p, err := f.configPath()
		if err != nil {
			return nil, err
		}
		argv = append(argv, "--config", p)
	}
	as, err := tray.NewAutostart(argv)
	if err != nil {
		return nil, err
	}
	as.Note = note
	return as, nil
}

// selfPath is this binary's path for an autostart entry. A `go run`
// binary lives in a build cache that is deleted on exit, so then an
// installed hark on PATH is used instead, if there is one; if not, note
// says why the entry will not work.
func selfPath() (exe, note string, err error) {
	exe, err = os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("finding hark's own binary for start on login: %w", err)
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		if p, err := exec.LookPath("hark"); err == nil {
			if abs, err := filepath.Abs(p); err == nil {
				return abs, "", nil
			}
		}
		note = "this hark runs from a temporary `go run` build and no hark is on PATH, so the entry will not find it at the next login: install hark (go install .) and enable it again"
	}
	return exe, note, nil
}

// logStdLogTo sends what the standard library's log package prints into
// log, each line a warning, until the returned function puts it back.
// fyne.io/systray reports its failures there ("systray error: failed to
// register: …"): started on login, hark logs to the journal, and those
// lines belong beside hark's own, with a level, not in an unstructured
// stderr. The std logger is the process's, so only the tray's command,
// which owns the process, may take it.
func logStdLogTo(log *slog.Logger) (restore func()) {
	out, flags := stdlog.Writer(), stdlog.Flags()
	stdlog.SetFlags(0) // the record has its time
	stdlog.SetOutput(slog.NewLogLogger(log.Handler(), slog.LevelWarn).Writer())
	return func() {
		stdlog.SetOutput(out)
		stdlog.SetFlags(flags)
	}
}

// Tray runs `hark` without a command: the tray app.
func Tray(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("", "[--server [tls://]host:port] [--config file] [--demo]", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: hark [--server [tls://]host:port] [--config file] [--demo]\n\nRuns the tray app. Flags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nOther commands: run 'hark help'.\n")
	}
	var f trayFlags
	f.register(fs, true)
	var level logLevel
	fs.Var(&level, "log-level", "debug, info, warn or error (default info)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: run 'hark help' for the commands", fs.Arg(0))
	}
	if err := f.check(); err != nil {
		return err
	}
	log, dest := trayLogger(stderr, &level)
	if dest != "stderr" {
		fmt.Fprintf(stderr, "hark: logging to %s\n", dest)
	}
	defer logStdLogTo(log)()
	cfgPath, err := f.configPath()
	if err != nil {
		return err
	}
	state, err := stateDir()
	if err != nil {
		return err
	}
	as, err := f.autostart()
	if err != nil {
		return err
	}
	opts := tray.Options{
		Server:        f.server,
		DefaultServer: DefaultServer,
		ConfigPath:    cfgPath,
		StateDir:      state,
		Autostart:     as,
		Logger:        log,
	}
	if f.demo {
		// A second demo says so before it starts a server whose publish
		// address would be dead a moment later.
		if running, err := tray.Running(state); err == nil && running {
			fmt.Fprintln(stderr, alreadyRunning)
			return nil
		}
		// The demo is a demo: its settings and state live in a temporary
		// directory, it never writes the user's config.toml, and it has
		// no start-on-login entry to write.
		tmp, err := os.MkdirTemp("", "hark-demo-tray-*")
		if err != nil {
			return fmt.Errorf("demo settings: %w", err)
		}
		defer os.RemoveAll(tmp)
		opts.ConfigPath = filepath.Join(tmp, "config.toml")
		opts.StateDir = tmp
		opts.Autostart = nil
		opts.Demo = true
		srv, stop, err := startDemo(log, stderr)
		if err != nil {
			return err
		}
		defer stop()
		// A fresh store restarts ids at 1: identifying would make the
		// client skip them, so the demo speaks plain version 1.
		opts.Server = srv
	} else {
		idt, err := netclient.OpenIdentity(state)
		if err != nil {
			return err
		}
		defer idt.Close()
		opts.Identity = idt
	}
	// A tray's live heap is under 1 MiB, but Go collects only once the
	// heap reaches 4 MiB at the default GOGC of 100, and what start-up
	// grew stays resident: 2 MiB of the tray's idle memory. At 25 the
	// heap stays near 1 MiB, for one more collection per MiB allocated,
	// which at a tray's rate of items is nothing (docs/PERFORMANCE.md).
	// GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(trayGCPercent)
	}
	err = tray.Run(ctx, opts)
	if errors.Is(err, tray.ErrRunning) {
		fmt.Fprintln(stderr, alreadyRunning)
		return nil
	}
	return err
}

const alreadyRunning = "hark is already running in this session: look for its icon in the tray (or quit it first)"

// startDemo runs an embedded hark serve on free loopback ports with its
// generators on and a store in a temporary directory.
func startDemo(log *slog.Logger, stderr io.Writer) (addr string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "hark-demo-*")
	if err != nil {
		return "", nil, fmt.Errorf("demo store: %w", err)
	}
	srv, err := server.Start(server.Config{
		Listen:          "127.0.0.1:0",
		HTTP:            "127.0.0.1:0",
		DataDir:         dir,
		RandomEvery:     demoRandomEvery,
		ClassifiedEvery: demoClassifiedEvery,
		// Its problems, not its every publication, in the tray's log.
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("component", "demo server"),
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("demo server: %w", err)
	}
	api := "http://" + srv.HTTPAddr().String()
	log.Info("demo server is running: a random number every 10 s, an ad every 30 s", "protocol", srv.Addr(), "publish_api", api)
	fmt.Fprintf(stderr, "hark demo: publish your own ad with\n  %s publish --http %s classified 'Bike for sale, 50 EUR'\n", publishCommand(), api)
	return srv.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		srv.Shutdown(ctx)
		os.RemoveAll(dir)
	}, nil
}

// publishCommand is how the user who started this hark runs hark
// publish: `go run .` from a source tree, else the installed binary's
// name (or path, when it is not the hark on PATH).
func publishCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "hark"
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ."
	}
	if p, err := exec.LookPath("hark"); err == nil {
		if a, err := filepath.EvalSymlinks(p); err == nil {
			if b, err := filepath.EvalSymlinks(exe); err == nil && a == b {
				return "hark"
			}
		}
	}
	return exe
}

// Autostart runs `hark autostart enable|disable|status`.
func Autostart(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("autostart", "enable|disable|status [--server [tls://]host:port] [--config file]", stderr)
	var f trayFlags
	f.register(fs, false)
	if len(args) == 0 {
		return usagef("say enable, disable or status")
	}
	verb := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := f.check(); err != nil {
		return err
	}
	as, err := f.autostart()
	if err != nil {
		return err
	}
	switch verb {
	case "enable":
		if err := as.Enable(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "hark starts on login: %s\n", as.Path)
		if as.Note != "" {
			fmt.Fprintf(stderr, "hark autostart: warning: %s\n", as.Note)
		}
	case "disable":
		if err := as.Disable(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "hark does not start on login (%s removed)\n", as.Path)
	case "status":
		on, err := as.Enabled()
		if err != nil {
			return err
		}
		if on {
			fmt.Fprintf(stdout, "enabled: %s\n", as.Path)
		} else {
			fmt.Fprintf(stdout, "disabled: no %s\n", as.Path)
		}
	default:
		return usagef("%q: say enable, disable or status", verb)
	}
	return nil
}
