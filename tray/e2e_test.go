package tray_test

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/internal/desktoptest"
)

const e2eTimeout = 30 * time.Second

// harkBinary builds hark once per test binary, with the race detector
// when the tests run with it, so the real tray process is checked too.
var harkBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "hark-e2e-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "hark")
	return bin, goBuild(bin, "github.com/harkapp/hark")
})

// goBuild builds pkgs into out (a directory ending in a separator for
// several) with the race detector when the tests run with it, else as
// released (Makefile): without cgo, position-independent. exepages.Release
// once crashed only such a binary.
func goBuild(out string, pkgs ...string) error {
	args := []string{"build", "-o", out}
	cmd := exec.Command("go")
	cmd.Env = os.Environ()
	if raceEnabled {
		args = append(args, "-race")
	} else {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
		args = append(args, "-trimpath", "-buildmode=pie")
	}
	cmd.Args = append(cmd.Args, append(args, pkgs...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, b)
	}
	return nil
}

// proc is a hark process whose stderr (its log) the test reads line by
// line, and which is also kept in a file under the desktop's OutDir.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed when a line is added
	next    int           // the first line await has not looked at
}

// line returns line i once it exists, or false when the process exited
// without writing it or the time is up.
func (p *proc) line(i int, timeout <-chan time.Time) (string, bool) {
	for {
		p.mu.Lock()
		if i < len(p.lines) {
			l := p.lines[i]
			p.mu.Unlock()
			return l, true
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.exited:
			p.mu.Lock()
			more := i < len(p.lines)
			p.mu.Unlock()
			if !more {
				return "", false
			}
		case <-timeout:
			return "", false
		}
	}
}

func startProc(t testing.TB, d *desktoptest.Desktop, name string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, d, name, d.Env(), args...)
}

func startProcEnv(t testing.TB, d *desktoptest.Desktop, name string, env []string, args ...string) *proc {
	t.Helper()
	bin, err := harkBinary()
	if err != nil {
		t.Fatal(err)
	}
	return startBinaryEnv(t, d, name, bin, env, args...)
}

// startBinaryEnv is startProcEnv for any binary (the tray's dependency
// ladder too: its programs speak on stderr as hark logs there, so proc's
// await serves them as well).
func startBinaryEnv(t testing.TB, d *desktoptest.Desktop, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), changed: make(chan struct{}), exited: make(chan struct{})}
	// Race reports do not stop the process or change its exit status: the
	// test reads them from the log (see checkRaces), because systray
	// v1.12.2 has races of its own that hark cannot fix.
	p.cmd.Env = append(env, "GORACE=atexit_sleep_ms=0 exitcode=0")
	logf, err := os.Create(filepath.Join(d.OutDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stderr, logf))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		checkRaces(t, name, p.log())
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, p.log())
		}
	})
	return p
}

// checkRaces fails the test for a data race report in which either access
// happens in hark's own code. Races whose both accesses are inside
// dependencies are only logged: systray v1.12.2 guards menuVersion with two
// different locks, and godbus's prop package stores new property values
// in place while replies still encode the old ones; hark only calls their
// public API from one goroutine.
func checkRaces(t testing.TB, name, log string) {
	for _, block := range strings.Split(log, "==================\n") {
		if !strings.HasPrefix(block, "WARNING: DATA RACE") {
			continue
		}
		if racyFrameInHark(block) {
			t.Errorf("%s: data race in hark:\n%s", name, block)
		} else {
			t.Logf("%s: data race inside a dependency, not in hark's code:\n%s", name, firstLines(block, 8))
		}
	}
}

// racyFrameInHark reports whether the innermost frame (skipping the
// runtime, reflect and sync) of either access in a race report is hark's.
func racyFrameInHark(block string) bool {
	lines := strings.Split(block, "\n")
	for i, l := range lines {
		if !strings.Contains(l, " at 0x") || !(strings.HasPrefix(l, "Write") || strings.HasPrefix(l, "Read") || strings.HasPrefix(l, "Previous")) {
			continue
		}
		for _, f := range lines[i+1:] {
			f = strings.TrimSpace(f)
			if f == "" {
				break
			}
			if strings.HasPrefix(f, "/") || strings.HasPrefix(f, "runtime.") || strings.HasPrefix(f, "reflect.") || strings.HasPrefix(f, "sync.") || strings.HasPrefix(f, "sync/") {
				continue
			}
			if strings.HasPrefix(f, "github.com/harkapp/hark/") {
				return true
			}
			break
		}
	}
	return false
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n") + "\n"
}

// await reads the log, from where the last await stopped, until a line
// matches re, and returns its submatches.
func (p *proc) await(t testing.TB, re string) []string {
	t.Helper()
	return p.awaitWithin(t, re, e2eTimeout)
}

// awaitWithin is await with a timeout of its own (hark's quiet timer
// alone is 30 s, e2eTimeout's whole budget).
func (p *proc) awaitWithin(t testing.TB, re string, d time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(d)
	for {
		line, ok := p.line(p.next, timeout)
		if !ok {
			t.Fatalf("no log line matches %q within %v (exited: %v)", re, d, p.err)
		}
		p.next++
		if m := rx.FindStringSubmatch(line); m != nil {
			return m
		}
	}
}

// awaitAll waits until every pattern has matched a line, in any order.
func (p *proc) awaitAll(t testing.TB, res ...string) {
	t.Helper()
	left := map[*regexp.Regexp]bool{}
	for _, re := range res {
		left[regexp.MustCompile(re)] = true
	}
	timeout := time.After(e2eTimeout)
	for len(left) > 0 {
		line, ok := p.line(p.next, timeout)
		if !ok {
			t.Fatalf("not all of %q logged (exited: %v)", res, p.err)
		}
		p.next++
		for rx := range left {
			if rx.MatchString(line) {
				delete(left, rx)
			}
		}
	}
}

func (p *proc) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(e2eTimeout):
		t.Fatalf("process still running after %v", e2eTimeout)
		return nil
	}
}

// serve starts the real `hark serve` and returns its protocol and API
// addresses.
func serve(t testing.TB, d *desktoptest.Desktop) (proto, api string) {
	t.Helper()
	s := startProc(t, d, "serve", "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", t.TempDir())
	m := s.await(t, `hark serve is running" protocol=(\S+) .*publish_api=(\S+)`)
	return m[1], m[2]
}

func publish(t testing.TB, api, kind, value string) {
	t.Helper()
	resp, err := http.Post(api+"/v1/"+kind, "text/plain", strings.NewReader(value))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish %s %q: %s", kind, value, resp.Status)
	}
}

// trayItem waits until the process with pid has a StatusNotifierItem
// registered with the panel's watcher, and returns its bus name.
func trayItem(t testing.TB, d *desktoptest.Desktop, pid int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	item, err := d.WaitItem(ctx, func(item string) bool {
		name, _, _ := strings.Cut(item, "/")
		body, err := d.Call(ctx, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.GetConnectionUnixProcessID", name)
		return err == nil && len(body) == 1 && body[0] == uint32(pid)
	})
	if err != nil {
		t.Fatalf("hark's tray item did not register: %v", err)
	}
	name, _, _ := strings.Cut(item, "/")
	return name
}

// click clicks the menu item labelled label the way the panel does:
// GetLayout, then Event "clicked".
func click(t testing.TB, d *desktoptest.Desktop, bus, label string) {
	t.Helper()
	if err := tryClick(t, d, bus, label); err != nil {
		t.Fatal(err)
	}
}

// tryClick is click returning the Event call's error: after Quit, the app
// may be gone before systray's reply is sent.
func tryClick(t testing.TB, d *desktoptest.Desktop, bus, label string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	body, err := d.Call(ctx, bus, "/StatusNotifierItem/menu", "com.canonical.dbusmenu.GetLayout", int32(0), int32(-1), []string{})
	if err != nil {
		t.Fatal(err)
	}
	id, ok := findLabel(body[1], label)
	if !ok {
		t.Fatalf("no menu item %q in %v", label, body[1])
	}
	_, err = d.Call(ctx, bus, "/StatusNotifierItem/menu", "com.canonical.dbusmenu.Event", id, "clicked", dbus.MakeVariant(int32(0)), uint32(0))
	return err
}

// findLabel walks a dbusmenu layout (id, properties, children).
func findLabel(node any, label string) (int32, bool) {
	n, ok := node.([]any)
	if !ok || len(n) != 3 {
		return 0, false
	}
	props, _ := n[1].(map[string]dbus.Variant)
	if v, ok := props["visible"]; ok && v.Value() == false {
		return 0, false // hidden, with what is in it: not what a user sees
	}
	if l, ok := props["label"]; ok && l.Value() == label {
		return n[0].(int32), true
	}
	kids, _ := n[2].([]dbus.Variant)
	for _, k := range kids {
		if id, ok := findLabel(k.Value(), label); ok {
			return id, true
		}
	}
	return 0, false
}

// popups collects the Notify calls seen on the bus.
func popups(t testing.TB, d *desktoptest.Desktop) <-chan desktoptest.Notification {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := d.WatchNotifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func nextPopup(t testing.TB, ch <-chan desktoptest.Notification) desktoptest.Notification {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(e2eTimeout):
		t.Fatal("no popup")
		return desktoptest.Notification{}
	}
}

// TestTrayOnARealDesktop runs hark as a user would, in a headless desktop
// with a real panel and notification daemon, and checks what they show.
func TestTrayOnARealDesktop(t *testing.T) {
	desktoptest.Require(t)
	d := desktoptest.Start(t)
	proto, api := serve(t, d)
	shown := popups(t, d)

	cfg := filepath.Join(d.Home(), "hark.toml")
	hark := startProc(t, d, "hark", "--server", proto, "--config", cfg, "--log-level", "debug")
	bus := trayItem(t, d, hark.cmd.Process.Pid)
	// hark serve starts with a random number. hark has never met this
	// server: the number goes into the menu, without a popup (it is not
	// news), so the ad below makes the first popup. (The catch-up that
	// fetches it comes before the connection counts as up, but the two
	// lines are logged by two goroutines.)
	hark.awaitAll(t, `msg=item kind=random .* current=true`, `msg=connected`)

	// 1. An ad with markup characters: exactly one popup, and dunst shows
	// the characters, not bold text or a link.
	ad := `Sofa <b>as new</b> & cheap: <a href="http://x">call</a>`
	publish(t, api, "classified", ad)
	n := nextPopup(t, shown)
	if n.Summary != "New classified ad" || n.AppName != "hark" {
		t.Errorf("popup %q from %q, want \"New classified ad\" from hark", n.Summary, n.AppName)
	}
	wantBody := `Sofa &lt;b&gt;as new&lt;/b&gt; &amp; cheap: &lt;a href="http://x"&gt;call&lt;/a&gt;`
	if n.Body != wantBody {
		t.Errorf("popup body %q, want the ad escaped for markup: %q", n.Body, wantBody)
	}
	hark.await(t, `msg="popup shown"`)
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	hist, err := d.Popups(ctx) // closes them all, then reads dunst's history
	if err != nil {
		t.Fatal(err)
	}
	var ads int
	for _, p := range hist {
		if p.Summary == "New classified ad" {
			ads++
			if !strings.Contains(p.Body, "<b>as new</b>") && !strings.Contains(p.Body, "&lt;b&gt;") {
				t.Errorf("dunst shows %q", p.Body)
			}
		}
	}
	if ads != 1 {
		t.Errorf("dunst showed %d classified ad popups, want 1: %+v", ads, hist)
	}

	// 2. Classified ads off from the menu: no popup for the next ad, and the
	// config file says so. The random number published after it proves
	// the ad had its chance to pop up.
	click(t, d, bus, "Classified ads")
	hark.await(t, `msg="settings saved"`)
	data, err := os.ReadFile(cfg)
	if err != nil || !strings.Contains(string(data), "classified = false") {
		t.Errorf("config file after the click: %q (%v), want classified = false", data, err)
	}
	publish(t, api, "classified", "Nobody should see this ad")
	hark.await(t, `msg=item kind=classified value="Nobody should see this ad"`)
	publish(t, api, "random", "42")
	if n := nextPopup(t, shown); n.Summary != "New random number" || n.Body != "42" {
		t.Errorf("next popup: %q %q, want the random number 42 (and no ad before it)", n.Summary, n.Body)
	}

	// 3. Start on login, on and off again.
	autostart := filepath.Join(d.ConfigHome(), "autostart", "hark.desktop")
	click(t, d, bus, "Start on login")
	hark.await(t, `msg="start on login" enabled=true`)
	data, err = os.ReadFile(autostart)
	if err != nil {
		t.Fatalf("start on login wrote no file: %v", err)
	}
	bin, _ := harkBinary()
	wantExec := fmt.Sprintf("Exec=%s --server %s --config %s\n", bin, proto, cfg)
	if !strings.Contains(string(data), wantExec) {
		t.Errorf("autostart file:\n%s\nwant the line %q", data, wantExec)
	}
	click(t, d, bus, "Start on login")
	hark.await(t, `msg="start on login" enabled=false`)
	if _, err := os.Stat(autostart); !os.IsNotExist(err) {
		t.Errorf("autostart file still there after the second click: %v", err)
	}

	// 4. The panel restarts after popups came and went (their
	// NotificationClosed signals are what broke systray's re-register loop
	// when popups shared its connection): hark's icon comes back.
	if _, err := d.Popups(ctx); err != nil { // close what is open
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 2*e2eTimeout)
	defer rcancel()
	if err := d.RestartPanel(rctx); err != nil {
		t.Fatal(err)
	}
	trayItem(t, d, hark.cmd.Process.Pid)

	// 5. A screenshot with the icon, its menu open as a click opens it,
	// and a popup: what a user sees.
	click(t, d, bus, "Classified ads") // back on
	hark.await(t, `msg="settings saved"`)
	publish(t, api, "classified", "Bright two-room flat near the canal, 900 EUR")
	nextPopup(t, shown)
	hark.await(t, `msg="popup shown"`)
	screenshotMenu(t, d, "tray-menu-and-popup", isBlueGlyph)

	// 6. Quit from the menu: the process ends with status 0.
	quitFromMenu(t, d, bus, hark)
}

// quitFromMenu clicks Quit and requires hark to exit with status 0.
func quitFromMenu(t *testing.T, d *desktoptest.Desktop, bus string, hark *proc) {
	t.Helper()
	if err := tryClick(t, d, bus, "Quit"); err != nil {
		t.Logf("the Quit click got no reply, as hark may exit first: %v", err)
	}
	if err := hark.wait(t); err != nil {
		t.Errorf("hark after Quit: %v, want exit status 0", err)
	}
}

// TestSecondInstanceAndSIGTERM: a second hark in the same session says
// that one runs and exits 0; SIGTERM ends the first with status 0.
func TestSecondInstanceAndSIGTERM(t *testing.T) {
	desktoptest.Require(t)
	d := desktoptest.Start(t)
	proto, _ := serve(t, d)
	first := startProc(t, d, "hark-1", "--server", proto)
	trayItem(t, d, first.cmd.Process.Pid)

	second := startProc(t, d, "hark-2", "--server", proto)
	second.await(t, `already running`)
	if err := second.wait(t); err != nil {
		t.Errorf("second hark: %v, want exit status 0", err)
	}

	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := first.wait(t); err != nil {
		t.Errorf("hark after SIGTERM: %v, want exit status 0", err)
	}
}

// TestResumeReconnects: when logind announces the end of a suspend on the
// system bus, hark drops its connection, which may have died during the
// sleep without knowing it, and connects again at once.
func TestResumeReconnects(t *testing.T) {
	desktoptest.Require(t)
	d := desktoptest.Start(t)
	proto, _ := serve(t, d)
	hark := startProc(t, d, "hark", "--server", proto, "--log-level", "debug")
	hark.awaitAll(t, `msg="watching logind for resume from suspend"`, `msg=connected`)

	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	logind, err := dbus.Connect(d.SystemBusAddress(), dbus.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer logind.Close()
	if reply, err := logind.RequestName("org.freedesktop.login1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning org.freedesktop.login1 on the test's system bus: %v %v", reply, err)
	}
	for _, sleeping := range []bool{true, false} {
		if err := logind.Emit("/org/freedesktop/login1", "org.freedesktop.login1.Manager.PrepareForSleep", sleeping); err != nil {
			t.Fatal(err)
		}
	}
	hark.await(t, `msg="woke from suspend: reconnecting"`)
	hark.await(t, `msg=connected`)
}

// TestDegradesWithoutTrayHostOrDaemon runs hark on a session bus where
// nothing else runs (like a bare window manager without a tray or a
// notification daemon): it says what is missing, keeps running, logs the
// items nothing can show, and still quits cleanly on SIGTERM.
func TestDegradesWithoutTrayHostOrDaemon(t *testing.T) {
	desktoptest.Require(t)
	d := desktoptest.Start(t)
	proto, api := serve(t, d)
	dir := t.TempDir()
	// A bus of our own with no service activation: a Notify call must not
	// start a daemon.
	conf := filepath.Join(dir, "bus.conf")
	os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path=`+dir+`/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>`), 0o644)
	bus := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile", "--print-address=1")
	out, err := bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon did not print its address: %v", err)
	}
	env := append(d.Env(), "DBUS_SESSION_BUS_ADDRESS="+strings.TrimSpace(addr))
	h := startProcEnv(t, d, "hark-bare", env, "--server", proto)
	// systray's own report of the missing host goes through the std
	// logger: it is in hark's log as a warning, not a bare line beside it.
	h.awaitAll(t, `no tray host .* and no notification daemon: new items are written to this log`, `msg=connected`,
		`level=WARN msg="systray error: failed to register: `)
	publish(t, api, "classified", "Seen only in the log")
	h.await(t, `msg="New classified ad" body="Seen only in the log"`)
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := h.wait(t); err != nil {
		t.Errorf("hark after SIGTERM: %v, want exit status 0", err)
	}
}

func decodePNG(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func brightAt(t testing.TB, path string, x, y int) bool {
	r, g, b, _ := decodePNG(t, path).At(x, y).RGBA()
	return r>>8 > 180 && g>>8 > 180 && b>>8 > 180
}

// isBlueGlyph matches the glyph's blue, #1c71d8.
func isBlueGlyph(r, g, b uint32) bool { return b > 150 && r < 90 && g > 80 && g < 150 }

// screenshotMenu opens the tray icon's menu with a click, as a user
// would, and saves a picture of the screen with it and any popup, under
// the desktop's OutDir (HARK_TEST_OUT keeps it). isGlyph finds the icon
// (its colour says its state).
func screenshotMenu(t *testing.T, d *desktoptest.Desktop, name string, isGlyph func(r, g, b uint32) bool) string {
	t.Helper()
	shot, err := d.Screenshot(name + "-before-click")
	if err != nil {
		t.Fatal(err)
	}
	x, y := findGlyph(t, shot, isGlyph)
	xdo := exec.Command("xdotool", "mousemove", strconv.Itoa(x), strconv.Itoa(y), "click", "1")
	xdo.Env = d.Env()
	if out, err := xdo.CombinedOutput(); err != nil {
		t.Fatalf("xdotool: %v\n%s", err, out)
	}
	// The panel draws the menu in its own time and tells no one: retake
	// the picture until the menu (light pixels below the icon, where the
	// screen is black) is on it.
	for i := 0; ; i++ {
		shot, err = d.Screenshot(name)
		if err != nil {
			t.Fatal(err)
		}
		if brightAt(t, shot, x-100, 200) {
			break
		}
		if i == 50 {
			t.Fatalf("no menu below the icon after clicking it: %s", shot)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("screenshot: %s", shot)
	xdo = exec.Command("xdotool", "key", "Escape")
	xdo.Env = d.Env()
	xdo.Run()
	return shot
}

// isOfflineGrey matches the offline glyph's grey, #9a9996.
func isOfflineGrey(r, g, b uint32) bool {
	near := func(v, want uint32) bool { return v+12 >= want && v <= want+12 }
	return near(r, 0x9a) && near(g, 0x99) && near(b, 0x96)
}

// findGlyph finds the centre of the pixels that isGlyph matches in the
// panel's band at the top of the screen.
func findGlyph(t testing.TB, path string, isGlyph func(r, g, b uint32) bool) (x, y int) {
	t.Helper()
	x, y, ok := glyphAt(t, path, isGlyph)
	if !ok {
		t.Fatalf("no tray icon in %s", path)
	}
	return x, y
}

// glyphAt is findGlyph reporting, rather than failing, when there is
// no such glyph.
func glyphAt(t testing.TB, path string, isGlyph func(r, g, b uint32) bool) (x, y int, ok bool) {
	t.Helper()
	img := decodePNG(t, path)
	b := img.Bounds()
	var sx, sy, n int
	for py := b.Min.Y; py < b.Min.Y+40 && py < b.Max.Y; py++ {
		for px := b.Min.X; px < b.Max.X; px++ {
			r, g, bl, _ := img.At(px, py).RGBA()
			if isGlyph(r>>8, g>>8, bl>>8) {
				sx, sy, n = sx+px, sy+py, n+1
			}
		}
	}
	if n == 0 {
		return 0, 0, false
	}
	return sx / n, sy / n, true
}
