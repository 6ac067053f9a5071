//go:build linux || freebsd || netbsd || openbsd

package tray

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"slices"
	"strings"

	"github.com/esiqveland/notify"
	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/assets"
	"github.com/harkapp/hark/internal/sessionbus"
)

// On the Freedesktop platforms hark talks to the notification daemon itself,
// with godbus (which beeep brings), instead of calling beeep.Notify. beeep
// alone is not enough here:
//   - it sends on the shared dbus.SessionBus() connection that systray also
//     uses; the daemon's NotificationClosed signal then reaches systray's
//     re-register loop, which takes it for a malformed signal and stops, so
//     the icon never comes back after a panel restart. hark uses a private
//     connection whose signals systray never sees;
//   - its call has no deadline, and blocks forever on a hung daemon;
//   - it cannot replace a popup (a burst summary updates itself in place)
//     nor tell whether the daemon reads markup in the body.
const (
	notifyName   = "org.freedesktop.Notifications"
	notifyPath   = "/org/freedesktop/Notifications"
	watcherName  = "org.kde.StatusNotifierWatcher"
	popupTimeout = -1 // the daemon's default display time
)

// desktop is hark's own private connection to the session bus.
type desktop struct {
	conn    *dbus.Conn
	icon    dbus.Variant
	markup  bool              // the daemon reads markup in bodies: escape them
	replace map[string]uint32 // popup group → the id it replaces
}

// sessionBusAddress is where the session bus is: sessionbus.Address.
func sessionBusAddress() (string, error) { return sessionbus.Address() }

// openDesktop connects to the session bus. The error is
// sessionbus.ErrNoBus (no tray icon and no popups), or says why the bus could not be reached.
func openDesktop(ctx context.Context) (*desktop, error) {
	addr, err := sessionBusAddress()
	if err != nil {
		return nil, err
	}
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("connecting to the D-Bus session bus at %s: %w", addr, err)
	}
	d := &desktop{conn: conn, replace: map[string]uint32{}}
	if img, err := iconRGBA(assets.Icon); err == nil {
		h := notify.HintImageDataRGBA(img)
		d.icon = h.Variant
	}
	return d, nil
}

// Export makes the session-bus address visible to systray, which connects
// by itself and would otherwise run dbus-launch when only the runtime
// directory's socket exists.
func (d *desktop) exportAddress() {
	if a, err := sessionBusAddress(); err == nil {
		os.Setenv("DBUS_SESSION_BUS_ADDRESS", a)
	}
}

func (d *desktop) Close() error { return d.conn.Close() }

// NotificationServer asks the daemon who it is and what it can do.
func (d *desktop) NotificationServer(ctx context.Context) (string, error) {
	obj := d.conn.Object(notifyName, notifyPath)
	var name, vendor, version, spec string
	if err := obj.CallWithContext(ctx, notifyName+".GetServerInformation", 0).Store(&name, &vendor, &version, &spec); err != nil {
		return "", fmt.Errorf("no notification daemon answers on the session bus (%s): %w", notifyName, err)
	}
	var caps []string
	if err := obj.CallWithContext(ctx, notifyName+".GetCapabilities", 0).Store(&caps); err != nil {
		return "", fmt.Errorf("the notification daemon %s does not list its capabilities: %w", name, err)
	}
	d.markup = slices.Contains(caps, "body-markup")
	return name + " " + version, nil
}

// Notify shows p. Call NotificationServer first: it learns whether the
// body needs escaping.
func (d *desktop) Notify(ctx context.Context, p Popup) error {
	body := p.Body
	if d.markup {
		body = escapeMarkup(body)
	}
	hints := map[string]dbus.Variant{
		"urgency":       dbus.MakeVariant(byte(1)),                  // normal
		"desktop-entry": dbus.MakeVariant("io.github.harkapp.hark"), // packaging/io.github.harkapp.hark.desktop
	}
	if d.icon.Value() != nil {
		hints["image-data"] = d.icon
	}
	var id uint32
	err := d.conn.Object(notifyName, notifyPath).CallWithContext(ctx, notifyName+".Notify", 0,
		"hark", d.replace[p.Group], "", p.Title, body, []string{}, hints, int32(popupTimeout)).Store(&id)
	if err != nil {
		return fmt.Errorf("showing a popup: %w", err)
	}
	if p.Group != "" {
		d.replace[p.Group] = id
	}
	return nil
}

// TrayHost reports whether a StatusNotifierWatcher (the tray host that
// shows StatusNotifierItems) runs. systray cannot say: without one it
// neither fails nor returns.
func (d *desktop) TrayHost(ctx context.Context) (bool, error) {
	var has bool
	err := d.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, watcherName).Store(&has)
	if err != nil {
		return false, fmt.Errorf("asking the session bus for a tray host: %w", err)
	}
	return has, nil
}

// WatchTrayHost calls changed each time a tray host appears or goes,
// until ctx ends.
func (d *desktop) WatchTrayHost(ctx context.Context, changed func(present bool)) error {
	match := []dbus.MatchOption{
		dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, watcherName),
	}
	if err := d.conn.AddMatchSignalContext(ctx, match...); err != nil {
		return fmt.Errorf("watching for a tray host: %w", err)
	}
	onSignal(ctx, d.conn, "org.freedesktop.DBus.NameOwnerChanged", 3, nil, func(body []any) {
		if name, _ := body[0].(string); name == watcherName {
			owner, _ := body[2].(string)
			changed(owner != "")
		}
	})
	return nil
}

// escapeMarkup makes text safe for a daemon that reads the notification
// spec's markup subset in bodies: an ad saying "<b>" or "&amp;" shows
// those characters, not bold text or "&".
func escapeMarkup(s string) string {
	return markupEscaper.Replace(s)
}

var markupEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// iconRGBA decodes the icon for the image-data hint. The spec wants
// straight (not premultiplied) alpha, which is image.NRGBA's layout; the
// hint helper takes an *image.RGBA, so the pixels are handed over as one.
func iconRGBA(data []byte) (*image.RGBA, error) {
	src, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decoding the icon: %w", err)
	}
	b := src.Bounds()
	img := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(img, img.Bounds(), src, b.Min, draw.Src)
	return &image.RGBA{Pix: img.Pix, Stride: img.Stride, Rect: img.Rect}, nil
}
