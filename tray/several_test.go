package tray

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/assets"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// second is another real server beside the fixture's, which the test can
// stop and start again at the same address with the same store.
type second struct {
	t    *testing.T
	cfg  server.Config
	srv  *server.Server
	addr string
}

func startSecond(t *testing.T) *second {
	t.Helper()
	s := &second{t: t, cfg: server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()}}
	s.start()
	s.addr = s.srv.Addr().String()
	s.cfg.Listen = s.addr
	return s
}

func (s *second) start() {
	s.t.Helper()
	srv, err := server.Start(s.cfg)
	if err != nil {
		s.t.Fatalf("start the second server: %v", err)
	}
	s.srv = srv
	s.t.Cleanup(func() { s.stop() })
}

// stop shuts the server down (again is nothing).
func (s *second) stop() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.t.Errorf("second server shutdown: %v", err)
	}
	s.srv = nil
}

func (s *second) publish(kind wire.Kind, value string) {
	s.t.Helper()
	if _, _, err := s.srv.Publish(context.Background(), kind, value); err != nil {
		s.t.Fatalf("publish %s %q at the second server: %v", kind, value, err)
	}
}

// writeServers writes a settings file that lists servers, as a user
// would: the fixture's as "work", the second as "home", without ads.
func writeServers(t *testing.T, path, work, home string) {
	t.Helper()
	content := fmt.Sprintf("[[servers]]\nname = \"work\"\naddress = %q\n\n[[servers]]\nname = \"home\"\naddress = %q\nclassified = false\n", work, home)
	if home == "" {
		content = fmt.Sprintf("[[servers]]\nname = \"work\"\naddress = %q\n", work)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// bothConnected is the view with a menu per server, both connected.
func bothConnected(work, home string) func(view) bool {
	return func(v view) bool {
		return len(v.Servers) == 2 && v.Servers[0].Title == "work: Connected to "+work &&
			v.Servers[1].Title == "home: Connected to "+home
	}
}

func (f *fixture) actOn(kind actionKind, server, index int) {
	f.t.Helper()
	select {
	case f.a.actions <- action{kind: kind, server: server, index: index}:
	case <-f.stop:
	}
}

// Two servers in one tray: a session and a menu each, popups that name
// their server, kinds per server kept in its own table of the file, the
// icon offline while either is, and each server's Recent ads its own
// after a restart.
func TestAppSeveralServers(t *testing.T) {
	var home *second
	f := newFixture(t, func(f *fixture, o *Options) {
		withIdentity(f, o)
		home = startSecond(t)
		writeServers(t, o.ConfigPath, f.addr, home.addr)
		o.Server = ""
	})
	f.start()
	f.awaitView("both servers connected", bothConnected(f.addr, home.addr))

	// Each server's items, in its own menu; popups name the server. The
	// home server's ads make none (classified = false there), so its
	// random number is the next popup.
	f.publish(wire.KindClassified, "Desk, 20 EUR")
	f.nextPopup(Popup{Title: "work: New classified ad", Body: "Desk, 20 EUR"})
	home.publish(wire.KindClassified, "Garden chair")
	f.awaitView("home's ad in home's menu", func(v view) bool {
		return len(v.Servers) == 2 && len(v.Servers[1].Recent) == 1 && v.Servers[1].Recent[0] == "Garden chair" &&
			len(v.Servers[0].Recent) == 1 && v.Servers[0].Recent[0] == "Desk, 20 EUR"
	})
	home.publish(wire.KindRandom, "77")
	f.nextPopup(Popup{Title: "home: New random number", Body: "77"})
	v := f.awaitView("home's number", func(v view) bool { return len(v.Servers) == 2 && v.Servers[1].Latest == "Latest number: 77" })
	if v.Servers[0].Latest == "Latest number: 77" || v.Status != "" || v.Recent != nil {
		t.Fatalf("the number or the flat menu leaked: %s", formatView(v))
	}
	if !v.Servers[0].Classified || v.Servers[1].Classified {
		t.Fatalf("kinds per server: %s", formatView(v))
	}

	// Ads on at home from its menu: kept in its table, not at the top
	// or in work's.
	f.actOn(actClassified, 1, 0)
	f.awaitView("home's ads on", func(v view) bool { return len(v.Servers) == 2 && v.Servers[1].Classified })
	s := f.savedSettings()
	if len(s.Servers) != 2 || s.Servers[1].Classified == nil || !*s.Servers[1].Classified || s.Servers[0].Classified != nil || !s.Classified {
		t.Fatalf("saved settings after home's ads on: %+v", s)
	}
	home.publish(wire.KindClassified, "Lawn mower")
	f.nextPopup(Popup{Title: "home: New classified ad", Body: "Lawn mower"})

	// Home goes down: the icon says offline, the tooltip names it, work
	// stays connected. It comes back at the same address: both again.
	home.stop()
	v = f.awaitView("home offline", func(v view) bool {
		return len(v.Servers) == 2 && strings.HasPrefix(v.Servers[1].Title, "home: Offline")
	})
	if string(v.Icon) != string(assets.TrayOffline) || !strings.HasPrefix(v.Tooltip, "hark: offline: home (next try at ") ||
		v.Servers[0].Title != "work: Connected to "+f.addr {
		t.Fatalf("one server offline: %s", formatView(v))
	}
	f.publish(wire.KindRandom, "5")
	f.nextPopup(Popup{Title: "work: New random number", Body: "5"})
	home.start()
	f.actOn(actReconnect, 1, 0) // not to wait for the backoff
	v = f.awaitView("home back", bothConnected(f.addr, home.addr))
	if string(v.Icon) == string(assets.TrayOffline) || v.Tooltip != "hark: connected to 2 servers" {
		t.Fatalf("both back: %s", formatView(v))
	}
	home.publish(wire.KindRandom, "78")
	f.nextPopup(Popup{Title: "home: New random number", Body: "78"})
	if n := len(f.logs.all()); n == 0 {
		t.Fatal("no logs")
	}
	var workConnects int
	for _, r := range f.logs.all() {
		if r.Msg == "connected" && r.Attrs["server"] == "work" {
			workConnects++
		}
	}
	if workConnects != 1 {
		t.Fatalf("work connected %d times, want once: its session is its own", workConnects)
	}

	// A restart: each menu has its own Recent ads back from the start.
	f.restart()
	f.awaitView("each server's Recent ads after a restart", func(v view) bool {
		return len(v.Servers) == 2 && strings.Join(v.Servers[0].Recent, "|") == "Desk, 20 EUR" &&
			strings.Join(v.Servers[1].Recent, "|") == "Lawn mower|Garden chair"
	})
}

// The list of servers follows the settings file while hark runs: a
// server added gets a session, one kept keeps its own, one removed is
// disconnected; with one left, the menu is flat again.
func TestAppServersFollowTheFile(t *testing.T) {
	var home *second
	f := newFixture(t, func(f *fixture, o *Options) {
		home = startSecond(t)
		writeServers(t, o.ConfigPath, f.addr, "")
		o.Server = ""
	})
	fastPoll(f)
	f.start()
	v := f.awaitView("work alone, in the flat menu", func(v view) bool { return v.Status == "Connected to "+f.addr })
	if v.Servers != nil {
		t.Fatalf("one server in a menu of its own: %s", formatView(v))
	}
	f.publish(wire.KindClassified, "Desk")
	f.nextPopup(Popup{Title: "New classified ad", Body: "Desk"}) // one server: not named

	writeServers(t, f.opts.ConfigPath, f.addr, home.addr)
	f.awaitView("home added", bothConnected(f.addr, home.addr))
	home.publish(wire.KindRandom, "9")
	f.nextPopup(Popup{Title: "home: New random number", Body: "9"})

	// work leaves the file: its session ends; home's stays.
	content := fmt.Sprintf("[[servers]]\nname = \"home\"\naddress = %q\nclassified = false\n", home.addr)
	if err := os.WriteFile(f.opts.ConfigPath, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f.logs.await(t, "work disconnected", func(r logRecord) bool {
		return r.Msg == "no longer in the settings: disconnecting" && r.Attrs["server"] == "work"
	})
	f.awaitView("home alone, flat", func(v view) bool { return v.Status == "Connected to "+home.addr && v.Servers == nil })
	home.publish(wire.KindRandom, "10")
	f.nextPopup(Popup{Title: "New random number", Body: "10"})
	f.publish(wire.KindRandom, "11") // at work: nobody listens there now
	home.publish(wire.KindRandom, "12")
	f.nextPopup(Popup{Title: "New random number", Body: "12"})
	var connects int
	for _, r := range f.logs.all() {
		if r.Msg == "connecting with the new settings" && r.Attrs["name"] == "home" {
			connects++
		}
	}
	if connects != 1 {
		t.Fatalf("home's session started %d times, want once: a server kept keeps its session", connects)
	}
}

// A server renamed in the file gets a new session, and keeps its Recent
// ads: the old session writes them before the new one reads them.
func TestAppRenamedServerKeepsItsRecentAds(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		withIdentity(f, o)
		writeServers(t, o.ConfigPath, f.addr, "")
		o.Server = ""
	})
	fastPoll(f)
	connected := func(ev netclient.Event) bool { return ev.State != nil && ev.State.Connected }
	f.start()
	f.handled.await(t, "the first session connected", connected)
	f.publish(wire.KindClassified, "A")
	f.publish(wire.KindClassified, "B")
	f.awaitView("both ads", recentIs("B", "A"))
	content := fmt.Sprintf("[[servers]]\nname = \"job\"\naddress = %q\n", f.addr)
	if err := os.WriteFile(f.opts.ConfigPath, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f.logs.await(t, "the new session", func(r logRecord) bool {
		return r.Msg == "connecting with the new settings" && r.Attrs["name"] == "job"
	})
	f.handled.await(t, "the new session connected", connected)
	all := f.views.all()
	if v := all[len(all)-1]; !slices.Equal(v.Recent, []string{"B", "A"}) {
		t.Fatalf("after the rename: %s", formatView(v))
	}
}

// A change to a server's token_file starts its session again; the other
// server's stays.
func TestAppServerFilesChangeRestartItsSession(t *testing.T) {
	var home *second
	f := newFixture(t, func(f *fixture, o *Options) {
		home = startSecond(t)
		writeServers(t, o.ConfigPath, f.addr, home.addr)
		o.Server = ""
	})
	fastPoll(f)
	f.start()
	f.awaitView("both servers connected", bothConnected(f.addr, home.addr))
	content := fmt.Sprintf("[[servers]]\nname = \"work\"\naddress = %q\n\n[[servers]]\nname = \"home\"\naddress = %q\nclassified = false\ntoken_file = \"home-token\"\n", f.addr, home.addr)
	if err := os.WriteFile(f.opts.ConfigPath, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f.logs.await(t, "home's new session", func(r logRecord) bool {
		return r.Msg == "connecting with the new settings" && r.Attrs["name"] == "home"
	})
	f.awaitView("both connected again", bothConnected(f.addr, home.addr))
	for _, r := range f.logs.all() {
		if r.Msg == "no longer in the settings: disconnecting" && r.Attrs["server"] != "home" {
			t.Fatalf("a session other than home's ended: %+v", r)
		}
		if r.Msg == "connecting with the new settings" && r.Attrs["name"] != "home" {
			t.Fatalf("a session other than home's started: %+v", r)
		}
	}
}

// The --server flag naming a listed server takes its table: what the
// menu changes is saved there, not at the top of the file (the default
// for every other server).
func TestAppServerFlagUsesItsTable(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		writeServers(t, o.ConfigPath, f.addr, "127.0.0.1:1")
		// o.Server stays f.addr: the flag.
	})
	f.start()
	f.connected()
	f.act(actClassified)
	f.awaitView("ads off", func(v view) bool { return !v.Classified && v.Servers == nil })
	s := f.savedSettings()
	if !s.Classified || s.Servers[0].Classified == nil || *s.Servers[0].Classified || s.Servers[0].Random != nil ||
		s.Servers[1].Classified == nil || *s.Servers[1].Classified || s.Servers[1].Random != nil {
		t.Fatalf("saved %+v; want classified = false in work's table, and the rest as it was", s)
	}
}

// A click on a server's item in a menu drawn before the list of servers
// changed is dropped: the server in that place now is another.
func TestAppStaleClickIgnored(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		writeServers(t, o.ConfigPath, f.addr, "127.0.0.1:1")
		o.Server = ""
	})
	f.a.menuGen = 1 // the list changed since the click's menu (gen 0)
	f.start()
	f.actOn(actClassified, 0, 0)
	f.logs.await(t, "the stale click ignored", func(r logRecord) bool {
		return r.Msg == "a click on a server's item of a menu that has changed since: ignored"
	})
	select {
	case f.a.actions <- action{kind: actClassified, server: 0, gen: 1}:
	case <-time.After(testTimeout):
		t.Fatal("the app takes no action")
	}
	f.awaitView("work's ads off", func(v view) bool { return len(v.Servers) == 2 && !v.Servers[0].Classified })
	if s := f.savedSettings(); s.Servers[0].Classified == nil || *s.Servers[0].Classified {
		t.Fatalf("saved %+v", s)
	}
}
