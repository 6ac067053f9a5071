//go:build !linux

package tray

import (
	"context"
	"errors"
)

// watchSleep has no wake-up signal to watch outside Linux: the session's
// own dead-peer detection notices a connection that died in suspend.
func watchSleep(ctx context.Context, watching, woke func()) error {
	return errors.New("no wake-up signal on this platform")
}
