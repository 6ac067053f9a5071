package keyring

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unicode"

	"github.com/harkapp/hark/internal/atomicfile"
	"github.com/harkapp/hark/internal/xdg"
)

// MaxTokenLen is the longest token accepted, in bytes. Tokens are short
// opaque strings; anything longer is a wrong file, not a token.
const MaxTokenLen = 128

// readLimit bounds how much of a token file is read: enough to trim white
// space around a token, small enough that pointing the option at a big
// file cannot cost much.
const readLimit = 4096

// DefaultTokenFile is where the token for server goes when there is no
// Secret Service and the user named no file: one file per server,
// $XDG_CONFIG_HOME/hark/tokens/NAME (~/.config/hark/tokens/NAME), NAME
// being tokenFileName(server). server is the key the token is kept
// under (tray.KeyringServer: tls://hark.example.org:6789). A file per
// server, so that one server's token is never sent to another.
func DefaultTokenFile(server string) (string, error) {
	name, err := tokenFileName(server)
	if err != nil {
		return "", err
	}
	dir, err := tokenHome()
	if err != nil {
		return "", fmt.Errorf("find the token file: %w, or name a token file", err)
	}
	return filepath.Join(dir, "hark", "tokens", name), nil
}

// tokenHome is the directory above hark/tokens: the XDG config home; on
// Windows %AppData% (os.UserConfigDir), where hark login has always kept
// them there, so that an upgrade finds them.
func tokenHome() (string, error) {
	if runtime.GOOS == "windows" {
		return os.UserConfigDir()
	}
	return xdg.ConfigHome()
}

// maxReadableName bounds the readable part of a token file's name, well
// under the 255 bytes a file name may have.
const maxReadableName = 128

// tokenFileName is the name of server's default token file: the server
// with each run of bytes other than ASCII letters, digits, '.' and '-'
// replaced by one '_' (at most 128 bytes of it), then '_' and the first
// 12 hex digits of the SHA-256 of server. tls://hark.example.org:6789 is
// tls_hark.example.org_6789_ followed by the hash. The readable part
// says which server a file is for; the hash tells apart servers that it
// would merge (a:b and a_b), so no two servers share a file.
func tokenFileName(server string) (string, error) {
	if server == "" {
		return "", errors.New("find the token file: empty server address")
	}
	var b strings.Builder
	under := false
	for i := 0; i < len(server) && b.Len() < maxReadableName; i++ {
		switch c := server[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
			under = false
		case !under:
			b.WriteByte('_')
			under = true
		}
	}
	sum := sha256.Sum256([]byte(server))
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(sum[:6]))
	return b.String(), nil
}

// ReadTokenFile reads a token from path. The token is the file's content
// without surrounding white space. It refuses anything but a regular
// file, and a file that anyone but its owner can read or write, as ssh
// does with keys: the token is a credential.
func ReadTokenFile(path string) (string, error) {
	// O_NONBLOCK: a FIFO (or a device) named by mistake, or swapped in
	// for the file, opens at once instead of blocking until a writer
	// comes; it is then refused below, before any read. O_NOCTTY: a
	// terminal does not become the tray's controlling terminal.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return "", tokenFileErr(path, err)
	}
	defer f.Close()
	// What counts is the file we opened (fstat), not what the name
	// pointed to at some other moment.
	fi, err := f.Stat()
	if err != nil {
		return "", tokenFileErr(path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file (%s)", path, fileKind(fi.Mode()))
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

// fileKind names what a file that is not a regular file is.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.String()
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
// creating the directory (0700) if needed. It replaces the file
// (atomicfile), so that a reader, or a crash, never sees half a token,
// and an existing file with looser permissions is replaced rather than
// rewritten in place. Nothing is written through a symbolic link: a link
// at path is replaced by the file, and what it pointed to is left as it
// was.
func WriteTokenFile(path, token string) error {
	if err := CheckToken(token); err != nil {
		return fmt.Errorf("write token file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	return nil
}
