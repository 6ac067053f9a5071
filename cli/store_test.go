package cli_test

import (
	"fmt"
	"strings"
	"testing"

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
