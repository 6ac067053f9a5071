// Package wire holds what both ends of hark's line protocol share: the
// vocabulary of commands and replies, a bounded line reader, and the rules
// that keep item values unambiguous on the wire. docs/PROTOCOL.md is the
// specification; this package is its executable part.
package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLine is the longest line, without its terminator, that a receiver
// accepts. Anything longer is a protocol error.
const MaxLine = 4096

// Commands a client sends.
const (
	CmdRandom     = "random?"
	CmdClassified = "classified?"
	CmdNotify     = "notif"
	CmdStopNotify = "stop_notif"
	// CmdHello is hark's identification extension: "hello <client-id>",
	// or "hello <client-id> v2" for the extended reply (see Hello). A
	// version-1 server answers it with ERR unknown command (or not at all).
	CmdHello = "hello"
	// CmdSeen acknowledges, after hello, every item received with an id up
	// to its argument: "seen <id>". Only then does the read position move.
	CmdSeen = "seen"
	// CmdNotifyItems enters notification mode with items in the pushes
	// (docs/PROTOCOL.md, Items in pushes): only after hello, and only on
	// a server whose reply to hello offered it (Hello.PushItems).
	CmdNotifyItems = "notif items"
)

// Lines a server sends.
const (
	OK              = "OK"
	NotifPrefix     = "notif:"
	NotifRandom     = "notif: random"
	NotifClassified = "notif: classified"
	ErrPrefix       = "ERR"

	ErrUnknownCommand  = "ERR unknown command"
	ErrLineTooLongLine = "ERR line too long"
	ErrBadClientID     = "ERR bad client id"
	ErrAlreadyHello    = "ERR already identified"
	ErrTooManyConns    = "ERR too many connections"
	ErrTooManyFromAddr = "ERR too many connections from your address"
	ErrNotIdentified   = "ERR not identified"
	ErrBadSeenID       = "ERR bad id"
	// ErrGoingAway is a server's last line to a connection that said
	// hello, when it shuts down on purpose: the client goes to another
	// address of the same store, if it has one, and does not come back to
	// this one soon. Never sent before hello, so version-1 clients never
	// meet it.
	ErrGoingAway = "ERR server going away"
	// ErrStoreUnavailable answers hello when the server cannot read the
	// client's position from its store (a gateway whose NATS cluster is
	// electing a leader): starting the client from now would lose what it
	// has not read, so the server closes the connection and the client
	// comes back later, or tries another address of its list.
	ErrStoreUnavailable = "ERR store unavailable, try again later"
)

// IsFarewell reports whether line is an error a server sends just before
// it closes the connection (too many connections, a line too long, a
// failed or missing auth, TLS spoken on one side only, a server going
// away). A client ends the connection on it, whatever it was waiting for.
func IsFarewell(line string) bool {
	return strings.HasPrefix(line, ErrTooManyConns) || line == ErrLineTooLongLine ||
		IsAuthFarewell(line) || line == ErrTLSRequired || line == ErrNoTLS || line == ErrGoingAway ||
		line == ErrStoreUnavailable
}

// Kind names what an item is.
type Kind string

const (
	KindRandom     Kind = "random"
	KindClassified Kind = "classified"
)

// Valid reports whether k is one of the protocol's kinds.
func (k Kind) Valid() bool { return k == KindRandom || k == KindClassified }

// Notification returns the push line that announces an item of kind k.
func (k Kind) Notification() string {
	if k == KindRandom {
		return NotifRandom
	}
	return NotifClassified
}

// Limits on what may be published.
const (
	MaxAdBytes       = 1000
	MaxClientIDBytes = 64
)

// ErrInvalid matches (errors.Is) every validation error in this package,
// so that callers can tell bad input (HTTP 400, exit status 2) from
// failures.
var ErrInvalid = errors.New("invalid value")

// invalidError is a validation error: its text says only what is wrong.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{fmt.Sprintf(format, args...)}
}

// IsReserved reports whether s could be mistaken for a protocol line rather
// than an item: exactly OK, or starting with ERR or notif:. No reply to
// random? or classified? is ever reserved, which is what lets a client tell
// a push or a stray duplicate OK from an item.
func IsReserved(s string) bool {
	return s == OK || strings.HasPrefix(s, ErrPrefix) || strings.HasPrefix(s, NotifPrefix)
}

// ValidateAd checks that s can be published as a classified ad: non-empty,
// at most MaxAdBytes of UTF-8 on one line, free of control characters, and
// not reserved.
func ValidateAd(s string) error {
	if s == "" {
		return invalidf("an ad cannot be empty")
	}
	if len(s) > MaxAdBytes {
		return invalidf("an ad is at most %d bytes, this one is %d", MaxAdBytes, len(s))
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return invalidf("an ad must be UTF-8 text: invalid byte 0x%02x at offset %d", s[i], i)
			}
		}
		// Line and paragraph separators break lines in many renderers just
		// as \n does, so they are refused with the control characters.
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return invalidf("an ad must be one line without control characters: found %U at offset %d", r, i)
		}
	}
	if IsReserved(s) {
		return invalidf("an ad cannot be exactly %q or start with %q or %q: clients would take it for a protocol line", OK, ErrPrefix, NotifPrefix)
	}
	return nil
}

// ParseRandom parses a random number as the protocol carries it: a
// canonical decimal integer from 0 to 2^64-1, without sign or leading zeros.
func ParseRandom(s string) (uint64, error) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, invalidf("a random number is a decimal integer from 0 to %d, got %q", uint64(1<<64-1), clip(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, invalidf("a random number is a decimal integer from 0 to %d, got %q", uint64(1<<64-1), clip(s))
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, invalidf("a random number is a decimal integer from 0 to %d, got %q", uint64(1<<64-1), clip(s))
	}
	return n, nil
}

// ValidateClientID checks an identification extension client id: 1 to
// MaxClientIDBytes of ASCII letters, digits, '.', '_' and '-'.
func ValidateClientID(id string) error {
	if id == "" || len(id) > MaxClientIDBytes {
		return invalidf("a client id is 1 to %d characters, got %d", MaxClientIDBytes, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return invalidf("a client id may hold only ASCII letters, digits, '.', '_' and '-': byte 0x%02x at offset %d", c, i)
		}
	}
	return nil
}

// AppendItem appends the reply an identified connection gets for an item:
// its id, one space, its value.
func AppendItem(dst []byte, id uint64, value string) []byte {
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, ' ')
	return append(dst, value...)
}

// ParseItem splits an identified reply into id and value. An empty line
// (no item exists) returns id 0 and ok true.
func ParseItem(line string) (id uint64, value string, err error) {
	if line == "" {
		return 0, "", nil
	}
	head, value, found := strings.Cut(line, " ")
	if !found {
		return 0, "", invalidf("an identified reply is \"<id> <value>\", got %q", clip(line))
	}
	id, err = strconv.ParseUint(head, 10, 64)
	if err != nil || id == 0 {
		return 0, "", invalidf("an identified reply starts with a positive item id, got %q", clip(line))
	}
	return id, value, nil
}

// AppendPushItem appends the push that carries an item, for a connection
// in notification mode with items (CmdNotifyItems), without terminator:
// "notif: <kind> <id> <value>".
func AppendPushItem(dst []byte, k Kind, id uint64, value string) []byte {
	dst = append(dst, k.Notification()...)
	dst = append(dst, ' ')
	return AppendItem(dst, id, value)
}

// ParsePushItem reads a push that carries an item. ok is false when line
// is not one: a plain push, or any other line. A line that starts like
// one but is malformed (no id, an empty value, a number that is not one,
// an ad that ValidateAd refuses) is an error.
func ParsePushItem(line string) (k Kind, id uint64, value string, ok bool, err error) {
	var rest string
	switch {
	case strings.HasPrefix(line, NotifClassified+" "):
		k, rest = KindClassified, line[len(NotifClassified)+1:]
	case strings.HasPrefix(line, NotifRandom+" "):
		k, rest = KindRandom, line[len(NotifRandom)+1:]
	default:
		return "", 0, "", false, nil
	}
	id, value, err = ParseItem(rest)
	switch {
	case err != nil:
		return "", 0, "", true, err
	case value == "": // ParseItem("") is no item at all
		return "", 0, "", true, invalidf("a push with an item is \"notif: <kind> <id> <value>\", got %q", clip(line))
	case k == KindRandom:
		if _, err := ParseRandom(value); err != nil {
			return "", 0, "", true, err
		}
	default:
		// A value that could not have been published (a control
		// character, a reserved line) is as malformed here as in a reply.
		if err := ValidateAd(value); err != nil {
			return "", 0, "", true, err
		}
	}
	return k, id, value, true, nil
}

// clip shortens s for an error message, so that a hostile value cannot make
// a log line or an HTTP error arbitrarily long.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
