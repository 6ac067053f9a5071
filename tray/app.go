// Package tray is hark's desktop face: a tray icon and menu (fyne.io/systray)
// over a netclient session, turning each fetched item into a desktop popup.
// It degrades rather than dies: without a tray host it shows popups only,
// without a notification daemon it logs, without a session bus both.
package tray

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/harkapp/hark/assets"
	"github.com/harkapp/hark/internal/keyring"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// ErrRunning is returned by Run when another hark tray runs in this
// session; it is not a failure.
var ErrRunning = errRunning

const (
	recentMax   = 10              // ads kept for the Recent ads menu
	recentSave  = 2 * time.Second // a change to Recent ads is written this long after it, at most
	callTimeout = 5 * time.Second // any one D-Bus call
	popupQueue  = 32              // popups waiting for a slow daemon before they go to the log
	// problemGroup: a popup about a new problem replaces the one before.
	problemGroup = "cannot-connect"
	// configGroup: a popup about the settings file replaces the one before.
	configGroup = "settings"
	configPoll  = time.Second // how often the settings file is looked at
)

// Options configure the tray.
type Options struct {
	// Server is the --server flag ("" when not given): it beats the config
	// file's server, which beats DefaultServer.
	Server        string
	DefaultServer string
	ConfigPath    string              // the settings file
	Identity      *netclient.Identity // nil: plain version 1
	// StateDir keeps the Recent ads across restarts, and the instance
	// lock when there is no XDG_RUNTIME_DIR; "" keeps nothing.
	StateDir  string
	Autostart *Autostart // the start-on-login entry this hark writes
	Logger    *slog.Logger
	// Demo marks hark --demo: its menu and tooltip say so, since its
	// settings are temporary and its server goes away with it.
	Demo bool
}

// Run runs the tray until ctx ends or the user picks Quit. It must be
// called from the main goroutine: systray needs the main OS thread on
// some platforms.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	release, err := lockInstance(opts.StateDir)
	if err != nil {
		return err
	}
	defer release()

	a := newApp(opts, log)
	d, err := openDesktop(ctx)
	if err != nil {
		log.Warn("no tray icon and no popups: new items are written to this log", "reason", err)
		return a.run(ctx)
	}
	defer d.Close()
	d.exportAddress()
	a.desktop = d

	pctx, cancel := context.WithTimeout(ctx, callTimeout)
	name, nerr := d.NotificationServer(pctx)
	host, herr := d.TrayHost(pctx)
	cancel()
	if nerr == nil {
		a.notify = d.Notify
		log.Info("popups through " + name)
	}
	if herr != nil {
		log.Warn("cannot tell whether a tray host runs", "err", herr)
		host = true // systray will say if it cannot register
	}
	const gnome = " On GNOME, install the AppIndicator extension."
	switch {
	case nerr != nil && !host:
		log.Warn("no tray host ("+watcherName+") and no notification daemon: new items are written to this log; the icon appears when a tray host starts."+gnome, "reason", nerr)
	case nerr != nil:
		log.Warn("no popups: new items are written to this log and kept in the tray menu", "reason", nerr)
	case !host:
		log.Warn("no tray host (" + watcherName + ") on this desktop: no tray icon until one starts; popups still work." + gnome)
	}
	return runSystray(ctx, a)
}

// app is the tray's state and the one goroutine that changes it: session
// events, menu clicks and timers all arrive there, so nothing needs a lock.
type app struct {
	opts     Options
	log      *slog.Logger
	server   string
	settings Settings
	saveable bool // false when the config file is broken: never overwrite it
	pres     *presenter

	desktop *desktop
	notify  func(context.Context, Popup) error // nil: nothing shows popups
	ui      ui                                 // nil: no tray
	actions chan action
	popups  chan Popup

	tlsConf     *tls.Config // for a tls:// server: nil is the system's roots
	caPath      string      // ca_file resolved, "" for none
	caErr       error       // ca_file cannot be used: no session until it can
	tokenFile   string      // token_file resolved, "" for the keyring
	configRetry time.Duration
	alerted     string // the problem last shown in a popup, until connected

	// configStamp is the settings file as hark last read or wrote it: a
	// file seen otherwise is a user's edit, to be applied.
	configStamp fileStamp
	configPoll  time.Duration // 0: configPoll
	// openFile opens the settings file in the user's editor without
	// waiting for it (openWithXDG); tests replace it.
	openFile func(path string) error
	// firstRun: there was no settings file at start. helped: the first
	// failure to connect has been seen (and explained when it needed to).
	firstRun bool
	helped   bool

	shown   view // what render showed last
	drawn   bool // render has shown a view
	state   netclient.State
	stateAt time.Time
	latest  string
	// recent is the Recent ads menu, newest first, kept in StateDir;
	// the last fromFile of them were read from there at start, under
	// the store epoch recentEpoch ("" while not known).
	recent      []recentAd
	fromFile    int
	recentEpoch string
	recentDirty bool // changed since it was last written
	// live: the session has connected once. Items before that are the
	// first catch-up, what came while hark was not running: news for
	// a popup, but not new since start, so they do not light the dot.
	live        bool
	unread      bool
	autostartOn bool
	notices     []Popup // shown once popups can be
}

func newApp(opts Options, log *slog.Logger) *app {
	a := &app{opts: opts, log: log, actions: make(chan action, 16), popups: make(chan Popup, popupQueue)}
	a.openFile = xdgOpen(log)
	// The stamp first: an edit while the file is read is seen after.
	a.configStamp = stampOf(opts.ConfigPath)
	a.firstRun = !a.configStamp.exists()
	s, err := LoadSettings(opts.ConfigPath)
	a.settings, a.saveable = s, err == nil
	if err != nil {
		log.Error(err.Error())
		a.notices = append(a.notices, Popup{Title: "hark's settings file is broken", Body: err.Error(), Group: configGroup})
	}
	a.server = a.serverFor(s)
	a.resolveFiles()
	a.pres = newPresenter(a.settings)
	a.loadRecent()
	if opts.Autostart != nil {
		on, err := opts.Autostart.Enabled()
		if err != nil {
			log.Warn(err.Error())
		}
		a.autostartOn = on
	}
	return a
}

// serverFor is the server to use with settings s: the --server flag
// beats the file's server, which beats the default.
func (a *app) serverFor(s Settings) string {
	switch {
	case a.opts.Server != "":
		return a.opts.Server
	case s.Server != "":
		return s.Server
	}
	return a.opts.DefaultServer
}

// resolveFiles resolves ca_file and token_file, and loads the CA.
func (a *app) resolveFiles() {
	a.tlsConf, a.caPath, a.caErr = nil, "", nil
	var err error
	if a.tokenFile, err = ResolvePath(a.opts.ConfigPath, a.settings.TokenFile); err != nil {
		a.log.Error("token_file: " + err.Error())
		a.tokenFile = a.settings.TokenFile
	}
	if a.settings.CAFile == "" {
		return
	}
	if addr, err := netclient.ParseAddr(a.server); err == nil && !addr.TLS {
		a.log.Warn("ca_file is only used for a tls:// server: ignored for "+a.server, "ca_file", a.settings.CAFile)
		return
	}
	if a.caPath, err = ResolvePath(a.opts.ConfigPath, a.settings.CAFile); err != nil {
		a.caErr = &caError{a.settings.CAFile, err}
	} else {
		a.loadCA()
	}
}

// loadCA (re)reads ca_file and reports whether it can be used.
func (a *app) loadCA() bool {
	conf, err := loadCA(a.caPath)
	a.tlsConf, a.caErr = conf, err
	if err != nil {
		a.log.Error("cannot connect until ca_file is fixed; then choose Reconnect now", "err", err)
		return false
	}
	if a.caPath != "" {
		a.log.Debug("trusting the CA in ca_file alone", "ca_file", a.caPath)
	}
	return true
}

// run is the app goroutine. It returns when ctx ends or the user quits,
// after every goroutine it started has finished.
func (a *app) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait

	// The session's events come straight into this loop: an item not
	// taken before Quit is offered again next time, never lost. There is
	// no session while ca_file cannot be used.
	var session *netclient.Session
	var events <-chan netclient.Event
	var tokenWanted *atomic.Bool // a server said it needs a token: look for one
	stopSession := func() {}
	startSession := func() {
		tokenWanted = new(atomic.Bool)
		s := netclient.NewSession(netclient.SessionOptions{
			Addr:        a.server,
			Identity:    a.opts.Identity,
			TLS:         a.tlsConf,
			Token:       tokenSource(a.log, a.server, a.tokenFile, tokenWanted, keyring.Lookup),
			ConfigRetry: a.configRetry,
			Logger:      a.log,
		})
		session, events = s, s.Events()
		sctx, scancel := context.WithCancel(ctx)
		stopSession = scancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(sctx); err != nil {
				a.log.Error("session ended", "err", err)
			}
		}()
	}
	// restartSession ends the session (its items not taken are offered
	// again by the server next time) and starts one with the settings
	// now in effect.
	restartSession := func() {
		stopSession()
		session, events = nil, nil
		a.newServer()
		a.log.Info("connecting with the new settings", "server", a.server)
		if a.caErr == nil {
			startSession()
		}
		a.alert()
	}
	a.log.Info("hark tray is running", "server", a.server)
	if a.caErr == nil {
		startSession()
	}
	// Resume from suspend comes from another goroutine, and the session
	// may start later: the loop passes it on.
	woke := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.showPopups(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := watchSleep(ctx, func() {
			a.log.Debug("watching logind for resume from suspend")
		}, func() {
			a.log.Info("woke from suspend: reconnecting")
			select {
			case woke <- struct{}{}:
			default:
			}
		})
		if err != nil {
			a.log.Debug("after suspend, dead connections are noticed by keepalive alone", "reason", err)
		}
	}()
	// The settings file is looked at every second: the edits a user saves
	// apply at once.
	edited := make(chan fileStamp)
	wg.Add(1)
	go func(start fileStamp) {
		defer wg.Done()
		a.watchConfig(ctx, start, edited)
	}(a.configStamp)
	if a.desktop != nil && a.ui != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := a.desktop.WatchTrayHost(ctx, func(present bool) {
				if present {
					a.log.Info("a tray host appeared: hark's icon is shown")
				} else {
					a.log.Warn("the tray host went away: no tray icon until it comes back; popups still work")
				}
			})
			if err != nil {
				a.log.Warn(err.Error())
			}
		}()
	}

	for _, p := range a.notices {
		a.popup(p)
	}
	a.alert()
	a.render()
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	// Nothing ticks: the menu changes only when what it says changes.
	// (A status line counting down each second made every tray host
	// re-read the whole menu each second, and LXQt's closes an open
	// menu then.) Recent ads are written a little after they change, so
	// that a burst of ads costs one write, and when run ends.
	save := time.NewTimer(time.Hour)
	save.Stop()
	defer a.saveRecent()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-save.C:
			a.saveRecent()
		case <-woke:
			if session != nil {
				session.Reconnect()
			}
		case st := <-edited:
			if a.reload(st) {
				restartSession()
			}
		case ev, ok := <-events:
			switch {
			case !ok:
				events = nil // the session ended; ctx is ending too
			case ev.State != nil:
				a.state, a.stateAt = *ev.State, time.Now()
				if errors.Is(a.state.Err, netclient.ErrAuthRequired) && tokenWanted != nil && !tokenWanted.Swap(true) {
					// First word that a token is needed: look for one now,
					// not after the slow retry, and say nothing yet: the
					// token may well be there.
					session.Reconnect()
					continue
				}
				if a.state.Connected {
					a.live = true
					a.checkEpoch()
				}
				a.alert()
				a.firstRunHelp()
			case ev.Item != nil:
				if a.item(*ev.Item) {
					if !a.recentDirty {
						save.Reset(recentSave)
					}
					a.recentDirty = true
				}
			}
		case act := <-a.actions:
			// Using the menu shows it: what was new has been seen. (Hosts
			// that report opening the menu clear it sooner; xfce4-panel
			// only calls AboutToShowGroup, which systray does not pass on.)
			a.unread = false
			switch {
			case act.kind == actQuit:
				a.log.Info("quit from the menu")
				return nil
			case act.kind == actReconnect && session == nil:
				a.log.Info("reading ca_file again, as asked from the menu")
				if a.loadCA() {
					startSession()
				}
				a.alert()
			default:
				a.do(act, session)
			}
		case now := <-flush.C:
			for _, p := range a.pres.flush(now) {
				a.popup(p)
			}
		}
		if at, ok := a.pres.due(); ok {
			flush.Reset(time.Until(at))
		}
		a.render()
	}
}

// item takes in one fetched item, and reports whether Recent ads
// changed. A current one (what the server held before this client met
// it, or the latest again after a restart) fills the menu without a
// popup: it is not news. The dot marks what arrived since hark started.
func (a *app) item(d netclient.Delivery) (recentChanged bool) {
	a.log.Debug("item", "kind", d.Kind, "value", d.Value, "id", d.ID, "current", d.Current)
	switch d.Kind {
	case wire.KindRandom:
		a.latest = d.Value
	case wire.KindClassified:
		recentChanged = a.addRecent(d)
	}
	if d.Current {
		return recentChanged
	}
	if a.live {
		a.unread = true
	}
	for _, p := range a.pres.item(d, time.Now()) {
		a.popup(p)
	}
	return recentChanged
}

// addRecent puts an ad first in Recent ads, unless it is the latest ad
// handed over again after a restart, which is first there already.
func (a *app) addRecent(d netclient.Delivery) bool {
	if d.Current && len(a.recent) > 0 {
		if r := a.recent[0]; r.Value == d.Value && (r.ID == d.ID || r.ID == 0 || d.ID == 0) {
			return false
		}
	}
	a.recent = append([]recentAd{{ID: d.ID, Value: d.Value}}, a.recent[:min(len(a.recent), recentMax-1)]...)
	a.fromFile = min(a.fromFile, len(a.recent)-1)
	return true
}

// recentKey is the server's name for its list of ads: host:port, as the
// identity keeps its marks, whether reached with TLS or not.
func (a *app) recentKey() string {
	if addr, err := netclient.ParseAddr(a.server); err == nil {
		return addr.HostPort
	}
	return a.server
}

// loadRecent fills Recent ads with those kept from the last run. A file
// that cannot be read costs the old list and one warning, nothing more.
func (a *app) loadRecent() {
	if a.opts.StateDir == "" {
		return
	}
	l, err := loadRecent(a.opts.StateDir, a.recentKey())
	if err != nil {
		if !errors.Is(err, errNoRecent) {
			a.log.Warn("Recent ads from the last run are lost: the file is unreadable and will be replaced", "err", err)
		}
		return
	}
	a.recent, a.fromFile, a.recentEpoch = l.Ads, len(l.Ads), l.Epoch
	a.log.Debug("recent ads from the last run", "count", len(l.Ads), "server", l.Server, "epoch", l.Epoch)
}

// checkEpoch compares, once connected, the server store's epoch with the
// one the kept ads came from: another store's ads (a wiped store,
// another server at the same address) leave the menu.
func (a *app) checkEpoch() {
	if a.opts.Identity == nil {
		return
	}
	m, ok := a.opts.Identity.Marks(a.recentKey())
	if !ok || m.Epoch == "" || m.Epoch == a.recentEpoch {
		return
	}
	if a.recentEpoch != "" && a.fromFile > 0 {
		a.log.Info("the server's store is not the one the Recent ads came from: they leave the menu",
			"epoch", m.Epoch, "was", a.recentEpoch, "dropped", a.fromFile)
		a.recent = slices.Clone(a.recent[:len(a.recent)-a.fromFile])
	}
	a.fromFile = 0
	a.recentEpoch = m.Epoch
	a.recentDirty = true
	a.saveRecent()
}

// saveRecent writes Recent ads to the state directory if they changed.
func (a *app) saveRecent() {
	if !a.recentDirty || a.opts.StateDir == "" {
		return
	}
	a.recentDirty = false
	l := recentList{Server: a.recentKey(), Epoch: a.recentEpoch, Ads: a.recent}
	if err := saveRecent(a.opts.StateDir, l); err != nil {
		a.log.Warn("cannot keep Recent ads for the next run", "err", err)
		return
	}
	a.log.Debug("recent ads saved", "count", len(a.recent))
}

// popup hands p to the popup goroutine without waiting for a slow
// daemon; when even the queue is full, the log gets it instead.
func (a *app) popup(p Popup) {
	select {
	case a.popups <- p:
	default:
		a.log.Warn("popup not shown: the notification daemon is too slow", "title", p.Title, "body", p.Body)
	}
}

// showPopups shows popups one at a time, each call under a deadline, so a
// hung daemon delays popups but never the menu or the session.
func (a *app) showPopups(ctx context.Context) {
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-a.popups:
			if a.notify == nil {
				a.log.Info(p.Title, "body", p.Body)
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			err := a.notify(cctx, p)
			cancel()
			if err != nil {
				if !failing {
					a.log.Warn("popups fail: items go to this log until they work again", "err", err)
					failing = true
				}
				a.log.Info(p.Title, "body", p.Body)
				continue
			}
			a.log.Debug("popup shown", "title", p.Title)
			if failing {
				a.log.Info("popups work again")
				failing = false
			}
		}
	}
}

// do carries out a menu click.
func (a *app) do(act action, session *netclient.Session) {
	switch act.kind {
	case actOpened:
		a.log.Debug("menu opened")
		a.unread = false
	case actRandom:
		a.settings.Random = !a.settings.Random
		a.pres.setKind(wire.KindRandom, a.settings.Random)
		a.save()
	case actClassified:
		a.settings.Classified = !a.settings.Classified
		a.pres.setKind(wire.KindClassified, a.settings.Classified)
		a.save()
	case actDND:
		a.settings.DoNotDisturb = !a.settings.DoNotDisturb
		for _, p := range a.pres.setDND(a.settings.DoNotDisturb) {
			a.popup(p)
		}
		a.save()
		a.alert() // a problem kept back while in do not disturb
	case actAutostart:
		a.toggleAutostart()
	case actEdit:
		a.editSettings()
	case actReconnect:
		a.log.Info("reconnecting, as asked from the menu")
		session.Reconnect()
	case actRecent:
		if act.index >= 0 && act.index < len(a.recent) {
			a.popup(Popup{Title: "Classified ad", Body: a.recent[act.index].Value})
		}
	}
}

func (a *app) save() {
	if !a.saveable {
		a.log.Warn("setting changed until hark quits: the broken config file is left as it is", "file", a.opts.ConfigPath)
		return
	}
	if err := SaveSettings(a.opts.ConfigPath, a.settings); err != nil {
		a.log.Error(err.Error() + "; the change holds until hark quits")
		return
	}
	a.configStamp = stampOf(a.opts.ConfigPath) // not an edit to apply

	a.log.Debug("settings saved", "file", a.opts.ConfigPath)
}

func (a *app) toggleAutostart() {
	as := a.opts.Autostart
	if as == nil {
		return
	}
	var err error
	if a.autostartOn {
		err = as.Disable()
	} else {
		err = as.Enable()
	}
	if err != nil {
		a.log.Error(err.Error())
	}
	// The check mark shows what is on disk, whatever happened.
	on, serr := as.Enabled()
	if serr != nil {
		a.log.Error(serr.Error())
	}
	a.autostartOn = on
	a.log.Info("start on login", "enabled", on, "file", as.Path)
	if on && as.Note != "" {
		a.log.Warn(as.Note)
		a.popup(Popup{Title: "Start on login may not work", Body: as.Note})
	}
}

// view is everything the tray shows, computed from the app's state.
type view struct {
	Icon       []byte
	Tooltip    string
	Status     string
	Latest     string
	Recent     []string
	Random     bool
	Classified bool
	DND        bool
	Autostart  bool
}

// render shows the current view, unless it is the one shown last: a
// state event that changes nothing a user reads (a second try failing as
// the first did) must not redraw the menu.
func (a *app) render() {
	if a.ui == nil {
		return
	}
	v := a.view()
	if a.drawn && v.equal(a.shown) {
		return
	}
	a.drawn, a.shown = true, v
	a.ui.render(v)
}

func (v view) equal(w view) bool {
	return bytes.Equal(v.Icon, w.Icon) && v.Tooltip == w.Tooltip && v.Status == w.Status && v.Latest == w.Latest &&
		slices.Equal(v.Recent, w.Recent) && v.Random == w.Random && v.Classified == w.Classified && v.DND == w.DND && v.Autostart == w.Autostart
}

func (a *app) view() view {
	status := a.status()
	if a.opts.Demo {
		status = "Demo (settings not kept): " + status
	}
	v := view{
		Status:     status,
		Latest:     "Latest number: none yet",
		Recent:     make([]string, len(a.recent)),
		Random:     a.settings.Random,
		Classified: a.settings.Classified,
		DND:        a.settings.DoNotDisturb,
		Autostart:  a.autostartOn,
	}
	for i, r := range a.recent {
		v.Recent[i] = r.Value
	}
	if a.latest != "" {
		v.Latest = "Latest number: " + a.latest
	}
	v.Tooltip = "hark: " + v.Status
	if at, ok := a.nextTry(); ok {
		// When, not how long: a countdown would change every second.
		v.Tooltip += " (next try at " + at.Format("15:04:05") + ")"
	}
	switch {
	case !a.state.Connected:
		v.Icon = assets.TrayOffline
	case a.settings.DoNotDisturb:
		v.Icon = assets.TrayDoNotDisturb
		v.Tooltip += " (do not disturb)"
	case a.unread:
		v.Icon = assets.TrayUnread
		v.Tooltip += " (new items)"
	default:
		v.Icon = assets.TrayConnected
	}
	return v
}

// problem is what keeps hark from connecting that a person must fix (a
// setting, a token): a line for the status and a popup's body; "" when
// there is none, or retrying may fix it.
func (a *app) problem() (line, body string) {
	if a.caErr != nil {
		var ce *caError
		if errors.As(a.caErr, &ce) {
			return ce.status(), a.caErr.Error()
		}
		return "Cannot use ca_file: see hark's log", a.caErr.Error()
	}
	if a.state.Connected {
		return "", ""
	}
	h := hint(a.state.Err)
	return h, h
}

// alert shows a problem in a popup, once per distinct problem: not again
// on each retry, but again after hark connected in between. Do not
// disturb keeps it back until it is left.
func (a *app) alert() {
	line, body := a.problem()
	if a.state.Connected {
		a.alerted = ""
	}
	if line == "" || line == a.alerted || a.settings.DoNotDisturb {
		return
	}
	a.alerted = line
	a.popup(Popup{Title: "hark cannot connect", Body: body, Group: problemGroup})
}

// status is the menu's first line. It changes only with the state: not
// every host tells when the menu opens, and each change makes the host
// re-read the whole menu (see systrayUI.render).
func (a *app) status() string {
	switch {
	case a.state.Connected:
		return "Connected to " + a.state.Addr
	case a.caErr != nil:
		line, _ := a.problem()
		return line
	case a.stateAt.IsZero():
		return "Connecting to " + a.server + "…"
	}
	if h := hint(a.state.Err); h != "" {
		// What to fix: the next try is minutes away, and Reconnect now
		// tries at once.
		return h
	}
	return "Offline, reconnecting to " + a.server + "…"
}

// nextTry is when the session tries again, while it is offline for a
// reason that retrying may fix.
func (a *app) nextTry() (time.Time, bool) {
	if a.state.Connected || a.stateAt.IsZero() || a.caErr != nil || hint(a.state.Err) != "" {
		return time.Time{}, false
	}
	return a.stateAt.Add(a.state.RetryIn), true
}

type actionKind int

const (
	actOpened actionKind = iota
	actRandom
	actClassified
	actDND
	actAutostart
	actReconnect
	actQuit
	actRecent // index says which ad
	actEdit   // Edit settings…
)

type action struct {
	kind  actionKind
	index int
}

// ui is the tray icon and menu; render is called from the app goroutine
// only.
type ui interface {
	render(view)
}
