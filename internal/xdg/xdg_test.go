package xdg_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/harkapp/hark/internal/xdg"
)

var dirs = []struct {
	env      string
	fallback []string // under $HOME
	get      func() (string, error)
}{
	{"XDG_CONFIG_HOME", []string{".config"}, xdg.ConfigHome},
	{"XDG_STATE_HOME", []string{".local", "state"}, xdg.StateHome},
	{"XDG_DATA_HOME", []string{".local", "share"}, xdg.DataHome},
}

func TestBaseDirs(t *testing.T) {
	for _, d := range dirs {
		t.Run(d.env, func(t *testing.T) {
			home := t.TempDir()
			fallback := filepath.Join(append([]string{home}, d.fallback...)...)
			for _, c := range []struct{ val, want string }{
				{"/srv/xdg", "/srv/xdg"},
				{"/srv/xdg/", "/srv/xdg"},
				{"", fallback},
				// The spec: a relative path is invalid and ignored.
				{"relative/dir", fallback},
				{"./x", fallback},
				{"~/x", fallback},
			} {
				t.Setenv("HOME", home)
				t.Setenv(d.env, c.val)
				got, err := d.get()
				if err != nil || got != c.want {
					t.Errorf("with %s=%q: %q, %v; want %q", d.env, c.val, got, err, c.want)
				}
			}
		})
	}
}

// Without a home, the error names what to set for this directory; an
// absolute variable needs no home at all.
func TestBaseDirsWithoutHome(t *testing.T) {
	for _, d := range dirs {
		t.Run(d.env, func(t *testing.T) {
			for _, home := range []string{"", "relative-home"} {
				t.Setenv("HOME", home)
				t.Setenv(d.env, "")
				got, err := d.get()
				if !errors.Is(err, xdg.ErrNoHome) || !strings.Contains(err.Error(), "set HOME or "+d.env) {
					t.Errorf("HOME=%q: %q, %v; want ErrNoHome saying set HOME or %s", home, got, err, d.env)
				}
				t.Setenv(d.env, "/abs")
				if got, err := d.get(); err != nil || got != "/abs" {
					t.Errorf("HOME=%q, %s=/abs: %q, %v", home, d.env, got, err)
				}
			}
		})
	}
}

func TestRuntimeDir(t *testing.T) {
	for _, c := range []struct {
		val string
		ok  bool
	}{{"/run/user/1000", true}, {"", false}, {"run/user/1000", false}} {
		t.Setenv("XDG_RUNTIME_DIR", c.val)
		if d, ok := xdg.RuntimeDir(); ok != c.ok || (ok && d != c.val) {
			t.Errorf("XDG_RUNTIME_DIR=%q: %q, %v; want ok=%v", c.val, d, ok, c.ok)
		}
	}
}
