//go:build linux || freebsd || netbsd || openbsd

package tray

import (
	"context"
	"sync"
	"time"

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
	// Set before starting: systray turns the title into the item's Id,
	// which panels use to remember where the icon sits.
	systray.SetTitle("hark")
	systray.SetIcon(a.view(time.Now()).Icon)
	systray.SetTooltip("hark")
	built := make(chan *systrayUI, 1)
	start, end := systray.RunWithExternalLoop(func() { built <- newSystrayUI() }, nil)
	start()
	u := <-built
	a.ui = u

	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	u.forward(fctx, &wg, a.actions)
	err := a.run(ctx)
	stop()
	wg.Wait()
	end()
	return err
}
