package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/internal/natstest"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/jetstream"
	"github.com/harkapp/hark/wire"
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
	if ans.status != http.StatusServiceUnavailable || !strings.Contains(string(ans.body), "send the same request again later") {
		t.Fatalf("publish while NATS is down: %d %s; want 503 saying to send it again", ans.status, ans.body)
	}
	c.Send("stop_notif", "classified?", "notif") // b answers from its copy
	c.Expect("OK", fmt.Sprintf("%d Desk, 20 EUR", id), "OK")
	// A client b has in memory identifies on a second connection; one it
	// would have to read from the store is told to come back, not started
	// from now (which would lose what it has not read).
	again := dial(t, b)
	again.Send("hello gw-client")
	again.Expect("OK")
	other := dial(t, b)
	other.Send("hello gw-other v2")
	other.Expect(wire.ErrStoreUnavailable)
	other.ExpectEOF()

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

// eventually retries f, bounded, while a cluster settles (a leader being
// elected has no event a client can await).
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond) // the cluster's own pace
	}
}

// The whole of it on loopback: a 3-node JetStream cluster, two servers
// over it (gateways), three clients given both addresses. Ads published
// through the first reach every client; the first gateway shuts down
// (clients move to the other at once, told it is going away) and one
// NATS node dies; ads published through the second reach every client.
// Every client has every ad exactly once.
func TestGatewaysOverAJetStreamCluster(t *testing.T) {
	nodes := natstest.StartCluster(t, 3)
	urls := natstest.URLs(nodes)
	open := func() Store {
		var st Store
		eventually(t, "open the store on the cluster", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := jetstream.Open(ctx, jetstream.Options{URLs: urls, Replicas: 3})
			st = s
			return err
		})
		return st
	}
	a := startServer(t, Config{Store: open()})
	b := startServer(t, Config{Store: open()})
	addrs := a.Addr().String() + "," + b.Addr().String()

	const clients, each = 3, 5
	got := make([]chan string, clients)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := range clients {
		got[i] = make(chan string, 4*each)
		sess := netclient.NewSession(netclient.SessionOptions{Addr: addrs, ClientID: fmt.Sprintf("gw-client-%d", i),
			MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
		wg.Add(2)
		go func() { defer wg.Done(); _ = sess.Run(ctx) }()
		go func() {
			defer wg.Done()
			for ev := range sess.Events() {
				if ev.Item != nil && ev.Item.Kind == wire.KindClassified && !ev.Item.Current {
					got[i] <- ev.Item.Value
				}
			}
		}()
	}
	// Every client has connected (to a, the first address) when a count
	// of them shows there.
	eventually(t, "the clients connected", func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.clients) < clients {
			return fmt.Errorf("%d clients on the first gateway", len(a.clients))
		}
		return nil
	})
	expect := func(from int) {
		t.Helper()
		for i := range clients {
			seen := map[string]bool{}
			for len(seen) < each {
				select {
				case v := <-got[i]:
					if seen[v] {
						t.Fatalf("client %d got %q twice", i, v)
					}
					seen[v] = true
				case <-time.After(30 * time.Second):
					t.Fatalf("client %d has %d of ads %d to %d", i, len(seen), from, from+each-1)
				}
			}
			for n := from; n < from+each; n++ {
				if !seen[fmt.Sprint("ad ", n)] {
					t.Fatalf("client %d lacks ad %d: %v", i, n, seen)
				}
			}
		}
	}
	for n := range each {
		publish(t, a, wire.KindClassified, fmt.Sprint("ad ", n))
	}
	expect(0)

	stopServer(t, a) // going away: the clients move to b at once
	nodes[2].Stop()
	for n := each; n < 2*each; n++ {
		eventually(t, "publish through b with a node down", func() error {
			_, _, err := b.Publish(context.Background(), wire.KindClassified, fmt.Sprint("ad ", n))
			return err
		})
	}
	expect(each)
	for i := range clients {
		select {
		case v := <-got[i]:
			t.Fatalf("client %d got %q beyond the %d ads", i, v, 2*each)
		default:
		}
	}
}

// Gateways given their JetStream store's tokens (Config.Tokens, with no
// data directory) share them: a token added once is accepted by both, on
// the protocol and the publish API; revoked once, the connections it
// authenticated end on each gateway.
func TestGatewaysShareTokens(t *testing.T) {
	ns := natstest.Start(t)
	hook, waitFor := watched()
	gateway := func() *Server {
		t.Helper()
		st, _ := openJetStream(t, ns)
		toks := st.(*jetstream.Store).Tokens()
		s, err := Start(Config{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Store: st, Tokens: toks, Auth: true, onWatch: hook, portable: portableIO})
		if err != nil {
			t.Fatalf("start gateway: %v", err)
		}
		t.Cleanup(func() { stopServer(t, s) })
		return s
	}
	a, b := gateway(), gateway()
	opts := jetstream.Options{URLs: ns.URL}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sub, tok, err := jetstream.AddToken(ctx, opts, store.ScopeSubscribe, "desk", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := jetstream.AddToken(ctx, opts, store.ScopePublish, "ci", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var conns []*linetest.Conn
	for _, s := range []*Server{a, b} {
		waitFor(t, "a gateway to see the tokens", func() bool {
			_, e1 := s.tokens.Check(sub, store.ScopeSubscribe, time.Now())
			_, e2 := s.tokens.Check(pub, store.ScopePublish, time.Now())
			return e1 == nil && e2 == nil
		})
		c := dial(t, s)
		c.Send("auth " + sub)
		c.Expect("OK")
		conns = append(conns, c)
		if ans := apiOf(t, s).do(http.MethodPost, "/v1/classified", "for token holders", "Authorization", "Bearer "+pub); ans.status != http.StatusCreated {
			t.Fatalf("publish with the shared token: %d %s", ans.status, ans.body)
		}
		if ans := apiOf(t, s).post("/v1/classified", "no token"); ans.status != http.StatusUnauthorized {
			t.Fatalf("publish without a token: %d %s, want 401", ans.status, ans.body)
		}
	}
	if _, err := jetstream.RevokeToken(ctx, opts, tok.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		c.ExpectEOF() // ended by the revocation, without a line
	}
	for _, s := range []*Server{a, b} {
		c := dial(t, s)
		c.Send("auth " + sub)
		c.Expect(wire.ErrAuthFailed)
		c.ExpectEOF()
	}
}
