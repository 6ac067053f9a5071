//go:build linux || freebsd || netbsd || openbsd

package tray

import (
	"context"

	"fyne.io/systray"
)

// runSystray runs the tray until the app ends. systray.Run would call
// onReady while it is still exporting the item on the bus, and an icon set
// in that window is lost: the IconPixmap property keeps the first icon
// until the next change, so a panel that (re)reads it shows a stale state.
// RunWithExternalLoop's start exports synchronously, so the app starts
// drawing only once systray can take it. Freedesktop systray needs no
// native event loop, so the app goroutine can be this one.
func runSystray(ctx context.Context, a *app) error {
	setItem(a)
	built := make(chan *systrayUI, 1)
	start, end := systray.RunWithExternalLoop(func() { built <- newSystrayUI() }, nil)
	start()
	err := a.runWith(ctx, <-built)
	end()
	return err
}
