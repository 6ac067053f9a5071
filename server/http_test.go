package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/wire"
)

// httpAPI is a client of the publish API for tests. It owns its transport,
// so that no keep-alive goroutine outlives the test (goleak).
type httpAPI struct {
	t    testing.TB
	base string
	hc   *http.Client
}

func newHTTPAPI(t testing.TB, base string) *httpAPI {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &httpAPI{t: t, base: base, hc: &http.Client{Transport: tr, Timeout: testTimeout}}
}

// apiOf returns a client of s's publish API, on its real listener.
func apiOf(t testing.TB, s *Server) *httpAPI {
	t.Helper()
	a := s.HTTPAddr()
	if a == nil {
		t.Fatal("the server has no publish API address")
	}
	return newHTTPAPI(t, "http://"+a.String())
}

type httpAnswer struct {
	status   int
	ctype    string
	allow    string
	body     []byte
	replayed string // the Idempotent-Replayed header
}

func (a *httpAPI) do(method, path, body string, header ...string) httpAnswer {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return httpAnswer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), allow: resp.Header.Get("Allow"), body: raw,
		replayed: resp.Header.Get("Idempotent-Replayed")}
}

func (a *httpAPI) post(path, body string) httpAnswer {
	a.t.Helper()
	return a.do(http.MethodPost, path, body)
}

// published posts an item, requires 201 with a well-formed Published object,
// and returns it.
func (a *httpAPI) published(kind wire.Kind, body string) Published {
	a.t.Helper()
	ans := a.post("/v1/"+string(kind), body)
	if ans.status != http.StatusCreated {
		a.t.Fatalf("POST /v1/%s %q: status %d, want 201; body %s", kind, clipBody(body), ans.status, ans.body)
	}
	if ans.ctype != "application/json" {
		a.t.Fatalf("POST /v1/%s: Content-Type %q, want application/json", kind, ans.ctype)
	}
	// Exactly these fields, no more, no fewer.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(ans.body, &fields); err != nil {
		a.t.Fatalf("POST /v1/%s: body %s is not a JSON object: %v", kind, ans.body, err)
	}
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got, want := strings.Join(keys, ","), "id,kind,notified,time,value"; got != want {
		a.t.Fatalf("POST /v1/%s: fields %s, want %s; body %s", kind, got, want, ans.body)
	}
	var p Published
	if err := json.Unmarshal(ans.body, &p); err != nil {
		a.t.Fatalf("POST /v1/%s: body %s: %v", kind, ans.body, err)
	}
	if p.ID == 0 || p.Kind != kind || p.Time.IsZero() {
		a.t.Fatalf("POST /v1/%s: incomplete answer %s", kind, ans.body)
	}
	return p
}

// refused posts, requires status with a JSON {"error": ...} that contains
// every one of wantInError, and returns the error text.
func (a *httpAPI) refused(path, body string, status int, wantInError ...string) string {
	a.t.Helper()
	ans := a.post(path, body)
	return a.checkError(ans, "POST "+path+" "+fmt.Sprintf("%q", clipBody(body)), status, wantInError...)
}

func (a *httpAPI) checkError(ans httpAnswer, what string, status int, wantInError ...string) string {
	a.t.Helper()
	if ans.status != status {
		a.t.Fatalf("%s: status %d, want %d; body %s", what, ans.status, status, ans.body)
	}
	if ans.ctype != "application/json" {
		a.t.Fatalf("%s: Content-Type %q, want application/json; body %s", what, ans.ctype, ans.body)
	}
	var e map[string]string
	if err := json.Unmarshal(ans.body, &e); err != nil || len(e) != 1 || e["error"] == "" {
		a.t.Fatalf("%s: body %s, want exactly {\"error\": \"...\"}", what, ans.body)
	}
	for _, w := range wantInError {
		if !strings.Contains(e["error"], w) {
			a.t.Errorf("%s: error %q does not say %q", what, e["error"], w)
		}
	}
	return e["error"]
}

func (a *httpAPI) health() Health {
	a.t.Helper()
	ans := a.do(http.MethodGet, "/v1/health", "")
	if ans.status != http.StatusOK || ans.ctype != "application/json" {
		a.t.Fatalf("GET /v1/health: status %d, Content-Type %q; body %s", ans.status, ans.ctype, ans.body)
	}
	var h Health
	if err := json.Unmarshal(ans.body, &h); err != nil {
		a.t.Fatalf("GET /v1/health: body %s: %v", ans.body, err)
	}
	return h
}

func clipBody(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func TestHTTPPublishClassified(t *testing.T) {
	s := startServer(t, Config{})
	api := apiOf(t, s)

	notif := dialNotifying(t, s)
	ident := dial(t, s)
	ident.Send("hello http-test")
	ident.Expect("OK")

	const ad = "Nice appart in the 11e. — 1 200 €"
	before := time.Now()
	p := api.published(wire.KindClassified, ad)
	after := time.Now()
	if p.Value != ad {
		t.Errorf("value %q, want %q", p.Value, ad)
	}
	if p.Notified != 1 {
		t.Errorf("notified %d, want 1 (one connection in notification mode)", p.Notified)
	}
	if p.Time.Before(before.Add(-time.Second)) || p.Time.After(after.Add(time.Second)) {
		t.Errorf("time %v is not the time of publication (between %v and %v)", p.Time, before, after)
	}
	if p.Time.Location() != time.UTC {
		t.Errorf("time %v is not in UTC", p.Time)
	}
	notif.Expect(wire.NotifClassified)

	// The id in the answer is the item's id on the wire.
	ident.Send("classified?")
	ident.Expect(fmt.Sprintf("%d %s", p.ID, ad))
	notif.Send("stop_notif", "classified?")
	notif.Expect("OK", ad)
}

func TestHTTPPublishRandom(t *testing.T) {
	s := startServer(t, Config{})
	api := apiOf(t, s)
	c := dial(t, s)

	p := api.published(wire.KindRandom, "42")
	if p.Value != "42" || p.Notified != 0 {
		t.Errorf("POST 42: value %q notified %d, want \"42\" and 0", p.Value, p.Notified)
	}
	c.Send("random?")
	c.Expect("42")

	// Numbers are trimmed.
	p = api.published(wire.KindRandom, " 42\n")
	if p.Value != "42" {
		t.Errorf("POST %q: value %q, want \"42\"", " 42\n", p.Value)
	}

	// The largest number the protocol carries is accepted verbatim: it
	// does not fit a float64, which is why value is a string.
	p = api.published(wire.KindRandom, "18446744073709551615")
	if p.Value != "18446744073709551615" {
		t.Errorf("POST 2^64-1: value %q", p.Value)
	}

	// An empty body draws a number.
	p = api.published(wire.KindRandom, "")
	if _, err := wire.ParseRandom(p.Value); err != nil {
		t.Fatalf("drawn number %q: %v", p.Value, err)
	}
	c.Send("random?")
	c.Expect(p.Value)
}

func TestHTTPRandomRefusals(t *testing.T) {
	s := startServer(t, Config{})
	api := apiOf(t, s)
	p := api.published(wire.KindRandom, "7")
	c := dial(t, s)

	for _, body := range []string{"abc", "-1", "+1", "1.5", "042", "1 2", "99999999999999999999", "18446744073709551616"} {
		api.refused("/v1/random", body, http.StatusBadRequest, "decimal integer")
	}
	if h := api.health(); h.LatestID != p.ID {
		t.Errorf("latest_id %d after refusals, want %d: a refused number was published", h.LatestID, p.ID)
	}
	c.Send("random?")
	c.Expect("7")
}

func TestHTTPClassifiedRefusals(t *testing.T) {
	s := startServer(t, Config{})
	api := apiOf(t, s)
	base := api.published(wire.KindClassified, "Baseline ad")
	// Connected after the baseline: for this connection nothing is unread,
	// so classified? answers the most recent ad. Had a refused ad been
	// published, it would be unread and answered instead.
	c := dialNotifying(t, s)

	cases := []struct {
		name, body string
		status     int
		says       []string
	}{
		{"empty", "", 400, []string{"empty"}},
		{"1001 bytes", strings.Repeat("a", 1001), 400, []string{"1000 bytes", "1001"}},
		{"newline inside", "two\nlines", 400, []string{"one line", "U+000A"}},
		{"CRLF at the end", "an ad\r\n", 400, []string{"one line", "U+000D"}},
		{"LF at the end", "an ad\n", 400, []string{"one line", "U+000A"}},
		{"tab", "col1\tcol2", 400, []string{"control", "U+0009"}},
		{"NUL", "nul\x00byte", 400, []string{"control", "U+0000"}},
		{"line separator", "a\u2028b", 400, []string{"U+2028"}},
		{"OK", "OK", 400, []string{"protocol line"}},
		{"ERR", "ERR x", 400, []string{"protocol line"}},
		{"notif", "notif: random", 400, []string{"protocol line"}},
		{"invalid UTF-8", "caf\xe9", 400, []string{"UTF-8", "0xe9"}},
		{"truncated UTF-8", "caf\xc3", 400, []string{"UTF-8"}},
		{"64 KiB exactly", strings.Repeat("a", 64<<10), 400, []string{"1000 bytes", "65536"}},
		{"over 64 KiB", strings.Repeat("a", 64<<10+1), 413, []string{"64 KiB"}},
		{"1 MiB", strings.Repeat("a", 1<<20), 413, []string{"64 KiB"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newHTTPAPI(t, api.base)
			a.refused("/v1/classified", tc.body, tc.status, tc.says...)
		})
	}

	h := api.health()
	if h.LatestID != base.ID || h.Ads != 1 {
		t.Errorf("after refusals: latest_id %d, ads %d; want %d and 1", h.LatestID, h.Ads, base.ID)
	}
	// No notification was pushed either: the next line is the answer.
	c.Send("classified?")
	c.Expect("Baseline ad")
}

func TestHTTPHealth(t *testing.T) {
	s := startServer(t, Config{})
	api := apiOf(t, s)

	h := api.health()
	if h.Status != "ok" || h.Connections != 0 || h.Notifying != 0 || h.Ads != 0 {
		t.Errorf("idle server: %+v", h)
	}
	if h.LatestID == 0 {
		t.Errorf("latest_id 0: the server draws a first random number at start")
	}

	plain := dial(t, s)
	plain.Send("random?") // a round trip: the connection is registered
	plain.Line()
	notif := dialNotifying(t, s)

	ad := api.published(wire.KindClassified, "For sale")
	notif.Expect(wire.NotifClassified)
	h = api.health()
	want := Health{Status: "ok", Connections: 2, Notifying: 1, Ads: 1, LatestID: ad.ID, Epoch: s.st.Epoch()}
	if h != want {
		t.Errorf("health %+v, want %+v", h, want)
	}

	// Counts follow connections going away.
	notif.NC.Close()
	deadline := time.Now().Add(testTimeout)
	for {
		h = api.health()
		if h.Connections == 1 && h.Notifying == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection is still counted: %+v", h)
		}
		// No sleep: each poll is an HTTP round trip.
	}
}

func TestHTTPUnknownEndpoints(t *testing.T) {
	s := startServer(t, Config{})
	api := apiOf(t, s)

	for _, path := range []string{"/", "/v1", "/v1/nonsense", "/v2/classified", "/v1/classified/extra"} {
		ans := api.do(http.MethodPost, path, "x")
		api.checkError(ans, "POST "+path, http.StatusNotFound, "/v1/classified")
	}
	ans := api.do(http.MethodGet, "/nope", "")
	api.checkError(ans, "GET /nope", http.StatusNotFound)

	// A known endpoint with the wrong method is 405, not 404, and still
	// answers JSON, with the Allow header HTTP requires on a 405.
	for _, rq := range []struct{ method, path, allow string }{
		{http.MethodGet, "/v1/classified", "POST"},
		{http.MethodGet, "/v1/random", "POST"},
		{http.MethodPut, "/v1/classified", "POST"},
		{http.MethodPost, "/v1/health", "GET"},
	} {
		t.Run(rq.method+rq.path, func(t *testing.T) {
			a := newHTTPAPI(t, api.base)
			ans := a.do(rq.method, rq.path, "")
			a.checkError(ans, rq.method+" "+rq.path, http.StatusMethodNotAllowed)
			if !strings.Contains(ans.allow, rq.allow) {
				t.Errorf("%s %s: Allow %q, want it to list %s", rq.method, rq.path, ans.allow, rq.allow)
			}
		})
	}

	// None of that published anything.
	if h := api.health(); h.Ads != 0 {
		t.Errorf("ads %d after requests to unknown endpoints", h.Ads)
	}
}

func TestPublishAfterShutdown(t *testing.T) {
	s := startServer(t, Config{})
	h := s.Handler()
	stopServer(t, s)

	_, _, err := s.Publish(context.Background(), wire.KindClassified, "too late")
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Shutdown: %v, want ErrClosed", err)
	}
	_, _, err = s.Publish(context.Background(), wire.KindRandom, "1")
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish random after Shutdown: %v, want ErrClosed", err)
	}

	// The handler, still reachable through another listener, says so: 503.
	hs := httptest.NewServer(h)
	defer hs.Close()
	api := newHTTPAPI(t, hs.URL)
	api.refused("/v1/classified", "too late", http.StatusServiceUnavailable, "shutting down")
}

// A publisher whose answer was lost cannot know whether the ad was
// stored: it repeats the request with the same Idempotency-Key and gets
// the first item back, not a second one.
func TestHTTPIdempotencyKey(t *testing.T) {
	s := startServer(t, Config{})
	api := apiOf(t, s)
	notif := dialNotifying(t, s)

	first := api.do(http.MethodPost, "/v1/classified", "Bike for sale", "Idempotency-Key", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`)
	var p1 Published
	if first.status != http.StatusCreated || json.Unmarshal(first.body, &p1) != nil || p1.Replayed || first.replayed != "" {
		t.Fatalf("first POST: %d %s (replayed header %q)", first.status, first.body, first.replayed)
	}
	notif.Expect(wire.NotifClassified)
	again := api.do(http.MethodPost, "/v1/classified", "Bike for sale", "Idempotency-Key", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`)
	var p2 Published
	if again.status != http.StatusCreated || json.Unmarshal(again.body, &p2) != nil {
		t.Fatalf("repeated POST: %d %s", again.status, again.body)
	}
	if p2.ID != p1.ID || p2.Value != p1.Value || !p2.Time.Equal(p1.Time) || !p2.Replayed || p2.Notified != 0 || again.replayed != "true" {
		t.Fatalf("repeated POST answered %+v (header %q); want item %d again, replayed, nobody notified", p2, again.replayed, p1.ID)
	}
	if h := api.health(); h.Ads != 1 {
		t.Fatalf("%d ads stored after a repeated key; want 1", h.Ads)
	}
	// A bare token is a key too; without a key, a repeat is a new item.
	bare := api.published(wire.KindClassified, "Bike for sale")
	if bare.ID == p1.ID {
		t.Fatal("a POST without a key replayed another's item")
	}

	// The same key for another item: refused, nothing stored.
	other := api.do(http.MethodPost, "/v1/classified", "Piano lessons", "Idempotency-Key", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`)
	if other.status != http.StatusUnprocessableEntity || !strings.Contains(string(other.body), "another item") {
		t.Fatalf("a reused key: %d %s; want 422", other.status, other.body)
	}
	// A random number the server draws: the retry gets the same number.
	r1 := api.do(http.MethodPost, "/v1/random", "", "Idempotency-Key", "draw-1")
	r2 := api.do(http.MethodPost, "/v1/random", "", "Idempotency-Key", "draw-1")
	var d1, d2 Published
	if json.Unmarshal(r1.body, &d1) != nil || json.Unmarshal(r2.body, &d2) != nil || d1.ID != d2.ID || d1.Value != d2.Value || !d2.Replayed {
		t.Fatalf("a drawn number and its retry: %s, %s", r1.body, r2.body)
	}
	for _, bad := range [][]string{
		{"Idempotency-Key", `""`},
		{"Idempotency-Key", strings.Repeat("k", 256)},
		{"Idempotency-Key", "has space"},
		{"Idempotency-Key", "a", "Idempotency-Key", "b"},
	} {
		if a := api.do(http.MethodPost, "/v1/classified", "x", bad...); a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "Idempotency-Key") {
			t.Errorf("key %q: %d %s; want 400 naming the header", bad, a.status, a.body)
		}
	}
	if h := api.health(); h.Ads != 2 {
		t.Fatalf("%d ads stored; want 2", h.Ads)
	}
}
