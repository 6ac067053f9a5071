//go:build !(linux || freebsd || netbsd || openbsd)

package tray

import (
	"context"
	"fmt"

	"github.com/gen2brain/beeep"

	"github.com/harkapp/hark/assets"
)

// watcherName only means something on Freedesktop platforms.
const watcherName = "the system tray"

// desktop, outside the Freedesktop platforms, is beeep: it knows each
// platform's notification API, and those have no markup and no session
// bus to share.
type desktop struct{}

func openDesktop(ctx context.Context) (*desktop, error) {
	beeep.AppName = "hark"
	return &desktop{}, nil
}

func (d *desktop) exportAddress() {}

func (d *desktop) Close() error { return nil }

func (d *desktop) NotificationServer(ctx context.Context) (string, error) {
	return "the system's notifications", nil
}

// Notify shows p. beeep's call takes no context, so it runs on its own
// goroutine and the caller stops waiting at the deadline.
func (d *desktop) Notify(ctx context.Context, p Popup) error {
	done := make(chan error, 1)
	go func() { done <- beeep.Notify(p.Title, p.Body, assets.Icon) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("showing a popup: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("showing a popup: %w", ctx.Err())
	}
}

func (d *desktop) TrayHost(ctx context.Context) (bool, error) { return true, nil }

func (d *desktop) WatchTrayHost(ctx context.Context, changed func(bool)) error {
	<-ctx.Done()
	return nil
}
