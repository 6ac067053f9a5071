package tray

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harkapp/hark/assets"
	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// These tests run the app goroutine (app.run) against a real hark server
// on loopback, with a real netclient session. What they replace is the
// desktop: systray is process-global state that can run once per process,
// so the ui is a recorder of the views the app renders, and notify records
// the popups instead of calling a notification daemon. The real tray is
// tested end to end elsewhere.

// logRecord is one line the app logged.
type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// logRecorder is a slog.Handler that records into a stream.
type logRecorder struct {
	s     *stream[logRecord]
	attrs []slog.Attr
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.s.add(logRecord{Level: r.Level, Msg: r.Message, Attrs: m})
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{s: h.s, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// recordingUI records every view the app renders.
type recordingUI struct{ views *stream[view] }

func (u recordingUI) render(v view) { u.views.add(v) }

// iconName names an icon for failure messages.
func iconName(icon []byte) string {
	switch {
	case icon == nil:
		return "none"
	case bytes.Equal(icon, assets.TrayOffline):
		return "offline"
	case bytes.Equal(icon, assets.TrayConnected):
		return "connected"
	case bytes.Equal(icon, assets.TrayUnread):
		return "unread"
	case bytes.Equal(icon, assets.TrayDoNotDisturb):
		return "dnd"
	}
	return fmt.Sprintf("unknown icon (%d bytes)", len(icon))
}

func formatView(v view) string {
	return fmt.Sprintf("icon=%s status=%q tooltip=%q latest=%q recent=%q random=%v classified=%v dnd=%v autostart=%v",
		iconName(v.Icon), v.Status, v.Tooltip, v.Latest, v.Recent, v.Random, v.Classified, v.DND, v.Autostart)
}

// appEnv keeps the app away from the real home, runtime directory and
// D-Bus buses, and returns the config home.
func appEnv(t *testing.T) string {
	t.Helper()
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	// No system bus here: the sleep watcher fails at once, as it does on
	// a machine without logind.
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
	return xdg
}

// startServer runs hark's real server on a loopback port the kernel
// picks, with a fresh store, until the test ends. set, if given, adjusts
// its configuration (TLS, auth) first.
func startServer(t *testing.T, set ...func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()}
	for _, f := range set {
		f(&cfg)
	}
	srv, err := server.Start(cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	return srv
}

// fixture is an app wired to a real server, a popup recorder and a view
// recorder.
type fixture struct {
	t      *testing.T
	srv    *server.Server
	addr   string
	opts   Options
	a      *app
	popups *stream[Popup]
	views  *stream[view]
	logs   *stream[logRecord]
	// handled has each session event once the app took it in and
	// rendered it.
	handled *stream[netclient.Event]

	// stop is closed when the test ends, before the app is stopped: a
	// notify that blocks waits for it too.
	stop chan struct{}

	cancel context.CancelFunc
	ended  chan struct{} // closed when run has returned
	runErr error         // run's result, once ended is closed

	initial string // the random number the server drew when it started
	numbers int
}

// newFixture builds the app with newApp. configure, if set, adjusts the
// options first (after the environment is set up, so NewAutostart sees
// the test's XDG_CONFIG_HOME). The app is not running yet: tests may
// replace f.a.notify before start.
func newFixture(t *testing.T, configure func(f *fixture, o *Options)) *fixture {
	t.Helper()
	return newFixtureServer(t, nil, configure)
}

// newFixtureServer is newFixture with the server's configuration
// adjusted by srvConf (when not nil).
func newFixtureServer(t *testing.T, srvConf func(*server.Config), configure func(f *fixture, o *Options)) *fixture {
	t.Helper()
	xdg := appEnv(t)
	var set []func(*server.Config)
	if srvConf != nil {
		set = append(set, srvConf)
	}
	srv := startServer(t, set...)
	f := &fixture{
		t:       t,
		srv:     srv,
		addr:    srv.Addr().String(),
		popups:  newStream[Popup](),
		views:   newStream[view](),
		logs:    newStream[logRecord](),
		handled: newStream[netclient.Event](),
		stop:    make(chan struct{}),
		ended:   make(chan struct{}),
	}
	f.views.format = formatView
	f.opts = Options{
		Server:     f.addr,
		ConfigPath: filepath.Join(xdg, "hark", "config.toml"),
		StateDir:   t.TempDir(),
		Logger:     slog.New(&logRecorder{s: f.logs}),
	}
	if configure != nil {
		configure(f, &f.opts)
	}
	f.a = f.newApp()
	return f
}

// newApp makes an app with the fixture's options, recorders and notify.
func (f *fixture) newApp() *app {
	a := newApp(f.opts, f.opts.Logger)
	popups := f.popups
	a.notify = func(_ context.Context, p Popup) error {
		popups.add(p)
		return nil
	}
	a.ui = recordingUI{f.views}
	a.handled = f.handled.add
	return a
}

// restart ends the running app and starts a new one with the same
// options and state directory, as a reboot would, with new view and
// popup recorders.
func (f *fixture) restart() {
	f.t.Helper()
	f.cancel()
	if err := f.awaitEnd("its context was cancelled"); err != nil {
		f.t.Fatalf("run: %v", err)
	}
	f.startAgain()
}

// startAgain starts a new app after the last one ended (awaitEnd).
func (f *fixture) startAgain() {
	f.views, f.popups = newStream[view](), newStream[Popup]()
	f.views.format = formatView
	f.a = f.newApp()
	f.ended = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	a, ended := f.a, f.ended
	go func() {
		f.runErr = a.run(ctx)
		close(ended)
	}()
}

// start runs the app until the test ends.
func (f *fixture) start() {
	t := f.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	a, ended := f.a, f.ended
	go func() {
		f.runErr = a.run(ctx)
		close(ended)
	}()
	t.Cleanup(func() {
		close(f.stop)
		f.cancel() // the app's of the last restart
		select {
		case <-f.ended:
			if f.runErr != nil {
				t.Errorf("run: %v", f.runErr)
			}
		case <-time.After(testTimeout):
			t.Errorf("run did not return after its context ended")
		}
	})
}

// awaitEnd waits for run to return and returns its result.
func (f *fixture) awaitEnd(what string) error {
	f.t.Helper()
	select {
	case <-f.ended:
		return f.runErr
	case <-time.After(testTimeout):
		f.t.Fatalf("run did not return after %s", what)
		return nil
	}
}

// connected waits for the random number the server drew at start in
// the menu (the session fetches it on connecting; it is not news, so it
// makes no popup), then for the view that says connected. Ads published
// from then on are announced: a version-1 server counts only those.
func (f *fixture) connected() {
	f.t.Helper()
	f.firstNumber()
	f.awaitConnectedView()
}

// firstNumber waits for the server's first random number in the menu.
func (f *fixture) firstNumber() {
	f.t.Helper()
	v := f.views.await(f.t, "the server's first random number in the menu", func(v view) bool {
		return v.Latest != "Latest number: none yet"
	})
	f.initial = strings.TrimPrefix(v.Latest, "Latest number: ")
	if _, err := wire.ParseRandom(f.initial); err != nil {
		f.t.Fatalf("first number in %s: %v", formatView(v), err)
	}
}

func (f *fixture) awaitConnectedView() view {
	f.t.Helper()
	return f.views.await(f.t, "the connected view", func(v view) bool { return v.Status == "Connected to "+f.addr })
}

func (f *fixture) publish(kind wire.Kind, value string) {
	f.t.Helper()
	if _, _, err := f.srv.Publish(context.Background(), kind, value); err != nil {
		f.t.Fatalf("publish %s %q: %v", kind, value, err)
	}
}

// number publishes a new random number, different from every one before
// (a version-1 client cannot tell a repeated number from an old one).
func (f *fixture) number() string {
	f.t.Helper()
	for {
		f.numbers++
		v := strconv.Itoa(1000 + f.numbers)
		if v != f.initial {
			f.publish(wire.KindRandom, v)
			return v
		}
	}
}

func (f *fixture) act(kind actionKind) { f.actIndex(kind, 0) }

func (f *fixture) actIndex(kind actionKind, index int) {
	f.t.Helper()
	select {
	case f.a.actions <- action{kind: kind, index: index}:
	case <-time.After(testTimeout):
		f.t.Fatalf("the app takes no action")
	}
}

func (f *fixture) awaitView(what string, match func(view) bool) view {
	f.t.Helper()
	return f.views.await(f.t, what, match)
}

// nextPopup requires the very next popup to be want.
func (f *fixture) nextPopup(want Popup) {
	f.t.Helper()
	got := f.popups.next(f.t, fmt.Sprintf("popup %+v", want))
	if got != want {
		f.t.Fatalf("next popup %+v, want %+v; all popups:\n%s", got, want, f.popups.dump())
	}
}

// savedSettings reads the config file the app writes.
func (f *fixture) savedSettings() Settings {
	f.t.Helper()
	s, err := LoadSettings(f.opts.ConfigPath)
	if err != nil {
		f.t.Fatalf("the saved config: %v", err)
	}
	if _, err := os.Stat(f.opts.ConfigPath); err != nil {
		f.t.Fatalf("no config file saved: %v", err)
	}
	return s
}

func recentIs(values ...string) func(view) bool {
	return func(v view) bool { return slices.Equal(v.Recent, values) }
}

func latestIs(n string) func(view) bool {
	return func(v view) bool { return v.Latest == "Latest number: "+n }
}

func TestAppShowsItems(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	// The number the server held before hark met it is in the menu, and
	// is no news: no popup, no unread dot.
	f.firstNumber()
	if v := f.awaitConnectedView(); !bytes.Equal(v.Icon, assets.TrayConnected) {
		t.Fatalf("first contact marked unread: %s", formatView(v))
	}
	if p := f.popups.all(); len(p) != 0 {
		t.Fatalf("popups on first contact: %+v", p)
	}

	f.publish(wire.KindClassified, "Bike for sale, 50 EUR")
	f.nextPopup(Popup{Title: "New classified ad", Body: "Bike for sale, 50 EUR"})
	f.awaitView("the ad in Recent ads", recentIs("Bike for sale, 50 EUR"))

	n := f.number()
	f.nextPopup(Popup{Title: "New random number", Body: n})
	f.awaitView("the number as the latest", latestIs(n))
}

func TestAppClassifiedToggle(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	f.connected()

	f.act(actClassified)
	f.awaitView("ads unchecked", func(v view) bool { return !v.Classified && v.Random })
	if s := f.savedSettings(); !s.equal((Settings{Random: true, Classified: false})) {
		t.Fatalf("saved %+v after switching ads off", s)
	}
	raw, err := os.ReadFile(f.opts.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "\nclassified = false\n") {
		t.Fatalf("the config file does not say classified = false:\n%s", raw)
	}

	// The ad still reaches the menu, but makes no popup: the next popup
	// is the number published after it.
	f.publish(wire.KindClassified, "hidden ad")
	f.awaitView("the hidden ad in Recent ads", recentIs("hidden ad"))
	n := f.number()
	f.nextPopup(Popup{Title: "New random number", Body: n})

	// And back on.
	f.act(actClassified)
	f.awaitView("ads checked", func(v view) bool { return v.Classified })
	if s := f.savedSettings(); !s.equal(DefaultSettings()) {
		t.Fatalf("saved %+v after switching ads back on", s)
	}
	f.publish(wire.KindClassified, "shown ad")
	f.nextPopup(Popup{Title: "New classified ad", Body: "shown ad"})
}

func TestAppRandomToggle(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	f.connected()

	f.act(actRandom)
	f.awaitView("numbers unchecked", func(v view) bool { return !v.Random && v.Classified })
	if s := f.savedSettings(); !s.equal((Settings{Random: false, Classified: true})) {
		t.Fatalf("saved %+v after switching numbers off", s)
	}
	n := f.number()
	f.awaitView("the number as the latest", latestIs(n))
	f.publish(wire.KindClassified, "an ad")
	f.nextPopup(Popup{Title: "New classified ad", Body: "an ad"})
}

func TestAppDoNotDisturb(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	f.connected()

	f.act(actDND)
	f.awaitView("do not disturb checked", func(v view) bool { return v.DND })
	if s := f.savedSettings(); !s.DoNotDisturb {
		t.Fatalf("saved %+v after entering do not disturb", s)
	}
	f.publish(wire.KindClassified, "quiet ad")
	f.awaitView("the quiet ad", recentIs("quiet ad"))
	n := f.number()
	f.awaitView("the quiet number", latestIs(n))

	f.act(actDND)
	f.nextPopup(Popup{
		Title: "2 items arrived while do not disturb was on",
		Body:  "1 classified ad and 1 random number. The latest are in hark's menu.",
	})
	f.awaitView("do not disturb unchecked", func(v view) bool { return !v.DND })
	if s := f.savedSettings(); !s.equal(DefaultSettings()) {
		t.Fatalf("saved %+v after leaving do not disturb", s)
	}
	f.publish(wire.KindClassified, "loud ad")
	f.nextPopup(Popup{Title: "New classified ad", Body: "loud ad"})
}

func TestAppAutostartToggle(t *testing.T) {
	var as *Autostart
	f := newFixture(t, func(f *fixture, o *Options) {
		var err error
		as, err = NewAutostart([]string{"/usr/bin/hark", "--server", "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		o.Autostart = as
	})
	if want := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "autostart", "hark.desktop"); as.Path != want {
		t.Fatalf("autostart entry at %s, want %s", as.Path, want)
	}
	f.start()
	if v := f.views.next(t, "the first view"); v.Autostart {
		t.Fatalf("start on login checked with no entry: %s", formatView(v))
	}

	f.act(actAutostart)
	f.awaitView("start on login checked", func(v view) bool { return v.Autostart })
	raw, err := os.ReadFile(as.Path)
	if err != nil {
		t.Fatalf("no entry after checking start on login: %v", err)
	}
	if want, _ := as.Content(); string(raw) != want {
		t.Fatalf("the entry holds\n%s\nwant\n%s", raw, want)
	}

	f.act(actAutostart)
	f.awaitView("start on login unchecked", func(v view) bool { return !v.Autostart })
	if _, err := os.Stat(as.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the entry is still there after unchecking: %v", err)
	}
	// Start on login is not a setting in the config file.
	if _, err := os.Stat(f.opts.ConfigPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("toggling start on login wrote the config file: %v", err)
	}
}

func TestAppAutostartShowsExistingEntry(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		as, err := NewAutostart([]string{"/usr/bin/hark"})
		if err != nil {
			t.Fatal(err)
		}
		if err := as.Enable(); err != nil {
			t.Fatal(err)
		}
		o.Autostart = as
	})
	f.start()
	if v := f.views.next(t, "the first view"); !v.Autostart {
		t.Fatalf("an entry exists, yet start on login is unchecked: %s", formatView(v))
	}
}

func TestAppAutostartFailureShowsWhatIsOnDisk(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		as, err := NewAutostart([]string{"/usr/bin/hark"})
		if err != nil {
			t.Fatal(err)
		}
		// A file where the autostart directory goes: Enable fails.
		if err := os.WriteFile(filepath.Dir(as.Path), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		o.Autostart = as
	})
	f.start()
	f.views.next(t, "the first view")
	f.act(actAutostart)
	f.logs.await(t, "the error logged", func(r logRecord) bool {
		return r.Level == slog.LevelError && strings.Contains(r.Msg, "enabling start on login")
	})
	// A later click, to have a view rendered after the failed one.
	f.act(actDND)
	f.awaitView("do not disturb", func(v view) bool { return v.DND })
	for _, v := range f.views.all() {
		if v.Autostart {
			t.Fatalf("start on login checked though enabling failed: %s", formatView(v))
		}
	}
}

func TestAppRecentAds(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	f.connected()

	f.publish(wire.KindClassified, "first ad")
	f.nextPopup(Popup{Title: "New classified ad", Body: "first ad"})
	f.publish(wire.KindClassified, "second ad")
	f.nextPopup(Popup{Title: "New classified ad", Body: "second ad"})
	f.awaitView("both in Recent ads, newest first", recentIs("second ad", "first ad"))

	f.actIndex(actRecent, 0)
	f.nextPopup(Popup{Title: "Classified ad", Body: "second ad"})
	// Indexes with no ad show nothing: the next popup is index 1's.
	f.actIndex(actRecent, 2) // one past the last ad
	f.actIndex(actRecent, 5)
	f.actIndex(actRecent, -1)
	f.actIndex(actRecent, recentMax)
	f.actIndex(actRecent, 1)
	f.nextPopup(Popup{Title: "Classified ad", Body: "first ad"})
}

func TestAppFlood(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	f.connected()

	const n = 12
	var ads []string
	for i := range n {
		ads = append(ads, fmt.Sprintf("ad %02d", i+1))
		f.publish(wire.KindClassified, ads[i])
	}
	// Recent ads keeps the ten newest, newest first.
	want := slices.Clone(ads[n-recentMax:])
	slices.Reverse(want)
	f.awaitView("the ten newest ads", recentIs(want...))

	// Every ad is accounted for exactly once and in order, singly or in a
	// summary that lists the first three it holds.
	seen, popups := 0, 0
	for seen < n {
		p := f.popups.next(t, fmt.Sprintf("popups for ads %d..%d", seen+1, n))
		popups++
		switch {
		case p.Title == "New classified ad" && p.Group == "":
			if p.Body != ads[seen] {
				t.Fatalf("popup %+v, want ad %q", p, ads[seen])
			}
			seen++
		case p.Group == "burst":
			var k int
			if _, err := fmt.Sscanf(p.Title, "%d new classified ads", &k); err != nil || k < 2 || seen+k > n {
				t.Fatalf("summary %+v after %d ads", p, seen)
			}
			lines := strings.Split(p.Body, "\n")
			for i := range min(k, summaryShow) {
				if lines[i] != "• "+ads[seen+i] {
					t.Fatalf("summary %+v: line %d, want ad %q", p, i, ads[seen+i])
				}
			}
			if k > summaryShow && lines[summaryShow] != fmt.Sprintf("…and %d more", k-summaryShow) {
				t.Fatalf("summary %+v: no count of the rest", p)
			}
			seen += k
		default:
			t.Fatalf("unexpected popup %+v", p)
		}
	}
	// Twelve ads published back to back over loopback arrive within the
	// two-second burst window (with the server's first number, only two
	// more show singly), so they cannot all have shown singly: the flush
	// timer showed a summary.
	if popups >= n {
		t.Fatalf("%d popups for %d ads: the burst was not coalesced:\n%s", popups, n, f.popups.dump())
	}
}

func TestAppQuit(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	f.connected()
	f.act(actQuit)
	if err := f.awaitEnd("Quit"); err != nil {
		t.Fatalf("run after Quit = %v, want nil", err)
	}
	f.logs.await(t, "the quit logged", func(r logRecord) bool { return r.Msg == "quit from the menu" })
}

// Quit while a fetch cycle waits on a server that stopped answering: the
// app ends at once, not after the session's reply timeout (30 s).
func TestAppQuitsAtOnceAgainstAFrozenServer(t *testing.T) {
	addr, frozen := linetest.FrozenServer(t)
	f := newFixture(t, func(_ *fixture, o *Options) { o.Server = addr })
	f.start()
	select {
	case <-frozen:
	case <-time.After(testTimeout):
		t.Fatal("no fetch cycle started")
	}
	f.act(actQuit)
	if err := f.awaitEnd("Quit, with a fetch cycle pending"); err != nil {
		t.Fatalf("run after Quit = %v, want nil", err)
	}
}

// What a server holds when hark first meets it, an ad as much as a
// number, goes into the menu without a popup: it is not news.
func TestAppFirstContactFillsTheMenuWithoutPopups(t *testing.T) {
	f := newFixture(t, nil)
	f.publish(wire.KindClassified, "An ad from before")
	f.start()
	f.awaitView("the ad in the menu, connected", func(v view) bool {
		return slices.Equal(v.Recent, []string{"An ad from before"}) && v.Latest != "Latest number: none yet" &&
			v.Status == "Connected to "+f.addr && bytes.Equal(v.Icon, assets.TrayConnected)
	})
	f.publish(wire.KindClassified, "An ad from after")
	f.nextPopup(Popup{Title: "New classified ad", Body: "An ad from after"}) // the first popup
}

func TestAppContextCancel(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	f.connected()
	f.cancel()
	if err := f.awaitEnd("its context was cancelled"); err != nil {
		t.Fatalf("run after cancel = %v, want nil", err)
	}
}

func TestAppContextCancelBeforeConnect(t *testing.T) {
	// Nothing listens at this address: the session retries until the end.
	f := newFixture(t, func(f *fixture, o *Options) { o.Server = "127.0.0.1:1" })
	f.start()
	f.views.await(t, "offline", func(v view) bool { return strings.HasPrefix(v.Status, "Offline") })
	f.cancel()
	if err := f.awaitEnd("its context was cancelled"); err != nil {
		t.Fatalf("run after cancel = %v, want nil", err)
	}
}

func TestAppIconsAndStatus(t *testing.T) {
	icons := [][]byte{assets.TrayOffline, assets.TrayConnected, assets.TrayUnread, assets.TrayDoNotDisturb}
	for i := range icons {
		if len(icons[i]) == 0 {
			t.Fatalf("tray icon %d is empty", i)
		}
		for j := range i {
			if bytes.Equal(icons[i], icons[j]) {
				t.Fatalf("tray icons %d and %d are the same: the test could not tell them apart", i, j)
			}
		}
	}

	f := newFixture(t, nil)
	f.start()
	first := f.views.next(t, "the first view")
	if !bytes.Equal(first.Icon, assets.TrayOffline) || first.Status != "Connecting to "+f.addr+"…" ||
		first.Tooltip != "hark: "+first.Status {
		t.Fatalf("first view %s; want the offline icon and Connecting to %s…", formatView(first), f.addr)
	}
	if first.Latest != "Latest number: none yet" || len(first.Recent) != 0 || !first.Random || !first.Classified || first.DND || first.Autostart {
		t.Fatalf("first view %s", formatView(first))
	}

	// The server's first number arrives on connecting: not news, not unread.
	f.firstNumber()
	f.awaitView("connected", func(v view) bool {
		return bytes.Equal(v.Icon, assets.TrayConnected) && v.Status == "Connected to "+f.addr &&
			v.Tooltip == "hark: Connected to "+f.addr
	})
	n := f.number()
	f.awaitView("connected with an unread item", func(v view) bool {
		return bytes.Equal(v.Icon, assets.TrayUnread) && v.Latest == "Latest number: "+n &&
			v.Tooltip == "hark: Connected to "+f.addr+" (new items)"
	})

	f.act(actOpened)
	f.awaitView("read", func(v view) bool {
		return bytes.Equal(v.Icon, assets.TrayConnected) && v.Tooltip == "hark: Connected to "+f.addr
	})

	f.publish(wire.KindClassified, "an ad")
	f.awaitView("unread again", func(v view) bool {
		return bytes.Equal(v.Icon, assets.TrayUnread) && slices.Equal(v.Recent, []string{"an ad"})
	})

	f.act(actDND)
	f.awaitView("do not disturb", func(v view) bool {
		return bytes.Equal(v.Icon, assets.TrayDoNotDisturb) && v.DND &&
			v.Tooltip == "hark: Connected to "+f.addr+" (do not disturb)"
	})

	// The server goes: offline beats do not disturb.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	v := f.awaitView("offline", func(v view) bool { return strings.HasPrefix(v.Status, "Offline") })
	if !bytes.Equal(v.Icon, assets.TrayOffline) || !strings.HasPrefix(v.Tooltip, "hark: "+v.Status+" (next try at ") {
		t.Fatalf("offline view %s", formatView(v))
	}
}

func TestAppStatusLine(t *testing.T) {
	appEnv(t)
	a := newApp(Options{Server: "example.org:6789", ConfigPath: filepath.Join(t.TempDir(), "config.toml")}, slog.New(slog.DiscardHandler))
	if got, want := a.servers[0].status(), "Connecting to example.org:6789…"; got != want {
		t.Fatalf("before any state: %q, want %q", got, want)
	}
	if v := a.view(); v.Tooltip != "hark: Connecting to example.org:6789…" {
		t.Fatalf("tooltip before any state: %q", v.Tooltip)
	}
	// Offline: the status says so, without a countdown (it would change
	// the menu every second); the tooltip says when the next try is.
	a.servers[0].state = netclient.State{Addr: "example.org:6789", RetryIn: 5 * time.Second, Err: errors.New("connection refused")}
	a.servers[0].stateAt = time.Date(2025, 3, 1, 12, 0, 0, 0, time.Local)
	if got, want := a.servers[0].status(), "Offline, reconnecting to example.org:6789…"; got != want {
		t.Fatalf("offline: %q, want %q", got, want)
	}
	if got, want := a.view().Tooltip, "hark: Offline, reconnecting to example.org:6789… (next try at 12:00:05)"; got != want {
		t.Fatalf("offline tooltip: %q, want %q", got, want)
	}
	a.servers[0].state = netclient.State{Connected: true, Addr: "example.org:6789"}
	if got, want := a.servers[0].status(), "Connected to example.org:6789"; got != want {
		t.Fatalf("connected: %q, want %q", got, want)
	}

	v := a.view()
	if v.Status != "Connected to example.org:6789" || v.Tooltip != "hark: Connected to example.org:6789" ||
		!bytes.Equal(v.Icon, assets.TrayConnected) || v.Latest != "Latest number: none yet" {
		t.Fatalf("view %s", formatView(v))
	}
	a.servers[0].latest = "42"
	if v := a.view(); v.Latest != "Latest number: 42" {
		t.Fatalf("view %s", formatView(v))
	}
}

func TestNewAppServerPrecedence(t *testing.T) {
	appEnv(t)
	withServer := writeConfig(t, `server = "config.example:2"`+"\n")
	without := writeConfig(t, "random = true\n")
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		name   string
		opts   Options
		server string
	}{
		{"flag beats config", Options{Server: "flag.example:1", DefaultServer: "default.example:3", ConfigPath: withServer}, "flag.example:1"},
		{"config beats default", Options{DefaultServer: "default.example:3", ConfigPath: withServer}, "config.example:2"},
		{"default", Options{DefaultServer: "default.example:3", ConfigPath: without}, "default.example:3"},
		{"default without a file", Options{DefaultServer: "default.example:3", ConfigPath: filepath.Join(t.TempDir(), "none.toml")}, "default.example:3"},
	} {
		if a := newApp(c.opts, log); len(a.servers) != 1 || a.servers[0].conf.Addr != c.server {
			t.Errorf("%s: servers %+v, want %q", c.name, a.servers[0].conf, c.server)
		}
	}
}

func TestAppUsesConfigFileServer(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		if err := SaveSettings(o.ConfigPath, Settings{Server: f.addr, Random: true, Classified: true}); err != nil {
			t.Fatal(err)
		}
		o.Server = ""
		o.DefaultServer = "127.0.0.1:1" // nothing there
	})
	f.start()
	f.connected()
}

func TestAppConfigSettingsApply(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		if err := SaveSettings(o.ConfigPath, Settings{Random: false, Classified: true}); err != nil {
			t.Fatal(err)
		}
	})
	f.start()
	first := f.views.next(t, "the first view")
	if first.Random || !first.Classified || first.DND {
		t.Fatalf("first view %s does not show the config file's settings", formatView(first))
	}
	// The server's first number arrives, without a popup.
	f.awaitView("connected with the first number", func(v view) bool {
		return v.Status == "Connected to "+f.addr && v.Latest != "Latest number: none yet"
	})
	f.publish(wire.KindClassified, "the first popup")
	f.nextPopup(Popup{Title: "New classified ad", Body: "the first popup"})
}

func TestAppConfigDoNotDisturbApplies(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		if err := SaveSettings(o.ConfigPath, Settings{Random: true, Classified: true, DoNotDisturb: true}); err != nil {
			t.Fatal(err)
		}
	})
	f.start()
	f.awaitView("connected in do not disturb", func(v view) bool {
		return v.DND && bytes.Equal(v.Icon, assets.TrayDoNotDisturb) && v.Latest != "Latest number: none yet" &&
			v.Status == "Connected to "+f.addr
	})
	n := f.number()
	f.awaitView("the number in do not disturb", latestIs(n))
	f.act(actDND)
	f.nextPopup(Popup{Title: "1 item arrived while do not disturb was on", Body: "1 random number. The latest are in hark's menu."})
}

func TestAppBrokenConfig(t *testing.T) {
	var broken []byte
	f := newFixture(t, func(f *fixture, o *Options) {
		broken = []byte("random = = false\n")
		if err := os.MkdirAll(filepath.Dir(o.ConfigPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(o.ConfigPath, broken, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	f.start()

	notice := f.popups.next(t, "the notice about the broken file")
	if notice.Title != "hark's settings file is broken" || !strings.Contains(notice.Body, f.opts.ConfigPath) ||
		!strings.Contains(notice.Body, "line 1") {
		t.Fatalf("notice %+v; want it to name %s and line 1", notice, f.opts.ConfigPath)
	}
	// The defaults apply: numbers make popups.
	f.connected()

	unchanged := func(after string) {
		t.Helper()
		raw, err := os.ReadFile(f.opts.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, broken) {
			t.Fatalf("after %s the broken file was overwritten:\n%s", after, raw)
		}
		if names := dirNames(t, filepath.Dir(f.opts.ConfigPath)); !slices.Equal(names, []string{"config.toml"}) {
			t.Fatalf("after %s the config directory holds %q", after, names)
		}
	}
	f.act(actClassified)
	f.awaitView("ads unchecked", func(v view) bool { return !v.Classified })
	unchanged("switching ads off")
	f.logs.await(t, "the warning that the change is not saved", func(r logRecord) bool {
		return r.Level == slog.LevelWarn && strings.Contains(r.Msg, "broken config file is left as it is")
	})

	// The change holds for this run all the same.
	f.publish(wire.KindClassified, "hidden ad")
	f.awaitView("the hidden ad", recentIs("hidden ad"))
	n := f.number()
	f.nextPopup(Popup{Title: "New random number", Body: n})

	f.act(actDND)
	f.awaitView("do not disturb", func(v view) bool { return v.DND })
	f.act(actRandom)
	f.awaitView("numbers unchecked", func(v view) bool { return !v.Random })
	unchanged("three toggles")
}

func TestAppNotifyErrorsDoNotStopPopups(t *testing.T) {
	f := newFixture(t, nil)
	var mu sync.Mutex
	calls := 0
	f.a.notify = func(_ context.Context, p Popup) error {
		f.popups.add(p)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			return errors.New("the daemon is out to lunch")
		}
		return nil
	}
	f.start()
	f.connected()
	n := f.number() // the first call, which fails
	f.nextPopup(Popup{Title: "New random number", Body: n})
	f.publish(wire.KindClassified, "ad one")
	f.nextPopup(Popup{Title: "New classified ad", Body: "ad one"}) // fails too
	f.publish(wire.KindClassified, "ad two")
	f.nextPopup(Popup{Title: "New classified ad", Body: "ad two"}) // works

	f.logs.await(t, "popups working again", func(r logRecord) bool { return r.Msg == "popups work again" })
	var warnings int
	var logged []string
	for _, r := range f.logs.all() {
		if strings.HasPrefix(r.Msg, "popups fail") {
			warnings++
			if r.Attrs["err"] != "the daemon is out to lunch" {
				t.Errorf("the warning does not carry the error: %+v", r)
			}
		}
		if r.Level == slog.LevelInfo && (r.Msg == "New random number" || r.Msg == "New classified ad") {
			logged = append(logged, r.Attrs["body"])
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings that popups fail, want exactly 1 for the failing spell", warnings)
	}
	// What could not be shown went to the log instead.
	if want := []string{n, "ad one"}; !slices.Equal(logged, want) {
		t.Errorf("popups logged instead of shown: %q, want %q", logged, want)
	}
}

func TestAppHungNotifyDelaysOnlyPopups(t *testing.T) {
	f := newFixture(t, nil)
	gate := make(chan struct{})
	f.a.notify = func(_ context.Context, p Popup) error {
		f.popups.add(p)
		select {
		case <-gate:
		case <-f.stop:
		}
		return nil
	}
	f.start()
	// The first popup hangs in notify; the session and the menu go on.
	f.connected()
	n := f.number()
	f.nextPopup(Popup{Title: "New random number", Body: n}) // in notify, hanging
	f.publish(wire.KindClassified, "queued ad")
	f.awaitView("the ad in the menu", recentIs("queued ad"))

	// The ad's popup waits in the queue; 31 more fit; the rest are logged.
	const clicks = 40
	for range clicks {
		f.actIndex(actRecent, 0)
	}
	f.act(actClassified) // marks the end of the clicks
	f.awaitView("ads unchecked", func(v view) bool { return !v.Classified })
	dropped := 0
	for _, r := range f.logs.all() {
		if strings.Contains(r.Msg, "popup not shown") {
			dropped++
			if r.Attrs["title"] != "Classified ad" {
				t.Errorf("dropped %+v", r)
			}
		}
	}
	queued := popupQueue - 1
	if dropped != clicks-queued {
		t.Fatalf("%d popups dropped to the log, want %d (queue of %d, one taken by the ad)", dropped, clicks-queued, popupQueue)
	}

	close(gate)
	f.nextPopup(Popup{Title: "New classified ad", Body: "queued ad"})
	for range queued {
		f.nextPopup(Popup{Title: "Classified ad", Body: "queued ad"})
	}
	n = f.number()
	f.nextPopup(Popup{Title: "New random number", Body: n})
}

func TestAppReconnect(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	f.connected()
	f.act(actReconnect)
	f.logs.await(t, "the reconnect logged", func(r logRecord) bool { return r.Msg == "reconnecting, as asked from the menu" })
	f.logs.await(t, "the session dropping its connection", func(r logRecord) bool {
		return r.Msg == "disconnected" && strings.Contains(r.Attrs["err"], "reconnect requested")
	})
	f.logs.await(t, "the session connecting again", func(r logRecord) bool { return r.Msg == "connected" })
	// The new connection delivers.
	f.publish(wire.KindClassified, "after reconnecting")
	f.nextPopup(Popup{Title: "New classified ad", Body: "after reconnecting"})
}

func TestAppWithoutUIOrNotify(t *testing.T) {
	// No tray and no popups: items go to the log.
	f := newFixture(t, nil)
	f.a.ui = nil
	f.a.notify = nil
	f.start()
	f.logs.await(t, "connected", func(r logRecord) bool { return r.Msg == "connected" })
	f.publish(wire.KindClassified, "logged ad")
	r := f.logs.await(t, "the ad logged", func(r logRecord) bool { return r.Msg == "New classified ad" })
	if r.Attrs["body"] != "logged ad" || r.Level != slog.LevelInfo {
		t.Fatalf("logged %+v", r)
	}
	if len(f.views.all()) != 0 || len(f.popups.all()) != 0 {
		t.Fatal("something was rendered or shown")
	}
}

// While offline, the view holds still between retries: no status that
// counts down by itself, only a new view when a retry fails with a new
// next try (the tooltip), and the menu's status line the same in all.
// (Each change to the menu makes a tray host re-read it, and LXQt's
// closes an open menu then.)
func TestAppOfflineHoldsStill(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	f.firstNumber()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	want := "Offline, reconnecting to " + f.addr + "…"
	f.awaitView("offline", func(v view) bool { return v.Status == want })
	offline := func(ev netclient.Event) bool { return ev.State != nil && !ev.State.Connected && ev.State.Err != nil }
	f.handled.await(t, "the first failure taken in", offline)
	// Three failed retries (the waits are about 1, 2 and 4 s): one view
	// each at most, the tooltip's next try being new.
	views := len(f.views.all())
	for i := range 3 {
		f.handled.await(t, fmt.Sprintf("failed retry %d taken in", i+1), offline)
	}
	all := f.views.all()
	if n := len(all) - views; n > 3 {
		t.Errorf("%d views for 3 retries, want one each at most:\n%s", n, f.views.dump())
	}
	for _, v := range all[views-1:] {
		if v.Status != want || !strings.HasPrefix(v.Tooltip, "hark: "+want+" (next try at ") {
			t.Errorf("while offline: %s", formatView(v))
		}
	}
}

// withIdentity gives the fixture's app a client identity, as the real
// tray has, kept in a directory of its own.
func withIdentity(f *fixture, o *Options) {
	idt, err := netclient.OpenIdentity(f.t.TempDir())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { idt.Close() })
	o.Identity = idt
}

// The new-items dot marks what arrived since hark started: what the
// first catch-up brings (published while hark was not running) pops up,
// as news, but does not light it; the next ad does.
func TestAppCatchUpDoesNotLightTheDot(t *testing.T) {
	f := newFixture(t, withIdentity)
	f.start()
	f.connected()
	f.cancel()
	if err := f.awaitEnd("its context was cancelled"); err != nil {
		t.Fatal(err)
	}
	f.publish(wire.KindClassified, "published while hark was off")
	f.startAgain()
	f.nextPopup(Popup{Title: "New classified ad", Body: "published while hark was off"})
	v := f.awaitConnectedView()
	if !slices.Contains(v.Recent, "published while hark was off") || !bytes.Equal(v.Icon, assets.TrayConnected) {
		t.Fatalf("after the catch-up: %s; want the ad in the menu and no dot", formatView(v))
	}
	for _, v := range f.views.all() {
		if bytes.Equal(v.Icon, assets.TrayUnread) {
			t.Fatalf("the catch-up lit the dot: %s", formatView(v))
		}
	}
	f.publish(wire.KindClassified, "published after start")
	f.nextPopup(Popup{Title: "New classified ad", Body: "published after start"})
	f.awaitView("the dot for the ad after start", func(v view) bool { return bytes.Equal(v.Icon, assets.TrayUnread) })
}

// Recent ads survive a restart: the new app's very first view, before
// it connects, lists the ads from before, and the latest ad handed over
// again on connecting is not listed twice.
func TestAppRecentAdsSurviveARestart(t *testing.T) {
	for _, c := range []struct {
		name      string
		configure func(*fixture, *Options)
	}{{"version 1", nil}, {"identified", withIdentity}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.configure)
			f.start()
			f.connected()
			f.publish(wire.KindClassified, "first ad")
			f.publish(wire.KindClassified, "second ad")
			f.awaitView("both ads", recentIs("second ad", "first ad"))

			f.restart()
			first := f.views.next(t, "the first view after the restart")
			if !strings.HasPrefix(first.Status, "Connecting") || !slices.Equal(first.Recent, []string{"second ad", "first ad"}) {
				t.Fatalf("first view after a restart: %s; want the ads from before", formatView(first))
			}
			v := f.awaitConnectedView()
			if !slices.Equal(v.Recent, []string{"second ad", "first ad"}) {
				t.Fatalf("connected again: %s", formatView(v))
			}
			f.publish(wire.KindClassified, "third ad")
			f.nextPopup(Popup{Title: "New classified ad", Body: "third ad"}) // the first popup of this run
			f.awaitView("the new ad first", recentIs("third ad", "second ad", "first ad"))
			f.actIndex(actRecent, 2)
			f.nextPopup(Popup{Title: "Classified ad", Body: "first ad"}) // from the last run, shown again
		})
	}
}

// Recent ads are kept per server: another server's menu starts empty,
// and the first server's ads are still there when hark goes back to it.
func TestAppRecentAdsPerServer(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	f.connected()
	f.publish(wire.KindClassified, "the first server's ad")
	f.awaitView("the ad", recentIs("the first server's ad"))
	first := f.opts.Server

	other := startServer(t)
	f.opts.Server = other.Addr().String()
	f.restart()
	if v := f.views.next(t, "the first view with another server"); len(v.Recent) != 0 {
		t.Fatalf("another server's menu: %s", formatView(v))
	}
	if _, _, err := other.Publish(context.Background(), wire.KindClassified, "the second server's ad"); err != nil {
		t.Fatal(err)
	}
	f.awaitView("the second server's ad", recentIs("the second server's ad"))

	f.opts.Server = first
	f.restart()
	if v := f.views.next(t, "the first view back with the first server"); !slices.Equal(v.Recent, []string{"the first server's ad"}) {
		t.Fatalf("back with the first server: %s", formatView(v))
	}
}

// A server whose store is not the one the kept ads came from (wiped,
// or another server at the same address) takes them out of the menu
// once hark learns its epoch; what came meanwhile stays.
func TestAppRecentAdsOfAnotherStoreLeave(t *testing.T) {
	f := newFixture(t, withIdentity)
	f.start()
	f.connected()
	f.publish(wire.KindClassified, "from the old store")
	f.awaitView("the old store's ad", recentIs("from the old store"))
	f.cancel()
	if err := f.awaitEnd("its context was cancelled"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// A new store at the same address.
	f.srv = startServer(t, func(c *server.Config) { c.Listen = f.addr })
	f.publish(wire.KindClassified, "from the new store")
	f.startAgain()
	if v := f.views.next(t, "the first view"); !slices.Equal(v.Recent, []string{"from the old store"}) {
		t.Fatalf("first view: %s; want the kept ad until the store is known", formatView(v))
	}
	v := f.awaitConnectedView()
	if !slices.Equal(v.Recent, []string{"from the new store"}) {
		t.Fatalf("connected to the new store: %s; want its ad alone", formatView(v))
	}
	f.logs.await(t, "the drop logged", func(r logRecord) bool {
		return strings.HasPrefix(r.Msg, "the server's store is not the one the Recent ads came from")
	})
	kept, err := loadRecent(f.opts.StateDir, f.addr)
	if err != nil || len(kept.Ads) != 1 || kept.Ads[0].Value != "from the new store" || kept.Epoch == "" {
		t.Fatalf("kept after the drop: %+v, %v", kept, err)
	}
}

// A recent ads file that is not what hark writes costs the old list and
// one warning: hark starts, and replaces the file with the next ad.
func TestAppRecentAdsCorruptFile(t *testing.T) {
	for _, c := range []struct{ name, content string }{
		{"not json", "\x00\x01garbage"},
		{"cut short", `{"version":1,"servers":[{"server":"x","ads":[{"value":"a`},
		{"other version", `{"version":99,"servers":[]}`},
		{"empty ad", `{"version":1,"servers":[{"server":"SERVER","ads":[{"value":""}]}]}`},
		{"no server", `{"version":1,"servers":[{"server":"","ads":[]}]}`},
		{"unknown field", `{"version":1,"servers":[{"server":"SERVER","ads":[{"value":"a","when":1}]}]}`},
		{"ad too long", `{"version":1,"servers":[{"server":"SERVER","ads":[{"value":"` + strings.Repeat("a", wire.MaxLine+1) + `"}]}]}`},
		{"two documents", `{"version":1,"servers":[]} {}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			path := filepath.Join(f.opts.StateDir, recentFileName)
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(c.content, "SERVER", f.addr)), 0o600); err != nil {
				t.Fatal(err)
			}
			f.a = f.newApp() // reads the file
			f.start()
			if v := f.views.next(t, "the first view"); len(v.Recent) != 0 {
				t.Fatalf("first view: %s", formatView(v))
			}
			f.connected()
			f.publish(wire.KindClassified, "a new ad")
			f.awaitView("the new ad", recentIs("a new ad"))
			f.cancel()
			if err := f.awaitEnd("its context was cancelled"); err != nil {
				t.Fatal(err)
			}
			var warns []logRecord
			for _, r := range f.logs.all() {
				if r.Level >= slog.LevelWarn {
					warns = append(warns, r)
				}
			}
			if len(warns) != 1 || !strings.Contains(warns[0].Msg, "Recent ads") || !strings.Contains(warns[0].Attrs["err"], path) {
				t.Fatalf("warnings %+v; want one about %s", warns, path)
			}
			kept, err := loadRecent(f.opts.StateDir, f.addr)
			if err != nil || len(kept.Ads) != 1 || kept.Ads[0].Value != "a new ad" {
				t.Fatalf("the file after the next ad: %+v, %v", kept, err)
			}
		})
	}
}

// The demo says it is one, in the menu and the tooltip: its settings are
// temporary, and its server goes away with it.
func TestAppDemoSaysSo(t *testing.T) {
	appEnv(t)
	a := newApp(Options{Server: "127.0.0.1:6789", ConfigPath: filepath.Join(t.TempDir(), "config.toml"), Demo: true}, slog.New(slog.DiscardHandler))
	a.servers[0].state = netclient.State{Connected: true, Addr: "127.0.0.1:6789"}
	v := a.view()
	if want := "Demo (settings not kept): Connected to 127.0.0.1:6789"; v.Status != want || v.Tooltip != "hark: "+want {
		t.Fatalf("demo view %s", formatView(v))
	}
}
