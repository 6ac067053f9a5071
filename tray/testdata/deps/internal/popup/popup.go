// Package popup is the ladder's step for the tray's popups on the
// Freedesktop platforms: the icon decoded once into the image-data hint
// (esiqveland/notify, image/png, image/draw) and kept, and a Notify call
// on the tray's own connection, as tray/desktop_dbus.go does (openDesktop,
// iconRGBA, Notify). The tray does not call beeep there; the beeep step
// measures what beeep would cost instead.
package popup

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"time"

	"github.com/esiqveland/notify"
	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/assets"
)

// icon is the image-data hint, kept for the process's life as the
// tray's desktop keeps it: 128×128 pixels, 64 KiB.
var icon dbus.Variant

// Send decodes the icon, then shows one popup through conn.
func Send(ctx context.Context, conn *dbus.Conn, title, body string) error {
	src, err := png.Decode(bytes.NewReader(assets.Icon))
	if err != nil {
		return err
	}
	b := src.Bounds()
	img := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(img, img.Bounds(), src, b.Min, draw.Src)
	icon = notify.HintImageDataRGBA(&image.RGBA{Pix: img.Pix, Stride: img.Stride, Rect: img.Rect}).Variant

	hints := map[string]dbus.Variant{
		"urgency":       dbus.MakeVariant(byte(1)),
		"desktop-entry": dbus.MakeVariant("io.github.harkapp.hark"),
		"image-data":    icon,
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var id uint32
	err = conn.Object("org.freedesktop.Notifications", "/org/freedesktop/Notifications").CallWithContext(cctx,
		"org.freedesktop.Notifications.Notify", 0,
		"hark", uint32(0), "", title, body, []string{}, hints, int32(-1)).Store(&id)
	if err != nil {
		return fmt.Errorf("Notify: %w", err)
	}
	return nil
}
