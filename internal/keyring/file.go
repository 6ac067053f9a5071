package keyring

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// MaxTokenLen is the longest token accepted, in bytes. Tokens are short
// opaque strings; anything longer is a wrong file, not a token.
const MaxTokenLen = 128

// readLimit bounds how much of a token file is read: enough to trim white
// space around a token, small enough that pointing the option at a big
// file cannot cost much.
const readLimit = 4096

// DefaultTokenFile is where the token goes when there is no Secret
// Service and the user named no file: $XDG_CONFIG_HOME/hark/token
// (~/.config/hark/token), beside hark's config.toml.
func DefaultTokenFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the token file: %w (set XDG_CONFIG_HOME or HOME, or name a token file)", err)
	}
	return filepath.Join(dir, "hark", "token"), nil
}

// ReadTokenFile reads a token from path. The token is the file's content
// without surrounding white space. It refuses a file that anyone but its
// owner can read or write, as ssh does with keys: the token is a
// credential.
func ReadTokenFile(path string) (string, error) {
	// Stat before opening, so that a FIFO or device named by mistake is
	// refused instead of blocking the open.
	if fi, err := os.Stat(path); err != nil {
		return "", tokenFileErr(path, err)
	} else if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", tokenFileErr(path, err)
	}
	defer f.Close()
	// The mode that counts is that of the file we opened, not of what
	// the name pointed to when we looked.
	fi, err := f.Stat()
	if err != nil {
		return "", tokenFileErr(path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("token file %s is accessible to others (mode %04o): chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, readLimit+1))
	if err != nil {
		return "", tokenFileErr(path, err)
	}
	if len(b) > readLimit {
		return "", fmt.Errorf("token file %s is not a token: over %d bytes (a token has at most %d)", path, readLimit, MaxTokenLen)
	}
	tok := strings.TrimSpace(string(b))
	if err := CheckToken(tok); err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return tok, nil
}

func tokenFileErr(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("token file %s does not exist: %w", path, ErrNotFound)
	}
	return fmt.Errorf("token file: %w", err)
}

// CheckToken reports whether tok can be a token: not empty, at most
// MaxTokenLen bytes, one line, no control characters and no white space at
// either end (a file could not keep it: ReadTokenFile trims it).
func CheckToken(tok string) error {
	switch {
	case tok == "":
		return errors.New("the token is empty")
	case len(tok) > MaxTokenLen:
		return fmt.Errorf("the token is %d bytes long, more than %d: not a token", len(tok), MaxTokenLen)
	case strings.ContainsAny(tok, "\r\n"):
		return errors.New("the token spans several lines: a token is one line")
	case strings.TrimSpace(tok) != tok:
		return errors.New("the token starts or ends with white space")
	}
	if i := strings.IndexFunc(tok, unicode.IsControl); i >= 0 {
		return fmt.Errorf("the token has a control character at byte %d", i)
	}
	return nil
}

// WriteTokenFile writes token to path, readable by its owner only,
// creating the directory (0700) if needed. It writes a temporary file in
// the same directory and renames it over path, so that a reader, or a
// crash, never sees half a token, and an existing file with looser
// permissions is replaced rather than rewritten in place.
func WriteTokenFile(path, token string) error {
	if err := CheckToken(token); err != nil {
		return fmt.Errorf("write token file %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.WriteString(token + "\n"); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		done = true
		return fmt.Errorf("write token file: %w", err)
	}
	done = true
	// Sync the directory so that the rename survives a crash; where
	// directories cannot be synced, the file is still written.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
