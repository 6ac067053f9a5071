package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/harkapp/hark/wire"
)

// TestReferenceSession replays the session of docs/PROTOCOL.md byte for
// byte, with its values published through the API first.
func TestReferenceSession(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "random", "456902234")
	publish(t, s, "classified", "Nice appart in the 11e.")

	c := dial(t, s)
	c.Send("random?")
	c.Expect("456902234")
	c.Send("classified?")
	c.Expect("Nice appart in the 11e.")
	c.Send("notif")
	c.Expect("OK")
	publish(t, s, "classified", "Sunny studio, Montmartre")
	publish(t, s, "random", "89765234756")
	c.Expect("notif: classified", "notif: random")
	c.Send("stop_notif")
	c.Expect("OK")
	c.Send("random?")
	c.Expect("89765234756")
	c.Send("notif")
	c.Expect("OK", "notif: classified")
}

// TestPipelining sends a batch of commands in one write: the server
// answers each, strictly in order, ignores the empty line, and rejects the
// unknown command in its place.
func TestPipelining(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "random", "7")
	publish(t, s, "classified", "Bike for sale")
	c := dial(t, s)
	c.Write("random?\r\nclassified?\r\nnotif\r\n\r\nstop_notif\nfoo\r\nrandom?\r\n")
	c.Expect("7", "Bike for sale", "OK", "OK", "ERR unknown command", "7")
}

// TestNothingLostBetweenStopNotifAndNotif covers the classic cycle's blind
// spot: ads published after stop_notif and before the next notif are
// announced right after that notif's OK, one line per unread ad.
func TestNothingLostBetweenStopNotifAndNotif(t *testing.T) {
	s := startServer(t, Config{})
	c := dialNotifying(t, s)
	publish(t, s, "classified", "A1")
	c.Expect("notif: classified")
	c.Send("stop_notif")
	c.Expect("OK")
	// The window: the client is fetching and not in notification mode.
	publish(t, s, "classified", "A2")
	publish(t, s, "classified", "A3")
	c.Send("classified?")
	c.Expect("A1")
	c.Send("notif")
	c.Expect("OK", "notif: classified", "notif: classified")
	c.Send("stop_notif", "classified?", "classified?", "classified?")
	c.Expect("OK", "A2", "A3", "A3") // no unread left: the most recent again
	c.Send("notif")
	c.Expect("OK")
	// Nothing more was announced: the next line is the reply to random?.
	publish(t, s, "random", "5")
	c.Expect("notif: random")
}

// TestUnreadMeansSinceConnect: for a connection that has not identified
// itself, what was published before it connected is not unread.
func TestUnreadMeansSinceConnect(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "classified", "old ad")
	publish(t, s, "random", "1")
	c := dial(t, s)
	c.Send("notif", "random?")
	c.Expect("OK", "1") // no announcement before the reply
	publish(t, s, "random", "2")
	c.Expect("notif: random")
	c.Send("stop_notif", "notif", "random?")
	c.Expect("OK", "OK", "notif: random", "2") // published since its last random?
	c.Send("stop_notif", "notif", "classified?")
	c.Expect("OK", "OK", "old ad")
}

// TestNotificationsBetweenReplies pipelines many commands while items are
// published: every line is whole, every reply comes in order, and every
// notification arrives.
func TestNotificationsBetweenReplies(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "random", "31337")
	c := dialNotifying(t, s)

	const commands, ads = 300, 60
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range ads {
			if _, _, err := s.Publish(context.Background(), wire.KindClassified, fmt.Sprintf("ad %d", i)); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
		}
	}()
	for range commands / 30 {
		c.Write(strings.Repeat("random?\r\n", 30))
	}
	<-done
	replies, notifs := 0, 0
	for replies < commands || notifs < ads {
		switch l := c.Line(); l {
		case "31337":
			replies++
		case "notif: classified":
			notifs++
		default:
			t.Fatalf("unexpected line %q after %d replies and %d notifications", l, replies, notifs)
		}
	}
	c.Send("stop_notif")
	c.Expect("OK")
	if replies != commands || notifs != ads {
		t.Fatalf("got %d replies and %d notifications, want %d and %d", replies, notifs, commands, ads)
	}
}
