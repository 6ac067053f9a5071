package desktoptest

import (
	"context"
	"time"

	"github.com/godbus/dbus/v5"
)

// Message is a D-Bus message seen on the session bus: a signal, a method
// call, or a call's reply or error.
type Message struct {
	Type        dbus.Type
	Sender      string // unique bus name of the emitter
	Destination string // "" for a broadcast signal
	Serial      uint32
	ReplySerial uint32 // the call answered, for a reply or an error
	Path        dbus.ObjectPath
	Interface   string
	Member      string
	Body        []any
	Seen        time.Time // when the monitor got it
}

// Signal is a Message of type signal.
type Signal = Message

// WatchSignals reports every signal on the session bus that matches one
// of rules (D-Bus match rules, e.g.
// "type='signal',interface='com.canonical.dbusmenu'"), from its return
// on, until ctx ends (then the channel is closed).
func (d *Desktop) WatchSignals(ctx context.Context, rules ...string) (<-chan Signal, error) {
	return d.watch(ctx, rules, func(m *dbus.Message) bool { return m.Type == dbus.TypeSignal })
}

// WatchMessages is WatchSignals for messages of every type, in the order
// the bus routed them: a rule such as "type='method_return'" adds the
// replies, so that a test can tell when a call it saw was answered.
func (d *Desktop) WatchMessages(ctx context.Context, rules ...string) (<-chan Message, error) {
	return d.watch(ctx, rules, func(*dbus.Message) bool { return true })
}

// watch reports the messages matching rules that keep accepts. Like
// WatchNotifications it uses a monitor connection, so it sees messages
// whatever their destination, and no other client's match rules change.
// Drain the channel: messages arriving while 1024 are queued are dropped.
func (d *Desktop) watch(ctx context.Context, rules []string, keep func(*dbus.Message) bool) (<-chan Message, error) {
	out := make(chan Message, 64)
	err := d.monitor(ctx, rules, func(self string, m *dbus.Message) bool {
		// The bus tells the monitor itself that it lost its name: that
		// signal matched no rule.
		dest, _ := m.Headers[dbus.FieldDestination].Value().(string)
		if !keep(m) || dest == self {
			return true
		}
		s := Message{Type: m.Type, Destination: dest, Serial: m.Serial(), Body: m.Body, Seen: time.Now()}
		s.Sender, _ = m.Headers[dbus.FieldSender].Value().(string)
		s.ReplySerial, _ = m.Headers[dbus.FieldReplySerial].Value().(uint32)
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
