package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// refused opens dir, which must fail, and checks what every refusal
// promises: the error names the file, and the file is left as it was.
func refused(t *testing.T, dir string) error {
	t.Helper()
	path := filepath.Join(dir, store.FileName)
	before, readErr := os.ReadFile(path)
	st, err := store.Open(dir, store.Retention{})
	if err == nil {
		_ = st.Close()
		t.Fatalf("Open(%s) succeeded", dir)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if readErr == nil {
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("Open changed %s (%d bytes before, %d after)", path, len(before), len(after))
		}
	}
	return err
}

// checkCorrupt asserts a refusal as corrupt, with the way out spelled out.
func checkCorrupt(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("err = %v, want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), "move the file aside") {
		t.Errorf("error %q does not say what to do", err)
	}
}

func writeStoreFile(t *testing.T, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 100, 4096, 8192, 65536} {
		t.Run(fmt.Sprint(size, " bytes"), func(t *testing.T) {
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			checkCorrupt(t, refused(t, writeStoreFile(t, data)))
		})
	}
	t.Run("text file", func(t *testing.T) {
		data := []byte(strings.Repeat("this is not a database\n", 1000))
		checkCorrupt(t, refused(t, writeStoreFile(t, data)))
	})
}

// validStore returns the bytes of a closed store that spans many pages.
func validStore(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Retention{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := st.Append(wire.KindClassified, fmt.Sprintf("%03d %s", i, strings.Repeat("ad ", 100)), t0); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if _, err := st.Append(wire.KindRandom, fmt.Sprint(i), t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 200 {
		mustSave(t, st, fmt.Sprint("client-", i), store.Client{Ad: uint64(i), Seen: t0})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A truncated store (a full disk, a copy cut short) must be refused, or
// opened if what is cut was unused space; it must never crash the process.
func TestOpenTruncated(t *testing.T) {
	data := validStore(t)
	const page = 4096
	cuts := []int{page / 2, page, page + 100, 2 * page, 3 * page, len(data) / 2, len(data) - page}
	for n := 4 * page; n < len(data)-page; n += 4 * page {
		cuts = append(cuts, n)
	}
	for _, n := range cuts {
		t.Run(fmt.Sprint(n, " bytes"), func(t *testing.T) {
			dir := writeStoreFile(t, data[:n])
			st, err := store.Open(dir, store.Retention{})
			if err == nil {
				// Opening may succeed only if what remains is consistent.
				ads, _ := st.Items()
				_ = st.Close()
				t.Logf("opened with %d ads", len(ads))
				return
			}
			checkCorrupt(t, err)
			refused(t, dir)
		})
	}
	// Whatever happened above, a healthy store still opens: a failed Open
	// must not leave a file locked or a process-wide setting changed.
	st := open(t, writeStoreFile(t, data), store.Retention{})
	if ads, _ := st.Items(); len(ads) != 300 {
		t.Errorf("intact copy has %d ads, want 300", len(ads))
	}
}

// A failed Open must release the file: otherwise the data directory stays
// locked until the process exits.
func TestOpenFailureReleasesFile(t *testing.T) {
	data := validStore(t)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	for _, n := range []int{4096, 2 * 4096, 3 * 4096, len(data) / 2} {
		dir := writeStoreFile(t, data[:n])
		before := fds()
		if st, err := store.Open(dir, store.Retention{}); err == nil {
			_ = st.Close()
			continue
		}
		if after := fds(); after != before {
			t.Errorf("truncated to %d bytes: %d open files before Open, %d after", n, before, after)
		}
		// Nor may it hold the lock: another Open is refused as corrupt
		// at once rather than as locked.
		start := time.Now()
		_, err := store.Open(dir, store.Retention{})
		if errors.Is(err, store.ErrLocked) || time.Since(start) > 400*time.Millisecond {
			t.Errorf("truncated to %d bytes: second Open after %v: %v", n, time.Since(start), err)
		}
	}
}

func otherBoltFile(t *testing.T, fill func(tx *bolt.Tx) error) string {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fill); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenOtherApplicationsDatabase(t *testing.T) {
	dir := otherBoltFile(t, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("foo"))
		if err != nil {
			return err
		}
		return b.Put([]byte("key"), []byte("value"))
	})
	err := refused(t, dir)
	checkCorrupt(t, err)
	// Said once, not twice.
	if n := strings.Count(err.Error(), store.ErrCorrupt.Error()); n != 1 {
		t.Errorf("error %q repeats %q %d times", err, store.ErrCorrupt, n)
	}
}

// A newer hark's store is refused, never read as this schema: an older
// hark must not write records a newer one's indexes would miss.
func TestOpenNewerSchemaVersion(t *testing.T) {
	dir := otherBoltFile(t, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("schema"), []byte("3"))
	})
	err := refused(t, dir)
	checkCorrupt(t, err)
	if !strings.Contains(err.Error(), `schema version "3"`) {
		t.Errorf("error %q does not give the version found", err)
	}
}

// Schema 2 creates every bucket at once: one missing was lost, and the
// store is refused rather than run without it.
func TestOpenSchema2MissingBucket(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, store.Retention{})
	mustAppend(t, st, wire.KindClassified, "ad", t0)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	editFile(t, st.Path(), func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("clientseen")) })
	err := refused(t, dir)
	checkCorrupt(t, err)
	if !strings.Contains(err.Error(), `no "clientseen" bucket`) {
		t.Errorf("error %q does not name the missing bucket", err)
	}
}

// editFile changes a closed store's file with bbolt directly.
func editFile(t *testing.T, path string, edit func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(edit)
	if err2 := db.Close(); err == nil {
		err = err2
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenMalformedRecord(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, store.Retention{})
	mustAppend(t, st, wire.KindClassified, "ad", t0)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(st.Path(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("clients")).Put([]byte("c"), []byte("short"))
	})
	if err2 := db.Close(); err == nil {
		err = err2
	}
	if err != nil {
		t.Fatal(err)
	}
	checkCorrupt(t, refused(t, dir))
}

func TestOpenDataDirIsAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	content := []byte("I am a file, not a directory\n")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(path, store.Retention{})
	if err == nil {
		_ = st.Close()
		t.Fatal("Open succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if !strings.Contains(err.Error(), "directory") {
		t.Errorf("error %q does not say a directory is needed", err)
	}
	if errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrLocked) {
		t.Errorf("err = %v: not corrupt, not locked", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
		t.Errorf("file changed to %q", got)
	}
}

func TestOpenStoreFileIsADirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, store.FileName)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, store.Retention{})
	if err == nil {
		_ = st.Close()
		t.Fatal("Open succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	first := open(t, dir, store.Retention{})
	mustAppend(t, first, wire.KindClassified, "ad", t0)
	before, err := os.ReadFile(first.Path())
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	second, err := store.Open(dir, store.Retention{})
	elapsed := time.Since(start)
	if err == nil {
		_ = second.Close()
		t.Fatal("second Open succeeded while the first is open")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Errorf("err = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), first.Path()) {
		t.Errorf("error %q does not name the file", err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("second Open took %v to give up", elapsed)
	}
	if after, _ := os.ReadFile(first.Path()); !bytes.Equal(before, after) {
		t.Error("refused Open changed the file")
	}

	// The first store is unharmed, and once closed the directory is free.
	mustAppend(t, first, wire.KindClassified, "still works", t0)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := open(t, dir, store.Retention{})
	if ads, _ := again.Items(); len(ads) != 2 {
		t.Errorf("after reopen %d ads, want 2", len(ads))
	}
}
