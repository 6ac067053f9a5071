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
	c.send("random?")
	c.expect("456902234")
	c.send("classified?")
	c.expect("Nice appart in the 11e.")
	c.send("notif")
	c.expect("OK")
	publish(t, s, "classified", "Sunny studio, Montmartre")
	publish(t, s, "random", "89765234756")
	c.expect("notif: classified", "notif: random")
	c.send("stop_notif")
	c.expect("OK")
	c.send("random?")
	c.expect("89765234756")
	c.send("notif")
	c.expect("OK", "notif: classified")
}

// TestPipelining sends a batch of commands in one write: the server
// answers each, strictly in order, ignores the empty line, and rejects the
// unknown command in its place.
func TestPipelining(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "random", "7")
	publish(t, s, "classified", "Bike for sale")
	c := dial(t, s)
	c.write("random?\r\nclassified?\r\nnotif\r\n\r\nstop_notif\nfoo\r\nrandom?\r\n")
	c.expect("7", "Bike for sale", "OK", "OK", "ERR unknown command", "7")
}

// TestNothingLostBetweenStopNotifAndNotif covers the classic cycle's blind
// spot: ads published after stop_notif and before the next notif are
// announced right after that notif's OK, one line per unread ad.
func TestNothingLostBetweenStopNotifAndNotif(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, s)
	c.send("notif")
	c.expect("OK")
	publish(t, s, "classified", "A1")
	c.expect("notif: classified")
	c.send("stop_notif")
	c.expect("OK")
	// The window: the client is fetching and not in notification mode.
	publish(t, s, "classified", "A2")
	publish(t, s, "classified", "A3")
	c.send("classified?")
	c.expect("A1")
	c.send("notif")
	c.expect("OK", "notif: classified", "notif: classified")
	c.send("stop_notif", "classified?", "classified?", "classified?")
	c.expect("OK", "A2", "A3", "A3") // no unread left: the most recent again
	c.send("notif")
	c.expect("OK")
	// Nothing more was announced: the next line is the reply to random?.
	publish(t, s, "random", "5")
	c.expect("notif: random")
}

// TestUnreadMeansSinceConnect: for a connection that has not identified
// itself, what was published before it connected is not unread.
func TestUnreadMeansSinceConnect(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "classified", "old ad")
	publish(t, s, "random", "1")
	c := dial(t, s)
	c.send("notif", "random?")
	c.expect("OK", "1") // no announcement before the reply
	publish(t, s, "random", "2")
	c.expect("notif: random")
	c.send("stop_notif", "notif", "random?")
	c.expect("OK", "OK", "notif: random", "2") // published since its last random?
	c.send("stop_notif", "notif", "classified?")
	c.expect("OK", "OK", "old ad")
}

// TestNotificationsBetweenReplies pipelines many commands while items are
// published: every line is whole, every reply comes in order, and every
// notification arrives.
func TestNotificationsBetweenReplies(t *testing.T) {
	s := startServer(t, Config{})
	publish(t, s, "random", "31337")
	c := dial(t, s)
	c.send("notif")
	c.expect("OK")

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
		c.write(strings.Repeat("random?\r\n", 30))
	}
	<-done
	replies, notifs := 0, 0
	for replies < commands || notifs < ads {
		switch l := c.line(); l {
		case "31337":
			replies++
		case "notif: classified":
			notifs++
		default:
			t.Fatalf("unexpected line %q after %d replies and %d notifications", l, replies, notifs)
		}
	}
	c.send("stop_notif")
	c.expect("OK")
	if replies != commands || notifs != ads {
		t.Fatalf("got %d replies and %d notifications, want %d and %d", replies, notifs, commands, ads)
	}
}
