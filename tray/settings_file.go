package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
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
// reports whether the settings changed, so that the servers must be
// applied (applyServers). A broken file keeps the settings in use, and
// says why; a file that is gone keeps them too (an editor may be
// replacing it).
func (a *app) reload(st fileStamp) (changed bool) {
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
	if s.equal(old) {
		a.log.Debug("the settings file changed, its settings did not", "file", path)
		return false
	}
	a.log.Info("settings applied from the file", "file", path,
		"random", s.Random, "classified", s.Classified, "do_not_disturb", s.DoNotDisturb, "servers", len(s.Servers))
	if s.DoNotDisturb != old.DoNotDisturb {
		for _, p := range a.pres.setDND(s.DoNotDisturb) {
			a.popup(p)
		}
		a.alertAll()
	}
	if a.opts.Server != "" && (s.Server != old.Server || !slices.EqualFunc(s.Servers, old.Servers, ServerSettings.equal)) {
		a.log.Info("the --server flag beats the file's servers: staying with "+a.opts.Server, "file_server", s.Server, "file_servers", len(s.Servers))
	}
	return true
}

// firstRunHelp explains, once per run, what to do when hark cannot
// connect on its first try to a server it has never connected to: on a
// first run, hark's default server is most likely not there. A problem
// with a hint of its own (a token, TLS) is explained by alert instead.
// A list of servers is no first run: each one's problem is its own.
func (a *app) firstRunHelp(s *remote) {
	if s.helped || a.several() {
		return
	}
	if s.state.Connected || s.live {
		s.helped = true
		return
	}
	if s.state.Err == nil {
		return
	}
	s.helped = true
	if line, _ := s.problem(); line != "" {
		return
	}
	if !a.firstRun && s.connectedBefore() {
		return
	}
	body := fmt.Sprintf("Nothing answers at %s. To use another server, set server = \"HOST:PORT\" in %s (menu: Edit settings…). "+
		"If the server needs a token, run hark login. To try hark without a server, run hark --demo.", s.conf.Addr, a.opts.ConfigPath)
	a.log.Warn("cannot connect: " + body)
	if !a.settings.DoNotDisturb {
		a.popup(Popup{Title: "hark cannot reach its server", Body: body, Group: problemGroup})
	}
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
	created, err := createConfig(path, a.settings, a.servers[0].conf.Addr)
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
