package assets

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestIconsDecode(t *testing.T) {
	for name, c := range map[string]struct {
		data []byte
		size int
	}{
		"Icon": {Icon, 128}, "TrayConnected": {TrayConnected, 64}, "TrayOffline": {TrayOffline, 64},
		"TrayDoNotDisturb": {TrayDoNotDisturb, 64}, "TrayUnread": {TrayUnread, 64},
	} {
		img, err := png.Decode(bytes.NewReader(c.data))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != c.size || b.Dy() != c.size {
			t.Errorf("%s is %v, want %d×%d", name, b, c.size, c.size)
		}
	}
}

// hicolorSizes are the PNG sizes packaging/ installs into the hicolor
// icon theme; gen.go draws each of them.
var hicolorSizes = []int{16, 22, 24, 32, 48, 64, 128, 256}

func hicolorPNG(size int) string {
	return filepath.Join("icons", "hicolor", fmt.Sprintf("%dx%d", size, size), "apps", "hark.png")
}

const hicolorSVG = "icons/hicolor/scalable/apps/hark.svg"

// generated is every file gen.go writes, relative to assets/.
func generated() []string {
	names := []string{"hark.png", "tray-connected.png", "tray-offline.png", "tray-dnd.png", "tray-unread.png"}
	for _, s := range hicolorSizes {
		names = append(names, hicolorPNG(s))
	}
	return append(names, filepath.FromSlash(hicolorSVG))
}

// The committed icons are exactly what gen.go draws: nobody edits them by
// hand, and `go generate ./assets` changes nothing.
func TestIconsAreGenerated(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gen.go"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "gen.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen.go: %v\n%s", err, out)
	}
	for _, name := range generated() {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what gen.go draws: run go generate ./assets", name)
		}
	}
	// gen.go writes nothing that is not checked (and so not committed).
	var wrote []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "gen.go" {
			rel, _ := filepath.Rel(dir, p)
			wrote = append(wrote, rel)
		}
		return err
	})
	if len(wrote) != len(generated()) {
		t.Errorf("gen.go wrote %q, the test knows %q", wrote, generated())
	}
}

func TestHicolorIcons(t *testing.T) {
	for _, s := range hicolorSizes {
		data, err := os.ReadFile(hicolorPNG(s))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", hicolorPNG(s), err)
		}
		if b := img.Bounds(); b.Dx() != s || b.Dy() != s {
			t.Errorf("%s is %v, want %d×%d", hicolorPNG(s), b, s, s)
		}
		// The corners are transparent (a rounded square), the centre of
		// the dot is white, and the middle of the square's left edge is
		// the blue background.
		if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
			t.Errorf("%s: corner is not transparent", hicolorPNG(s))
		}
		if !near(img.At(int(0.34*float64(s)), s/2), color.NRGBA{0xff, 0xff, 0xff, 0xff}) {
			t.Errorf("%s: the dot is %v, want white", hicolorPNG(s), img.At(int(0.34*float64(s)), s/2))
		}
		if !near(img.At(int(0.12*float64(s)), s/2), color.NRGBA{0x1c, 0x71, 0xd8, 0xff}) {
			t.Errorf("%s: the background is %v, want blue", hicolorPNG(s), img.At(int(0.12*float64(s)), s/2))
		}
	}
	big, err := os.ReadFile(hicolorPNG(128))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(big, Icon) {
		t.Errorf("%s differs from hark.png, the icon popups embed", hicolorPNG(128))
	}
}

func near(c color.Color, want color.NRGBA) bool {
	got := color.NRGBAModel.Convert(c).(color.NRGBA)
	d := func(a, b uint8) bool { return max(a, b)-min(a, b) < 8 }
	return d(got.R, want.R) && d(got.G, want.G) && d(got.B, want.B) && d(got.A, want.A)
}

// The SVG is the same design as the PNGs: rendered by a real SVG renderer
// (librsvg's rsvg-convert) at 128 pixels, it matches hark.png up to
// anti-aliasing. Without rsvg-convert it skips, unless HARK_TEST_SVG=1
// (packaging CI installs librsvg2-bin and sets it).
func TestSVGMatchesPNG(t *testing.T) {
	rsvg, err := exec.LookPath("rsvg-convert")
	if err != nil {
		if os.Getenv("HARK_TEST_SVG") == "1" {
			t.Fatal("rsvg-convert is missing: apt-get install librsvg2-bin")
		}
		t.Skip("rsvg-convert is missing (Debian: librsvg2-bin)")
	}
	out := filepath.Join(t.TempDir(), "svg.png")
	if b, err := exec.Command(rsvg, "-w", "128", "-h", "128", "-o", out, hicolorSVG).CombinedOutput(); err != nil {
		t.Fatalf("rsvg-convert: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	want, err := png.Decode(bytes.NewReader(Icon))
	if err != nil {
		t.Fatal(err)
	}
	total, far := diff(got, want)
	t.Logf("mean difference %.3f per channel, %d pixels differ by more than 1/4", total, far)
	if total > 0.5 || far > 0 {
		t.Errorf("the SVG rendered at 128 px differs from hark.png: mean %.3f per channel (want ≤ 0.5), %d pixels differ by more than 1/4 (want 0)", total, far)
	}
}

// diff compares two images' premultiplied channels (0–255): the mean
// absolute difference, and how many pixels differ by more than 64 in a
// channel.
func diff(a, b image.Image) (mean float64, far int) {
	r := a.Bounds()
	if r != b.Bounds() {
		return 255, r.Dx() * r.Dy()
	}
	var sum float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ar, ag, ab, aa := a.At(x, y).RGBA()
			br, bg, bb, ba := b.At(x, y).RGBA()
			worst := 0.0
			for _, p := range [][2]uint32{{ar, br}, {ag, bg}, {ab, bb}, {aa, ba}} {
				d := (float64(p[0]) - float64(p[1])) / 257
				if d < 0 {
					d = -d
				}
				sum += d
				worst = max(worst, d)
			}
			if worst > 64 {
				far++
			}
		}
	}
	return sum / float64(4*r.Dx()*r.Dy()), far
}

// The new-items dot and the glyph both read at 16 to 22 px: the dot
// stands apart from the glyph with transparency between them (over a
// pixel at 22 px), has no halo (a white ring reads as a smudge on a dark
// panel), and the glyph is whole, its outer arc not cut by the dot.
func TestUnreadDotStandsApart(t *testing.T) {
	img := decode(t, TrayUnread)
	blue := color.NRGBA{0x1c, 0x71, 0xd8, 0xff}
	orange := color.NRGBA{0xff, 0x78, 0x00, 0xff}
	is := func(c color.Color, want color.NRGBA) bool {
		got := color.NRGBAModel.Convert(c).(color.NRGBA)
		got.A = 0xff // anti-aliased edges: the colour, less opaque
		return near(got, want)
	}
	b := img.Bounds()
	var dots, glyphs []image.Point
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			if _, _, _, a := c.RGBA(); a>>8 < 16 {
				continue
			}
			switch {
			case is(c, orange):
				dots = append(dots, image.Pt(x, y))
			case is(c, blue):
				glyphs = append(glyphs, image.Pt(x, y))
			default:
				t.Fatalf("pixel %d,%d is %v: neither the glyph's blue nor the dot's orange", x, y, c)
			}
		}
	}
	if len(dots) == 0 || len(glyphs) == 0 {
		t.Fatalf("%d pixels of dot and %d of glyph", len(dots), len(glyphs))
	}
	// 3 px at 64 px is just over one at 22.
	gap := 1 << 30
	for _, d := range dots {
		for _, g := range glyphs {
			dx, dy := d.X-g.X, d.Y-g.Y
			gap = min(gap, dx*dx+dy*dy)
		}
	}
	if gap < 3*3 {
		t.Errorf("the dot is %.1f px from the glyph at 64 px, want 3 at least", math.Sqrt(float64(gap)))
	}
	// The glyph is whole: three parts (dot, arcs), each the shape it has
	// in the connected icon, only smaller.
	parts := components(img, func(c color.Color) bool { return is(c, blue) && alpha(c) >= 128 })
	whole := components(decode(t, TrayConnected), func(c color.Color) bool { return is(c, blue) && alpha(c) >= 128 })
	if len(parts) != 3 || len(whole) != 3 {
		t.Fatalf("the glyph has %d parts, %d in the connected icon; want 3 (a dot and two arcs)", len(parts), len(whole))
	}
	for i := range parts {
		got := float64(parts[i].Dy()) / float64(parts[i].Dx())
		want := float64(whole[i].Dy()) / float64(whole[i].Dx())
		if math.Abs(got-want) > 0.15*want {
			t.Errorf("glyph part %d is %v, its shape (height/width %.2f) not the connected icon's %v (%.2f)", i, parts[i], got, whole[i], want)
		}
	}
}

func decode(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func alpha(c color.Color) uint32 {
	_, _, _, a := c.RGBA()
	return a >> 8
}

// components returns the bounds of each 8-connected set of pixels that
// in matches, from left to right.
func components(img image.Image, in func(color.Color) bool) []image.Rectangle {
	b := img.Bounds()
	seen := map[image.Point]bool{}
	var out []image.Rectangle
	for x := b.Min.X; x < b.Max.X; x++ {
		for y := b.Min.Y; y < b.Max.Y; y++ {
			p := image.Pt(x, y)
			if seen[p] || !in(img.At(x, y)) {
				continue
			}
			r := image.Rectangle{p, p.Add(image.Pt(1, 1))}
			stack := []image.Point{p}
			seen[p] = true
			for len(stack) > 0 {
				q := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				r = r.Union(image.Rectangle{q, q.Add(image.Pt(1, 1))})
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						n := q.Add(image.Pt(dx, dy))
						if n.In(b) && !seen[n] && in(img.At(n.X, n.Y)) {
							seen[n] = true
							stack = append(stack, n)
						}
					}
				}
			}
			out = append(out, r)
		}
	}
	return out
}
