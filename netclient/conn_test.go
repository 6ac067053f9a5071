package netclient_test

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait on an event; a test that needs it has failed.
const waitFor = 5 * time.Second

// peer is the scripted server's end of one loopback connection. Its
// methods that call t.Fatal may only run on the test goroutine.
type peer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// dialScripted opens a real loopback connection: the returned Conn is
// the client under test, the peer is the scripted server. Both are closed
// when the test ends.
func dialScripted(t *testing.T, opts netclient.Options) (*netclient.Conn, *peer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	// The kernel completes the handshake before Accept, so no goroutine
	// is needed to dial and accept.
	c, err := netclient.Dial(ctx, ln.Addr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		select {
		case <-c.Done():
		default:
			t.Error("Done not closed after Close")
		}
	})
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitFor))
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return c, &peer{t: t, nc: sc, br: bufio.NewReader(sc)}
}

// readLine returns the next line the client sent, without its CRLF.
func (p *peer) readLine() (string, error) {
	_ = p.nc.SetReadDeadline(time.Now().Add(waitFor))
	s, err := p.br.ReadString('\n')
	if err != nil {
		return s, err
	}
	return strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r"), nil
}

// expect reads len(want) lines and requires them to be want, in order.
func (p *peer) expect(want ...string) {
	p.t.Helper()
	for _, w := range want {
		got, err := p.readLine()
		if err != nil {
			p.t.Fatalf("server: waiting for %q: %v", w, err)
		}
		if got != w {
			p.t.Fatalf("server: client sent %q, want %q", got, w)
		}
	}
}

// write sends s to the client as is.
func (p *peer) write(s string) {
	p.t.Helper()
	_ = p.nc.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := p.nc.Write([]byte(s)); err != nil {
		p.t.Fatalf("server: write: %v", err)
	}
}

// answerAll answers each line the client sends with reply(line) plus
// CRLF, from a goroutine, until the connection ends. stop closes the
// server's end and waits for the goroutine; the peer is unusable after.
func (p *peer) answerAll(reply func(string) string) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			line, err := p.readLine()
			if err != nil {
				return
			}
			if _, err := p.nc.Write([]byte(reply(line) + "\r\n")); err != nil {
				return
			}
		}
	}()
	return func() {
		p.nc.Close()
		<-done
	}
}

// await waits for one value from ch, failing the test after waitFor.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

type itemResult struct {
	item netclient.Item
	err  error
}

// goItem runs f (Random or Classified) in a goroutine.
func goItem(f func() (netclient.Item, error)) <-chan itemResult {
	ch := make(chan itemResult, 1)
	go func() {
		it, err := f()
		ch <- itemResult{it, err}
	}()
	return ch
}

type doResult struct {
	items []netclient.Item
	err   error
}

func goDo(ctx context.Context, c *netclient.Conn, cmds ...netclient.Cmd) <-chan doResult {
	ch := make(chan doResult, 1)
	go func() {
		items, err := c.Do(ctx, cmds...)
		ch <- doResult{items, err}
	}()
	return ch
}

func goErr(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// pushRecorder is an OnNotify that never blocks (for up to 1024 pushes).
func pushRecorder() (chan wire.Kind, func(wire.Kind)) {
	ch := make(chan wire.Kind, 1024)
	return ch, func(k wire.Kind) { ch <- k }
}

func requireOpen(t *testing.T, c *netclient.Conn) {
	t.Helper()
	select {
	case <-c.Done():
		t.Fatalf("connection closed: %v", c.Err())
	default:
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err() = %v on an open connection", err)
	}
}

func requireDone(t *testing.T, c *netclient.Conn) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitFor):
		t.Fatal("Done() not closed")
	}
	if c.Err() == nil {
		t.Fatal("Err() is nil after Done() closed")
	}
}

var bg = context.Background()

// 1.
func TestStrayLinesBeforeAnyCommandAreIgnored(t *testing.T) {
	pushes, onNotify := pushRecorder()
	c, p := dialScripted(t, netclient.Options{OnNotify: onNotify})

	// The push is a barrier: lines are handled in order, so once it is
	// delivered, the three lines before it have been too.
	p.write("hello there\r\nOK\r\n42\r\nnotif: random\r\n")
	if k := await(t, pushes, "the push"); k != wire.KindRandom {
		t.Fatalf("push %q, want random", k)
	}
	if n := c.Strays(); n != 3 {
		t.Fatalf("Strays() = %d, want 3", n)
	}

	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("7\r\n")
	r := await(t, res, "Random")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := (netclient.Item{Kind: wire.KindRandom, Value: "7"}); r.item != want {
		t.Fatalf("Random = %+v, want %+v (a line sent before the command was taken as its reply)", r.item, want)
	}
	if n := c.Strays(); n != 3 {
		t.Fatalf("Strays() = %d, want 3", n)
	}
}

// 2.
func TestDuplicateOKIsStrayAndNextReplyIsKept(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goDo(bg, c, netclient.StopNotifyCmd, netclient.ClassifiedCmd)
	p.expect("stop_notif", "classified?")
	p.write("OK\r\nOK\r\nNice flat\r\n") // one write: the duplicate OK comes with the ad
	r := await(t, res, "Do")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := []netclient.Item{{}, {Kind: wire.KindClassified, Value: "Nice flat"}}
	if !slices.Equal(r.items, want) {
		t.Fatalf("Do = %+v, want %+v", r.items, want)
	}
	if n := c.Strays(); n != 1 {
		t.Fatalf("Strays() = %d, want 1", n)
	}
}

// 3.
func TestPushCrossingStopNotifIsNotTakenAsReply(t *testing.T) {
	pushes, onNotify := pushRecorder()
	c, p := dialScripted(t, netclient.Options{OnNotify: onNotify})
	res := goErr(func() error { return c.StopNotify(bg) })
	p.expect("stop_notif")
	p.write("notif: classified\r\nOK\r\n")
	if err := await(t, res, "StopNotify"); err != nil {
		t.Fatalf("StopNotify: %v", err)
	}
	if k := await(t, pushes, "the crossing push"); k != wire.KindClassified {
		t.Fatalf("push %q, want classified", k)
	}
	if n := c.Strays(); n != 0 {
		t.Fatalf("Strays() = %d, want 0 (the OK was not matched to stop_notif)", n)
	}
	// Nothing is left over to confuse the next command.
	res2 := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("5\r\n")
	if r := await(t, res2, "Random"); r.err != nil || r.item.Value != "5" {
		t.Fatalf("Random = %+v, %v; want 5", r.item, r.err)
	}
}

// 4.
func TestPushesBetweenPipelinedRepliesAreRoutedInOrder(t *testing.T) {
	const n = 50
	pushes, onNotify := pushRecorder()
	c, p := dialScripted(t, netclient.Options{OnNotify: onNotify})
	cmds := make([]netclient.Cmd, n)
	want := make([]netclient.Item, n)
	expectLines := make([]string, n)
	for i := range cmds {
		cmds[i] = netclient.RandomCmd
		want[i] = netclient.Item{Kind: wire.KindRandom, Value: strconv.Itoa(1000 + i)}
		expectLines[i] = "random?"
	}
	res := goDo(bg, c, cmds...)
	p.expect(expectLines...)

	var script strings.Builder
	var wantPushes []wire.Kind
	push := func(k wire.Kind) {
		script.WriteString(k.Notification() + "\r\n")
		wantPushes = append(wantPushes, k)
	}
	push(wire.KindClassified) // before the first reply
	for i := range n {
		script.WriteString(strconv.Itoa(1000+i) + "\r\n")
		if i%3 == 0 {
			push(wire.KindRandom)
		}
		if i%7 == 2 {
			push(wire.KindClassified)
			push(wire.KindRandom)
		}
		if i == 25 {
			script.WriteString("notif: weather\r\n")
		}
	}
	// Small writes, so that lines are split across reads.
	s := script.String()
	for len(s) > 0 {
		k := min(len(s), 13)
		p.write(s[:k])
		s = s[k:]
	}

	r := await(t, res, "Do")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !slices.Equal(r.items, want) {
		t.Fatalf("replies:\n got %+v\nwant %+v", r.items, want)
	}
	var got []wire.Kind
	for range wantPushes {
		got = append(got, await(t, pushes, "a push"))
	}
	if !slices.Equal(got, wantPushes) {
		t.Fatalf("pushes:\n got %v\nwant %v", got, wantPushes)
	}
	if len(pushes) != 0 {
		t.Fatalf("%d extra pushes", len(pushes))
	}
	if n := c.Strays(); n != 1 {
		t.Fatalf("Strays() = %d, want 1 (notif: weather)", n)
	}
}

// 5.
func TestConcurrentCallersEachGetTheirOwnReply(t *testing.T) {
	const callers = 200
	c, p := dialScripted(t, netclient.Options{})
	ctx, cancel := context.WithTimeout(bg, waitFor)
	defer cancel()

	type answer struct {
		kind wire.Kind
		item netclient.Item
		err  error
	}
	answers := make(chan answer, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		kind := wire.KindRandom
		if i%2 == 1 {
			kind = wire.KindClassified
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var it netclient.Item
			var err error
			if kind == wire.KindRandom {
				it, err = c.Random(ctx)
			} else {
				it, err = c.Classified(ctx)
			}
			answers <- answer{kind, it, err}
		}()
	}
	close(start)

	// The server answers each command as it reads it, with its ordinal.
	sent := make([]wire.Kind, callers)
	for ord := range callers {
		line, err := p.readLine()
		if err != nil {
			t.Fatalf("server: command %d: %v", ord, err)
		}
		switch line {
		case "random?":
			sent[ord] = wire.KindRandom
			p.write(strconv.Itoa(ord) + "\r\n")
		case "classified?":
			sent[ord] = wire.KindClassified
			p.write("ad " + strconv.Itoa(ord) + "\r\n")
		default:
			t.Fatalf("server: unexpected command %q", line)
		}
	}

	seen := make(map[int]bool)
	for range callers {
		a := await(t, answers, "a caller")
		if a.err != nil {
			t.Fatalf("%s caller: %v", a.kind, a.err)
		}
		if a.item.Kind != a.kind {
			t.Fatalf("%s caller got %+v", a.kind, a.item)
		}
		v := a.item.Value
		if a.kind == wire.KindClassified {
			var ok bool
			if v, ok = strings.CutPrefix(v, "ad "); !ok {
				t.Fatalf("classified caller got %q", a.item.Value)
			}
		}
		ord, err := strconv.Atoi(v)
		if err != nil || ord < 0 || ord >= callers {
			t.Fatalf("%s caller got %q", a.kind, a.item.Value)
		}
		if seen[ord] {
			t.Fatalf("reply %d delivered twice", ord)
		}
		seen[ord] = true
		if sent[ord] != a.kind {
			t.Fatalf("%s caller got the reply to command %d, a %s", a.kind, ord, sent[ord])
		}
	}
	wg.Wait()
	if len(seen) != callers {
		t.Fatalf("%d distinct replies, want %d", len(seen), callers)
	}
	if n := c.Strays(); n != 0 {
		t.Fatalf("Strays() = %d", n)
	}
}

// 6.
func TestRandomSkipsLinesThatCannotBeANumber(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("OK\r\nNice flat\r\n123\r\n")
	r := await(t, res, "Random")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := (netclient.Item{Kind: wire.KindRandom, Value: "123"}); r.item != want {
		t.Fatalf("Random = %+v, want %+v", r.item, want)
	}
	if n := c.Strays(); n != 2 {
		t.Fatalf("Strays() = %d, want 2", n)
	}
}

// 6.
func TestClassifiedEmptyLineMeansNoAd(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goItem(func() (netclient.Item, error) { return c.Classified(bg) })
	p.expect("classified?")
	p.write("\r\n")
	r := await(t, res, "Classified")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := (netclient.Item{Kind: wire.KindClassified, Empty: true}); r.item != want {
		t.Fatalf("Classified = %+v, want %+v", r.item, want)
	}
}

// 6. random?, classified?, notif and stop_notif are always valid, so no
// ERR line can be their reply: one before their reply is a banner or
// noise, a stray. Taking it for a reply would shift every later reply
// onto the wrong command.
func TestErrCannotAnswerCommandsThatCannotFail(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goDo(bg, c, netclient.ClassifiedCmd, netclient.RandomCmd, netclient.NotifyCmd)
	p.expect("classified?", "random?", "notif")
	p.write("ERR unknown command\r\nNice flat\r\nERR x\r\n5\r\nOK\r\n")
	r := await(t, res, "Do")
	want := []netclient.Item{{Kind: wire.KindClassified, Value: "Nice flat"}, {Kind: wire.KindRandom, Value: "5"}, {}}
	if r.err != nil || !slices.Equal(r.items, want) {
		t.Fatalf("Do = %+v, %v; want %+v", r.items, r.err, want)
	}
	if n := c.Strays(); n != 2 {
		t.Fatalf("Strays() = %d, want 2", n)
	}
	requireOpen(t, c)
}

// 6. An ERR line that a server sends before closing (too many
// connections, a line too long) ends the connection whatever was asked.
func TestFarewellEndsTheConnection(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write(wire.ErrTooManyFromAddr + "\r\n")
	r := await(t, res, "Random")
	var se *netclient.ServerError
	if !errors.As(r.err, &se) || se.Line != wire.ErrTooManyFromAddr {
		t.Fatalf("Random = %v, want a ServerError for %q", r.err, wire.ErrTooManyFromAddr)
	}
	requireDone(t, c)
}

// 6. A seen is answered OK, or ERR when the server refuses it.
func TestSeenTakesAnErrReply(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goDo(bg, c, netclient.SeenCmd(3), netclient.RandomCmd)
	p.expect("seen 3", "random?")
	p.write(wire.ErrNotIdentified + "\r\n5\r\n")
	r := await(t, res, "Do")
	var se *netclient.ServerError
	if !errors.As(r.err, &se) || se.Line != wire.ErrNotIdentified {
		t.Fatalf("Do(seen, random?) = %v, want a ServerError", r.err)
	}
	requireOpen(t, c)
}

// hello identifies c against the scripted server, which answers with the
// extended reply.
func hello(t *testing.T, c *netclient.Conn, p *peer) {
	t.Helper()
	res := goHello(func() (wire.Hello, error) { return c.Hello(bg, "client-1") })
	p.expect("hello client-1 v2")
	p.write("OK hello epoch=e1 latest=16 client=new\r\n")
	r := await(t, res, "Hello")
	if want := (wire.Hello{Epoch: "e1", Latest: 16, New: true}); r.err != nil || r.h != want {
		t.Fatalf("Hello = %+v, %v; want %+v", r.h, r.err, want)
	}
}

type helloResult struct {
	h   wire.Hello
	err error
}

func goHello(f func() (wire.Hello, error)) <-chan helloResult {
	ch := make(chan helloResult, 1)
	go func() {
		h, err := f()
		ch <- helloResult{h, err}
	}()
	return ch
}

// 7.
func TestHelloMakesRepliesCarryIDs(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	hello(t, c, p)

	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("17 89765234756\r\n")
	r := await(t, res, "Random")
	if want := (netclient.Item{Kind: wire.KindRandom, Value: "89765234756", ID: 17}); r.err != nil || r.item != want {
		t.Fatalf("Random = %+v, %v; want %+v", r.item, r.err, want)
	}

	res = goItem(func() (netclient.Item, error) { return c.Classified(bg) })
	p.expect("classified?")
	p.write("Nice flat\r\n18 Nice flat\r\n") // a version-1 reply first: a stray
	r = await(t, res, "Classified")
	if want := (netclient.Item{Kind: wire.KindClassified, Value: "Nice flat", ID: 18}); r.err != nil || r.item != want {
		t.Fatalf("Classified = %+v, %v; want %+v", r.item, r.err, want)
	}
	if n := c.Strays(); n != 1 {
		t.Fatalf("Strays() = %d, want 1 (the reply without id)", n)
	}
}

// 7.
func TestHelloRejectedByV1ServerKeepsV1Replies(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goHello(func() (wire.Hello, error) { return c.Hello(bg, "client-1") })
	p.expect("hello client-1 v2")
	p.write("ERR unknown command\r\n")
	r := await(t, res, "Hello")
	var se *netclient.ServerError
	if !errors.As(r.err, &se) || se.Line != wire.ErrUnknownCommand {
		t.Fatalf("Hello = %v, want a ServerError for ERR unknown command", r.err)
	}
	requireOpen(t, c)

	ires := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("123\r\n")
	if r := await(t, ires, "Random"); r.err != nil || r.item != (netclient.Item{Kind: wire.KindRandom, Value: "123"}) {
		t.Fatalf("Random = %+v, %v; want a version-1 item 123", r.item, r.err)
	}
}

// 7. A hark server from before epochs refuses the extended form as a bad
// client id: Hello identifies with the plain form, which tells no epoch.
func TestHelloFallsBackToThePlainFormOnAnOlderServer(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goHello(func() (wire.Hello, error) { return c.Hello(bg, "client-1") })
	p.expect("hello client-1 v2")
	p.write("ERR bad client id\r\n")
	p.expect("hello client-1")
	p.write("OK\r\n")
	if r := await(t, res, "Hello"); r.err != nil || r.h != (wire.Hello{}) {
		t.Fatalf("Hello = %+v, %v; want no error and no epoch", r.h, r.err)
	}
	ires := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("5 123\r\n")
	if r := await(t, ires, "Random"); r.err != nil || r.item.ID != 5 {
		t.Fatalf("Random = %+v, %v; want item 5: identified", r.item, r.err)
	}
}

// 7. Banner lines before hello's reply cannot be hello's reply: neither
// a greeting nor a bare OK.
func TestHelloSkipsBanners(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goHello(func() (wire.Hello, error) { return c.Hello(bg, "client-1") })
	p.expect("hello client-1 v2")
	p.write("Welcome!\r\nOK\r\nOK hello epoch=e1 latest=3 client=known\r\n")
	if r := await(t, res, "Hello"); r.err != nil || r.h != (wire.Hello{Epoch: "e1", Latest: 3}) {
		t.Fatalf("Hello = %+v, %v", r.h, r.err)
	}
	if n := c.Strays(); n != 2 {
		t.Fatalf("Strays() = %d, want 2 (the banners)", n)
	}
}

// 7. A banner starting with ERR is taken for hello's answer; when the
// real answer comes and accepts hello, the server now sends ids the client
// does not expect: the connection ends with ErrLateHello rather than
// misreading them.
func TestHelloAcceptedAfterAnErrBannerEndsTheConnection(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goHello(func() (wire.Hello, error) { return c.Hello(bg, "client-1") })
	p.expect("hello client-1 v2")
	p.write("ERR nobody expects a banner\r\n")
	r := await(t, res, "Hello")
	var se *netclient.ServerError
	if !errors.As(r.err, &se) {
		t.Fatalf("Hello = %v, want the banner as a ServerError", r.err)
	}
	p.write("OK hello epoch=e1 latest=3 client=known\r\n")
	requireDone(t, c)
	if !errors.Is(c.Err(), netclient.ErrLateHello) {
		t.Fatalf("Err() = %v, want ErrLateHello", c.Err())
	}
}

// 7. A reply to hello that says OK hello but cannot be read: the server
// identified the connection against an unknown store; it is closed.
func TestMalformedHelloReplyEndsTheConnection(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goHello(func() (wire.Hello, error) { return c.Hello(bg, "client-1") })
	p.expect("hello client-1 v2")
	p.write("OK hello epoch=e1\r\n")
	r := await(t, res, "Hello")
	var pe *netclient.ProtocolError
	if !errors.As(r.err, &pe) {
		t.Fatalf("Hello = %v, want a ProtocolError", r.err)
	}
	requireDone(t, c)
}

// 7. Hello waits for its reply like any command, until the reply timeout:
// a slow server is not a version-1 server.
func TestHelloWaitsLikeAnyCommand(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{ReplyTimeout: 300 * time.Millisecond})
	res := goHello(func() (wire.Hello, error) { return c.Hello(bg, "client-1") })
	p.expect("hello client-1 v2") // and never answer it
	r := await(t, res, "Hello")
	var pe *netclient.ProtocolError
	if !errors.As(r.err, &pe) || !strings.Contains(pe.Error(), "no reply") {
		t.Fatalf("Hello against a silent server = %v, want the reply timeout's ProtocolError", r.err)
	}
	requireDone(t, c)
}

// 7. The server answers every command written after hello with ids,
// whether or not Hello has returned yet: here hello and classified? go
// out in one write.
func TestCommandsPipelinedAfterHelloParseIDs(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	ctx, cancel := context.WithTimeout(bg, time.Second)
	defer cancel()
	res := goDo(ctx, c, netclient.HelloCmd("client-1"), netclient.ClassifiedCmd, netclient.RandomCmd)
	p.expect("hello client-1", "classified?", "random?")
	p.write("OK\r\n18 Nice flat\r\n19 123\r\n")
	r := await(t, res, "Do")
	if r.err != nil {
		t.Fatalf("Do(hello, classified?, random?): %v (Strays()=%d)", r.err, c.Strays())
	}
	want := []netclient.Item{{}, {Kind: wire.KindClassified, Value: "Nice flat", ID: 18}, {Kind: wire.KindRandom, Value: "123", ID: 19}}
	if !slices.Equal(r.items, want) {
		t.Fatalf("Do = %+v, want %+v", r.items, want)
	}
}

// 7. Hello timed out, then the server's OK arrives after all: the
// server now answers with ids, and the client must parse them so.
func TestHelloAnsweredLateStillSwitchesToIDs(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
	defer cancel()
	// Do, unlike Hello, leaves the connection open when its caller gives up.
	res := goDo(ctx, c, netclient.HelloCmd("client-1"))
	p.expect("hello client-1")
	if r := await(t, res, "Do(hello)"); !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("Do(hello) = %v, want the ctx deadline", r.err)
	}

	ctx2, cancel2 := context.WithTimeout(bg, 2*time.Second)
	defer cancel2()
	ires := goItem(func() (netclient.Item, error) { return c.Classified(ctx2) })
	p.expect("classified?")
	p.write("OK\r\n18 Nice flat\r\n") // the late OK, then an identified reply
	r := await(t, ires, "Classified")
	if want := (netclient.Item{Kind: wire.KindClassified, Value: "Nice flat", ID: 18}); r.err != nil || r.item != want {
		t.Fatalf("Classified after a late hello OK = %+v, %v; want %+v", r.item, r.err, want)
	}
}

// 8.
func TestOverlongLineClosesWithProtocolError(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goDo(bg, c, netclient.RandomCmd, netclient.ClassifiedCmd)
	p.expect("random?", "classified?")
	p.write(strings.Repeat("1", 5000) + "\r\n")
	r := await(t, res, "Do")
	var pe *netclient.ProtocolError
	if !errors.As(r.err, &pe) || !strings.Contains(pe.Error(), "4096") {
		t.Fatalf("Do = %+v, %v; want a ProtocolError mentioning 4096", r.items, r.err)
	}
	requireClosedWith(t, c, pe)
}

// 8.
func TestInvalidUTF8ClosesWithProtocolError(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goItem(func() (netclient.Item, error) { return c.Classified(bg) })
	p.expect("classified?")
	p.write("Nice \xff\xfe flat\r\n")
	r := await(t, res, "Classified")
	var pe *netclient.ProtocolError
	if !errors.As(r.err, &pe) {
		t.Fatalf("Classified = %+v, %v; want a ProtocolError", r.item, r.err)
	}
	requireClosedWith(t, c, pe)
}

// requireClosedWith checks that c ended with err and that further calls
// return it at once, without writing.
func requireClosedWith(t *testing.T, c *netclient.Conn, err error) {
	t.Helper()
	requireDone(t, c)
	if c.Err() != err {
		t.Fatalf("Err() = %v, want %v", c.Err(), err)
	}
	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	if r := await(t, res, "Random on a failed connection"); r.err != err {
		t.Fatalf("Random on a failed connection = %+v, %v; want %v", r.item, r.err, err)
	}
}

// 9.
func TestServerClosingMidReplyFailsCall(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("1234")
	p.nc.Close()
	r := await(t, res, "Random")
	if r.err == nil {
		t.Fatalf("Random = %+v from a reply cut short", r.item)
	}
	t.Logf("error: %v", r.err)
	requireDone(t, c)
}

// 9.
func TestConnectionResetFailsCall(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	if err := p.nc.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	p.nc.Close() // RST
	r := await(t, res, "Random")
	if r.err == nil {
		t.Fatalf("Random = %+v on a reset connection", r.item)
	}
	t.Logf("error: %v", r.err)
	requireDone(t, c)
}

// 9.
func TestSilentServerHitsReplyTimeout(t *testing.T) {
	const replyTimeout = 300 * time.Millisecond
	c, p := dialScripted(t, netclient.Options{ReplyTimeout: replyTimeout})
	sent := time.Now()
	// No deadline on the call; the server never answers.
	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	r := await(t, res, "Random")
	var pe *netclient.ProtocolError
	if !errors.As(r.err, &pe) || !strings.Contains(pe.Msg, "no reply within 300ms") {
		t.Fatalf("Random = %+v, %v; want a ProtocolError: no reply within 300ms", r.item, r.err)
	}
	if waited := time.Since(sent); waited < replyTimeout {
		t.Fatalf("gave up after %v, before the reply timeout", waited)
	}
	requireDone(t, c)
}

// 10.
func TestCancelledCallsLateReplyIsDiscarded(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	ctx, cancel := context.WithCancel(bg)
	res := goItem(func() (netclient.Item, error) { return c.Random(ctx) })
	p.expect("random?")
	cancel()
	if r := await(t, res, "Random"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled Random = %+v, %v; want context.Canceled", r.item, r.err)
	}

	cres := goItem(func() (netclient.Item, error) { return c.Classified(bg) })
	p.expect("classified?")
	p.write("777\r\nNice flat\r\n") // the late random, then the ad
	r := await(t, cres, "Classified")
	if want := (netclient.Item{Kind: wire.KindClassified, Value: "Nice flat"}); r.err != nil || r.item != want {
		t.Fatalf("Classified = %+v, %v; want %+v (the late random reply was not discarded)", r.item, r.err, want)
	}
	if n := c.Strays(); n != 0 {
		t.Fatalf("Strays() = %d, want 0: the late reply answers the cancelled call", n)
	}
	requireOpen(t, c)
}

// 10.
func TestCloseFailsCallsInFlight(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	ires := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	dres := goDo(bg, c, netclient.ClassifiedCmd, netclient.NotifyCmd)
	var lines []string
	for range 3 {
		l, err := p.readLine()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	if want := []string{"classified?", "notif", "random?"}; !slices.Equal(lines, want) {
		t.Fatalf("server read %q, want %q", lines, want)
	}

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := await(t, ires, "Random"); !errors.Is(r.err, netclient.ErrClosed) {
		t.Fatalf("Random in flight at Close = %+v, %v; want ErrClosed", r.item, r.err)
	}
	if r := await(t, dres, "Do"); !errors.Is(r.err, netclient.ErrClosed) {
		t.Fatalf("Do in flight at Close = %+v, %v; want ErrClosed", r.items, r.err)
	}
	requireClosedWith(t, c, netclient.ErrClosed)
}

// 11.
func TestDialClosedPortNamesAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(bg, waitFor)
	defer cancel()
	c, err := netclient.Dial(ctx, addr, netclient.Options{})
	if err == nil {
		c.Close()
		t.Fatalf("Dial to a closed port %s succeeded", addr)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("Dial error %q does not name %s", err, addr)
	}
}

// A caller whose ctx has already expired must get ctx.Err() without
// taking the shared connection down with it.
func TestExpiredContextDoesNotCloseConnection(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	expired, cancel := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel()
	if _, err := c.Random(expired); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Random(expired ctx) = %v, want context.DeadlineExceeded", err)
	}
	requireOpen(t, c)

	// Whether the expired call's command went out or not, the next call
	// gets a reply of its own.
	stop := p.answerAll(func(string) string { return "5" })
	defer stop()
	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	if r := await(t, res, "Random"); r.err != nil || r.item.Value != "5" {
		t.Fatalf("Random after a call with an expired ctx = %+v, %v; want 5", r.item, r.err)
	}
}

// Bug. A Cmd is one command line: an empty one gets no reply at all (the
// server ignores empty lines) and one holding a line break is two
// commands, either of which desynchronises the queue from the server's
// replies. Do must refuse them before writing.
func TestDoRejectsMalformedCommands(t *testing.T) {
	for _, cmd := range []netclient.Cmd{"", "random?\r\nrandom?", "notif\n"} {
		t.Run(strconv.Quote(string(cmd)), func(t *testing.T) {
			c, p := dialScripted(t, netclient.Options{})
			ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
			defer cancel()
			_, err := c.Do(ctx, cmd)
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Do(%q) = %v, want an error at once", cmd, err)
			}
			// Nothing was written: the next line is the next command's,
			// and its reply reaches it.
			ctx2, cancel2 := context.WithTimeout(bg, time.Second)
			defer cancel2()
			res := goItem(func() (netclient.Item, error) { return c.Random(ctx2) })
			p.expect("random?")
			p.write("5\r\n")
			if r := await(t, res, "Random"); r.err != nil || r.item.Value != "5" {
				t.Fatalf("Random after Do(%q) = %+v, %v; want 5", cmd, r.item, r.err)
			}
		})
	}
}

// logLines is an slog.Handler that keeps every record's message.
type logLines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

func (l *logLines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// 9. A server that sends more pushes than the burst allows is read more
// slowly, not dropped: every push still arrives, the reply after them
// too, and the slowdown is logged once however often it happens.
func TestUnsolicitedFloodIsReadSlowlyNotLost(t *testing.T) {
	logs := &logLines{}
	var pushes atomic.Int64
	c, p := dialScripted(t, netclient.Options{
		UnsolicitedBurst: 10, UnsolicitedRate: 10000,
		OnNotify: func(wire.Kind) { pushes.Add(1) },
		Logger:   slog.New(logs),
	})
	res := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write(strings.Repeat(wire.NotifRandom+"\r\n", 300) + "42\r\n")
	if r := await(t, res, "Random"); r.err != nil || r.item.Value != "42" {
		t.Fatalf("Random after a flood = %+v, %v", r.item, r.err)
	}
	if n := pushes.Load(); n != 300 {
		t.Fatalf("%d pushes routed, want 300", n)
	}
	if random, ads := c.TakePushes(); !random || ads != 0 {
		t.Fatalf("TakePushes = %v, %d; want the random push", random, ads)
	}
	if n := logs.count("reading more slowly"); n != 1 {
		t.Fatalf("the slowdown was logged %d times, want once (with a count later)", n)
	}
}

// 9. Pushes read before notif's OK are covered by the announcements that
// follow it: TakePushes forgets them there, so any number of pushes
// arriving while a fetch cycle is pending costs one more cycle at most.
func TestPushesBeforeNotifOKAreCoveredByItsAnnouncements(t *testing.T) {
	c, p := dialScripted(t, netclient.Options{})
	res := goDo(bg, c, netclient.StopNotifyCmd, netclient.ClassifiedCmd, netclient.NotifyCmd)
	p.expect("stop_notif", "classified?", "notif")
	p.write(strings.Repeat(wire.NotifClassified+"\r\n", 50) + wire.NotifRandom + "\r\nOK\r\nNice flat\r\nOK\r\n" + wire.NotifClassified + "\r\n" + wire.NotifClassified + "\r\n")
	if r := await(t, res, "Do"); r.err != nil {
		t.Fatal(r.err)
	}
	// The two announcements after the OK may still be in flight: a
	// round trip orders them before the next reply.
	rres := goItem(func() (netclient.Item, error) { return c.Random(bg) })
	p.expect("random?")
	p.write("5\r\n")
	if r := await(t, rres, "Random"); r.err != nil {
		t.Fatal(r.err)
	}
	if random, ads := c.TakePushes(); random || ads != 2 {
		t.Fatalf("TakePushes = %v, %d; want only the 2 announcements after notif's OK", random, ads)
	}
}
