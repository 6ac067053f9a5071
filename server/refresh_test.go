package server

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/wire"
)

// The extended reply to hello tells the idle timeout of notification
// mode, in whole seconds rounded down (at least 1), so that a client
// re-enters the mode in time by itself. The plain reply stays OK.
func TestHelloTellsIdleTimeout(t *testing.T) {
	for _, tc := range []struct {
		idle  time.Duration
		field string
		want  time.Duration
	}{
		{0, "idle=1800", DefaultIdleTimeout},
		{2 * time.Second, "idle=2", 2 * time.Second},
		{2900 * time.Millisecond, "idle=2", 2 * time.Second},
		{300 * time.Millisecond, "idle=1", time.Second},
	} {
		s := startServer(t, Config{IdleTimeout: tc.idle})
		c := dial(t, s)
		c.Send("hello laptop v2")
		line := c.Line()
		h, err := wire.ParseHello(line)
		if err != nil || h.Idle != tc.want || !slices.Contains(strings.Fields(line), tc.field) {
			t.Errorf("--idle-timeout %v: hello v2 = %q (%+v, %v), want the field %s", tc.idle, line, h, err, tc.field)
		}
		// Version 1 is byte-compatible: the plain form is answered OK.
		c2 := dial(t, s)
		c2.Send("hello desktop")
		c2.Expect(wire.OK)
	}
}
