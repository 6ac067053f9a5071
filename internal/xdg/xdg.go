// Package xdg finds the XDG base directories (the XDG Base Directory
// Specification) that hark keeps its files in. It exists so that the
// tray's settings, the client id, the server's store and the token files
// all follow one reading of the spec: before it, each found its own
// directory, and they disagreed on a relative $XDG_CONFIG_HOME (ignored
// by some, an error for another) and on what to say with no home.
package xdg

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNoHome matches (errors.Is) the error returned when a directory
// falls back on the home directory and there is none.
var ErrNoHome = errors.New("no home directory")

// ConfigHome is $XDG_CONFIG_HOME, or $HOME/.config: where settings go.
func ConfigHome() (string, error) { return baseDir("XDG_CONFIG_HOME", ".config") }

// StateHome is $XDG_STATE_HOME, or $HOME/.local/state: what should
// survive a restart but is not worth a backup (the client id).
func StateHome() (string, error) { return baseDir("XDG_STATE_HOME", ".local", "state") }

// DataHome is $XDG_DATA_HOME, or $HOME/.local/share: data the user would
// back up (the server's store).
func DataHome() (string, error) { return baseDir("XDG_DATA_HOME", ".local", "share") }

// RuntimeDir is $XDG_RUNTIME_DIR, the session's own directory, and
// whether there is one. The spec gives no fallback: a caller without one
// chooses its own.
func RuntimeDir() (string, bool) {
	d := os.Getenv("XDG_RUNTIME_DIR")
	return d, filepath.IsAbs(d)
}

// baseDir reads env, ignoring a value that is not an absolute path, as
// the spec says ("an implementation encounters a relative path in any of
// these variables it should consider the path invalid and ignore it"),
// and falls back on $HOME joined with under.
func baseDir(env string, under ...string) (string, error) {
	if d := os.Getenv(env); filepath.IsAbs(d) {
		return filepath.Clean(d), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("%w: set HOME or %s", ErrNoHome, env)
	}
	if !filepath.IsAbs(home) {
		// A relative home would put the files wherever the process
		// happens to start.
		return "", fmt.Errorf("%w (HOME=%q is not an absolute path): set HOME or %s", ErrNoHome, home, env)
	}
	return filepath.Join(append([]string{home}, under...)...), nil
}
