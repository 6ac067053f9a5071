package cli_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/internal/natstest"
	"github.com/harkapp/hark/store"
)

// --store is checked before anything starts: a bad one is exit status 2,
// saying what to write.
func TestServeStoreFlagsChecked(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--store", "redis://h:1"}, "want bolt:DIRECTORY"},
		{[]string{"--store", "bolt:"}, "--store bolt: needs the store's directory"},
		{[]string{"--store", "bolt:" + dir, "--data", t.TempDir()}, "name two stores"},
		{[]string{"--store", "nats://a:4222,http://b:1"}, `every element is nats://HOST:PORT`},
		{[]string{"--store", "nats://a:4222", "--nats-replicas", "9"}, "--nats-replicas 9"},
		{[]string{"--nats-creds", "x.creds"}, "--nats-creds is for --store nats://"},
	} {
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--http", ""}, tc.args...)
		code, stdout, stderr := run(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("hark %q: exit status %d, stdout %q, stderr %q; want 2 and %q", args, code, stdout, stderr, tc.want)
		}
	}
}

// --store nats:// makes hark serve a gateway: two over one JetStream are
// one server to their clients, an ad published through one announced by
// the other with the id both tell. (The server package's gateway tests
// take outages and clusters; this one proves the flag's wiring.)
func TestServeGatewaysOverJetStream(t *testing.T) {
	ns := natstest.Start(t)
	a := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--store", ns.URL)
	b := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--store", ns.URL)

	c := linetest.Dial(t, b.proto)
	c.Send("hello gw-client", "notif")
	c.Expect("OK", "OK")
	ad := postItem(t, a.api, "classified", "Desk, 20 EUR")
	c.Expect("notif: classified")
	c.Send("stop_notif", "classified?", fmt.Sprintf("seen %d", ad.ID), "notif")
	c.Expect("OK", fmt.Sprintf("%d Desk, 20 EUR", ad.ID), "OK", "OK")
}

// hark token … --store nats:// manages the tokens gateways share: one
// added once is accepted by every `hark serve --store nats://` on the
// publish API, listed with its last use, and revoked once for all. A
// token file left in a gateway's --data is not used, and said so.
func TestTokensOverJetStream(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	ns := natstest.Start(t)
	code, stdout, stderr := run(t, "token", "add", "--store", ns.URL, "--scope", "publish", "--label", "ci")
	if code != 0 || !tokenRE.MatchString(stdout) {
		t.Fatalf("token add --store: exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	secret := strings.TrimSpace(stdout)
	if !strings.Contains(stderr, "HARK_TOKENS") || strings.Contains(stderr, secret) {
		t.Errorf("token add --store: stderr does not name the bucket, or shows the secret:\n%s", stderr)
	}
	data := t.TempDir()
	local, _, err := store.AddToken(data, store.ScopePublish, "left behind", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	a := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--auth", "--store", ns.URL, "--data", data)
	b := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--auth", "--store", ns.URL)
	for _, gw := range []*inProcess{a, b} {
		if st := postWithToken(t, gw.api, "Desk, 20 EUR", secret); st != http.StatusCreated {
			t.Errorf("publish with the shared token through %s: %d, want 201\nlog:\n%s", gw.api, st, gw.log)
		}
		if st := postWithToken(t, gw.api, "Desk, 20 EUR", ""); st != http.StatusUnauthorized {
			t.Errorf("publish without a token through %s: %d, want 401", gw.api, st)
		}
	}
	if st := postWithToken(t, a.api, "Desk, 20 EUR", local); st != http.StatusUnauthorized {
		t.Errorf("publish with the token of --data's file: %d, want 401: the store's tokens are used", st)
	}
	if !strings.Contains(a.log.String(), "does not use") || !strings.Contains(a.log.String(), store.TokensFileName) {
		t.Errorf("the gateway did not warn of the token file it does not use:\n%s", a.log)
	}

	code, stdout, stderr = run(t, "token", "list", "--store", ns.URL)
	if code != 0 || !strings.Contains(stdout, "ci") || !strings.Contains(stdout, "publish") || strings.Contains(stdout, "hark_") {
		t.Fatalf("token list --store: exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	id := strings.Fields(strings.Split(stdout, "\n")[1])[0]
	code, stdout, stderr = run(t, "token", "revoke", "--store", ns.URL, id)
	if code != 0 || !strings.Contains(stdout, "every hark serve of the store") {
		t.Fatalf("token revoke --store: exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if code, stdout, _ = run(t, "token", "list", "--store", ns.URL); code != 0 || !strings.Contains(stdout, "no tokens") {
		t.Errorf("token list --store after revoke: exit status %d, stdout %q", code, stdout)
	}
	if code, _, stderr = run(t, "token", "revoke", "--store", ns.URL, id); code != 1 || !strings.Contains(stderr, "no such token") {
		t.Errorf("revoking %s again: exit status %d, stderr %s", id, code, stderr)
	}
	// The token commands reach NATS as hark serve does, and say when they
	// cannot.
	if code, _, stderr = run(t, "token", "list", "--store", "nats://127.0.0.1:1"); code != 1 || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("token list with no NATS: exit status %d, stderr %s", code, stderr)
	}
}

// postWithToken publishes an ad through a publish API, with a Bearer
// token unless it is "", and returns the status.
func postWithToken(t *testing.T, base, value, token string) int {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: testTimeout}
	req, err := http.NewRequest(http.MethodPost, base+"/v1/classified", strings.NewReader(value))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", base, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
