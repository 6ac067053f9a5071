package netclient

import (
	"testing"
	"time"
)

// The reader's token bucket: a burst at full speed, then the rate, and a
// wait long enough for a batch of lines rather than one.
func TestBucketBoundsUnsolicitedLines(t *testing.T) {
	at := time.Unix(1000, 0)
	b := bucket{rate: 1000, burst: 200, tokens: 200, at: at}
	for i := range 200 {
		if w := b.take(at); w != 0 {
			t.Fatalf("line %d of the burst waits %v", i+1, w)
		}
	}
	w := b.take(at)
	if w < 99*time.Millisecond || w > 101*time.Millisecond {
		t.Fatalf("past the burst: wait %v, want about 100 ms (a batch of 100 at 1000/s)", w)
	}
	// After that wait, a batch of lines goes through without waiting.
	at = at.Add(w)
	for i := range 100 {
		if w := b.take(at); w != 0 {
			t.Fatalf("line %d after the wait waits %v", i+1, w)
		}
	}
	// Tokens never exceed the burst, however long the quiet.
	at = at.Add(time.Hour)
	for range 200 {
		b.take(at)
	}
	if w := b.take(at); w == 0 {
		t.Fatal("an hour of quiet bought more than the burst")
	}
}
