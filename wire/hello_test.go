package wire

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHelloRoundTrip(t *testing.T) {
	for _, h := range []Hello{
		{Epoch: "9f2c41d07a5be310", Latest: 1042, New: true},
		{Epoch: "9f2c41d07a5be310", Latest: 0},
		{Epoch: "a", Latest: 1<<64 - 1},
		{Epoch: "ab", Latest: 7, Idle: 2 * time.Second},
		{Epoch: "ab", Latest: 7, New: true, Idle: 30 * time.Minute},
		{Epoch: "ab", Latest: 7, Idle: time.Second},
		{Epoch: "ab", Latest: 7, Idle: MaxIdle},
		{Epoch: "ab", Latest: 7, Idle: time.Second, PushItems: true},
	} {
		line := string(AppendHello(nil, h))
		got, err := ParseHello(line)
		if err != nil || got != h {
			t.Errorf("ParseHello(%q) = %+v, %v; want %+v", line, got, err, h)
		}
	}
	if got := string(AppendHello(nil, Hello{Epoch: "9f2c41d07a5be310", Latest: 1042})); got != "OK hello epoch=9f2c41d07a5be310 latest=1042 client=known" {
		t.Errorf("AppendHello = %q", got)
	}
}

// The idle field: whole seconds, rounded down, at least 1 and at most
// MaxIdle's; absent when the server does not tell it, which keeps the
// reply byte for byte what it was before the field.
func TestHelloIdle(t *testing.T) {
	for idle, want := range map[time.Duration]string{
		0:                        "OK hello epoch=ab latest=7 client=known",
		2 * time.Second:          "OK hello epoch=ab latest=7 client=known idle=2",
		2500 * time.Millisecond:  "OK hello epoch=ab latest=7 client=known idle=2",
		time.Millisecond:         "OK hello epoch=ab latest=7 client=known idle=1",
		30 * time.Minute:         "OK hello epoch=ab latest=7 client=known idle=1800",
		MaxIdle + time.Second:    "OK hello epoch=ab latest=7 client=known idle=315360000",
		time.Duration(1<<63 - 1): "OK hello epoch=ab latest=7 client=known idle=315360000",
	} {
		line := string(AppendHello(nil, Hello{Epoch: "ab", Latest: 7, Idle: idle}))
		if line != want {
			t.Errorf("AppendHello with idle %v = %q, want %q", idle, line, want)
		}
		if _, err := ParseHello(line); err != nil {
			t.Errorf("ParseHello(%q): %v", line, err)
		}
	}
	if h, err := ParseHello("OK hello epoch=ab latest=7 client=new"); err != nil || h.Idle != 0 {
		t.Errorf("ParseHello without idle = %+v, %v; want idle 0 (not told)", h, err)
	}
	if h, err := ParseHello("OK hello idle=315360000 epoch=ab latest=7"); err != nil || h.Idle != MaxIdle {
		t.Errorf("ParseHello with idle at the bound = %+v, %v; want %v", h, err, MaxIdle)
	}
}

func TestParseHelloIsExtensible(t *testing.T) {
	h, err := ParseHello("OK hello idle=1800 latest=7 epoch=ab zz=top client=new")
	if err != nil || h != (Hello{Epoch: "ab", Latest: 7, New: true, Idle: 30 * time.Minute}) {
		t.Fatalf("ParseHello with unknown keys, any order = %+v, %v", h, err)
	}
	// Without client=: known, which can cost a repeat, never a loss.
	if h, err := ParseHello("OK hello epoch=ab latest=7"); err != nil || h.New {
		t.Fatalf("ParseHello without client = %+v, %v; want known", h, err)
	}
}

// push= is a list: a client takes items when it is listed, whatever else
// a newer server lists with it, and never when it is not; the field is
// absent unless offered, so a server that does not offer it says what it
// said before.
func TestHelloPushItems(t *testing.T) {
	if got := string(AppendHello(nil, Hello{Epoch: "ab", Latest: 7, PushItems: true})); got != "OK hello epoch=ab latest=7 client=known push=items" {
		t.Errorf("AppendHello offering items = %q", got)
	}
	for line, want := range map[string]bool{
		"OK hello epoch=ab latest=7 push=items":         true,
		"OK hello epoch=ab latest=7 push=diffs,items":   true,
		"OK hello epoch=ab latest=7 push=items,x":       true,
		"OK hello epoch=ab latest=7 push=diffs":         false,
		"OK hello epoch=ab latest=7 push=":              false,
		"OK hello epoch=ab latest=7 push=itemsx":        false,
		"OK hello epoch=ab latest=7 client=new idle=60": false,
	} {
		h, err := ParseHello(line)
		if err != nil || h.PushItems != want {
			t.Errorf("ParseHello(%q) = %+v, %v; want PushItems %v", line, h, err, want)
		}
	}
}

func TestParseHelloRefuses(t *testing.T) {
	for _, line := range []string{
		"OK",                  // a banner, or a plain hello's reply
		"Welcome!",            // a banner
		"ERR unknown command", // a version-1 server
		"OK hellooo epoch=a latest=1",
		"OK hello",                 // the prefix alone
		"OK hello latest=1",        // no epoch
		"OK hello epoch=a",         // no latest
		"OK hello epoch= latest=1", // empty epoch
		"OK hello epoch=a/b latest=1",
		"OK hello epoch=0123456789abcdef0123456789abcdef0 latest=1", // 33 chars
		"OK hello epoch=a latest=01",
		"OK hello epoch=a latest=-1",
		"OK hello epoch=a latest=18446744073709551616",
		"OK hello epoch=a latest=1 client=maybe",
		"OK hello epoch=a  latest=1", // two spaces: an empty field
		"OK hello epoch=a latest=1 flag",
		"OK hello epoch=a latest=1 idle=",
		"OK hello epoch=a latest=1 idle=0",
		"OK hello epoch=a latest=1 idle=-1",
		"OK hello epoch=a latest=1 idle=+5",
		"OK hello epoch=a latest=1 idle=05",
		"OK hello epoch=a latest=1 idle=1.5",
		"OK hello epoch=a latest=1 idle=30m",
		"OK hello epoch=a latest=1 idle=315360001",           // over ten years
		"OK hello epoch=a latest=1 idle=9223372036854775808", // over int64
	} {
		if h, err := ParseHello(line); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseHello(%q) = %+v, %v; want an ErrInvalid error", line, h, err)
		}
	}
	for line, want := range map[string]bool{"OK hello": true, "OK hello x": true, "OK": false, "OK hellox": false, "ok hello": false} {
		if got := IsHelloReply(line); got != want {
			t.Errorf("IsHelloReply(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestIsFarewell(t *testing.T) {
	for line, want := range map[string]bool{
		ErrTooManyConns: true, ErrTooManyFromAddr: true, ErrLineTooLongLine: true,
		ErrGoingAway:      true,
		ErrUnknownCommand: false, "ERR line too long, really": false, OK: false,
		"ERR server going away soon": false,
	} {
		if got := IsFarewell(line); got != want {
			t.Errorf("IsFarewell(%q) = %v, want %v", line, got, want)
		}
	}
}

// FuzzParseHello: whatever a server sends, ParseHello either refuses it
// as ErrInvalid or returns a Hello that AppendHello writes back to a line
// that parses to the same Hello, with an idle within its bounds.
func FuzzParseHello(f *testing.F) {
	for _, line := range []string{
		"OK hello epoch=9f2c41d07a5be310 latest=1042 client=new",
		"OK hello epoch=ab latest=7 client=known idle=2",
		"OK hello idle=1800 latest=7 epoch=ab zz=top client=new",
		"OK hello epoch=a latest=1 idle=315360001",
		"OK hello epoch=a latest=1 idle=0",
		"OK",
	} {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		h, err := ParseHello(line)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseHello(%q): %v, not an ErrInvalid error", line, err)
			}
			return
		}
		if h.Idle < 0 || h.Idle > MaxIdle || h.Idle%time.Second != 0 {
			t.Fatalf("ParseHello(%q): idle %v out of bounds", line, h.Idle)
		}
		again := string(AppendHello(nil, h))
		if strings.ContainsAny(again, "\r\n") {
			t.Fatalf("AppendHello(%+v) = %q: a line break", h, again)
		}
		if h2, err := ParseHello(again); err != nil || h2 != h {
			t.Fatalf("ParseHello(%q) = %+v; its AppendHello %q parses to %+v, %v", line, h, again, h2, err)
		}
	})
}
