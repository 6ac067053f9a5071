package netclient_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// helloItems identifies c against the scripted server, which offers items
// in pushes, then enters notification mode with them.
func helloItems(t *testing.T, c *netclient.Conn, p *peer) {
	t.Helper()
	res := goHello(func() (wire.Hello, error) { return c.Hello(bg, "client-1") })
	p.expect("hello client-1 v2")
	p.write("OK hello epoch=e1 latest=16 client=new push=items\r\n")
	if r := await(t, res, "Hello"); r.err != nil || !r.h.PushItems {
		t.Fatalf("Hello = %+v, %v; want items in pushes offered", r.h, r.err)
	}
	nres := goErr(func() error { return c.NotifyItems(bg) })
	p.expect("notif items")
	p.write("OK\r\n")
	if err := await(t, nres, "NotifyItems"); err != nil {
		t.Fatal(err)
	}
}

// awaitItem takes the next pushed item.
func awaitItem(t *testing.T, c *netclient.Conn) netclient.Item {
	t.Helper()
	return await(t, c.Items(), "a pushed item").Item
}

// A push with an item goes to Items, in order, whatever the connection is
// waiting for and whatever state it is in; even after stop_notif's OK,
// which a conforming server never sends one after (docs/PROTOCOL.md), but
// an item handed out must not be dropped by a client that believes it
// knows better. It is not a plain push (OnNotify, TakePushes), nor a
// reply. Plain pushes still go where they went.
func TestPushedItemsGoToItems(t *testing.T) {
	pushes, onNotify := pushRecorder()
	c, p := dialScripted(t, netclient.Options{OnNotify: onNotify})
	helloItems(t, c, p)
	p.write("notif: classified 17 Nice flat\r\nnotif: random 18 42\r\n")
	if got, want := awaitItem(t, c), (netclient.Item{Kind: wire.KindClassified, Value: "Nice flat", ID: 17}); got != want {
		t.Fatalf("first pushed item %+v, want %+v", got, want)
	}
	if got, want := awaitItem(t, c), (netclient.Item{Kind: wire.KindRandom, Value: "42", ID: 18}); got != want {
		t.Fatalf("second pushed item %+v, want %+v", got, want)
	}

	res := goDo(bg, c, netclient.StopNotifyCmd, netclient.RandomCmd)
	p.expect("stop_notif", "random?")
	p.write("notif: classified 19 Before the OK\r\nOK\r\nnotif: classified 20 After the OK\r\n" +
		wire.NotifClassified + "\r\n18 42\r\n")
	r := await(t, res, "Do")
	if want := []netclient.Item{{}, {Kind: wire.KindRandom, Value: "42", ID: 18}}; r.err != nil || len(r.items) != 2 || r.items[0] != want[0] || r.items[1] != want[1] {
		t.Fatalf("Do(stop_notif, random?) = %+v, %v; want %+v", r.items, r.err, want)
	}
	for _, want := range []string{"Before the OK", "After the OK"} {
		if got := awaitItem(t, c); got.Value != want {
			t.Fatalf("pushed item %+v, want %q", got, want)
		}
	}
	if k := await(t, pushes, "the plain push"); k != wire.KindClassified {
		t.Fatalf("plain push %q", k)
	}
	select {
	case k := <-pushes:
		t.Fatalf("a push with an item also went to OnNotify (%q)", k)
	default:
	}
	if random, ads := c.TakePushes(); random || ads != 1 {
		t.Fatalf("TakePushes = %v, %d; want only the plain push", random, ads)
	}
	if n := c.Strays(); n != 0 {
		t.Fatalf("%d strays", n)
	}
}

// Before notif items went out, a line shaped like a push with an item is
// an unknown push, as for a client that never heard of them: a stray,
// even a malformed one, and nothing fills a queue that nobody reads.
func TestPushedItemBeforeNotifItemsIsAStray(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	hello(t, c, p)
	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("notif: classified 17 Nice flat\r\nnotif: classified 0 bad\r\n18 42\r\n")
	if r := await(t, res, "Random"); r.err != nil || r.item.ID != 18 {
		t.Fatalf("Random = %+v, %v", r.item, r.err)
	}
	if n := c.Strays(); n != 2 {
		t.Fatalf("%d strays, want 2", n)
	}
	select {
	case it := <-c.Items():
		t.Fatalf("pushed item %+v before notif items", it.Item)
	default:
	}
	requireOpen(t, c)
}

// A malformed push with an item handed out an item that cannot be
// told: the connection ends with a protocol error that says so, rather
// than lose the item without a trace (the server offers it again to the
// next connection, since it was not acknowledged).
func TestMalformedPushedItemEndsTheConnection(t *testing.T) {
	for _, line := range []string{
		"notif: classified 0 zero id",
		"notif: classified x no id",
		"notif: classified 12",
		"notif: random 12 -1",
		"notif: classified 12 ERR not an ad",
		"notif: classified 12 tab\there",
	} {
		t.Run(line, func(t *testing.T) {
			c, p := dialScripted(t, netclient.Options{})
			helloItems(t, c, p)
			res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
			p.expect("random?")
			p.write(line + "\r\n18 42\r\n")
			r := await(t, res, "Random")
			var pe *netclient.ProtocolError
			if !errors.As(r.err, &pe) || !strings.Contains(pe.Error(), "malformed push with an item") || !errors.Is(r.err, wire.ErrInvalid) {
				t.Fatalf("Random = %+v, %v; want a ProtocolError about the malformed push", r.item, r.err)
			}
			requireClosedWith(t, c, pe)
		})
	}
}

// When the user does not take pushed items, the queue fills and the
// connection stops reading: nothing is dropped, and the reply queued
// behind the items is not taken for a dead server's silence, however long
// the user takes; once the items are taken, it comes through.
func TestFullItemQueueStopsReadingWithoutTimingOut(t *testing.T) {
	const replyTimeout = 100 * time.Millisecond
	logs := &logLines{}
	c, p := dialScripted(t, netclient.Options{QueuedItems: 2, ReplyTimeout: replyTimeout, Logger: slog.New(logs)})
	helloItems(t, c, p)
	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("notif: classified 17 A\r\nnotif: classified 18 B\r\nnotif: classified 19 C\r\nnotif: classified 20 D\r\n21 42\r\n")
	// Not a synchronisation: the time the reply timeout would need to
	// fire, were it counting while the user is the one who is late.
	time.Sleep(5 * replyTimeout)
	select {
	case r := <-res:
		t.Fatalf("Random returned %+v, %v while its reply was queued behind items nobody took", r.item, r.err)
	default:
	}
	requireOpen(t, c)
	for _, want := range []string{"A", "B", "C", "D"} {
		if got := awaitItem(t, c); got.Value != want {
			t.Fatalf("pushed item %+v, want %q", got, want)
		}
	}
	if r := await(t, res, "Random"); r.err != nil || r.item.ID != 21 {
		t.Fatalf("Random = %+v, %v", r.item, r.err)
	}
	if n := logs.count("reading stops"); n != 1 {
		t.Fatalf("the stop was logged %d times, want once", n)
	}
	requireOpen(t, c)
}

// notif items is answered OK, or an ERR (a server that does not offer
// it, or not before hello): the ERR is its reply, and the connection
// stays open.
func TestNotifItemsTakesAnErrReply(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goDo(bg, c, netclient.NotifyItemsCmd, netclient.RandomCmd)
	p.expect("notif items", "random?")
	p.write(wire.ErrNotIdentified + "\r\n5\r\n")
	r := await(t, res, "Do")
	var se *netclient.ServerError
	if !errors.As(r.err, &se) || se.Line != wire.ErrNotIdentified {
		t.Fatalf("Do(notif items, random?) = %+v, %v; want a ServerError", r.items, r.err)
	}
	requireOpen(t, c)
}
