package wire_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/harkapp/hark/wire"
)

// checkInvalid asserts what every refusal must look like: matched by
// ErrInvalid, with a message fit to show to a user as is.
func checkInvalid(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("err = nil, want a refusal")
	}
	if !errors.Is(err, wire.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	msg := err.Error()
	if msg == "" || strings.HasPrefix(strings.ToLower(msg), "invalid") {
		t.Errorf("message %q: want a non-empty message not starting with \"invalid\"", msg)
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("message %q spans lines", msg)
	}
}

func TestValidateAdAccepts(t *testing.T) {
	for _, ad := range []string{
		"Vélo à vendre, 50 €",
		"Appartement à louer €",
		"x",
		strings.Repeat("a", wire.MaxAdBytes),
		strings.Repeat("€", wire.MaxAdBytes/3), // 999 bytes of 3-byte runes
		"  leading and trailing spaces  ",
		" ",
		"OKAY",
		"ok",
		" OK",
		"OK ",
		"Error in the listing",
		"err",
		"notif",
		"notif :",
		"NOTIF: x",
		"random?",
		"\u00a0non-breaking space",
		"emoji 🚲",
		"replacement char \ufffd is a real rune",
	} {
		if err := wire.ValidateAd(ad); err != nil {
			t.Errorf("ValidateAd(%.40q) = %v, want nil", ad, err)
		}
	}
}

func TestValidateAdRefuses(t *testing.T) {
	tests := []struct {
		name, ad string
	}{
		{"empty", ""},
		{"1001 bytes", strings.Repeat("a", wire.MaxAdBytes+1)},
		{"1001 bytes of multi-byte runes", strings.Repeat("é", 500) + "a"},
		{"LF", "\n"},
		{"LF inside", "two\nlines"},
		{"CR", "\r"},
		{"CR at the end", "ad\r"},
		{"tab", "a\tb"},
		{"NUL", "a\x00b"},
		{"DEL", "a\x7fb"},
		{"ESC", "\x1b[31mred"},
		{"C1 NEL", "a\u0085b"},
		{"C1 CSI", "a\u009bb"},
		{"line separator", "a\u2028b"},
		{"paragraph separator", "a\u2029b"},
		{"0xff byte", "a\xffb"},
		{"lone continuation byte", "\x80"},
		{"truncated rune", "caf\xc3"},
		{"overlong encoding", "\xc0\xaf"},
		{"surrogate half", "\xed\xa0\x80"},
		{"exactly OK", "OK"},
		{"ERR alone", "ERR"},
		{"ERR reply", "ERR unknown command"},
		{"ERR prefix without space", "ERRATA"},
		{"notif: alone", "notif:"},
		{"notif: random", "notif: random"},
		{"notif: anything", "notif:xyz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkInvalid(t, wire.ValidateAd(tt.ad))
		})
	}
}

// Every line a server may send is refused as an ad, so that a client can
// never mistake an item for one of them.
func TestValidateAdRefusesServerLines(t *testing.T) {
	for _, line := range []string{
		wire.OK, wire.NotifRandom, wire.NotifClassified, wire.ErrUnknownCommand,
		wire.ErrLineTooLongLine, wire.ErrBadClientID, wire.ErrAlreadyHello, wire.ErrTooManyConns,
	} {
		if !wire.IsReserved(line) {
			t.Errorf("IsReserved(%q) = false", line)
		}
		checkInvalid(t, wire.ValidateAd(line))
	}
}

func TestIsReserved(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"OK", true},
		{"ERR", true},
		{"ERR x", true},
		{"ERRx", true},
		{"notif:", true},
		{"notif: classified", true},
		{"", false},
		{"OKAY", false},
		{"OK ", false},
		{" OK", false},
		{"ok", false},
		{"Error", false},
		{"err x", false},
		{" ERR", false},
		{"notif", false},
		{"Notif: x", false},
		{"42", false},
	}
	for _, tt := range tests {
		if got := wire.IsReserved(tt.s); got != tt.want {
			t.Errorf("IsReserved(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestParseRandom(t *testing.T) {
	valid := []struct {
		s    string
		want uint64
	}{
		{"0", 0},
		{"7", 7},
		{"10", 10},
		{"89765234756", 89765234756},
		{"18446744073709551615", 1<<64 - 1},
		{"18446744073709551614", 1<<64 - 2},
		{"9999999999999999999", 9999999999999999999},
	}
	for _, tt := range valid {
		got, err := wire.ParseRandom(tt.s)
		if err != nil || got != tt.want {
			t.Errorf("ParseRandom(%q) = %d, %v, want %d", tt.s, got, err, tt.want)
		}
		// Canonical: parsing then formatting gives the input back.
		if s := strconv.FormatUint(got, 10); s != tt.s {
			t.Errorf("ParseRandom(%q) is not canonical: formats as %q", tt.s, s)
		}
	}

	for _, s := range []string{
		"", "-1", "+1", "-0", "01", "00", "1.5", "1e3", " 1", "1 ", "0x10", "1_000",
		"١", // Arabic-Indic digit one
		"18446744073709551616",
		"99999999999999999999",
		"100000000000000000000", // 21 digits
		strings.Repeat("9", 40),
	} {
		got, err := wire.ParseRandom(s)
		if got != 0 {
			t.Errorf("ParseRandom(%q) = %d with error %v, want 0", s, got, err)
		}
		checkInvalid(t, err)
	}
}

func TestValidateClientID(t *testing.T) {
	for _, id := range []string{
		"a", "Z", "0", "laptop-1", "my.desk_top", "A-Z_a-z.0-9", "-", "..",
		strings.Repeat("x", wire.MaxClientIDBytes),
	} {
		if err := wire.ValidateClientID(id); err != nil {
			t.Errorf("ValidateClientID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{
		"", strings.Repeat("x", wire.MaxClientIDBytes+1), "a b", " a", "a\n", "a\r", "a\x00",
		"é", "a/b", "a:b", "a@b", "a+b", "ünïcode",
	} {
		t.Run(strconv.Quote(id), func(t *testing.T) {
			checkInvalid(t, wire.ValidateClientID(id))
		})
	}
}

func TestItemRoundTrip(t *testing.T) {
	tests := []struct {
		id    uint64
		value string
		line  string
	}{
		{1, "42", "1 42"},
		{7, "Vélo à vendre", "7 Vélo à vendre"},
		{12, "", "12 "},
		{3, "value with  two  spaces", "3 value with  two  spaces"},
		{4, " leading space", "4  leading space"},
		{5, "OK", "5 OK"},
		{1<<64 - 1, "max", "18446744073709551615 max"},
	}
	for _, tt := range tests {
		line := wire.AppendItem(nil, tt.id, tt.value)
		if string(line) != tt.line {
			t.Errorf("AppendItem(nil, %d, %q) = %q, want %q", tt.id, tt.value, line, tt.line)
		}
		id, value, err := wire.ParseItem(string(line))
		if err != nil || id != tt.id || value != tt.value {
			t.Errorf("ParseItem(%q) = %d, %q, %v, want %d, %q", line, id, value, err, tt.id, tt.value)
		}
	}
}

func TestAppendItemKeepsDst(t *testing.T) {
	dst := make([]byte, 0, 64)
	dst = append(dst, "prefix|"...)
	got := wire.AppendItem(dst, 9, "nine")
	if string(got) != "prefix|9 nine" {
		t.Errorf("AppendItem = %q, want %q", got, "prefix|9 nine")
	}
}

func TestParseItem(t *testing.T) {
	// An empty line is the reply when no item exists.
	id, value, err := wire.ParseItem("")
	if err != nil || id != 0 || value != "" {
		t.Errorf(`ParseItem("") = %d, %q, %v, want 0, "", nil`, id, value, err)
	}

	for _, line := range []string{
		"42",                     // no space: an unidentified reply
		"OK",                     // a stray protocol line
		"0 zero",                 // ids start at 1
		"-1 x",                   // no sign
		"+1 x",                   // no sign
		" x",                     // empty id
		"x y",                    // not a number
		"1.0 x",                  // not an integer
		"18446744073709551616 x", // over 2^64-1
		strings.Repeat("9", 200) + " " + strings.Repeat("v", 200),
	} {
		t.Run(strconv.Quote(line), func(t *testing.T) {
			id, value, err := wire.ParseItem(line)
			if id != 0 || value != "" {
				t.Errorf("ParseItem(%.50q) = %d, %q, want zero values with the error", line, id, value)
			}
			checkInvalid(t, err)
			// Hostile input must not make the message arbitrarily long.
			if len(err.Error()) > 200 {
				t.Errorf("message is %d bytes long", len(err.Error()))
			}
		})
	}
}

func TestKind(t *testing.T) {
	tests := []struct {
		k     wire.Kind
		valid bool
		notif string
	}{
		{wire.KindRandom, true, wire.NotifRandom},
		{wire.KindClassified, true, wire.NotifClassified},
	}
	for _, tt := range tests {
		if got := tt.k.Valid(); got != tt.valid {
			t.Errorf("Kind(%q).Valid() = %v, want %v", tt.k, got, tt.valid)
		}
		if got := tt.k.Notification(); got != tt.notif {
			t.Errorf("Kind(%q).Notification() = %q, want %q", tt.k, got, tt.notif)
		}
		if !wire.IsReserved(tt.k.Notification()) {
			t.Errorf("notification %q is not reserved", tt.k.Notification())
		}
	}
	if wire.NotifRandom != "notif: random" || wire.NotifClassified != "notif: classified" {
		t.Errorf("notification lines changed: %q, %q", wire.NotifRandom, wire.NotifClassified)
	}
	for _, k := range []wire.Kind{"", "Random", "RANDOM", "random ", "classified?", "ad", "classifieds"} {
		if k.Valid() {
			t.Errorf("Kind(%q).Valid() = true", k)
		}
	}
}

func TestErrorMessagesAreBounded(t *testing.T) {
	// clip keeps the quoted input short; the message stays one line.
	_, err := wire.ParseRandom(strings.Repeat("1", 5000))
	checkInvalid(t, err)
	if len(err.Error()) > 200 {
		t.Errorf("ParseRandom message is %d bytes", len(err.Error()))
	}
}

// A push with an item round-trips; a plain push or a reply is not one;
// a line that starts like one but carries no valid item is an error, so
// that a client neither drops nor invents an item.
func TestPushItem(t *testing.T) {
	for _, c := range []struct {
		k     wire.Kind
		id    uint64
		value string
	}{
		{wire.KindClassified, 4182, "Nice appart in the 11e."},
		{wire.KindClassified, 1, "x y  z"},
		{wire.KindRandom, 1<<64 - 1, "18446744073709551615"},
		{wire.KindRandom, 9, "0"},
	} {
		line := string(wire.AppendPushItem([]byte("keep:"), c.k, c.id, c.value))[len("keep:"):]
		k, id, v, ok, err := wire.ParsePushItem(line)
		if !ok || err != nil || k != c.k || id != c.id || v != c.value {
			t.Errorf("wire.ParsePushItem(%q) = %q %d %q %v %v", line, k, id, v, ok, err)
		}
	}
	if got := string(wire.AppendPushItem(nil, wire.KindClassified, 4182, "Nice")); got != "notif: classified 4182 Nice" {
		t.Errorf("wire.AppendPushItem = %q", got)
	}
	for _, line := range []string{wire.NotifClassified, wire.NotifRandom, "OK", "4182 Nice", "", "notif: classifiedx 1 a", "notif:  classified 1 a"} {
		if _, _, _, ok, err := wire.ParsePushItem(line); ok || err != nil {
			t.Errorf("wire.ParsePushItem(%q) = ok %v, %v; want not a push with an item", line, ok, err)
		}
	}
	for _, line := range []string{
		"notif: classified ",
		"notif: classified 0 a",
		"notif: classified x a",
		"notif: classified 12",
		"notif: classified 12 ",
		"notif: random 3 -1",
		"notif: random 3 012",
		"notif: random 3",
		"notif: classified 12 ERR x",
		"notif: classified 12 OK",
		"notif: classified 12 a\tb",
	} {
		if _, _, _, ok, err := wire.ParsePushItem(line); !ok || !errors.Is(err, wire.ErrInvalid) {
			t.Errorf("wire.ParsePushItem(%q) = ok %v, %v; want a malformed push", line, ok, err)
		}
	}
}
