package tray

import (
	"strings"
	"testing"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// Once the tray is quiet it gives back the binary's pages (most of an
// idle tray's memory), once per quiet spell: each event starts the wait
// again, and a tray that stays quiet does not release again and again.
func TestAppReleasesPagesOnceQuiet(t *testing.T) {
	f := newFixture(t, nil)
	seq := newStream[string]() // "release" and "event", in the loop's order
	f.a.handled = func(netclient.Event) { seq.add("event") }
	f.a.release = func() (int, error) { seq.add("release"); return 1, nil }
	// Short enough that a release that repeated by itself would fire
	// between two events of this test, many times over.
	f.a.quiet = 1
	f.start()
	f.connected()
	seq.await(t, "a release once the start went quiet", func(s string) bool { return s == "release" })
	for i := range 3 {
		f.publish(wire.KindClassified, "Desk "+strings.Repeat("!", i))
		f.nextPopup(Popup{Title: "New classified ad", Body: "Desk " + strings.Repeat("!", i)})
		seq.await(t, "an event for the ad", func(s string) bool { return s == "event" })
		seq.await(t, "a release after it", func(s string) bool { return s == "release" })
	}
	all := seq.all()
	for i := 1; i < len(all); i++ {
		if all[i] == "release" && all[i-1] == "release" {
			t.Fatalf("two releases with nothing between (at %d of %q): a quiet tray released again", i, all)
		}
	}
}
