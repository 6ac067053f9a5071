// Package menu is the ladder's systray step: hark's icon in the panel
// with a menu of the tray's shape, made and drawn once as
// tray/ui_systray.go and tray/run_dbus.go do, so that what systray costs
// includes the menu the tray really carries (most of it hidden: the
// items of maxServers servers exist from the start).
package menu

import (
	"fyne.io/systray"

	"github.com/harkapp/hark/assets"
)

// The tray's constants (tray/config.go, tray/app.go).
const (
	maxServers = 8
	recentMax  = 10
)

type recentItems struct {
	latest, recentMenu, noAds *systray.MenuItem
	recent                    [recentMax]*systray.MenuItem
}

type serverItems struct {
	top *systray.MenuItem
	recentItems
	random, classified, reconnect *systray.MenuItem
}

type items struct {
	status                *systray.MenuItem
	flat                  recentItems
	random, classified    *systray.MenuItem
	servers               [maxServers]serverItems
	dnd, autostart        *systray.MenuItem
	edit, reconnect, quit *systray.MenuItem
}

// live keeps the menu reachable, as the tray's app does for its life.
var live *items

// Show sets the item's title, first icon and tooltip (as setItem does),
// builds the menu and draws it as the tray's first render does with one
// server, then puts the item on the bus whole, as runSystray does. It
// returns once systray has exported the item; the panel registers it
// after that.
func Show() {
	systray.SetTitle("hark")
	systray.SetIcon(assets.TrayOffline)
	systray.SetTooltip("hark")
	live = build()
	live.render()
	start, _ := systray.RunWithExternalLoop(nil, nil)
	start()
}

// build is newSystrayUI's menu, item for item.
func build() *items {
	u := &items{}
	u.status = systray.AddMenuItem("Connecting…", "")
	u.status.Disable()
	u.flat = newRecentItems(systray.AddMenuItem)
	for i := range u.servers {
		si := &u.servers[i]
		si.top = systray.AddMenuItem("", "")
		si.top.Hide()
		si.recentItems = newRecentItems(si.top.AddSubMenuItem)
		si.top.AddSeparator()
		si.random = si.top.AddSubMenuItemCheckbox("Random numbers", "Popups for this server's random numbers", false)
		si.classified = si.top.AddSubMenuItemCheckbox("Classified ads", "Popups for this server's classified ads", false)
		si.reconnect = si.top.AddSubMenuItem("Reconnect now", "Drop the connection to this server and connect again")
	}
	systray.AddSeparator()
	u.random = systray.AddMenuItemCheckbox("Random numbers", "Popups for new random numbers", false)
	u.classified = systray.AddMenuItemCheckbox("Classified ads", "Popups for new classified ads", false)
	u.dnd = systray.AddMenuItemCheckbox("Do not disturb", "No popups; items still arrive in this menu", false)
	u.autostart = systray.AddMenuItemCheckbox("Start on login", "Start hark when you log in", false)
	u.edit = systray.AddMenuItem("Edit settings…", "Open hark's settings file in your editor; saving it applies it")
	systray.AddSeparator()
	u.reconnect = systray.AddMenuItem("Reconnect now", "Drop the connections and connect again")
	u.quit = systray.AddMenuItem("Quit", "Quit hark")
	return u
}

func newRecentItems(add func(title, tooltip string) *systray.MenuItem) recentItems {
	var r recentItems
	r.latest = add("Latest number: none yet", "")
	r.latest.Disable()
	r.recentMenu = add("Recent ads", "The last ten ads; pick one to see it again")
	r.noAds = r.recentMenu.AddSubMenuItem("No ads yet", "")
	r.noAds.Disable()
	for i := range r.recent {
		r.recent[i] = r.recentMenu.AddSubMenuItem("", "")
		r.recent[i].Hide()
	}
	return r
}

// render is the tray's first render (systrayUI.render with first set)
// of one connected server with a number and no ads yet: the same calls,
// each of which sends its D-Bus signals.
func (u *items) render() {
	systray.SetIcon(assets.TrayConnected)
	systray.SetTooltip("hark: connected to 127.0.0.1")
	for _, it := range []*systray.MenuItem{u.status, u.flat.latest, u.flat.recentMenu, u.random, u.classified} {
		it.Show()
	}
	u.status.SetTitle("Connected to 127.0.0.1")
	u.flat.latest.SetTitle("Latest number: 42")
	for _, it := range u.flat.recent {
		it.Hide()
	}
	u.flat.noAds.Show()
	u.random.Check()
	u.classified.Check()
	for i := range u.servers {
		u.servers[i].top.Hide()
	}
	u.dnd.Uncheck()
	u.autostart.Uncheck()
}
