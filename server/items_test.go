package server

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/harkapp/hark/wire"
)

// TestItemsInPushes: hello offers items in pushes; notif items announces
// the unread items with their values and ids, pushes each new item with
// its value, and hands each out as a fetch would: classified? then
// answers the pushed ad as the most recent, and entering the mode again
// announces nothing. Plain notif goes back to plain pushes.
func TestItemsInPushes(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, s)
	if h := c.Identify("desk"); !h.PushItems {
		t.Fatalf("hello's reply does not offer items in pushes: %+v", h)
	}
	a, _ := publish(t, s, wire.KindClassified, "A")
	b, _ := publish(t, s, wire.KindClassified, "B")
	r, _ := publish(t, s, wire.KindRandom, "77")
	c.Send("notif items")
	c.Expect("OK",
		fmt.Sprintf("notif: classified %d A", a),
		fmt.Sprintf("notif: classified %d B", b),
		fmt.Sprintf("notif: random %d 77", r))
	c.Send("notif items")
	c.Expect("OK") // announced: handed out, so not announced again
	d, _ := publish(t, s, wire.KindClassified, "D")
	c.Expect(fmt.Sprintf("notif: classified %d D", d))
	r2, _ := publish(t, s, wire.KindRandom, "78")
	c.Expect(fmt.Sprintf("notif: random %d 78", r2))
	c.Send("notif items", "classified?")
	c.Expect("OK", fmt.Sprintf("%d D", d)) // pushed: handed out, so not announced, and the most recent
	c.Send("notif")
	c.Expect("OK")
	publish(t, s, wire.KindClassified, "E")
	c.Expect(wire.NotifClassified)
}

// TestNotifItemsNeedsHello: before hello, an item's id means nothing:
// notif items is refused, and the connection stays as it was, out of
// notification mode.
func TestNotifItemsNeedsHello(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, s)
	c.Send("notif items")
	c.Expect(wire.ErrNotIdentified)
	publish(t, s, wire.KindRandom, "5")
	c.Send("random?")
	c.Expect("5") // no push before the reply: not in notification mode
}

// TestItemPushNeverDropped: a push fanned out while notif gathers its
// announcement has handed its item out already; unlike a plain push, which
// the announcement covers, it is written, before the OK, and the item is
// not announced again.
func TestItemPushNeverDropped(t *testing.T) {
	var s *Server
	var x atomic.Uint64
	var armed atomic.Bool
	cfg := Config{onAnnounce: func() {
		if armed.CompareAndSwap(true, false) {
			id, _ := publish(t, s, wire.KindClassified, "X")
			x.Store(id)
		}
	}}
	s = startServer(t, cfg)
	c := dial(t, s)
	c.Identify("tablet")
	c.Send("notif items")
	c.Expect("OK")
	armed.Store(true)
	c.Send("notif items")
	push := c.Line()
	c.Expect("OK")
	if want := fmt.Sprintf("notif: classified %d X", x.Load()); push != want {
		t.Fatalf("first line after the second notif items: %q, want %q before its OK", push, want)
	}
	c.Send("classified?")
	c.Expect(fmt.Sprintf("%d X", x.Load())) // the most recent: X was handed out
}

// TestItemsGoToTheNewestConnectionOfAnID: a hello for an id that has a
// connection here may come from a client that left that connection
// without the server knowing (a laptop back from suspend). What the old
// connection was handed but did not acknowledge is handed out again on
// the new one, and from the hello on, the old one gets plain pushes,
// which hand nothing out, so that nothing is lost on a dead connection;
// re-entering notif items takes the items back.
func TestItemsGoToTheNewestConnectionOfAnID(t *testing.T) {
	s := startServer(t, Config{})
	old := dial(t, s)
	old.Identify("laptop")
	old.Send("notif items")
	old.Expect("OK")
	x1, _ := publish(t, s, wire.KindClassified, "X1")
	old.Expect(fmt.Sprintf("notif: classified %d X1", x1)) // handed out; never acknowledged

	fresh := dial(t, s)
	fresh.Send("hello laptop v2")
	fresh.Line()
	x2, _ := publish(t, s, wire.KindClassified, "X2")
	old.Expect(wire.NotifClassified) // a plain push: X2 is not handed out there
	fresh.Send("notif items")
	fresh.Expect("OK", fmt.Sprintf("notif: classified %d X1", x1), fmt.Sprintf("notif: classified %d X2", x2))
	x3, _ := publish(t, s, wire.KindClassified, "X3")
	fresh.Expect(fmt.Sprintf("notif: classified %d X3", x3))
	old.Expect(wire.NotifClassified)

	// The old connection was in use after all: its next cycle takes the
	// items back, and the other connection gets plain pushes.
	old.Send("stop_notif", "classified?", "notif items")
	old.Expect("OK", fmt.Sprintf("%d X3", x3), "OK")
	x4, _ := publish(t, s, wire.KindClassified, "X4")
	old.Expect(fmt.Sprintf("notif: classified %d X4", x4))
	fresh.Expect(wire.NotifClassified)
}

// TestUnacknowledgedPushIsOfferedAgain: a pushed item moves only the
// handed-out position; what the client did not acknowledge with seen is
// announced again, same id, after a restart, and what it acknowledged is
// not.
func TestUnacknowledgedPushIsOfferedAgain(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, Config{DataDir: dir})
	c := dial(t, s)
	c.Identify("laptop")
	c.Send("notif items")
	c.Expect("OK")
	a, _ := publish(t, s, wire.KindClassified, "A")
	c.Expect(fmt.Sprintf("notif: classified %d A", a))
	b, _ := publish(t, s, wire.KindClassified, "B")
	c.Expect(fmt.Sprintf("notif: classified %d B", b))
	c.Send(fmt.Sprintf("seen %d", a))
	c.Expect("OK")
	c.NC.Close()
	stopServer(t, s)

	s = startServer(t, Config{DataDir: dir})
	c = dial(t, s)
	c.Send("hello laptop v2", "notif items")
	c.Line() // hello's reply
	c.Expect("OK", fmt.Sprintf("notif: classified %d B", b))
	c.Send("random?")
	c.Line() // the reply comes after every announcement: nothing else was
}

// TestItemsInHandOutOrder: on one connection, replies and pushes carry
// the ads of one kind with ids that never go down: a reply is queued
// under the same lock as the fan-out, so a push for a newer ad cannot
// overtake the reply that hands out an older one (a client keeping the
// highest id would take that one for a repeat). Publishes race the
// client's fetches here, many times.
func TestItemsInHandOutOrder(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, s)
	c.Identify("racer")
	c.Send("notif items")
	c.Expect("OK")
	const n = 200
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if _, _, err := s.Publish(context.Background(), wire.KindClassified, fmt.Sprintf("ad %d", i)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var last uint64
	seen := 0
	for seen < n {
		c.Send("classified?")
		for {
			line := c.Line()
			id, _, err := wire.ParseItem(strings.TrimPrefix(line, wire.NotifClassified+" "))
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if id < last {
				t.Fatalf("%q after id %d: handed out out of order", line, last)
			}
			last = id
			if !strings.HasPrefix(line, wire.NotifPrefix) {
				break // the reply: the next fetch
			}
			seen++
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestNotifItemsCostsWhatNotifCosts: a stranger may say hello and repeat
// notif items at no cost to itself; with nothing to announce, each must
// cost the server what a notif does, not a buffer sized for the largest
// announcement.
func TestNotifItemsCostsWhatNotifCosts(t *testing.T) {
	s := startServer(t, Config{})
	alloc := map[string]uint64{}
	for _, cmd := range []string{"notif", "notif items"} {
		c := dial(t, s)
		c.Identify("stranger-" + strings.ReplaceAll(cmd, " ", "-"))
		const n = 5000
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c.Write(strings.Repeat(cmd+"\r\n", n) + "random?\r\n")
		for range n {
			c.Expect("OK")
		}
		c.Line()
		runtime.ReadMemStats(&after)
		alloc[cmd] = after.TotalAlloc - before.TotalAlloc
	}
	if alloc["notif items"] > 2*alloc["notif"]+1<<20 {
		t.Errorf("5,000 × notif items allocated %d KiB, notif %d KiB", alloc["notif items"]>>10, alloc["notif"]>>10)
	}
}

// TestItemsAnnouncedAtMost64: a client back after a long absence gets the
// oldest 64 unread ads with their items and the rest announced plainly;
// while those are unread, a new ad comes as a plain push (handing it out
// would move the position past them), and once they are fetched, the
// next notif items announces it with its item.
func TestItemsAnnouncedAtMost64(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, Config{DataDir: dir})
	c := dial(t, s)
	c.Identify("traveller")
	c.NC.Close()
	ids := make([]uint64, maxAnnouncedItems+6)
	for i := range ids {
		ids[i], _ = publish(t, s, wire.KindClassified, fmt.Sprintf("A%d", i))
	}
	c = dial(t, s)
	c.Send("hello traveller v2", "notif items")
	c.Line() // hello's reply
	c.Expect("OK")
	for i := range maxAnnouncedItems {
		c.Expect(fmt.Sprintf("notif: classified %d A%d", ids[i], i))
	}
	for range 6 {
		c.Expect(wire.NotifClassified)
	}
	x, _ := publish(t, s, wire.KindClassified, "X")
	c.Expect(wire.NotifClassified) // plain: six older ads are unread
	c.Send("stop_notif", "classified?", "classified?", "classified?", "classified?", "classified?", "classified?", "notif items")
	c.Expect("OK")
	for i := maxAnnouncedItems; i < len(ids); i++ {
		c.Expect(fmt.Sprintf("%d A%d", ids[i], i))
	}
	c.Expect("OK", fmt.Sprintf("notif: classified %d X", x))
}
