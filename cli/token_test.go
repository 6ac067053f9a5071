package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/store"
)

var tokenRE = regexp.MustCompile(`^hark_[a-z2-7]{52}\n$`)

// TestTokenCommand adds, lists and revokes tokens through cli.Run, as a
// person would on a server's data directory.
func TestTokenCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created by add

	code, stdout, stderr := run(t, "token", "add", "--data", dir, "--scope", "publish", "--label", "ci runner")
	if code != 0 {
		t.Fatalf("token add: exit status %d\nstderr: %s", code, stderr)
	}
	if !tokenRE.MatchString(stdout) {
		t.Fatalf("token add printed %q on stdout, want the token alone: hark_ and 52 characters of lowercase base32", stdout)
	}
	secret := strings.TrimSpace(stdout)
	toks, err := store.ListTokens(dir)
	if err != nil || len(toks) != 1 {
		t.Fatalf("ListTokens after add: %v, %v", toks, err)
	}
	pub := toks[0]
	for _, w := range []string{pub.ID, "publish", "only time", "Authorization: Bearer", "--token-file"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("token add: stderr does not say %q:\n%s", w, stderr)
		}
	}
	if strings.Contains(stderr, secret) {
		t.Errorf("token add printed the secret on stderr too:\n%s", stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, store.TokensFileName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), secret) || strings.Contains(string(data), secret[len("hark_"):]) {
		t.Errorf("%s contains the secret:\n%s", store.TokensFileName, data)
	}

	code, stdout, stderr = run(t, "token", "add", "--data", dir, "--scope", "subscribe", "--expires", "30d")
	if code != 0 || !tokenRE.MatchString(stdout) || !strings.Contains(stderr, "hark login") {
		t.Fatalf("token add --scope subscribe: exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	toks, _ = store.ListTokens(dir)
	if len(toks) != 2 {
		t.Fatalf("ListTokens: %d tokens, want 2", len(toks))
	}
	sub := toks[1]
	if d := time.Until(sub.Expires); d < 30*24*time.Hour-time.Minute || d > 30*24*time.Hour {
		t.Errorf("--expires 30d: the token expires in %v", d)
	}

	code, stdout, stderr = run(t, "token", "list", "--data", dir)
	if code != 0 {
		t.Fatalf("token list: exit status %d\nstderr: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "LAST USED") {
		t.Fatalf("token list printed:\n%s", stdout)
	}
	for _, w := range []string{pub.ID, "publish", "ci runner", "never"} {
		if !strings.Contains(lines[1], w) {
			t.Errorf("token list: the publish token's line does not say %q: %q", w, lines[1])
		}
	}
	if !strings.Contains(lines[2], sub.ID) || !strings.Contains(lines[2], sub.Expires.Local().Format("2006-01-02")) {
		t.Errorf("token list: the subscribe token's line does not show its id and expiry: %q", lines[2])
	}
	if strings.Contains(stdout, secret) || strings.Contains(stdout, "hark_") {
		t.Errorf("token list shows a secret:\n%s", stdout)
	}

	code, stdout, stderr = run(t, "token", "revoke", "--data", dir, pub.ID)
	if code != 0 || !strings.Contains(stdout, pub.ID) || !strings.Contains(stdout, "within a second") {
		t.Fatalf("token revoke: exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "token", "list", "--data", dir)
	if code != 0 || strings.Contains(stdout, pub.ID) || !strings.Contains(stdout, sub.ID) {
		t.Errorf("token list after revoke:\n%s", stdout)
	}
	code, _, stderr = run(t, "token", "revoke", "--data", dir, pub.ID)
	if code != 1 || !strings.Contains(stderr, "no such token") {
		t.Errorf("revoking %s again: exit status %d, stderr %s", pub.ID, code, stderr)
	}
	run(t, "token", "revoke", "--data", dir, sub.ID)
	code, stdout, _ = run(t, "token", "list", "--data", dir)
	if code != 0 || !strings.Contains(stdout, "no tokens") {
		t.Errorf("token list of none: exit status %d, stdout %q", code, stdout)
	}
}

// TestTokenDefaultDataDir checks that without --data the tokens go where
// hark serve keeps its store.
func TestTokenDefaultDataDir(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_DATA_HOME", xdg)
	if code, _, stderr := run(t, "token", "add", "--scope", "subscribe"); code != 0 {
		t.Fatalf("token add: exit status %d: %s", code, stderr)
	}
	if toks, err := store.ListTokens(filepath.Join(xdg, "hark", "server")); err != nil || len(toks) != 1 {
		t.Errorf("no token in $XDG_DATA_HOME/hark/server: %v, %v", toks, err)
	}
}

func TestTokenUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name     string
		args     []string
		inStderr []string
	}{
		{"no subcommand", []string{"token"}, []string{"add, list or revoke"}},
		{"unknown subcommand", []string{"token", "delete"}, []string{`"delete"`, "add, list or revoke"}},
		{"add without scope", []string{"token", "add", "--data", dir}, []string{"--scope", "publish", "subscribe"}},
		{"add bad scope", []string{"token", "add", "--data", dir, "--scope", "admin"}, []string{`"admin"`, "publish or subscribe"}},
		{"add bogus flag", []string{"token", "add", "--data", dir, "--bogus"}, []string{"bogus"}},
		{"add bad expiry", []string{"token", "add", "--data", dir, "--scope", "publish", "--expires", "1y"}, []string{`"1y"`, "30d"}},
		{"add zero expiry", []string{"token", "add", "--data", dir, "--scope", "publish", "--expires", "0"}, []string{"positive"}},
		{"add negative days", []string{"token", "add", "--data", dir, "--scope", "publish", "--expires", "-3d"}, []string{"positive"}},
		{"add label with newline", []string{"token", "add", "--data", dir, "--scope", "publish", "--label", "a\nb"}, []string{"--label", "U+000A"}},
		{"add label too long", []string{"token", "add", "--data", dir, "--scope", "publish", "--label", strings.Repeat("x", 201)}, []string{"--label", "200"}},
		{"add extra arg", []string{"token", "add", "--data", dir, "--scope", "publish", "ci", "runner"}, []string{`"ci"`}},
		{"list extra arg", []string{"token", "list", "--data", dir, "x"}, []string{`"x"`}},
		{"revoke no id", []string{"token", "revoke", "--data", dir}, []string{"ID"}},
		{"revoke two ids", []string{"token", "revoke", "--data", dir, "aaaaaaaaaa", "bbbbbbbbbb"}, []string{`"bbbbbbbbbb"`}},
		{"revoke a secret", []string{"token", "revoke", "--data", dir, "hark_" + strings.Repeat("a", 52)}, []string{"ID, not the token"}},
		{"store and data", []string{"token", "list", "--data", dir, "--store", "nats://127.0.0.1:1"}, []string{"name two stores"}},
		{"bad store", []string{"token", "add", "--store", "redis://h:1", "--scope", "publish"}, []string{"want bolt:DIRECTORY"}},
		{"nats flag without nats", []string{"token", "list", "--data", dir, "--nats-creds", "x.creds"}, []string{"--nats-creds is for --store nats://"}},
		{"replicas on list", []string{"token", "list", "--store", "nats://127.0.0.1:1", "--nats-replicas", "3"}, []string{"nats-replicas"}},
		{"replicas out of range", []string{"token", "add", "--store", "nats://127.0.0.1:1", "--scope", "publish", "--nats-replicas", "9"}, []string{"--nats-replicas 9"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.args...)
			if code != 2 {
				t.Errorf("hark %q: exit status %d, want 2\nstdout: %s\nstderr: %s", tc.args, code, stdout, stderr)
			}
			if stdout != "" {
				t.Errorf("hark %q: stdout %q, want nothing", tc.args, stdout)
			}
			for _, w := range tc.inStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("hark %q: stderr does not say %q:\n%s", tc.args, w, stderr)
				}
			}
			if strings.Contains(stderr, "hark_"+strings.Repeat("a", 52)) {
				t.Errorf("hark %q: stderr repeats a secret:\n%s", tc.args, stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, store.TokensFileName)); err == nil {
		t.Errorf("a refused command wrote %s", store.TokensFileName)
	}
	// Help is not an error.
	if code, _, stderr := run(t, "token", "-h"); code != 0 || !strings.Contains(stderr, "revoke") {
		t.Errorf("hark token -h: exit status %d, stderr %s", code, stderr)
	}
	if code, _, stderr := run(t, "token", "add", "-h"); code != 0 || !strings.Contains(stderr, "-scope") {
		t.Errorf("hark token add -h: exit status %d, stderr %s", code, stderr)
	}
}

// TestTokenCorruptFile checks that a broken token file is reported, with
// its path, and left alone.
func TestTokenCorruptFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, store.TokensFileName)
	if err := os.WriteFile(path, []byte("{oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"token", "list", "--data", dir},
		{"token", "add", "--data", dir, "--scope", "publish"},
		{"token", "revoke", "--data", dir, "aaaaaaaaaa"},
	} {
		code, stdout, stderr := run(t, args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, path) {
			t.Errorf("hark %q on a broken file: exit status %d, stdout %q, stderr %s", args, code, stdout, stderr)
		}
	}
	if data, _ := os.ReadFile(path); string(data) != "{oops" {
		t.Errorf("the broken file was changed to %q", data)
	}
}
