package cli_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/internal/natstest"
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

// Two hark serve over one JetStream are one server to their clients: an
// ad published through one is announced by the other, with the id and
// epoch both tell. While NATS is down, publishing is refused with 503
// and nothing else breaks: connected clients stay connected and answered,
// and once NATS is back, publishing and announcing go on.
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

	ns.Stop()
	resp, err := http.Post(a.api+"/v1/classified", "text/plain", strings.NewReader("during the outage"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("publish while NATS is down: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	c.Send("stop_notif", "classified?", "notif") // b still answers from its copy
	c.Expect("OK", fmt.Sprintf("%d Desk, 20 EUR", ad.ID), "OK")

	back := &logWaiter{sub: "NATS store reconnected", seen: make(chan struct{})}
	a.log.tee(back)
	ns.Start()
	select {
	case <-back.seen:
	case <-time.After(testTimeout):
		t.Fatalf("gateway a did not reconnect to NATS:\n%s", a.log)
	}
	next := postItem(t, a.api, "classified", "Lamp, 5 EUR")
	c.Expect("notif: classified")
	c.Send("stop_notif", "classified?", "notif")
	c.Expect("OK", fmt.Sprintf("%d Lamp, 5 EUR", next.ID), "OK")
}

// logWaiter closes seen once a write holds sub.
type logWaiter struct {
	sub  string
	seen chan struct{}
	once sync.Once
}

func (w *logWaiter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(w.sub)) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}
