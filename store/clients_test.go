package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// The stored seen time moves only by an hour or more, so that clients
// acknowledging every few seconds do not rewrite the age index each time.
func TestClientSeenMovesByTheHour(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	mustSave(t, st, "c", store.Client{Ad: 1, Seen: t0})
	mustSave(t, st, "c", store.Client{Ad: 2, Seen: t0.Add(59 * time.Minute)})
	st = reopen(t, st, store.Retention{})
	wantClient(t, st, "c", store.Client{Ad: 2, Seen: t0})
	mustSave(t, st, "c", store.Client{Ad: 2, Seen: t0.Add(time.Hour)})
	st = reopen(t, st, store.Retention{})
	wantClient(t, st, "c", store.Client{Ad: 2, Seen: t0.Add(time.Hour)})
	// Nor does it move back.
	mustSave(t, st, "c", store.Client{Ad: 2, Seen: t0.Add(-5 * time.Hour)})
	st = reopen(t, st, store.Retention{})
	wantClient(t, st, "c", store.Client{Ad: 2, Seen: t0.Add(time.Hour)})
}

// An id belongs to the source that established it: acknowledging from
// elsewhere neither moves it nor counts against the other source.
func TestClientSourceFixedWhenStored(t *testing.T) {
	keep := store.Retention{ClientsPerSource: 1}
	st := open(t, t.TempDir(), keep)
	mustSave(t, st, "laptop", store.Client{Ad: 1, Seen: t0, Source: "203.0.113.5"})
	mustSave(t, st, "laptop", store.Client{Ad: 2, Seen: t0, Source: "2001:db8:1:2::/64"})
	wantClient(t, st, "laptop", store.Client{Ad: 2, Seen: t0, Source: "203.0.113.5"})
	// What is staged shows at once, with the stored source.
	st.StageClient("laptop", store.Client{Ad: 3, Seen: t0, Source: "198.51.100.1"})
	wantClient(t, st, "laptop", store.Client{Ad: 3, Seen: t0, Source: "203.0.113.5"})
	mustSave(t, st, "phone", store.Client{Ad: 1, Seen: t0, Source: "2001:db8:1:2::/64"})
	st = reopen(t, st, keep)
	wantClient(t, st, "laptop", store.Client{Ad: 3, Seen: t0, Source: "203.0.113.5"})
	wantClient(t, st, "phone", store.Client{Ad: 1, Seen: t0, Source: "2001:db8:1:2::/64"})
}

// One source establishes at most ClientsPerSource ids; other sources, and
// ids of unknown source, are not held back by it. The counts are rebuilt
// from the file at open. Refusals are logged once, then counted.
func TestClientsPerSource(t *testing.T) {
	var logs logBuffer
	keep := store.Retention{ClientsPerSource: 2}
	dir := t.TempDir()
	st := openWith(t, dir, store.Options{Retention: keep, Logger: logs.logger()})
	for i := range 2 {
		mustSave(t, st, fmt.Sprint("a", i), store.Client{Ad: 1, Seen: t0, Source: "A"})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openWith(t, dir, store.Options{Retention: keep, Logger: logs.logger()})
	for i := 2; i < 5; i++ {
		mustSave(t, st, fmt.Sprint("a", i), store.Client{Ad: 1, Seen: t0, Source: "A"})
	}
	mustSave(t, st, "b0", store.Client{Ad: 1, Seen: t0, Source: "B"})
	for i := range 3 {
		mustSave(t, st, fmt.Sprint("u", i), store.Client{Ad: 1, Seen: t0})
	}
	for id, want := range map[string]bool{"a0": true, "a1": true, "a2": false, "a4": false, "b0": true, "u2": true} {
		if _, found, err := st.Client(id); err != nil || found != want {
			t.Errorf("Client(%q) found = %v, %v; want %v", id, found, err, want)
		}
	}
	if n := st.Clients(); n != 6 {
		t.Errorf("Clients() = %d, want 6", n)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	lines := logs.lines("client id not remembered: its source")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "source=A") ||
		!strings.Contains(lines[1], "2 more") {
		t.Errorf("want the refusal once, then its count, got:\n%s", logs.String())
	}
}

// The failure this guards against: strangers' ids evicting a real
// client's position, so that coming back it missed what was published.
// An established client keeps its position however many ids strangers
// try to create, even one that has not received a single item.
func TestEstablishedClientSurvivesFlood(t *testing.T) {
	keep := store.Retention{Clients: 100, ClientsPerSource: 1000}
	st := open(t, t.TempDir(), keep)
	mustSave(t, st, "desk", store.Client{Seen: t0.Add(-24 * time.Hour), Source: "192.0.2.7"})
	var last *store.Commit
	for i := range 1000 {
		last = st.StageClient(fmt.Sprint("stranger-", i), store.Client{Seen: t0, Source: fmt.Sprint("198.51.100.", i%250)})
	}
	// Commits run one at a time, in order: the last one over means all are.
	if err := last.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := st.Clients(); n != keep.Clients {
		t.Errorf("Clients() = %d, want the cap %d", n, keep.Clients)
	}
	st = reopen(t, st, keep)
	wantClient(t, st, "desk", store.Client{Seen: t0.Add(-24 * time.Hour), Source: "192.0.2.7"})
}

// What the file cannot hold is refused before it can fail a commit that
// other clients share.
func TestStageClientBadInput(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	reported := make(chan error, 3)
	st.OnCommitError(func(err error) { reported <- err })
	for name, tc := range map[string]struct {
		id string
		c  store.Client
	}{
		"empty id":    {"", store.Client{Seen: t0}},
		"long id":     {strings.Repeat("x", wire.MaxClientIDBytes+1), store.Client{Seen: t0}},
		"long source": {"c", store.Client{Seen: t0, Source: strings.Repeat("s", store.MaxSourceBytes+1)}},
	} {
		err := st.SaveClient(context.Background(), tc.id, tc.c)
		if !errors.Is(err, wire.ErrInvalid) {
			t.Errorf("%s: err = %v, want wire.ErrInvalid", name, err)
		}
		select {
		case got := <-reported:
			if got.Error() != err.Error() {
				t.Errorf("%s: the handler got %v", name, got)
			}
		default:
			t.Errorf("%s: the OnCommitError handler was not called", name)
		}
	}
	if st.Clients() != 0 {
		t.Errorf("Clients() = %d after refused saves", st.Clients())
	}
	// A source of exactly the limit is fine.
	mustSave(t, st, "c", store.Client{Seen: t0, Source: strings.Repeat("s", store.MaxSourceBytes)})
}
