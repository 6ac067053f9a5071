package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/wire"
)

var at0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// stageMany stores n new client ids seen at seen, and returns once they are
// on disk.
func stageMany(t *testing.T, st *Store, n int, seen time.Time) {
	t.Helper()
	var last *Commit
	for i := range n {
		last = st.StageClient(fmt.Sprintf("client-%06d", i), Client{Ad: uint64(i), Seen: seen})
	}
	// Commits run one at a time, in order: the last one over means all are.
	if err := last.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.Clients() != n {
		t.Fatalf("Clients() = %d after staging %d", st.Clients(), n)
	}
}

func bucketLen(t *testing.T, db *bolt.DB, name []byte) int {
	t.Helper()
	n := 0
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(name).ForEach(func([]byte, []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Prune forgets idle ids in many short transactions, not one that holds
// every record.
func TestPruneClientsInSteps(t *testing.T) {
	const n = 25000
	st, err := Open(t.TempDir(), Retention{ClientIdle: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stageMany(t, st, n, at0.Add(-2*time.Hour))
	fresh := st.StageClient("fresh", Client{Ad: 1, Seen: at0})
	if err := fresh.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Each step forgets at most ~1,000 ids.
	steps, prev, most := 0, st.Clients(), 0
	st.afterStep = func() {
		steps++
		most = max(most, prev-st.Clients())
		prev = st.Clients()
	}
	if _, err := st.Prune(at0); err != nil {
		t.Fatal(err)
	}
	if most > 1000 || steps < n/1000 {
		t.Errorf("Prune forgot %d ids in %d steps, up to %d in one; want at most 1,000 a step", n, steps, most)
	}
	if st.Clients() != 1 {
		t.Errorf("Clients() = %d after Prune, want 1", st.Clients())
	}
	if a, b := bucketLen(t, st.db, bucketClients), bucketLen(t, st.db, bucketClientSeen); a != 1 || b != 1 {
		t.Errorf("file holds %d clients, %d index entries; want 1", a, b)
	}
	if _, found, err := st.Client("fresh"); err != nil || !found {
		t.Errorf("Client(fresh) = %v, %v: a client seen now was pruned", found, err)
	}
}

// An Append made while a long Prune runs completes between two of its
// steps, not after the whole pass.
func TestAppendDuringPrune(t *testing.T) {
	st, err := Open(t.TempDir(), Retention{ClientIdle: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stageMany(t, st, 5*pruneStep, at0.Add(-2*time.Hour))

	steps, stepsAfter := 0, 0
	appended := make(chan error, 1)
	st.afterStep = func() {
		steps++
		switch {
		case steps == 2:
			go func() {
				_, err := st.Append(wire.KindClassified, "published during Prune", at0)
				appended <- err
			}()
			select {
			case err := <-appended:
				if err != nil {
					t.Errorf("Append during Prune: %v", err)
				}
			case <-time.After(time.Minute):
				// Not a timing assertion: a deadlock detector, for when
				// Prune holds the write lock across steps.
				t.Error("Append did not complete between two steps of Prune")
			}
		case steps > 2:
			stepsAfter++
		}
	}
	if _, err := st.Prune(at0); err != nil {
		t.Fatal(err)
	}
	if stepsAfter == 0 {
		t.Error("Prune had no step left after the Append: the test proved nothing")
	}
	if st.Latest() != 1 {
		t.Errorf("Latest() = %d, want the appended item's id 1", st.Latest())
	}
}

// v1File writes a schema "1" store with n clients and returns its bytes.
func v1File(t *testing.T, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte("1")); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketAds, bucketRandom} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		clients, err := tx.CreateBucket(bucketClients)
		if err != nil {
			return err
		}
		for i := range n {
			v := binary.BigEndian.AppendUint64(nil, uint64(i))
			v = binary.BigEndian.AppendUint64(v, 0)
			v = binary.BigEndian.AppendUint64(v, uint64(at0.Add(time.Duration(i%977)*time.Minute).UnixNano()))
			if err := clients.Put(fmt.Appendf(nil, "client-%06d", i), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err2 := db.Close(); err == nil {
		err = err2
	}
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// snapshot lists the keys of the clients and clientseen buckets and the
// meta keys of a closed store.
func snapshot(t *testing.T, path string) (clients, index [][]byte, meta map[string]string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	meta = map[string]string{}
	err = db.View(func(tx *bolt.Tx) error {
		_ = tx.Bucket(bucketClients).ForEach(func(k, _ []byte) error { clients = append(clients, bytes.Clone(k)); return nil })
		_ = tx.Bucket(bucketClientSeen).ForEach(func(k, _ []byte) error { index = append(index, bytes.Clone(k)); return nil })
		return tx.Bucket(bucketMeta).ForEach(func(k, v []byte) error { meta[string(k)] = string(v); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return clients, index, meta
}

// The upgrade from schema 1 runs in bounded steps that each commit their
// progress: a process that dies between two of them (or in one, which
// then never happened) resumes on the next Open with the same result as
// an upgrade that ran through, also when it trims a flood of ids to the
// cap. From its first transaction on, the file reads as schema 2, which an
// older hark refuses.
func TestUpgradeResumes(t *testing.T) {
	const n = 2*openStep + 500
	data := v1File(t, n)
	write := func() string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, limit := range []int{n, 3000} {
		keep := Retention{Clients: limit}
		finish := func(t *testing.T, dir string) (clients, index [][]byte) {
			st, err := Open(dir, keep)
			if err != nil {
				t.Fatal(err)
			}
			if st.Clients() != limit {
				t.Errorf("Clients() = %d, want %d", st.Clients(), limit)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			clients, index, meta := snapshot(t, st.Path())
			if _, ok := meta[string(keyReindex)]; ok || meta[string(keySchema)] != schemaVersion || meta[string(keyKeepFrom)] != "" {
				t.Errorf("after the upgrade, meta = %q", meta)
			}
			if len(clients) != limit || len(index) != limit {
				t.Errorf("after the upgrade, %d clients and %d index entries, want %d", len(clients), len(index), limit)
			}
			return clients, index
		}
		wantClients, wantIndex := finish(t, write())

		for _, stepsBeforeCrash := range []int{0, 1, 2} {
			t.Run(fmt.Sprintf("cap %d, %d steps", limit, stepsBeforeCrash), func(t *testing.T) {
				dir := write()
				db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				err = db.Update(func(tx *bolt.Tx) error {
					if _, err := beginUpgrade(tx); err != nil {
						return err
					}
					return startSweep(tx, limit, n)
				})
				if err != nil {
					t.Fatal(err)
				}
				for range stepsBeforeCrash {
					if done, _, err := sweepStep(db); err != nil || done {
						t.Fatalf("sweepStep = %v, %v; want more to do", done, err)
					}
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				_, _, meta := snapshot(t, filepath.Join(dir, FileName))
				if meta[string(keySchema)] != schemaVersion {
					t.Errorf("half-way, schema = %q: an older hark would open it", meta[string(keySchema)])
				}
				clients, index := finish(t, dir)
				if !slices.EqualFunc(clients, wantClients, bytes.Equal) || !slices.EqualFunc(index, wantIndex, bytes.Equal) {
					t.Errorf("a resumed upgrade differs from a clean one: %d clients, %d index entries", len(clients), len(index))
				}
			})
		}
	}
}

// Idempotency keys are pruned by age in steps too.
func TestKeysPrunedInSteps(t *testing.T) {
	const n = 2500
	dir := t.TempDir()
	st, err := Open(dir, Retention{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(st.Path(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		keys, order := tx.Bucket(bucketKeys), tx.Bucket(bucketKeyOrder)
		for i := range n {
			seq, _ := order.NextSequence()
			it := Item{ID: uint64(i + 1), Kind: wire.KindClassified, Value: "ad", Time: at0.Add(-48 * time.Hour)}
			name := fmt.Appendf(nil, "key-%d", i)
			if err := keys.Put(name, encodeKeyRecord(keyRecord{order: seq, item: it})); err != nil {
				return err
			}
			if err := order.Put(itemKey(seq), name); err != nil {
				return err
			}
		}
		return nil
	})
	if err2 := db.Close(); err == nil {
		err = err2
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err = Open(dir, Retention{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.nKeys != n {
		t.Fatalf("Open counted %d keys, want %d", st.nKeys, n)
	}
	prev, most := st.nKeys, 0
	st.afterStep = func() {
		most = max(most, prev-st.nKeys)
		prev = st.nKeys
	}
	if _, err := st.Prune(at0); err != nil {
		t.Fatal(err)
	}
	if most > 1000 {
		t.Errorf("Prune dropped up to %d keys in one step, want at most 1,000", most)
	}
	if st.nKeys != 0 || bucketLen(t, st.db, bucketKeys) != 0 || bucketLen(t, st.db, bucketKeyOrder) != 0 {
		t.Errorf("after Prune: %d keys counted, %d in the file", st.nKeys, bucketLen(t, st.db, bucketKeys))
	}
}
