// Package tray is hark's desktop face: a tray icon and menu (fyne.io/systray)
// over a netclient session, turning each fetched item into a desktop popup.
// It degrades rather than dies: without a tray host it shows popups only,
// without a notification daemon it logs, without a session bus both.
package tray

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/harkapp/hark/assets"
	"github.com/harkapp/hark/internal/exepages"
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
	configPoll  = time.Second // how often the settings file is looked at, without inotify
	// configSettle: an edit is read once the file has not changed for
	// this long.
	configSettle = 300 * time.Millisecond
	// quietRelease: once nothing happened for this long, the pages of
	// the binary that start-up or the last burst touched are given back
	// (internal/exepages): most of an idle tray's memory otherwise.
	quietRelease = 30 * time.Second
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

	configRetry time.Duration // SessionOptions.ConfigRetry; tests shorten it
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
	settings Settings
	saveable bool // false when the config file is broken: never overwrite it
	pres     *presenter
	// servers are those hark keeps a session with, in the file's order;
	// one, unnamed, unless the file lists several.
	servers []*remote

	desktop *desktop
	notify  func(context.Context, Popup) error // nil: nothing shows popups
	ui      ui                                 // nil: no tray
	actions chan action
	popups  chan Popup

	// configStamp is the settings file as hark last read or wrote it: a
	// file seen otherwise is a user's edit, to be applied.
	configStamp fileStamp
	// configPoll, when set (by tests), is both configSettle and
	// configPoll.
	configPoll time.Duration
	// newWatcher watches the settings file's directory: fsnotify's;
	// tests make it fail.
	newWatcher func() (*fsnotify.Watcher, error)
	// openFile opens the settings file in the user's editor without
	// waiting for it (openWithXDG); tests replace it.
	openFile func(path string) error
	// firstRun: there was no settings file at start.
	firstRun bool

	// release gives back the binary's pages once the tray is quiet
	// (exepages.Release); quiet, when set (by tests), is quietRelease.
	release func() (int, error)
	quiet   time.Duration

	// handled, when set (by tests), is called with each session event
	// once the app has taken it in and rendered what it changed.
	handled func(netclient.Event)

	// menuGen counts the changes to the list of servers: a click on a
	// server's item of a menu drawn before the last one (action.gen) is
	// not for the server now in that place.
	menuGen uint64

	shown       view // what render showed last
	drawn       bool // render has shown a view
	unread      bool // items arrived since start that the menu has not shown
	autostartOn bool
	notices     []Popup // shown once popups can be
}

func newApp(opts Options, log *slog.Logger) *app {
	a := &app{opts: opts, log: log, actions: make(chan action, 16), popups: make(chan Popup, popupQueue)}
	a.openFile = xdgOpen(log)
	a.newWatcher = fsnotify.NewWatcher
	a.release, a.quiet = exepages.Release, quietRelease
	// The stamp first: an edit while the file is read is seen after.
	a.configStamp = stampOf(opts.ConfigPath)
	a.firstRun = !a.configStamp.exists()
	s, err := LoadSettings(opts.ConfigPath)
	a.settings, a.saveable = s, err == nil
	if err != nil {
		log.Error(err.Error())
		a.notices = append(a.notices, Popup{Title: "hark's settings file is broken", Body: err.Error(), Group: configGroup})
	}
	a.pres = newPresenter(a.settings)
	confs := a.confs()
	a.pres.servers(confs)
	for _, c := range confs {
		s := newRemote(c, &a.opts, log)
		s.named = len(confs) > 1
		a.servers = append(a.servers, s)
	}
	if opts.Autostart != nil {
		on, err := opts.Autostart.Enabled()
		if err != nil {
			log.Warn(err.Error())
		}
		a.autostartOn = on
	}
	return a
}

// confs is the servers the settings name: the --server flag beats the
// file's servers, which beat the default.
func (a *app) confs() []serverConf {
	return a.settings.serverConfs(a.opts.Server, a.opts.DefaultServer)
}

// several reports whether the tray shows several servers: their menus,
// and popups that name them.
func (a *app) several() bool { return len(a.servers) > 1 }

// run is the app goroutine. It returns when ctx ends or the user quits,
// after every goroutine it started has finished.
func (a *app) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait
	goRun := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}

	// Each session's events come straight into this loop: an item not
	// taken before Quit is offered again next time, never lost. There is
	// no session with a server whose ca_file cannot be used.
	for _, s := range a.servers {
		if s.conf.Name == "" {
			a.log.Info("hark tray is running", "server", s.conf.Addr)
		} else {
			a.log.Info("hark tray is running", "server", s.conf.Addr, "name", s.conf.Name)
		}
		s.start(ctx, goRun)
	}
	// Resume from suspend comes from another goroutine: the loop passes
	// it on.
	woke := make(chan struct{}, 1)
	goRun(func() { a.showPopups(ctx) })
	goRun(func() {
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
	})
	// The settings file is looked at every second: the edits a user saves
	// apply at once.
	edited := make(chan fileStamp)
	start := a.configStamp
	goRun(func() { a.watchConfig(ctx, start, edited) })
	if a.desktop != nil && a.ui != nil {
		goRun(func() {
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
		})
	}

	for _, p := range a.notices {
		a.popup(p)
	}
	a.alertAll()
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
	// quiet fires once nothing came into the loop for a.quiet; each
	// thing that does starts it again.
	quiet := time.NewTimer(a.quiet)
	defer quiet.Stop()
	saving := false
	defer func() {
		for _, s := range a.servers {
			s.saveRecent()
		}
	}()
	// The loop's fixed cases, then one per server: a select over as many
	// sessions as the file lists.
	const (
		caseDone = iota
		caseSave
		caseWoke
		caseEdited
		caseAction
		caseFlush
		caseQuiet
		caseServers
	)
	cases := []reflect.SelectCase{
		caseDone:   {Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		caseSave:   {Dir: reflect.SelectRecv, Chan: reflect.ValueOf(save.C)},
		caseWoke:   {Dir: reflect.SelectRecv, Chan: reflect.ValueOf(woke)},
		caseEdited: {Dir: reflect.SelectRecv, Chan: reflect.ValueOf(edited)},
		caseAction: {Dir: reflect.SelectRecv, Chan: reflect.ValueOf(a.actions)},
		caseFlush:  {Dir: reflect.SelectRecv, Chan: reflect.ValueOf(flush.C)},
		caseQuiet:  {Dir: reflect.SelectRecv, Chan: reflect.ValueOf(quiet.C)},
	}
	for {
		cases = cases[:caseServers]
		for _, s := range a.servers {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.events)})
		}
		chosen, recv, ok := reflect.Select(cases)
		var took *netclient.Event // a session's event, for handled
		switch chosen {
		case caseDone:
			return nil
		case caseSave:
			saving = false
			for _, s := range a.servers {
				s.saveRecent()
			}
		case caseWoke:
			for _, s := range a.servers {
				if s.session != nil {
					s.session.Reconnect()
				}
			}
		case caseEdited:
			if a.reload(recv.Interface().(fileStamp)) {
				a.applyServers(ctx, goRun)
			}
		case caseAction:
			act := recv.Interface().(action)
			// Using the menu shows it: what was new has been seen. (Hosts
			// that report opening the menu clear it sooner; xfce4-panel
			// only calls AboutToShowGroup, which systray does not pass on.)
			a.unread = false
			if act.kind == actQuit {
				a.log.Info("quit from the menu")
				return nil
			}
			a.do(ctx, act, goRun)
		case caseFlush:
			for _, p := range a.pres.flush(recv.Interface().(time.Time)) {
				a.popup(p)
			}
		case caseQuiet:
			n, err := a.release()
			if err != nil {
				a.log.Debug("cannot give back the binary's pages", "err", err)
			} else {
				a.log.Debug("quiet: gave back the binary's pages", "mapped_bytes", n)
			}
			continue
		default:
			s := a.servers[chosen-caseServers]
			if !ok {
				s.events = nil // the session ended; ctx is ending too
				break
			}
			ev := recv.Interface().(netclient.Event)
			if a.event(s, ev) && !saving {
				saving = true
				save.Reset(recentSave)
			}
			took = &ev
		}
		if at, ok := a.pres.due(); ok {
			flush.Reset(time.Until(at))
		}
		quiet.Reset(a.quiet)
		a.render()
		if took != nil && a.handled != nil {
			a.handled(*took)
		}
	}
}

// event takes in one event of s's session, and reports whether Recent
// ads changed.
func (a *app) event(s *remote, ev netclient.Event) (recentChanged bool) {
	switch {
	case ev.State != nil:
		if !s.setState(*ev.State) {
			return false
		}
		a.alert(s)
		a.firstRunHelp(s)
	case ev.Item != nil:
		d := *ev.Item
		recentChanged = s.item(d)
		// A current item (what the server held before this client met
		// it, or the latest again after a restart) fills the menu
		// without a popup: it is not news. The dot marks what arrived
		// since hark started.
		if d.Current {
			return recentChanged
		}
		if s.live {
			a.unread = true
		}
		for _, p := range a.pres.item(s.source(), d, time.Now()) {
			a.popup(p)
		}
	}
	return recentChanged
}

// applyServers makes the sessions those the settings name: a server kept
// as it was keeps its session, one whose address, files or name changed
// gets a new one (its items not taken are offered again by the server),
// one gone is ended, and a new one starts.
func (a *app) applyServers(ctx context.Context, goRun func(func())) {
	confs := a.confs()
	a.pres.servers(confs)
	kept := make([]*remote, len(confs))
	old := slices.Clone(a.servers)
	for i, c := range confs {
		if j := slices.IndexFunc(old, func(s *remote) bool { return s != nil && s.sameSession(c) }); j >= 0 {
			kept[i], old[j] = old[j], nil
		}
	}
	// Those gone first: their Recent ads are written before a new
	// session with the same server reads them.
	for _, s := range old {
		if s != nil {
			s.log.Info("no longer in the settings: disconnecting", "addr", s.conf.Addr)
			s.end()
		}
	}
	if !slices.Equal(kept, a.servers) {
		a.menuGen++ // a click on the menu as it was is not for this one
	}
	a.servers = make([]*remote, len(confs))
	var started []*remote
	for i, c := range confs {
		s := kept[i]
		if s == nil {
			s = newRemote(c, &a.opts, a.log)
			a.log.Info("connecting with the new settings", "server", c.Addr, "name", c.Name)
			s.start(ctx, goRun)
			started = append(started, s)
		}
		s.conf = c // its popups' kinds, its table
		s.named = len(confs) > 1
		a.servers[i] = s
	}
	for _, s := range started {
		a.alert(s) // once every server is in place, to name it or not
	}
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
func (a *app) do(ctx context.Context, act action, goRun func(func())) {
	var s *remote
	if act.server >= 0 && act.gen != a.menuGen {
		a.log.Info("a click on a server's item of a menu that has changed since: ignored")
		return
	}
	if act.server >= 0 && act.server < len(a.servers) {
		s = a.servers[act.server]
	}
	switch act.kind {
	case actOpened:
		a.log.Debug("menu opened")
		a.unread = false
	case actRandom, actClassified:
		if s != nil {
			a.toggleKind(act.server, act.kind)
		}
	case actDND:
		a.settings.DoNotDisturb = !a.settings.DoNotDisturb
		for _, p := range a.pres.setDND(a.settings.DoNotDisturb) {
			a.popup(p)
		}
		a.save()
		a.alertAll() // problems kept back while in do not disturb
	case actAutostart:
		a.toggleAutostart()
	case actEdit:
		a.editSettings()
	case actReconnect:
		// From a server's menu, that server; else all of them.
		for i, s := range a.servers {
			if act.server < 0 || act.server == i {
				s.log.Info("reconnecting, as asked from the menu")
				s.reconnect(ctx, goRun)
				a.alert(s)
			}
		}
	case actRecent:
		if s != nil && act.index >= 0 && act.index < len(s.recent) {
			title := "Classified ad"
			if a.several() {
				title = s.label() + ": " + title
			}
			a.popup(Popup{Title: title, Body: s.recent[act.index].Value})
		}
	}
}

// toggleKind switches the popups of one kind from server i, and keeps
// the choice in the file: in the server's [[servers]] table when it has
// one, else at the top.
func (a *app) toggleKind(i int, k actionKind) {
	s := a.servers[i]
	kind, on := wire.KindRandom, &s.conf.Random
	if k == actClassified {
		kind, on = wire.KindClassified, &s.conf.Classified
	}
	*on = !*on
	a.pres.setKind(s.key(), kind, *on)
	if t := s.conf.Table; t >= 0 && t < len(a.settings.Servers) {
		table := &a.settings.Servers[t]
		if k == actClassified {
			table.Classified = ptrTo(*on)
		} else {
			table.Random = ptrTo(*on)
		}
	} else if k == actClassified {
		a.settings.Classified = *on
	} else {
		a.settings.Random = *on
	}
	a.save()
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
	Icon    []byte
	Tooltip string
	// With one server, its status, latest number, Recent ads and kinds
	// are in the menu itself; with several, each has a menu, in Servers.
	Status     string
	Latest     string
	Recent     []string
	Random     bool
	Classified bool
	Servers    []serverView
	DND        bool
	Autostart  bool
	Gen        uint64 // app.menuGen
}

// serverView is one server's menu, when there are several: its title
// says its name and status.
type serverView struct {
	Title      string
	Latest     string
	Recent     []string
	Random     bool
	Classified bool
}

func (v serverView) equal(w serverView) bool {
	return v.Title == w.Title && v.Latest == w.Latest && slices.Equal(v.Recent, w.Recent) &&
		v.Random == w.Random && v.Classified == w.Classified
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
		slices.Equal(v.Recent, w.Recent) && v.Random == w.Random && v.Classified == w.Classified &&
		slices.EqualFunc(v.Servers, w.Servers, serverView.equal) && v.DND == w.DND && v.Autostart == w.Autostart && v.Gen == w.Gen
}

// latestLine is the menu's line for a server's latest number.
func latestLine(s *remote) string {
	if s.latest == "" {
		return "Latest number: none yet"
	}
	return "Latest number: " + s.latest
}

func recentValues(s *remote) []string {
	r := make([]string, len(s.recent))
	for i, ad := range s.recent {
		r[i] = ad.Value
	}
	return r
}

func (a *app) view() view {
	v := view{DND: a.settings.DoNotDisturb, Autostart: a.autostartOn, Gen: a.menuGen}
	// The icon shows the worst state: offline if any server is.
	offline := []string{}
	var next time.Time
	for _, s := range a.servers {
		if !s.state.Connected {
			offline = append(offline, s.label())
		}
		if at, ok := s.nextTry(); ok && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	if !a.several() {
		s := a.servers[0]
		v.Status = s.status()
		if a.opts.Demo {
			v.Status = "Demo (settings not kept): " + v.Status
		}
		v.Latest, v.Recent = latestLine(s), recentValues(s)
		v.Random, v.Classified = s.conf.Random, s.conf.Classified
		v.Tooltip = "hark: " + v.Status
	} else {
		for _, s := range a.servers {
			v.Servers = append(v.Servers, serverView{
				Title:  s.label() + ": " + s.status(),
				Latest: latestLine(s), Recent: recentValues(s),
				Random: s.conf.Random, Classified: s.conf.Classified,
			})
		}
		if len(offline) == 0 {
			v.Tooltip = fmt.Sprintf("hark: connected to %d servers", len(a.servers))
		} else {
			v.Tooltip = "hark: offline: " + strings.Join(offline, ", ")
		}
	}
	if !next.IsZero() {
		// When, not how long: a countdown would change every second.
		v.Tooltip += " (next try at " + next.Format("15:04:05") + ")"
	}
	switch {
	case len(offline) > 0:
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

// alertAll is alert for each server.
func (a *app) alertAll() {
	for _, s := range a.servers {
		a.alert(s)
	}
}

// alert shows a server's problem in a popup, once per distinct problem:
// not again on each retry, but again after it connected in between. Do
// not disturb keeps it back until it is left. Each server's problems
// replace each other, not another server's.
func (a *app) alert(s *remote) {
	line, body := s.problem()
	if s.state.Connected {
		s.alerted = ""
	}
	if line == "" || line == s.alerted || a.settings.DoNotDisturb {
		return
	}
	s.alerted = line
	title, group := "hark cannot connect", problemGroup
	if a.several() {
		title += " to " + s.label()
		group += ":" + s.label()
	}
	a.popup(Popup{Title: title, Body: body, Group: group})
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

// action is a menu click: server is the index of the server whose menu
// it is in (0 when there is one; -1 for all), index the ad picked.
type action struct {
	kind   actionKind
	server int
	index  int
	gen    uint64 // view.Gen of the menu clicked
}

// ui is the tray icon and menu; render is called from the app goroutine
// only.
type ui interface {
	render(view)
}
