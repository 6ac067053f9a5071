package tray

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// The file is bounded: recentMax ads per server, recentServers servers
// (the most recently saved first), and each save leaves the one file,
// no temporary one beside it.
func TestRecentFileIsBounded(t *testing.T) {
	dir := t.TempDir()
	var ads []recentAd
	for i := range recentMax + 5 {
		ads = append(ads, recentAd{ID: uint64(100 - i), Value: fmt.Sprintf("ad %d", i)})
	}
	for i := range recentServers + 3 {
		if err := saveRecent(dir, recentList{Server: fmt.Sprintf("host%d:1", i), Ads: ads}); err != nil {
			t.Fatal(err)
		}
	}
	rf, err := readRecent(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rf.Servers) != recentServers {
		t.Fatalf("%d servers kept, want %d", len(rf.Servers), recentServers)
	}
	for i, l := range rf.Servers {
		if want := fmt.Sprintf("host%d:1", recentServers+2-i); l.Server != want {
			t.Errorf("server %d is %s, want %s (most recent first)", i, l.Server, want)
		}
		if !slices.Equal(l.Ads, ads[:recentMax]) {
			t.Errorf("%s keeps %d ads, want the %d newest", l.Server, len(l.Ads), recentMax)
		}
	}
	// Saving again replaces that server's list and moves it first.
	if err := saveRecent(dir, recentList{Server: "host5:1", Epoch: "e1", Ads: ads[:1]}); err != nil {
		t.Fatal(err)
	}
	l, err := loadRecent(dir, "host5:1")
	if err != nil || l.Epoch != "e1" || !slices.Equal(l.Ads, ads[:1]) {
		t.Fatalf("host5:1 after saving again: %+v, %v", l, err)
	}
	if l, err := loadRecent(dir, "nobody:1"); err != nil || len(l.Ads) != 0 {
		t.Fatalf("a server with no list: %+v, %v", l, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != recentFileName {
		t.Fatalf("the state directory holds %v, want %s alone", entries, recentFileName)
	}
	if fi, err := os.Stat(dir + "/" + recentFileName); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the file: %v, %v; want mode 0600", fi, err)
	}
}

func TestRecentFileMissing(t *testing.T) {
	if _, err := loadRecent(t.TempDir(), "host:1"); err != errNoRecent {
		t.Fatalf("no file: %v, want errNoRecent", err)
	}
}

// A current ad already in Recent ads is not added again: after a session
// ended before acknowledging, the server offers its oldest unread ad
// first, and the session hands it over as current.
func TestAddRecentSkipsACurrentAdItHas(t *testing.T) {
	s := &remote{recent: []recentAd{{ID: 3, Value: "B"}, {ID: 2, Value: "A"}}}
	if s.addRecent(netclient.Delivery{Kind: wire.KindClassified, ID: 2, Value: "A", Current: true}) {
		t.Fatalf("ad 2 added again: %+v", s.recent)
	}
	if !s.addRecent(netclient.Delivery{Kind: wire.KindClassified, ID: 5, Value: "C", Current: true}) || s.recent[0].ID != 5 {
		t.Fatalf("a current ad not there yet: %+v", s.recent)
	}
	if !s.addRecent(netclient.Delivery{Kind: wire.KindClassified, ID: 6, Value: "A"}) || len(s.recent) != 4 {
		t.Fatalf("news with a value seen before: %+v", s.recent)
	}
}

// Ads kept from the last run count as the server's only when their epoch
// is the one its store has now: another store's ids mean other ads.
func TestAddRecentKeptAdsOfAnotherStore(t *testing.T) {
	idt, err := netclient.OpenIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idt.Close()
	const epoch, other = "0123456789abcdef", "fedcba9876543210"
	for _, c := range []struct {
		epoch string
		added bool
	}{{epoch, false}, {other, true}} {
		if err := idt.SetMarks("h:1", netclient.Marks{Epoch: c.epoch}); err != nil {
			t.Fatal(err)
		}
		s := &remote{conf: serverConf{Addr: "h:1"}, opts: &Options{Identity: idt},
			recent: []recentAd{{ID: 3, Value: "B"}, {ID: 2, Value: "A"}}, fromFile: 2, recentEpoch: epoch}
		if got := s.addRecent(netclient.Delivery{Kind: wire.KindClassified, ID: 2, Value: "A2", Current: true}); got != c.added {
			t.Errorf("the server's store %s: ad 2 added %v, want %v", c.epoch, got, c.added)
		}
	}
}
