//go:build linux || freebsd || netbsd || openbsd

package tray

import (
	"context"

	"github.com/godbus/dbus/v5"
)

// onSignal calls fn with the body of each signal named name (interface and
// member) with nargs arguments that reaches conn, until ctx ends or conn
// closes. The caller has added the match rule. Other signals on conn are
// skipped: a private connection may carry several subscriptions. ready,
// if set, is called once signals are being received: one sent after it
// is not missed.
func onSignal(ctx context.Context, conn *dbus.Conn, name string, nargs int, ready func(), fn func(body []any)) {
	ch := make(chan *dbus.Signal, 8)
	conn.Signal(ch)
	defer conn.RemoveSignal(ch)
	if ready != nil {
		ready()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case sig, ok := <-ch:
			if !ok {
				return
			}
			if sig.Name == name && len(sig.Body) == nargs {
				fn(sig.Body)
			}
		}
	}
}
