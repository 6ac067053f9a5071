//go:build linux || freebsd || netbsd || openbsd

// escapeMarkup exists on the Freedesktop platforms only (desktop_dbus.go),
// where hark talks to the notification daemon itself.

package tray

import "testing"

func TestEscapeMarkup(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Bike for sale, 50 EUR", "Bike for sale, 50 EUR"},
		{"", ""},
		{"<b>bold</b>", "&lt;b&gt;bold&lt;/b&gt;"},
		{"&amp;", "&amp;amp;"},
		{"Tom & Jerry", "Tom &amp; Jerry"},
		{`<a href="x">link</a>`, `&lt;a href="x"&gt;link&lt;/a&gt;`},
		{`<img src="x.png" alt="y"/>`, `&lt;img src="x.png" alt="y"/&gt;`},
		{"1 < 2 > 0", "1 &lt; 2 &gt; 0"},
		{"&lt;", "&amp;lt;"},
		{"it's \"quoted\"", "it's \"quoted\""},
		{"日本語 ünïcödé 😀", "日本語 ünïcödé 😀"},
	} {
		if got := escapeMarkup(c.in); got != c.want {
			t.Errorf("escapeMarkup(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMenuLabel(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"my_file", "my__file"},
		{"_start", "__start"},
		{"a__b", "a____b"},
		{"no underscores", "no underscores"},
		{"", ""},
		{"Latest number: 42", "Latest number: 42"},
		{"_", "__"},
	} {
		if got := menuLabel(c.in); got != c.want {
			t.Errorf("menuLabel(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
