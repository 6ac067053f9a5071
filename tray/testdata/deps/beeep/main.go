// A step beside the ladder's fourth: the systray step plus one popup
// through beeep, as hark shows popups outside the Freedesktop platforms
// (tray/desktop_other.go). On Linux the tray does not link beeep: it
// calls the daemon itself (tray/desktop_dbus.go says why), which the
// notify step measures. This one says what beeep would cost instead:
// beeep sends on systray's shared connection, through a notifier it
// makes and closes for each popup, after decoding the icon each time.
// Its popup expires after beeep's 5 s, and the daemon's NotificationClosed
// then reaches systray's re-register loop on that connection, which
// stops (17 goroutines left, against 18 in the notify step): the reason
// tray/desktop_dbus.go gives for not using beeep.
package main

import (
	"context"

	"github.com/gen2brain/beeep"

	"github.com/harkapp/hark/assets"
	"github.com/harkapp/hark/tray/testdata/deps/internal/bus"
	"github.com/harkapp/hark/tray/testdata/deps/internal/ladder"
	"github.com/harkapp/hark/tray/testdata/deps/internal/menu"
)

func main() {
	ladder.Main(func(ctx context.Context) error {
		if _, err := bus.Open(ctx); err != nil {
			return err
		}
		menu.Show()
		beeep.AppName = "hark"
		return beeep.Notify("New random number", "42", assets.Icon)
	})
}
