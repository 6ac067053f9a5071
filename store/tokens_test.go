package store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/harkapp/hark/store"
)

func addToken(t *testing.T, dir string, scope store.Scope, label string, expires time.Time) (string, store.Token) {
	t.Helper()
	secret, tok, err := store.AddToken(dir, scope, label, expires)
	if err != nil {
		t.Fatalf("AddToken(%s, %q): %v", scope, label, err)
	}
	return secret, tok
}

func listTokens(t *testing.T, dir string) []store.Token {
	t.Helper()
	toks, err := store.ListTokens(dir)
	if err != nil {
		t.Fatalf("ListTokens: %v", err)
	}
	return toks
}

func openTokens(t *testing.T, dir string) *store.TokenSet {
	t.Helper()
	s, err := store.OpenTokens(dir)
	if err != nil {
		t.Fatalf("OpenTokens: %v", err)
	}
	return s
}

func refresh(t *testing.T, s *store.TokenSet, wantChanged bool) {
	t.Helper()
	changed, err := s.Refresh()
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if changed != wantChanged {
		t.Fatalf("Refresh: changed = %v, want %v", changed, wantChanged)
	}
}

func tokensFile(dir string) string { return filepath.Join(dir, store.TokensFileName) }

func TestTokenRoundTrip(t *testing.T) {
	dir := t.TempDir()
	before := time.Now()
	expires := before.Add(24 * time.Hour)
	pubSecret, pub := addToken(t, dir, store.ScopePublish, "ci: nightly ads", time.Time{})
	subSecret, sub := addToken(t, dir, store.ScopeSubscribe, "Zoë's laptop", expires)

	if store.TokenLen != 57 {
		t.Errorf("TokenLen = %d, want 57: hark_ and 52 characters", store.TokenLen)
	}
	for _, s := range []string{pubSecret, subSecret} {
		if len(s) != store.TokenLen || !strings.HasPrefix(s, "hark_") || strings.Trim(s[5:], "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Errorf("secret %q: want hark_ and 52 characters of lowercase base32", s)
		}
	}
	if pubSecret == subSecret || pub.ID == sub.ID {
		t.Fatalf("two tokens share a secret or an id: %q %q", pub.ID, sub.ID)
	}
	if pub.Scope != store.ScopePublish || pub.Label != "ci: nightly ads" || !pub.Expires.IsZero() || !pub.LastUsed.IsZero() {
		t.Errorf("publish token: %+v", pub)
	}
	if pub.Created.Before(before.Add(-time.Second)) || pub.Created.After(time.Now()) || pub.Created.Location() != time.UTC {
		t.Errorf("publish token created %v, want a UTC time around %v", pub.Created, before)
	}
	if !sub.Expires.Equal(expires) {
		t.Errorf("subscribe token expires %v, want %v", sub.Expires, expires)
	}
	if strings.Contains(pubSecret, pub.ID) || strings.Contains(subSecret, sub.ID) {
		t.Errorf("an id is part of its secret")
	}

	toks := listTokens(t, dir)
	if len(toks) != 2 || toks[0].ID != pub.ID || toks[1].ID != sub.ID {
		t.Fatalf("ListTokens = %+v, want the publish token then the subscribe one", toks)
	}
	if toks[1].Label != sub.Label || toks[1].Scope != sub.Scope || !toks[1].Created.Equal(sub.Created) || !toks[1].Expires.Equal(sub.Expires) {
		t.Errorf("ListTokens[1] = %+v, want %+v", toks[1], sub)
	}

	// The file holds hashes, never a secret, and only its owner reads it.
	data, err := os.ReadFile(tokensFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{pubSecret, subSecret} {
		if bytes.Contains(data, []byte(s)) || bytes.Contains(data, []byte(s[5:])) || bytes.Contains(data, []byte(strings.ToUpper(s[5:]))) {
			t.Errorf("%s contains a secret:\n%s", store.TokensFileName, data)
		}
		sum := sha256.Sum256([]byte(s))
		if !bytes.Contains(data, []byte(hex.EncodeToString(sum[:]))) {
			t.Errorf("%s does not hold the SHA-256 of a secret:\n%s", store.TokensFileName, data)
		}
	}
	var f struct {
		Version int              `json:"version"`
		Tokens  []map[string]any `json:"tokens"`
	}
	if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 || len(f.Tokens) != 2 {
		t.Errorf("%s: %v, %+v", store.TokensFileName, err, f)
	} else if _, ok := f.Tokens[0]["expires"]; ok {
		t.Errorf("a token that never expires has \"expires\": %s", data)
	}
	fi, err := os.Stat(tokensFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("%s has mode %v, want 0600", store.TokensFileName, m)
	}

	gone, err := store.RevokeToken(dir, pub.ID)
	if err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if gone.ID != pub.ID || gone.Label != pub.Label {
		t.Errorf("RevokeToken returned %+v, want %+v", gone, pub)
	}
	if toks := listTokens(t, dir); len(toks) != 1 || toks[0].ID != sub.ID {
		t.Errorf("after revoking %s: %+v", pub.ID, toks)
	}
	if _, err := store.RevokeToken(dir, pub.ID); !errors.Is(err, store.ErrNoToken) {
		t.Errorf("revoking %s again: %v, want ErrNoToken", pub.ID, err)
	}
	// Only the token file and the lock are left: no temporary files.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != store.TokensFileName {
			t.Errorf("left in the data directory: %s", e.Name())
		}
	}
}

func TestTokenMissingFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nowhere")
	if toks, err := store.ListTokens(dir); err != nil || len(toks) != 0 {
		t.Errorf("ListTokens on a missing directory = %v, %v; want none, no error", toks, err)
	}
	if _, err := store.RevokeToken(dir, "abcdefghij"); !errors.Is(err, store.ErrNoToken) {
		t.Errorf("RevokeToken on a missing directory: %v, want ErrNoToken", err)
	}
	s := openTokens(t, dir)
	if s.Len() != 0 || s.Has(store.ScopePublish) {
		t.Errorf("OpenTokens on a missing directory: %d tokens", s.Len())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reading created the directory: %v", err)
	}

	// Adding creates it, private; the running set finds the file later.
	secret, _ := addToken(t, dir, store.ScopeSubscribe, "", time.Time{})
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("AddToken created %s: %v, %v; want mode 0700", dir, fi.Mode(), err)
	}
	refresh(t, s, true)
	if _, err := s.Check(secret, store.ScopeSubscribe, time.Now()); err != nil {
		t.Errorf("Check after the file appeared: %v", err)
	}
	if !s.Has(store.ScopeSubscribe) || s.Has(store.ScopePublish) || s.Len() != 1 {
		t.Errorf("Has/Len wrong: %v %v %d", s.Has(store.ScopeSubscribe), s.Has(store.ScopePublish), s.Len())
	}

	// Moving the file aside revokes everything.
	if err := os.Rename(tokensFile(dir), tokensFile(dir)+".bak"); err != nil {
		t.Fatal(err)
	}
	refresh(t, s, true)
	if _, err := s.Check(secret, store.ScopeSubscribe, time.Now()); !errors.Is(err, store.ErrTokenUnknown) {
		t.Errorf("Check after the file went: %v, want ErrTokenUnknown", err)
	}
}

func TestTokenAddRefuses(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		scope   store.Scope
		label   string
		expires time.Time
		want    error
	}{
		{"bad scope", "admin", "", time.Time{}, store.ErrBadScope},
		{"empty scope", "", "", time.Time{}, store.ErrBadScope},
		{"long label", store.ScopePublish, strings.Repeat("x", 201), time.Time{}, store.ErrBadTokenLabel},
		{"newline", store.ScopePublish, "a\nb", time.Time{}, store.ErrBadTokenLabel},
		{"tab", store.ScopePublish, "a\tb", time.Time{}, store.ErrBadTokenLabel},
		{"escape", store.ScopePublish, "\x1b[31mred", time.Time{}, store.ErrBadTokenLabel},
		{"bidi override", store.ScopePublish, "abc\u202edef", time.Time{}, store.ErrBadTokenLabel},
		{"not UTF-8", store.ScopePublish, "caf\xe9", time.Time{}, store.ErrBadTokenLabel},
		{"expired", store.ScopePublish, "", time.Now().Add(-time.Minute), nil},
	}
	for _, tc := range cases {
		_, _, err := store.AddToken(dir, tc.scope, tc.label, tc.expires)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: AddToken: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := os.Stat(tokensFile(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused add wrote the file: %v", err)
	}
	// The longest label, and one of spaces and accents, are fine.
	addToken(t, dir, store.ScopePublish, strings.Repeat("é", 100), time.Time{})
	addToken(t, dir, store.ScopePublish, "  ci runner #3 ", time.Time{})

	if _, err := store.ParseScope("Publish"); !errors.Is(err, store.ErrBadScope) || !strings.Contains(err.Error(), "publish or subscribe") {
		t.Errorf("ParseScope(Publish): %v", err)
	}
	if sc, err := store.ParseScope("subscribe"); err != nil || sc != store.ScopeSubscribe {
		t.Errorf("ParseScope(subscribe) = %q, %v", sc, err)
	}
}

// TestTokenConcurrentAdds adds from several goroutines at once: each add
// reads, modifies and writes the file, and the lock keeps every one.
func TestTokenConcurrentAdds(t *testing.T) {
	dir := t.TempDir()
	const workers, each = 8, 6
	var mu sync.Mutex
	secrets := map[string]string{} // id: secret
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				secret, tok, err := store.AddToken(dir, store.ScopeSubscribe, fmt.Sprintf("w%d-%d", w, i), time.Time{})
				if err != nil {
					t.Errorf("AddToken: %v", err)
					return
				}
				mu.Lock()
				secrets[tok.ID] = secret
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	toks := listTokens(t, dir)
	if len(toks) != workers*each || len(secrets) != workers*each {
		t.Fatalf("%d tokens in the file, %d added; want %d", len(toks), len(secrets), workers*each)
	}
	s := openTokens(t, dir)
	for id, secret := range secrets {
		if tok, err := s.Check(secret, store.ScopeSubscribe, time.Now()); err != nil || tok.ID != id {
			t.Errorf("Check(token %s) = %s, %v", id, tok.ID, err)
		}
	}
}

func TestTokenRefreshSeesChanges(t *testing.T) {
	dir := t.TempDir()
	s := openTokens(t, dir)
	refresh(t, s, false)
	a, ta := addToken(t, dir, store.ScopeSubscribe, "a", time.Time{})
	refresh(t, s, true)
	if _, err := s.Check(a, store.ScopeSubscribe, time.Now()); err != nil {
		t.Fatalf("Check after add: %v", err)
	}
	refresh(t, s, false)

	// Quick successive changes, each seen by the next Refresh, although
	// they are far quicker than the file system's mtime may resolve.
	for i := range 20 {
		b, tb := addToken(t, dir, store.ScopeSubscribe, "b", time.Time{})
		refresh(t, s, true)
		if _, err := s.Check(b, store.ScopeSubscribe, time.Now()); err != nil || !s.Valid(tb.ID, time.Now()) {
			t.Fatalf("round %d: Check after add: %v", i, err)
		}
		if _, err := store.RevokeToken(dir, tb.ID); err != nil {
			t.Fatal(err)
		}
		refresh(t, s, true)
		if _, err := s.Check(b, store.ScopeSubscribe, time.Now()); !errors.Is(err, store.ErrTokenUnknown) {
			t.Fatalf("round %d: Check after revoke: %v, want ErrTokenUnknown", i, err)
		}
		if s.Valid(tb.ID, time.Now()) {
			t.Fatalf("round %d: Valid(%s) after revoke", i, tb.ID)
		}
	}
	if !s.Valid(ta.ID, time.Now()) || s.Len() != 1 {
		t.Errorf("the first token is gone: Len %d", s.Len())
	}
}

func TestTokenCheck(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	pub, tp := addToken(t, dir, store.ScopePublish, "", time.Time{})
	sub, ts := addToken(t, dir, store.ScopeSubscribe, "", now.Add(time.Hour))
	s := openTokens(t, dir)

	if tok, err := s.Check(pub, store.ScopePublish, now); err != nil || tok.ID != tp.ID {
		t.Errorf("Check(publish token, publish) = %+v, %v", tok, err)
	}
	if tok, err := s.Check(pub, store.ScopeSubscribe, now); !errors.Is(err, store.ErrTokenScope) || tok.ID != tp.ID {
		t.Errorf("Check(publish token, subscribe) = %+v, %v; want ErrTokenScope", tok, err)
	}
	if _, err := s.Check(sub, store.ScopeSubscribe, now.Add(59*time.Minute)); err != nil {
		t.Errorf("Check before expiry: %v", err)
	}
	if tok, err := s.Check(sub, store.ScopeSubscribe, now.Add(time.Hour)); !errors.Is(err, store.ErrTokenExpired) || tok.ID != ts.ID {
		t.Errorf("Check at expiry = %+v, %v; want ErrTokenExpired", tok, err)
	}
	if !s.Valid(ts.ID, now) || s.Valid(ts.ID, now.Add(2*time.Hour)) || !s.Valid(tp.ID, now.Add(1000*time.Hour)) {
		t.Errorf("Valid does not follow expiry")
	}
	if s.Valid("abcdefghij", now) {
		t.Errorf("Valid of an unknown id")
	}

	body := pub[len("hark_"):]
	malformed := []string{
		"",
		"hark_",
		body,
		"HARK_" + body,
		"hark-" + body,
		"hark_" + strings.ToUpper(body),
		pub + "a",
		pub[:len(pub)-1],
		"hark_" + body[:51] + "1",
		"hark_" + body[:51] + "=",
		pub + "\n",
		" " + pub,
		"Bearer " + pub,
		"hark_" + strings.Repeat("a", 52), // well formed, unknown
	}
	for _, m := range malformed {
		if tok, err := s.Check(m, store.ScopePublish, now); !errors.Is(err, store.ErrTokenUnknown) || tok != (store.Token{}) {
			t.Errorf("Check(%q) = %+v, %v; want ErrTokenUnknown", m, tok, err)
		}
	}
}

func TestTokenCorruptFile(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	rec := func(fields string) string {
		return `{"version":1,"tokens":[{` + fields + `}]}`
	}
	good := `"id":"abcdefghij","scope":"publish","label":"","sha256":"` + h + `","created":"2025-01-01T00:00:00Z"`
	cases := []struct {
		name, data string
		inErr      []string
	}{
		{"empty", "", []string{"unexpected end"}},
		{"garbage", "not json", []string{"line 1"}},
		{"syntax on line 3", "{\n\"version\": 1,\n\"tokens\": [}\n", []string{"line 3"}},
		{"no version", `{"tokens":[]}`, []string{"version"}},
		{"newer version", `{"version":2,"tokens":[],"future":true}`, []string{"version 2", "reads version 1"}},
		{"unknown field", `{"version":1,"tokens":[],"extra":1}`, []string{"extra"}},
		{"trailing data", `{"version":1,"tokens":[]} {}`, []string{"after"}},
		{"tokens not a list", `{"version":1,"tokens":{}}`, []string{"tokens"}},
		{"bad id", rec(strings.Replace(good, "abcdefghij", "ABC", 1)), []string{`"ABC"`}},
		{"bad scope", rec(strings.Replace(good, `"publish"`, `"admin"`, 1)), []string{`"admin"`}},
		{"bad hash", rec(strings.Replace(good, h, "xyz", 1)), []string{"sha256"}},
		{"no created", rec(strings.Replace(good, `,"created":"2025-01-01T00:00:00Z"`, "", 1)), []string{"created"}},
		{"bad label", rec(strings.Replace(good, `"label":""`, `"label":"a\u0007"`, 1)), []string{"label"}},
		{"duplicate id", `{"version":1,"tokens":[{` + good + `},{` + strings.Replace(good, h, strings.Repeat("0", 64), 1) + `}]}`, []string{"twice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tokensFile(dir)
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := store.ListTokens(dir)
			if !errors.Is(err, store.ErrTokensCorrupt) {
				t.Fatalf("ListTokens: %v, want ErrTokensCorrupt", err)
			}
			for _, w := range append([]string{path, "move the file aside"}, tc.inErr...) {
				if !strings.Contains(err.Error(), w) && !(w == "move the file aside" && strings.Contains(err.Error(), "moving it aside")) {
					t.Errorf("error does not say %q: %v", w, err)
				}
			}
			if _, err := store.OpenTokens(dir); !errors.Is(err, store.ErrTokensCorrupt) {
				t.Errorf("OpenTokens: %v, want ErrTokensCorrupt", err)
			}
			// Writers refuse too, and leave the file as it was.
			if _, _, err := store.AddToken(dir, store.ScopePublish, "", time.Time{}); !errors.Is(err, store.ErrTokensCorrupt) {
				t.Errorf("AddToken: %v, want ErrTokensCorrupt", err)
			}
			if _, err := store.RevokeToken(dir, "abcdefghij"); !errors.Is(err, store.ErrTokensCorrupt) {
				t.Errorf("RevokeToken: %v, want ErrTokensCorrupt", err)
			}
			if data, _ := os.ReadFile(path); string(data) != tc.data {
				t.Errorf("the file was changed to %q", data)
			}
		})
	}
	// The valid record those cases break is valid.
	dir := t.TempDir()
	if err := os.WriteFile(tokensFile(dir), []byte(rec(good)), 0o600); err != nil {
		t.Fatal(err)
	}
	if toks := listTokens(t, dir); len(toks) != 1 || toks[0].ID != "abcdefghij" {
		t.Errorf("ListTokens = %+v", toks)
	}
}

// TestTokenRefreshKeepsLastGood breaks the file under a running set: it
// keeps the tokens it had, says why on every Refresh, and picks up the
// file once it is fixed.
func TestTokenRefreshKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	secret, tok := addToken(t, dir, store.ScopeSubscribe, "", time.Time{})
	s := openTokens(t, dir)
	good, err := os.ReadFile(tokensFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokensFile(dir), []byte(`{"version":1,"tokens":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		changed, err := s.Refresh()
		if changed || !errors.Is(err, store.ErrTokensCorrupt) || !strings.Contains(err.Error(), tokensFile(dir)) {
			t.Errorf("Refresh of a broken file = %v, %v; want ErrTokensCorrupt naming the file", changed, err)
		}
		if _, err := s.Check(secret, store.ScopeSubscribe, time.Now()); err != nil || !s.Valid(tok.ID, time.Now()) {
			t.Errorf("Check after a broken file: %v, want the last good set", err)
		}
	}
	if err := os.WriteFile(tokensFile(dir), good, 0o600); err != nil {
		t.Fatal(err)
	}
	refresh(t, s, false) // the same tokens as before the breakage
	if _, err := s.Check(secret, store.ScopeSubscribe, time.Now()); err != nil {
		t.Errorf("Check after the fix: %v", err)
	}
}

func TestTokenFlushUsage(t *testing.T) {
	dir := t.TempDir()
	_, a := addToken(t, dir, store.ScopeSubscribe, "a", time.Time{})
	_, b := addToken(t, dir, store.ScopeSubscribe, "b", time.Time{})
	s := openTokens(t, dir)

	// Nothing used: nothing written.
	before, _ := os.ReadFile(tokensFile(dir))
	if err := s.FlushUsage(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(tokensFile(dir)); !bytes.Equal(before, after) {
		t.Errorf("FlushUsage without uses rewrote the file")
	}

	t1 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Used(a.ID, t1)
	s.Used(b.ID, t1)
	s.Used(b.ID, t1.Add(time.Minute))
	s.Used(b.ID, t1) // earlier: ignored
	s.Used("abcdefghij", t1)
	// a is revoked between its use and the flush: the flush must not
	// bring it back.
	if _, err := store.RevokeToken(dir, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.FlushUsage(); err != nil {
		t.Fatalf("FlushUsage: %v", err)
	}
	toks := listTokens(t, dir)
	if len(toks) != 1 || toks[0].ID != b.ID || !toks[0].LastUsed.Equal(t1.Add(time.Minute)) {
		t.Fatalf("after FlushUsage: %+v; want only %s, last used %v", toks, b.ID, t1.Add(time.Minute))
	}
	// last_used never goes back.
	s.Used(b.ID, t1)
	if err := s.FlushUsage(); err != nil {
		t.Fatal(err)
	}
	if toks := listTokens(t, dir); !toks[0].LastUsed.Equal(t1.Add(time.Minute)) {
		t.Errorf("an older use moved last_used back to %v", toks[0].LastUsed)
	}
	// The flush changed last_used only: not a change of the accepted tokens
	// (the revocation of a is).
	refresh(t, s, true)
	refresh(t, s, false)
	if !s.Valid(b.ID, time.Now()) || s.Valid(a.ID, time.Now()) {
		t.Errorf("after the refresh: b valid %v, a valid %v", s.Valid(b.ID, time.Now()), s.Valid(a.ID, time.Now()))
	}
}

func TestTokenLimit(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(`{"version":1,"tokens":[`)
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	for i := range store.MaxTokens {
		if i > 0 {
			b.WriteByte(',')
		}
		id := []byte("aaaaaaaaaa")
		for j, n := len(id)-1, i; n > 0; j, n = j-1, n/32 {
			id[j] = alphabet[n%32]
		}
		sum := sha256.Sum256([]byte(id))
		fmt.Fprintf(&b, `{"id":%q,"scope":"publish","label":"","sha256":%q,"created":"2025-01-01T00:00:00Z"}`, id, hex.EncodeToString(sum[:]))
	}
	b.WriteString("]}")
	if err := os.WriteFile(tokensFile(dir), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := store.AddToken(dir, store.ScopePublish, "", time.Time{})
	if !errors.Is(err, store.ErrTooManyTokens) || !strings.Contains(err.Error(), "revoke") {
		t.Errorf("AddToken beyond %d tokens: %v, want ErrTooManyTokens saying to revoke", store.MaxTokens, err)
	}
	if toks := listTokens(t, dir); len(toks) != store.MaxTokens {
		t.Errorf("ListTokens: %d tokens", len(toks))
	}
	if _, err := store.RevokeToken(dir, "aaaaaaaaaa"); err != nil {
		t.Fatal(err)
	}
	addToken(t, dir, store.ScopePublish, "", time.Time{})
}

// TestTokenRefreshSameStamp rewrites the file in place with contents of
// the same size and puts its mtime back, as a coarse file system clock
// would: inode, size and mtime are all unchanged, and Refresh must still
// see the new contents, since it read the file too soon after its write.
func TestTokenRefreshSameStamp(t *testing.T) {
	dir := t.TempDir()
	path := tokensFile(dir)
	file := func(id string, secret string) []byte {
		sum := sha256.Sum256([]byte(secret))
		return fmt.Appendf(nil, `{"version":1,"tokens":[{"id":%q,"scope":"subscribe","label":"","sha256":%q,"created":"2025-01-01T00:00:00Z"}]}`, id, hex.EncodeToString(sum[:]))
	}
	secretA, secretB := "hark_"+strings.Repeat("a", 52), "hark_"+strings.Repeat("b", 52)
	if err := os.WriteFile(path, file("aaaaaaaaaa", secretA), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	s := openTokens(t, dir)
	if _, err := s.Check(secretA, store.ScopeSubscribe, time.Now()); err != nil {
		t.Fatalf("Check(A): %v", err)
	}
	if err := os.WriteFile(path, file("bbbbbbbbbb", secretB), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	refresh(t, s, true)
	if _, err := s.Check(secretA, store.ScopeSubscribe, time.Now()); !errors.Is(err, store.ErrTokenUnknown) {
		t.Errorf("Check(A) after the rewrite: %v, want ErrTokenUnknown", err)
	}
	if _, err := s.Check(secretB, store.ScopeSubscribe, time.Now()); err != nil {
		t.Errorf("Check(B) after the rewrite: %v", err)
	}
}

// Run as root over a data directory its service user owns, hark token
// creates and chowns nothing but its own new files: a symlink the
// directory's owner planted (tokens.lock → /etc/shadow, in older
// versions) is never followed.
func TestTokenWritersFollowNoPlantedLink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tokens.lock", "tokens.json.tmp"} {
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		// As the packaged service's data directory: owned by its user.
		if err := os.Chown(dir, 1234, 1234); err != nil {
			t.Fatal(err)
		}
	}
	before, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.AddToken(dir, store.ScopeSubscribe, "x", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RevokeToken(dir, "nosuchid"); err == nil {
		t.Fatal("revoking an unknown id succeeded")
	}
	after, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(victim)
	owner := func(fi os.FileInfo) uint32 { return fi.Sys().(*syscall.Stat_t).Uid }
	if string(b) != "secret" || after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) || owner(after) != owner(before) {
		t.Fatalf("the link's target was touched: %q, %v, owner %d", b, after.Mode(), owner(after))
	}
}

// A FIFO where the token file should be is an error at once, not a
// watcher blocked forever (and with it every revocation).
func TestTokenFileFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, store.TokensFileName), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenTokens(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("OpenTokens over a FIFO: %v", err)
	}
}

// A token kept apart from the file (store/jetstream's bucket) is the same
// token: MintToken makes it as AddToken does, its record is the file's
// format, and a record is checked as the file's are.
func TestTokenRecord(t *testing.T) {
	expires := time.Now().Add(time.Hour)
	secret, tok, sum, err := store.MintToken(store.ScopeSubscribe, "desk", expires)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := store.TokenSum(secret); !ok || got != sum || len(secret) != store.TokenLen {
		t.Errorf("TokenSum of a minted secret: %x, %v; want %x", got, ok, sum)
	}
	if _, ok := store.TokenSum("hark_" + strings.Repeat("A", 52)); ok {
		t.Error("TokenSum took a malformed secret")
	}
	if tok.ID == "" || tok.Created.IsZero() || tok.Created.Location() != time.UTC || !tok.Expires.Equal(expires) {
		t.Errorf("minted %+v", tok)
	}
	rec := store.EncodeTokenRecord(tok, sum)
	if strings.Contains(string(rec), secret[len(store.TokenPrefix):]) {
		t.Errorf("the record holds the secret: %s", rec)
	}
	got, gotSum, err := store.DecodeTokenRecord(rec)
	if err != nil || got != tok || gotSum != sum {
		t.Errorf("DecodeTokenRecord(EncodeTokenRecord) = %+v, %x, %v; want %+v, %x", got, gotSum, err, tok, sum)
	}
	for _, tc := range []struct{ name, rec string }{
		{"not JSON", "{oops"},
		{"a field more", strings.Replace(string(rec), `"id"`, `"secret":"x","id"`, 1)},
		{"data after it", string(rec) + "{}"},
		{"a bad id", strings.Replace(string(rec), tok.ID, "AAAAAAAAAA", 1)},
		{"a bad scope", strings.Replace(string(rec), `"subscribe"`, `"admin"`, 1)},
		{"a bad hash", strings.Replace(string(rec), fmt.Sprintf("%x", sum), strings.Repeat("z", 64), 1)},
		{"no created", `{"id":"` + tok.ID + `","scope":"publish","label":"","sha256":"` + fmt.Sprintf("%x", sum) + `"}`},
		{"too large", `{"id":"` + tok.ID + `","label":"` + strings.Repeat("x", store.MaxTokenRecordBytes) + `"}`},
	} {
		if _, _, err := store.DecodeTokenRecord([]byte(tc.rec)); !errors.Is(err, store.ErrTokensCorrupt) {
			t.Errorf("%s: DecodeTokenRecord: %v, want ErrTokensCorrupt", tc.name, err)
		}
	}
	if _, _, _, err := store.MintToken("admin", "", time.Time{}); !errors.Is(err, store.ErrBadScope) {
		t.Errorf("MintToken of a bad scope: %v", err)
	}
	if _, _, _, err := store.MintToken(store.ScopePublish, "", time.Now().Add(-time.Second)); err == nil {
		t.Error("MintToken of a token expired already: no error")
	}
}
