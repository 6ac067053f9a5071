// Package cli implements hark's commands: parsing their flags, wiring the
// packages that do the work, and turning errors into messages and exit
// statuses. main only dispatches here.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// errUsage marks a command-line mistake: exit status 2, and the message
// says what to type instead.
var errUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the reference server (protocol, publish API, durable store)", Serve},
		{"token", "create, list or revoke API tokens (in the server's data directory, or a NATS store)", Token},
		{"store", "move a server's store into NATS JetStream for gateways (hark store migrate)", Store},
		{"publish", "publish a random number or a classified ad through a server's API", Publish},
		{"watch", "print each new item as it arrives (a headless subscriber)", Watch},
		{"login", "check a subscribe token against a server and keep it for the tray (keyring, else a 0600 file)", Login},
		{"bench", "load-test a server: N clients in notification mode, M published items", Bench},
		{"autostart", "enable or disable starting the tray on login, or print its status", Autostart},
		{"version", "print hark's version", Version},
	}
}

const usageText = `hark: a desktop notifier for the hark protocol

Usage:
  hark [--server host:port] [--config file] [--demo]   run the tray app
  hark <command> [flags] [arguments]

Commands:
%s
Run 'hark <command> -h' for a command's flags, 'hark --version' for the version.
`

func printUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, usageText, b.String())
}

// Run runs the command named by args[0] and returns the process's exit
// status: 0 on success, 2 on a usage error, 1 on any other failure.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) > 0 && isVersion(args[0]):
		return finish(stderr, "hark version", Version(ctx, args[1:], stdout, stderr))
	case len(args) == 0, strings.HasPrefix(args[0], "-") && !isHelp(args[0]):
		// No command: the tray app, the face most people use.
		return finish(stderr, "hark", Tray(ctx, args, stdout, stderr))
	case args[0] == "help" || isHelp(args[0]):
		printUsage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		rest := args[1:]
		if c.name == "autostart" && len(rest) > 0 && isHelp(rest[0]) {
			// Autostart takes its verb before its flags: give it one, so
			// that its flag set answers -h with its usage.
			rest = append([]string{"status"}, rest...)
		}
		return finish(stderr, "hark "+c.name, c.run(ctx, rest, stdout, stderr))
	}
	fmt.Fprintf(stderr, "hark: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return 2
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// isVersion: hark --version, as git and most tools have it, and -v.
func isVersion(arg string) bool {
	return arg == "-v" || arg == "-version" || arg == "--version"
}

// finish turns a command's error into its message and exit status.
func finish(stderr io.Writer, name string, err error) int {
	var fe *flagError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &fe):
		// One line that says what was wrong, and where the flags are
		// listed, as kubectl does: the list itself would push the line
		// off the screen.
		fmt.Fprintf(stderr, "%s: %v\nRun '%s -h' for usage.\n", fe.cmd, fe.err, fe.cmd)
		return 2
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "%s: %s\n", name, strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

// newFlags returns a flag set whose errors come back as usage errors
// instead of exiting the process. Its usage (for -h) goes to stderr.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(strings.TrimSpace("hark "+name), flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), strings.TrimSpace("Usage: "+fs.Name()+" "+synopsis))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprint(fs.Output(), "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// flagError is a flag the flag package refused: printed by finish as one
// line and a pointer to the command's -h. cmd is the command as typed
// ("hark token add").
type flagError struct {
	err error
	cmd string
}

func (e *flagError) Error() string        { return e.err.Error() }
func (e *flagError) Is(target error) bool { return target == errUsage }

// parse parses flags. -h prints the usage and returns flag.ErrHelp; a bad
// flag comes back as a *flagError, printed once, by finish (the flag
// package's own message and usage are held back).
func parse(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	}
	return &flagError{err: err, cmd: fs.Name()}
}

// logLevel is a flag.Value for --log-level.
type logLevel struct{ slog.LevelVar }

func (l *logLevel) Set(s string) error {
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("%q is not a log level: use debug, info, warn or error", s)
	}
	return nil
}

func newLogger(w io.Writer, level *logLevel) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: &level.LevelVar}))
}
