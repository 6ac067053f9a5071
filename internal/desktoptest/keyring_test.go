//go:build linux

package desktoptest

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// TestKeyringBus starts the light fixture in a subtest, checks that the
// Secret Service serves an unlocked default keyring that stores and
// returns a secret, and, once the subtest's cleanups have run, that no
// process is left, zombies included.
func TestKeyringBus(t *testing.T) {
	RequireKeyring(t)
	var procs []*proc
	t.Run("bus", func(t *testing.T) {
		start := time.Now()
		b := StartSessionBus(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.StartSecretService(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("bus and keyring up in %v", time.Since(start).Round(time.Millisecond))
		procs = b.d.procs
		conn, err := connect(ctx, b.Address())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		roundTrip(ctx, t, conn)
	})
	if len(procs) != 2 {
		t.Fatalf("want 2 processes (bus, keyring), got %d", len(procs))
	}
	checkGone(t, procs)
}

// TestStartKeyringBus checks the one-call fixture.
func TestStartKeyringBus(t *testing.T) {
	RequireKeyring(t)
	addr := StartKeyringBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := connect(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := checkDefaultUnlocked(ctx, conn); err != nil {
		t.Fatal(err)
	}
}

// TestDesktopSecretService starts a whole desktop with a Secret Service,
// as the tray's end-to-end test does.
func TestDesktopSecretService(t *testing.T) {
	Require(t)
	RequireKeyring(t)
	var procs []*proc
	t.Run("desktop", func(t *testing.T) {
		d := Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		if err := d.StartSecretService(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("keyring up in %v", time.Since(start).Round(time.Millisecond))
		roundTrip(ctx, t, d.conn)
		procs = d.procs
	})
	checkGone(t, procs)
}

func TestRequireKeyringNamesPackages(t *testing.T) {
	for _, tl := range keyringTools {
		if tl.pkg == "" || tl.name == "" {
			t.Errorf("tool %+v lacks a name or package", tl)
		}
	}
}

// roundTrip stores a secret in the default keyring and reads it back,
// over the raw API, so that this test does not depend on package keyring.
func roundTrip(ctx context.Context, t *testing.T, conn *dbus.Conn) {
	t.Helper()
	svc := conn.Object(SecretsName, secretsPath)
	var coll dbus.ObjectPath
	if err := svc.CallWithContext(ctx, "org.freedesktop.Secret.Service.ReadAlias", 0, "default").Store(&coll); err != nil {
		t.Fatal(err)
	}
	var out dbus.Variant
	var session dbus.ObjectPath
	if err := svc.CallWithContext(ctx, "org.freedesktop.Secret.Service.OpenSession", 0, "plain", dbus.MakeVariant("")).Store(&out, &session); err != nil {
		t.Fatal(err)
	}
	type secret struct {
		Session     dbus.ObjectPath
		Params, Val []byte
		ContentType string
	}
	props := map[string]dbus.Variant{
		"org.freedesktop.Secret.Item.Label":      dbus.MakeVariant("desktoptest"),
		"org.freedesktop.Secret.Item.Attributes": dbus.MakeVariant(map[string]string{"test": "desktoptest"}),
	}
	var item, prompt dbus.ObjectPath
	err := conn.Object(SecretsName, coll).CallWithContext(ctx, "org.freedesktop.Secret.Collection.CreateItem", 0,
		props, secret{session, []byte{}, []byte("s3cret"), "text/plain"}, true).Store(&item, &prompt)
	if err != nil || prompt != "/" {
		t.Fatalf("CreateItem: %v, prompt %s", err, prompt)
	}
	var got secret
	if err := conn.Object(SecretsName, item).CallWithContext(ctx, "org.freedesktop.Secret.Item.GetSecret", 0, session).Store(&got); err != nil {
		t.Fatal(err)
	}
	if string(got.Val) != "s3cret" {
		t.Errorf("secret %q, want s3cret", got.Val)
	}
}

func checkGone(t *testing.T, procs []*proc) {
	t.Helper()
	for _, p := range procs {
		pid := p.cmd.Process.Pid
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after cleanup (kill 0: %v)", p.name, pid, err)
		}
		if m := groupMembers(pid); len(m) > 0 {
			t.Errorf("process group of %s still has %v after cleanup", p.name, m)
		}
		if z := zombies(pid); len(z) > 0 {
			t.Errorf("process group of %s has zombies %v after cleanup", p.name, z)
		}
	}
}
