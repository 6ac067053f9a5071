package netclient_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// testAckEvery paces the acknowledgements of the tests that wait for
// one: the default minute is a desktop's, not a test's.
const testAckEvery = 200 * time.Millisecond

// recorder is a linetest.Proxy in front of s that records what clients
// send, which is how these tests see what a session puts on the wire;
// configure sets more of it before it starts.
func recorder(t *testing.T, s *server.Server, configure func(*linetest.Proxy)) *linetest.Proxy {
	t.Helper()
	p := linetest.NewProxy(t, s.Addr().String())
	p.Record = true
	if configure != nil {
		configure(p)
	}
	return p.Start()
}

// withoutItems makes the proxy's server one that does not offer items in
// pushes: push=items is taken out of hello's reply.
func withoutItems(p *linetest.Proxy) {
	p.ServerLine = func(l string) string {
		if !wire.IsHelloReply(strings.TrimRight(l, "\r\n")) {
			return l
		}
		return strings.Replace(l, " push="+wire.PushItemsWord, "", 1)
	}
}

// after returns the lines after the first that is line, or nil.
func after(lines []string, line string) []string {
	if i := slices.Index(lines, line); i >= 0 {
		return lines[i+1:]
	}
	return nil
}

// publishAdsID is publishAds that returns the last ad's id.
func publishAdsID(t *testing.T, s *server.Server, from, to int) uint64 {
	t.Helper()
	var id uint64
	for i := from; i <= to; i++ {
		id = pub(t, s, wire.KindClassified, fmt.Sprintf("A%d", i))
	}
	return id
}

// (a) A server that offers items in pushes: the session enters with notif
// items and takes every item from its push. After that entry, the wire
// carries nothing but its acknowledgements: no fetch, no stop_notif.
func TestSessionTakesItemsFromPushes(t *testing.T) {
	s := realServer(t, server.Config{})
	rl := recorder(t, s, nil)
	r := startSession(t, netclient.SessionOptions{Addr: rl.Addr(), ClientID: "items-1", AckEvery: testAckEvery})
	waitSignal(t, r.up, "the session to connect")
	var last uint64
	for i := 1; i <= 20; i++ {
		last = pub(t, s, wire.KindClassified, fmt.Sprintf("A%d", i))
		if i%5 == 0 {
			last = pub(t, s, wire.KindRandom, fmt.Sprint(i))
		}
	}
	checkAds(t, collectAds(t, r.got, 20), 1, 20)
	rl.AwaitSent(t, fmt.Sprintf("seen %d", last))
	lines := rl.Sent()
	if !slices.Contains(lines, wire.CmdNotifyItems) || slices.Contains(lines, wire.CmdNotify) {
		t.Fatalf("the session did not enter with notif items alone: %q", lines)
	}
	for _, l := range after(lines, wire.CmdNotifyItems) {
		if !strings.HasPrefix(l, wire.CmdSeen+" ") {
			t.Fatalf("after notif items, the session sent %q: %q", l, lines)
		}
	}
}

// (b) The session acknowledges pushed items by itself, at most once a
// second, several with one seen: a burst costs fewer seen than items, and
// the server's store holds the position: a restarted server offers the
// id nothing again.
func TestSessionAcknowledgesPushedItems(t *testing.T) {
	const burst = 30
	dir := t.TempDir()
	s := realServer(t, server.Config{DataDir: dir})
	rl := recorder(t, s, nil)
	r := startSession(t, netclient.SessionOptions{Addr: rl.Addr(), ClientID: "items-2", AckEvery: testAckEvery})
	waitSignal(t, r.up, "the session to connect")
	last := publishAdsID(t, s, 1, burst)
	checkAds(t, collectAds(t, r.got, burst), 1, burst)
	rl.AwaitSent(t, fmt.Sprintf("seen %d", last))
	// Its OK: the server took it (a line still unread when the server
	// shuts down is never answered, so never acknowledged).
	rl.AwaitHeard(t, wire.OK)
	seen := 0
	for _, l := range after(rl.Sent(), wire.CmdNotifyItems) {
		if strings.HasPrefix(l, wire.CmdSeen+" ") {
			seen++
		}
	}
	if seen >= burst {
		t.Fatalf("%d seen for a burst of %d items: want them acknowledged several at a time", seen, burst)
	}
	t.Logf("%d seen for %d items", seen, burst)
	r.stop()
	stopReal(t, s)

	s2 := realServer(t, server.Config{DataDir: dir})
	c := linetest.Dial(t, s2.Addr().String())
	c.Send("hello items-2 v2", wire.CmdNotifyItems, wire.CmdClassified)
	if h, err := wire.ParseHello(c.Line()); err != nil || h.New {
		t.Fatalf("hello after the restart: %+v, %v; want the id known", h, err)
	}
	// The reply to classified? comes after every announcement: none.
	c.Expect("OK", fmt.Sprintf("%d A%d", last, burst))
}

// Without items in pushes the session acknowledges what it received with
// seen, riding on its next batch, so the server's durable position moves
// only past items that reached the client. After B's batch has
// acknowledged A, a restarted server offers B (whose acknowledgement
// would have ridden on the batch after it), not A.
func TestSessionAcknowledges(t *testing.T) {
	dir := t.TempDir()
	s := realServer(t, server.Config{DataDir: dir})
	rl := recorder(t, s, withoutItems)
	_, got, connected := runSession(t, netclient.SessionOptions{Addr: rl.Addr(), ClientID: "acker"})
	waitSignal(t, connected, "connected")
	pub(t, s, wire.KindClassified, "A")
	awaitValue(t, got, "A")
	b := pub(t, s, wire.KindClassified, "B")
	awaitValue(t, got, "B")
	stopReal(t, s)

	s2 := realServer(t, server.Config{DataDir: dir})
	c := linetest.Dial(t, s2.Addr().String())
	c.Send("hello acker", "classified?")
	c.Expect("OK", fmt.Sprintf("%d B", b))
}

// (c) A server that does not offer items in pushes (a hark server from
// before them): the session never says notif items, and fetches each
// item after its push, as before.
func TestSessionWithoutItemsInPushesFetches(t *testing.T) {
	s := realServer(t, server.Config{})
	rl := recorder(t, s, withoutItems)
	r := startSession(t, netclient.SessionOptions{Addr: rl.Addr(), ClientID: "items-3"})
	waitSignal(t, r.up, "the session to connect")
	publishAds(t, s, 1, 10)
	checkAds(t, collectAds(t, r.got, 10), 1, 10)
	lines := rl.Sent()
	if slices.Contains(lines, wire.CmdNotifyItems) {
		t.Fatalf("the session said notif items to a server that did not offer it: %q", lines)
	}
	if !slices.Contains(lines, wire.CmdStopNotify) || !slices.Contains(after(lines, wire.CmdNotify), wire.CmdClassified) {
		t.Fatalf("the session did not fetch after the pushes: %q", lines)
	}
}

// A server that offers items in pushes but refuses notif items (another
// version behind the same address, say): the session enters with plain
// notif on that connection and fetches, without losing anything.
func TestSessionFallsBackWhenNotifItemsRefused(t *testing.T) {
	s := realServer(t, server.Config{})
	rl := recorder(t, s, func(p *linetest.Proxy) {
		p.ClientLine = func(l string) string {
			if l == wire.CmdNotifyItems+"\r\n" {
				return "notif items?\r\n" // ERR unknown command
			}
			return l
		}
	})
	r := startSession(t, netclient.SessionOptions{Addr: rl.Addr(), ClientID: "items-4", MinBackoff: time.Hour})
	waitSignal(t, r.up, "the session to connect")
	publishAds(t, s, 1, 10)
	checkAds(t, collectAds(t, r.got, 10), 1, 10)
	lines := rl.Sent()
	if n := strings.Count(strings.Join(lines, "\n"), wire.CmdNotifyItems); n != 1 {
		t.Fatalf("notif items sent %d times, want once: %q", n, lines)
	}
	if !slices.Contains(after(lines, wire.CmdNotifyItems), wire.CmdNotify) {
		t.Fatalf("the session did not enter with notif after the refusal: %q", lines)
	}
	select {
	case st := <-r.down:
		t.Fatalf("the session disconnected: %v", st.Err)
	default:
	}
}

// step is a scripted server's move: read the lines want, then write reply.
type step struct {
	want  []string
	reply string
}

// scriptedItems is a scripted server that offers items in pushes: it
// plays steps on each connection, then answers seen, stop_notif, notif
// and notif items with OK, random? with "11 1" and classified? with the
// most recent ad "13 Y", until the client closes. A line other than a
// step wants fails the test and ends the connection.
func scriptedItems(t *testing.T, steps ...step) string {
	t.Helper()
	return linetest.Serve(t, func(nc net.Conn) {
		defer nc.Close()
		br := bufio.NewReader(nc)
		read := func() (string, bool) {
			l, err := br.ReadString('\n')
			return strings.TrimRight(l, "\r\n"), err == nil
		}
		for _, st := range steps {
			for _, w := range st.want {
				l, ok := read()
				if !ok {
					return
				}
				if l != w {
					t.Errorf("scripted server: client sent %q, want %q", l, w)
					return
				}
			}
			if _, err := nc.Write([]byte(st.reply)); err != nil {
				return
			}
		}
		for {
			l, ok := read()
			if !ok {
				return
			}
			reply := "OK"
			switch l {
			case wire.CmdRandom:
				reply = "11 1"
			case wire.CmdClassified:
				reply = "13 Y"
			}
			if _, err := nc.Write([]byte(reply + "\r\n")); err != nil {
				return
			}
		}
	})
}

// catchUpSteps are a first contact with a server that offers items in
// pushes: latest 10, the number 10 is current, no ad yet.
var catchUpSteps = []step{
	{[]string{"hello items-5 v2"}, "OK hello epoch=e1 latest=10 client=new push=items\r\n"},
	{[]string{"seen 10", wire.CmdRandom, wire.CmdClassified, wire.CmdNotifyItems}, "OK\r\n10 7\r\n\r\nOK\r\n"},
}

// nextItem returns the session's next item, skipping states.
func nextItem(t *testing.T, events <-chan netclient.Event) netclient.Delivery {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the session ended")
			}
			if ev.Item != nil {
				return *ev.Item
			}
		case <-timeout:
			t.Fatal("no item")
		}
	}
}

// runEvents runs a session whose events the test reads itself, when it
// chooses to.
func runEvents(t *testing.T, opts netclient.SessionOptions) <-chan netclient.Event {
	t.Helper()
	sess := netclient.NewSession(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sess.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range sess.Events() { // drain, so that Run can return
		}
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return sess.Events()
}

// sessionInACycle runs a session against a scripted server that, after
// the catch-up, sends a plain push and answers the cycle it asks for
// with cycle, then a plain random push, the marker. The session's user
// reads nothing until the connection has read the marker, so the order
// of what the session hands over is its own, not a race with the wire.
// It returns the session's events after its connection.
func sessionInACycle(t *testing.T, cycle string) <-chan netclient.Event {
	t.Helper()
	read := make(chan struct{}) // the connection has read the marker push
	var once sync.Once
	addr := scriptedItems(t, append(slices.Clone(catchUpSteps),
		step{nil, wire.NotifClassified + "\r\n"}, // a plain push asks for a cycle
		step{[]string{wire.CmdStopNotify, wire.CmdClassified, wire.CmdNotifyItems},
			cycle + wire.NotifRandom + "\r\n"}, // the marker
	)...)
	events := runEvents(t, netclient.SessionOptions{
		Addr: addr, ClientID: "items-5", MinBackoff: time.Hour,
		Conn: netclient.Options{OnNotify: func(k wire.Kind) {
			if k == wire.KindRandom {
				once.Do(func() { close(read) })
			}
		}},
	})
	if d := nextItem(t, events); d.Value != "7" || !d.Current {
		t.Fatalf("first delivery %+v, want the current number", d)
	}
	if ev := await(t, events, "the connection"); ev.State == nil || !ev.State.Connected {
		t.Fatalf("event %+v, want the connection", ev)
	}
	waitSignal(t, read, "the connection to read the cycle's lines")
	return events
}

// (e) Pushes with items arrive whatever the session is doing: during a
// fetch cycle (which a plain push asks for), before stop_notif's OK and,
// from a server less careful than hark's, after it. Each is delivered, in the order the server sent them with the
// replies: a newer item handed over before an older one would make the
// older one look like a repeat. To make the order matter, the session is
// kept busy (its user does not read) until every line has been read.
func TestSessionDeliversPushedItemsDuringACycle(t *testing.T) {
	events := sessionInACycle(t, "notif: random 11 1\r\nOK\r\nnotif: classified 12 X\r\n13 Y\r\nOK\r\nnotif: classified 14 Z\r\n")
	for _, want := range []struct {
		id    uint64
		value string
	}{{11, "1"}, {12, "X"}, {13, "Y"}, {14, "Z"}} {
		d := nextItem(t, events)
		if d.ID != want.id || d.Value != want.value || d.Current {
			t.Fatalf("delivered %+v, want item %d %q as news", d, want.id, want.value)
		}
	}
}

// Items the connection read before it ended (here on a malformed push,
// in the middle of a cycle) are handed over, before the disconnection:
// the server handed them out, and may not offer them again to the next
// connection if it has not noticed this one closed by then.
func TestSessionHandsOverItemsReadBeforeTheEnd(t *testing.T) {
	events := sessionInACycle(t, "notif: random 11 1\r\nnotif: classified 12 X\r\nnotif: classified 0 bad\r\n")
	for _, want := range []string{"1", "X"} {
		ev := await(t, events, want)
		if ev.Item == nil || ev.Item.Value != want {
			t.Fatalf("event %+v, want %q delivered", ev, want)
		}
	}
	var pe *netclient.ProtocolError
	if ev := await(t, events, "the disconnection"); ev.State == nil || ev.State.Connected || !errors.As(ev.State.Err, &pe) {
		t.Fatalf("event %+v, want the disconnection for the malformed push", ev)
	}
}

// (d) A malformed push with an item ends the connection with a protocol
// error that says what was wrong.
func TestSessionEndsOnAMalformedPushedItem(t *testing.T) {
	addr := scriptedItems(t, append(slices.Clone(catchUpSteps),
		step{nil, "notif: classified 12\r\n"}, // no value
	)...)
	r := startSession(t, netclient.SessionOptions{Addr: addr, ClientID: "items-5", MinBackoff: time.Hour})
	waitSignal(t, r.up, "the session to connect")
	st := awaitDown(t, r, "the protocol error")
	var pe *netclient.ProtocolError
	if !errors.As(st.Err, &pe) || !errors.Is(st.Err, wire.ErrInvalid) || !strings.Contains(st.Err.Error(), "malformed push with an item") {
		t.Fatalf("disconnected with %v, want a protocol error about the malformed push", st.Err)
	}
}

// The session keeps taking pushed items while it waits for a reply (its
// seen's OK) queued behind them on a connection that holds only one:
// otherwise the connection, full, would stop reading for good.
func TestSessionTakesPushedItemsWhileWaiting(t *testing.T) {
	addr := scriptedItems(t, append(slices.Clone(catchUpSteps),
		step{nil, "notif: classified 11 X\r\n"},
		// The seen comes within testAckEvery of the catch-up's.
		step{[]string{"seen 11"}, "notif: classified 12 A\r\nnotif: classified 13 B\r\nnotif: classified 14 C\r\nOK\r\n"},
	)...)
	r := startSession(t, netclient.SessionOptions{
		Addr: addr, ClientID: "items-5", MinBackoff: time.Hour, AckEvery: testAckEvery,
		Conn: netclient.Options{QueuedItems: 1},
	})
	waitSignal(t, r.up, "the session to connect")
	for _, want := range []string{"X", "A", "B", "C"} {
		if d := awaitValue(t, r.got, want); d.Current {
			t.Fatalf("%+v delivered as current", d)
		}
	}
}

// A user that falls behind a real server: the connection holds one
// pushed item, so it stops reading again and again. Everything arrives,
// on one connection.
func TestSessionWithATinyItemQueue(t *testing.T) {
	s := realServer(t, server.Config{})
	r := startSession(t, netclient.SessionOptions{
		Addr: s.Addr().String(), ClientID: "items-6", MinBackoff: time.Hour,
		Conn: netclient.Options{QueuedItems: 1},
	})
	waitSignal(t, r.up, "the session to connect")
	publishAds(t, s, 1, 200)
	checkAds(t, collectAds(t, r.got, 200), 1, 200)
	select {
	case st := <-r.down:
		t.Fatalf("the session disconnected: %v", st.Err)
	default:
	}
}

// TestSessionLosesNothingPushedToALeftConnection: a laptop suspends, and
// its path to the server dies without the server hearing of it. Items
// published meanwhile are pushed, with their items, to that connection:
// handed out, and lost on the way. On waking up the session reconnects
// while the server still holds the old connection open; the items must
// come on the new one.
func TestSessionLosesNothingPushedToALeftConnection(t *testing.T) {
	s := realServer(t, server.Config{})
	rl := recorder(t, s, nil)
	r := startSession(t, netclient.SessionOptions{Addr: rl.Addr(), ClientID: "laptop", MinBackoff: time.Hour})
	waitSignal(t, r.up, "the session to connect")
	pub(t, s, wire.KindClassified, "before")
	awaitValue(t, r.got, "before")

	rl.CutPath()
	pub(t, s, wire.KindClassified, "during-1") // pushed to the old connection, handed out there
	pub(t, s, wire.KindClassified, "during-2")
	r.sess.Reconnect() // the laptop is back
	waitSignal(t, r.up, "the session to reconnect")
	pub(t, s, wire.KindClassified, "after")
	for _, v := range []string{"during-1", "during-2", "after"} {
		awaitValue(t, r.got, v)
	}
}

// TestSessionCatchesUpBeyondOneAnnouncement: a client back after a long
// absence gets the first 64 unread ads with their items and the rest
// announced plainly (docs/PROTOCOL.md, Items in pushes): the session
// fetches those, and delivers every ad once, in order.
func TestSessionCatchesUpBeyondOneAnnouncement(t *testing.T) {
	const away = 150
	s := realServer(t, server.Config{})
	r := startSession(t, netclient.SessionOptions{Addr: s.Addr().String(), ClientID: "traveller"})
	waitSignal(t, r.up, "the session to connect")
	r.stop() // the id acknowledged where it starts: the server keeps its position
	publishAdsID(t, s, 1, away)
	r = startSession(t, netclient.SessionOptions{Addr: s.Addr().String(), ClientID: "traveller"})
	checkAds(t, collectAds(t, r.got, away), 1, away)
}
