package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// logBuffer collects what a store logs, for tests that check a report.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the logged lines that contain s.
func (l *logBuffer) lines(s string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

func (l *logBuffer) count(s string) int { return len(l.lines(s)) }

// v1Store writes a store file of schema "1", the format before epochs and
// indexes, with bbolt directly: buckets meta{schema="1"} (whose sequence
// is the last id), ads, random, clients. Records are encoded as that
// version did.
func v1Store(t *testing.T, seq uint64, items []store.Item, clients map[string]store.Client) string {
	t.Helper()
	return otherBoltFile(t, func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("schema"), []byte("1")); err != nil {
			return err
		}
		if err := meta.SetSequence(seq); err != nil {
			return err
		}
		b := map[string]*bolt.Bucket{}
		for _, name := range []string{"ads", "random", "clients"} {
			if b[name], err = tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		for _, it := range items {
			kind, bucket := byte('c'), b["ads"]
			if it.Kind == wire.KindRandom {
				kind, bucket = 'r', b["random"]
			}
			v := binary.BigEndian.AppendUint64([]byte{kind}, uint64(it.Time.UnixNano()))
			if err := bucket.Put(binary.BigEndian.AppendUint64(nil, it.ID), append(v, it.Value...)); err != nil {
				return err
			}
		}
		for id, c := range clients {
			v := binary.BigEndian.AppendUint64(nil, c.Ad)
			v = binary.BigEndian.AppendUint64(v, c.Random)
			v = binary.BigEndian.AppendUint64(v, uint64(c.Seen.UnixNano()))
			if err := b["clients"].Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// fileMeta reads a key of the meta bucket of a closed store.
func fileMeta(t *testing.T, path, key string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open %s with bbolt: %v", path, err)
	}
	defer db.Close()
	var v string
	_ = db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket([]byte("meta")).Get([]byte(key)))
		return nil
	})
	return v
}

// storeFile is the file of the store in dir.
func storeFile(dir string) string { return filepath.Join(dir, store.FileName) }

// wantClient checks a client's stored position.
func wantClient(t *testing.T, st *store.Store, id string, want store.Client) {
	t.Helper()
	got, found, err := st.Client(id)
	if err != nil || !found {
		t.Fatalf("Client(%q) = %+v, %v, %v; want found", id, got, found, err)
	}
	if got.Ad != want.Ad || got.Random != want.Random || !got.Seen.Equal(want.Seen) || got.Source != want.Source {
		t.Errorf("Client(%q) = %+v, want %+v", id, got, want)
	}
}

func errorsIsInvalid(err error) bool { return errors.Is(err, wire.ErrInvalid) }
