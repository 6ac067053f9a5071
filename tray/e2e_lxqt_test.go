package tray_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/internal/desktoptest"
)

// menuHold is how long the menu must stay open while hark is offline: a
// few of the session's first retries (about 1, 2 and 4 s apart) fall in
// it, and a status that changed once a second would have closed it five
// times over.
const menuHold = 6 * time.Second

// TestMenuStaysOpenUnderLXQt opens hark's menu in lxqt-panel while hark
// is offline and retrying, and checks that it stays open, so that
// "Reconnect now" and "Quit" can be reached. lxqt-panel's statusnotifier
// plugin rebuilds its Qt menu on every com.canonical.dbusmenu
// LayoutUpdated, which closes an open one; so hark must send none while
// only its retry countdown changes. Then Quit, picked in that menu with
// the keyboard, ends hark.
func TestMenuStaysOpenUnderLXQt(t *testing.T) {
	desktoptest.Require(t, desktoptest.LXQtPanel)
	d := desktoptest.Start(t, desktoptest.LXQtPanel)
	cfg := filepath.Join(d.Home(), "hark.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 2*e2eTimeout)
	defer cancel()
	// From before hark starts: every menu announcement, and the panel's
	// reads of the menu with their answers.
	menuMsgs, err := d.WatchMessages(ctx,
		"type='signal',interface='com.canonical.dbusmenu',member='LayoutUpdated'",
		"type='method_call',interface='com.canonical.dbusmenu',member='GetLayout'",
		"type='method_return'")
	if err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1: every try is refused at once.
	hark := startProc(t, d, "hark", "--server", "127.0.0.1:1", "--config", cfg, "--log-level", "debug")
	bus := trayItem(t, d, hark.cmd.Process.Pid)
	panel, err := d.NameOwner(ctx, desktoptest.WatcherName)
	if err != nil {
		t.Fatal(err)
	}

	// Offline: the status line has said so since the first failure.
	var status string
	for {
		status = menuStatus(t, ctx, d, bus)
		if strings.HasPrefix(status, "Offline") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the menu never said offline; its first line: %q", status)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Logf("status: %q", status)
	// A first run that cannot connect says so in a popup; a popup window
	// mapped while the menu is open closes it under LXQt, whatever hark
	// does. So the popup first, then closed, then the menu.
	hark.await(t, `msg="popup shown" title="hark cannot reach its server"`)
	if _, err := d.Popups(ctx); err != nil { // closes them all
		t.Fatal(err)
	}
	// dunst unmaps its window in its own time after close-all; an unmap
	// after the menu opened would close it as a mapping does.
	for {
		out, err := xdotoolOut(d, "search", "--onlyvisible", "--classname", "^[Dd]unst$")
		if err != nil || strings.TrimSpace(out) == "" { // xdotool search exits 1 when nothing matches
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("dunst's window is still visible after close-all: %s", out)
		case <-time.After(50 * time.Millisecond):
		}
	}

	// The menu went on the bus whole, and the panel has read it as it is.
	if n := awaitPanelRead(t, ctx, menuMsgs, bus, panel, startUpdates); n != startUpdates {
		t.Errorf("hark's start announced a new menu layout %d times, want %d", n, startUpdates)
	}

	// Open the menu as a user does in LXQt: a right click on the icon
	// (a left click asks the item to activate, which systray does not
	// serve).
	// The panel draws the icon in its own time.
	var x, y int
	for found := false; !found; {
		shot, err := d.Screenshot("lxqt-before-click")
		if err != nil {
			t.Fatal(err)
		}
		if x, y, found = glyphAt(t, shot, isOfflineGrey); !found {
			select {
			case <-ctx.Done():
				t.Fatalf("no grey icon in the panel: %s", shot)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	xdotool(t, d, "mousemove", strconv.Itoa(x), strconv.Itoa(y), "click", "3")
	var menu string
	for deadline := time.Now().Add(e2eTimeout); menu == ""; {
		menu = menuWindow(t, d)
		if time.Now().After(deadline) {
			t.Fatal("no menu after a right click on hark's icon")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// From here on hark's menu must not change. (systray sends one
	// LayoutUpdated of its own 150 ms after the first GetLayout, which
	// lxqt-panel makes when the item registers, before the menu opens.)
	sigs, err := d.WatchSignals(ctx,
		"type='signal',sender='"+bus+"',interface='com.canonical.dbusmenu'",
		"type='signal',sender='"+bus+"',interface='org.kde.StatusNotifierItem'")
	if err != nil {
		t.Fatal(err)
	}
	retriesBefore := strings.Count(hark.log(), `msg="cannot connect to 127.0.0.1:1"`)
	opened := time.Now()
	open := true
	for time.Since(opened) < menuHold {
		if w := menuWindow(t, d); open && w != menu {
			t.Errorf("the menu (window %s) closed %v after it opened, while hark was offline (open menu now: %q)",
				menu, time.Since(opened).Round(100*time.Millisecond), w)
			open = false
		}
		time.Sleep(100 * time.Millisecond)
	}
	shot, err := d.Screenshot("lxqt-menu-open-while-offline")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if !brightAt(t, shot, x-10, 60) { // the menu's background, right of its text
		t.Errorf("no menu below the icon in %s", shot)
	}
	retries := strings.Count(hark.log(), `msg="cannot connect to 127.0.0.1:1"`) - retriesBefore
	if retries < 1 {
		t.Errorf("hark did not retry while the menu was open: the test proved little")
	}

	// Nothing in the menu changed: no LayoutUpdated (nor properties of
	// its items); the tooltip may have said when the next try is.
	var tooltips, changes int
	for done := false; !done; {
		select {
		case s := <-sigs:
			switch {
			case s.Interface == "com.canonical.dbusmenu":
				if changes++; changes <= 4 {
					t.Errorf("hark sent %s %v %v after the menu opened, while only its retries went on", s.Member, s.Body, s.Seen.Sub(opened).Round(time.Millisecond))
				}
			case s.Member == "NewToolTip":
				tooltips++
			}
		default:
			done = true
		}
	}
	if changes > 4 {
		t.Errorf("…and %d more dbusmenu signals", changes-4)
	}
	t.Logf("%d retries and %d new tooltips while the menu was open", retries, tooltips)

	if !open {
		return
	}
	// Quit is within reach: the last item, picked with the keyboard.
	xdotool(t, d, "key", "Up", "Return")
	if err := hark.wait(t); err != nil {
		t.Errorf("hark after Quit: %v, want exit status 0", err)
	}
	hark.await(t, `msg="quit from the menu"`)
}

// startUpdates is how many LayoutUpdated hark sends from its start until
// it is offline: systray's own, 150 ms after the first GetLayout, and one
// for the status line, from "Connecting…" to "Offline…". Items added or
// changed before the item is on the bus send none; after, each sends one,
// which lxqt-panel answers by reading, and rebuilding, the whole menu.
const startUpdates = 2

// awaitPanelRead waits until, after want of hark's LayoutUpdated, the
// panel has read the whole menu (GetLayout of item 0) and been answered,
// and returns how many LayoutUpdated hark sent until then. A right click
// before that would open a menu that the panel's rebuild then closes,
// whatever hark does next.
func awaitPanelRead(t *testing.T, ctx context.Context, msgs <-chan desktoptest.Message, hark, panel string, want int) int {
	t.Helper()
	updates := 0
	var read uint32 // the serial of the panel's read since the last LayoutUpdated
	for {
		var m desktoptest.Message
		select {
		case m = <-msgs:
		case <-ctx.Done():
			t.Fatalf("the panel did not read hark's menu after its LayoutUpdated number %d (of %d so far)", want, updates)
		}
		switch {
		case m.Type == dbus.TypeSignal && m.Sender == hark:
			updates++
			read = 0
		case m.Type == dbus.TypeMethodCall && m.Sender == panel && m.Destination == hark && updates >= want && read == 0:
			if len(m.Body) > 0 && m.Body[0] == int32(0) {
				read = m.Serial
			}
		case m.Type == dbus.TypeMethodReply && m.Sender == hark && m.Destination == panel && read != 0 && m.ReplySerial == read:
			return updates
		}
	}
}

// menuStatus returns the menu's first line, as the panel reads it.
func menuStatus(t *testing.T, ctx context.Context, d *desktoptest.Desktop, bus string) string {
	t.Helper()
	body, err := d.Call(ctx, bus, "/StatusNotifierItem/menu", "com.canonical.dbusmenu.GetLayout", int32(0), int32(1), []string{"label"})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := body[1].([]any)
	if len(root) != 3 {
		t.Fatalf("layout %v", body[1])
	}
	kids, _ := root[2].([]dbus.Variant)
	if len(kids) == 0 {
		return ""
	}
	first, _ := kids[0].Value().([]any)
	if len(first) != 3 {
		return ""
	}
	props, _ := first[1].(map[string]dbus.Variant)
	label, _ := props["label"].Value().(string)
	return label
}

// menuWindow returns the X window of lxqt-panel's open menu, "" when no
// menu is open: a visible window of lxqt-panel's below the panel. (The
// menu's WM_NAME is empty, so xdotool finds it by class, not by name.)
func menuWindow(t *testing.T, d *desktoptest.Desktop) string {
	t.Helper()
	out, err := xdotoolOut(d, "search", "--onlyvisible", "--classname", "^lxqt-panel$")
	if err != nil {
		return "" // xdotool search exits 1 when nothing matches
	}
	for _, w := range strings.Fields(out) {
		geo, err := xdotoolOut(d, "getwindowgeometry", "--shell", w)
		if err != nil {
			continue
		}
		var y, h int
		for _, l := range strings.Split(geo, "\n") {
			if v, ok := strings.CutPrefix(l, "Y="); ok {
				y, _ = strconv.Atoi(v)
			}
			if v, ok := strings.CutPrefix(l, "HEIGHT="); ok {
				h, _ = strconv.Atoi(v)
			}
		}
		if y >= 30 && h > 100 {
			return w
		}
	}
	return ""
}

func xdotool(t *testing.T, d *desktoptest.Desktop, args ...string) {
	t.Helper()
	if out, err := xdotoolOut(d, args...); err != nil {
		t.Fatalf("xdotool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func xdotoolOut(d *desktoptest.Desktop, args ...string) (string, error) {
	cmd := exec.Command("xdotool", args...)
	cmd.Env = d.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%w", err)
	}
	return string(out), nil
}
