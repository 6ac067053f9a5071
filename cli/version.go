package cli

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at build time by the packaging step
// (-ldflags "-X github.com/harkapp/hark/cli.version=1.2.3"); otherwise the
// module version from the build info is used.
var version string

// Version runs `hark version` (and hark --version, hark -v).
func Version(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("version takes no arguments")
	}
	_, err := fmt.Fprintln(stdout, "hark", Current())
	return err
}

// Current is hark's version string.
func Current() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
