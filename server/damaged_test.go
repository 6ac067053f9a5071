package server

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/harkapp/hark/internal/natstest"
)

// A damaged position record (not an unreachable store) does not refuse
// its client for ever: it is identified, from now, and its next seen
// writes a sound record. Only an unavailable store tells a client to come
// back (TestGatewaysOverJetStream).
func TestHelloWithADamagedRecord(t *testing.T) {
	ns := natstest.Start(t)
	st, _ := openJetStream(t, ns)
	s := startServer(t, Config{Store: st})

	js := ns.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, "HARK_CLIENTS")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, base64.RawURLEncoding.EncodeToString([]byte("gw-broken")), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	c.Send("hello gw-broken")
	c.Expect("OK")
	// Still connected and answered: identified, not sent away.
	c.Send("seen 1")
	c.Expect("OK")
}
