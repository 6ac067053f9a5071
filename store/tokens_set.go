package store

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// racyWindow is how long after a file's mtime a read of it may have missed
// a later write with the same mtime: mtimes are only as fine as the file
// system's clock (a scheduler tick on ext4, 2 s on FAT), and a rename may
// reuse the inode number just freed, so a write soon after a read can leave
// inode, size and mtime all unchanged. Until the file is older than this
// when read, Refresh reads it again and compares the contents (as git
// does for its "racily clean" index entries).
const racyWindow = 2 * time.Second

// fileStamp is what Refresh compares to decide whether to read the file.
type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func stampOf(fi os.FileInfo) fileStamp {
	return fileStamp{ino: fileIno(fi), size: fi.Size(), mtime: fi.ModTime()}
}

func (a fileStamp) same(b fileStamp) bool {
	return a.ino == b.ino && a.size == b.size && a.mtime.Equal(b.mtime)
}

// tokenEntry is one token as the server holds it. Entries are never
// modified once in a map: Refresh builds new maps.
type tokenEntry struct {
	sum [sha256.Size]byte
	tok Token
}

// TokenSet is a running server's view of the token file: Check answers
// from memory, and Refresh re-reads the file when it changes, so that
// `hark token add` and `revoke` take effect without a restart. It is safe
// for concurrent use.
type TokenSet struct {
	dir, path string

	refreshMu sync.Mutex // serialises Refresh; guards the fields up to mu
	stamp     *fileStamp // of the contents last read; nil: none (missing or never read)
	readAt    time.Time  // when they were read
	sum       [sha256.Size]byte
	lastErr   error // why the contents with sum were refused; nil: they are in use

	mu     sync.RWMutex // guards the maps, which are replaced, never modified
	byHash map[[sha256.Size]byte]*tokenEntry
	byID   map[string]*tokenEntry
	scopes map[Scope]int

	uses TokenUses // since the last FlushUsage
}

// OpenTokens reads dir's token file. A missing file is an empty set (the
// server runs without tokens until one is added); a malformed one is an
// error that names it.
func OpenTokens(dir string) (*TokenSet, error) {
	if dir == "" {
		return nil, errors.New("open tokens: no data directory given")
	}
	s := &TokenSet{dir: dir, path: filepath.Join(dir, TokensFileName)}
	s.install(nil)
	if _, err := s.Refresh(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the token file's path, for messages.
func (s *TokenSet) Path() string { return s.path }

// Refresh re-reads the token file if it changed since the last read (its
// inode, size or mtime differ, or it was read too soon after its last
// write to tell). changed reports whether the tokens accepted changed:
// one added, removed, or of another scope or expiry (not a new last_used
// or label). A missing file means no tokens.
//
// When the file cannot be read or is malformed, the set keeps the tokens
// it had and Refresh returns the error, on every call until the file is
// fixed (without reading it again while it stays the same), so a caller
// polling it should log an error when its text differs from the last one.
func (s *TokenSet) Refresh() (changed bool, err error) {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.stamp, s.lastErr = nil, nil
		return s.install(nil), nil
	case err != nil:
		return false, fmt.Errorf("read tokens: %w", err)
	}
	if st := stampOf(fi); s.stamp != nil && s.stamp.same(st) && s.readAt.Sub(st.mtime) >= racyWindow {
		return false, s.lastErr
	}
	data, st, err := readTokenBytes(s.path)
	switch {
	case err != nil:
		return false, err
	case st == nil: // removed since the Stat
		s.stamp, s.lastErr = nil, nil
		return s.install(nil), nil
	}
	sum := sha256.Sum256(data)
	same := s.stamp != nil && sum == s.sum
	s.stamp, s.readAt, s.sum = st, time.Now(), sum
	if same {
		return false, s.lastErr
	}
	f, err := parseTokenFile(s.path, data)
	if err != nil {
		s.lastErr = err
		return false, err
	}
	s.lastErr = nil
	return s.install(f.Tokens), nil
}

// install makes recs the set's tokens and reports whether that changed
// which tokens are accepted, or for what.
func (s *TokenSet) install(recs []tokenRecord) (changed bool) {
	byHash := make(map[[sha256.Size]byte]*tokenEntry, len(recs))
	byID := make(map[string]*tokenEntry, len(recs))
	scopes := make(map[Scope]int, 2)
	for _, r := range recs {
		e := &tokenEntry{tok: r.token()}
		// parseTokenFile checked it is 64 hex digits.
		if _, err := hex.Decode(e.sum[:], []byte(r.SHA256)); err != nil {
			continue
		}
		byHash[e.sum] = e
		byID[r.ID] = e
		scopes[r.Scope]++
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = len(byID) != len(s.byID)
	for id, e := range byID {
		if changed {
			break
		}
		old := s.byID[id]
		changed = old == nil || old.sum != e.sum || old.tok.Scope != e.tok.Scope || !old.tok.Expires.Equal(e.tok.Expires)
	}
	s.byHash, s.byID, s.scopes = byHash, byID, scopes
	return changed
}

// Check reports whether secret is a token of scope that is valid at now,
// and returns it. The errors are ErrTokenUnknown (malformed, unknown or
// revoked: the Token is zero), ErrTokenScope (a token of another scope)
// and ErrTokenExpired; with these two the Token is returned, for the log.
func (s *TokenSet) Check(secret string, scope Scope, now time.Time) (Token, error) {
	if !wellFormedToken(secret) {
		return Token{}, ErrTokenUnknown
	}
	sum := sha256.Sum256([]byte(secret))
	s.mu.RLock()
	e := s.byHash[sum]
	s.mu.RUnlock()
	// The map lookup already matched the hash; comparing again in
	// constant time costs nothing and keeps the answer from depending on
	// how a map compares keys.
	if e == nil || subtle.ConstantTimeCompare(e.sum[:], sum[:]) != 1 {
		return Token{}, ErrTokenUnknown
	}
	if e.tok.Scope != scope {
		return e.tok, ErrTokenScope
	}
	if e.tok.Expired(now) {
		return e.tok, ErrTokenExpired
	}
	return e.tok, nil
}

// Valid reports whether the token with id is still in the set and not
// expired at now: the server ends the connections of a token that is not.
func (s *TokenSet) Valid(id string, now time.Time) bool {
	s.mu.RLock()
	e := s.byID[id]
	s.mu.RUnlock()
	return e != nil && !e.tok.Expired(now)
}

// Len is the number of tokens in the set, expired ones included.
func (s *TokenSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byID)
}

// Has reports whether the set holds a token of scope, expired or not.
func (s *TokenSet) Has(scope Scope) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.scopes[scope] > 0
}

// Used records that the token with id was used at now. It only touches
// memory; FlushUsage writes it to the file. Unknown ids are ignored, so
// that the record stays bounded by the tokens that exist.
func (s *TokenSet) Used(id string, now time.Time) {
	s.mu.RLock()
	known := s.byID[id] != nil
	s.mu.RUnlock()
	if !known {
		return
	}
	s.uses.Record(id, now)
}

// FlushUsage writes the uses recorded since the last flush to the file's
// last_used, keeping the later of the two. It reads the file under the
// writers' lock and only updates tokens still in it, so a token revoked
// meanwhile stays revoked. On an error the uses are kept for the next try.
func (s *TokenSet) FlushUsage() error {
	used := s.uses.Take()
	if len(used) == 0 {
		return nil
	}
	if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
		return nil // every token was revoked: nothing to record
	}
	err := updateTokens(s.dir, func(f *tokenFile) (bool, error) {
		write := false
		for i := range f.Tokens {
			r := &f.Tokens[i]
			if u, ok := used[r.ID]; ok && u.After(r.LastUsed) {
				r.LastUsed = u.UTC()
				write = true
			}
		}
		return write, nil
	})
	if err != nil {
		s.uses.Keep(used)
		return fmt.Errorf("record token use: %w", err)
	}
	return nil
}
