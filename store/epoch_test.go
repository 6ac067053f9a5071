package store_test

import (
	"encoding/binary"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

var epochForm = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestEpochKeptOnReopen(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	e := st.Epoch()
	if !epochForm.MatchString(e) {
		t.Fatalf("Epoch() = %q, want 16 lowercase hex digits", e)
	}
	mustAppend(t, st, wire.KindClassified, "ad", t0)
	st = reopen(t, st, store.Retention{})
	if got := st.Epoch(); got != e {
		t.Errorf("epoch after a healthy reopen = %q, want %q", got, e)
	}
}

// A new store, or a wiped data directory, is a new epoch: its ids start
// over and must not be compared with the old ones.
func TestEpochNewStore(t *testing.T) {
	a := open(t, t.TempDir(), store.Retention{})
	b := open(t, t.TempDir(), store.Retention{})
	if a.Epoch() == b.Epoch() {
		t.Errorf("two new stores share epoch %q", a.Epoch())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(a.Path()); err != nil {
		t.Fatal(err)
	}
	wiped := open(t, strings.TrimSuffix(a.Path(), "/"+store.FileName), store.Retention{})
	if wiped.Epoch() == a.Epoch() {
		t.Errorf("a wiped store kept epoch %q", a.Epoch())
	}
	if it := mustAppend(t, wiped, wire.KindClassified, "ad", t0); it.ID != 1 {
		t.Errorf("first id in a wiped store = %d, want 1", it.ID)
	}
}

// metaPages returns, for a closed bbolt file, the offset of each meta
// page and its transaction id (the layout of bbolt's internal/common).
func metaPages(t *testing.T, data []byte) (off [2]int, txid [2]uint64) {
	t.Helper()
	size := int(binary.NativeEndian.Uint32(data[16+8:]))
	for i := range 2 {
		off[i] = i * size
		txid[i] = binary.NativeEndian.Uint64(data[off[i]+16+48:])
	}
	return off, txid
}

// damageMeta flips a byte of the checksum of the newest (or oldest) meta
// page of a closed store.
func damageMeta(t *testing.T, path string, newest bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off, txid := metaPages(t, data)
	i := 0
	if (txid[1] > txid[0]) == newest {
		i = 1
	}
	data[off[i]+16+56] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// When the newest meta page is damaged, bbolt opens the older one and the
// last transaction is gone: its id is handed out again, for another item.
// Clients must learn that ids changed meaning: the epoch changes.
func TestEpochChangesWhenNewestMetaDamaged(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, store.Retention{})
	var ads []store.Item
	for i := range 4 {
		ads = append(ads, mustAppend(t, st, wire.KindClassified, "ad "+string(rune('a'+i)), t0))
	}
	old := st.Epoch()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	damageMeta(t, st.Path(), true)

	var logs logBuffer
	st = openWith(t, dir, store.Options{Logger: logs.logger()})
	got, _ := st.Items()
	checkItems(t, got, ads[:3]) // rolled back
	if st.Epoch() == old || !epochForm.MatchString(st.Epoch()) {
		t.Errorf("epoch after a rollback = %q (was %q), want a new one", st.Epoch(), old)
	}
	warn := logs.lines("new epoch")
	if len(warn) != 1 || !strings.Contains(warn[0], "level=WARN") || !strings.Contains(warn[0], old) ||
		!strings.Contains(warn[0], st.Epoch()) || !strings.Contains(warn[0], "meta page") {
		t.Errorf("want one WARN with both epochs and the cause, got:\n%s", logs.String())
	}
	// This is why: the lost item's id goes to the next one.
	if it := mustAppend(t, st, wire.KindClassified, "another", t0); it.ID != ads[3].ID {
		t.Errorf("next id = %d; the rolled-back item had %d", it.ID, ads[3].ID)
	}
	// The epoch is stored, and the file healed: the next open keeps it.
	e := st.Epoch()
	st = reopen(t, st, store.Retention{})
	if st.Epoch() != e {
		t.Errorf("epoch after the next reopen = %q, want %q", st.Epoch(), e)
	}
}

// A damaged older meta page loses nothing, but a damaged page's
// transaction id cannot be trusted to tell which one it was: the epoch
// changes all the same (a client then takes the server's positions, which
// costs it nothing).
func TestEpochChangesWhenOlderMetaDamaged(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, store.Retention{})
	ad := mustAppend(t, st, wire.KindClassified, "ad", t0)
	old := st.Epoch()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	damageMeta(t, st.Path(), false)
	st = open(t, dir, store.Retention{})
	got, _ := st.Items()
	checkItems(t, got, []store.Item{ad})
	if st.Epoch() == old {
		t.Errorf("epoch unchanged (%q) after a damaged meta page", old)
	}
}

// Both meta pages damaged: bbolt cannot open the file, and it is refused
// as corrupt, unchanged.
func TestBothMetaPagesDamaged(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, store.Retention{})
	mustAppend(t, st, wire.KindClassified, "ad", t0)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(st.Path())
	if err != nil {
		t.Fatal(err)
	}
	off, _ := metaPages(t, data)
	for _, o := range off {
		data[o+16+56] ^= 0xff
	}
	if err := os.WriteFile(st.Path(), data, 0o600); err != nil {
		t.Fatal(err)
	}
	checkCorrupt(t, refused(t, dir))
}
