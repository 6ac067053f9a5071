package tray

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// base is the presenter tests' made-up clock: every time is base plus an
// offset, and nothing waits.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

const ms = time.Millisecond

func ad(v string) netclient.Delivery { return netclient.Delivery{Kind: wire.KindClassified, Value: v} }
func num(v string) netclient.Delivery {
	return netclient.Delivery{Kind: wire.KindRandom, Value: v}
}

func popupsEqual(t *testing.T, what string, got, want []Popup) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestPresenterSinglePopups(t *testing.T) {
	p := newPresenter(DefaultSettings())
	popupsEqual(t, "an ad", p.item(source{}, ad("Bike for sale, 50 EUR"), at(0)),
		[]Popup{{Title: "New classified ad", Body: "Bike for sale, 50 EUR"}})
	popupsEqual(t, "a number", p.item(source{}, num("4711"), at(10*time.Second)),
		[]Popup{{Title: "New random number", Body: "4711"}})
	// The body is the value as it is: the notifier escapes it.
	popupsEqual(t, "markup", p.item(source{}, ad("<b>Free</b> & cheap"), at(20*time.Second)),
		[]Popup{{Title: "New classified ad", Body: "<b>Free</b> & cheap"}})
	if _, ok := p.due(); ok {
		t.Fatal("due() with nothing held back")
	}
	if got := p.flush(at(time.Hour)); got != nil {
		t.Fatalf("flush with nothing held back = %q", got)
	}
}

func TestPresenterUnknownKindMakesNothing(t *testing.T) {
	p := newPresenter(DefaultSettings())
	if got := p.item(source{}, netclient.Delivery{Kind: "weather", Value: "rain"}, at(0)); got != nil {
		t.Fatalf("an unknown kind made %q", got)
	}
}

func TestPresenterKindsSwitchedOff(t *testing.T) {
	p := newPresenter(Settings{Random: false, Classified: true})
	if got := p.item(source{}, num("1"), at(0)); got != nil {
		t.Fatalf("random numbers are off, yet %q", got)
	}
	popupsEqual(t, "an ad", p.item(source{}, ad("a"), at(1*ms)), []Popup{{Title: "New classified ad", Body: "a"}})

	p.setKind("", wire.KindClassified, false)
	p.setKind("", wire.KindRandom, true)
	if got := p.item(source{}, ad("b"), at(2*ms)); got != nil {
		t.Fatalf("ads are off, yet %q", got)
	}
	popupsEqual(t, "a number", p.item(source{}, num("2"), at(3*ms)), []Popup{{Title: "New random number", Body: "2"}})

	// Items switched off do not count towards a burst either: two shown
	// so far, so a third still shows.
	for i := range 10 {
		if got := p.item(source{}, ad(fmt.Sprint("off", i)), at(4*ms)); got != nil {
			t.Fatalf("ads are off, yet %q", got)
		}
	}
	popupsEqual(t, "a third number", p.item(source{}, num("3"), at(5*ms)), []Popup{{Title: "New random number", Body: "3"}})
}

func TestPresenterDoNotDisturb(t *testing.T) {
	p := newPresenter(DefaultSettings())
	if got := p.setDND(true); got != nil {
		t.Fatalf("entering do not disturb made %q", got)
	}
	if got := p.setDND(true); got != nil {
		t.Fatalf("entering it again made %q", got)
	}
	for i, d := range []netclient.Delivery{ad("a1"), num("1"), ad("a2"), ad("a3"), num("2")} {
		if got := p.item(source{}, d, at(time.Duration(i)*ms)); got != nil {
			t.Fatalf("item %d during do not disturb made %q", i, got)
		}
	}
	if _, ok := p.due(); ok {
		t.Fatal("items during do not disturb were batched")
	}
	popupsEqual(t, "leaving do not disturb", p.setDND(false), []Popup{{
		Title: "5 items arrived while do not disturb was on",
		Body:  "3 classified ads and 2 random numbers. The latest are in hark's menu.",
	}})
	// The count starts over.
	if got := p.setDND(false); got != nil {
		t.Fatalf("leaving it again made %q", got)
	}
	p.setDND(true)
	if got := p.setDND(false); got != nil {
		t.Fatalf("a do not disturb with nothing in it made %q", got)
	}
	// And popups are back.
	popupsEqual(t, "after", p.item(source{}, ad("back"), at(time.Minute)), []Popup{{Title: "New classified ad", Body: "back"}})
}

func TestPresenterDoNotDisturbSingular(t *testing.T) {
	for _, c := range []struct {
		d    netclient.Delivery
		body string
	}{
		{ad("a"), "1 classified ad. The latest are in hark's menu."},
		{num("1"), "1 random number. The latest are in hark's menu."},
	} {
		p := newPresenter(Settings{Random: true, Classified: true, DoNotDisturb: true})
		if got := p.item(source{}, c.d, at(0)); got != nil {
			t.Fatalf("do not disturb from the settings, yet %q", got)
		}
		popupsEqual(t, "one item", p.setDND(false), []Popup{{Title: "1 item arrived while do not disturb was on", Body: c.body}})
	}
}

func TestPresenterDoNotDisturbMixedSingulars(t *testing.T) {
	p := newPresenter(DefaultSettings())
	p.setDND(true)
	p.item(source{}, ad("a"), at(0))
	p.item(source{}, num("1"), at(0))
	popupsEqual(t, "one of each", p.setDND(false), []Popup{{
		Title: "2 items arrived while do not disturb was on",
		Body:  "1 classified ad and 1 random number. The latest are in hark's menu.",
	}})
}

func TestPresenterDoNotDisturbSkipsKindsSwitchedOff(t *testing.T) {
	p := newPresenter(Settings{Random: false, Classified: true})
	p.setDND(true)
	p.item(source{}, num("1"), at(0))
	p.item(source{}, num("2"), at(0))
	p.item(source{}, ad("a"), at(0))
	p.item(source{}, ad("b"), at(0))
	popupsEqual(t, "only ads counted", p.setDND(false), []Popup{{
		Title: "2 items arrived while do not disturb was on",
		Body:  "2 classified ads. The latest are in hark's menu.",
	}})

	p.setDND(true)
	p.item(source{}, num("3"), at(time.Minute))
	if got := p.setDND(false); got != nil {
		t.Fatalf("only a switched-off kind arrived, yet %q", got)
	}
}

// burst feeds n ads 100 ms apart from start, named prefix1..prefixN, and
// returns the popups made at once.
func burst(p *presenter, prefix string, n int, start time.Duration) []Popup {
	var out []Popup
	for i := range n {
		out = append(out, p.item(source{}, ad(fmt.Sprint(prefix, i+1)), at(start+time.Duration(i)*100*ms))...)
	}
	return out
}

func TestPresenterBurst(t *testing.T) {
	p := newPresenter(DefaultSettings())
	// Ten ads within a second: three show, seven are held.
	got := burst(p, "ad", 10, 0)
	popupsEqual(t, "the burst's first popups", got, []Popup{
		{Title: "New classified ad", Body: "ad1"},
		{Title: "New classified ad", Body: "ad2"},
		{Title: "New classified ad", Body: "ad3"},
	})
	dueAt, ok := p.due()
	if !ok {
		t.Fatal("seven ads held back, and due() says nothing is")
	}
	// Due one window after the first ad held back (the 4th, at 300 ms).
	if want := at(300*ms + burstWindow); !dueAt.Equal(want) {
		t.Fatalf("due at %v, want %v (the 4th item's time + %v)", dueAt.Sub(base), want.Sub(base), burstWindow)
	}
	if got := p.flush(dueAt.Add(-time.Nanosecond)); got != nil {
		t.Fatalf("flush before due = %q", got)
	}
	if _, ok := p.due(); !ok {
		t.Fatal("an early flush dropped the batch")
	}
	popupsEqual(t, "flush at due", p.flush(dueAt), []Popup{{
		Title: "7 new classified ads",
		Body:  "• ad4\n• ad5\n• ad6\n…and 4 more",
		Group: "burst",
	}})
	if _, ok := p.due(); ok {
		t.Fatal("due() after the batch was shown")
	}
	if got := p.flush(dueAt.Add(time.Hour)); got != nil {
		t.Fatalf("a second flush = %q", got)
	}
}

func TestPresenterBurstFlushLate(t *testing.T) {
	// A flush later than due (a busy machine) shows the same summary.
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 5, 0)
	popupsEqual(t, "a late flush", p.flush(at(time.Minute)), []Popup{{
		Title: "2 new classified ads",
		Body:  "• ad4\n• ad5",
		Group: "burst",
	}})
}

func TestPresenterBurstSummaryOfExactlyShown(t *testing.T) {
	// Three held: all listed, no "and more" line.
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 6, 0)
	dueAt, _ := p.due()
	popupsEqual(t, "three held", p.flush(dueAt), []Popup{{
		Title: "3 new classified ads",
		Body:  "• ad4\n• ad5\n• ad6",
		Group: "burst",
	}})
}

func TestPresenterBurstOfNumbers(t *testing.T) {
	p := newPresenter(DefaultSettings())
	for i := range 5 {
		p.item(source{}, num(fmt.Sprint(i+1)), at(time.Duration(i)*ms))
	}
	dueAt, _ := p.due()
	popupsEqual(t, "numbers", p.flush(dueAt), []Popup{{
		Title: "2 new random numbers",
		Body:  "• 4\n• 5",
		Group: "burst",
	}})
}

func TestPresenterBurstMixedKinds(t *testing.T) {
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 3, 0)
	p.item(source{}, num("1"), at(400*ms))
	p.item(source{}, ad("x"), at(500*ms))
	p.item(source{}, num("2"), at(600*ms))
	p.item(source{}, ad("y"), at(700*ms))
	dueAt, _ := p.due()
	popupsEqual(t, "mixed", p.flush(dueAt), []Popup{{
		Title: "4 new items",
		Body:  "• 1\n• x\n• 2\n…and 1 more",
		Group: "burst",
	}})
}

func TestPresenterBatchOfOneIsSingle(t *testing.T) {
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 4, 0)
	dueAt, ok := p.due()
	if !ok {
		t.Fatal("the 4th ad was not held back")
	}
	popupsEqual(t, "a batch of one", p.flush(dueAt), []Popup{{Title: "New classified ad", Body: "ad4"}})
}

func TestPresenterWindowSlides(t *testing.T) {
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 3, 0) // at 0, 100, 200 ms
	// Exactly one window after the first, it has left the window.
	popupsEqual(t, "at +2s", p.item(source{}, ad("late"), at(burstWindow)), []Popup{{Title: "New classified ad", Body: "late"}})
	// But 100 ms and 200 ms are still in it, with "late": the window is full.
	if got := p.item(source{}, ad("held"), at(burstWindow+50*ms)); got != nil {
		t.Fatalf("a 4th popup within the window: %q", got)
	}
	if _, ok := p.due(); !ok {
		t.Fatal("not held back")
	}
}

func TestPresenterJustInsideWindowIsHeld(t *testing.T) {
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 3, 0)
	if got := p.item(source{}, ad("held"), at(burstWindow-time.Nanosecond)); got != nil {
		t.Fatalf("a 4th popup 1 ns inside the window: %q", got)
	}
}

func TestPresenterSteadyTrickleNeverBatches(t *testing.T) {
	// One item every 700 ms: never more than three within two seconds.
	p := newPresenter(DefaultSettings())
	for i := range 30 {
		got := p.item(source{}, ad(fmt.Sprint("ad", i)), at(time.Duration(i)*700*ms))
		if len(got) != 1 || got[0].Body != fmt.Sprint("ad", i) {
			t.Fatalf("item %d: %q", i, got)
		}
	}
	if _, ok := p.due(); ok {
		t.Fatal("a steady trickle was batched")
	}
}

func TestPresenterIndividualAgainAfterBurst(t *testing.T) {
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 8, 0)
	dueAt, _ := p.due()
	if got := p.flush(dueAt); len(got) != 1 || got[0].Group != "burst" {
		t.Fatalf("flush = %q", got)
	}
	// Items arriving while a batch is pending join it, however late;
	// once it is flushed and the window has passed, they show singly.
	later := dueAt.Sub(base) + burstWindow
	got := burst(p, "calm", 3, later)
	popupsEqual(t, "after the window", got, []Popup{
		{Title: "New classified ad", Body: "calm1"},
		{Title: "New classified ad", Body: "calm2"},
		{Title: "New classified ad", Body: "calm3"},
	})
	if _, ok := p.due(); ok {
		t.Fatal("held back after the window had passed")
	}
}

func TestPresenterSummaryCountsInTheWindow(t *testing.T) {
	// A flush is a popup too: right after it, two more singles fit in the
	// window, and the next is held again. At most burstLimit+1 popups per
	// window, as the presenter promises.
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 5, 0)
	dueAt, _ := p.due()
	p.flush(dueAt)
	d := dueAt.Sub(base)
	shown := 0
	for i := range 5 {
		shown += len(p.item(source{}, ad(fmt.Sprint("next", i)), at(d+time.Duration(i+1)*ms)))
	}
	if shown != burstLimit-1 {
		t.Fatalf("%d singles right after a summary, want %d", shown, burstLimit-1)
	}
	next, ok := p.due()
	if !ok || !next.Equal(at(d+3*ms+burstWindow)) {
		t.Fatalf("due() = %v, %v; want %v", next.Sub(base), ok, d+3*ms+burstWindow)
	}
}

func TestPresenterDoNotDisturbTakesPendingBatch(t *testing.T) {
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 3, 0)
	p.item(source{}, ad("held1"), at(400*ms))
	p.item(source{}, num("7"), at(500*ms))
	p.item(source{}, ad("held2"), at(600*ms))
	dueAt, ok := p.due()
	if !ok {
		t.Fatal("nothing held back")
	}
	if got := p.setDND(true); got != nil {
		t.Fatalf("entering do not disturb made %q", got)
	}
	if _, ok := p.due(); ok {
		t.Fatal("the batch is still due during do not disturb")
	}
	if got := p.flush(dueAt); got != nil {
		t.Fatalf("the batch was shown during do not disturb: %q", got)
	}
	p.item(source{}, ad("during"), at(time.Second))
	popupsEqual(t, "leaving", p.setDND(false), []Popup{{
		Title: "4 items arrived while do not disturb was on",
		Body:  "3 classified ads and 1 random number. The latest are in hark's menu.",
	}})
}

func TestPresenterDoNotDisturbSkipsBatchedKindSwitchedOff(t *testing.T) {
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 3, 0)
	p.item(source{}, ad("held1"), at(400*ms))
	p.item(source{}, num("7"), at(500*ms))
	p.setKind("", wire.KindRandom, false)
	p.setDND(true)
	popupsEqual(t, "leaving", p.setDND(false), []Popup{{
		Title: "1 item arrived while do not disturb was on",
		Body:  "1 classified ad. The latest are in hark's menu.",
	}})
}

func TestPresenterKindSwitchedOffWhileBatched(t *testing.T) {
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 3, 0)
	for i, d := range []netclient.Delivery{ad("x1"), num("1"), ad("x2"), num("2"), num("3")} {
		p.item(source{}, d, at(time.Duration(400+i)*ms))
	}
	p.setKind("", wire.KindClassified, false)
	dueAt, _ := p.due()
	popupsEqual(t, "ads dropped", p.flush(dueAt), []Popup{{
		Title: "3 new random numbers",
		Body:  "• 1\n• 2\n• 3",
		Group: "burst",
	}})
}

func TestPresenterKindSwitchedOffLeavesOneOrNone(t *testing.T) {
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 3, 0)
	p.item(source{}, ad("x1"), at(400*ms))
	p.item(source{}, num("1"), at(500*ms))
	p.setKind("", wire.KindClassified, false)
	dueAt, _ := p.due()
	popupsEqual(t, "one left", p.flush(dueAt), []Popup{{Title: "New random number", Body: "1"}})

	q := newPresenter(DefaultSettings())
	burst(q, "ad", 5, 0)
	q.setKind("", wire.KindClassified, false)
	dueAt, _ = q.due()
	if got := q.flush(dueAt); got != nil {
		t.Fatalf("every held item switched off, yet %q", got)
	}
	if _, ok := q.due(); ok {
		t.Fatal("still due after an empty flush")
	}
}

func TestPresenterSummaryCutsLongValues(t *testing.T) {
	long := strings.Repeat("é", 150)         // 2 bytes a rune
	exact := strings.Repeat("日", summaryCut) // 3 bytes a rune, exactly at the limit
	p := newPresenter(DefaultSettings())
	burst(p, "ad", 3, 0)
	p.item(source{}, ad(long), at(400*ms))
	p.item(source{}, ad(exact), at(500*ms))
	dueAt, _ := p.due()
	got := p.flush(dueAt)
	if len(got) != 1 {
		t.Fatalf("flush = %q", got)
	}
	lines := strings.Split(got[0].Body, "\n")
	want := []string{"• " + strings.Repeat("é", summaryCut-1) + "…", "• " + exact}
	if !slices.Equal(lines, want) {
		t.Fatalf("summary lines:\n got %q\nwant %q", lines, want)
	}
	if !utf8.ValidString(got[0].Body) {
		t.Fatal("the cut summary is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(strings.TrimPrefix(lines[0], "• ")); n != summaryCut {
		t.Fatalf("the cut value has %d runes, want %d", n, summaryCut)
	}

	// A single popup carries the whole value.
	q := newPresenter(DefaultSettings())
	popupsEqual(t, "single", q.item(source{}, ad(long), at(0)), []Popup{{Title: "New classified ad", Body: long}})
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"", 5, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "ab…"},
		{"ééé", 2, "é…"},
		{"日本語テキスト", 4, "日本語…"},
		{"a😀b", 3, "a😀b"},
		{"a😀bc", 3, "a😀…"},
	} {
		got := cut(c.s, c.n)
		if got != c.want {
			t.Errorf("cut(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > c.n {
			t.Errorf("cut(%q, %d) = %q: invalid or too long", c.s, c.n, got)
		}
	}
}

// Leaving do not disturb counts only kinds still wanted, as a burst
// flush drops kinds switched off meanwhile: a user who switched random
// numbers off while away is not told about them.
func TestPresenterDoNotDisturbSkipsKindSwitchedOffMeanwhile(t *testing.T) {
	p := newPresenter(DefaultSettings())
	p.setDND(true)
	p.item(source{}, num("1"), at(0))
	p.item(source{}, ad("a"), at(0))
	p.setKind("", wire.KindRandom, false)
	popupsEqual(t, "leaving, with numbers switched off while away", p.setDND(false), []Popup{{
		Title: "1 item arrived while do not disturb was on",
		Body:  "1 classified ad. The latest are in hark's menu.",
	}})
}

// Several servers: popups name theirs, kinds are per server, a burst is
// one for all of them (one screen), and do not disturb counts what each
// server's kinds let through.
func TestPresenterSeveralServers(t *testing.T) {
	p := newPresenter(DefaultSettings())
	p.servers([]serverConf{
		{Name: "work", Addr: "work", Random: true, Classified: true},
		{Name: "home", Addr: "home", Random: true, Classified: false},
	})
	popupsEqual(t, "work's ad", p.item(src("work"), ad("Desk"), at(0)), []Popup{{Title: "work: New classified ad", Body: "Desk"}})
	if got := p.item(src("home"), ad("Chair"), at(1*ms)); got != nil {
		t.Fatalf("home's ads are off: %q", got)
	}
	popupsEqual(t, "home's number", p.item(src("home"), num("7"), at(2*ms)), []Popup{{Title: "home: New random number", Body: "7"}})
	if got := p.item(src("gone"), num("8"), at(3*ms)); got != nil {
		t.Fatalf("a server not listed: %q", got)
	}
	p.setKind("home", wire.KindClassified, true)
	popupsEqual(t, "home's ad, on", p.item(src("home"), ad("Lamp"), at(4*ms)), []Popup{{Title: "home: New classified ad", Body: "Lamp"}})
	// The fourth within the window starts a burst, across servers.
	if got := p.item(src("work"), num("1"), at(5*ms)); got != nil {
		t.Fatalf("burst: %q", got)
	}
	p.item(src("home"), ad("Rug"), at(6*ms))
	popupsEqual(t, "the burst", p.flush(at(5*ms+burstWindow)), []Popup{{
		Title: "2 new items", Body: "• work: 1\n• home: Rug", Group: "burst",
	}})

	p.setDND(true)
	p.item(src("work"), ad("a"), at(time.Minute))
	p.item(src("home"), ad("b"), at(time.Minute))
	p.item(src("home"), num("2"), at(time.Minute))
	p.setKind("home", wire.KindClassified, false) // off while away: not counted
	popupsEqual(t, "after do not disturb", p.setDND(false), []Popup{{
		Title: "2 items arrived while do not disturb was on", Body: "1 classified ad and 1 random number. The latest are in hark's menu.",
	}})

	// A server gone from the list: what it had waiting goes with it.
	p.item(src("work"), num("3"), at(2*time.Minute))
	p.item(src("work"), num("4"), at(2*time.Minute))
	p.item(src("work"), num("5"), at(2*time.Minute))
	p.item(src("work"), num("6"), at(2*time.Minute)) // held back
	p.servers([]serverConf{{Name: "home", Addr: "home", Random: true}})
	if got := p.flush(at(3 * time.Minute)); got != nil {
		t.Fatalf("a gone server's burst: %q", got)
	}
	// One server left: its popups name no one.
	popupsEqual(t, "one server", p.item(source{key: "home"}, num("9"), at(4*time.Minute)), []Popup{{Title: "New random number", Body: "9"}})
}

// src is the source of a test server whose key is its name.
func src(name string) source { return source{key: name, label: name} }

// A server kept while the list around it changes keeps what it had held
// back, though its label changes: its burst, its items arrived in do not
// disturb.
func TestPresenterKeepsAServerWhoseLabelChanges(t *testing.T) {
	p := newPresenter(DefaultSettings())
	p.servers([]serverConf{{Addr: "home:1", Random: true, Classified: true}})
	alone := source{key: serverKey("home:1")}
	for i := range burstLimit + 1 {
		p.item(alone, num(fmt.Sprint(i)), at(0))
	}
	// A second server joins: home is named now.
	p.servers([]serverConf{{Name: "work", Addr: "work:1", Random: true}, {Name: "home", Addr: "home:1", Random: true, Classified: true}})
	popupsEqual(t, "the held-back number", p.flush(at(burstWindow)), []Popup{{Title: "New random number", Body: "3"}})
	p.setDND(true)
	p.item(source{key: serverKey("home:1"), label: "home"}, ad("a"), at(time.Minute))
	p.item(source{key: serverKey("home:1"), label: "home"}, ad("b"), at(time.Minute))
	// work leaves: home is alone again, and unnamed.
	p.servers([]serverConf{{Addr: "home:1", Random: true, Classified: true}})
	popupsEqual(t, "after do not disturb", p.setDND(false), []Popup{{
		Title: "2 items arrived while do not disturb was on", Body: "2 classified ads. The latest are in hark's menu.",
	}})
}
