package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/natstest"
)

// The deployment of docs/DEPLOYING.md on loopback, every part a real
// process: three nats-server (Debian's package) in one JetStream cluster,
// three `hark serve --store nats://` gateways over it, and three
// `hark watch` clients, each given the three gateways, starting on a
// different one. Ads published through the first gateway reach every
// client. Then the first gateway's process and one NATS node are killed
// (SIGKILL: no goodbye), and more ads are published through the second.
// Every client, the first's failing over, prints every ad exactly once.
func TestGatewayProcessesOverANATSCluster(t *testing.T) {
	exe := natstest.Exe(t)
	nodes := natstest.StartProcessCluster(t, exe, 3)
	urls := natstest.ProcURLs(nodes)

	gw := make([]*harkProc, 3)
	for i := range gw {
		gw[i] = startHark(t, t.TempDir(), "--store", urls, "--nats-replicas", "3")
	}
	const clients, each = 3, 5
	watches := make([]*watchProc, clients)
	for i := range watches {
		// Client i starts on gateway i, then the next ones.
		var list []string
		for j := range gw {
			list = append(list, gw[(i+j)%len(gw)].proto)
		}
		w := startWatch(t, t.TempDir(), "--json", "--server", strings.Join(list, ","))
		t.Cleanup(func() { w.stop() })
		if !w.connected(testTimeout) {
			t.Fatalf("hark watch %d did not connect to %s", i, list[0])
		}
		watches[i] = w
	}
	expect := func(from int) {
		t.Helper()
		for i, w := range watches {
			seen := map[string]bool{}
			timeout := time.After(30 * time.Second)
			for len(seen) < each {
				select {
				case l := <-w.out.ch:
					var it struct{ Kind, Value string }
					if err := json.Unmarshal([]byte(l), &it); err != nil {
						t.Fatalf("client %d printed %q: %v", i, l, err)
					}
					if it.Kind != "classified" {
						continue
					}
					if seen[it.Value] {
						t.Fatalf("client %d printed %q twice", i, it.Value)
					}
					seen[it.Value] = true
				case <-timeout:
					t.Fatalf("client %d printed %d of ads %d to %d: %v\nits log:\n%s\n%s", i, len(seen), from, from+each-1, seen, drain(w.logs), gatewayLogs(gw))
				}
			}
			for n := from; n < from+each; n++ {
				if !seen[fmt.Sprint("ad ", n)] {
					t.Fatalf("client %d printed %v, not ad %d", i, seen, n)
				}
			}
		}
	}
	for n := range each {
		postItem(t, gw[0].api, "classified", fmt.Sprint("ad ", n))
	}
	expect(0)

	gw[0].kill9(t)
	nodes[2].Kill()
	for n := each; n < 2*each; n++ {
		publishRetrying(t, gw[1], fmt.Sprint("ad ", n))
	}
	expect(each)
	for i, w := range watches {
		select {
		case l := <-w.out.ch:
			t.Fatalf("client %d printed %s beyond the %d ads", i, l, 2*each)
		default:
		}
	}
}

// publishRetrying publishes an ad, again while the gateway answers 503:
// a NATS cluster that lost a node elects new leaders in its own time.
func publishRetrying(t *testing.T, gw *harkProc, value string) {
	t.Helper()
	api := gw.api
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(api+"/v1/classified", "text/plain", strings.NewReader(value))
		if err != nil {
			t.Fatalf("publish %q: %v\nthe gateway's log:\n%s", value, err, gw.log)
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusCreated:
			return
		case resp.StatusCode != http.StatusServiceUnavailable:
			t.Fatalf("publish %q: %s", value, resp.Status)
		case time.Now().After(deadline):
			t.Fatalf("publish %q: still 503 after 30 s", value)
		}
		time.Sleep(200 * time.Millisecond) // the cluster's own pace, as Retry-After says
	}
}

// drain returns the lines l holds now.
func drain(l *lines) string {
	var b strings.Builder
	for {
		select {
		case s := <-l.ch:
			b.WriteString(s + "\n")
		default:
			return b.String()
		}
	}
}

// gatewayLogs is what the gateways logged, for a failure's message.
func gatewayLogs(gw []*harkProc) string {
	var b strings.Builder
	for i, g := range gw {
		fmt.Fprintf(&b, "gateway %d (%s):\n%s\n", i, g.proto, g.log)
	}
	return b.String()
}
