// The ladder's third step: the godbus step plus systray, hark's icon in
// the panel with a menu of the tray's shape (see internal/menu). systray
// opens its own, shared, session-bus connection (dbus.SessionBus), as it
// does in the tray.
package main

import (
	"context"

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
		return nil
	})
}
