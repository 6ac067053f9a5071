package tray

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// watchSleep calls woke each time the machine resumes from suspend, as
// logind announces on the system bus (PrepareForSleep(false)), until ctx
// ends. A connection that slept is usually dead without knowing it;
// reconnecting at once beats waiting for keepalives to notice. The error
// says there is no system bus; the caller then relies on dead-peer
// detection alone.
func watchSleep(ctx context.Context, watching, woke func()) error {
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("no D-Bus system bus, so no wake-up signal from logind: %w", err)
	}
	defer conn.Close()
	err = conn.AddMatchSignalContext(ctx,
		dbus.WithMatchSender("org.freedesktop.login1"),
		dbus.WithMatchObjectPath("/org/freedesktop/login1"),
		dbus.WithMatchInterface("org.freedesktop.login1.Manager"),
		dbus.WithMatchMember("PrepareForSleep"),
	)
	if err != nil {
		return fmt.Errorf("subscribing to logind's PrepareForSleep: %w", err)
	}
	onSignal(ctx, conn, "org.freedesktop.login1.Manager.PrepareForSleep", 1, watching, func(body []any) {
		if sleeping, ok := body[0].(bool); ok && !sleeping {
			woke()
		}
	})
	return nil
}
