// Package sessionbus finds and dials the user's D-Bus session bus, for
// the tray's desktop, the keyring and the tests' desktop: the same rules
// in one place.
package sessionbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/internal/xdg"
)

// ErrNoBus means there is no session bus to talk to.
var ErrNoBus = errors.New("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset and $XDG_RUNTIME_DIR/bus does not exist)")

// Address finds the session bus the way godbus does, minus its last
// resort: running dbus-launch, which would start a stray bus that no tray
// host, notification daemon or keyring listens on (and minus its
// os.Setenv).
func Address() (string, error) {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return a, nil
	}
	if rt, ok := xdg.RuntimeDir(); ok {
		p := filepath.Join(rt, "bus")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return "unix:path=" + dbus.EscapeBusAddressValue(p), nil
		}
	}
	return "", ErrNoBus
}

// Dial connects to the bus at addr and authenticates, with ctx bounding
// the handshake only. (With dbus.WithContext, godbus would close the
// connection whenever ctx ends, racing with the caller's own Close, which
// panics on a monitor connection in godbus 5.1.)
func Dial(ctx context.Context, addr string) (*dbus.Conn, error) {
	conn, err := dbus.Dial(addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err = conn.Auth(nil)
	if err == nil {
		err = conn.Hello()
	}
	if !stop() {
		conn.Close()
		return nil, fmt.Errorf("connect to %s: %w", addr, ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return conn, nil
}
