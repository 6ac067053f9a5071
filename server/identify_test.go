package server

import (
	"fmt"
	"testing"
)

// TestIdentifiedClientGetsWhatItMissed: ads published while an identified
// client was away, and across a server restart, are still unread for it
// when it comes back; replies carry ids.
func TestIdentifiedClientGetsWhatItMissed(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, Config{DataDir: dir})
	c := dial(t, s)
	c.send("hello laptop-1", "classified?")
	c.expect("OK", "") // no ad exists yet: an empty line
	c.nc.Close()

	ids := make([]uint64, 3)
	for i := range ids {
		ids[i], _ = publish(t, s, "classified", fmt.Sprintf("A%d", i+1))
	}
	c = dial(t, s)
	c.send("hello laptop-1", "notif")
	c.expect("OK", "OK", "notif: classified", "notif: classified", "notif: classified")
	c.send("stop_notif", "classified?")
	c.expect("OK", fmt.Sprintf("%d A1", ids[0]))

	// A stranger connecting now has nothing unread.
	stranger := dial(t, s)
	stranger.send("notif", "classified?")
	stranger.expect("OK", "A3")

	// Restart: positions and items survive a clean shutdown.
	c.nc.Close()
	stopServer(t, s)
	s = startServer(t, Config{DataDir: dir})
	a4, _ := publish(t, s, "classified", "A4")
	c = dial(t, s)
	c.send("hello laptop-1", "notif")
	c.expect("OK", "OK", "notif: classified", "notif: classified", "notif: classified")
	c.send("stop_notif", "classified?", "classified?", "classified?", "classified?")
	c.expect("OK", fmt.Sprintf("%d A2", ids[1]), fmt.Sprintf("%d A3", ids[2]), fmt.Sprintf("%d A4", a4),
		fmt.Sprintf("%d A4", a4)) // none unread: the most recent, same id, so a client can tell
}

// TestNewClientStartsAtConnect: a client id the server has never seen
// starts with what was published since its connection opened.
func TestNewClientStartsAtConnect(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "classified", "before")
	c := dial(t, s)
	id, _ := publish(t, s, "classified", "after connect")
	r, _ := publish(t, s, "random", "5")
	c.send("hello fresh", "notif")
	c.expect("OK", "OK", "notif: classified", "notif: random")
	c.send("classified?", "random?")
	c.expect(fmt.Sprintf("%d after connect", id), fmt.Sprintf("%d 5", r))
}

// TestOneClientTwoConnections: connections sharing a client id share its
// read position, so no ad is handed out twice.
func TestOneClientTwoConnections(t *testing.T) {
	s := startServer(t, Config{})
	a, b := dial(t, s), dial(t, s)
	a.send("hello desk")
	a.expect("OK")
	b.send("hello desk")
	b.expect("OK")
	x, _ := publish(t, s, "classified", "X")
	y, _ := publish(t, s, "classified", "Y")
	a.send("classified?")
	a.expect(fmt.Sprintf("%d X", x))
	b.send("classified?")
	b.expect(fmt.Sprintf("%d Y", y))
	a.send("notif")
	a.expect("OK") // nothing unread for "desk"
}
