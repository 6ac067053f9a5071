package tray_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/internal/desktoptest"
)

// topItems is the visible items at the top of hark's menu: each a
// dbusmenu node (id, properties, children), with its label.
func topItems(t testing.TB, d *desktoptest.Desktop, bus string) (nodes []any, labels []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	body, err := d.Call(ctx, bus, "/StatusNotifierItem/menu", "com.canonical.dbusmenu.GetLayout", int32(0), int32(-1), []string{})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := body[1].([]any)
	kids, _ := root[2].([]dbus.Variant)
	for _, k := range kids {
		n, _ := k.Value().([]any)
		props, _ := n[1].(map[string]dbus.Variant)
		if v, ok := props["visible"]; ok && v.Value() == false {
			continue
		}
		if l, ok := props["label"].Value().(string); ok {
			nodes, labels = append(nodes, n), append(labels, l)
		}
	}
	return nodes, labels
}

// awaitMenu waits until the menu's top level has a label for which each
// of want is a prefix, re-reading it on each of hark's menu signals.
func awaitMenu(t testing.TB, d *desktoptest.Desktop, bus string, sigs <-chan desktoptest.Signal, want ...string) []string {
	t.Helper()
	return awaitMenuWithout(t, d, bus, sigs, nil, want...)
}

// awaitMenuWithout is awaitMenu that also waits for no label to start
// with any of gone.
func awaitMenuWithout(t testing.TB, d *desktoptest.Desktop, bus string, sigs <-chan desktoptest.Signal, gone []string, want ...string) []string {
	t.Helper()
	timeout := time.After(e2eTimeout)
	for {
		_, labels := topItems(t, d, bus)
		left := 0
		for _, w := range want {
			found := false
			for _, l := range labels {
				found = found || strings.HasPrefix(l, w)
			}
			if !found {
				left++
			}
		}
		for _, g := range gone {
			for _, l := range labels {
				if strings.HasPrefix(l, g) {
					left++
				}
			}
		}
		if left == 0 {
			return labels
		}
		select {
		case <-sigs:
		case <-timeout:
			t.Fatalf("the menu %q never had %q (without %q)", labels, want, gone)
		}
	}
}

// clickIn clicks the item labelled label in the submenu whose label
// starts with parent.
func clickIn(t testing.TB, d *desktoptest.Desktop, bus, parent, label string) {
	t.Helper()
	nodes, labels := topItems(t, d, bus)
	for i, l := range labels {
		if !strings.HasPrefix(l, parent) {
			continue
		}
		id, ok := findLabel(nodes[i], label)
		if !ok {
			t.Fatalf("no %q in the submenu %q", label, l)
		}
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		if _, err := d.Call(ctx, bus, "/StatusNotifierItem/menu", "com.canonical.dbusmenu.Event", id, "clicked", dbus.MakeVariant(int32(0)), uint32(0)); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no submenu %q in %q", parent, labels)
}

// TestTwoServersOnARealDesktop: one hark, two servers, in a real headless
// desktop. Each has its line (and menu) with its status; popups name the
// server; a server killed shows offline, and the tray's icon with it,
// while the other keeps working; restarted, it is back.
func TestTwoServersOnARealDesktop(t *testing.T) {
	desktoptest.Require(t)
	d := desktoptest.Start(t)
	workProto, workAPI := serve(t, d)
	homeData := t.TempDir()
	homeSrv := startProc(t, d, "serve-home", "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", homeData)
	m := homeSrv.await(t, `hark serve is running" protocol=(\S+) .*publish_api=(\S+)`)
	homeProto, homeAPI := m[1], m[2]
	shown := popups(t, d)

	cfg := filepath.Join(d.Home(), "hark.toml")
	conf := fmt.Sprintf("[[servers]]\nname = \"work\"\naddress = %q\n\n[[servers]]\nname = \"home\"\naddress = %q\nrandom = false\n", workProto, homeProto)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	hark := startProc(t, d, "hark", "--config", cfg, "--log-level", "debug")
	bus := trayItem(t, d, hark.cmd.Process.Pid)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs, err := d.WatchSignals(ctx, "type='signal',sender='"+bus+"',interface='com.canonical.dbusmenu'")
	if err != nil {
		t.Fatal(err)
	}
	labels := awaitMenu(t, d, bus, sigs, "work: Connected to "+workProto, "home: Connected to "+homeProto)
	for _, l := range labels {
		if strings.HasPrefix(l, "Connected") || strings.HasPrefix(l, "Latest number") {
			t.Errorf("a line of the one-server menu is shown with two servers: %q", labels)
		}
	}

	// Popups name their server; home's numbers are off.
	publish(t, workAPI, "classified", "Standing desk, 120 EUR")
	if n := nextPopup(t, shown); n.Summary != "work: New classified ad" || n.Body != "Standing desk, 120 EUR" {
		t.Errorf("popup %q %q, want work's ad", n.Summary, n.Body)
	}
	publish(t, homeAPI, "random", "4242")
	hark.await(t, `msg=item server=home kind=random value=4242`)
	publish(t, homeAPI, "classified", "Garden chairs, free")
	if n := nextPopup(t, shown); n.Summary != "home: New classified ad" || n.Body != "Garden chairs, free" {
		t.Errorf("popup %q %q, want home's ad and no number before it", n.Summary, n.Body)
	}
	// Home's numbers on, from its own menu: saved in its table.
	clickIn(t, d, bus, "home: ", "Random numbers")
	hark.await(t, `msg="settings saved"`)
	data, _ := os.ReadFile(cfg)
	if !strings.Contains(string(data), "name = \"home\"\naddress = \""+homeProto+"\"\nrandom = true\n") {
		t.Errorf("config after home's Random numbers:\n%s", data)
	}

	// Home is killed: its line says offline, work's connected; the icon
	// goes grey. Restarted at the same address with its store, it is
	// back.
	if err := homeSrv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	homeSrv.wait(t)
	awaitMenu(t, d, bus, sigs, "home: Offline, reconnecting to "+homeProto, "work: Connected to "+workProto)
	shot, err := d.Screenshot("home-offline")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := glyphAt(t, shot, isOfflineGrey); !ok {
		t.Errorf("the icon is not the offline one while home is down: %s", shot)
	}
	publish(t, workAPI, "random", "7")
	if n := nextPopup(t, shown); n.Summary != "work: New random number" || n.Body != "7" {
		t.Errorf("popup %q %q while home is down, want work's number", n.Summary, n.Body)
	}
	homeSrv = startProc(t, d, "serve-home-again", "serve", "--listen", strings.TrimPrefix(homeProto, "tcp://"), "--http", "127.0.0.1:0", "--data", homeData)
	m = homeSrv.await(t, `hark serve is running" protocol=(\S+) .*publish_api=(\S+)`)
	homeAPI = m[2]
	awaitMenu(t, d, bus, sigs, "home: Connected to "+homeProto, "work: Connected to "+workProto)

	// The picture for the README: the menu with both servers, and a
	// popup from one.
	publish(t, homeAPI, "classified", "Bright two-room flat near the canal, 900 EUR")
	if n := nextPopup(t, shown); n.Summary != "home: New classified ad" {
		t.Errorf("popup %q after home came back, want home's ad", n.Summary)
	}
	hark.await(t, `msg="popup shown"`)
	screenshotMenu(t, d, "two-servers", isBlueGlyph) // make screenshot: docs/screenshot.png

	// Home leaves the file: the menu is the one-server menu again, and a
	// server added back gets its line back.
	one := fmt.Sprintf("[[servers]]\nname = \"work\"\naddress = %q\n", workProto)
	if err := os.WriteFile(cfg, []byte(one), 0o644); err != nil {
		t.Fatal(err)
	}
	// (The menu is redrawn an item at a time: wait for the last change.)
	awaitMenuWithout(t, d, bus, sigs, []string{"work: ", "home: "}, "Connected to "+workProto, "Latest number: ")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	awaitMenu(t, d, bus, sigs, "work: Connected to "+workProto, "home: Connected to "+homeProto)
	quitFromMenu(t, d, bus, hark)
}
