//go:build ignore

// gen draws hark's icons. They are geometry (a dot and two sound waves,
// "hark!"), so they are computed rather than drawn by hand: every size and
// state comes from the same few lines, and `go generate ./assets`
// reproduces the committed icons (the PNGs and assets/icons/, with its
// SVG) byte for byte.
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
	"path/filepath"
	"strconv"
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
	g := glyphShape(big)
	cx, cy := g.cx, g.cy
	arc := func(r, w float64) func(x, y float64) bool {
		return func(x, y float64) bool {
			dx, dy := x-cx, y-cy
			d := math.Hypot(dx, dy)
			ang := math.Atan2(dy, dx)
			return math.Abs(d-r) <= w/2 && math.Abs(ang) <= arcHalfAngle
		}
	}
	return []layer{
		{func(x, y float64) bool { return math.Hypot(x-cx, y-cy) <= g.dot }, c},
		{arc(g.r1, g.w), c},
		{arc(g.r2, g.w), c},
	}
}

// shape is the glyph's geometry in the unit square: the dot's centre and
// radius, the two arcs' radii and their width. The PNGs and the SVG are
// both drawn from it.
type shape struct{ cx, cy, dot, r1, r2, w float64 }

// arcHalfAngle is how far each arc reaches above and below the centre
// line (the ends are cut radially).
const arcHalfAngle = math.Pi / 3.2

func glyphShape(big bool) shape {
	if big {
		return shape{cx: 0.2, cy: 0.5, dot: 0.14, r1: 0.33, r2: 0.56, w: 0.12}
	}
	return shape{cx: 0.34, cy: 0.5, dot: 0.11, r1: 0.27, r2: 0.44, w: 0.09}
}

// The application icon's background: margin and corner radius.
const squareMargin, squareRadius = 0.04, 0.2

func roundedSquare(c rgba) layer {
	const m, r = squareMargin, squareRadius
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

// withDot is a glyph making room for the new-items dot: the glyph
// shrunk to 80 % towards the bottom-left corner, and the dot in the
// top-right corner, with transparency between them that stays over a
// pixel wide at 16 to 22 px (at full size, the dot would cover the outer
// arc's end). No halo around the dot: on a dark panel a white ring reads
// as a smudge.
func withDot(g []layer, c rgba) []layer {
	const s, ax, ay = 0.8, 0, 1 // scale, towards this corner
	out := make([]layer, 0, len(g)+1)
	for _, l := range g {
		in := l.inside
		out = append(out, layer{func(x, y float64) bool { return in(ax+(x-ax)/s, ay+(y-ay)/s) }, l.c})
	}
	return append(out, layer{func(x, y float64) bool { return math.Hypot(x-0.8, y-0.2) <= 0.19 }, c})
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
	writeFile(name, buf.Bytes())
}

func writeFile(name string, data []byte) {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", name)
}

func (c rgba) hex() string {
	return fmt.Sprintf("#%02x%02x%02x", uint8(c.r), uint8(c.g), uint8(c.b))
}

// svg draws the application icon as vectors, from the same geometry as
// the PNGs, in a 128-unit square (the size hark.png is drawn at).
func svg() []byte {
	const size = 128
	n := func(v float64) string { // unit square → 128 units, 3 decimals at most
		return strconv.FormatFloat(math.Round(v*size*1000)/1000, 'f', -1, 64)
	}
	g := glyphShape(false)
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<!-- hark's application icon: drawn by assets/gen.go (go generate ./assets), do not edit. -->
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">
`, size, size, size, size)
	fmt.Fprintf(&b, "  <rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" rx=\"%s\" fill=\"%s\"/>\n",
		n(squareMargin), n(squareMargin), n(1-2*squareMargin), n(1-2*squareMargin), n(squareRadius), blue.hex())
	fmt.Fprintf(&b, "  <circle cx=\"%s\" cy=\"%s\" r=\"%s\" fill=\"%s\"/>\n", n(g.cx), n(g.cy), n(g.dot), white.hex())
	for _, r := range []float64{g.r1, g.r2} {
		// From the upper end clockwise to the lower end; butt caps cut
		// the ends radially, as the PNGs do.
		x := g.cx + r*math.Cos(arcHalfAngle)
		dy := r * math.Sin(arcHalfAngle)
		fmt.Fprintf(&b, "  <path d=\"M %s %s A %s %s 0 0 1 %s %s\" fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" stroke-linecap=\"butt\"/>\n",
			n(x), n(g.cy-dy), n(r), n(r), n(x), n(g.cy+dy), white.hex(), n(g.w))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// hicolorSizes are the sizes installed into the hicolor icon theme
// (/usr/share/icons/hicolor/NxN/apps/hark.png).
var hicolorSizes = []int{16, 22, 24, 32, 48, 64, 128, 256}

func main() {
	app := append([]layer{roundedSquare(blue)}, glyph(white, false)...)
	write("hark.png", render(128, app))

	// Tray icons: the glyph alone on a transparent background, readable
	// on light and dark panels alike.
	const tray = 64
	write("tray-connected.png", render(tray, glyph(blue, true)))
	write("tray-offline.png", render(tray, glyph(grey, true)))
	write("tray-dnd.png", render(tray, append(glyph(grey, true), slash(red))))
	write("tray-unread.png", render(tray, withDot(glyph(blue, true), orange)))

	// The application icon for the desktop (packaging/ installs these):
	// each hicolor size, drawn at that size rather than scaled, and the
	// same design as an SVG.
	for _, s := range hicolorSizes {
		write(filepath.Join("icons", "hicolor", fmt.Sprintf("%dx%d", s, s), "apps", "hark.png"), render(s, app))
	}
	writeFile(filepath.Join("icons", "hicolor", "scalable", "apps", "hark.svg"), svg())
}
