package server

import (
	"fmt"
	"testing"

	"github.com/harkapp/hark/internal/natstest"
	"github.com/harkapp/hark/wire"
)

// A gateway that goes away first writes what its clients acknowledged:
// when a client reads "ERR server going away", another gateway of the
// store reads its position, so it is not offered those items again. (The
// second acknowledgement falls within the pacing of position commits,
// which would otherwise write it only after the client has gone.)
func TestGoingAwayWritesPositionsFirst(t *testing.T) {
	ns := natstest.Start(t)
	sta, _ := openJetStream(t, ns)
	stb, _ := openJetStream(t, ns)
	defer stb.Close()
	a := startServer(t, Config{Store: sta})
	c := dial(t, a)
	c.Send("hello gw-away", "notif")
	c.Expect("OK", "OK")
	first, _ := publish(t, a, wire.KindClassified, "first")
	c.Expect("notif: classified")
	c.Send("stop_notif", "classified?", fmt.Sprint("seen ", first), "notif")
	c.Expect("OK", fmt.Sprint(first, " first"), "OK", "OK")
	second, _ := publish(t, a, wire.KindClassified, "second")
	c.Expect("notif: classified")
	c.Send("stop_notif", "classified?", fmt.Sprint("seen ", second), "notif")
	c.Expect("OK", fmt.Sprint(second, " second"), "OK", "OK")
	stopped := make(chan struct{})
	go func() { defer close(stopped); stopServer(t, a) }()
	defer func() { <-stopped }()
	for line := c.Line(); line != wire.ErrGoingAway; line = c.Line() {
	}
	got, found, err := stb.Client("gw-away")
	if err != nil || !found || got.Ad != second {
		t.Fatalf("the other gateway reads the client as %+v (found %v, %v) when it is told to go there; want ad %d", got, found, err, second)
	}
}
