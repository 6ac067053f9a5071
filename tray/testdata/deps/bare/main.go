// The ladder's first step: the Go runtime and the harness (signals,
// GOGC, giving back the binary's pages), linking no dependency. What it
// holds idle is the floor every other step stands on.
package main

import (
	"context"

	"github.com/harkapp/hark/tray/testdata/deps/internal/ladder"
)

func main() {
	ladder.Main(func(context.Context) error { return nil })
}
