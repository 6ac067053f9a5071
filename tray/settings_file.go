package tray

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// watchConfig sends the settings file's stamp to edited when it changed
// since start (or since the last one sent), once nothing has changed it
// for configSettle: an editor caught halfway through writing is not
// read. It returns when ctx ends. What is hark's own write, the app
// goroutine tells (reload).
//
// The kernel says when the file's directory changes (inotify, through
// fsnotify), so an idle tray never wakes for it. Without inotify (its
// per-user limit reached, say), the file is looked at every configPoll.
func (a *app) watchConfig(ctx context.Context, start fileStamp, edited chan<- fileStamp) {
	path := a.opts.ConfigPath
	if path == "" {
		return
	}
	w, err := a.newWatcher()
	if err != nil {
		a.log.Info("applying settings file edits by looking at it every second", "file", path, "reason", err)
		a.pollConfig(ctx, start, edited)
		return
	}
	defer w.Close()
	settle := cmp.Or(a.configPoll, configSettle)
	timer := time.NewTimer(settle)
	timer.Stop()
	defer timer.Stop()
	watched := map[string]bool{}
	// rewatch watches the directories that hold what a user edits: the
	// file's, or the nearest one that exists until it does (the file
	// may come later), and the one a symbolic link at path points into
	// (a settings file kept in a dotfiles repository is edited there).
	rewatch := func() {
		want := configDirs(path)
		for _, d := range want {
			if watched[d] {
				continue
			}
			if err := w.Add(d); err != nil {
				a.log.Warn("cannot watch for settings file edits here: they apply after a restart", "dir", d, "err", err)
			}
			watched[d] = true // tried: not again each time
		}
		for d := range watched {
			if !slices.Contains(want, d) {
				_ = w.Remove(d) // gone with the directory, maybe
				delete(watched, d)
			}
		}
	}
	rewatch()
	// An edit made before the watch began made no event: look once.
	timer.Reset(settle)
	sent := start
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-w.Events:
			if !ok {
				return
			}
			timer.Reset(settle) // a quiet moment after the last change
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			// An overflowed queue: events were lost, so look.
			a.log.Debug("settings file watch", "err", err)
			timer.Reset(settle)
		case <-timer.C:
			rewatch()
			if !sendStamp(ctx, edited, stampOf(path), &sent) {
				return
			}
		}
	}
}

// configDirs is the directories watchConfig watches for path.
func configDirs(path string) []string {
	var dirs []string
	for d := filepath.Dir(path); ; {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			dirs = append(dirs, d)
			break
		}
		up := filepath.Dir(d)
		if up == d {
			break
		}
		d = up
	}
	if target, err := filepath.EvalSymlinks(path); err == nil {
		if d := filepath.Dir(target); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// pollConfig is watchConfig by looking at the file every configPoll: a
// change is sent once the file has held still for one look.
func (a *app) pollConfig(ctx context.Context, start fileStamp, edited chan<- fileStamp) {
	t := time.NewTicker(cmp.Or(a.configPoll, configPoll))
	defer t.Stop()
	sent, prev := start, start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := stampOf(a.opts.ConfigPath)
		if !cur.same(prev) {
			prev = cur
			continue
		}
		if !sendStamp(ctx, edited, cur, &sent) {
			return
		}
	}
}

// sendStamp sends cur to edited unless it is the one sent last (*sent),
// and reports false when ctx ended first.
func sendStamp(ctx context.Context, edited chan<- fileStamp, cur fileStamp, sent *fileStamp) bool {
	if cur.same(*sent) {
		return true
	}
	select {
	case edited <- cur:
		*sent = cur
		return true
	case <-ctx.Done():
		return false
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
