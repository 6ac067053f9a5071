package tray

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// writeConfig writes content as a config file in a fresh directory and
// returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaultSettings(t *testing.T) {
	want := Settings{Server: "", Random: true, Classified: true, DoNotDisturb: false}
	if got := DefaultSettings(); !got.equal(want) {
		t.Fatalf("DefaultSettings() = %+v, want %+v", got, want)
	}
}

func TestLoadSettingsMissingFileIsDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hark", "config.toml")
	s, err := LoadSettings(path)
	if err != nil {
		t.Fatalf("LoadSettings(missing file): %v", err)
	}
	if !s.equal(DefaultSettings()) {
		t.Fatalf("LoadSettings(missing file) = %+v, want the defaults %+v", s, DefaultSettings())
	}
	// Loading creates nothing: the file appears on the first change only.
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadSettings created %s (stat: %v)", filepath.Dir(path), err)
	}
}

func TestLoadSettingsPartialFileKeepsOtherDefaults(t *testing.T) {
	path := writeConfig(t, "random = false\n")
	s, err := LoadSettings(path)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultSettings()
	want.Random = false
	if !s.equal(want) {
		t.Fatalf("LoadSettings = %+v, want %+v", s, want)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, s := range []Settings{
		DefaultSettings(),
		{Server: "example.org:6789", Random: true, Classified: true},
		{Server: "[::1]:1", Random: true, Classified: true},
		{Random: false, Classified: true},
		{Random: true, Classified: false},
		{Random: true, Classified: true, DoNotDisturb: true},
		{Server: "127.0.0.1:65535", Random: false, Classified: false, DoNotDisturb: true},
		{Server: "tls://hark.example.org:6789", Random: true, Classified: true, CAFile: "ca.pem", TokenFile: "/home/u/hark-token"},
		{Server: "tls://[::1]:6789", CAFile: "/etc/hark/ca.pem"},
		{TokenFile: "~/.hark-token"},
		{}, // everything off
	} {
		// Into a directory that does not exist yet: Save creates it.
		path := filepath.Join(t.TempDir(), "hark", "config.toml")
		if err := SaveSettings(path, s); err != nil {
			t.Fatalf("SaveSettings(%+v): %v", s, err)
		}
		got, err := LoadSettings(path)
		if err != nil {
			t.Fatalf("LoadSettings after saving %+v: %v", s, err)
		}
		if !got.equal(s) {
			t.Errorf("saved %+v, loaded %+v", s, got)
		}
	}
}

func TestSavedFileIsCommentedEditableTOML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := SaveSettings(path, Settings{Server: "example.org:6789", Random: true, DoNotDisturb: true}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if !strings.HasPrefix(text, "# hark's settings.") {
		t.Fatalf("the file does not start with the comment header:\n%s", text)
	}
	// The header explains every key it may hold.
	header := text[:strings.Index(text, "\n\n")]
	for _, key := range []string{"server", "tls://", "random", "classified", "do_not_disturb", "ca_file", "token_file"} {
		if !strings.Contains(header, key) {
			t.Errorf("the header does not mention %q:\n%s", key, header)
		}
	}
	for _, line := range strings.Split(header, "\n") {
		if !strings.HasPrefix(line, "#") {
			t.Errorf("header line %q is not a comment", line)
		}
	}

	// One plain `key = value` line per setting, as a person would write it.
	var body []string
	for _, line := range strings.Split(text, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			body = append(body, line)
		}
	}
	wantBody := []string{
		`server = "example.org:6789"`,
		`random = true`,
		`classified = false`,
		`do_not_disturb = true`,
	}
	if !slices.Equal(body, wantBody) {
		t.Errorf("settings lines = %q, want %q", body, wantBody)
	}

	// Valid TOML for any reader, not just hark's own.
	var m map[string]any
	if _, err := toml.Decode(text, &m); err != nil {
		t.Fatalf("the saved file is not valid TOML: %v\n%s", err, text)
	}
	if len(m) != 4 || m["server"] != "example.org:6789" || m["random"] != true || m["classified"] != false || m["do_not_disturb"] != true {
		t.Errorf("the file decodes to %v", m)
	}

	// A person edits it: flips a value, adds a comment of their own, and
	// removes the server line.
	edited := strings.Replace(text, "random = true", "random = false # numbers are noise", 1)
	edited = strings.Replace(edited, `server = "example.org:6789"`+"\n", "", 1)
	edited += "\n# my own note\n"
	if edited == text {
		t.Fatal("the edit changed nothing")
	}
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSettings(path)
	if err != nil {
		t.Fatalf("LoadSettings after a human edit: %v\n%s", err, edited)
	}
	if want := (Settings{Random: false, Classified: false, DoNotDisturb: true}); !got.equal(want) {
		t.Fatalf("after the edit: %+v, want %+v", got, want)
	}
}

func TestSaveSettingsOmitsEmptyServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := SaveSettings(path, DefaultSettings()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "server") {
			t.Fatalf("an empty server is written as %q; it should be left out so the default applies", line)
		}
	}
}

// loadBroken loads content and requires a *ConfigError naming the file,
// with the defaults returned.
func loadBroken(t *testing.T, content string) (*ConfigError, string) {
	t.Helper()
	path := writeConfig(t, content)
	s, err := LoadSettings(path)
	if err == nil {
		t.Fatalf("LoadSettings(%q) accepted it as %+v", content, s)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("LoadSettings(%q): error %T %v is not a *ConfigError", content, err, err)
	}
	if ce.Path != path {
		t.Errorf("ConfigError.Path = %q, want %q", ce.Path, path)
	}
	if ce.Err == nil || errors.Unwrap(err) != ce.Err {
		t.Errorf("ConfigError does not unwrap to its cause: %#v", ce)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) {
		t.Errorf("the message does not name the file %s: %s", path, msg)
	}
	if !s.equal(DefaultSettings()) {
		t.Errorf("a broken file gave %+v, want the defaults", s)
	}
	return ce, msg
}

func TestLoadSettingsSyntaxErrorNamesFileAndLine(t *testing.T) {
	_, msg := loadBroken(t, "# my settings\nrandom = true\nclassified = = false\n")
	if !strings.Contains(msg, "line 3") {
		t.Errorf("the message does not name line 3: %s", msg)
	}
}

func TestLoadSettingsRefusesUnknownKey(t *testing.T) {
	_, msg := loadBroken(t, "random = true\nclasified = false\n")
	if !strings.Contains(msg, `"clasified"`) {
		t.Errorf("the message does not name the misspelt key: %s", msg)
	}
}

func TestLoadSettingsRefusesUnknownTable(t *testing.T) {
	_, msg := loadBroken(t, "[popups]\nrandom = false\n")
	if !strings.Contains(msg, "popups") {
		t.Errorf("the message does not name the unknown table: %s", msg)
	}
}

func TestLoadSettingsRefusesBadServer(t *testing.T) {
	for _, server := range []string{"nohost", "example.org", "example.org:0", "example.org:65536", ":6789", "example.org:http",
		"tls://example.org", "tls://:6789", "https://example.org:6790", "ftp://example.org:21"} {
		_, msg := loadBroken(t, "server = \""+server+"\"\n")
		if !strings.Contains(msg, "server") || !strings.Contains(msg, server) {
			t.Errorf("server %q: the message names neither the key nor the value: %s", server, msg)
		}
	}
}

func TestLoadSettingsRefusesWrongType(t *testing.T) {
	for _, c := range []struct{ content, key string }{
		{`random = "yes"`, "random"},
		{`classified = 1`, "classified"},
		{`do_not_disturb = "no"`, "do_not_disturb"},
		{`server = 6789`, "server"},
	} {
		_, msg := loadBroken(t, "# header\n"+c.content+"\n")
		if !strings.Contains(msg, "line 2") || !strings.Contains(msg, c.key) {
			t.Errorf("%s: the message does not name line 2 and the key: %s", c.content, msg)
		}
	}
}

func TestLoadSettingsRefusesDuplicateKey(t *testing.T) {
	_, msg := loadBroken(t, "random = true\nrandom = false\n")
	if !strings.Contains(msg, "line 2") {
		t.Errorf("the message does not name line 2: %s", msg)
	}
}

func TestLoadSettingsUnreadableFile(t *testing.T) {
	// A directory where the file should be: it exists but cannot be read.
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSettings(path)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Path != path {
		t.Fatalf("LoadSettings(a directory) = %+v, %v; want a *ConfigError for %s", s, err, path)
	}
	if !s.equal(DefaultSettings()) {
		t.Errorf("got %+v, want the defaults", s)
	}
}

// dirNames lists a directory.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSaveSettingsIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	for i, s := range []Settings{DefaultSettings(), {Random: true}, {Server: "example.org:1", DoNotDisturb: true}} {
		if err := SaveSettings(path, s); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		if names := dirNames(t, dir); !slices.Equal(names, []string{"config.toml"}) {
			t.Fatalf("after save %d the directory holds %q, want only config.toml", i, names)
		}
		got, err := LoadSettings(path)
		if err != nil || !got.equal(s) {
			t.Fatalf("after save %d: loaded %+v, %v; want %+v", i, got, err, s)
		}
	}
}

func TestSaveSettingsFailureLeavesNoTempFile(t *testing.T) {
	// A non-empty directory where the file goes: the rename over it fails.
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.MkdirAll(filepath.Join(path, "occupied"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := SaveSettings(path, DefaultSettings())
	if err == nil {
		t.Fatal("SaveSettings over a non-empty directory succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("the error does not name %s: %v", path, err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"config.toml"}) {
		t.Fatalf("after a failed save the directory holds %q: a temporary file was left behind", names)
	}
}

func TestDefaultConfigPath(t *testing.T) {
	home := t.TempDir()
	xdg := t.TempDir()
	for _, c := range []struct {
		name  string
		xdg   *string // nil: unset
		wantD string
	}{
		{"absolute XDG_CONFIG_HOME", &xdg, xdg},
		{"unset", nil, filepath.Join(home, ".config")},
		{"empty", ptr(""), filepath.Join(home, ".config")},
		{"relative", ptr("rel/config"), filepath.Join(home, ".config")},
		{"dot-relative", ptr("./config"), filepath.Join(home, ".config")},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			t.Setenv("XDG_CONFIG_HOME", "")
			if c.xdg == nil {
				os.Unsetenv("XDG_CONFIG_HOME") // t.Setenv restores it
			} else {
				t.Setenv("XDG_CONFIG_HOME", *c.xdg)
			}
			got, err := DefaultConfigPath()
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(c.wantD, "hark", "config.toml"); got != want {
				t.Fatalf("DefaultConfigPath() = %q, want %q", got, want)
			}
		})
	}
}

func TestDefaultConfigPathWithoutHome(t *testing.T) {
	t.Setenv("HOME", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	got, err := DefaultConfigPath()
	if err == nil {
		t.Fatalf("DefaultConfigPath() without HOME or XDG_CONFIG_HOME = %q, want an error", got)
	}
	if !strings.Contains(err.Error(), "HOME") || !strings.Contains(err.Error(), "XDG_CONFIG_HOME") {
		t.Errorf("the error does not say what to set: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestCheckServer(t *testing.T) {
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:6789", true},
		{"localhost:1", true},
		{"example.org:65535", true},
		{"[::1]:6789", true},
		{"[fe80::1%eth0]:6789", true},
		{"tls://example.org:6789", true},
		{"TLS://example.org:6789", true},
		{"tls://[::1]:6789", true},
		{"tls://example.org", false},
		{"tls://:6789", false},
		{"tls://", false},
		{"http://example.org:6790", false},
		{"https://example.org:6790", false},
		{"udp://example.org:6789", false},
		{"tls://example.org:0", false},
		{"", false},
		{"example.org", false},
		{"127.0.0.1", false},
		{":6789", false},
		{"[]:6789", false},
		{"example.org:", false},
		{"example.org:0", false},
		{"example.org:65536", false},
		{"example.org:-1", false},
		{"example.org:http", false},
		{"example.org: 80", false},
		{"::1:6789", false}, // IPv6 without brackets
		{"a:b:c", false},
	} {
		err := CheckServer(c.addr)
		if (err == nil) != c.ok {
			t.Errorf("CheckServer(%q) = %v, want ok=%v", c.addr, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+c.addr+`"`) {
			t.Errorf("CheckServer(%q): the error does not quote the address: %v", c.addr, err)
		}
	}
}

// A list of servers of one store: every address checked, all with
// tls:// or none, the bad one named.
func TestCheckServerList(t *testing.T) {
	for _, ok := range []string{"a:1,b:2", "tls://a:1, tls://b:2", "127.0.0.1:6789,[::1]:6789"} {
		if err := CheckServer(ok); err != nil {
			t.Errorf("CheckServer(%q) = %v", ok, err)
		}
	}
	for addr, says := range map[string]string{
		"a:1,b":              `address 2 of the list: "b"`,
		"a:1,tls://b:2":      "either every address speaks TLS",
		"a:1,,b:2":           "address 2 of the list is empty",
		"a:1,A:1":            "addresses 1 and 2 are both a:1",
		"tls://a:1,tls://:2": `"tls://:2": a TLS address needs the host name`,
	} {
		if err := CheckServer(addr); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("CheckServer(%q) = %v, want it to say %q", addr, err, says)
		}
	}
}

// A list is one server: its key and the name its marks and Recent ads
// are kept under do not depend on its order or spelling; one address
// keeps its host:port, as before lists.
func TestServerKeyOfAList(t *testing.T) {
	if a, b := serverKey("tls://B:2,tls://a:1"), serverKey("a:01, b:2"); a != b || a != "a:1,b:2" {
		t.Errorf("serverKey: %q and %q, want both a:1,b:2", a, b)
	}
	if a, b := recentKey("b:2,a:1"), recentKey("a:1,b:2"); a != b || a != "a:1,b:2" {
		t.Errorf("recentKey: %q and %q, want both a:1,b:2", a, b)
	}
	if k := recentKey("tls://Hark.example:6789"); k != "Hark.example:6789" {
		t.Errorf("recentKey of one address = %q, want its host:port as written", k)
	}
}

// Saving through a symlinked config file keeps the link and writes its
// target.
func TestSaveSettingsFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "dotfiles", "hark.toml")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("random = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "config.toml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	want := Settings{Random: false, Classified: true}
	if err := SaveSettings(link, want); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("config file is no longer a symlink: %v %v", fi.Mode(), err)
	}
	got, err := LoadSettings(target)
	if err != nil || !got.equal(want) {
		t.Errorf("target holds %+v (%v), want %+v", got, err, want)
	}
}

// A list of servers: each table's settings, the top's random and
// classified as the default, and the list as the tray uses it.
func TestLoadSettingsServers(t *testing.T) {
	path := writeConfig(t, `classified = false
[[servers]]
name = "work"
address = "tls://hark.example.com:6789"
ca_file = "work-ca.pem"
token_file = "work-token"
classified = true

[[servers]]
address = "127.0.0.1:6789"
random = false
`)
	s, err := LoadSettings(path)
	if err != nil {
		t.Fatal(err)
	}
	got := s.serverConfs("", "127.0.0.1:1")
	want := []serverConf{
		{Name: "work", Addr: "tls://hark.example.com:6789", Random: true, Classified: true, CAFile: "work-ca.pem", TokenFile: "work-token"},
		{Name: "127.0.0.1:6789", Addr: "127.0.0.1:6789", Random: false, Classified: false, Table: 1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("servers %+v, want %+v", got, want)
	}
	// The --server flag beats the list: one server, unnamed, with the
	// top's settings.
	if got := s.serverConfs("flag.example:1", ""); !slices.Equal(got, []serverConf{{Addr: "flag.example:1", Random: true, Table: -1}}) {
		t.Fatalf("with the flag: %+v", got)
	}
	// A flag naming a listed server, by address or name, is that table's
	// server: its files, its kinds, its table for what the menu changes.
	wantWork := []serverConf{{Addr: "tls://hark.example.com:6789", Random: true, Classified: true, CAFile: "work-ca.pem", TokenFile: "work-token", Table: 0}}
	for _, flag := range []string{"TLS://HARK.example.com:06789", "Work"} {
		if got := s.serverConfs(flag, ""); !slices.Equal(got, wantWork) {
			t.Fatalf("with the flag %q: %+v, want %+v", flag, got, wantWork)
		}
	}
	// Saved and loaded again: the same, each table keeping only what
	// was set in it.
	if err := SaveSettings(path, s); err != nil {
		t.Fatal(err)
	}
	again, err := LoadSettings(path)
	if err != nil {
		t.Fatal(err)
	}
	if !again.equal(s) {
		t.Fatalf("after a save: %+v, want %+v", again, s)
	}
	raw, _ := os.ReadFile(path)
	if strings.Count(string(raw), "\n[[servers]]\n") != 2 || strings.Count(string(raw), "\nrandom = false\n") != 1 {
		t.Fatalf("saved file:\n%s", raw)
	}
}

func TestLoadSettingsRefusesBadServers(t *testing.T) {
	nine := strings.Repeat("[[servers]]\naddress = \"h:1\"\n", 1)
	for i := 2; i <= 9; i++ {
		nine += fmt.Sprintf("[[servers]]\naddress = \"h:%d\"\n", i)
	}
	for _, c := range []struct{ content, says string }{
		{"server = \"a:1\"\n[[servers]]\naddress = \"b:1\"\n", "server and [[servers]] both"},
		{"token_file = \"t\"\n[[servers]]\naddress = \"b:1\"\n", "go in the [[servers]] table"},
		{"ca_file = \"ca.pem\"\n[[servers]]\naddress = \"b:1\"\n", "go in the [[servers]] table"},
		{nine, "at most 8"},
		{"[[servers]]\nname = \"work\"\n", `number 1 ("work"): no address`},
		{"[[servers]]\naddress = \"nohost\"\n", "number 1: address"},
		{"[[servers]]\naddress = \"a:1\"\nname = \"a\\u0007\"\n", "control character"},
		{"[[servers]]\naddress = \"a:1\"\nname = \"" + strings.Repeat("x", 41) + "\"\n", "over 40"},
		{"[[servers]]\naddress = \"a:1\"\nname = \"Work\"\n[[servers]]\naddress = \"b:1\"\nname = \"work\"\n", "number 2 (\"work\") has the name of number 1"},
		// One server at one host:port, with TLS or not: one client id
		// there, so one session.
		{"[[servers]]\naddress = \"a:1\"\n[[servers]]\naddress = \"tls://a:1\"\n", "is the server of number 1 (a:1)"},
		// However the same server is written.
		{"[[servers]]\naddress = \"h:6789\"\n[[servers]]\naddress = \"h:06789\"\n", "is the server of number 1 (h:6789)"},
		{"[[servers]]\naddress = \"[::1]:1\"\n[[servers]]\naddress = \"[0::1]:1\"\n", "is the server of number 1 ([::1]:1)"},
		{"[[servers]]\nname = \"a\"\naddress = \"Hark.example:1\"\n[[servers]]\nname = \"b\"\naddress = \"hark.example:1\"\n", "is the server of number 1 (hark.example:1)"},
		// A list is one server: a table that shares one of its
		// addresses is the same server.
		{"[[servers]]\naddress = \"a:1,b:1\"\n[[servers]]\naddress = \"c:1,B:01\"\n", "number 2 is the server of number 1 (b:1)"},
		{"[[servers]]\naddress = \"a:1,tls://b:1\"\n", "number 1: address: \"a:1,tls://b:1\": \"a:1\" and \"tls://b:1\": either every address speaks TLS"},
		{"[[servers]]\naddress = \"a:1,a:1\"\n", "addresses 1 and 2 are both a:1"},
		{"server = \"a:1,\"\n", "server: \"a:1,\": address 2 of the list is empty"},
		{"[[servers]]\naddress = \"a:1\"\nclasified = true\n", `"servers.clasified" (known: in [[servers]]: name, address`},
		{"[[servers]]\naddress = \"a:1\"\nrandom = \"yes\"\n", "line 3"},
		{"[servers]\naddress = \"a:1\"\n", "servers"},
	} {
		_, msg := loadBroken(t, c.content)
		if !strings.Contains(msg, c.says) {
			t.Errorf("%q: %s\nwant it to say %q", c.content, msg, c.says)
		}
	}
}

// Find, for hark login: an address before a name, so that a table named
// like another's address does not take its place.
func TestSettingsFind(t *testing.T) {
	s := Settings{Servers: []ServerSettings{
		{Name: "tls://b:1", Address: "a:1", TokenFile: "a-token"},
		{Name: "bee", Address: "tls://b:1", TokenFile: "b-token"},
	}}
	for want, file := range map[string]string{"tls://b:1": "b-token", "BEE": "b-token", "a:01": "a-token", "c:1": ""} {
		got, err := s.Find(want)
		if err != nil || got.TokenFile != file {
			t.Errorf("Find(%q) = %+v, %v; want the token file %q", want, got, err, file)
		}
	}
	if _, err := s.Find(""); !errors.Is(err, ErrWhichServer) || !strings.Contains(err.Error(), "(tls://b:1, bee)") {
		t.Errorf("Find(\"\") = %v, want ErrWhichServer naming both", err)
	}
	// A table with a list is found by any of its addresses, or the list.
	s = Settings{Servers: []ServerSettings{{Name: "work", Address: "a:1,b:1", TokenFile: "w"}, {Address: "c:1", TokenFile: "c"}}}
	for want, file := range map[string]string{"b:1": "w", "b:1,a:1": "w", "A:1": "w", "c:1": "c", "d:1,c:1": "c", "d:1": ""} {
		if got, err := s.Find(want); err != nil || got.TokenFile != file {
			t.Errorf("Find(%q) = %+v, %v; want the token file %q", want, got, err, file)
		}
	}
}
