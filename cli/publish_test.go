package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/harkapp/hark/internal/linetest"

	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

func TestPublishClassified(t *testing.T) {
	s := startServer(t)
	api := "http://" + s.HTTPAddr().String()

	notif := linetest.Dial(t, s.Addr().String())
	notif.Send("notif")
	notif.Expect("OK")
	ident := linetest.Dial(t, s.Addr().String())
	ident.Send("hello publish-test")
	ident.Expect("OK")

	const ad = "Vintage road bike, 56 cm frame: 240 €"
	code, stdout, stderr := run(t, "publish", "--http", api, "classified", ad)
	if code != 0 {
		t.Fatalf("publish: exit status %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stdout, "published classified ad as item ") || !strings.Contains(stdout, "1 connection(s) notified") {
		t.Errorf("publish: stdout %q does not say it published and notified one connection", stdout)
	}
	if stderr != "" {
		t.Errorf("publish: stderr %q, want nothing", stderr)
	}

	// The ad really arrived.
	notif.Expect(wire.NotifClassified)
	var id uint64
	if _, err := fmt.Sscanf(stdout[strings.Index(stdout, "item "):], "item %d;", &id); err != nil {
		t.Fatalf("no item id in %q: %v", stdout, err)
	}
	ident.Send("classified?")
	ident.Expect(fmt.Sprintf("%d %s", id, ad))
}

func TestPublishJSON(t *testing.T) {
	s := startServer(t)
	api := "http://" + s.HTTPAddr().String()
	c := linetest.Dial(t, s.Addr().String())

	const ad = "Piano lessons, Tuesday evenings"
	code, stdout, stderr := run(t, "publish", "--json", "--http", api+"/", "classified", ad)
	if code != 0 {
		t.Fatalf("publish --json: exit status %d, stderr %s", code, stderr)
	}
	var p server.Published
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("publish --json printed %q: %v", stdout, err)
	}
	if p.ID == 0 || p.Kind != wire.KindClassified || p.Value != ad || p.Time.IsZero() || p.Notified != 0 {
		t.Errorf("publish --json: %+v", p)
	}
	c.Send("classified?")
	c.Expect(ad)

	code, stdout, stderr = run(t, "publish", "--json", "--http", api, "random", "89765234756")
	if code != 0 {
		t.Fatalf("publish --json random: exit status %d, stderr %s", code, stderr)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || r["value"] != "89765234756" || r["kind"] != "random" {
		t.Errorf("publish --json random printed %q (%v)", stdout, err)
	}
	c.Send("random?")
	c.Expect("89765234756")
}

func TestPublishRandom(t *testing.T) {
	s := startServer(t)
	api := "http://" + s.HTTPAddr().String()
	c := linetest.Dial(t, s.Addr().String())

	code, stdout, stderr := run(t, "publish", "--http", api, "random", "42")
	if code != 0 || !strings.Contains(stdout, "published random number 42 as item") {
		t.Fatalf("publish random 42: exit status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	c.Send("random?")
	c.Expect("42")

	// Without a number the server draws one, and stdout says which.
	code, stdout, stderr = run(t, "publish", "--http", api, "random")
	if code != 0 {
		t.Fatalf("publish random: exit status %d, stderr %q", code, stderr)
	}
	var n string
	if _, err := fmt.Sscanf(stdout, "published random number %s as item", &n); err != nil {
		t.Fatalf("publish random printed %q: %v", stdout, err)
	}
	if _, err := wire.ParseRandom(n); err != nil || n == "42" {
		t.Errorf("drawn number %q: %v", n, err)
	}
	c.Send("random?")
	c.Expect(n)
}

func TestPublishUnreachable(t *testing.T) {
	code, stdout, stderr := run(t, "publish", "--http", "http://127.0.0.1:1", "random")
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	for _, w := range []string{"cannot reach the publish API", "127.0.0.1:1"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not say %q: %s", w, stderr)
		}
	}
}

// TestPublishWrongServer: a URL that answers, but not as hark does, is a
// failure (1) that says so, not a success.
func TestPublishWrongServer(t *testing.T) {
	s := startServer(t)
	// The protocol port speaks hark's line protocol, not HTTP.
	code, _, stderr := run(t, "publish", "--http", "http://"+s.Addr().String(), "random", "5")
	if code != 1 || stderr == "" {
		t.Errorf("publish to a non-HTTP port: exit status %d, stderr %q; want 1 and a message", code, stderr)
	}
}

// TestPublishRefusedByServer: an error answer from the API is a failure
// (1) whose message carries the server's explanation.
func TestPublishRefusedByServer(t *testing.T) {
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The handler of a server that has shut down answers 503.
	hs := httptest.NewServer(h)
	defer hs.Close()
	code, stdout, stderr := run(t, "publish", "--http", hs.URL, "classified", "too late")
	if code != 1 || stdout != "" {
		t.Errorf("exit status %d, stdout %q; want 1 and nothing", code, stdout)
	}
	for _, w := range []string{"refused", "503", "shutting down"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not say %q: %s", w, stderr)
		}
	}
}

// lossyProxy forwards HTTP connections to upstream, except that on the
// first one it swallows the answer and closes: the request reached the
// server, which stored the item, but the publisher never hears of it.
func lossyProxy(t *testing.T, upstream string) string {
	t.Helper()
	var first atomic.Bool
	first.Store(true)
	return "http://" + linetest.Serve(t, func(c net.Conn) {
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			return
		}
		defer u.Close()
		sent := make(chan struct{})
		go func() { defer close(sent); io.Copy(u, c); u.Close() }()
		if first.CompareAndSwap(true, false) {
			var b [1]byte
			u.Read(b[:]) // the server has answered: it stored the item
			c.Close()    // and the publisher never hears of it
		} else {
			io.Copy(c, u)
			c.Close()
		}
		<-sent
	})
}

// hark publish whose answer is lost retries once with the same
// Idempotency-Key, and the server answers with the item it stored the
// first time: one ad, not two.
func TestPublishRetriesOnceWithTheSameKey(t *testing.T) {
	s := startServer(t)
	code, stdout, stderr := run(t, "publish", "--http", lossyProxy(t, s.HTTPAddr().String()), "classified", "Only once, please")
	if code != 0 {
		t.Fatalf("publish: exit status %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stderr, "trying once more") {
		t.Errorf("stderr %q does not say it retried", stderr)
	}
	var id uint64
	if _, err := fmt.Sscanf(stdout[strings.Index(stdout, "item "):], "item %d;", &id); err != nil {
		t.Fatalf("no item id in %q: %v", stdout, err)
	}
	ident := linetest.Dial(t, s.Addr().String())
	ident.Send("hello counter", "classified?")
	ident.Expect("OK", fmt.Sprintf("%d Only once, please", id))
	h := health(t, "http://"+s.HTTPAddr().String())
	if h.Ads != 1 {
		t.Fatalf("%d ads stored after a retried publish; want 1", h.Ads)
	}
}

func health(t *testing.T, base string) server.Health {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: testTimeout}).Get(base + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h server.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestPublishArgumentsAsGoUsersWriteThem: "--" passes a value starting
// with "-", before or after the kind, and white space around a number is
// let go, as the API does.
func TestPublishArgumentsAsGoUsersWriteThem(t *testing.T) {
	s := startServer(t)
	api := "http://" + s.HTTPAddr().String()
	for _, tc := range []struct {
		args        []string
		kind, value string
	}{
		{[]string{"classified", "--", "-50% off"}, "classified", "-50% off"},
		{[]string{"--", "classified", "-50% off"}, "classified", "-50% off"},
		{[]string{"classified", "--", "--"}, "classified", "--"},
		{[]string{"random", " 42 "}, "random", "42"},
		{[]string{"random", "--", "\t7\n"}, "random", "7"},
	} {
		args := append([]string{"publish", "--http", api, "--json"}, tc.args...)
		code, stdout, stderr := run(t, args...)
		if code != 0 {
			t.Errorf("hark %q: exit status %d, stderr %s", args, code, stderr)
			continue
		}
		var p server.Published
		if err := json.Unmarshal([]byte(stdout), &p); err != nil || string(p.Kind) != tc.kind || p.Value != tc.value {
			t.Errorf("hark %q published %q, want %s %q (%v)", args, stdout, tc.kind, tc.value, err)
		}
	}
	// A flag after the kind is still a mistake, and the message says
	// where -- goes.
	code, _, stderr := run(t, "publish", "--http", api, "classified", "--json", "Bike")
	if code != 2 || !strings.Contains(stderr, "flags go before the kind") || !strings.Contains(stderr, "--") {
		t.Errorf("hark publish classified --json Bike: exit status %d, stderr %q", code, stderr)
	}
}

// A token goes in plaintext to localhost in any case, and to a loopback
// URL without a port: it stays on this machine. (hark publish refused
// both before, with a check of its own that the client did not share.)
func TestPublishTokenToLoopbackInPlaintext(t *testing.T) {
	var got atomic.Value
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization"))
		http.Error(w, "stub", http.StatusServiceUnavailable)
	}))
	defer hs.Close()
	_, port, err := net.SplitHostPort(hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HARK_TOKEN", "tok-loopback")
	code, _, stderr := run(t, "publish", "--http", "http://LOCALHOST:"+port, "random", "1")
	if code != 1 || strings.Contains(stderr, "not sending a token") {
		t.Fatalf("exit status %d, stderr %s; want 1, the stub's refusal", code, stderr)
	}
	if a, _ := got.Load().(string); a != "Bearer tok-loopback" {
		t.Errorf("the stub got Authorization %q", a)
	}
	// Nothing else is loopback: refused before anything is sent.
	for _, u := range []string{"http://192.0.2.1:6790", "http://localhost.example:6790", "http://[::]:6790"} {
		if code, _, stderr := run(t, "publish", "--http", u, "random", "1"); code != 2 || !strings.Contains(stderr, "not sending a token") {
			t.Errorf("--http %s: exit status %d, stderr %s; want 2, refused", u, code, stderr)
		}
	}
}
