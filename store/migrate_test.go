package store_test

import (
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// A schema "1" store (hark before epochs) is upgraded in place: items,
// positions and the id sequence survive, and the file becomes schema "2",
// which that older hark refuses ("schema version mismatch") rather than
// write clients the new index would miss.
func TestUpgradeFromSchema1(t *testing.T) {
	items := []store.Item{
		{ID: 3, Kind: wire.KindClassified, Value: "Bright two-room flat", Time: t0.Add(-3 * time.Hour)},
		{ID: 5, Kind: wire.KindClassified, Value: "Bike for sale €", Time: t0.Add(-2 * time.Hour)},
		{ID: 8, Kind: wire.KindRandom, Value: "89765234756", Time: t0.Add(-time.Hour)},
		{ID: 9, Kind: wire.KindClassified, Value: "Piano", Time: t0},
	}
	clients := map[string]store.Client{
		"laptop":  {Ad: 5, Random: 8, Seen: t0.Add(-time.Hour)},
		"desktop": {Ad: 9, Random: 0, Seen: t0},
		"old":     {Ad: 3, Random: 8, Seen: t0.Add(-40 * 24 * time.Hour)},
	}
	dir := v1Store(t, 9, items, clients)

	var logs logBuffer
	keep := store.Retention{ClientIdle: 30 * 24 * time.Hour}
	st := openWith(t, dir, store.Options{Retention: keep, Logger: logs.logger()})
	ads, random := st.Items()
	checkItems(t, ads, []store.Item{items[0], items[1], items[3]})
	if !sameItem(random, items[2]) {
		t.Errorf("random = %+v, want %+v", random, items[2])
	}
	for id, c := range clients {
		wantClient(t, st, id, c)
	}
	if n := st.Clients(); n != 3 {
		t.Errorf("Clients() = %d, want 3", n)
	}
	if st.Latest() != 9 {
		t.Errorf("Latest() = %d, want 9", st.Latest())
	}
	if !epochForm.MatchString(st.Epoch()) {
		t.Errorf("Epoch() = %q", st.Epoch())
	}
	if len(logs.lines("upgrading from schema 1")) != 1 {
		t.Errorf("the upgrade was not logged:\n%s", logs.String())
	}
	if it := mustAppend(t, st, wire.KindClassified, "next", t0); it.ID != 10 {
		t.Errorf("first id after the upgrade = %d, want 10", it.ID)
	}
	// The index works on migrated records: the idle one ages out.
	if _, err := st.Prune(t0); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := st.Client("old"); found {
		t.Error("a migrated client idle for 40 days survived Prune")
	}

	epoch := st.Epoch()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if v := fileMeta(t, st.Path(), "schema"); v != "2" {
		t.Errorf("schema after the upgrade = %q, want \"2\"", v)
	}
	if v := fileMeta(t, st.Path(), "reindex"); v != "" {
		t.Errorf("the upgrade left its progress mark %q", v)
	}
	if got := fileKeys(t, st.Path(), "clientseen"); len(got) != 2 {
		t.Errorf("clientseen holds %d entries, want 2", len(got))
	}
	st = open(t, dir, keep)
	if st.Epoch() != epoch {
		t.Errorf("epoch changed from %q to %q on the reopen after the upgrade", epoch, st.Epoch())
	}
}

// A flood of ids under schema 1 (which kept them all) is trimmed to the
// cap on upgrade, least recently seen first, in bounded steps.
func TestUpgradeTrimsFlood(t *testing.T) {
	const n, limit = 25000, 4000
	clients := make(map[string]store.Client, n)
	for i := range n {
		clients[fmt.Sprintf("stranger-%05d", i)] = store.Client{Seen: t0.Add(time.Duration(i) * time.Second)}
	}
	dir := v1Store(t, 0, nil, clients)
	var logs logBuffer
	keep := store.Retention{Clients: limit}
	st := openWith(t, dir, store.Options{Retention: keep, Logger: logs.logger()})
	if got := st.Clients(); got != limit {
		t.Errorf("Clients() = %d, want %d", got, limit)
	}
	for _, i := range []int{0, n - limit - 1} {
		if _, found, _ := st.Client(fmt.Sprintf("stranger-%05d", i)); found {
			t.Errorf("stranger-%05d, among the least recently seen, survived", i)
		}
	}
	for _, i := range []int{n - limit, n - 1} {
		if _, found, _ := st.Client(fmt.Sprintf("stranger-%05d", i)); !found {
			t.Errorf("stranger-%05d, among the most recently seen, was dropped", i)
		}
	}
	if w := logs.lines("over the client id cap"); len(w) != 1 {
		t.Errorf("want one line about the trim, got:\n%s", logs.String())
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if a, b := len(fileKeys(t, st.Path(), "clients")), len(fileKeys(t, st.Path(), "clientseen")); a != limit || b != limit {
		t.Errorf("file holds %d clients and %d index entries, want %d", a, b, limit)
	}
}

// A cap lowered between runs is applied at open, least recently seen
// first; the ids kept keep their positions.
func TestClientCapLoweredOnReopen(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	for i := range 30 {
		mustSave(t, st, fmt.Sprint("c", i), store.Client{Ad: uint64(i), Seen: t0.Add(time.Duration(i) * time.Minute)})
	}
	st = reopen(t, st, store.Retention{Clients: 10})
	if n := st.Clients(); n != 10 {
		t.Errorf("Clients() = %d, want 10", n)
	}
	for i := range 30 {
		c, found, err := st.Client(fmt.Sprint("c", i))
		if err != nil || found != (i >= 20) || (found && c.Ad != uint64(i)) {
			t.Errorf("Client(c%d) = %+v, %v, %v; want found %v", i, c, found, err, i >= 20)
		}
	}
}

// An index that lost entries (damage, an edit by hand) would leave their
// clients forever: Open notices that it does not match the records and
// rebuilds it.
func TestClientIndexRebuilt(t *testing.T) {
	dir := t.TempDir()
	keep := store.Retention{ClientIdle: time.Hour}
	st := open(t, dir, keep)
	for i := range 5 {
		mustSave(t, st, fmt.Sprint("c", i), store.Client{Ad: 1, Seen: t0.Add(-2 * time.Hour)})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	editFile(t, st.Path(), func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("clientseen"))
		k, _ := b.Cursor().First()
		return b.Delete(k)
	})
	var logs logBuffer
	st = openWith(t, dir, store.Options{Retention: keep, Logger: logs.logger()})
	if len(logs.lines("client index does not match")) != 1 {
		t.Errorf("the rebuild was not logged:\n%s", logs.String())
	}
	if _, err := st.Prune(t0); err != nil {
		t.Fatal(err)
	}
	if n := st.Clients(); n != 0 {
		t.Errorf("Clients() = %d after pruning idle ids, want 0", n)
	}
}
