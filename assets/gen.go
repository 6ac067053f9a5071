//go:build ignore

// gen draws hark's icons. They are geometry (a dot and two sound waves,
// "hark!"), so they are computed rather than drawn by hand: every size and
// state comes from the same few lines, and `go generate ./assets`
// reproduces the committed PNGs byte for byte.
package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

type rgba struct{ r, g, b, a float64 }

var (
	blue   = rgba{0x1c, 0x71, 0xd8, 1}
	white  = rgba{0xff, 0xff, 0xff, 1}
	grey   = rgba{0x9a, 0x99, 0x96, 1}
	red    = rgba{0xe0, 0x1b, 0x24, 1}
	orange = rgba{0xff, 0x78, 0x00, 1}
)

// A layer says, for a point in the unit square (y down), whether it is
// inside, and with which colour. Layers are painted in order.
type layer struct {
	inside func(x, y float64) bool
	c      rgba
}

// glyph is the dot and two arcs opening to the right, centred a little
// left of the middle so the waves have room. big fills the whole square,
// for tray icons, which panels draw at 16 to 24 pixels.
func glyph(c rgba, big bool) []layer {
	cx, cy, dot, r1, r2, w := 0.34, 0.5, 0.11, 0.27, 0.44, 0.09
	if big {
		cx, dot, r1, r2, w = 0.2, 0.14, 0.33, 0.56, 0.12
	}
	arc := func(r, w float64) func(x, y float64) bool {
		return func(x, y float64) bool {
			dx, dy := x-cx, y-cy
			d := math.Hypot(dx, dy)
			ang := math.Atan2(dy, dx)
			return math.Abs(d-r) <= w/2 && math.Abs(ang) <= math.Pi/3.2
		}
	}
	return []layer{
		{func(x, y float64) bool { return math.Hypot(x-cx, y-cy) <= dot }, c},
		{arc(r1, w), c},
		{arc(r2, w), c},
	}
}

func roundedSquare(c rgba) layer {
	const m, r = 0.04, 0.2 // margin and corner radius
	return layer{func(x, y float64) bool {
		if x < m || x > 1-m || y < m || y > 1-m {
			return false
		}
		qx := math.Max(math.Max(m+r-x, x-(1-m-r)), 0)
		qy := math.Max(math.Max(m+r-y, y-(1-m-r)), 0)
		return math.Hypot(qx, qy) <= r
	}, c}
}

func slash(c rgba) layer {
	return layer{func(x, y float64) bool {
		// distance from the line x = y, within the square's inner part
		return math.Abs(x-y)/math.Sqrt2 <= 0.07 && x > 0.06 && x < 0.94
	}, c}
}

func badge(c rgba) []layer {
	return []layer{
		{func(x, y float64) bool { return math.Hypot(x-0.78, y-0.22) <= 0.22 }, white},
		{func(x, y float64) bool { return math.Hypot(x-0.78, y-0.22) <= 0.17 }, c},
	}
}

// render paints layers at size×size with 8×8 supersampling, so edges
// are anti-aliased without a graphics library.
func render(size int, layers []layer) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	const ss = 8
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := (float64(px) + (float64(sx)+0.5)/ss) / float64(size)
					y := (float64(py) + (float64(sy)+0.5)/ss) / float64(size)
					var c rgba
					for _, l := range layers {
						if l.inside(x, y) {
							c = l.c
						}
					}
					// premultiplied accumulation
					r += c.r * c.a
					g += c.g * c.a
					b += c.b * c.a
					a += c.a
				}
			}
			n := float64(ss * ss)
			if a == 0 {
				continue
			}
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(math.Round(r / a)), G: uint8(math.Round(g / a)), B: uint8(math.Round(b / a)),
				A: uint8(math.Round(255 * a / n)),
			})
		}
	}
	return img
}

func write(name string, img image.Image) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", name)
}

func main() {
	app := append([]layer{roundedSquare(blue)}, glyph(white, false)...)
	write("hark.png", render(128, app))

	// Tray icons: the glyph alone on a transparent background, readable
	// on light and dark panels alike.
	const tray = 64
	write("tray-connected.png", render(tray, glyph(blue, true)))
	write("tray-offline.png", render(tray, glyph(grey, true)))
	write("tray-dnd.png", render(tray, append(glyph(grey, true), slash(red))))
	write("tray-unread.png", render(tray, append(glyph(blue, true), badge(orange)...)))
}
