package desktoptest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// Secret Service names, for tests that check the keyring directly.
const (
	SecretsName = "org.freedesktop.secrets"
	secretsPath = dbus.ObjectPath("/org/freedesktop/secrets")
)

// KeyringPassword is the password of the "login" keyring that
// StartSecretService creates, for tests that lock and unlock it.
const KeyringPassword = "hark-test-keyring"

// keyringTools is what StartSecretService and StartKeyringBus run.
var keyringTools = []tool{
	{"dbus-daemon", "dbus-daemon", onPath("dbus-daemon")},
	{"gnome-keyring-daemon", "gnome-keyring", onPath("gnome-keyring-daemon")},
	{"sh", "dash", onPath("sh")},
}

// MissingKeyring is like Missing for the Secret Service tools.
func MissingKeyring() []string {
	var out []string
	for _, tl := range missingKeyringTools() {
		out = append(out, fmt.Sprintf("%s (%s)", tl.name, tl.pkg))
	}
	return out
}

func missingKeyringTools() []tool {
	if runtime.GOOS != "linux" {
		return []tool{{name: "a Linux desktop (desktoptest runs only on Linux)"}}
	}
	var m []tool
	for _, tl := range keyringTools {
		if _, err := tl.find(); err != nil {
			m = append(m, tl)
		}
	}
	return m
}

// RequireKeyring is like Require for tests that need only a session bus
// and a Secret Service (StartKeyringBus, StartSessionBus and
// StartSecretService): it skips when gnome-keyring-daemon or dbus-daemon
// is missing, naming the packages, and fails instead when CI=true, where
// a missing tool is a broken setup.
func RequireKeyring(t testing.TB) {
	t.Helper()
	m := missingKeyringTools()
	if len(m) == 0 {
		return
	}
	if runtime.GOOS != "linux" {
		t.Skipf("desktoptest: %s", m[0].name)
	}
	var names, pkgs []string
	for _, tl := range m {
		names = append(names, fmt.Sprintf("%s (%s)", tl.name, tl.pkg))
		pkgs = append(pkgs, tl.pkg)
	}
	msg := fmt.Sprintf("desktoptest: missing %s; install with: apt-get install --no-install-recommends %s",
		strings.Join(names, ", "), strings.Join(pkgs, " "))
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true, so this is a failure, not a skip)", msg)
	}
	t.Skip(msg)
}

// StartSecretService runs gnome-keyring-daemon (its secrets component
// only) on the desktop's session bus and returns once it serves
// org.freedesktop.secrets with an unlocked "login" keyring, password
// KeyringPassword, as the "default" alias: what a user who logged in to a
// GNOME session has. The keyring lives in the desktop's XDG_DATA_HOME;
// cleanup stops the daemon with the rest of the desktop. Call
// RequireKeyring first to skip when gnome-keyring is not installed.
//
// Readiness is an event: the daemon takes the bus name only once its
// secrets component is up, and we watch NameOwnerChanged for it. Call it
// once per desktop.
func (d *Desktop) StartSecretService(ctx context.Context) error {
	if m := MissingKeyring(); len(m) > 0 {
		return fmt.Errorf("desktoptest: cannot start a Secret Service, missing %s", strings.Join(m, ", "))
	}
	// --unlock reads the login password from stdin until EOF and
	// creates the login keyring with it if there is none, making it the
	// default collection. spawn gives no stdin, so a shell moves the
	// password pipe (fd 3) to it and execs the daemon: the daemon keeps
	// the shell's pid, process group and death signal. --foreground keeps
	// it our child (--daemonize would fork away); with the
	// secrets component alone it starts no ssh or pkcs11 agent.
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	_, err = w.WriteString(KeyringPassword) // far below the pipe buffer: cannot block
	w.Close()
	if err != nil {
		return fmt.Errorf("write keyring password: %w", err)
	}
	// Not startDaemon: it hands no extra files to the child.
	watch, err := watchName(ctx, d.conn, SecretsName)
	if err != nil {
		return err
	}
	defer watch.close()
	p, err := d.spawn("gnome-keyring-daemon", d.env, []*os.File{r},
		"sh", "-c", `exec gnome-keyring-daemon --foreground --components=secrets --unlock <&3 3<&-`)
	if err != nil {
		return err
	}
	owner, err := watch.wait(ctx, p.done, anyOwner)
	if err != nil {
		if ctx.Err() == nil {
			select {
			case <-p.done:
				return p.exitErr()
			default:
			}
		}
		return fmt.Errorf("gnome-keyring-daemon did not take %s: %w (see %s)", SecretsName, err, p.log)
	}
	if err := checkDefaultUnlocked(ctx, d.conn); err != nil {
		return fmt.Errorf("gnome-keyring-daemon owns %s but: %w (see %s)", SecretsName, err, p.log)
	}
	d.logf("gnome-keyring-daemon owns %s as %s; default keyring unlocked", SecretsName, owner)
	return nil
}

// checkDefaultUnlocked checks what StartSecretService promises, so that
// a daemon that changed its start-up order fails here, clearly, rather
// than in the test using it.
func checkDefaultUnlocked(ctx context.Context, conn *dbus.Conn) error {
	var coll dbus.ObjectPath
	err := conn.Object(SecretsName, secretsPath).CallWithContext(ctx, "org.freedesktop.Secret.Service.ReadAlias", 0, "default").Store(&coll)
	if err != nil {
		return fmt.Errorf("ReadAlias(default): %w", err)
	}
	if coll == "/" {
		return fmt.Errorf("no default keyring")
	}
	var v dbus.Variant
	err = conn.Object(SecretsName, coll).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
		"org.freedesktop.Secret.Collection", "Locked").Store(&v)
	if err != nil {
		return fmt.Errorf("read Locked of %s: %w", coll, err)
	}
	if locked, _ := v.Value().(bool); locked {
		return fmt.Errorf("default keyring %s is locked", coll)
	}
	return nil
}

// SessionBus is a private D-Bus session bus without an X server, for
// package tests that need only the bus (and perhaps a Secret Service on
// it). HOME and the XDG directories of its Env are temporary directories
// of the test, as in a Desktop.
type SessionBus struct {
	d *Desktop
}

// StartSessionBus starts a private session bus for t and stops it, and
// everything started on it, when t ends. It fails the test if the bus
// does not come up within StartTimeout.
func StartSessionBus(t testing.TB) *SessionBus {
	t.Helper()
	d := &Desktop{t: t, t0: time.Now()}
	if err := d.makeDirs(); err != nil {
		t.Fatalf("desktoptest: %v", err)
	}
	t.Cleanup(d.cleanup)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	var err error
	d.busAddr, err = d.startBus(ctx, "session-bus", "session", filepath.Join(d.runt, "bus"), d.baseEnv(nil))
	if err != nil {
		t.Fatalf("desktoptest: start session bus: %v", err)
	}
	d.env = d.baseEnv(map[string]string{"DBUS_SESSION_BUS_ADDRESS": d.busAddr})
	if d.conn, err = connect(ctx, d.busAddr); err != nil {
		t.Fatalf("desktoptest: %v", err)
	}
	d.logf("session bus ready: DBUS_SESSION_BUS_ADDRESS=%s", d.busAddr)
	return &SessionBus{d: d}
}

// Address is the bus address, for dbus.Dial or DBUS_SESSION_BUS_ADDRESS.
func (b *SessionBus) Address() string { return b.d.busAddr }

// Env is like Desktop.Env, without DISPLAY: os.Environ() with
// DBUS_SESSION_BUS_ADDRESS, HOME and the XDG directories pointing at this
// bus and temporary directories.
func (b *SessionBus) Env() []string { return append([]string(nil), b.d.env...) }

// Home is the private HOME; ConfigHome, its XDG_CONFIG_HOME.
func (b *SessionBus) Home() string       { return b.d.home }
func (b *SessionBus) ConfigHome() string { return b.d.configHome }

// StartSecretService is Desktop.StartSecretService on this bus.
func (b *SessionBus) StartSecretService(ctx context.Context) error {
	return b.d.StartSecretService(ctx)
}

// StartKeyringBus starts a private session bus with an unlocked Secret
// Service on it (gnome-keyring-daemon, see Desktop.StartSecretService) and
// returns the bus address; both stop when t ends. It is the light
// fixture for keyring tests: no X server, about a tenth of a second.
// Call RequireKeyring first to skip when gnome-keyring is not installed.
func StartKeyringBus(t testing.TB) (busAddr string) {
	t.Helper()
	b := StartSessionBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := b.StartSecretService(ctx); err != nil {
		t.Fatalf("desktoptest: %v", err)
	}
	return b.Address()
}
