package desktoptest

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// Notification is a Notify call seen on the session bus, as the app sent
// it, with the daemon's answer.
type Notification struct {
	Sender     string // unique bus name of the caller
	AppName    string
	ReplacesID uint32
	Icon       string
	Summary    string
	Body       string
	Actions    []string
	Hints      map[string]any
	Timeout    int32
	ID         uint32 // the daemon's reply; 0 if no reply was expected or the call failed
	Error      string // D-Bus error name if the call failed
}

// WatchNotifications reports every Notify call made on the session bus
// from now on, until ctx ends (then the channel is closed). Unlike Popups
// it sees the exact arguments, including hints and actions, and the
// returned ID, without closing popups. It uses a monitor connection
// (org.freedesktop.DBus.Monitoring.BecomeMonitor) rather than
// eavesdropping, which dbus-daemon deprecates. A Notification is sent
// when the daemon's reply (or error) is seen. Drain the channel: messages
// arriving while 1024 are queued are dropped.
func (d *Desktop) WatchNotifications(ctx context.Context) (<-chan Notification, error) {
	rules := []string{
		"type='method_call',interface='" + NotifyName + "',member='Notify'",
		"type='method_return'",
		"type='error'",
	}
	out := make(chan Notification, 64)
	type callKey struct {
		sender string
		serial uint32
	}
	pending := map[callKey]Notification{}
	err := d.monitor(ctx, rules, func(_ string, m *dbus.Message) bool {
		var n Notification
		switch m.Type {
		case dbus.TypeMethodCall:
			var ok bool
			if n, ok = parseNotify(m); !ok {
				return true
			}
			if m.Flags&dbus.FlagNoReplyExpected == 0 {
				pending[callKey{n.Sender, m.Serial()}] = n
				return true // told once its reply is seen
			}
		case dbus.TypeMethodReply, dbus.TypeError:
			dest, _ := m.Headers[dbus.FieldDestination].Value().(string)
			serial, _ := m.Headers[dbus.FieldReplySerial].Value().(uint32)
			k := callKey{dest, serial}
			var ok bool
			if n, ok = pending[k]; !ok {
				return true
			}
			delete(pending, k)
			if m.Type == dbus.TypeError {
				n.Error, _ = m.Headers[dbus.FieldErrorName].Value().(string)
			} else if len(m.Body) == 1 {
				n.ID, _ = m.Body[0].(uint32)
			}
		default:
			return true
		}
		select {
		case out <- n:
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

// monitor makes a monitor connection for rules (D-Bus match rules) and
// gives each message it sees to each, in order, on a goroutine of its
// own, until ctx ends or each returns false; then it closes the
// connection and calls end. each is told the monitor's own bus name.
// Messages arriving while 1024 are queued are dropped.
func (d *Desktop) monitor(ctx context.Context, rules []string, each func(self string, m *dbus.Message) bool, end func()) error {
	conn, err := connect(ctx, d.busAddr)
	if err != nil {
		return err
	}
	self := conn.Names()[0]
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, rules, uint32(0)).Err; err != nil {
		conn.Close()
		return fmt.Errorf("become monitor: %w", err)
	}
	// From here the bus sends us copies of matching messages. godbus must
	// hand them over raw: as ordinary messages they would be dropped for
	// not being addressed to us.
	raw := make(chan *dbus.Message, 1024)
	conn.Eavesdrop(raw)
	go func() {
		defer end()
		defer func() {
			// Stop eavesdropping first: godbus 5.1's Close closes the
			// channel while its reader may still send to it.
			conn.Eavesdrop(nil)
			conn.Close()
		}()
		for {
			select {
			case m := <-raw:
				if m == nil || !each(self, m) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// parseNotify decodes a Notify(s u s s s as a{sv} i) call.
func parseNotify(m *dbus.Message) (Notification, bool) {
	var n Notification
	if len(m.Body) != 8 {
		return n, false
	}
	n.Sender, _ = m.Headers[dbus.FieldSender].Value().(string)
	n.AppName, _ = m.Body[0].(string)
	n.ReplacesID, _ = m.Body[1].(uint32)
	n.Icon, _ = m.Body[2].(string)
	n.Summary, _ = m.Body[3].(string)
	n.Body, _ = m.Body[4].(string)
	n.Actions, _ = m.Body[5].([]string)
	if hints, ok := m.Body[6].(map[string]dbus.Variant); ok {
		n.Hints = make(map[string]any, len(hints))
		for k, v := range hints {
			n.Hints[k] = v.Value()
		}
	}
	n.Timeout, _ = m.Body[7].(int32)
	return n, true
}
