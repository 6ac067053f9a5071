package keyring

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/internal/desktoptest"
)

func TestRoundTrip(t *testing.T) {
	s, _ := newService(t)
	ctx := testCtx(t)
	const server = "news.example.org:6789"
	if err := s.Set(ctx, server, "tok-1"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, server)
	if err != nil || got != "tok-1" {
		t.Fatalf("Get = %q, %v; want tok-1", got, err)
	}
	if err := s.Delete(ctx, server); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, server); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, server); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
}

func TestSetReplaces(t *testing.T) {
	s, conn := newService(t)
	ctx := testCtx(t)
	const server = "127.0.0.1:6789"
	for _, tok := range []string{"old", "new"} {
		if err := s.Set(ctx, server, tok); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Get(ctx, server); err != nil || got != "new" {
		t.Fatalf("Get = %q, %v; want new", got, err)
	}
	if items := search(t, conn, attributes(server)); len(items) != 1 {
		t.Errorf("%d items for %s, want 1: %v", len(items), server, items)
	}
}

func TestServersKeptApart(t *testing.T) {
	s, _ := newService(t)
	ctx := testCtx(t)
	tokens := map[string]string{"a.example:6789": "tok-a", "b.example:6789": "tok-b", "[::1]:6789": "tok-c"}
	for server, tok := range tokens {
		if err := s.Set(ctx, server, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "[::1]:6789"); err != nil {
		t.Fatal(err)
	}
	delete(tokens, "[::1]:6789")
	for server, want := range tokens {
		if got, err := s.Get(ctx, server); err != nil || got != want {
			t.Errorf("Get(%s) = %q, %v; want %q", server, got, err, want)
		}
	}
	if _, err := s.Get(ctx, "c.example:6789"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a server never set: %v, want ErrNotFound", err)
	}
}

// TestItemLooksRight checks what a user sees in seahorse or KWallet
// Manager, and what other programs' searches match.
func TestItemLooksRight(t *testing.T) {
	s, conn := newService(t)
	ctx := testCtx(t)
	const server = "news.example.org:6789"
	if err := s.Set(ctx, server, "tok"); err != nil {
		t.Fatal(err)
	}
	items := search(t, conn, map[string]string{"application": "hark"})
	if len(items) != 1 {
		t.Fatalf("items of application=hark: %v", items)
	}
	obj := conn.Object(serviceName, items[0])
	label, err := obj.GetProperty(itemIface + ".Label")
	if err != nil || label.Value() != "hark token for "+server {
		t.Errorf("Label = %v, %v", label, err)
	}
	attrs, err := obj.GetProperty(itemIface + ".Attributes")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := attrs.Value().(map[string]string); a["application"] != "hark" || a["server"] != server {
		t.Errorf("Attributes = %v", attrs.Value())
	}
	session, err := s.openSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.closeSession(session)
	var sec wireSecret
	if err := obj.CallWithContext(ctx, itemIface+".GetSecret", 0, session).Store(&sec); err != nil {
		t.Fatal(err)
	}
	if sec.ContentType != "text/plain" || string(sec.Value) != "tok" {
		t.Errorf("secret = %+v", sec)
	}
}

func TestLocked(t *testing.T) {
	s, conn := newService(t)
	ctx := testCtx(t)
	const server = "news.example.org:6789"
	if err := s.Set(ctx, server, "tok"); err != nil {
		t.Fatal(err)
	}
	lockAll(t, conn)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "unlock your keyring (log in to the desktop session) and retry") {
			t.Errorf("%s on a locked keyring: %v, want ErrLocked saying what to do", op, err)
		}
	}
	_, err := s.Get(ctx, server)
	check("Get", err)
	check("Set", s.Set(ctx, server, "other"))
	check("Delete", s.Delete(ctx, server))
}

// TestNoDefaultAlias: with the "default" alias gone, Set falls back to
// the login keyring, where Get finds it.
func TestNoDefaultAlias(t *testing.T) {
	s, conn := newService(t)
	ctx := testCtx(t)
	svc := conn.Object(serviceName, servicePath)
	if err := svc.CallWithContext(ctx, serviceIface+".SetAlias", 0, "default", noPrompt).Err; err != nil {
		t.Fatal(err)
	}
	var coll dbus.ObjectPath
	if err := svc.CallWithContext(ctx, serviceIface+".ReadAlias", 0, "default").Store(&coll); err != nil || coll != noPrompt {
		t.Fatalf("alias not removed: %s, %v", coll, err)
	}
	if err := s.Set(ctx, "x:1", "tok"); err != nil {
		t.Fatal(err)
	}
	items := search(t, conn, attributes("x:1"))
	if len(items) != 1 || !strings.HasPrefix(string(items[0]), string(loginPath)+"/") {
		t.Errorf("item %v, want one in %s", items, loginPath)
	}
	if got, err := s.Get(ctx, "x:1"); err != nil || got != "tok" {
		t.Errorf("Get = %q, %v", got, err)
	}
}

func TestConnectNoService(t *testing.T) {
	desktoptest.RequireKeyring(t)
	conn := dialTest(t, desktoptest.StartSessionBus(t).Address())
	start := time.Now()
	_, err := Connect(testCtx(t), conn)
	if !errors.Is(err, ErrNoService) {
		t.Fatalf("Connect on a bus without a Secret Service: %v, want ErrNoService", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Connect took %v to say there is no service", d)
	}
}

func search(t *testing.T, conn *dbus.Conn, attrs map[string]string) []dbus.ObjectPath {
	t.Helper()
	var unlocked, locked []dbus.ObjectPath
	err := conn.Object(serviceName, servicePath).CallWithContext(testCtx(t), serviceIface+".SearchItems", 0, attrs).Store(&unlocked, &locked)
	if err != nil {
		t.Fatal(err)
	}
	return append(unlocked, locked...)
}
