package netclient_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/harkapp/hark/netclient"
)

func TestParseAddrs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // each Addr's String
	}{
		{"a.example:6789", []string{"a.example:6789"}},
		{"a.example:6789,b.example:6789", []string{"a.example:6789", "b.example:6789"}},
		{" tls://a.example:1 , TLS://[::1]:2,tls://b.example:3", []string{"tls://a.example:1", "tls://[::1]:2", "tls://b.example:3"}},
		{"127.0.0.1:6789,127.0.0.2:6789", []string{"127.0.0.1:6789", "127.0.0.2:6789"}},
	} {
		got, err := netclient.ParseAddrs(tc.in)
		if err != nil {
			t.Fatalf("ParseAddrs(%q): %v", tc.in, err)
		}
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if !slices.Equal(s, tc.want) {
			t.Fatalf("ParseAddrs(%q) = %q, want %q", tc.in, s, tc.want)
		}
	}
	for _, tc := range []struct{ in, says string }{
		{"a:1,", `address 2 of the list is empty`},
		{",a:1", `address 1 of the list is empty`},
		{"a:1,,b:2", `address 2 of the list is empty`},
		{"a:1,b", `address 2 of the list: "b": missing port`},
		{"a:1,http://b:2", `address 2 of the list: "http://b:2" is a publish API address`},
		{"tls://a:1,b:2", `"tls://a:1" and "b:2": either every address speaks TLS (tls://HOST:PORT) or none does`},
		{"a:1,tls://b:2", `either every address speaks TLS`},
		{"A.example:6789,a.example:6789", `addresses 1 and 2 are both a.example:6789: list each server once`},
		{"[::1]:1,[0:0::1]:1", `addresses 1 and 2 are both [::1]:1`},
		{"a:1,tls://a:1", `either every address speaks TLS`},
		{strings.Repeat("a:1,", 16) + "a:1", "17 addresses; a list holds at most 16"},
	} {
		_, err := netclient.ParseAddrs(tc.in)
		if !errors.Is(err, netclient.ErrBadAddr) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseAddrs(%q) = %v; want ErrBadAddr saying %q", tc.in, err, tc.says)
		}
	}
}

// The marks of one address keep today's key, its host:port as written;
// a list's are the same whatever its order and spelling, so that its
// gateways share them.
func TestMarksKey(t *testing.T) {
	for in, want := range map[string]string{
		"Hark.example:6789":                         "Hark.example:6789",
		"tls://hark.example:6789":                   "hark.example:6789",
		"b.example:2,tls://x:1":                     "b.example:2,tls://x:1", // does not parse: itself
		"b.example:2,A.example:6789":                "a.example:6789,b.example:2",
		"tls://A.example:6789, tls://b.example:2":   "a.example:6789,b.example:2",
		"[0:0::1]:6789,127.0.0.1:6789":              "127.0.0.1:6789,[::1]:6789",
		"127.0.0.1:6789,[::1]:6789,localhost:06789": "127.0.0.1:6789,[::1]:6789,localhost:6789",
	} {
		if got := netclient.MarksKey(in); got != want {
			t.Errorf("MarksKey(%q) = %q, want %q", in, got, want)
		}
	}
}
