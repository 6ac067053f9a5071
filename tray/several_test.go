package tray

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/harkapp/hark/assets"
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

func titles(v view) []string {
	var ts []string
	for _, s := range v.Servers {
		ts = append(ts, s.Title)
	}
	return ts
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
