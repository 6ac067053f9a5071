//go:build !(linux || freebsd || netbsd || openbsd)

package tray

import (
	"context"

	"fyne.io/systray"
)

// runSystray runs the tray on the calling goroutine (the main one, as
// Windows and macOS need for their event loops) until the app ends.
func runSystray(ctx context.Context, a *app) error {
	setItem(a)
	var err error
	systray.Run(func() {
		// onReady must return promptly: the menu is served only after.
		u := newSystrayUI()
		go func() {
			err = a.runWith(ctx, u)
			systray.Quit()
		}()
	}, nil)
	return err
}
