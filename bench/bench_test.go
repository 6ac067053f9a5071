package bench

import (
	"bufio"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/harkapp/hark/wire"
)

func TestMain(m *testing.M) {
	if code, child := floorChild(); child { // BenchmarkLoopbackFloor's server process
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// timeout bounds every wait of these tests.
const timeout = 10 * time.Second

func TestDistNearestRank(t *testing.T) {
	us := make([]uint32, 0, 100)
	for i := 100; i >= 1; i-- { // unsorted on purpose
		us = append(us, uint32(i*1000))
	}
	got := distOf(us)
	want := Dist{P50: 50, P90: 90, P99: 99, Max: 100, N: 100}
	if got != want {
		t.Errorf("1..100 ms: got %+v, want %+v", got, want)
	}
	// 1,000 samples: p99 is the 990th, not the 991st nor an average.
	us = us[:0]
	for i := 1; i <= 1000; i++ {
		us = append(us, uint32(i))
	}
	if got := distOf(us); got.P99 != 0.990 || got.P90 != 0.900 || got.P50 != 0.500 || got.Max != 1 {
		t.Errorf("1..1000 µs: got %+v", got)
	}
	if got := distOf([]uint32{1500}); got != (Dist{P50: 1.5, P90: 1.5, P99: 1.5, Max: 1.5, N: 1}) {
		t.Errorf("one sample: got %+v", got)
	}
	if got := distOf([]uint32{1000, 2000}); got.P50 != 1 || got.P90 != 2 || got.P99 != 2 {
		t.Errorf("two samples: got %+v", got)
	}
	if got := distOf(nil); got != (Dist{}) {
		t.Errorf("no samples: got %+v", got)
	}
}

func TestValuesIdentifyItems(t *testing.T) {
	for _, kind := range []wire.Kind{wire.KindClassified, wire.KindRandom} {
		r := newRun(Config{Kind: kind, Items: 1000, Clients: 1})
		for _, n := range []int{0, 1, 9, 10, 999} {
			v := r.value(n)
			if got := r.item(v); got != n {
				t.Errorf("%s: item(%q) = %d, want %d", kind, v, got, n)
			}
			var err error
			if kind == wire.KindRandom {
				_, err = wire.ParseRandom(v)
			} else {
				err = wire.ValidateAd(v)
			}
			if err != nil {
				t.Errorf("%s: value %q cannot be published: %v", kind, v, err)
			}
		}
		other := newRun(Config{Kind: kind, Items: 1000, Clients: 1})
		foreign := []string{"", "Bike for sale", "bench", r.value(0) + " ", other.value(5), "89765234756"}
		if kind == wire.KindClassified {
			foreign = append(foreign, "bench "+r.tag+" 01", "bench "+r.tag+" 1000", "bench "+r.tag+" -1", "bench "+r.tag+" +1")
		} else {
			foreign = append(foreign, r.value(999)+"0")
		}
		for _, v := range foreign {
			if got := r.item(v); got != -1 {
				t.Errorf("%s: item(%q) = %d, want -1 (not this run's)", kind, v, got)
			}
		}
	}
}

func TestShellQuote(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	for _, s := range []string{"bench 1a2b 3", "it's", `"$HOME" $(id) ; rm -rf /tmp/x`, "a\\b", ""} {
		out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh got %q (%v), want %q", out, err, s)
		}
	}
}

// peer is the server's end of a scripted connection.
type peer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (p *peer) expect(lines ...string) {
	p.t.Helper()
	for _, w := range lines {
		_ = p.nc.SetReadDeadline(time.Now().Add(timeout))
		got, err := p.br.ReadString('\n')
		if err != nil || got != w+"\r\n" {
			p.t.Fatalf("the client sent %q (%v), want %q", got, err, w)
		}
	}
}

func (p *peer) send(lines ...string) {
	p.t.Helper()
	_ = p.nc.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := p.nc.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")); err != nil {
		p.t.Fatalf("send %d line(s) starting %q: %v", len(lines), lines[0], err)
	}
}

// scripted runs one client of a run of items classified ads against a
// scripted server, and returns the server's end and a channel that yields
// the client once its connection has ended.
func scripted(t *testing.T, items int, v1 bool) (*run, *peer, <-chan *client) {
	t.Helper()
	return scriptedWith(t, items, v1, nil)
}

// scriptedWith is scripted with the run adjusted by tweak before its
// client is made.
func scriptedWith(t *testing.T, items int, v1 bool, tweak func(*run)) (*run, *peer, <-chan *client) {
	t.Helper()
	r := newRun(Config{Server: "script", Clients: 1, Items: items, V1: v1, PublishCmd: "true {value}"}.withDefaults())
	if tweak != nil {
		tweak(r)
	}
	cn, sn := net.Pipe()
	c := newClient(r, 0)
	out := make(chan *client, 1)
	go func() {
		if err := c.start(cn); err == nil {
			_ = c.loop()
		}
		_ = cn.Close()
		out <- c
	}()
	p := &peer{t: t, nc: sn, br: bufio.NewReader(sn)}
	t.Cleanup(func() { sn.Close() })
	return r, p, out
}

func finish(t *testing.T, p *peer, out <-chan *client) *client {
	t.Helper()
	p.nc.Close()
	select {
	case c := <-out:
		return c
	case <-time.After(timeout):
		t.Fatal("the client did not end when its connection closed")
		return nil
	}
}

// TestCrossingPush: a push that crosses the fetch cycle on the wire is
// announced again after the cycle's notif; the client must fetch that ad
// once (a second classified? would return the most recent ad again, a
// false duplicate), and its notif time is the crossing push's.
func TestCrossingPush(t *testing.T) {
	r, p, out := scripted(t, 2, true)
	p.expect("notif")
	p.send("OK")

	r.pubAt[0].Store(r.since())
	p.send("notif: classified")
	p.expect("stop_notif", "classified?", "notif")
	r.pubAt[1].Store(r.since())
	// Item 1's push left before the server read stop_notif; it is still
	// unread, so the notif's announcement names it again. A pipe's write
	// returns once the client has read it, and the client reads a line
	// only after handling the one before: once "OK" is taken, the push
	// has been handled, before heard.
	p.send("notif: classified")
	p.send("OK")
	heard := r.since()
	p.send(r.value(0), "OK", "notif: classified")
	p.expect("stop_notif", "classified?", "notif") // one fetch, not two
	p.send("OK", r.value(1), "OK")

	c := finish(t, p, out)
	if !c.has(0) || !c.has(1) || c.dup != 0 || c.foreign != 0 {
		t.Errorf("fetched 0: %v, 1: %v; %d duplicated, %d foreign", c.has(0), c.has(1), c.dup, c.foreign)
	}
	if len(c.notifUS) != 2 || len(c.fetchUS) != 2 {
		t.Errorf("%d notif and %d fetch samples, want 2 and 2", len(c.notifUS), len(c.fetchUS))
	}
	if c.maxBatch != 1 {
		t.Errorf("largest batch %d, want 1", c.maxBatch)
	}
	// Item 1 was heard of with the crossing push, not the announcement.
	if len(c.notifUS) == 2 && int64(c.notifUS[1])*1000 >= heard-r.pubAt[1].Load() {
		t.Errorf("item 1's notif time is %d µs after publishing, want the crossing push's, before %d µs", c.notifUS[1], (heard-r.pubAt[1].Load())/1000)
	}
}

// TestLongAnnouncement: the announcements after a cycle's notif can be
// longer than the client's read buffer, and so arrive in more than one
// read. The client must wait for all those it holds tokens for before its
// next cycle; taking the late ones for news would fetch those ads twice.
func TestLongAnnouncement(t *testing.T) {
	const n = 41 // 40 cross the first cycle: 40 × 19 bytes of announcements
	r, p, out := scripted(t, n, true)
	p.expect("notif")
	p.send("OK")
	for i := range n {
		r.pubAt[i].Store(r.since())
	}
	p.send("notif: classified")
	p.expect("stop_notif", "classified?", "notif")
	reply := []string{}
	for range n - 1 {
		reply = append(reply, "notif: classified") // crossing pushes
	}
	reply = append(reply, "OK", r.value(0), "OK")
	for range n - 1 {
		reply = append(reply, "notif: classified") // their announcements
	}
	p.send(reply...)
	want := []string{"stop_notif"}
	reply = []string{"OK"}
	for i := 1; i < n; i++ {
		want = append(want, "classified?")
		reply = append(reply, r.value(i))
	}
	p.expect(append(want, "notif")...)
	p.send(append(reply, "OK")...)
	c := finish(t, p, out)
	if c.dup != 0 || len(c.fetchUS) != n || len(c.notifUS) != n {
		t.Errorf("%d duplicated, %d fetch and %d notif samples; want 0, %d, %d", c.dup, len(c.fetchUS), len(c.notifUS), n, n)
	}
}

// TestDuplicateAndBacklog: an ad fetched twice is counted as a duplicate;
// pushes that pile up are fetched in one batch, which max_batch shows.
func TestDuplicateAndBacklog(t *testing.T) {
	r, p, out := scripted(t, 3, true)
	p.expect("notif")
	p.send("OK")
	for n := range 3 {
		r.pubAt[n].Store(r.since())
	}
	p.send("notif: classified", "notif: classified", "notif: random", "notif: classified")
	p.expect("stop_notif", "classified?", "classified?", "classified?", "notif")
	// The server hands out ad 1 twice (a bug this bench must catch) and
	// never ad 2.
	p.send("OK", r.value(0), r.value(1), r.value(1), "OK")
	c := finish(t, p, out)
	if c.dup != 1 || !c.has(0) || !c.has(1) || c.has(2) {
		t.Errorf("%d duplicated (want 1); fetched %v %v %v (want true true false)", c.dup, c.has(0), c.has(1), c.has(2))
	}
	if c.maxBatch != 3 {
		t.Errorf("largest batch %d, want 3", c.maxBatch)
	}
}

// TestIdentifiedAcknowledges: an identified client says hello, reads ids,
// and acknowledges what it received at the front of its next batch.
func TestIdentifiedAcknowledges(t *testing.T) {
	r, p, out := scripted(t, 2, false)
	p.expect("hello bench-" + r.tag + "-0 v2")
	p.send("OK hello epoch=ab latest=0 client=new")
	p.expect("notif") // not offered items in pushes: the fetch cycle
	p.send("OK")
	r.pubAt[0].Store(r.since())
	p.send("notif: classified")
	p.expect("stop_notif", "classified?", "notif")
	p.send("OK", "7 "+r.value(0), "OK")
	r.pubAt[1].Store(r.since())
	p.send("notif: classified")
	p.expect("seen 7", "stop_notif", "classified?", "notif")
	p.send("OK", "OK", "8 "+r.value(1), "OK")
	c := finish(t, p, out)
	if !c.has(0) || !c.has(1) || c.dup != 0 || c.received != 8 {
		t.Errorf("fetched %v %v, %d duplicated, received up to %d", c.has(0), c.has(1), c.dup, c.received)
	}
}

// TestItemsInPushes: offered items in pushes, an identified client enters
// notification mode with notif items, counts each pushed item as notified
// and fetched at once, acknowledges once its period is up (here at once,
// the period being a nanosecond: the first item) and otherwise not before
// the next period (here: at the front of the cycle a plain push starts),
// and ends that cycle with notif items again.
func TestItemsInPushes(t *testing.T) {
	r, p, out := scriptedWith(t, 3, false, func(r *run) { r.ackEvery = 1 })
	p.expect("hello bench-" + r.tag + "-0 v2")
	p.send("OK hello epoch=ab latest=0 client=new push=diffs,items")
	p.expect("notif items")
	p.send("OK")
	r.pubAt[0].Store(r.since())
	p.send("notif: classified 7 " + r.value(0))
	p.expect("seen 7")
	r.ackEvery = int64(time.Minute) // the pipe orders this before the client's next read
	p.send("OK")
	r.pubAt[1].Store(r.since())
	p.send("notif: random 8 99", "notif: classified 9 "+r.value(1)) // the other kind: acknowledged, not counted
	r.pubAt[2].Store(r.since())
	p.send("notif: classified") // a plain push (the mode is being switched, say): fetched
	p.expect("seen 9", "stop_notif", "classified?", "notif items")
	p.send("OK", "OK", "10 "+r.value(2), "OK")
	c := finish(t, p, out)
	if !c.pushItems || !c.has(0) || !c.has(1) || !c.has(2) || c.dup != 0 || c.received != 10 || len(c.fetchUS) != 3 || len(c.notifUS) != 3 {
		t.Errorf("items in pushes %v; fetched %v %v %v, %d duplicated, received up to %d, %d fetch and %d notif samples",
			c.pushItems, c.has(0), c.has(1), c.has(2), c.dup, c.received, len(c.fetchUS), len(c.notifUS))
	}
}

// TestClassicDeclinesItems: --classic runs the fetch cycle on a server
// that offers items in pushes.
func TestClassicDeclinesItems(t *testing.T) {
	r, p, out := scriptedWith(t, 1, false, func(r *run) { r.cfg.Classic = true })
	p.expect("hello bench-" + r.tag + "-0 v2")
	p.send("OK hello epoch=ab latest=0 client=new push=items")
	p.expect("notif")
	p.send("OK")
	if c := finish(t, p, out); c.pushItems {
		t.Errorf("items in pushes %v; want the fetch cycle", c.pushItems)
	}
}

// TestSetupErrors: what a client says when the server will not have it.
func TestSetupErrors(t *testing.T) {
	cases := []struct {
		name  string
		v1    bool
		reply []string
		want  string
	}{
		{"full", true, []string{wire.ErrTooManyConns}, "max-conns"},
		{"full for one address", true, []string{wire.ErrTooManyFromAddr}, "max-conns-per-addr"},
		{"no hello", false, []string{wire.ErrUnknownCommand, "OK"}, "--v1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(Config{Server: "script", Clients: 1, Items: 1, V1: tc.v1, PublishCmd: "true {value}"}.withDefaults())
			cn, sn := net.Pipe()
			defer sn.Close()
			c := newClient(r, 0)
			errc := make(chan error, 1)
			go func() { errc <- c.start(cn); cn.Close() }()
			p := &peer{t: t, nc: sn, br: bufio.NewReader(sn)}
			p.br.ReadString('\n') // what the client sends is not the point here
			p.send(tc.reply...)
			select {
			case err := <-errc:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("got %v, want an error saying %q", err, tc.want)
				}
			case <-time.After(timeout):
				t.Fatal("no error")
			}
		})
	}
}

// TestSpread: against servers on 127.0.0.0/8 (on Linux), clients
// connect from distinct loopback addresses, never 127.0.0.1, at most
// MaxPerSource from each; elsewhere the system chooses.
func TestSpread(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("clients spread over loopback addresses on Linux only")
	}
	for _, clients := range []int{1, 100, 101, 500, 10000} {
		src := spread([]string{"127.0.0.1:6789", "127.0.0.2:6789"}, clients)
		per := map[string]int{}
		for i := range clients {
			a := src.addr(i)
			if a == nil || !a.IP.IsLoopback() || a.IP.To4() == nil || a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
				t.Fatalf("%d clients: client %d connects from %v, want a loopback address other than 127.0.0.1", clients, i, a)
			}
			per[a.IP.String()]++
		}
		want := (clients + MaxPerSource - 1) / MaxPerSource
		if len(per) != want {
			t.Errorf("%d clients from %d addresses, want %d", clients, len(per), want)
		}
		for ip, n := range per {
			if n > MaxPerSource {
				t.Errorf("%d clients: %d from %s, want at most %d", clients, n, ip, MaxPerSource)
			}
		}
		if got := src.perSource(clients); got > MaxPerSource {
			t.Errorf("%d clients: perSource %d, want at most %d", clients, got, MaxPerSource)
		}
	}
	for _, servers := range [][]string{{"[::1]:6789"}, {"localhost:6789"}, {"192.0.2.1:6789"}, {"bad"}, {"127.0.0.1:6789", "[::1]:6789"}} {
		if src := spread(servers, 1000); src.addr(0) != nil || src.perSource(1000) != 1000 {
			t.Errorf("%s: clients connect from %v, want the system's choice", servers, src.addr(0))
		}
	}
}

// TestClientsTakeTheServersInTurn: with several servers, client i
// connects to the (i mod n)-th, so that each gets its share, and a TLS
// client verifies the host it connects to.
func TestClientsTakeTheServersInTurn(t *testing.T) {
	cfg := Config{Server: "127.0.0.1:1,localhost:2,[::1]:3", Clients: 7, Items: 1, PublishURL: "http://127.0.0.1:1", TLS: &tls.Config{}}
	r := newRun(cfg.withDefaults())
	var got []string
	for i := range cfg.Clients {
		c := newClient(r, i)
		got = append(got, c.server()+" "+r.tls[i%len(r.tls)].ServerName)
	}
	want := []string{"127.0.0.1:1 127.0.0.1", "localhost:2 localhost", "[::1]:3 ::1", "127.0.0.1:1 127.0.0.1", "localhost:2 localhost", "[::1]:3 ::1", "127.0.0.1:1 127.0.0.1"}
	if !slices.Equal(got, want) {
		t.Fatalf("clients connect to %q, want %q", got, want)
	}
	if r.src.addr(0) != nil {
		t.Errorf("clients bind %v, want the system's choice: a server on ::1 cannot be reached from 127.0.0.2", r.src.addr(0))
	}
}
