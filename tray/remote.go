package tray

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/harkapp/hark/internal/keyring"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// remote is one server the tray keeps a session with, and all the tray
// knows of it: its state, its latest number and its Recent ads. Only the
// app goroutine touches it.
type remote struct {
	conf  serverConf
	named bool         // there are several servers: popups and menus name this one
	log   *slog.Logger // with the server's name when the file gives one
	opts  *Options

	tlsConf   *tls.Config // for a tls:// server: nil is the system's roots
	caPath    string      // ca_file resolved, "" for none
	caErr     error       // ca_file cannot be used: no session until it can
	tokenFile string      // token_file resolved, "" for the keyring

	session     *netclient.Session // nil while there is none
	events      <-chan netclient.Event
	stop        context.CancelFunc // ends the session
	tokenWanted *atomic.Bool       // a server said it needs a token: look for one

	alerted string // the problem last shown in a popup, until connected
	helped  bool   // the first failure to connect has been seen

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
	live bool
}

func newRemote(conf serverConf, opts *Options, log *slog.Logger) *remote {
	if conf.Name != "" {
		log = log.With("server", conf.Name)
	}
	s := &remote{conf: conf, opts: opts, log: log, stop: func() {}}
	s.resolveFiles()
	s.loadRecent()
	return s
}

// label is the server's name in popups and the menu: "" for the one
// server of a tray that has only one.
func (s *remote) label() string {
	if !s.named {
		return ""
	}
	return s.conf.Name
}

// start starts a session with the server, unless ca_file cannot be used;
// run (wg) waits for it to end.
func (s *remote) start(ctx context.Context, goRun func(func())) {
	if s.caErr != nil {
		return
	}
	s.tokenWanted = new(atomic.Bool)
	sess := netclient.NewSession(netclient.SessionOptions{
		Addr:        s.conf.Addr,
		Identity:    s.opts.Identity,
		TLS:         s.tlsConf,
		Token:       tokenSource(s.log, s.conf.Addr, s.tokenFile, s.tokenWanted, keyring.Lookup),
		ConfigRetry: s.opts.configRetry,
		Logger:      s.log,
	})
	s.session, s.events = sess, sess.Events()
	sctx, cancel := context.WithCancel(ctx)
	s.stop = cancel
	goRun(func() {
		if err := sess.Run(sctx); err != nil {
			s.log.Error("session ended", "err", err)
		}
	})
}

// end ends the session, if any: the items it did not hand over are
// offered again by the server next time. Recent ads are written.
func (s *remote) end() {
	s.stop()
	s.stop = func() {}
	s.session, s.events = nil, nil
	s.saveRecent()
}

// reconnect drops the connection and connects again at once; with no
// session (ca_file unusable), it reads ca_file again and starts one.
func (s *remote) reconnect(ctx context.Context, goRun func(func())) {
	if s.session != nil {
		s.session.Reconnect()
		return
	}
	s.log.Info("reading ca_file again, as asked from the menu")
	if s.loadCA() {
		s.start(ctx, goRun)
	}
}

// resolveFiles resolves ca_file and token_file, and loads the CA.
func (s *remote) resolveFiles() {
	s.tlsConf, s.caPath, s.caErr = nil, "", nil
	var err error
	if s.tokenFile, err = ResolvePath(s.opts.ConfigPath, s.conf.TokenFile); err != nil {
		s.log.Error("token_file: " + err.Error())
		s.tokenFile = s.conf.TokenFile
	}
	if s.conf.CAFile == "" {
		return
	}
	if addrs, err := netclient.ParseAddrs(s.conf.Addr); err == nil && !addrs[0].TLS { // a list is all TLS or none
		s.log.Warn("ca_file is only used for a tls:// server: ignored for "+s.conf.Addr, "ca_file", s.conf.CAFile)
		return
	}
	if s.caPath, err = ResolvePath(s.opts.ConfigPath, s.conf.CAFile); err != nil {
		s.caErr = &caError{s.conf.CAFile, err}
	} else {
		s.loadCA()
	}
}

// loadCA (re)reads ca_file and reports whether it can be used.
func (s *remote) loadCA() bool {
	conf, err := loadCA(s.caPath)
	s.tlsConf, s.caErr = conf, err
	if err != nil {
		s.log.Error("cannot connect until ca_file is fixed; then choose Reconnect now", "err", err)
		return false
	}
	if s.caPath != "" {
		s.log.Debug("trusting the CA in ca_file alone", "ca_file", s.caPath)
	}
	return true
}

// setState takes in a state event, and reports whether it is news for
// the app; a first word that a token is needed is not: the keyring is
// looked in at once, and nothing is said yet, as the token may well be
// there.
func (s *remote) setState(st netclient.State) bool {
	s.state, s.stateAt = st, time.Now()
	if errors.Is(st.Err, netclient.ErrAuthRequired) && s.tokenWanted != nil && !s.tokenWanted.Swap(true) {
		s.session.Reconnect()
		return false
	}
	if st.Connected {
		s.live = true
		s.checkEpoch()
	}
	return true
}

// item takes in one fetched item, and reports whether Recent ads
// changed.
func (s *remote) item(d netclient.Delivery) (recentChanged bool) {
	s.log.Debug("item", "kind", d.Kind, "value", d.Value, "id", d.ID, "current", d.Current)
	switch d.Kind {
	case wire.KindRandom:
		s.latest = d.Value
	case wire.KindClassified:
		recentChanged = s.addRecent(d)
	}
	if recentChanged {
		s.recentDirty = true
	}
	return recentChanged
}

// addRecent puts an ad first in Recent ads, unless it is a current one
// (handed over again after a restart, or not acknowledged before a
// session ended) that is there already: by its id, or, from a server
// without ids, as the first.
func (s *remote) addRecent(d netclient.Delivery) bool {
	if d.Current && len(s.recent) > 0 {
		if r := s.recent[0]; r.Value == d.Value && (r.ID == d.ID || r.ID == 0 || d.ID == 0) {
			return false
		}
		if d.ID != 0 && slices.ContainsFunc(s.sameStore(), func(r recentAd) bool { return r.ID == d.ID }) {
			return false
		}
	}
	s.recent = append([]recentAd{{ID: d.ID, Value: d.Value}}, s.recent[:min(len(s.recent), recentMax-1)]...)
	s.fromFile = min(s.fromFile, len(s.recent)-1)
	return true
}

func (s *remote) recentKey() string { return recentKey(s.conf.Addr) }

// sameStore is the Recent ads known to come from the store the server
// has now, whose ids mean what the server's do: those of this run, and
// those kept from the last when their epoch is the one the server told
// (hello comes before any item).
func (s *remote) sameStore() []recentAd {
	if s.fromFile == 0 {
		return s.recent
	}
	if s.opts.Identity != nil && s.recentEpoch != "" {
		if m, ok := s.opts.Identity.Marks(s.recentKey()); ok && m.Epoch == s.recentEpoch {
			return s.recent
		}
	}
	return s.recent[:len(s.recent)-s.fromFile]
}

// key says which server this is, whatever it is called (serverKey).
func (s *remote) key() string { return serverKey(s.conf.Addr) }

// source is where the server's items come from, for the presenter.
func (s *remote) source() source { return source{key: s.key(), label: s.label()} }

// loadRecent fills Recent ads with those kept from the last run. A file
// that cannot be read costs the old list and one warning, nothing more.
func (s *remote) loadRecent() {
	if s.opts.StateDir == "" {
		return
	}
	l, err := loadRecent(s.opts.StateDir, s.recentKey())
	if err != nil {
		if !errors.Is(err, errNoRecent) {
			s.log.Warn("Recent ads from the last run are lost: the file is unreadable and will be replaced", "err", err)
		}
		return
	}
	s.recent, s.fromFile, s.recentEpoch = l.Ads, len(l.Ads), l.Epoch
	s.log.Debug("recent ads from the last run", "count", len(l.Ads), "key", l.Server, "epoch", l.Epoch)
}

// checkEpoch compares, once connected, the server store's epoch with the
// one the kept ads came from: another store's ads (a wiped store,
// another server at the same address) leave the menu.
func (s *remote) checkEpoch() {
	if s.opts.Identity == nil {
		return
	}
	m, ok := s.opts.Identity.Marks(s.recentKey())
	if !ok || m.Epoch == "" || m.Epoch == s.recentEpoch {
		return
	}
	if s.recentEpoch != "" && s.fromFile > 0 {
		s.log.Info("the server's store is not the one the Recent ads came from: they leave the menu",
			"epoch", m.Epoch, "was", s.recentEpoch, "dropped", s.fromFile)
		s.recent = slices.Clone(s.recent[:len(s.recent)-s.fromFile])
	}
	s.fromFile = 0
	s.recentEpoch = m.Epoch
	s.recentDirty = true
	s.saveRecent()
}

// saveRecent writes Recent ads to the state directory if they changed.
func (s *remote) saveRecent() {
	if !s.recentDirty || s.opts.StateDir == "" {
		return
	}
	s.recentDirty = false
	l := recentList{Server: s.recentKey(), Epoch: s.recentEpoch, Ads: s.recent}
	if err := saveRecent(s.opts.StateDir, l); err != nil {
		s.log.Warn("cannot keep Recent ads for the next run", "err", err)
		return
	}
	s.log.Debug("recent ads saved", "count", len(s.recent))
}

// connectedBefore reports whether this hark has ever connected to the
// server, as far as its identity remembers.
func (s *remote) connectedBefore() bool {
	if s.opts.Identity == nil {
		return false
	}
	_, ok := s.opts.Identity.Marks(s.recentKey())
	return ok
}

// problem is what keeps hark from connecting that a person must fix (a
// setting, a token): a line for the status and a popup's body; "" when
// there is none, or retrying may fix it.
func (s *remote) problem() (line, body string) {
	if s.caErr != nil {
		var ce *caError
		if errors.As(s.caErr, &ce) {
			return ce.status(), s.caErr.Error()
		}
		return "Cannot use ca_file: see hark's log", s.caErr.Error()
	}
	if s.state.Connected {
		return "", ""
	}
	h := hint(s.state.Err)
	return h, h
}

// status is the server's status line. It changes only with the state:
// not every host tells when the menu opens, and each change makes the
// host re-read the whole menu (see systrayUI.render).
func (s *remote) status() string {
	switch {
	case s.state.Connected:
		return "Connected to " + s.state.Addr
	case s.caErr != nil:
		line, _ := s.problem()
		return line
	case s.stateAt.IsZero():
		return "Connecting to " + s.conf.Addr + "…"
	}
	if h := hint(s.state.Err); h != "" {
		// What to fix: the next try is minutes away, and Reconnect now
		// tries at once.
		return h
	}
	return "Offline, reconnecting to " + s.conf.Addr + "…"
}

// nextTry is when the session tries again, while it is offline for a
// reason that retrying may fix.
func (s *remote) nextTry() (time.Time, bool) {
	if s.state.Connected || s.stateAt.IsZero() || s.caErr != nil || hint(s.state.Err) != "" {
		return time.Time{}, false
	}
	return s.stateAt.Add(s.state.RetryIn), true
}

// sameSession reports whether a session with conf would be the one s
// has: same server, files and name. (Popup toggles need no new one.)
func (s *remote) sameSession(conf serverConf) bool {
	return s.conf.Addr == conf.Addr && s.conf.CAFile == conf.CAFile && s.conf.TokenFile == conf.TokenFile && s.conf.Name == conf.Name
}
