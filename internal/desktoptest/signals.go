package desktoptest

import (
	"context"
	"time"

	"github.com/godbus/dbus/v5"
)

// Signal is a D-Bus signal seen on the session bus.
type Signal struct {
	Sender    string // unique bus name of the emitter
	Path      dbus.ObjectPath
	Interface string
	Member    string
	Body      []any
	Seen      time.Time // when the monitor got it
}

// WatchSignals reports every signal on the session bus that matches one
// of rules (D-Bus match rules, e.g.
// "type='signal',interface='com.canonical.dbusmenu'"), from its return
// on, until ctx ends (then the channel is closed). Like
// WatchNotifications it uses a monitor connection, so it sees signals
// whatever their destination, and no other client's match rules change.
// Drain the channel: signals arriving while 1024 are queued are dropped.
func (d *Desktop) WatchSignals(ctx context.Context, rules ...string) (<-chan Signal, error) {
	out := make(chan Signal, 64)
	err := d.monitor(ctx, rules, func(self string, m *dbus.Message) bool {
		// The bus tells the monitor itself that it lost its name: that
		// signal matched no rule.
		if dest, _ := m.Headers[dbus.FieldDestination].Value().(string); m.Type != dbus.TypeSignal || dest == self {
			return true
		}
		s := Signal{Body: m.Body, Seen: time.Now()}
		s.Sender, _ = m.Headers[dbus.FieldSender].Value().(string)
		s.Path, _ = m.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
		s.Interface, _ = m.Headers[dbus.FieldInterface].Value().(string)
		s.Member, _ = m.Headers[dbus.FieldMember].Value().(string)
		select {
		case out <- s:
			return true
		case <-ctx.Done():
			return false
		}
	}, func() { close(out) })
	if err != nil {
		return nil, err
	}
	return out, nil
}
