package store

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/harkapp/hark/internal/atomicfile"
)

// API tokens live in their own file in the data directory, not in the
// bbolt database: bbolt holds an exclusive lock on hark.db while hark serve
// runs, and `hark token add` and `revoke` must work on a running server's
// directory. Writers take a flock on the data directory itself (the token
// file is replaced by rename, so a lock on it would lock an old inode; see
// lockTokens), read, modify, and rename a complete new file over the old
// one; readers need no lock, since a rename is atomic. The server re-reads
// the file when it changes (TokenSet.Refresh).
//
// Only the SHA-256 of a token is stored: a token is 256 random bits, so a
// fast unsalted hash is as good as a slow salted one, and it lets the
// server find a token by hash in a map.

const (
	// TokensFileName is the token file inside the data directory.
	TokensFileName = "tokens.json"
	// tokensVersion is the file format this package reads and writes.
	tokensVersion = 1

	// TokenPrefix starts every token, so that one is recognisable in a
	// script, a log or a secret scanner.
	TokenPrefix = "hark_"
	// tokenSecretBytes random bytes make a token.
	tokenSecretBytes = 32
	// TokenLen is a token's length: the prefix and 52 base32 characters.
	TokenLen = len(TokenPrefix) + (tokenSecretBytes*8+4)/5

	// tokenIDLen is the length of a token's public id: 50 random bits,
	// enough that ids never collide among MaxTokens (and add retries if
	// one did), short enough to type.
	tokenIDLen = 10

	// MaxTokens bounds the tokens in one data directory: the file is read
	// whole, and re-read by a running server whenever it changes.
	MaxTokens = 10000
	// MaxTokenLabelBytes bounds a token's label.
	MaxTokenLabelBytes = 200

	// maxTokensFileBytes bounds what is read of a token file: MaxTokens
	// records of the longest label fit with room to spare; anything larger
	// is not a file this package wrote.
	maxTokensFileBytes = 16 << 20
)

// tokenAlphabet is lowercase base32 (RFC 4648): tokens and ids use it, so
// they survive shells, URLs and case-folding logs without quoting.
const tokenAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

var tokenEncoding = base32.NewEncoding(tokenAlphabet).WithPadding(base32.NoPadding)

// Scope says what a token may be used for.
type Scope string

const (
	ScopePublish   Scope = "publish"   // the publish API (Authorization: Bearer)
	ScopeSubscribe Scope = "subscribe" // the line protocol (auth <token>)
)

// Scopes lists the valid scopes, for messages and flag help.
func Scopes() []Scope { return []Scope{ScopePublish, ScopeSubscribe} }

// ParseScope parses a scope's name.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopePublish, ScopeSubscribe:
		return Scope(s), nil
	}
	return "", fmt.Errorf("%w %q: use publish or subscribe", ErrBadScope, s)
}

// Token is what is known about a token apart from its secret, which is
// shown once, by AddToken, and never stored.
type Token struct {
	ID       string // short public id, unrelated to the secret
	Scope    Scope
	Label    string    // what it is for, as its creator said; may be empty
	Created  time.Time // UTC
	Expires  time.Time // UTC; zero: never
	LastUsed time.Time // UTC, as of the server's last flush; zero: never
}

// Expired reports whether t has expired at now.
func (t Token) Expired(now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

var (
	// ErrNoToken is wrapped by RevokeToken when no token has the id.
	ErrNoToken = errors.New("no such token")
	// ErrTokenUnknown is returned by Check for a malformed, unknown or
	// revoked token.
	ErrTokenUnknown = errors.New("unknown token")
	// ErrTokenExpired is returned by Check for a known token past its expiry.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenScope is returned by Check for a known token of another scope.
	ErrTokenScope = errors.New("token has another scope")
	// ErrTokensCorrupt is wrapped when the token file is malformed or of a
	// version this package does not read.
	ErrTokensCorrupt = errors.New("token file is malformed")
	// ErrTooManyTokens is wrapped by AddToken when MaxTokens exist.
	ErrTooManyTokens = errors.New("too many tokens")
	// ErrBadScope is wrapped by ParseScope and AddToken for an unknown scope.
	ErrBadScope = errors.New("unknown scope")
	// ErrBadTokenLabel is wrapped by CheckTokenLabel and AddToken.
	ErrBadTokenLabel = errors.New("bad token label")
)

// CheckTokenLabel reports whether label may label a token: at most
// MaxTokenLabelBytes of printable UTF-8 (no control or formatting
// characters, which could disguise it in `hark token list` or a log).
func CheckTokenLabel(label string) error {
	if len(label) > MaxTokenLabelBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadTokenLabel, len(label), MaxTokenLabelBytes)
	}
	for i, r := range label {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(label[i:]); n == 1 {
				return fmt.Errorf("%w: not UTF-8 at byte %d", ErrBadTokenLabel, i)
			}
		}
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: unprintable character %U at byte %d", ErrBadTokenLabel, r, i)
		}
	}
	return nil
}

// tokenFile is the file's JSON.
type tokenFile struct {
	Version int           `json:"version"`
	Tokens  []tokenRecord `json:"tokens"`
}

type tokenRecord struct {
	ID       string    `json:"id"`
	Scope    Scope     `json:"scope"`
	Label    string    `json:"label"`
	SHA256   string    `json:"sha256"` // hex of SHA-256 of the whole token, prefix included
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

func (r tokenRecord) token() Token {
	return Token{ID: r.ID, Scope: r.Scope, Label: r.Label, Created: r.Created, Expires: r.Expires, LastUsed: r.LastUsed}
}

// AddToken creates a token of scope in dir (created if missing) and
// returns its secret, which is not stored anywhere: the caller shows it
// once. expires is when it stops working; zero: never.
func AddToken(dir string, scope Scope, label string, expires time.Time) (secret string, tok Token, err error) {
	secret, tok, sum, err := MintToken(scope, label, expires)
	if err != nil {
		return "", Token{}, fmt.Errorf("add token: %w", err)
	}
	if dir == "" {
		return "", Token{}, errors.New("add token: no data directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", Token{}, fmt.Errorf("add token: create data directory: %w", err)
	}
	rec := recordOf(tok, sum)
	err = updateTokens(dir, func(f *tokenFile) (bool, error) {
		if len(f.Tokens) >= MaxTokens {
			return false, fmt.Errorf("%w: %s holds %d, the most hark allows: revoke unused ones first ('hark token list', 'hark token revoke ID')",
				ErrTooManyTokens, filepath.Join(dir, TokensFileName), len(f.Tokens))
		}
		ids := make(map[string]bool, len(f.Tokens))
		for _, r := range f.Tokens {
			ids[r.ID] = true
		}
		for ids[rec.ID] {
			rec.ID = newTokenID()
		}
		f.Tokens = append(f.Tokens, rec)
		return true, nil
	})
	if err != nil {
		return "", Token{}, fmt.Errorf("add token: %w", err)
	}
	return secret, rec.token(), nil
}

// MintToken makes a new token of scope: its secret, which no store keeps
// (the caller shows it once), and the token, with a fresh ID and the
// creation time, and the secret's SHA-256, which are all a store keeps.
// It checks scope, label and expiry (zero: never; else in the future) as
// AddToken does, which uses it; so does any other store of tokens
// (store/jetstream), so that a token is the same wherever it is kept.
func MintToken(scope Scope, label string, expires time.Time) (secret string, tok Token, sum [sha256.Size]byte, err error) {
	if _, err := ParseScope(string(scope)); err != nil {
		return "", Token{}, sum, err
	}
	if err := CheckTokenLabel(label); err != nil {
		return "", Token{}, sum, err
	}
	now := time.Now().UTC()
	if !expires.IsZero() && !expires.After(now) {
		return "", Token{}, sum, fmt.Errorf("expiry %s is not in the future", expires.UTC().Format(time.RFC3339))
	}
	raw := make([]byte, tokenSecretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", Token{}, sum, err
	}
	secret = TokenPrefix + tokenEncoding.EncodeToString(raw)
	tok = Token{ID: newTokenID(), Scope: scope, Label: label, Created: now}
	if !expires.IsZero() {
		tok.Expires = expires.UTC()
	}
	return secret, tok, sha256.Sum256([]byte(secret)), nil
}

// TokenSum is the SHA-256 by which a store finds secret, or false when
// secret does not look like a token MintToken made: garbage is refused
// before it is hashed.
func TokenSum(secret string) (sum [sha256.Size]byte, ok bool) {
	if !wellFormedToken(secret) {
		return sum, false
	}
	return sha256.Sum256([]byte(secret)), true
}

// MaxTokenRecordBytes bounds one token's record (EncodeTokenRecord): the
// longest label, with every byte escaped in JSON, and the other fields fit
// with room to spare. A store that keeps records apart (a key-value bucket)
// refuses larger ones.
const MaxTokenRecordBytes = 4096

// EncodeTokenRecord is tok, with the SHA-256 of its secret and never the
// secret, in the token file's record format (JSON): how a store that
// keeps each token apart (store/jetstream's bucket) keeps one.
func EncodeTokenRecord(tok Token, sum [sha256.Size]byte) []byte {
	b, _ := json.Marshal(recordOf(tok, sum)) // cannot fail: no field of it fails
	return b
}

// DecodeTokenRecord reads a record EncodeTokenRecord wrote and checks it as
// a record of the token file is checked (fields, id, scope, hash, label).
// Its errors wrap ErrTokensCorrupt.
func DecodeTokenRecord(data []byte) (Token, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if len(data) > MaxTokenRecordBytes {
		return Token{}, sum, fmt.Errorf("%w: a token record of %d bytes, at most %d", ErrTokensCorrupt, len(data), MaxTokenRecordBytes)
	}
	var r tokenRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Token{}, sum, fmt.Errorf("%w: a token record: %w", ErrTokensCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Token{}, sum, fmt.Errorf("%w: a token record: data after the JSON object", ErrTokensCorrupt)
	}
	if !validTokenID(r.ID) {
		return Token{}, sum, fmt.Errorf("%w: a token record: id %q is not %d characters of a-z, 2-7", ErrTokensCorrupt, r.ID, tokenIDLen)
	}
	if err := checkTokenRecord(r); err != nil {
		return Token{}, sum, fmt.Errorf("%w: token %s: %w", ErrTokensCorrupt, r.ID, err)
	}
	_, _ = hex.Decode(sum[:], []byte(r.SHA256)) // checkTokenRecord checked it is 64 hex digits
	return r.token(), sum, nil
}

// recordOf is the record of tok whose secret hashes to sum.
func recordOf(tok Token, sum [sha256.Size]byte) tokenRecord {
	return tokenRecord{ID: tok.ID, Scope: tok.Scope, Label: tok.Label, SHA256: hex.EncodeToString(sum[:]),
		Created: tok.Created.UTC(), Expires: utcOrZero(tok.Expires), LastUsed: utcOrZero(tok.LastUsed)}
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// newTokenID returns tokenIDLen random characters of tokenAlphabet. 256 is
// a multiple of 32, so taking each byte modulo 32 is unbiased.
func newTokenID() string {
	b := make([]byte, tokenIDLen)
	_, _ = rand.Read(b) // never fails since Go 1.24; it crashes the program instead
	for i := range b {
		b[i] = tokenAlphabet[b[i]%32]
	}
	return string(b)
}

// ListTokens returns the tokens in dir, oldest first (by Created, then
// ID). A directory without a token file has none.
func ListTokens(dir string) ([]Token, error) {
	f, err := readTokenFile(filepath.Join(dir, TokensFileName))
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	toks := make([]Token, len(f.Tokens))
	for i, r := range f.Tokens {
		toks[i] = r.token()
	}
	slices.SortFunc(toks, func(a, b Token) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return toks, nil
}

// HashedToken is a token with the SHA-256 of its secret: all a store keeps
// of one, and all that moving it to another store needs.
type HashedToken struct {
	Token
	Sum [sha256.Size]byte
}

// ExportTokens returns the tokens of dir with their hashes, for a move to
// another store (hark store migrate): the same secrets then work there.
func ExportTokens(dir string) ([]HashedToken, error) {
	f, err := readTokenFile(filepath.Join(dir, TokensFileName))
	if err != nil {
		return nil, fmt.Errorf("export tokens: %w", err)
	}
	out := make([]HashedToken, len(f.Tokens))
	for i, r := range f.Tokens {
		out[i].Token = r.token()
		_, _ = hex.Decode(out[i].Sum[:], []byte(r.SHA256)) // parseTokenFile checked it
	}
	return out, nil
}

// RevokeToken removes the token with id from dir, and returns what it was.
// A running server stops accepting it, and ends the connections it
// authenticated, when its TokenSet next refreshes.
func RevokeToken(dir, id string) (Token, error) {
	var gone Token
	path := filepath.Join(dir, TokensFileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		// Not through updateTokens, which would create the lock file in
		// a directory that may not exist.
		return Token{}, fmt.Errorf("revoke token %q: %w: %s does not exist", id, ErrNoToken, path)
	}
	err := updateTokens(dir, func(f *tokenFile) (bool, error) {
		i := slices.IndexFunc(f.Tokens, func(r tokenRecord) bool { return r.ID == id })
		if i < 0 {
			return false, fmt.Errorf("%w in %s: 'hark token list' shows the ids", ErrNoToken, path)
		}
		gone = f.Tokens[i].token()
		f.Tokens = slices.Delete(f.Tokens, i, i+1)
		return true, nil
	})
	if err != nil {
		return Token{}, fmt.Errorf("revoke token %q: %w", id, err)
	}
	return gone, nil
}

// updateTokens runs fn on the token file of dir under the writers' lock,
// and writes the file back if fn says so. fn's error is returned as is.
func updateTokens(dir string, fn func(*tokenFile) (write bool, err error)) error {
	unlock, err := lockTokens(dir)
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(dir, TokensFileName)
	f, err := readTokenFile(path)
	if err != nil {
		return err
	}
	write, err := fn(f)
	if err != nil || !write {
		return err
	}
	return writeTokenFile(dir, f)
}

// writeTokenFile replaces dir's token file with f (atomicfile), so that
// a crash leaves the old file or the new one, never a part.
func writeTokenFile(dir string, f *tokenFile) error {
	f.Version = tokensVersion
	if f.Tokens == nil {
		f.Tokens = []tokenRecord{} // "tokens": [] rather than null
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode tokens: %w", err)
	}
	data = append(data, '\n')
	// The temporary file gets the directory's owner before it holds
	// anything: see chownLikeDir.
	err = atomicfile.Write(filepath.Join(dir, TokensFileName), 0o600, func(tmp *os.File) error {
		if err := chownLikeDir(tmp, dir); err != nil {
			return err
		}
		_, err := tmp.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("write tokens: %w", err)
	}
	return nil
}

// readTokenFile reads and checks the token file at path. A missing file is
// an empty one.
func readTokenFile(path string) (*tokenFile, error) {
	data, st, err := readTokenBytes(path)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return &tokenFile{Version: tokensVersion}, nil
	}
	return parseTokenFile(path, data)
}

// readTokenBytes reads the token file at path, at most one byte more than
// maxTokensFileBytes, and stamps what it read. A missing file is a nil
// stamp and no error.
func readTokenBytes(path string) ([]byte, *fileStamp, error) {
	// Non-blocking, then checked: a FIFO in its place must not hang the
	// server's watcher (and with it every revocation).
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read tokens: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read tokens: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("read tokens: %s is not a regular file (%v): move it aside; %w", path, fi.Mode().Type(), ErrTokensCorrupt)
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxTokensFileBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read tokens %s: %w", path, err)
	}
	st := stampOf(fi)
	return data, &st, nil
}

// parseTokenFile decodes and checks a token file's contents. Its errors
// name the file and say what to do, since a person made the mistake
// (an edit, a restore from the wrong backup, a newer hark).
func parseTokenFile(path string, data []byte) (*tokenFile, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s: fix it or restore it from a backup; moving it aside revokes every token", path, ErrTokensCorrupt, fmt.Sprintf(format, args...))
	}
	if len(data) > maxTokensFileBytes {
		return nil, bad("larger than %d bytes", maxTokensFileBytes)
	}
	// The version first, so that a newer format is reported as such
	// rather than as whatever field this package does not know.
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, bad("%s", jsonError(data, err))
	}
	switch {
	case v.Version == nil:
		return nil, bad("no \"version\"")
	case *v.Version != tokensVersion:
		return nil, fmt.Errorf("%s: %w: version %d, this hark reads version %d: use the hark that wrote it, or move the file aside (which revokes every token)",
			path, ErrTokensCorrupt, *v.Version, tokensVersion)
	}
	// Strict: a field this package does not know would be dropped by the
	// next write.
	var f tokenFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, bad("%s", jsonError(data, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("data after the JSON object")
	}
	ids := make(map[string]bool, len(f.Tokens))
	sums := make(map[string]bool, len(f.Tokens))
	for i, r := range f.Tokens {
		n := i + 1
		switch {
		case !validTokenID(r.ID):
			return nil, bad("token %d: id %q is not %d characters of a-z, 2-7", n, r.ID, tokenIDLen)
		case ids[r.ID]:
			return nil, bad("token %d: id %q appears twice", n, r.ID)
		}
		if err := checkTokenRecord(r); err != nil {
			return nil, bad("token %s: %v", r.ID, err)
		}
		if sums[r.SHA256] {
			return nil, bad("token %s: its sha256 appears twice", r.ID)
		}
		ids[r.ID], sums[r.SHA256] = true, true
	}
	return &f, nil
}

// checkTokenRecord checks the fields of one record but its id, which the
// caller checks and names the record by.
func checkTokenRecord(r tokenRecord) error {
	switch {
	case r.Scope != ScopePublish && r.Scope != ScopeSubscribe:
		return fmt.Errorf("scope %q is not publish or subscribe", r.Scope)
	case !validSHA256Hex(r.SHA256):
		return errors.New("sha256 is not 64 lowercase hex digits")
	case r.Created.IsZero():
		return errors.New("no \"created\" time")
	}
	return CheckTokenLabel(r.Label)
}

// jsonError adds the line to a JSON syntax error, which only has an offset.
func jsonError(data []byte, err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	off := int64(-1)
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err.Error()
	}
	return fmt.Sprintf("line %d: %v", 1+bytes.Count(data[:off], []byte{'\n'}), err)
}

func validTokenID(id string) bool {
	return len(id) == tokenIDLen && onlyAlphabet(id)
}

func validSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// wellFormedToken reports whether secret looks like a token AddToken made,
// so that garbage is rejected before it is hashed.
func wellFormedToken(secret string) bool {
	return len(secret) == TokenLen && strings.HasPrefix(secret, TokenPrefix) && onlyAlphabet(secret[len(TokenPrefix):])
}

func onlyAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}
