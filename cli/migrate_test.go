package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/internal/natstest"
	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/jetstream"
	"github.com/harkapp/hark/wire"
)

// An operator moves a hark serve to gateways: stop it, hark store
// migrate, start hark serve --store nats://. An identified client that
// read some ads before comes back to a gateway and gets exactly the ones
// it had not read, with the ids it knew, under the epoch it knew (no
// repeat, no loss), and the next ad continues the ids. The old store is
// left byte for byte as it was.
func TestStoreMigrateKeepsPositions(t *testing.T) {
	ns := natstest.Start(t)
	dir := t.TempDir()
	single := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", dir)
	c := linetest.Dial(t, single.proto)
	before := c.Identify("mover")
	ad1 := postItem(t, single.api, "classified", "Bright two-room flat")
	postItem(t, single.api, "random", "7") // replaced below: its id is a gap
	ad2 := postItem(t, single.api, "classified", "Bike for sale €")
	r := postItem(t, single.api, "random", "89765234756")
	ad3 := postItem(t, single.api, "classified", "Piano")
	ad4 := postItem(t, single.api, "classified", "Desk, 20 EUR")
	c.Send("classified?", "classified?")
	c.Expect(itemLine(ad1), itemLine(ad2))
	c.Send(fmt.Sprintf("seen %d", ad2.ID))
	c.Expect("OK")
	if err := single.stop(t); err != nil {
		t.Fatalf("stop the single server: %v", err)
	}
	code, secret, stderr := run(t, "token", "add", "--data", dir, "--scope", "publish", "--label", "ci")
	if code != 0 {
		t.Fatalf("token add: exit status %d: %s", code, stderr)
	}
	secret = strings.TrimSpace(secret)
	file := filepath.Join(dir, store.FileName)
	was, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := run(t, "store", "migrate", "--from", "bolt:"+dir, "--to", ns.URL)
	if code != 0 {
		t.Fatalf("migrate: exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{
		"tokens    1 moved",
		"epoch     " + before.Epoch + ", kept",
		fmt.Sprintf("items     5 (4 ads and the latest random number), ids %d to %d", ad1.ID, ad4.ID),
		fmt.Sprintf("last id   %d: the next item gets %d", ad4.ID, ad4.ID+1),
		"clients   1, with their read positions",
		"idempotency keys: 0",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("migrate's output does not say %q:\n%s", want, stdout)
		}
	}
	if is, err := os.ReadFile(file); err != nil || !bytes.Equal(was, is) {
		t.Errorf("the bbolt store changed in the migration (%v)", err)
	}

	// The token's secret works against the gateways' store.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	js, err := jetstream.Open(ctx, jetstream.Options{URLs: ns.URL})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := js.Tokens().Check(secret, store.ScopePublish, time.Now()); err != nil || tok.Label != "ci" {
		t.Errorf("the moved token on the gateways' store: %+v, %v", tok, err)
	}
	js.Close()

	gw := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--store", ns.URL)
	back := linetest.Dial(t, gw.proto)
	back.Send("hello mover " + wire.HelloV2)
	h, err := wire.ParseHello(back.Line())
	if err != nil {
		t.Fatal(err)
	}
	if h.Epoch != before.Epoch || h.New || h.Latest != ad4.ID {
		t.Errorf("hello on the gateway: epoch %q, new %v, latest %d; want %q, known, %d", h.Epoch, h.New, h.Latest, before.Epoch, ad4.ID)
	}
	back.Send("classified?", "classified?", "classified?", "random?")
	back.Expect(itemLine(ad3), itemLine(ad4), itemLine(ad4), itemLine(r))
	ad5 := postItem(t, gw.api, "classified", "Lamp")
	if ad5.ID != ad4.ID+1 {
		t.Errorf("the first ad on the gateway got id %d, want %d", ad5.ID, ad4.ID+1)
	}
	back.Send("classified?")
	back.Expect(itemLine(ad5))
}

// migrate refuses a store a hark serve runs on (touching nothing in
// NATS), and a JetStream store that is not empty, such as one it already
// filled.
func TestStoreMigrateRefuses(t *testing.T) {
	ns := natstest.Start(t)
	dir := t.TempDir()
	single := startServe(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", dir)
	ad := postItem(t, single.api, "classified", "an ad")
	code, stdout, stderr := run(t, "store", "migrate", "--from", "bolt:"+dir, "--to", ns.URL)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "in use") || !strings.Contains(stderr, "stop the hark serve that runs on it") {
		t.Errorf("migrate from a running server: exit status %d, stdout %q, stderr %q; want 1 and to stop it", code, stdout, stderr)
	}
	if err := single.stop(t); err != nil {
		t.Fatal(err)
	}

	// Nothing was made in NATS: the migration goes through now.
	if code, stdout, stderr := run(t, "store", "migrate", "--from", "bolt:"+dir, "--to", ns.URL); code != 0 {
		t.Fatalf("migrate: exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, "store", "migrate", "--from", "bolt:"+dir, "--to", ns.URL)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "not empty") || !strings.Contains(stderr, fmt.Sprintf("holds items up to id %d", ad.ID)) {
		t.Errorf("a second migrate: exit status %d, stdout %q, stderr %q; want 1 and not empty", code, stdout, stderr)
	}

	missing := filepath.Join(t.TempDir(), "nothing")
	code, _, stderr = run(t, "store", "migrate", "--from", "bolt:"+missing, "--to", ns.URL)
	if code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("migrate from nowhere: exit status %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("migrate made the directory it was to read")
	}
}

// A mistake on the command line is exit status 2 and says what to type.
func TestStoreMigrateFlags(t *testing.T) {
	if code, stdout, stderr := run(t, "store", "migrate", "-h"); code != 0 || stdout != "" || !strings.Contains(stderr, "Usage: hark store migrate --from bolt:DIR --to nats://") {
		t.Errorf("hark store migrate -h: exit status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "say migrate"},
		{[]string{"frob"}, `unknown subcommand "frob"`},
		{[]string{"migrate"}, "--from is missing: give the store to move, --from bolt:"},
		{[]string{"migrate", "--from", "/var/lib/hark", "--to", "nats://a:1"}, `--from "/var/lib/hark": want bolt:DIR`},
		{[]string{"migrate", "--from", "bolt:", "--to", "nats://a:1"}, `--from "bolt:": want bolt:DIR`},
		{[]string{"migrate", "--from", "bolt:/x"}, "--to is missing"},
		{[]string{"migrate", "--from", "bolt:/x", "--to", "redis://h:1"}, `--to "redis://h:1": want nats://HOST:PORT`},
		{[]string{"migrate", "--from", "bolt:/x", "--to", "nats://a:1,http://b:1"}, `--to "nats://a:1,http://b:1": every element is nats://HOST:PORT`},
		{[]string{"migrate", "--from", "bolt:/x", "--to", "nats://a:1", "--nats-replicas", "9"}, "--nats-replicas 9"},
		{[]string{"migrate", "--from", "bolt:/x", "--to", "nats://a:1", "extra"}, `unexpected argument "extra"`},
		{[]string{"migrate", "--bogus"}, "flag provided but not defined: -bogus"},
	} {
		args := append([]string{"store"}, tc.args...)
		code, stdout, stderr := run(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("hark %q: exit status %d, stdout %q, stderr %q; want 2 and %q", args, code, stdout, stderr, tc.want)
		}
	}
}
