package desktoptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// tool is a program the desktop needs, with the Debian package that ships
// it, so that a missing tool can be reported as something to install.
type tool struct {
	name string // how we report it
	pkg  string // Debian package that provides it
	find func() (string, error)
}

// onPath finds a program on PATH.
func onPath(name string) func() (string, error) {
	return func() (string, error) { return exec.LookPath(name) }
}

// xfconfdCandidates lists where distributions put xfconfd. It is a private
// helper that is normally started by D-Bus activation, so it is not on
// PATH; Debian puts it under the multiarch library directory.
func xfconfdCandidates() []string {
	var c []string
	if triplet, ok := map[string]string{
		"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "386": "i386-linux-gnu",
		"arm": "arm-linux-gnueabihf", "riscv64": "riscv64-linux-gnu", "ppc64le": "powerpc64le-linux-gnu",
		"s390x": "s390x-linux-gnu",
	}[runtime.GOARCH]; ok {
		c = append(c, "/usr/lib/"+triplet+"/xfce4/xfconf/xfconfd")
	}
	globbed, _ := filepath.Glob("/usr/lib/*/xfce4/xfconf/xfconfd")
	c = append(c, globbed...)
	return append(c, "/usr/lib/xfce4/xfconf/xfconfd", "/usr/libexec/xfconfd", "/usr/lib64/xfce4/xfconf/xfconfd")
}

func findXfconfd() (string, error) {
	for _, p := range xfconfdCandidates() {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("xfconfd not found in %v", xfconfdCandidates())
}

// tools is everything Start and the Desktop methods run. dbus-send is
// listed because dunstctl is a shell script around it, and Debian ships it
// in a package of its own.
var tools = []tool{
	{"Xvfb", "xvfb", onPath("Xvfb")},
	{"dbus-daemon", "dbus-daemon", onPath("dbus-daemon")},
	{"dbus-send", "dbus-bin", onPath("dbus-send")},
	{"dunst", "dunst", onPath("dunst")},
	{"dunstctl", "dunst", onPath("dunstctl")},
	{"import", "imagemagick", onPath("import")},
	{"xdotool", "xdotool", onPath("xdotool")},
}

// hostTools are what each tray host needs besides tools.
var hostTools = map[Host][]tool{
	XFCE: {
		{"xfconfd", "xfconf", findXfconfd},
		{"xfce4-panel", "xfce4-panel", onPath("xfce4-panel")},
	},
	LXQt: {
		{"lxqt-panel", "lxqt-panel", onPath("lxqt-panel")},
	},
}

func missingTools(opts []Option) []tool {
	if runtime.GOOS != "linux" {
		return []tool{{name: "a Linux desktop (desktoptest runs only on Linux)", pkg: ""}}
	}
	var m []tool
	for _, tl := range append(slices.Clip(tools), hostTools[configure(opts).host]...) {
		if _, err := tl.find(); err != nil {
			m = append(m, tl)
		}
	}
	return m
}

// Missing reports which programs that Start, with these options, needs
// are missing, each with the Debian package to install, e.g. "Xvfb
// (xvfb)", so that a skipped or failed test says exactly what to do. It
// is empty when all are present.
func Missing(opts ...Option) []string {
	var out []string
	for _, tl := range missingTools(opts) {
		if tl.pkg == "" {
			out = append(out, tl.name)
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s)", tl.name, tl.pkg))
	}
	return out
}

// Require skips the test when a required program is missing, naming the
// Debian packages to install, because a developer without a desktop
// toolchain should still be able to run the other tests. When the
// environment variable CI is "true" it fails instead: CI installs the
// packages, so a missing tool there is a broken setup that must not hide
// behind a skip. Off Linux it always skips, since there is nothing to
// install. Pass the options Start will get: LXQtPanel needs lxqt-panel
// rather than xfce4-panel.
func Require(t testing.TB, opts ...Option) {
	t.Helper()
	m := missingTools(opts)
	if len(m) == 0 {
		return
	}
	if runtime.GOOS != "linux" {
		t.Skipf("desktoptest: %s", m[0].name)
	}
	var names, pkgs []string
	seen := map[string]bool{}
	for _, tl := range m {
		names = append(names, fmt.Sprintf("%s (%s)", tl.name, tl.pkg))
		if !seen[tl.pkg] {
			seen[tl.pkg] = true
			pkgs = append(pkgs, tl.pkg)
		}
	}
	msg := fmt.Sprintf("desktoptest: missing %s; install with: apt-get install %s",
		strings.Join(names, ", "), strings.Join(pkgs, " "))
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true, so this is a failure, not a skip)", msg)
	}
	t.Skip(msg)
}
