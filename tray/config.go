package tray

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

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
	dir, err := configHome()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "hark", "config.toml"), nil
}

func configHome() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("no home directory: set HOME or XDG_CONFIG_HOME")
	}
	return filepath.Join(home, ".config"), nil
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
		return DefaultSettings(), &ConfigError{path, fmt.Errorf("unknown setting %q (known: server, random, classified, do_not_disturb, ca_file, token_file)", keys[0].String())}
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

// CheckServer checks a server's address: HOST:PORT, or tls://HOST:PORT
// for a server that speaks TLS (netclient.ParseAddr).
func CheckServer(addr string) error {
	a, err := netclient.ParseAddr(addr)
	if err != nil {
		return err
	}
	if a.Host() == "" {
		return fmt.Errorf("%q: no host: write HOST:PORT (e.g. 127.0.0.1:6789), or tls://HOST:PORT", addr)
	}
	return nil
}

// KeyringServer is the name a server's token is kept under in the
// keyring (and looked up by the tray): its address as netclient.ParseAddr
// reads it and Addr.String writes it back, so "TLS://h:1" and "tls://h:1"
// share one token. tls://h:1 and h:1 do not: a token kept for a TLS
// server is not offered to the same host in plaintext. An address
// ParseAddr refuses is returned as it is.
func KeyringServer(addr string) string {
	a, err := netclient.ParseAddr(addr)
	if err != nil {
		return addr
	}
	return a.String()
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
#                        "tls://host:port" for a server that speaks TLS
# random, classified     popups for random numbers / classified ads
# do_not_disturb         no popups at all; the tray still collects items
# ca_file = "ca.pem"     a private CA's certificate (PEM) to trust for tls://
#                        instead of the system's CAs
# token_file = "token"   read the server's token from this file (mode 0600)
#                        instead of the keyring, where hark login keeps it
# Relative file names are relative to this file's directory.

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
	if err := toml.NewEncoder(&buf).Encode(s); err != nil {
		return fmt.Errorf("encoding settings: %w", err)
	}
	if err := writeAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("saving settings: %w", err)
	}
	return nil
}
