package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/natstest"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/jetstream"
)

// openJetStream opens a JetStream store on ns, for one gateway; back is
// told each time it reconnects to NATS.
func openJetStream(t *testing.T, ns *natstest.Server) (st Store, back <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	w := &reconnects{ch: make(chan struct{}, 8)}
	st, err := jetstream.Open(ctx, jetstream.Options{URLs: ns.URL, Retention: store.Retention{}, Logger: slog.New(w)})
	if err != nil {
		t.Fatal(err)
	}
	return st, w.ch
}

// reconnects is a slog handler that tells ch of each "NATS store
// reconnected" line.
type reconnects struct{ ch chan struct{} }

func (r *reconnects) Enabled(context.Context, slog.Level) bool { return true }
func (r *reconnects) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *reconnects) WithGroup(string) slog.Handler            { return r }
func (r *reconnects) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == "NATS store reconnected" {
		select {
		case r.ch <- struct{}{}:
		default:
		}
	}
	return nil
}

// Two servers over one JetStream are one server to their clients: an ad
// published through one is announced by the other, with the id both
// tell. While NATS is down, publishing is refused with 503 and nothing
// else breaks: connected clients stay connected and answered; once NATS
// is back, publishing and announcing go on.
func TestGatewaysOverJetStream(t *testing.T) {
	ns := natstest.Start(t)
	sta, aBack := openJetStream(t, ns)
	stb, _ := openJetStream(t, ns)
	a := startServer(t, Config{Store: sta})
	b := startServer(t, Config{Store: stb})
	if a.Epoch() != b.Epoch() {
		t.Fatalf("epochs %q and %q: one store has one", a.Epoch(), b.Epoch())
	}
	api := apiOf(t, a)

	c := dial(t, b)
	c.Send("hello gw-client", "notif")
	c.Expect("OK", "OK")
	id, _ := publish(t, a, "classified", "Desk, 20 EUR")
	c.Expect("notif: classified")
	c.Send("stop_notif", "classified?", fmt.Sprintf("seen %d", id), "notif")
	c.Expect("OK", fmt.Sprintf("%d Desk, 20 EUR", id), "OK", "OK")

	ns.Stop()
	ans := api.post("/v1/classified", "during the outage")
	if ans.status != http.StatusServiceUnavailable || !strings.Contains(string(ans.body), "nothing was published") {
		t.Fatalf("publish while NATS is down: %d %s; want 503 saying nothing was published", ans.status, ans.body)
	}
	c.Send("stop_notif", "classified?", "notif") // b answers from its copy
	c.Expect("OK", fmt.Sprintf("%d Desk, 20 EUR", id), "OK")

	ns.Start()
	select {
	case <-aBack:
	case <-time.After(testTimeout):
		t.Fatal("gateway a did not reconnect to NATS")
	}
	next, _ := publish(t, a, "classified", "Lamp, 5 EUR")
	c.Expect("notif: classified")
	c.Send("stop_notif", "classified?", "notif")
	c.Expect("OK", fmt.Sprintf("%d Lamp, 5 EUR", next), "OK")
}
