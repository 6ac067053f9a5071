// The ladder's second step: the floor plus godbus, connected to the
// session bus as the tray connects and asking what the tray asks at
// start (see internal/bus).
package main

import (
	"context"

	"github.com/harkapp/hark/tray/testdata/deps/internal/bus"
	"github.com/harkapp/hark/tray/testdata/deps/internal/ladder"
)

func main() {
	ladder.Main(func(ctx context.Context) error {
		_, err := bus.Open(ctx)
		return err
	})
}
