package tray

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// entryKeys parses a desktop entry's [Desktop Entry] group into its keys,
// failing on anything that is not a key=value line of that one group.
func entryKeys(t *testing.T, content string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(content, "\n"), "\n")
	if len(lines) == 0 || lines[0] != "[Desktop Entry]" {
		t.Fatalf("the entry does not start with [Desktop Entry]:\n%s", content)
	}
	keys := map[string]string{}
	for _, line := range lines[1:] {
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			t.Fatalf("line %q is not key=value:\n%s", line, content)
		}
		if _, dup := keys[k]; dup {
			t.Fatalf("key %s appears twice:\n%s", k, content)
		}
		keys[k] = v
	}
	return keys
}

func TestAutostartContent(t *testing.T) {
	a := &Autostart{Path: "/unused", Exec: []string{"/usr/local/bin/hark", "--server", "example.org:6789"}}
	content, err := a.Content()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(content, "\n") {
		t.Errorf("the entry does not end with a newline: %q", content)
	}
	keys := entryKeys(t, content)
	for k, want := range map[string]string{
		"Type":                      "Application",
		"Name":                      "hark",
		"Exec":                      "/usr/local/bin/hark --server example.org:6789",
		"Icon":                      "hark",
		"Terminal":                  "false",
		"X-GNOME-Autostart-enabled": "true",
	} {
		if got, ok := keys[k]; !ok || got != want {
			t.Errorf("%s=%q (present: %v), want %q", k, got, ok, want)
		}
	}
	if keys["Comment"] == "" {
		t.Errorf("no Comment")
	}
}

func TestAutostartContentWithoutCommand(t *testing.T) {
	for _, argv := range [][]string{nil, {}} {
		a := &Autostart{Path: "/unused", Exec: argv}
		if c, err := a.Content(); err == nil {
			t.Errorf("Content with Exec %q = %q, want an error", argv, c)
		}
	}
}

// The expected values are written by hand from the Desktop Entry spec's
// "The Exec key": an argument with a reserved character is double-quoted,
// and inside the quotes " ` $ \ take a backslash; a literal % is %%. Then
// the string-value rule escapes each backslash again, so a literal
// backslash in a quoted argument is four backslashes and a literal $ is \\$.
var execQuoting = []struct {
	name, arg, want string
}{
	{"plain path", "/usr/bin/hark", `/usr/bin/hark`},
	{"flag", "--server", `--server`},
	{"host:port", "127.0.0.1:6789", `127.0.0.1:6789`},
	{"equals and comma", "--x=a,b", `--x=a,b`},
	{"non-ASCII", "/home/jörg/bin/hark", `/home/jörg/bin/hark`},
	{"space", "/home/me/my apps/hark", `"/home/me/my apps/hark"`},
	{"double quote", `say "hi"`, `"say \\"hi\\""`},
	{"dollar", "/opt/$HOME/hark", `"/opt/\\$HOME/hark"`},
	{"backslash", `C:\hark`, `"C:\\\\hark"`},
	{"backtick", "a`b", "\"a\\\\`b\""},
	{"single quote", "it's", `"it's"`},
	{"tilde", "~/bin/hark", `"~/bin/hark"`},
	{"shell characters", "a|b&c;d", `"a|b&c;d"`},
	{"redirections", "a>b<c", `"a>b<c"`},
	{"globs", "*.toml?", `"*.toml?"`},
	{"hash", "#1", `"#1"`},
	{"parentheses", "(x)", `"(x)"`},
	{"percent", "50%", `50%%`},
	{"field code lookalike", "%f", `%%f`},
	{"percent in quotes", "50% off", `"50%% off"`},
	{"everything", `a "b" $c \d % e`, `"a \\"b\\" \\$c \\\\d %% e"`},
	{"empty", "", `""`},
}

func TestQuoteExecArg(t *testing.T) {
	for _, c := range execQuoting {
		t.Run(c.name, func(t *testing.T) {
			got, err := quoteExecArg(c.arg)
			if err != nil {
				t.Fatalf("quoteExecArg(%q): %v", c.arg, err)
			}
			if got != c.want {
				t.Fatalf("quoteExecArg(%q) = %s, want %s", c.arg, got, c.want)
			}
			// And the spec's decoding gives the argument back.
			args, err := parseExec(got)
			if err != nil {
				t.Fatalf("decoding %s: %v", got, err)
			}
			if len(args) != 1 || args[0] != c.arg {
				t.Fatalf("%s decodes to %q, want [%q]", got, args, c.arg)
			}
		})
	}
}

func TestQuoteExecArgRefusesControlCharacters(t *testing.T) {
	for _, arg := range []string{"a\nb", "tab\there", "\r", "nul\x00", "esc\x1b[0m", "del\x7f"} {
		got, err := quoteExecArg(arg)
		if err == nil {
			t.Errorf("quoteExecArg(%q) = %q, want an error", arg, got)
			continue
		}
		if !strings.Contains(err.Error(), "control character") {
			t.Errorf("quoteExecArg(%q): the error does not say why: %v", arg, err)
		}
		a := &Autostart{Path: "/unused", Exec: []string{"/usr/bin/hark", "--config", arg}}
		if c, err := a.Content(); err == nil {
			t.Errorf("Content with %q = %q, want an error", arg, c)
		}
	}
}

func TestAutostartExecLineRoundTrips(t *testing.T) {
	argv := []string{"/home/me/my apps/hark", "--server", "example.org:6789", "--config", `/home/me/$weird "dir"\50%/config.toml`, ""}
	content, err := (&Autostart{Path: "/unused", Exec: argv}).Content()
	if err != nil {
		t.Fatal(err)
	}
	line := entryKeys(t, content)["Exec"]
	want := `"/home/me/my apps/hark" --server example.org:6789 --config "/home/me/\\$weird \\"dir\\"\\\\50%%/config.toml" ""`
	if line != want {
		t.Fatalf("Exec=%s\nwant Exec=%s", line, want)
	}
	got, err := parseExec(line)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, argv) {
		t.Fatalf("Exec=%s decodes to %q, want %q", line, got, argv)
	}
}

// parseExec decodes an Exec value as the spec says a launcher does: the
// string-value escapes first, then the quoting rules, then %%. It is the
// test's own reading of the spec, independent of quoteExecArg.
func parseExec(value string) ([]string, error) {
	// String-value escapes: \s \n \t \r \\.
	var un strings.Builder
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c != '\\' {
			un.WriteByte(c)
			continue
		}
		if i+1 == len(value) {
			return nil, errors.New("a lone backslash ends the value")
		}
		i++
		switch value[i] {
		case 's':
			un.WriteByte(' ')
		case 'n':
			un.WriteByte('\n')
		case 't':
			un.WriteByte('\t')
		case 'r':
			un.WriteByte('\r')
		case '\\':
			un.WriteByte('\\')
		default:
			// Not a string escape: the backslash stays, for the Exec layer.
			un.WriteByte('\\')
			un.WriteByte(value[i])
		}
	}
	s := un.String()
	const reserved = " \t\n\"'\\><~|&;$*?#()`"
	var args []string
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		var arg strings.Builder
		if s[i] == '"' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '"' {
					closed = true
					i++
					break
				}
				if c == '\\' {
					if i+1 < len(s) && strings.IndexByte("\"`$\\", s[i+1]) >= 0 {
						arg.WriteByte(s[i+1])
						i += 2
						continue
					}
					return nil, fmt.Errorf("backslash before %q inside quotes", s[i+1:])
				}
				if c == '`' || c == '$' {
					return nil, fmt.Errorf("unescaped %c inside quotes", c)
				}
				arg.WriteByte(c)
				i++
			}
			if !closed {
				return nil, errors.New("unterminated quote")
			}
			if i < len(s) && s[i] != ' ' {
				return nil, errors.New("a quoted argument runs into the next")
			}
		} else {
			for i < len(s) && s[i] != ' ' {
				if strings.IndexByte(reserved, s[i]) >= 0 {
					return nil, fmt.Errorf("reserved character %q outside quotes", s[i])
				}
				arg.WriteByte(s[i])
				i++
			}
		}
		a, err := unpercent(arg.String())
		if err != nil {
			return nil, err
		}
		args = append(args, a)
	}
	return args, nil
}

func unpercent(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		return "", fmt.Errorf("field code %q in %q", s[i:min(i+2, len(s))], s)
	}
	return b.String(), nil
}

// TestAutostartEntryValidates runs the reference validator on entries
// with awkward arguments.
func TestAutostartEntryValidates(t *testing.T) {
	validator, err := exec.LookPath("desktop-file-validate")
	if err != nil {
		msg := "desktop-file-validate is not installed (Debian package desktop-file-utils): the entry is not checked by the reference validator"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	argv := []string{"/home/me/my apps/hark", "--server", "example.org:6789"}
	for _, c := range execQuoting {
		argv = append(argv, c.arg)
	}
	dir := t.TempDir()
	a := &Autostart{Path: filepath.Join(dir, "hark.desktop"), Exec: argv}
	if err := a.Enable(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(validator, a.Path).CombinedOutput()
	if err != nil || len(out) != 0 {
		content, _ := os.ReadFile(a.Path)
		t.Fatalf("desktop-file-validate %s: %v\n%s\nthe entry:\n%s", a.Path, err, out, content)
	}
}

// autostartEnv points XDG_CONFIG_HOME at a fresh directory and returns it.
func autostartEnv(t *testing.T) string {
	t.Helper()
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	t.Setenv("HOME", t.TempDir())
	return xdg
}

func TestNewAutostartPath(t *testing.T) {
	xdg := autostartEnv(t)
	a, err := NewAutostart([]string{"/usr/bin/hark"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(xdg, "autostart", "hark.desktop"); a.Path != want {
		t.Fatalf("Path = %q, want %q", a.Path, want)
	}
	if !slices.Equal(a.Exec, []string{"/usr/bin/hark"}) {
		t.Fatalf("Exec = %q", a.Exec)
	}

	// A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "relative/dir")
	a, err = NewAutostart([]string{"/usr/bin/hark"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, ".config", "autostart", "hark.desktop"); a.Path != want {
		t.Fatalf("with a relative XDG_CONFIG_HOME, Path = %q, want %q", a.Path, want)
	}
}

func enabled(t *testing.T, a *Autostart) bool {
	t.Helper()
	on, err := a.Enabled()
	if err != nil {
		t.Fatalf("Enabled: %v", err)
	}
	return on
}

func TestAutostartEnableDisable(t *testing.T) {
	xdg := autostartEnv(t)
	a, err := NewAutostart([]string{"/usr/bin/hark", "--server", "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if enabled(t, a) {
		t.Fatal("Enabled before Enable")
	}
	if err := a.Enable(); err != nil {
		t.Fatalf("Enable: %v", err)
	}
	if !enabled(t, a) {
		t.Fatal("not Enabled after Enable")
	}
	raw, err := os.ReadFile(filepath.Join(xdg, "autostart", "hark.desktop"))
	if err != nil {
		t.Fatalf("the entry is not at $XDG_CONFIG_HOME/autostart/hark.desktop: %v", err)
	}
	want, err := a.Content()
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != want {
		t.Fatalf("the file holds\n%s\nwant\n%s", raw, want)
	}
	if got := entryKeys(t, string(raw))["Exec"]; got != "/usr/bin/hark --server 127.0.0.1:1" {
		t.Fatalf("Exec=%s", got)
	}
	if names := dirNames(t, filepath.Dir(a.Path)); !slices.Equal(names, []string{"hark.desktop"}) {
		t.Fatalf("the autostart directory holds %q, want only hark.desktop", names)
	}

	if err := a.Disable(); err != nil {
		t.Fatalf("Disable: %v", err)
	}
	if enabled(t, a) {
		t.Fatal("still Enabled after Disable")
	}
	if _, err := os.Stat(a.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the file is still there after Disable: %v", err)
	}
	// Disabling what is not there is no error.
	if err := a.Disable(); err != nil {
		t.Fatalf("Disable when absent: %v", err)
	}
}

func TestAutostartDisableWithoutDirectory(t *testing.T) {
	autostartEnv(t)
	a, err := NewAutostart([]string{"/usr/bin/hark"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Disable(); err != nil {
		t.Fatalf("Disable with no autostart directory at all: %v", err)
	}
}

func TestAutostartEnableReplacesOlderEntry(t *testing.T) {
	autostartEnv(t)
	old, err := NewAutostart([]string{"/old/hark", "--demo"})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Enable(); err != nil {
		t.Fatal(err)
	}
	// An older entry written by hand, say, with other content.
	if err := os.WriteFile(old.Path, []byte("[Desktop Entry]\nType=Application\nName=old\nExec=/old/hark\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := NewAutostart([]string{"/new/hark", "--server", "example.org:6789"})
	if err != nil {
		t.Fatal(err)
	}
	if !enabled(t, a) {
		t.Fatal("the older entry does not count as enabled")
	}
	if err := a.Enable(); err != nil {
		t.Fatalf("Enable over an older entry: %v", err)
	}
	raw, err := os.ReadFile(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := a.Content()
	if string(raw) != want {
		t.Fatalf("after Enable the file holds\n%s\nwant\n%s", raw, want)
	}
	if names := dirNames(t, filepath.Dir(a.Path)); !slices.Equal(names, []string{"hark.desktop"}) {
		t.Fatalf("the autostart directory holds %q, want only hark.desktop", names)
	}
}

func TestAutostartEnableRefusesBadCommand(t *testing.T) {
	xdg := autostartEnv(t)
	a, err := NewAutostart([]string{"/usr/bin/hark", "--config", "/tmp/a\nb"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Enable(); err == nil {
		t.Fatal("Enable with a control character in the command succeeded")
	}
	if enabled(t, a) {
		t.Fatal("a refused entry was written")
	}
	if _, err := os.Stat(filepath.Join(xdg, "autostart")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused Enable still created the directory (stat: %v)", err)
	}
}

func TestAutostartEnableFailureIsReported(t *testing.T) {
	xdg := autostartEnv(t)
	// A file where the autostart directory should be.
	if err := os.WriteFile(filepath.Join(xdg, "autostart"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := NewAutostart([]string{"/usr/bin/hark"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Enable(); err == nil {
		t.Fatal("Enable succeeded with a file in the way of the directory")
	}
	if _, err := a.Enabled(); err == nil {
		t.Fatal("Enabled() says nothing about a path it cannot check")
	}
}

// Enable writes through a temporary file of its own: a link planted at
// the old fixed name (hark.desktop.tmp) is neither followed nor left to
// collide with, and two Enables at once both succeed, leaving one whole
// entry, readable by all.
func TestAutostartEnableIsAtomic(t *testing.T) {
	autostartEnv(t)
	a, err := NewAutostart([]string{"/usr/bin/hark", "--server", "127.0.0.1:6789"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(a.Path), 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, a.Path+".tmp"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() { errs <- a.Enable() }()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("Enable alongside others: %v", err)
		}
	}
	want, _ := a.Content()
	if raw, err := os.ReadFile(a.Path); err != nil || string(raw) != want {
		t.Fatalf("the entry holds %q, %v; want %q", raw, err, want)
	}
	if fi, err := os.Stat(a.Path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the entry: %v, %v; want mode 0644", fi, err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
		t.Errorf("the planted link's target holds %q, %v", b, err)
	}
	if names := dirNames(t, filepath.Dir(a.Path)); !slices.Equal(names, []string{"hark.desktop", "hark.desktop.tmp"}) {
		t.Errorf("the autostart directory holds %q, want the entry and the planted link only", names)
	}
}
