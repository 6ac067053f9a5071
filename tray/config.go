package tray

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/harkapp/hark/internal/xdg"
	"github.com/harkapp/hark/netclient"
)

// Settings are what the user can change from the menu or the config file.
// Server is "" when the file does not name one.
type Settings struct {
	Server       string `toml:"server,omitempty"`
	Random       bool   `toml:"random"`         // popups for random numbers
	Classified   bool   `toml:"classified"`     // popups for classified ads
	DoNotDisturb bool   `toml:"do_not_disturb"` // no popups at all
	// CAFile is the PEM certificate of a private CA that a tls:// server's
	// certificate is verified against, instead of the system's roots.
	// TokenFile is read for the token instead of the keyring. Both are as
	// written: relative to the config file's directory (see ResolvePath).
	CAFile    string `toml:"ca_file,omitempty"`
	TokenFile string `toml:"token_file,omitempty"`
	// Servers, when given, are the servers hark notifies about, each in
	// its own [[servers]] table, instead of the one Server. Random and
	// Classified above are then what a server without its own says.
	Servers []ServerSettings `toml:"servers,omitempty"`
}

// ServerSettings is one [[servers]] table: a server hark keeps a session
// with, and what it notifies about from there.
type ServerSettings struct {
	// Name is what the menu and popups call the server; its address
	// when empty.
	Name    string `toml:"name,omitempty"`
	Address string `toml:"address"`
	// Random and Classified are this server's popups; unset is the
	// file's random and classified.
	Random     *bool  `toml:"random,omitempty"`
	Classified *bool  `toml:"classified,omitempty"`
	CAFile     string `toml:"ca_file,omitempty"`
	TokenFile  string `toml:"token_file,omitempty"`
}

// maxServers bounds the [[servers]] list: each is a connection, a
// session and a menu of its own.
const maxServers = 8

// maxName bounds a server's name in runes: it heads its menu and popups.
const maxName = 40

// equal reports whether two settings say the same.
func (s Settings) equal(t Settings) bool {
	return s.Server == t.Server && s.Random == t.Random && s.Classified == t.Classified &&
		s.DoNotDisturb == t.DoNotDisturb && s.CAFile == t.CAFile && s.TokenFile == t.TokenFile &&
		slices.EqualFunc(s.Servers, t.Servers, ServerSettings.equal)
}

func (s ServerSettings) equal(t ServerSettings) bool {
	return s.Name == t.Name && s.Address == t.Address && s.CAFile == t.CAFile && s.TokenFile == t.TokenFile &&
		equalPtr(s.Random, t.Random) && equalPtr(s.Classified, t.Classified)
}

func equalPtr(a, b *bool) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func ptrTo[T any](v T) *T { return &v }

// serverConf is one server as the tray uses it: the settings resolved.
type serverConf struct {
	Name       string // "" when there is one server, named by no one
	Addr       string
	Random     bool
	Classified bool
	CAFile     string // as written in the file
	TokenFile  string
	// Table is the index of the server's [[servers]] table, where a
	// change from the menu is saved; -1 for the top of the file.
	Table int
}

// serverConfs lists the servers to keep a session with under s: the
// --server flag's (flag) alone when given, else the file's [[servers]],
// else its server, else def. A flag that names a listed server (by
// address or name, as Find does) takes that table's settings.
func (s Settings) serverConfs(flag, def string) []serverConf {
	one := serverConf{Addr: def, Random: s.Random, Classified: s.Classified, CAFile: s.CAFile, TokenFile: s.TokenFile, Table: -1}
	switch {
	case flag != "":
		if i := s.find(flag); i >= 0 {
			c := s.tableConf(i)
			c.Name = "" // the one server
			return []serverConf{c}
		}
		one.Addr = flag
		if len(s.Servers) > 0 {
			one.CAFile, one.TokenFile = "", "" // there are none at the top
		}
		return []serverConf{one}
	case s.Server != "":
		one.Addr = s.Server
		return []serverConf{one}
	case len(s.Servers) == 0:
		return []serverConf{one}
	}
	confs := make([]serverConf, len(s.Servers))
	for i := range s.Servers {
		confs[i] = s.tableConf(i)
	}
	return confs
}

// tableConf is the server of the [[servers]] table number i.
func (s Settings) tableConf(i int) serverConf {
	v := s.Servers[i]
	c := serverConf{Name: cmp.Or(v.Name, v.Address), Addr: v.Address, Random: s.Random, Classified: s.Classified,
		CAFile: v.CAFile, TokenFile: v.TokenFile, Table: i}
	if v.Random != nil {
		c.Random = *v.Random
	}
	if v.Classified != nil {
		c.Classified = *v.Classified
	}
	return c
}

// find is the index of the [[servers]] table that want names: by its
// address first (the same server, as sameServer says), then by its name;
// -1 when none does.
func (s Settings) find(want string) int {
	if i := slices.IndexFunc(s.Servers, func(v ServerSettings) bool { return sameServer(v.Address, want) }); i >= 0 {
		return i
	}
	return slices.IndexFunc(s.Servers, func(v ServerSettings) bool { return v.Name != "" && strings.EqualFold(v.Name, want) })
}

// serverKey says which server an address is, for the tray: the
// netclient.Addr.Key of each of its addresses (host:port with the host in
// lower case and an IP literal in its canonical form, the port as a
// number, TLS or not), sorted and joined with commas, so that a list
// names one server (gateways of one store) whatever its order. Tables
// never share an address (checkServers), so keys tell them apart.
func serverKey(addr string) string {
	keys := addrKeys(addr)
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

// addrKeys are the keys (netclient.Addr.Key) of addr's addresses; an
// address that does not parse is its own.
func addrKeys(addr string) []string {
	addrs, err := netclient.ParseAddrs(addr)
	if err != nil {
		return []string{addr}
	}
	keys := make([]string, len(addrs))
	for i, a := range addrs {
		keys[i] = a.Key()
	}
	return keys
}

// sameServer reports whether two addresses, or lists of them, share an
// address: then they are one server. Two tables with one server would be
// two sessions of one client id with one store, each taking the other's
// place and every item popping up twice.
func sameServer(a, b string) bool {
	keys := addrKeys(b)
	return slices.ContainsFunc(addrKeys(a), func(k string) bool { return slices.Contains(keys, k) })
}

// DefaultSettings is what a user without a config file gets.
func DefaultSettings() Settings {
	return Settings{Random: true, Classified: true}
}

// ConfigError says the config file cannot be used, and where it is wrong.
type ConfigError struct {
	Path string
	Err  error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config file %s: %v (fix or delete it; until then hark uses its defaults and does not save changes)", e.Path, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// DefaultConfigPath is $XDG_CONFIG_HOME/hark/config.toml (~/.config when
// unset or relative, as the XDG spec says).
func DefaultConfigPath() (string, error) {
	dir, err := xdg.ConfigHome()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "hark", "config.toml"), nil
}

// LoadSettings reads the config file at path over the defaults. A missing
// file is not an error: it is created on the first change. Anything else
// wrong with it is a *ConfigError naming the line.
func LoadSettings(path string) (Settings, error) {
	s := DefaultSettings()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return DefaultSettings(), &ConfigError{path, err}
	}
	md, err := toml.Decode(string(data), &s)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			err = fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message)
		}
		return DefaultSettings(), &ConfigError{path, err}
	}
	if keys := md.Undecoded(); len(keys) > 0 {
		// A misspelt key would silently do nothing; say so instead.
		k := keys[0]
		known := "server, random, classified, do_not_disturb, ca_file, token_file, [[servers]]"
		if len(k) > 1 && k[0] == "servers" {
			known = "in [[servers]]: name, address, random, classified, ca_file, token_file"
		}
		return DefaultSettings(), &ConfigError{path, fmt.Errorf("unknown setting %q (known: %s)", k.String(), known)}
	}
	if err := checkServers(s); err != nil {
		return DefaultSettings(), &ConfigError{path, err}
	}
	if s.Server != "" {
		if err := CheckServer(s.Server); err != nil {
			return DefaultSettings(), &ConfigError{path, fmt.Errorf("server: %w", err)}
		}
	}
	for _, f := range []struct{ key, value string }{{"ca_file", s.CAFile}, {"token_file", s.TokenFile}} {
		if err := checkPath(f.value); err != nil {
			return DefaultSettings(), &ConfigError{path, fmt.Errorf("%s: %w", f.key, err)}
		}
	}
	return s, nil
}

// ErrWhichServer is Find's error when the file lists several servers and
// none was named.
var ErrWhichServer = errors.New("the settings list several servers")

// Find is the server a command such as `hark login` means by want (its
// --server flag): a [[servers]] table's name, or an address. An address
// in the file comes with its ca_file and token_file; another address
// with none from a list (they are another server's), or the top ones
// when there is no list. "" is the file's only server (Address "" when
// it names none); with several, ErrWhichServer, naming them.
func (s Settings) Find(want string) (ServerSettings, error) {
	if len(s.Servers) == 0 {
		return ServerSettings{Address: cmp.Or(want, s.Server), CAFile: s.CAFile, TokenFile: s.TokenFile}, nil
	}
	if want == "" {
		if len(s.Servers) == 1 {
			return s.Servers[0], nil
		}
		names := make([]string, len(s.Servers))
		for i, v := range s.Servers {
			names[i] = cmp.Or(v.Name, v.Address)
		}
		return ServerSettings{}, fmt.Errorf("%w (%s): say which with --server NAME", ErrWhichServer, strings.Join(names, ", "))
	}
	if i := s.find(want); i >= 0 {
		return s.Servers[i], nil
	}
	return ServerSettings{Address: want}, nil
}

// checkServers checks the [[servers]] list: each needs an address, and no
// two may share a name or a server (two sessions of one client id with
// one server would take each other's place).
func checkServers(s Settings) error {
	if len(s.Servers) == 0 {
		return nil
	}
	switch {
	case s.Server != "":
		return errors.New("server and [[servers]] both name servers: keep one (move server into a [[servers]] table with a name)")
	case s.CAFile != "" || s.TokenFile != "":
		return errors.New("with [[servers]], ca_file and token_file go in the [[servers]] table they are for, not at the top")
	case len(s.Servers) > maxServers:
		return fmt.Errorf("%d [[servers]]: hark keeps at most %d", len(s.Servers), maxServers)
	}
	names, addrs := map[string]int{}, map[string]int{}
	for i, v := range s.Servers {
		at := fmt.Sprintf("[[servers]] number %d", i+1)
		if v.Name != "" {
			at += fmt.Sprintf(" (%q)", v.Name)
		}
		if v.Address == "" {
			return fmt.Errorf("%s: no address: write address = \"HOST:PORT\"", at)
		}
		if err := CheckServer(v.Address); err != nil {
			return fmt.Errorf("%s: address: %w", at, err)
		}
		if err := checkName(v.Name); err != nil {
			return fmt.Errorf("%s: name: %w", at, err)
		}
		for _, f := range []struct{ key, value string }{{"ca_file", v.CAFile}, {"token_file", v.TokenFile}} {
			if err := checkPath(f.value); err != nil {
				return fmt.Errorf("%s: %s: %w", at, f.key, err)
			}
		}
		name := strings.ToLower(cmp.Or(v.Name, v.Address))
		if j, ok := names[name]; ok {
			return fmt.Errorf("%s has the name of number %d: give each server its own name", at, j+1)
		}
		names[name] = i
		// A list is one server: two tables that share one of its
		// addresses are the same.
		for _, addr := range addrKeys(v.Address) {
			if j, ok := addrs[addr]; ok {
				return fmt.Errorf("%s is the server of number %d (%s): list each server once", at, j+1, addr)
			}
			addrs[addr] = i
		}
	}
	return nil
}

// checkName checks a server's name: one short line a menu can show.
func checkName(n string) error {
	if utf8.RuneCountInString(n) > maxName {
		return fmt.Errorf("%q is over %d characters", n, maxName)
	}
	if !utf8.ValidString(n) || strings.IndexFunc(n, unicode.IsControl) >= 0 {
		return fmt.Errorf("%q holds a control character or is not UTF-8", n)
	}
	return nil
}

// recentKey is a server's name for what hark keeps of it (its Recent ads,
// and in the identity its marks): the session's netclient.MarksKey,
// host:port whether reached with TLS or not, or a list's sorted keys.
func recentKey(server string) string { return netclient.MarksKey(server) }

// CheckServer checks a server's address: HOST:PORT, or tls://HOST:PORT
// for a server that speaks TLS; or several servers of one store,
// separated by commas, all with tls:// or none (netclient.ParseAddrs).
func CheckServer(addr string) error {
	addrs, err := netclient.ParseAddrs(addr)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a.Host() == "" {
			return fmt.Errorf("%q: no host: write HOST:PORT (e.g. 127.0.0.1:6789), or tls://HOST:PORT", a)
		}
	}
	return nil
}

// KeyringServer is the name a server's token is kept under in the
// keyring (and looked up by the tray): its address as netclient.ParseAddr
// reads it and Addr.String writes it back, so "TLS://h:1" and "tls://h:1"
// share one token. tls://h:1 and h:1 do not: a token kept for a TLS
// server is not offered to the same host in plaintext. A list (gateways
// of one store, which share their tokens) is its addresses so written,
// sorted and joined with commas. An address ParseAddrs refuses is
// returned as it is.
func KeyringServer(addr string) string {
	addrs, err := netclient.ParseAddrs(addr)
	if err != nil {
		return addr
	}
	names := make([]string, len(addrs))
	for i, a := range addrs {
		names[i] = a.String()
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// checkPath checks a file name from the config file ("" is none).
func checkPath(p string) error {
	if strings.ContainsRune(p, 0) {
		return fmt.Errorf("%q is not a file name", p)
	}
	return nil
}

// ResolvePath resolves a file named in the config file at configPath: a
// relative name is relative to that file's directory, and ~/ is the home
// directory. "" stays "".
func ResolvePath(configPath, p string) (string, error) {
	switch {
	case p == "" || filepath.IsAbs(p):
		return p, nil
	case p == "~" || strings.HasPrefix(p, "~/"):
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%q: no home directory to expand ~ in: set HOME", p)
		}
		return filepath.Join(home, p[1:]), nil
	}
	return filepath.Join(filepath.Dir(configPath), p), nil
}

const configHeader = `# hark's settings. hark rewrites this file when you change a setting from
# its menu, and applies your own edits as soon as you save them.
#
# server = "host:port"   where hark serve runs (the --server flag beats this);
#                        "tls://host:port" for a server that speaks TLS;
#                        "a:6789,b:6789" for several servers of one store,
#                        tried in turn when one fails
# random, classified     popups for random numbers / classified ads
# do_not_disturb         no popups at all; the tray still collects items
# ca_file = "ca.pem"     a private CA's certificate (PEM) to trust for tls://
#                        instead of the system's CAs
# token_file = "token"   read the server's token from this file (mode 0600)
#                        instead of the keyring, where hark login keeps it
# Relative file names are relative to this file's directory.
#
# Several servers: instead of server, a [[servers]] table for each (at
# most 8), which takes name, address, and its own random, classified,
# ca_file and token_file (random and classified above are the default):
#   [[servers]]
#   name = "work"
#   address = "tls://hark.example.com:6789"
#   classified = false

`

// configTemplate is the file "Edit settings…" creates when there is none:
// the header, the settings in s, and the file settings commented out, as
// examples to fill in. exampleServer is the server the comment suggests.
func configTemplate(s Settings, exampleServer string) string {
	if exampleServer == "" {
		exampleServer = "127.0.0.1:6789"
	}
	var b strings.Builder
	b.WriteString(configHeader)
	fmt.Fprintf(&b, "# server = %q\n", exampleServer)
	b.WriteString("# ca_file = \"ca.pem\"\n")
	b.WriteString("# token_file = \"token\"\n")
	fmt.Fprintf(&b, "random = %t\nclassified = %t\ndo_not_disturb = %t\n", s.Random, s.Classified, s.DoNotDisturb)
	return b.String()
}

// createConfig writes configTemplate to path unless a file is there
// already (then it is left as it is), and reports whether it wrote one.
func createConfig(path string, s Settings, exampleServer string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return false, nil // made meanwhile: not ours to overwrite
	}
	if err != nil {
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	_, err = f.WriteString(configTemplate(s, exampleServer))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	return true, nil
}

// fileStamp tells whether a file changed: its identity (inode), size and
// modification time, or that it is missing. The zero stamp is "missing".
type fileStamp struct {
	info os.FileInfo // nil: missing (or unreadable)
}

// stampOf stats path, following a symlink to the file it names.
func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi}
}

func (s fileStamp) exists() bool { return s.info != nil }

func (s fileStamp) same(t fileStamp) bool {
	if s.info == nil || t.info == nil {
		return s.info == nil && t.info == nil
	}
	return os.SameFile(s.info, t.info) && s.info.Size() == t.info.Size() && s.info.ModTime().Equal(t.info.ModTime())
}

// SaveSettings writes s to path atomically (a temporary file renamed over
// the old one), so a crash never leaves half a file.
func SaveSettings(path string, s Settings) error {
	// A config file that is a symlink (into a dotfiles repository, say)
	// stays one: the file it points to is replaced.
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	var buf bytes.Buffer
	buf.WriteString(configHeader)
	enc := toml.NewEncoder(&buf)
	enc.Indent = "" // [[servers]] tables as a person writes them
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("encoding settings: %w", err)
	}
	if err := writeAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("saving settings: %w", err)
	}
	return nil
}
