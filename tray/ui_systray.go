package tray

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"fyne.io/systray"
)

// systrayUI is the tray icon and its menu. systray keeps them in package
// state and serves them over D-Bus (com.canonical.dbusmenu); its calls are
// safe from any goroutine, and hark makes them from the app goroutine only.
//
// The menu is made once, whole: the items for one server (status, latest
// number, Recent ads and its kinds, in the menu itself) and a submenu for
// each of up to maxServers, shown when there are several. Items cannot
// be inserted later, only shown and hidden.
type systrayUI struct {
	status                *systray.MenuItem
	flat                  recentItems
	random, classified    *systray.MenuItem
	servers               [maxServers]serverItems
	dnd, autostart        *systray.MenuItem
	edit, reconnect, quit *systray.MenuItem
	last                  view
	drawn                 bool
	// gen is the Gen of the view drawn last, read by forward's goroutine
	// to stamp each click with the menu it was made on.
	gen atomic.Uint64
}

// recentItems are a latest number line and a Recent ads submenu.
type recentItems struct {
	latest, recentMenu, noAds *systray.MenuItem
	recent                    [recentMax]*systray.MenuItem
}

// serverItems are one server's submenu, when there are several.
type serverItems struct {
	top                           *systray.MenuItem
	recentItems                   // in top
	random, classified, reconnect *systray.MenuItem
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

// newRecentItems adds a latest number line and a Recent ads submenu with
// add (systray.AddMenuItem, or a submenu's AddSubMenuItem).
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

// forward turns menu clicks into actions until ctx ends. systray drops a
// click when no one is receiving at that moment, so one goroutine waits
// on every item at once, and actions is buffered: it is back waiting as
// soon as it handed a click on.
func (u *systrayUI) forward(ctx context.Context, wg *sync.WaitGroup, actions chan<- action) {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
	var acts []action
	on := func(ch <-chan struct{}, act action) {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		acts = append(acts, act)
	}
	all := -1 // the menu's own items: for every server
	on(systray.TrayOpenedCh, action{kind: actOpened, server: all})
	on(u.random.ClickedCh, action{kind: actRandom})
	on(u.classified.ClickedCh, action{kind: actClassified})
	on(u.dnd.ClickedCh, action{kind: actDND, server: all})
	on(u.autostart.ClickedCh, action{kind: actAutostart, server: all})
	on(u.edit.ClickedCh, action{kind: actEdit, server: all})
	on(u.reconnect.ClickedCh, action{kind: actReconnect, server: all})
	on(u.quit.ClickedCh, action{kind: actQuit, server: all})
	for i, it := range u.flat.recent {
		on(it.ClickedCh, action{kind: actRecent, index: i})
	}
	for n := range u.servers {
		si := &u.servers[n]
		on(si.random.ClickedCh, action{kind: actRandom, server: n})
		on(si.classified.ClickedCh, action{kind: actClassified, server: n})
		on(si.reconnect.ClickedCh, action{kind: actReconnect, server: n})
		for i, it := range si.recent {
			on(it.ClickedCh, action{kind: actRecent, server: n, index: i})
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			chosen, _, ok := reflect.Select(cases)
			if chosen == 0 {
				return
			}
			if !ok { // an item removed: systray closed its channel
				cases[chosen].Chan = reflect.Value{}
				continue
			}
			act := acts[chosen-1]
			act.gen = u.gen.Load()
			select {
			case actions <- act:
			case <-ctx.Done():
				return
			}
		}
	}()
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
	defer u.gen.Store(v.Gen) // once the menu says what Gen means
	old := u.last
	u.last = v
	if first || string(v.Icon) != string(old.Icon) {
		systray.SetIcon(v.Icon)
	}
	if first || v.Tooltip != old.Tooltip {
		systray.SetTooltip(v.Tooltip)
	}
	several := len(v.Servers) > 0
	if first || several != (len(old.Servers) > 0) {
		// One server's lines in the menu itself, or a menu per server.
		for _, it := range []*systray.MenuItem{u.status, u.flat.latest, u.flat.recentMenu, u.random, u.classified} {
			show(it, !several)
		}
	}
	if first || v.Status != old.Status {
		u.status.SetTitle(menuLabel(v.Status))
	}
	u.flat.render(v.Latest, v.Recent, old.Latest, old.Recent, first)
	check(u.random, v.Random, first || v.Random != old.Random)
	check(u.classified, v.Classified, first || v.Classified != old.Classified)
	for i := range u.servers {
		si := &u.servers[i]
		is, was := i < len(v.Servers), i < len(old.Servers) && !first
		if is != was || first {
			show(si.top, is)
		}
		if !is {
			continue
		}
		var o serverView
		if was {
			o = old.Servers[i]
		}
		if !was || v.Servers[i].Title != o.Title {
			si.top.SetTitle(menuLabel(v.Servers[i].Title))
		}
		si.render(v.Servers[i].Latest, v.Servers[i].Recent, o.Latest, o.Recent, !was)
		check(si.random, v.Servers[i].Random, !was || v.Servers[i].Random != o.Random)
		check(si.classified, v.Servers[i].Classified, !was || v.Servers[i].Classified != o.Classified)
	}
	check(u.dnd, v.DND, first || v.DND != old.DND)
	check(u.autostart, v.Autostart, first || v.Autostart != old.Autostart)
}

// render shows a latest number and Recent ads, touching only what
// changed from the old ones (all when first).
func (r *recentItems) render(latest string, recent []string, oldLatest string, oldRecent []string, first bool) {
	if first || latest != oldLatest {
		r.latest.SetTitle(menuLabel(latest))
	}
	if !first && slices.Equal(recent, oldRecent) {
		return
	}
	// Only the items whose ad changed. (No item tooltips: dbusmenu
	// has none, and each call is one more LayoutUpdated. Picking an
	// ad shows it whole in a popup.)
	for i, it := range r.recent {
		was, is := i < len(oldRecent) && !first, i < len(recent)
		switch {
		case is && (!was || recent[i] != oldRecent[i]):
			it.SetTitle(menuLabel(cut(recent[i], 60)))
			if !was {
				it.Show()
			}
		case !is && (was || first):
			it.Hide()
		}
	}
	if first || (len(recent) == 0) != (len(oldRecent) == 0) {
		show(r.noAds, len(recent) == 0)
	}
}

func show(it *systray.MenuItem, on bool) {
	if on {
		it.Show()
	} else {
		it.Hide()
	}
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
