package cli_test

import (
	"strings"
	"testing"
)

// TestRunExitCodes checks the exit status of every command-line mistake,
// and that its message says what was wrong. None of these cases needs a
// server: mistakes are caught before anything is opened or sent.
func TestRunExitCodes(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		inStderr []string // each must appear on stderr
	}{
		{"tray bogus flag", []string{"--bogus"}, 2, []string{"bogus"}},
		{"tray bad server", []string{"--server", "nonsense"}, 2, []string{"--server", `"nonsense"`, "host:port"}},
		{"tray demo and server", []string{"--demo", "--server", "127.0.0.1:1"}, 2, []string{"--demo"}},
		{"tray extra arg", []string{"--demo", "now"}, 2, []string{`"now"`}},
		{"autostart no verb", []string{"autostart"}, 2, []string{"enable, disable or status"}},
		{"autostart bad verb", []string{"autostart", "maybe"}, 2, []string{`"maybe"`}},
		{"autostart bad server", []string{"autostart", "enable", "--server", "x"}, 2, []string{"--server"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`, "Usage:"}},
		{"serve bogus flag", []string{"serve", "--bogus"}, 2, []string{"bogus"}},
		{"serve bad listen", []string{"serve", "--listen", "nonsense"}, 2, []string{"--listen", `"nonsense"`, "host:port"}},
		{"serve bad http", []string{"serve", "--http", "nonsense"}, 2, []string{"--http", `"nonsense"`}},
		{"serve port out of range", []string{"serve", "--listen", "127.0.0.1:99999"}, 2, []string{"--listen", "0 to 65535"}},
		{"serve port with a sign", []string{"serve", "--listen", "127.0.0.1:+6789"}, 2, []string{"--listen", `"+6789"`, "0 to 65535"}},
		{"serve port in hex", []string{"serve", "--http", "127.0.0.1:0x1a85"}, 2, []string{"--http", `"0x1a85"`}},
		{"serve IPv6 without brackets", []string{"serve", "--listen", "::1:6789"}, 2, []string{"--listen", "brackets", "[::1]:6789"}},
		{"serve pprof without port", []string{"serve", "--pprof", "127.0.0.1"}, 2, []string{"--pprof", "missing port"}},
		{"watch bad server", []string{"watch", "--server", "nonsense"}, 2, []string{"--server", `"nonsense"`}},
		{"watch bad refresh", []string{"watch", "--refresh", "0"}, 2, []string{"--refresh"}},
		{"watch extra arg", []string{"watch", "now"}, 2, []string{`"now"`}},
		{"serve idle timeout 0", []string{"serve", "--idle-timeout", "0"}, 2, []string{"--idle-timeout"}},
		{"serve negative write timeout", []string{"serve", "--write-timeout", "-1s"}, 2, []string{"--write-timeout"}},
		{"serve max conns 0", []string{"serve", "--max-conns", "0"}, 2, []string{"--max-conns"}},
		{"serve keep ads 0", []string{"serve", "--keep-ads", "0"}, 2, []string{"--keep-ads"}},
		{"serve bad log level", []string{"serve", "--log-level", "loud"}, 2, []string{"log level"}},
		{"serve extra arg", []string{"serve", "extra-arg"}, 2, []string{`"extra-arg"`}},
		{"publish no args", []string{"publish"}, 2, []string{"random", "classified"}},
		{"publish classified no text", []string{"publish", "classified"}, 2, []string{"classified"}},
		{"publish classified two words", []string{"publish", "classified", "Bike", "for sale"}, 2, []string{"quote"}},
		{"publish classified newline", []string{"publish", "classified", "a\nb"}, 2, []string{"one line", "U+000A"}},
		{"publish classified empty", []string{"publish", "classified", ""}, 2, []string{"empty"}},
		{"publish classified OK", []string{"publish", "classified", "OK"}, 2, []string{"protocol line"}},
		{"publish classified ERR", []string{"publish", "classified", "ERR boom"}, 2, []string{"protocol line"}},
		{"publish classified too long", []string{"publish", "classified", strings.Repeat("x", 1001)}, 2, []string{"1000 bytes"}},
		{"publish classified bad UTF-8", []string{"publish", "classified", "caf\xe9"}, 2, []string{"UTF-8"}},
		{"publish random abc", []string{"publish", "random", "abc"}, 2, []string{"decimal integer", `"abc"`}},
		{"publish random negative", []string{"publish", "random", "-1"}, 2, nil},
		{"publish random two numbers", []string{"publish", "random", "1", "2"}, 2, []string{"at most one"}},
		{"publish unknown kind", []string{"publish", "nonsense", "x"}, 2, []string{`"nonsense"`, "random or classified"}},
		{"publish bad url", []string{"publish", "--http", "not-a-url", "random"}, 2, []string{"--http", `"not-a-url"`}},
		{"publish url without host", []string{"publish", "--http", "http://", "random"}, 2, []string{"--http"}},
		{"publish ftp url", []string{"publish", "--http", "ftp://127.0.0.1:6790", "random"}, 2, []string{"--http"}},
		{"version with args", []string{"version", "extra"}, 2, []string{"no arguments"}},
		{"bench bogus flag", []string{"bench", "--bogus"}, 2, []string{"bogus"}},
		{"bench extra arg", []string{"bench", "now"}, 2, []string{`"now"`}},
		{"bench clients 0", []string{"bench", "--clients", "0"}, 2, []string{"--clients"}},
		{"bench items 0", []string{"bench", "--items", "0"}, 2, []string{"--items"}},
		{"bench negative rate", []string{"bench", "--rate", "-1"}, 2, []string{"--rate"}},
		{"bench rate not a number", []string{"bench", "--rate", "fast"}, 2, []string{"rate"}},
		{"bench settle 0", []string{"bench", "--settle", "0s"}, 2, []string{"--settle"}},
		{"bench classic with v1", []string{"bench", "--v1", "--classic"}, 2, []string{"--classic", "--v1"}},
		{"bench unknown kind", []string{"bench", "--kind", "poem"}, 2, []string{"--kind", `"poem"`, "classified or random"}},
		{"bench bad server", []string{"bench", "--server", "nonsense"}, 2, []string{"--server", `"nonsense"`, "host:port"}},
		{"bench remote server", []string{"bench", "--server", "192.0.2.1:6789"}, 2, []string{"--server", "loopback"}},
		{"bench remote server in a list", []string{"bench", "--server", "127.0.0.1:6789,192.0.2.1:6789"}, 2, []string{"--server", "loopback only", "192.0.2.1:6789 is not"}},
		{"bench bad list", []string{"bench", "--server", "127.0.0.1:6789,,127.0.0.1:6790"}, 2, []string{"--server", "address 2 of the list is empty"}},
		// Past the loopback check, to the next mistake: host names ignore case.
		{"bench LOCALHOST is loopback", []string{"bench", "--server", "LOCALHOST:6789", "--http", "http://LocalHost:6790", "--clients", "0"}, 2, []string{"--clients"}},
		{"bench server port 0", []string{"bench", "--server", "127.0.0.1:0"}, 2, []string{"--server", `port "0"`, "1 to 65535"}},
		{"bench bad http", []string{"bench", "--http", "nonsense"}, 2, []string{"--http", `"nonsense"`}},
		{"bench remote http", []string{"bench", "--http", "http://example.com:6790"}, 2, []string{"--http", "loopback"}},
		{"bench http and publish-cmd", []string{"bench", "--http", "http://127.0.0.1:6790", "--publish-cmd", "true {value}"}, 2, []string{"alternatives"}},
		{"bench publish-cmd without value", []string{"bench", "--publish-cmd", "true"}, 2, []string{"--publish-cmd", "{value}"}},
		{"bench no such server pid", []string{"bench", "--server-pid", "999999999"}, 2, []string{"--server-pid"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("hark %q: exit status %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, stdout, stderr)
			}
			if stdout != "" {
				t.Errorf("hark %q: stdout %q, want nothing: errors go to stderr", tc.args, stdout)
			}
			for _, w := range tc.inStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("hark %q: stderr does not say %q:\n%s", tc.args, w, stderr)
				}
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		code, stdout, stderr := run(t, arg)
		if code != 0 {
			t.Errorf("hark %s: exit status %d, want 0; stderr %s", arg, code, stderr)
		}
		for _, w := range []string{"Usage:", "serve", "publish", "version"} {
			if !strings.Contains(stdout, w) {
				t.Errorf("hark %s: stdout does not list %q:\n%s", arg, w, stdout)
			}
		}
	}
	// Each verb is the one the command takes.
	_, stdout, _ := run(t, "help")
	if i := strings.Index(stdout, "  autostart "); i < 0 || !strings.Contains(stdout[i:strings.Index(stdout[i:], "\n")+i], "status") {
		t.Errorf("hark help does not name autostart's verbs as they are typed (status, not show):\n%s", stdout)
	}
	// A command's own -h lists its flags and is not an error.
	code, _, stderr := run(t, "serve", "-h")
	if code != 0 || !strings.Contains(stderr, "-listen") || !strings.Contains(stderr, "-data") {
		t.Errorf("hark serve -h: exit status %d, stderr:\n%s", code, stderr)
	}
}

func TestRunVersion(t *testing.T) {
	code, stdout, stderr := run(t, "version")
	if code != 0 {
		t.Fatalf("hark version: exit status %d, stderr %s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "hark ") || !strings.HasSuffix(stdout, "\n") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("hark version printed %q, want one line \"hark <version>\"", stdout)
	}
	if v := strings.TrimSpace(strings.TrimPrefix(stdout, "hark ")); v == "" {
		t.Errorf("hark version printed no version: %q", stdout)
	}
}

// commandNames are the commands 'hark help' lists.
func commandNames(t *testing.T) []string {
	t.Helper()
	_, stdout, _ := run(t, "help")
	_, list, ok := strings.Cut(stdout, "Commands:\n")
	if !ok {
		t.Fatalf("hark help lists no commands:\n%s", stdout)
	}
	var names []string
	for _, l := range strings.Split(list, "\n") {
		if !strings.HasPrefix(l, "  ") {
			break
		}
		names = append(names, strings.Fields(l)[0])
	}
	if len(names) < 8 {
		t.Fatalf("hark help lists %q, want every command", names)
	}
	return names
}

// TestRunCommandHelp: -h and --help print every command's usage (on
// stderr, as Go's flag package and the go command do) and exit 0,
// whatever the command takes first: a flag, a verb or nothing.
func TestRunCommandHelp(t *testing.T) {
	var cases [][]string
	for _, name := range commandNames(t) {
		for _, h := range []string{"-h", "--help", "-help"} {
			cases = append(cases, []string{name, h})
		}
	}
	cases = append(cases,
		[]string{"token", "add", "--help"}, []string{"token", "list", "-h"}, []string{"token", "revoke", "-h"},
		[]string{"autostart", "enable", "--help"}, []string{"autostart", "status", "-h"},
		[]string{"--demo", "--help"})
	for _, args := range cases {
		code, stdout, stderr := run(t, args...)
		want := "Usage: hark " + args[0]
		if args[0] == "token" {
			want = "hark token " + args[1]
			if isHelpArg(args[1]) {
				want = "hark token add"
			}
		}
		if args[0] == "--demo" {
			want = "Usage: hark [--server"
		}
		if code != 0 || !strings.Contains(stderr, want) || stdout != "" {
			t.Errorf("hark %q: exit status %d, want 0 with %q on stderr; stdout %q, stderr:\n%s", args, code, want, stdout, stderr)
		}
		if strings.Contains(stderr, "hark "+args[0]+": ") {
			t.Errorf("hark %q: help is not an error, but stderr says:\n%s", args, stderr)
		}
	}
}

func isHelpArg(s string) bool { return s == "-h" || s == "--help" || s == "-help" }

// TestRunVersionFlag: hark --version and -v print what hark version does.
func TestRunVersionFlag(t *testing.T) {
	_, want, _ := run(t, "version")
	for _, arg := range []string{"--version", "-version", "-v"} {
		code, stdout, stderr := run(t, arg)
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("hark %s: exit status %d, stdout %q (want %q), stderr %q", arg, code, stdout, want, stderr)
		}
	}
	code, _, stderr := run(t, "--version", "extra")
	if code != 2 || !strings.Contains(stderr, "no arguments") {
		t.Errorf("hark --version extra: exit status %d, stderr %q", code, stderr)
	}
}

// TestFlagErrorPrintedOnce: a flag the flag package refuses is said once,
// in one line naming the command, followed by where the usage is; not
// the flag package's message, then the usage, then the message again.
func TestFlagErrorPrintedOnce(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		cmd, is string
	}{
		{[]string{"--bogus"}, "hark", "-bogus"},
		{[]string{"serve", "--bogus"}, "hark serve", "-bogus"},
		{[]string{"serve", "--log-level", "loud"}, "hark serve", "log level"},
		{[]string{"serve", "--max-conns", "many"}, "hark serve", "-max-conns"},
		{[]string{"watch", "--refresh"}, "hark watch", "-refresh"},
		{[]string{"publish", "--json=maybe", "random"}, "hark publish", "-json"},
		{[]string{"bench", "--rate", "fast"}, "hark bench", "-rate"},
		{[]string{"login", "--bogus"}, "hark login", "-bogus"},
		{[]string{"token", "add", "--bogus"}, "hark token add", "-bogus"},
		{[]string{"token", "revoke", "--bogus"}, "hark token revoke", "-bogus"},
		{[]string{"autostart", "enable", "--bogus"}, "hark autostart", "-bogus"},
		{[]string{"version", "--bogus"}, "hark version", "-bogus"},
	} {
		code, stdout, stderr := run(t, tc.args...)
		want := tc.cmd + ": "
		hint := "Run '" + tc.cmd + " -h' for usage.\n"
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, tc.is) || !strings.HasSuffix(stderr, hint) {
			t.Errorf("hark %q: exit status %d, stdout %q, stderr:\n%s\nwant status 2, one line %q... naming %q, then %q", tc.args, code, stdout, stderr, want, tc.is, hint)
		}
		if n := strings.Count(stderr, "\n"); n != 2 {
			t.Errorf("hark %q: %d lines on stderr, want 2:\n%s", tc.args, n, stderr)
		}
	}
}
