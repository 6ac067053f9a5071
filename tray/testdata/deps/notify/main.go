// The ladder's fourth step: the systray step plus one popup shown the
// way the tray shows them on Linux (see internal/popup).
package main

import (
	"context"

	"github.com/harkapp/hark/tray/testdata/deps/internal/bus"
	"github.com/harkapp/hark/tray/testdata/deps/internal/ladder"
	"github.com/harkapp/hark/tray/testdata/deps/internal/menu"
	"github.com/harkapp/hark/tray/testdata/deps/internal/popup"
)

func main() {
	ladder.Main(func(ctx context.Context) error {
		conn, err := bus.Open(ctx)
		if err != nil {
			return err
		}
		menu.Show()
		return popup.Send(ctx, conn, "New random number", "42")
	})
}
