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
	c.Identify("laptop-1")
	c.Send("classified?")
	c.Expect("") // no ad exists yet: an empty line
	c.NC.Close()

	ids := make([]uint64, 3)
	for i := range ids {
		ids[i], _ = publish(t, s, "classified", fmt.Sprintf("A%d", i+1))
	}
	c = dial(t, s)
	c.Send("hello laptop-1", "notif")
	c.Expect("OK", "OK", "notif: classified", "notif: classified", "notif: classified")
	c.Send("stop_notif", "classified?", fmt.Sprintf("seen %d", ids[0]))
	c.Expect("OK", fmt.Sprintf("%d A1", ids[0]), "OK")

	// A stranger connecting now has nothing unread.
	stranger := dial(t, s)
	stranger.Send("notif", "classified?")
	stranger.Expect("OK", "A3")

	// Restart: positions and items survive a clean shutdown.
	c.NC.Close()
	stopServer(t, s)
	s = startServer(t, Config{DataDir: dir})
	a4, _ := publish(t, s, "classified", "A4")
	c = dial(t, s)
	c.Send("hello laptop-1", "notif")
	c.Expect("OK", "OK", "notif: classified", "notif: classified", "notif: classified")
	c.Send("stop_notif", "classified?", "classified?", "classified?", "classified?")
	c.Expect("OK", fmt.Sprintf("%d A2", ids[1]), fmt.Sprintf("%d A3", ids[2]), fmt.Sprintf("%d A4", a4),
		fmt.Sprintf("%d A4", a4)) // none unread: the most recent, same id, so a client can tell
}

// TestNewClientStartsAtConnect: a client id the server has never seen
// starts with what was published since its connection opened.
func TestNewClientStartsAtConnect(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "classified", "before")
	c := dial(t, s)
	c.Send("random?") // a reply: the server has taken the connection
	c.Line()
	id, _ := publish(t, s, "classified", "after connect")
	r, _ := publish(t, s, "random", "5")
	c.Send("hello fresh", "notif")
	c.Expect("OK", "OK", "notif: classified", "notif: random")
	c.Send("classified?", "random?")
	c.Expect(fmt.Sprintf("%d after connect", id), fmt.Sprintf("%d 5", r))
}

// TestOneClientTwoConnections: connections sharing a client id share its
// read position, so no ad is handed out twice.
func TestOneClientTwoConnections(t *testing.T) {
	s := startServer(t, Config{})
	a, b := dial(t, s), dial(t, s)
	a.Send("hello desk")
	a.Expect("OK")
	b.Send("hello desk")
	b.Expect("OK")
	x, _ := publish(t, s, "classified", "X")
	y, _ := publish(t, s, "classified", "Y")
	a.Send("classified?")
	a.Expect(fmt.Sprintf("%d X", x))
	b.Send("classified?")
	b.Expect(fmt.Sprintf("%d Y", y))
	a.Send("notif")
	a.Expect("OK") // nothing unread for "desk"
}

// TestUnacknowledgedIsOfferedAgain: an ad handed out but not acknowledged
// with seen (the reply may have been lost with the connection, or in a
// crash) is offered again, with the same id, when the client comes back;
// an acknowledged one is not.
func TestUnacknowledgedIsOfferedAgain(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, Config{DataDir: dir})
	c := dial(t, s)
	c.Send("hello phone")
	c.Expect("OK")
	a, _ := publish(t, s, "classified", "A")
	b, _ := publish(t, s, "classified", "B")
	c.Send("classified?", "classified?", fmt.Sprintf("seen %d", a))
	c.Expect(fmt.Sprintf("%d A", a), fmt.Sprintf("%d B", b), "OK")
	c.NC.Close()
	stopServer(t, s) // the restart loses the handed-out position; seen survives

	s = startServer(t, Config{DataDir: dir})
	c = dial(t, s)
	c.Send("hello phone", "classified?", fmt.Sprintf("seen %d", b), "notif")
	c.Expect("OK", fmt.Sprintf("%d B", b), "OK", "OK") // B again; then nothing unread
}

// TestSeen: what seen acknowledges, and its errors.
func TestSeen(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, s)
	c.Send("seen 1")
	c.Expect("ERR not identified")
	c.Send("hello tablet")
	c.Expect("OK")
	for _, bad := range []string{"seen", "seen ", "seen 0", "seen -1", "seen 01", "seen x", "seen 1 2", "seen 99999999999999999999"} {
		c.Send(bad)
		if bad == "seen" {
			c.Expect("ERR unknown command")
			continue
		}
		c.Expect("ERR bad id")
	}
	a, _ := publish(t, s, "classified", "A")
	b, _ := publish(t, s, "classified", "B")
	c.Send("classified?")
	c.Expect(fmt.Sprintf("%d A", a))
	// Acknowledging beyond what was handed out covers only what was: B,
	// never fetched, stays unread for the id's next connection.
	c.Send(fmt.Sprintf("seen %d", b+100))
	c.Expect("OK")
	c.NC.Close()
	cl, found, err := s.st.Client("tablet")
	if err != nil || !found || cl.Ad != a {
		t.Fatalf("stored position %+v %v %v, want ad %d", cl, found, err, a)
	}
}
