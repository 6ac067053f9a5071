package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// watchConfig looks at the settings file every configPoll and sends its
// stamp to edited when it changed since start (or since the last one
// sent), once it has held still for one look: an editor caught halfway
// through writing is not read. It returns when ctx ends. What is hark's
// own write, the app goroutine tells (reload).
func (a *app) watchConfig(ctx context.Context, start fileStamp, edited chan<- fileStamp) {
	path := a.opts.ConfigPath
	if path == "" {
		return
	}
	poll := a.configPoll
	if poll <= 0 {
		poll = configPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	sent, prev := start, start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := stampOf(path)
		if !cur.same(prev) {
			prev = cur
			continue
		}
		if cur.same(sent) {
			continue
		}
		select {
		case edited <- cur:
			sent = cur
		case <-ctx.Done():
			return
		}
	}
}

// reload applies the settings file after it changed on disk (st), and
// reports whether the session must start again (another server, ca_file
// or token_file). A broken file keeps the settings in use, and says why;
// a file that is gone keeps them too (an editor may be replacing it).
func (a *app) reload(st fileStamp) (restart bool) {
	path := a.opts.ConfigPath
	if st.same(a.configStamp) {
		return false // what hark wrote itself
	}
	a.configStamp = st
	if !st.exists() {
		a.log.Info("the settings file is gone: the settings in use stay", "file", path)
		return false
	}
	s, err := LoadSettings(path)
	if err != nil {
		a.saveable = false // never overwrite a file being edited
		msg := err.Error()
		var ce *ConfigError
		if errors.As(err, &ce) {
			msg = fmt.Sprintf("config file %s: %v", ce.Path, ce.Err)
		}
		msg += " (hark goes on with the settings it has, and saves no change, until the file is fixed)"
		a.log.Error(msg)
		a.popup(Popup{Title: "hark's settings file is broken", Body: msg, Group: configGroup})
		return false
	}
	if !a.saveable {
		a.log.Info("the settings file is fixed: its settings apply", "file", path)
	}
	a.saveable = true
	old := a.settings
	a.settings = s
	if s == old {
		a.log.Debug("the settings file changed, its settings did not", "file", path)
		return false
	}
	a.log.Info("settings applied from the file", "file", path,
		"random", s.Random, "classified", s.Classified, "do_not_disturb", s.DoNotDisturb)
	if s.Random != old.Random {
		a.pres.setKind(wire.KindRandom, s.Random)
	}
	if s.Classified != old.Classified {
		a.pres.setKind(wire.KindClassified, s.Classified)
	}
	if s.DoNotDisturb != old.DoNotDisturb {
		for _, p := range a.pres.setDND(s.DoNotDisturb) {
			a.popup(p)
		}
		a.alert()
	}
	if s.Server != old.Server && a.opts.Server != "" {
		a.log.Info("the --server flag beats the file's server: staying with "+a.opts.Server, "file_server", s.Server)
	}
	return a.serverFor(s) != a.server || s.CAFile != old.CAFile || s.TokenFile != old.TokenFile
}

// newServer takes in the settings' server, ca_file and token_file for a
// new session: what was known of the last server's state goes, and its
// Recent ads are kept for it while the new one's are read.
func (a *app) newServer() {
	was := a.server
	a.saveRecent()
	a.server = a.serverFor(a.settings)
	a.resolveFiles()
	a.state, a.stateAt, a.alerted = netclient.State{}, time.Time{}, ""
	if a.server == was {
		return
	}
	a.live, a.unread, a.latest = false, false, ""
	a.recent, a.fromFile, a.recentEpoch, a.recentDirty = nil, 0, "", false
	a.loadRecent()
}

// firstRunHelp explains, once per run, what to do when hark cannot
// connect on its first try to a server it has never connected to: on a
// first run, hark's default server is most likely not there. A problem
// with a hint of its own (a token, TLS) is explained by alert instead.
func (a *app) firstRunHelp() {
	if a.helped {
		return
	}
	if a.state.Connected || a.live {
		a.helped = true
		return
	}
	if a.state.Err == nil {
		return
	}
	a.helped = true
	if line, _ := a.problem(); line != "" {
		return
	}
	if !a.firstRun && a.connectedBefore() {
		return
	}
	body := fmt.Sprintf("Nothing answers at %s. To use another server, set server = \"HOST:PORT\" in %s (menu: Edit settings…). "+
		"If the server needs a token, run hark login. To try hark without a server, run hark --demo.", a.server, a.opts.ConfigPath)
	a.log.Warn("cannot connect: " + body)
	if !a.settings.DoNotDisturb {
		a.popup(Popup{Title: "hark cannot reach its server", Body: body, Group: problemGroup})
	}
}

// connectedBefore reports whether this hark has ever connected to its
// server, as far as its identity remembers.
func (a *app) connectedBefore() bool {
	if a.opts.Identity == nil {
		return false
	}
	_, ok := a.opts.Identity.Marks(a.recentKey())
	return ok
}

// editSettings opens the settings file in the user's editor, creating it
// first, with the settings in use and the others commented, when there is
// none. The editor is not waited for: hark applies the file when saved.
func (a *app) editSettings() {
	path := a.opts.ConfigPath
	if path == "" {
		return
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	created, err := createConfig(path, a.settings, a.server)
	if err != nil {
		a.log.Error(err.Error())
		a.popup(Popup{Title: "Cannot create hark's settings file", Body: err.Error(), Group: configGroup})
		return
	}
	if created {
		a.configStamp = stampOf(path)
		a.log.Info("settings file created", "file", path)
	}
	if err := a.openFile(path); err != nil {
		msg := fmt.Sprintf("No editor could be started (%v): open %s in any text editor; hark applies it when you save.", err, path)
		a.log.Warn(msg)
		a.popup(Popup{Title: "Edit hark's settings", Body: msg, Group: configGroup})
		return
	}
	a.log.Info("opening the settings file in the editor", "file", path)
}

// xdgOpen opens path with xdg-open, the desktop's choice of application,
// and returns once it started: the path is an argument, never shell
// text. A failure after starting (no application for the file) is
// logged.
func xdgOpen(log *slog.Logger) func(path string) error {
	return func(path string) error {
		cmd := exec.Command("xdg-open", path)
		if err := cmd.Start(); err != nil {
			return err
		}
		go func() {
			if err := cmd.Wait(); err != nil {
				log.Warn("xdg-open could not open the settings file: open it in any text editor", "file", path, "err", err)
			}
		}()
		return nil
	}
}
