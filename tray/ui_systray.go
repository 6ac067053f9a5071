package tray

import (
	"context"
	"slices"
	"strings"
	"sync"

	"fyne.io/systray"
)

// systrayUI is the tray icon and its menu. systray keeps them in package
// state and serves them over D-Bus (com.canonical.dbusmenu); its calls are
// safe from any goroutine, and hark makes them from the app goroutine only.
type systrayUI struct {
	status, latest, recentMenu, noAds  *systray.MenuItem
	recent                             [recentMax]*systray.MenuItem
	random, classified, dnd, autostart *systray.MenuItem
	edit, reconnect, quit              *systray.MenuItem
	last                               view
	drawn                              bool
}

// setItem gives the item its title, first icon and tooltip before
// systray starts: systray turns the title into the item's Id, which panels
// use to remember where the icon sits.
func setItem(a *app) {
	systray.SetTitle("hark")
	systray.SetIcon(a.view().Icon)
	systray.SetTooltip("hark")
}

// runWith runs the app with u as its UI until the app ends, forwarding the
// menu's clicks to it meanwhile.
func (a *app) runWith(ctx context.Context, u *systrayUI) error {
	a.ui = u
	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	u.forward(fctx, &wg, a.actions)
	err := a.run(ctx)
	stop()
	wg.Wait()
	return err
}

func newSystrayUI() *systrayUI {
	u := &systrayUI{}
	u.status = systray.AddMenuItem("Connecting…", "")
	u.status.Disable()
	u.latest = systray.AddMenuItem("Latest number: none yet", "")
	u.latest.Disable()
	u.recentMenu = systray.AddMenuItem("Recent ads", "The last ten ads; pick one to see it again")
	u.noAds = u.recentMenu.AddSubMenuItem("No ads yet", "")
	u.noAds.Disable()
	for i := range u.recent {
		u.recent[i] = u.recentMenu.AddSubMenuItem("", "")
		u.recent[i].Hide()
	}
	systray.AddSeparator()
	u.random = systray.AddMenuItemCheckbox("Random numbers", "Popups for new random numbers", false)
	u.classified = systray.AddMenuItemCheckbox("Classified ads", "Popups for new classified ads", false)
	u.dnd = systray.AddMenuItemCheckbox("Do not disturb", "No popups; items still arrive in this menu", false)
	u.autostart = systray.AddMenuItemCheckbox("Start on login", "Start hark when you log in", false)
	u.edit = systray.AddMenuItem("Edit settings…", "Open hark's settings file in your editor; saving it applies it")
	systray.AddSeparator()
	u.reconnect = systray.AddMenuItem("Reconnect now", "Drop the connection and connect again")
	u.quit = systray.AddMenuItem("Quit", "Quit hark")
	return u
}

// forward turns menu clicks into actions. systray drops a click when no
// one is receiving at that moment, so every item has its own goroutine
// waiting, and actions is buffered.
func (u *systrayUI) forward(ctx context.Context, wg *sync.WaitGroup, actions chan<- action) {
	pipe := func(ch <-chan struct{}, act action) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-ch:
					select {
					case actions <- act:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	pipe(systray.TrayOpenedCh, action{kind: actOpened})
	pipe(u.random.ClickedCh, action{kind: actRandom})
	pipe(u.classified.ClickedCh, action{kind: actClassified})
	pipe(u.dnd.ClickedCh, action{kind: actDND})
	pipe(u.autostart.ClickedCh, action{kind: actAutostart})
	pipe(u.edit.ClickedCh, action{kind: actEdit})
	pipe(u.reconnect.ClickedCh, action{kind: actReconnect})
	pipe(u.quit.ClickedCh, action{kind: actQuit})
	for i, it := range u.recent {
		pipe(it.ClickedCh, action{kind: actRecent, index: i})
	}
}

// render applies what changed since the last view: each systray call
// sends D-Bus signals, and an idle tray should send none. The icon and
// tooltip are the item's properties (NewIcon, NewToolTip), cheap for a
// host; but any change to a menu item, even one item's title, makes
// systray (v1.12.2, addOrUpdateMenuItem) send ItemsPropertiesUpdated
// and then LayoutUpdated for the whole menu, on which a host re-reads
// the layout: KDE's importer re-adds every action, LXQt's closes an
// open menu. So the menu is touched only when what it says changed.
func (u *systrayUI) render(v view) {
	first := !u.drawn
	u.drawn = true
	old := u.last
	u.last = v
	if first || string(v.Icon) != string(old.Icon) {
		systray.SetIcon(v.Icon)
	}
	if first || v.Tooltip != old.Tooltip {
		systray.SetTooltip(v.Tooltip)
	}
	if first || v.Status != old.Status {
		u.status.SetTitle(menuLabel(v.Status))
	}
	if first || v.Latest != old.Latest {
		u.latest.SetTitle(menuLabel(v.Latest))
	}
	if first || !slices.Equal(v.Recent, old.Recent) {
		// Only the items whose ad changed. (No item tooltips: dbusmenu
		// has none, and each call is one more LayoutUpdated. Picking an
		// ad shows it whole in a popup.)
		for i, it := range u.recent {
			was, is := i < len(old.Recent) && !first, i < len(v.Recent)
			switch {
			case is && (!was || v.Recent[i] != old.Recent[i]):
				it.SetTitle(menuLabel(cut(v.Recent[i], 60)))
				if !was {
					it.Show()
				}
			case !is && (was || first):
				it.Hide()
			}
		}
		if first || (len(v.Recent) == 0) != (len(old.Recent) == 0) {
			if len(v.Recent) == 0 {
				u.noAds.Show()
			} else {
				u.noAds.Hide()
			}
		}
	}
	check(u.random, v.Random, first || v.Random != old.Random)
	check(u.classified, v.Classified, first || v.Classified != old.Classified)
	check(u.dnd, v.DND, first || v.DND != old.DND)
	check(u.autostart, v.Autostart, first || v.Autostart != old.Autostart)
}

func check(it *systray.MenuItem, on, changed bool) {
	if !changed {
		return
	}
	if on {
		it.Check()
	} else {
		it.Uncheck()
	}
}

// menuLabel escapes a label for dbusmenu, where "_" marks the access key:
// an ad about "my_file" must not lose its underscore.
func menuLabel(s string) string {
	return strings.ReplaceAll(s, "_", "__")
}
