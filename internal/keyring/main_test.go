package keyring

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"go.uber.org/goleak"

	"github.com/harkapp/hark/internal/desktoptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds each test's D-Bus calls; they take milliseconds.
const testTimeout = 30 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dialTest connects to a test bus; the connection closes with the test,
// before the bus stops (cleanups run last registered first).
func dialTest(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dial(testCtx(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// newService starts a private bus with gnome-keyring on it and connects.
func newService(t *testing.T) (*SecretService, *dbus.Conn) {
	t.Helper()
	desktoptest.RequireKeyring(t)
	conn := dialTest(t, desktoptest.StartKeyringBus(t))
	s, err := Connect(testCtx(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	return s, conn
}

// lockAll locks every keyring, as the screen locker or a timeout does.
// gnome-keyring locks without asking; only unlocking needs the password.
func lockAll(t *testing.T, conn *dbus.Conn) {
	t.Helper()
	ctx := testCtx(t)
	v, err := conn.Object(serviceName, servicePath).GetProperty(serviceIface + ".Collections")
	if err != nil {
		t.Fatal(err)
	}
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	err = conn.Object(serviceName, servicePath).CallWithContext(ctx, serviceIface+".Lock", 0, v.Value()).Store(&locked, &prompt)
	if err != nil || prompt != noPrompt {
		t.Fatalf("Lock: %v, prompt %s", err, prompt)
	}
}
