package desktoptest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/internal/sessionbus"
)

// connect opens a private connection (never dbus.SessionBus(), which is
// shared with the code under test and reads the real environment). ctx
// bounds the handshake only: the caller closes the connection. (With
// dbus.WithContext, godbus would close it when ctx ends, racing with our
// own Close, which panics on a monitor connection in godbus 5.1.)
func connect(ctx context.Context, addr string) (*dbus.Conn, error) { return sessionbus.Dial(ctx, addr) }

// errConnClosed is returned when the bus connection closes during a wait,
// which means the bus daemon died.
var errConnClosed = errors.New("bus connection closed")

// nameWatch follows the owner of one bus name through NameOwnerChanged.
// It is subscribed before the current owner is read, so that a change
// between the two cannot be missed.
type nameWatch struct {
	conn *dbus.Conn
	name string
	ch   chan *dbus.Signal
	opts []dbus.MatchOption
}

func watchName(ctx context.Context, conn *dbus.Conn, name string) (*nameWatch, error) {
	w := &nameWatch{conn: conn, name: name, ch: make(chan *dbus.Signal, 16), opts: []dbus.MatchOption{
		dbus.WithMatchSender(busDaemonName),
		dbus.WithMatchInterface(busDaemonName),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, name),
	}}
	conn.Signal(w.ch)
	if err := conn.AddMatchSignalContext(ctx, w.opts...); err != nil {
		conn.RemoveSignal(w.ch)
		return nil, fmt.Errorf("subscribe to owner changes of %s: %w", name, err)
	}
	return w, nil
}

func (w *nameWatch) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.conn.RemoveMatchSignalContext(ctx, w.opts...) // fails only if the bus is gone
	w.conn.RemoveSignal(w.ch)
}

// owner returns the current owner of the name, "" if it has none.
func (w *nameWatch) owner(ctx context.Context) (string, error) {
	return nameOwner(ctx, w.conn, w.name)
}

func nameOwner(ctx context.Context, conn *dbus.Conn, name string) (string, error) {
	var owner string
	err := conn.BusObject().CallWithContext(ctx, busDaemonName+".GetNameOwner", 0, name).Store(&owner)
	var dbusErr dbus.Error
	if errors.As(err, &dbusErr) && dbusErr.Name == "org.freedesktop.DBus.Error.NameHasNoOwner" {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("GetNameOwner(%s): %w", name, err)
	}
	return owner, nil
}

// wait returns the first owner, current or future, that ok accepts. It
// gives up when ctx ends or exited (may be nil) is closed.
func (w *nameWatch) wait(ctx context.Context, exited <-chan struct{}, ok func(owner string) bool) (string, error) {
	cur, err := w.owner(ctx)
	if err != nil {
		return "", err
	}
	if cur != "" && ok(cur) {
		return cur, nil
	}
	for {
		select {
		case sig, open := <-w.ch:
			if !open {
				return "", fmt.Errorf("waiting for an owner of %s: %w", w.name, errConnClosed)
			}
			if sig.Name != busDaemonName+".NameOwnerChanged" || len(sig.Body) != 3 {
				continue
			}
			name, _ := sig.Body[0].(string)
			owner, _ := sig.Body[2].(string)
			if name == w.name && owner != "" && ok(owner) {
				return owner, nil
			}
		case <-exited:
			return "", fmt.Errorf("process exited before owning %s", w.name)
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for an owner of %s: %w", w.name, ctx.Err())
		}
	}
}

// NameOwner returns the unique name owning a well-known name on the
// session bus, or "" if nobody does.
func (d *Desktop) NameOwner(ctx context.Context, name string) (string, error) {
	return nameOwner(ctx, d.conn, name)
}

// RegisteredItems returns the RegisteredStatusNotifierItems property of
// org.kde.StatusNotifierWatcher: what the tray currently hosts. The xfce
// systray plugin lists each item as "<unique bus name><object path>",
// e.g. ":1.42/StatusNotifierItem".
func (d *Desktop) RegisteredItems(ctx context.Context) ([]string, error) {
	return registeredItems(ctx, d.conn)
}

func registeredItems(ctx context.Context, conn *dbus.Conn) ([]string, error) {
	var v dbus.Variant
	err := conn.Object(WatcherName, WatcherPath).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
		WatcherIface, "RegisteredStatusNotifierItems").Store(&v)
	if err != nil {
		return nil, fmt.Errorf("get RegisteredStatusNotifierItems: %w", err)
	}
	items, ok := v.Value().([]string)
	if !ok {
		return nil, fmt.Errorf("RegisteredStatusNotifierItems is %s, want as", v.Signature())
	}
	return items, nil
}

// itemPoll is the fallback period of WaitItem; see there.
const itemPoll = time.Second

// WaitItem waits until a registered StatusNotifierItem satisfies pred and
// returns it (in the format of RegisteredItems). It subscribes to the
// watcher's StatusNotifierItemRegistered signal and to owner changes of
// the watcher's name before reading the property, so that a registration
// in between is not missed, and re-reads the property on every such
// event; the property, not the signal argument, is what pred sees, so
// both paths give the same strings. As a fallback only, it also re-reads
// the property every itemPoll, so that a watcher which updates the
// property without signalling still ends the wait; normally the signal
// ends it first. While the watcher has no owner (panel restarting), read
// errors are retried until ctx ends.
func (d *Desktop) WaitItem(ctx context.Context, pred func(item string) bool) (string, error) {
	conn, err := connect(ctx, d.busAddr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ch := make(chan *dbus.Signal, 64)
	conn.Signal(ch)
	defer conn.RemoveSignal(ch)
	if err := conn.AddMatchSignalContext(ctx,
		dbus.WithMatchInterface(WatcherIface), dbus.WithMatchMember("StatusNotifierItemRegistered")); err != nil {
		return "", fmt.Errorf("subscribe to StatusNotifierItemRegistered: %w", err)
	}
	w, err := watchName(ctx, conn, WatcherName)
	if err != nil {
		return "", err
	}
	defer w.close()
	tick := time.NewTicker(itemPoll)
	defer tick.Stop()
	var lastErr error
	var last []string
	for {
		items, err := registeredItems(ctx, conn)
		if err != nil {
			lastErr = err
		} else {
			last = items
			for _, it := range items {
				if pred(it) {
					return it, nil
				}
			}
		}
		select {
		case _, open := <-ch:
			if !open {
				return "", fmt.Errorf("waiting for a StatusNotifierItem: %w", errConnClosed)
			}
		case _, open := <-w.ch:
			if !open {
				return "", fmt.Errorf("waiting for a StatusNotifierItem: %w", errConnClosed)
			}
		case <-tick.C:
		case <-ctx.Done():
			if lastErr != nil {
				return "", fmt.Errorf("no matching item (last read failed: %v): %w", lastErr, ctx.Err())
			}
			return "", fmt.Errorf("no matching item among %q: %w", last, ctx.Err())
		}
	}
}

// RestartPanel runs `xfce4-panel --restart` and waits until
// org.kde.StatusNotifierWatcher has a new owner, so that callers can then
// wait for their items to re-register (WaitItem), which is what a tray app
// must do when the panel crashes or is restarted.
//
// The old panel spawns the new one, without its arguments, and exits; the
// new one stays in the same process group, so cleanup still stops it.
// (It lacks --disable-wm-check; holdWMSelection keeps it from waiting 5s
// for a window manager.) Under heavy load the new panel can start before
// the old one has let go of the bus, and then quits at once without
// loading its plugins: an xfce4-panel race, not the app's fault. When the
// panel's process group empties like that, RestartPanel starts a new
// panel itself and notes it in desktoptest.log. It finds out by checking
// the group every 100ms while it waits, as the exit of a process that is
// not our child gives no event. If no panel runs at all (org.xfce.Panel
// has no owner: a test killed it, or it crashed), it starts one.
//
// lxqt-panel (LXQtPanel) has no --restart: RestartPanel stops it and
// starts a new one.
func (d *Desktop) RestartPanel(ctx context.Context) error {
	if d.host == LXQt {
		return d.restartLXQt(ctx)
	}
	conn, err := connect(ctx, d.busAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	w, err := watchName(ctx, conn, WatcherName)
	if err != nil {
		return err
	}
	defer w.close()
	old, err := w.owner(ctx)
	if err != nil {
		return err
	}
	notOld := func(o string) bool { return o != old }
	// `xfce4-panel --restart` hangs when no panel runs, so check first;
	// without a panel (a test killed it, or it crashed), starting one is
	// the restart.
	running, err := nameOwner(ctx, conn, "org.xfce.Panel")
	if err != nil {
		return err
	}
	if running == "" {
		d.logf("panel restart: no panel running; starting one")
		return d.startPanel(ctx, notOld)
	}
	d.mu.Lock()
	pgid := d.panel.cmd.Process.Pid
	d.mu.Unlock()
	start := time.Now()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = d.run(rctx, "xfce4-panel", "--restart")
	rcancel()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gone := groupEmptied(wctx, pgid)
	owner, err := w.wait(wctx, gone, notOld)
	if err == nil {
		d.logf("panel restarted: %s now owned by %s (was %q) after %v", WatcherName, owner, old, time.Since(start).Round(time.Millisecond))
		return nil
	}
	select {
	case <-gone:
	default:
		return fmt.Errorf("after xfce4-panel --restart: %w", err)
	}
	d.logf("panel restart: no panel process left after %v (the re-executed panel quit); starting a new panel", time.Since(start).Round(time.Millisecond))
	if err := d.startPanel(ctx, notOld); err != nil {
		return fmt.Errorf("panel quit on xfce4-panel --restart; starting a new one: %w", err)
	}
	return nil
}

// groupEmptied returns a channel closed once the process group has no
// live process left, checking every 100ms until ctx ends.
func groupEmptied(ctx context.Context, pgid int) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if len(groupMembers(pgid)) == 0 {
					close(ch)
					return
				}
			}
		}
	}()
	return ch
}

// Call makes a D-Bus method call on the session bus and returns the reply
// body, for tests that drive the app the way the panel does, e.g.
// com.canonical.dbusmenu.GetLayout and .Event to click a menu item.
// method is the full name, "interface.Member". ctx bounds the call.
func (d *Desktop) Call(ctx context.Context, dest, path, method string, args ...any) ([]any, error) {
	call := d.conn.Object(dest, dbus.ObjectPath(path)).CallWithContext(ctx, method, 0, args...)
	if call.Err != nil {
		return nil, fmt.Errorf("call %s on %s %s: %w", method, dest, path, call.Err)
	}
	return call.Body, nil
}
