package tray

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/harkapp/hark/internal/atomicfile"
	"github.com/harkapp/hark/internal/xdg"
)

// Autostart is the XDG Autostart entry that starts hark on login:
// $XDG_CONFIG_HOME/autostart/hark.desktop. Its existence is the setting;
// there is no copy of it in the config file to disagree with.
type Autostart struct {
	Path string   // the .desktop file
	Exec []string // the command it runs: this binary and its flags
	Note string   // a warning for whoever enables it ("" if none)
}

// NewAutostart returns the entry for running exec (argv) on login.
func NewAutostart(exec []string) (*Autostart, error) {
	dir, err := xdg.ConfigHome()
	if err != nil {
		return nil, fmt.Errorf("start on login: %w", err)
	}
	return &Autostart{Path: filepath.Join(dir, "autostart", "hark.desktop"), Exec: exec}, nil
}

// Enabled reports whether the entry exists.
func (a *Autostart) Enabled() (bool, error) {
	_, err := os.Stat(a.Path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking start on login: %w", err)
	}
	return true, nil
}

// Enable writes the entry (replacing an older one, so it follows the
// binary and flags of the hark that was last asked).
func (a *Autostart) Enable() error {
	content, err := a.Content()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.Path), 0o755); err != nil {
		return fmt.Errorf("enabling start on login: %w", err)
	}
	// Readable by all, as desktop entries are: it holds nothing secret.
	if err := atomicfile.WriteFile(a.Path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("enabling start on login: %w", err)
	}
	return nil
}

// Disable removes the entry; it is not an error when there is none.
func (a *Autostart) Disable() error {
	if err := os.Remove(a.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("disabling start on login: %w", err)
	}
	return nil
}

// Content is the desktop entry's text.
func (a *Autostart) Content() (string, error) {
	if len(a.Exec) == 0 {
		return "", errors.New("start on login: no command to run")
	}
	args := make([]string, len(a.Exec))
	for i, arg := range a.Exec {
		q, err := quoteExecArg(arg)
		if err != nil {
			return "", err
		}
		args[i] = q
	}
	return "[Desktop Entry]\n" +
		"Type=Application\n" +
		"Name=hark\n" +
		"Comment=Desktop notifications for new random numbers and classified ads\n" +
		"Exec=" + strings.Join(args, " ") + "\n" +
		"Icon=hark\n" +
		"Terminal=false\n" +
		"X-GNOME-Autostart-enabled=true\n", nil
}

// quoteExecArg quotes one argument for a desktop entry's Exec key. The
// Desktop Entry spec has two layers: the Exec rules (an argument with a
// reserved character is double-quoted, with " ` $ \ backslash-escaped
// inside; a literal % is %%), and then the string-value escaping of the
// whole line, which doubles every backslash again.
func quoteExecArg(s string) (string, error) {
	if s == "" {
		return `""`, nil
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("start on login: argument %q has a control character; a desktop entry cannot hold it", s)
		}
	}
	s = strings.ReplaceAll(s, "%", "%%")
	if !strings.ContainsAny(s, " \t\"'\\><~|&;$*?#()`") {
		return s, nil
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '`', '$':
			b.WriteString(`\\`) // an Exec-level backslash, itself escaped
			b.WriteRune(r)
		case '\\':
			b.WriteString(`\\\\`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}
