package store_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// A damaged value in the file was once served verbatim, injecting protocol
// lines into clients. Whatever fails the rules of its kind at load is
// skipped, reported once, and left in the file.
func TestDamagedItemsSkipped(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, store.Retention{})
	good := []store.Item{
		mustAppend(t, st, wire.KindClassified, "a good ad", t0),
		mustAppend(t, st, wire.KindClassified, "another good ad", t0),
	}
	mustAppend(t, st, wire.KindRandom, "42", t0)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	record := func(kind byte, value string) []byte {
		v := binary.BigEndian.AppendUint64([]byte{kind}, uint64(t0.UnixNano()))
		return append(v, value...)
	}
	key := func(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }
	editFile(t, st.Path(), func(tx *bolt.Tx) error {
		ads, random := tx.Bucket([]byte("ads")), tx.Bucket([]byte("random"))
		for _, kv := range []struct {
			b    *bolt.Bucket
			k, v []byte
		}{
			{ads, key(100), record('c', "OK")},
			{ads, key(101), record('c', "Nice flat\r\nnotif: random")},
			{ads, key(102), record('x', "a kind that does not exist")},
			{ads, key(103), []byte("c")}, // too short for a time
			{ads, key(104), record('r', "7")},
			{ads, []byte("not an id"), record('c', "ad")},
			{random, key(105), record('r', "007")}, // the latest number
		} {
			if err := kv.b.Put(kv.k, kv.v); err != nil {
				return err
			}
		}
		return nil
	})
	before, err := os.ReadFile(st.Path())
	if err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	st = openWith(t, dir, store.Options{Logger: logs.logger()})
	ads, random := st.Items()
	checkItems(t, ads, good)
	if random != (store.Item{}) {
		t.Errorf("random = %+v; the latest one is damaged, want none (the server draws one)", random)
	}
	reports := logs.lines("damaged items skipped")
	if len(reports) != 1 {
		t.Fatalf("want one report, got:\n%s", logs.String())
	}
	r := reports[0]
	for _, want := range []string{"level=ERROR", "count=7", "100", "101", "102", "103", "104", "key 6e6f7420616e206964", "105", "restore it from a backup"} {
		if !strings.Contains(r, want) {
			t.Errorf("report %q lacks %q", r, want)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(st.Path()); !bytes.Equal(before, after) {
		t.Error("Open changed the file")
	}

	// Carrying on works: the retention drops the damaged ads in turn, and
	// a new number replaces the damaged one.
	st = open(t, dir, store.Retention{Ads: 2})
	it := mustAppend(t, st, wire.KindRandom, "17", t0)
	mustAppend(t, st, wire.KindClassified, "fresh", t0)
	st = reopen(t, st, store.Retention{Ads: 2})
	if _, random := st.Items(); !sameItem(random, it) {
		t.Errorf("random = %+v, want %+v", random, it)
	}
}

// What Append stores, Open loads: values that break the rules of their
// kind are refused as bad input.
func TestAppendRefusesInvalidValues(t *testing.T) {
	st := open(t, t.TempDir(), store.Retention{})
	for _, tc := range []struct {
		kind  wire.Kind
		value string
	}{
		{wire.KindClassified, "OK"},
		{wire.KindClassified, "ERR x"},
		{wire.KindClassified, "two\nlines"},
		{wire.KindClassified, ""},
		{wire.KindRandom, "007"},
		{wire.KindRandom, "-1"},
		{wire.KindRandom, "18446744073709551616"},
		{"bogus", "x"},
	} {
		if _, err := st.Append(tc.kind, tc.value, t0); !errorsIsInvalid(err) {
			t.Errorf("Append(%s, %q): err = %v, want wire.ErrInvalid", tc.kind, tc.value, err)
		}
	}
	if ads, _ := st.Items(); len(ads) != 0 || st.Latest() != 0 {
		t.Errorf("a refused append left %d ads, latest id %d", len(ads), st.Latest())
	}
}
