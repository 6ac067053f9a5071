package wire

import (
	"errors"
	"testing"
)

func TestHelloRoundTrip(t *testing.T) {
	for _, h := range []Hello{
		{Epoch: "9f2c41d07a5be310", Latest: 1042, New: true},
		{Epoch: "9f2c41d07a5be310", Latest: 0},
		{Epoch: "a", Latest: 1<<64 - 1},
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

func TestParseHelloIsExtensible(t *testing.T) {
	h, err := ParseHello("OK hello idle=1800 latest=7 epoch=ab zz=top client=new")
	if err != nil || h != (Hello{Epoch: "ab", Latest: 7, New: true}) {
		t.Fatalf("ParseHello with unknown keys, any order = %+v, %v", h, err)
	}
	// Without client=: known, which can cost a repeat, never a loss.
	if h, err := ParseHello("OK hello epoch=ab latest=7"); err != nil || h.New {
		t.Fatalf("ParseHello without client = %+v, %v; want known", h, err)
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
		ErrUnknownCommand: false, "ERR line too long, really": false, OK: false,
	} {
		if got := IsFarewell(line); got != want {
			t.Errorf("IsFarewell(%q) = %v, want %v", line, got, want)
		}
	}
}
