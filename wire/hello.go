package wire

import (
	"strconv"
	"strings"
	"time"
)

// HelloV2 is the word a client puts after its id to ask for the extended
// reply ("hello <client-id> v2"). A server that predates it answers
// ErrBadClientID, a version-1 server ErrUnknownCommand; plain "hello
// <client-id>" keeps its plain OK, so clients written before it work on.
const HelloV2 = "v2"

// HelloPrefix starts the extended reply to hello. No version-1 reply, and
// no OK that answers another command, starts with it: a banner "OK" or a
// stray line cannot be taken for identification.
const HelloPrefix = "OK hello"

// Values of the extended reply's client field.
const (
	ClientNew   = "new"   // the server holds no position for the id: it starts from the moment its connection opened
	ClientKnown = "known" // the server resumes from the id's acknowledged position
)

// MaxEpochBytes bounds an epoch as a client accepts it.
const MaxEpochBytes = 32

// MaxIdle bounds the idle timeout a client accepts in the extended reply
// (ten years); a server whose timeout is longer says MaxIdle, which no
// client's refresh comes near.
const MaxIdle = 10 * 365 * 24 * time.Hour

// Hello is what the extended reply to hello tells: the store's epoch (ids
// are only comparable under one epoch), its latest item id, whether the
// server knew the client id, and its idle timeout.
type Hello struct {
	Epoch  string // "" when the server does not tell it (plain OK)
	Latest uint64 // the highest item id the store has handed out
	New    bool   // the client id starts from now: nothing from before is news
	// Idle is the server's notification-mode idle timeout, in whole
	// seconds from 1s to MaxIdle; 0 when the server does not tell it.
	Idle time.Duration
	// PushItems: the server offers notification mode with items in the
	// pushes ("push=items"; CmdNotifyItems enters it).
	PushItems bool
}

// PushItemsWord is what the extended reply's push field lists when the
// server offers items in pushes. The field is a comma-separated list of
// words; a client ignores the words it does not know.
const PushItemsWord = "items"

// AppendHello appends the extended reply for h, without terminator:
// "OK hello epoch=<epoch> latest=<id> client=new|known idle=<seconds>
// push=items".
// Fields are key=value, separated by one space; a client ignores keys it
// does not know, so later fields can be added without a new revision.
// idle is written when h.Idle > 0, in whole seconds rounded down, at
// least 1 and at most MaxIdle's; push=items when h.PushItems.
func AppendHello(dst []byte, h Hello) []byte {
	dst = append(dst, HelloPrefix+" epoch="...)
	dst = append(dst, h.Epoch...)
	dst = append(dst, " latest="...)
	dst = strconv.AppendUint(dst, h.Latest, 10)
	dst = append(dst, " client="...)
	if h.New {
		dst = append(dst, ClientNew...)
	} else {
		dst = append(dst, ClientKnown...)
	}
	if h.Idle > 0 {
		dst = append(dst, " idle="...)
		dst = strconv.AppendInt(dst, idleSeconds(h.Idle), 10)
	}
	if h.PushItems {
		dst = append(dst, " push="+PushItemsWord...)
	}
	return dst
}

// idleSeconds is d as the idle field says it: whole seconds, rounded
// down, from 1 to MaxIdle's.
func idleSeconds(d time.Duration) int64 {
	return int64(min(max(d, time.Second), MaxIdle) / time.Second)
}

// IsHelloReply reports whether line is an extended reply to hello,
// well-formed or not.
func IsHelloReply(line string) bool {
	return line == HelloPrefix || strings.HasPrefix(line, HelloPrefix+" ")
}

// ParseHello reads an extended reply to hello. Unknown keys are ignored;
// a known key with a bad value, a missing epoch or latest, or a field that
// is not key=value is an error: a client then cannot trust its ids against
// this server's and should treat the store as one it has not seen.
// A missing client field reads as known, which costs at most a repeated
// item where the opposite could cost a lost one; a missing idle as not
// told (0). idle is a decimal from 1 to MaxIdle's seconds.
func ParseHello(line string) (Hello, error) {
	var h Hello
	if !IsHelloReply(line) {
		return h, invalidf("a reply to hello starts with %q, got %q", HelloPrefix, clip(line))
	}
	var haveEpoch, haveLatest bool
	for _, field := range strings.Split(strings.TrimPrefix(line, HelloPrefix), " ")[1:] {
		key, value, ok := strings.Cut(field, "=")
		if !ok || key == "" {
			return Hello{}, invalidf("a field of the reply to hello is key=value, got %q", clip(field))
		}
		switch key {
		case "epoch":
			if !ValidEpoch(value) {
				return Hello{}, invalidf("an epoch is 1 to %d letters and digits, got %q", MaxEpochBytes, clip(value))
			}
			h.Epoch, haveEpoch = value, true
		case "latest":
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil || strconv.FormatUint(n, 10) != value {
				return Hello{}, invalidf("latest is a decimal item id, got %q", clip(value))
			}
			h.Latest, haveLatest = n, true
		case "client":
			switch value {
			case ClientNew:
				h.New = true
			case ClientKnown:
			default:
				return Hello{}, invalidf("client is %q or %q, got %q", ClientNew, ClientKnown, clip(value))
			}
		case "idle":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 1 || n > int64(MaxIdle/time.Second) || strconv.FormatInt(n, 10) != value {
				return Hello{}, invalidf("idle is a decimal number of seconds from 1 to %d, got %q", int64(MaxIdle/time.Second), clip(value))
			}
			h.Idle = time.Duration(n) * time.Second
		case "push":
			// A list, so that later push forms need no new key; words
			// this client does not know are a newer server's, not an
			// error.
			for w := range strings.SplitSeq(value, ",") {
				if w == PushItemsWord {
					h.PushItems = true
				}
			}
		}
	}
	if !haveEpoch || !haveLatest {
		return Hello{}, invalidf("a reply to hello carries epoch= and latest=, got %q", clip(line))
	}
	return h, nil
}

// ValidEpoch reports whether s can be an epoch: 1 to MaxEpochBytes ASCII
// letters and digits.
func ValidEpoch(s string) bool {
	if s == "" || len(s) > MaxEpochBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
