// Package desktoptest starts a real, headless Linux desktop session for
// end-to-end tests of the tray app: Xvfb, a private D-Bus session bus (and
// a second one playing the system bus), xfconfd, xfce4-panel with its
// systray plugin (the StatusNotifierItem host and watcher) and dunst (the
// notification daemon). With the LXQtPanel option, lxqt-panel with its
// statusnotifier plugin is the tray host instead (and there is no
// xfconfd). Each test gets its own session, isolated from the
// developer's desktop and from other tests, and torn down with t.Cleanup
// without leaving processes behind.
//
// Typical use:
//
//	desktoptest.Require(t)
//	d := desktoptest.Start(t)
//	cmd := exec.Command(appBinary)
//	cmd.Env = d.Env()
//	...
//	item, err := d.WaitItem(ctx, func(string) bool { return true })
package desktoptest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// StartTimeout bounds Start. Everything is normally up in about a second;
// the margin is for loaded CI machines running -race.
const StartTimeout = 30 * time.Second

// Screen is the Xvfb screen: big enough for the panel and a popup, small
// enough for cheap screenshots.
const Screen = "1024x768x24"

// Well-known names and paths the desktop provides.
const (
	WatcherName   = "org.kde.StatusNotifierWatcher"
	WatcherPath   = "/StatusNotifierWatcher"
	WatcherIface  = "org.kde.StatusNotifierWatcher"
	NotifyName    = "org.freedesktop.Notifications"
	NotifyPath    = "/org/freedesktop/Notifications"
	xfconfName    = "org.xfce.Xfconf"
	busDaemonName = "org.freedesktop.DBus"
)

// Host is the tray host, the panel a desktop runs.
type Host int

const (
	// XFCE is xfce4-panel with its systray plugin, the default.
	XFCE Host = iota
	// LXQt is lxqt-panel with only its statusnotifier plugin. Unlike
	// xfce4-panel's, its menus are Qt's: a menu whose app announces a
	// new layout (LayoutUpdated) is rebuilt, and an open one closes.
	LXQt
)

func (h Host) String() string {
	if h == LXQt {
		return "lxqt-panel"
	}
	return "xfce4-panel"
}

// An Option changes what Start starts, and what Require requires.
type Option func(*config)

type config struct{ host Host }

// LXQtPanel makes lxqt-panel the tray host instead of xfce4-panel.
var LXQtPanel Option = func(c *config) { c.host = LXQt }

func configure(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Desktop is a running headless desktop session. Its methods may be called
// from several goroutines, but RestartPanel only from one at a time.
type Desktop struct {
	t    testing.TB
	host Host

	root                                                   string // t.TempDir() holding everything but the logs
	home, configHome, dataHome, stateHome, cacheHome, runt string
	outDir                                                 string

	display    string // e.g. ":3"
	busAddr    string
	sysBusAddr string
	env        []string
	conn       *dbus.Conn // private connection to the session bus
	wm         net.Conn   // X connection holding WM_S0, see holdWMSelection

	mu     sync.Mutex
	panel  *proc // the current panel's process group
	procs  []*proc
	logs   []string
	events *os.File // OutDir/desktoptest.log: a timeline for diagnosis
	t0     time.Time
}

// Start starts a desktop session for t and stops it when t ends. It fails
// the test if a component does not come up within StartTimeout, printing
// the tail of every log; call Require first to skip instead when tools are
// missing.
//
// Components are started one after the other, each only once the previous
// one is ready, and readiness is an event, not a sleep: Xvfb writes its
// display number to -displayfd once it accepts connections; dbus-daemon
// prints its address once it listens; xfconfd, the panel and dunst are
// ready when they own their bus names (org.xfce.Xfconf,
// org.kde.StatusNotifierWatcher, org.freedesktop.Notifications), which we
// learn from NameOwnerChanged. (lxqt-panel, as LXQtPanel asks, needs no
// xfconfd.)
func Start(t testing.TB, opts ...Option) *Desktop {
	t.Helper()
	if m := Missing(opts...); len(m) > 0 {
		t.Fatalf("desktoptest: cannot start a desktop, missing %s (call desktoptest.Require first to skip instead)", strings.Join(m, ", "))
	}
	d := &Desktop{t: t, t0: time.Now(), host: configure(opts).host}
	if err := d.makeDirs(); err != nil {
		t.Fatalf("desktoptest: %v", err)
	}
	// Registered before anything starts, so a failed Start is torn down
	// too, and after the t.TempDir calls, so it runs before they are
	// removed.
	t.Cleanup(d.cleanup)
	becomeSubreaper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := d.start(ctx); err != nil {
		t.Fatalf("desktoptest: start: %v", err)
	}
	d.logf("desktop ready with %s: DISPLAY=%s DBUS_SESSION_BUS_ADDRESS=%s", d.host, d.display, d.busAddr)
	return d
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func (d *Desktop) makeDirs() error {
	d.root = d.t.TempDir()
	d.home = filepath.Join(d.root, "home")
	d.configHome = filepath.Join(d.home, ".config")
	d.dataHome = filepath.Join(d.home, ".local", "share")
	d.stateHome = filepath.Join(d.home, ".local", "state")
	d.cacheHome = filepath.Join(d.home, ".cache")
	d.runt = filepath.Join(d.root, "run")
	// A Unix socket path has at most 107 bytes; t.TempDir() under a long
	// TMPDIR with a long test name can exceed that for the bus socket.
	if len(d.runt)+len("/system_bus_socket") > 100 {
		short, err := os.MkdirTemp("", "dt")
		if err != nil {
			return fmt.Errorf("short runtime dir: %w", err)
		}
		d.t.Cleanup(func() { os.RemoveAll(short) })
		d.runt = short
	}
	for _, dir := range []string{d.home, d.configHome, d.dataHome, d.stateHome, d.cacheHome, d.runt} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	// XDG_RUNTIME_DIR must be 0700 and owned by us, or GLib warns and
	// some programs refuse to use it.
	if err := os.Chmod(d.runt, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", d.runt, err)
	}
	if out := os.Getenv("HARK_TEST_OUT"); out != "" {
		abs, err := filepath.Abs(out)
		if err != nil {
			return fmt.Errorf("HARK_TEST_OUT: %w", err)
		}
		// Cleared first so that a rerun's screenshots and logs are not
		// mixed with the previous run's.
		d.outDir = claimOutDir(filepath.Join(abs, unsafeName.ReplaceAllString(d.t.Name(), "_")))
		if err := os.RemoveAll(d.outDir); err != nil {
			return fmt.Errorf("clear %s: %w", d.outDir, err)
		}
		if err := os.MkdirAll(d.outDir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d.outDir, err)
		}
	} else {
		d.outDir = d.t.TempDir()
	}
	ev, err := os.Create(filepath.Join(d.outDir, "desktoptest.log"))
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	d.events = ev
	d.logs = append(d.logs, ev.Name())
	return nil
}

var (
	outDirsMu sync.Mutex
	outDirs   = map[string]bool{}
)

// claimOutDir returns dir, or dir-2, dir-3... if a desktop of this test
// binary already uses it (a test starting two desktops), so that clearing
// it cannot delete the logs of a running one.
func claimOutDir(dir string) string {
	outDirsMu.Lock()
	defer outDirsMu.Unlock()
	cand := dir
	for i := 2; outDirs[cand]; i++ {
		cand = fmt.Sprintf("%s-%d", dir, i)
	}
	outDirs[cand] = true
	return cand
}

// logf appends to OutDir/desktoptest.log with the time since Start, so a
// failing run shows which step was slow.
func (d *Desktop) logf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.events != nil {
		fmt.Fprintf(d.events, "%8.3fs %s\n", time.Since(d.t0).Seconds(), fmt.Sprintf(format, args...))
	}
}

// baseEnv is the environment of everything we start and of Env:
// os.Environ() with the variables below and those in set replaced. It
// also removes variables through which a child could reach the
// developer's real session: WAYLAND_DISPLAY (GTK would prefer Wayland to
// our Xvfb), XAUTHORITY, SESSION_MANAGER, AT_SPI_BUS_ADDRESS and
// DBUS_STARTER_*; and DISPLAY and the bus addresses unless set gives
// ours, so that the buses and Xvfb cannot touch the real ones.
func (d *Desktop) baseEnv(set map[string]string) []string {
	all := map[string]string{
		"HOME":            d.home,
		"XDG_CONFIG_HOME": d.configHome,
		"XDG_DATA_HOME":   d.dataHome,
		"XDG_STATE_HOME":  d.stateHome,
		"XDG_CACHE_HOME":  d.cacheHome,
		"XDG_RUNTIME_DIR": d.runt,
		// No accessibility bus: at-spi would try to start one.
		"NO_AT_BRIDGE": "1",
		// No dconf: it would be activated on the session bus, or write
		// to the real ~/.config/dconf.
		"GSETTINGS_BACKEND": "memory",
		// GTK must use our X server even on a Wayland desktop.
		"GDK_BACKEND":         "x11",
		"XDG_SESSION_TYPE":    "x11",
		"XDG_CURRENT_DESKTOP": "XFCE",
	}
	if d.host == LXQt {
		all["XDG_CURRENT_DESKTOP"] = "LXQt"
		// Qt must use our X server, not a Wayland display, and start
		// no accessibility bridge.
		all["QT_QPA_PLATFORM"] = "xcb"
		all["QT_ACCESSIBILITY"] = "0"
	}
	for k, v := range set {
		all[k] = v
	}
	drop := map[string]bool{
		"DISPLAY": true, "DBUS_SESSION_BUS_ADDRESS": true, "DBUS_SYSTEM_BUS_ADDRESS": true,
		"WAYLAND_DISPLAY": true, "XAUTHORITY": true, "SESSION_MANAGER": true,
		"AT_SPI_BUS_ADDRESS": true, "DBUS_STARTER_ADDRESS": true, "DBUS_STARTER_BUS_TYPE": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := all[k]; ok || drop[k] {
			continue
		}
		env = append(env, kv)
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+all[k])
	}
	return env
}

func (d *Desktop) start(ctx context.Context) error {
	pre := d.baseEnv(nil)
	var err error
	if d.busAddr, err = d.startBus(ctx, "session-bus", "session", filepath.Join(d.runt, "bus"), pre); err != nil {
		return err
	}
	if d.sysBusAddr, err = d.startBus(ctx, "system-bus", "system", filepath.Join(d.runt, "system_bus_socket"), pre); err != nil {
		return err
	}
	if err := d.startXvfb(ctx, pre); err != nil {
		return err
	}
	if d.wm, err = holdWMSelection(d.display, 5*time.Second); err != nil {
		return err
	}
	d.env = d.baseEnv(map[string]string{
		"DISPLAY":                  d.display,
		"DBUS_SESSION_BUS_ADDRESS": d.busAddr,
		"DBUS_SYSTEM_BUS_ADDRESS":  d.sysBusAddr,
	})
	// Not bound to ctx, which ends with Start: this connection serves
	// Call, RegisteredItems and NameOwner until cleanup. The bus has just
	// printed its address, so the handshake cannot hang.
	if d.conn, err = connect(context.Background(), d.busAddr); err != nil {
		return err
	}

	switch d.host {
	case LXQt:
		if err := writeFile(d.lxqtConfig(), []byte(lxqtPanelConf)); err != nil {
			return err
		}
	default:
		xfconfd, err := findXfconfd()
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d.configHome, "xfce4", "xfconf", "xfce-perchannel-xml", "xfce4-panel.xml"), []byte(panelXML)); err != nil {
			return err
		}
		if _, err := d.startDaemon(ctx, "xfconfd", xfconfName, anyOwner, xfconfd); err != nil {
			return err
		}
	}
	if err := d.startPanel(ctx, anyOwner); err != nil {
		return err
	}
	rc := filepath.Join(d.configHome, "dunst", "dunstrc")
	if err := writeFile(rc, []byte(dunstrc)); err != nil {
		return err
	}
	_, err = d.startDaemon(ctx, "dunst", NotifyName, anyOwner, "dunst", "-config", rc)
	return err
}

// startBus starts a private dbus-daemon and returns its address, which it
// prints on fd 3 once it is listening.
func (d *Desktop) startBus(ctx context.Context, name, busType, socket string, env []string) (string, error) {
	conf := filepath.Join(d.root, name+".conf")
	if err := writeFile(conf, busConfig(busType, socket)); err != nil {
		return "", err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	p, err := d.spawn(name, env, []*os.File{w}, "dbus-daemon", "--config-file="+conf, "--print-address=3", "--nofork", "--nopidfile", "--nosyslog")
	w.Close()
	if err != nil {
		return "", err
	}
	addr, err := readLine(ctx, r, p)
	if err != nil {
		return "", err
	}
	if addr == "" {
		return "", fmt.Errorf("%s printed an empty address; see %s", name, p.log)
	}
	d.logf("%s listening at %s", name, addr)
	return addr, nil
}

// startXvfb starts Xvfb on a display it picks itself (-displayfd), which
// avoids races with other X servers and parallel tests. -noreset keeps
// the server from resetting when its last client disconnects, which
// would otherwise happen between panel restarts.
func (d *Desktop) startXvfb(ctx context.Context, env []string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	p, err := d.spawn("Xvfb", env, []*os.File{w}, "Xvfb", "-displayfd", "3", "-screen", "0", Screen, "-nolisten", "tcp", "-noreset")
	w.Close()
	if err != nil {
		return err
	}
	n, err := readLine(ctx, r, p)
	if err != nil {
		return err
	}
	if n == "" {
		return fmt.Errorf("no display number from Xvfb; see %s", p.log)
	}
	d.display = ":" + n
	d.logf("Xvfb ready on %s", d.display)
	return nil
}

// startDaemon starts a program that is ready once it owns a bus name with
// an owner that ok accepts, and waits for that.
func (d *Desktop) startDaemon(ctx context.Context, name, busName string, ok func(owner string) bool, argv ...string) (*proc, error) {
	w, err := watchName(ctx, d.conn, busName)
	if err != nil {
		return nil, err
	}
	defer w.close()
	p, err := d.spawn(name, d.env, nil, argv...)
	if err != nil {
		return nil, err
	}
	owner, err := w.wait(ctx, p.done, ok)
	if err != nil {
		if ctx.Err() == nil {
			select {
			case <-p.done:
				return nil, p.exitErr()
			default:
			}
		}
		return nil, fmt.Errorf("%s did not take %s: %w (see %s)", name, busName, err, p.log)
	}
	d.logf("%s owns %s as %s", name, busName, owner)
	return p, nil
}

func anyOwner(string) bool { return true }

// startPanel starts the panel, ready when its tray plugin owns
// org.kde.StatusNotifierWatcher with an owner that ok accepts.
// xfce4-panel gets --disable-wm-check: there is no real window manager,
// and the panel need not look for one (see holdWMSelection). lxqt-panel
// reads the configuration written for it; its statusnotifier plugin
// owns the watcher's name as xfce4-panel's systray plugin does.
func (d *Desktop) startPanel(ctx context.Context, ok func(string) bool) error {
	argv := []string{"xfce4-panel", "--disable-wm-check"}
	if d.host == LXQt {
		argv = []string{"lxqt-panel", "--config", d.lxqtConfig()}
	}
	p, err := d.startDaemon(ctx, argv[0], WatcherName, ok, argv...)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.panel = p
	d.mu.Unlock()
	return nil
}

// restartLXQt stops lxqt-panel, which has no --restart, and starts a
// new one, returning once it owns org.kde.StatusNotifierWatcher.
func (d *Desktop) restartLXQt(ctx context.Context) error {
	d.mu.Lock()
	p := d.panel
	d.mu.Unlock()
	start := time.Now()
	if err := p.stop(); err != nil {
		return err
	}
	if err := d.startPanel(ctx, anyOwner); err != nil {
		return err
	}
	d.logf("panel restarted: lxqt-panel stopped and started again in %v", time.Since(start).Round(time.Millisecond))
	return nil
}

// lxqtConfig is where lxqt-panel's configuration is written.
func (d *Desktop) lxqtConfig() string { return filepath.Join(d.configHome, "lxqt", "panel.conf") }

// Host is the tray host the desktop runs.
func (d *Desktop) Host() Host { return d.host }

// cleanup stops everything, newest first (clients before the buses they
// use, Xvfb last), and on failure prints the tail of every log.
func (d *Desktop) cleanup() {
	if d.conn != nil {
		d.conn.Close()
	}
	if d.wm != nil {
		d.wm.Close()
	}
	d.mu.Lock()
	procs := append([]*proc(nil), d.procs...)
	d.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		start := time.Now()
		if err := procs[i].stop(); err != nil {
			d.t.Errorf("desktoptest: stop: %v", err)
		}
		d.logf("stopped %s in %v", procs[i].name, time.Since(start).Round(time.Millisecond))
	}
	d.mu.Lock()
	if d.events != nil {
		d.events.Close()
		d.events = nil
	}
	logs := append([]string(nil), d.logs...)
	d.mu.Unlock()
	if d.t.Failed() {
		for _, l := range logs {
			d.t.Logf("desktoptest: tail of %s:\n%s", l, tail(l, 40))
		}
	}
}

// Env is the environment for programs under test: os.Environ() with
// DISPLAY, DBUS_SESSION_BUS_ADDRESS, DBUS_SYSTEM_BUS_ADDRESS, HOME and the
// XDG_* directories pointing into this desktop, NO_AT_BRIDGE=1 and
// GSETTINGS_BACKEND=memory (see baseEnv for the rest). Always pass it:
// a child without DBUS_SESSION_BUS_ADDRESS (godbus, xfconf-query) would
// autolaunch a stray bus of its own. It returns a copy to append to.
func (d *Desktop) Env() []string { return append([]string(nil), d.env...) }

// BusAddress is the address of the private session bus.
func (d *Desktop) BusAddress() string { return d.busAddr }

// SystemBusAddress is the address of a second private dbus-daemon that
// plays the system bus, so that tests can emit logind signals
// (PrepareForSleep, ...) without touching the real system bus. Env points
// DBUS_SYSTEM_BUS_ADDRESS at it.
func (d *Desktop) SystemBusAddress() string { return d.sysBusAddr }

// Display is the X display of the Xvfb, e.g. ":3", for tools such as
// xdotool (Env already sets DISPLAY).
func (d *Desktop) Display() string { return d.display }

// Home is the private HOME.
func (d *Desktop) Home() string { return d.home }

// ConfigHome is XDG_CONFIG_HOME, where a test can put the app's config
// before starting it.
func (d *Desktop) ConfigHome() string { return d.configHome }

// OutDir is where logs (one per component, plus desktoptest.log with the
// timeline) and screenshots go. With HARK_TEST_OUT set, it is a subfolder
// of it named after the test, kept after the test for CI artifacts;
// otherwise a t.TempDir().
func (d *Desktop) OutDir() string { return d.outDir }
