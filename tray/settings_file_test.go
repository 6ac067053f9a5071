package tray

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/fsnotify/fsnotify"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/wire"
)

// fastPoll makes the fixture's app look at its settings file often.
func fastPoll(f *fixture) { f.a.configPoll = 20 * time.Millisecond }

// editConfig writes the settings file as a user's editor would.
func (f *fixture) editConfig(content string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(f.opts.ConfigPath), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.opts.ConfigPath, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// opener records the paths the app asks to open, and fails with err.
type opener struct {
	mu    sync.Mutex
	paths []string
	err   error
}

func (o *opener) open(path string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.paths = append(o.paths, path)
	return o.err
}

func (o *opener) calls() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.paths)
}

func TestConfigTemplate(t *testing.T) {
	text := configTemplate(Settings{Random: true, Classified: false, DoNotDisturb: true}, "example.org:6789")
	if !strings.HasPrefix(text, configHeader) {
		t.Fatalf("the template does not start with the header:\n%s", text)
	}
	for _, line := range []string{`# server = "example.org:6789"`, `# ca_file = "ca.pem"`, `# token_file = "token"`,
		"random = true", "classified = false", "do_not_disturb = true"} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("no line %q in:\n%s", line, text)
		}
	}
	path := writeConfig(t, text)
	s, err := LoadSettings(path)
	if err != nil {
		t.Fatalf("the template does not load: %v\n%s", err, text)
	}
	if want := (Settings{Random: true, DoNotDisturb: true}); !s.equal(want) {
		t.Fatalf("the template loads as %+v, want %+v", s, want)
	}
	var m map[string]any
	if _, err := toml.Decode(text, &m); err != nil || len(m) != 3 {
		t.Fatalf("the template decodes to %v, %v: want three settings", m, err)
	}
}

func TestCreateConfigLeavesAFileAlone(t *testing.T) {
	path := writeConfig(t, "random = false\n")
	created, err := createConfig(path, DefaultSettings(), "")
	if err != nil || created {
		t.Fatalf("createConfig over a file: %v, %v", created, err)
	}
	if raw, _ := os.ReadFile(path); string(raw) != "random = false\n" {
		t.Fatalf("the file was rewritten:\n%s", raw)
	}
}

func TestAppEditSettingsCreatesAndOpens(t *testing.T) {
	f := newFixture(t, nil)
	o := &opener{}
	f.a.openFile = o.open
	fastPoll(f)
	f.start()
	f.connected()
	if _, err := os.Stat(f.opts.ConfigPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a settings file before asking for one: %v", err)
	}
	f.act(actClassified) // saves the file: not a new one
	f.awaitView("ads unchecked", func(v view) bool { return !v.Classified })
	if err := os.Remove(f.opts.ConfigPath); err != nil {
		t.Fatal(err)
	}

	f.act(actEdit)
	f.logs.await(t, "the editor started", func(r logRecord) bool {
		return strings.HasPrefix(r.Msg, "opening the settings file")
	})
	if got := o.calls(); !slices.Equal(got, []string{f.opts.ConfigPath}) {
		t.Fatalf("opened %q, want %q", got, f.opts.ConfigPath)
	}
	raw, err := os.ReadFile(f.opts.ConfigPath)
	if err != nil {
		t.Fatalf("no settings file created: %v", err)
	}
	if want := configTemplate(Settings{Random: true}, f.addr); string(raw) != want {
		t.Fatalf("created:\n%s\nwant:\n%s", raw, want)
	}

	// Again: the file (edited meanwhile) is opened as it is.
	f.editConfig(string(raw) + "# mine\n")
	f.act(actEdit)
	f.logs.await(t, "the editor started again", func(r logRecord) bool {
		return strings.HasPrefix(r.Msg, "opening the settings file")
	})
	if got := o.calls(); len(got) != 2 {
		t.Fatalf("opened %q, want the file twice", got)
	}
	if again, _ := os.ReadFile(f.opts.ConfigPath); string(again) != string(raw)+"# mine\n" {
		t.Fatalf("the existing file was rewritten:\n%s", again)
	}
	if p := f.popups.all(); len(p) != 0 {
		t.Fatalf("popups: %+v", p)
	}
}

func TestAppEditSettingsWithoutAnEditor(t *testing.T) {
	f := newFixture(t, nil)
	f.a.openFile = (&opener{err: exec.ErrNotFound}).open
	f.start()
	f.connected()
	f.act(actEdit)
	p := f.popups.next(t, "the popup saying where the file is")
	if p.Title != "Edit hark's settings" || !strings.Contains(p.Body, f.opts.ConfigPath) {
		t.Fatalf("popup %+v; want it to name %s", p, f.opts.ConfigPath)
	}
	if _, err := os.Stat(f.opts.ConfigPath); err != nil {
		t.Fatalf("the file was not created: %v", err)
	}
}

// The real launcher runs xdg-open with the path as its argument: a
// stand-in on PATH records what it was given.
func TestXDGOpenGetsThePath(t *testing.T) {
	bin := t.TempDir()
	out := filepath.Join(t.TempDir(), "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > '" + out + "'\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	path := filepath.Join(t.TempDir(), "a dir; $(touch x)", "config.toml")
	f := newFixture(t, nil)
	if err := xdgOpen(f.opts.Logger)(path); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testTimeout)
	for {
		raw, err := os.ReadFile(out)
		if err == nil {
			if string(raw) != path+"\n" {
				t.Fatalf("xdg-open got %q, want %q", raw, path)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("xdg-open was not run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the reaping goroutine ends
	t.Setenv("PATH", t.TempDir())
	if err := xdgOpen(f.opts.Logger)(path); !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("without xdg-open: %v, want ErrNotFound", err)
	}
}

func TestAppReloadsToggles(t *testing.T) {
	f := newFixture(t, nil)
	fastPoll(f)
	f.start()
	f.connected()
	f.editConfig("random = false\ndo_not_disturb = true\n")
	f.awaitView("the edit applied", func(v view) bool { return !v.Random && v.Classified && v.DND })
	f.publish(wire.KindClassified, "kept back")
	f.awaitView("the ad in do not disturb", recentIs("kept back"))

	// A toggle from the menu saves the file: hark does not take its own
	// write for an edit (no second "applied"), and the file says it.
	f.act(actDND)
	f.nextPopup(Popup{Title: "1 item arrived while do not disturb was on", Body: "1 classified ad. The latest are in hark's menu."})
	f.awaitView("do not disturb off", func(v view) bool { return !v.DND && !v.Random })
	if s := f.savedSettings(); !s.equal((Settings{Classified: true})) {
		t.Fatalf("saved %+v", s)
	}
	// An edit after hark's write that changes nothing: once it is seen,
	// hark's own write was looked at before it (the file is watched in
	// order), without a sleep.
	f.editConfig("random = false\nclassified = true\ndo_not_disturb = false\n# looked at\n")
	f.logs.await(t, "the comment-only edit seen", func(r logRecord) bool {
		return r.Msg == "the settings file changed, its settings did not"
	})
	applied := 0
	for _, r := range f.logs.all() {
		if r.Msg == "settings applied from the file" {
			applied++
		}
	}
	if applied != 1 {
		t.Fatalf("settings applied from the file %d times, want once", applied)
	}
	// Still off: numbers make no popup, ads do.
	f.number()
	f.publish(wire.KindClassified, "after the edit")
	f.nextPopup(Popup{Title: "New classified ad", Body: "after the edit"})
}

func TestAppReloadBrokenEditKeepsSettings(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		if err := SaveSettings(o.ConfigPath, Settings{Random: false, Classified: true}); err != nil {
			t.Fatal(err)
		}
	})
	fastPoll(f)
	f.start()
	f.connected()
	broken := "random = true\nclassified = = false\n"
	f.editConfig(broken)
	p := f.popups.next(t, "the popup about the broken edit")
	if p.Title != "hark's settings file is broken" || !strings.Contains(p.Body, f.opts.ConfigPath) ||
		!strings.Contains(p.Body, "line 2") {
		t.Fatalf("popup %+v; want it to name %s and line 2", p, f.opts.ConfigPath)
	}
	// The settings in use stay: numbers make no popup.
	f.number()
	f.publish(wire.KindClassified, "still on")
	f.nextPopup(Popup{Title: "New classified ad", Body: "still on"})
	if v := f.views.all(); v[len(v)-1].Random {
		t.Fatalf("numbers on after a broken edit: %s", formatView(v[len(v)-1]))
	}
	// A toggle leaves the file being edited alone.
	f.act(actDND)
	f.awaitView("do not disturb", func(v view) bool { return v.DND })
	if raw, _ := os.ReadFile(f.opts.ConfigPath); string(raw) != broken {
		t.Fatalf("the broken file was overwritten:\n%s", raw)
	}
	// Fixed: it applies, and toggles save again.
	f.editConfig("random = true\nclassified = false\n")
	f.awaitView("the fixed file applied", func(v view) bool { return v.Random && !v.Classified && !v.DND })
	f.act(actClassified)
	f.awaitView("ads on", func(v view) bool { return v.Classified })
	if s := f.savedSettings(); !s.equal(DefaultSettings()) {
		t.Fatalf("saved %+v", s)
	}
}

func TestAppReloadSwitchesServer(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		if err := SaveSettings(o.ConfigPath, Settings{Server: f.addr, Random: true, Classified: true}); err != nil {
			t.Fatal(err)
		}
		o.Server = ""
	})
	fastPoll(f)
	f.start()
	f.connected()
	f.publish(wire.KindClassified, "from the first")
	f.nextPopup(Popup{Title: "New classified ad", Body: "from the first"})

	second := startServer(t)
	addr2 := second.Addr().String()
	f.editConfig("server = \"" + addr2 + "\"\n")
	f.awaitView("connected to the second server", func(v view) bool {
		return v.Status == "Connected to "+addr2 && len(v.Recent) == 0
	})
	if _, _, err := second.Publish(t.Context(), wire.KindClassified, "from the second"); err != nil {
		t.Fatal(err)
	}
	f.nextPopup(Popup{Title: "New classified ad", Body: "from the second"})
	f.publish(wire.KindClassified, "the first is left")
	f.awaitView("the second's ad", recentIs("from the second"))
	if p := f.popups.all(); len(p) != 2 {
		t.Fatalf("popups %+v", p)
	}
}

func TestAppReloadServerFlagWins(t *testing.T) {
	f := newFixture(t, nil)
	fastPoll(f)
	f.start()
	f.connected()
	f.editConfig("server = \"127.0.0.1:1\"\nrandom = false\n")
	f.awaitView("the toggle applied", func(v view) bool { return !v.Random })
	f.logs.await(t, "the flag winning", func(r logRecord) bool { return strings.Contains(r.Msg, "--server flag beats") })
	f.publish(wire.KindClassified, "still here")
	f.nextPopup(Popup{Title: "New classified ad", Body: "still here"})
	if v := f.views.all(); v[len(v)-1].Status != "Connected to "+f.addr {
		t.Fatalf("view %s", formatView(v[len(v)-1]))
	}
}

func TestAppFirstRunHelp(t *testing.T) {
	var dead string
	f := newFixture(t, func(f *fixture, o *Options) {
		dead = linetest.ClosedAddr(t)
		o.Server = ""
		o.DefaultServer = dead
	})
	f.start()
	p := f.popups.next(t, "the first-run help")
	if p.Title != "hark cannot reach its server" {
		t.Fatalf("popup %+v", p)
	}
	for _, want := range []string{dead, f.opts.ConfigPath, "server = ", "hark login", "hark --demo", "Edit settings"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("the help does not say %q: %s", want, p.Body)
		}
	}
	f.awaitRetries(3, "connection refused")
	f.act(actOpened)
	f.awaitView("the click taken", func(v view) bool { return strings.HasPrefix(v.Status, "Offline") })
	if p := f.popups.all(); len(p) != 1 {
		t.Fatalf("popups %+v, want the help once", p)
	}
}

// A server hark has connected to before, which is down at start, is no
// first run: no help.
func TestAppNoFirstRunHelpForAKnownServer(t *testing.T) {
	f := newFixture(t, withIdentity)
	f.start()
	f.connected()
	f.cancel()
	if err := f.awaitEnd("its context was cancelled"); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := SaveSettings(f.opts.ConfigPath, DefaultSettings()); err != nil {
		t.Fatal(err)
	}
	f.startAgain()
	f.awaitRetries(2, "connection refused")
	f.act(actOpened)
	f.awaitView("offline", func(v view) bool { return strings.HasPrefix(v.Status, "Offline") })
	if p := f.popups.all(); len(p) != 0 {
		t.Fatalf("popups %+v", p)
	}
}

// An edit applies wherever the file really is: a settings file that is a
// symbolic link (into a dotfiles repository) is edited at its target,
// in a directory hark did not start in.
func TestAppReloadsThroughASymlink(t *testing.T) {
	dotfiles := t.TempDir()
	target := filepath.Join(dotfiles, "hark.toml")
	f := newFixture(t, func(f *fixture, o *Options) {
		if err := os.WriteFile(target, []byte("random = true\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(o.ConfigPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, o.ConfigPath); err != nil {
			t.Fatal(err)
		}
	})
	fastPoll(f)
	f.start()
	f.connected()
	if err := os.WriteFile(target, []byte("random = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.awaitView("the edit at the link's target applied", func(v view) bool { return !v.Random })
}

// On a first run the settings directory may not exist: a file made
// later, directory and all, still applies.
func TestAppReloadsAFileMadeLater(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *Options) {
		o.ConfigPath = filepath.Join(t.TempDir(), "not", "yet", "config.toml")
	})
	fastPoll(f)
	f.start()
	f.connected()
	f.editConfig("classified = false\n") // makes the directories too
	f.awaitView("the new file applied", func(v view) bool { return !v.Classified && v.Random })
	// Its directory is watched from then on.
	f.editConfig("classified = false\nrandom = false\n")
	f.awaitView("the next edit applied", func(v view) bool { return !v.Classified && !v.Random })
}

// Without inotify (its per-user limit reached), hark looks at the file
// instead, and edits still apply.
func TestAppReloadsWithoutInotify(t *testing.T) {
	f := newFixture(t, nil)
	fastPoll(f)
	f.a.newWatcher = func() (*fsnotify.Watcher, error) { return nil, errors.New("too many open files") }
	f.start()
	f.connected()
	f.logs.await(t, "the fallback said", func(r logRecord) bool {
		return r.Msg == "applying settings file edits by looking at it every second" && r.Attrs["reason"] == "too many open files"
	})
	f.editConfig("random = false\n")
	f.awaitView("the edit applied", func(v view) bool { return !v.Random && v.Classified })
}

// An edit made after hark read the file but before its watch began (a
// slow start) made no event: it applies all the same.
func TestAppReloadsAnEditBeforeTheWatch(t *testing.T) {
	f := newFixture(t, nil)
	fastPoll(f)
	f.editConfig("random = false\n") // newApp has read the file (missing)
	f.start()
	f.awaitView("the early edit applied", func(v view) bool { return !v.Random && v.Classified })
}
