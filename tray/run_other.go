//go:build !(linux || freebsd || netbsd || openbsd)

package tray

import (
	"context"
	"sync"
	"time"

	"fyne.io/systray"
)

// runSystray runs the tray on the calling goroutine (the main one, as
// Windows and macOS need for their event loops) until the app ends.
func runSystray(ctx context.Context, a *app) error {
	systray.SetTitle("hark")
	systray.SetIcon(a.view(time.Now()).Icon)
	systray.SetTooltip("hark")
	var err error
	systray.Run(func() {
		// onReady must return promptly: the menu is served only after.
		u := newSystrayUI()
		a.ui = u
		go func() {
			fctx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			u.forward(fctx, &wg, a.actions)
			err = a.run(ctx)
			stop()
			wg.Wait()
			systray.Quit()
		}()
	}, nil)
	return err
}
