//go:build linux || freebsd || netbsd || openbsd

package tray

import (
	"context"

	"fyne.io/systray"
)

// runSystray runs the tray until the app ends.
//
// The menu is built and drawn before the item is on the bus. Once systray
// has its connection, it sends LayoutUpdated for every item added or
// changed, and a host re-reads the whole menu on each: built there, hark's
// ~160 items made lxqt-panel re-read it some 700 times at start, which
// kept it busy for seconds and closed the menu if the user opened it then.
// Before the connection, systray only records them (and the icon and
// tooltip, which setItem sets), and the item goes on the bus whole.
//
// RunWithExternalLoop's start exports synchronously, so the app draws its
// changes only once systray can send them. Freedesktop systray needs no
// native event loop, so the app goroutine can be this one.
func runSystray(ctx context.Context, a *app) error {
	setItem(a)
	u := newSystrayUI()
	a.ui = u
	a.render()
	start, end := systray.RunWithExternalLoop(nil, nil)
	start()
	err := a.runWith(ctx, u)
	end()
	return err
}
