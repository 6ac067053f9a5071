// Package bus is the ladder's godbus step: the tray's own connection to
// the session bus, opened and used at start as tray/desktop_dbus.go does
// (openDesktop, NotificationServer, TrayHost, WatchTrayHost), so that
// what godbus costs is measured with the code paths the tray runs.
package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/internal/sessionbus"
)

const (
	notifyName  = "org.freedesktop.Notifications"
	notifyPath  = "/org/freedesktop/Notifications"
	watcherName = "org.kde.StatusNotifierWatcher"
)

// Open connects to the session bus as the tray does, asks the daemon who
// it is and whether a tray host runs, and watches for tray hosts coming
// and going, on a goroutine, until ctx ends.
func Open(ctx context.Context) (*dbus.Conn, error) {
	addr, err := sessionbus.Address()
	if err != nil {
		return nil, err
	}
	// WithContext, as the tray: godbus closes the connection when ctx
	// ends, from a goroutine of its own.
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("connecting to the session bus at %s: %w", addr, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second) // the tray's callTimeout
	defer cancel()
	obj := conn.Object(notifyName, notifyPath)
	var name, vendor, version, spec string
	if err := obj.CallWithContext(cctx, notifyName+".GetServerInformation", 0).Store(&name, &vendor, &version, &spec); err != nil {
		return nil, fmt.Errorf("GetServerInformation: %w", err)
	}
	var caps []string
	if err := obj.CallWithContext(cctx, notifyName+".GetCapabilities", 0).Store(&caps); err != nil {
		return nil, fmt.Errorf("GetCapabilities: %w", err)
	}
	var host bool
	if err := conn.BusObject().CallWithContext(cctx, "org.freedesktop.DBus.NameHasOwner", 0, watcherName).Store(&host); err != nil {
		return nil, fmt.Errorf("NameHasOwner: %w", err)
	}
	err = conn.AddMatchSignalContext(cctx,
		dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, watcherName),
	)
	if err != nil {
		return nil, fmt.Errorf("watching for a tray host: %w", err)
	}
	// The tray's onSignal: a goroutine waiting for the signals.
	ch := make(chan *dbus.Signal, 8)
	conn.Signal(ch)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
			}
		}
	}()
	return conn, nil
}
