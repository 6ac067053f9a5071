package assets

import (
	"bytes"
	"image/png"
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

// The committed PNGs are exactly what gen.go draws: nobody edits them by
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
	for _, name := range []string{"hark.png", "tray-connected.png", "tray-offline.png", "tray-dnd.png", "tray-unread.png"} {
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
}
