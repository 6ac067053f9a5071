package server

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// The extended reply to hello: the store's epoch, the newest item when
// the connection opened (where a new id starts), and whether the server
// knows the id. The plain form keeps its plain OK.
func TestHelloV2(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, Config{DataDir: dir})
	first, _ := publish(t, s, wire.KindClassified, "before")
	c := dial(t, s)
	c.Send("random?") // a reply: the server has taken the connection
	c.Line()
	publish(t, s, wire.KindClassified, "after connect") // not in latest: the connection opened before it
	c.Send("hello laptop v2")
	h, err := wire.ParseHello(c.Line())
	if err != nil || h != (wire.Hello{Epoch: s.st.Epoch(), Latest: first, New: true, Idle: DefaultIdleTimeout, PushItems: true}) {
		t.Fatalf("hello v2 = %+v, %v; want epoch %s, latest %d, new", h, err, s.st.Epoch(), first)
	}
	// A second connection of a live id shares its position: known.
	c2 := dial(t, s)
	c2.Send("hello laptop v2")
	if h, err := wire.ParseHello(c2.Line()); err != nil || h.New {
		t.Fatalf("second connection: %+v, %v; want known", h, err)
	}
	c2.Send("hello laptop")
	c2.Expect(wire.ErrAlreadyHello)

	plain := dial(t, s)
	plain.Send("hello desk")
	plain.Expect(wire.OK)
	for _, bad := range []string{"hello desk v3", "hello desk v2 v2", "hello  v2", "hello v2"} {
		d := dial(t, s)
		d.Send(bad)
		if bad == "hello v2" { // a client whose id is "v2"
			d.Expect(wire.OK)
			continue
		}
		d.Expect(wire.ErrBadClientID)
	}

	// Forgotten once its connections are gone, as it never acknowledged.
	c.NC.Close()
	c2.NC.Close()
	again := dial(t, s)
	awaitGone(t, s, "laptop")
	again.Send("hello laptop v2")
	if h, err := wire.ParseHello(again.Line()); err != nil || !h.New {
		t.Fatalf("after its connections closed, never acknowledged: %+v, %v; want new", h, err)
	}
	// Acknowledging stores it: known across a restart, under one epoch.
	again.Send("seen 1")
	again.Expect(wire.OK)
	again.NC.Close()
	epoch := s.st.Epoch()
	stopServer(t, s)
	s = startServer(t, Config{DataDir: dir})
	c = dial(t, s)
	c.Send("hello laptop v2")
	if h, err := wire.ParseHello(c.Line()); err != nil || h.New || h.Epoch != epoch {
		t.Fatalf("after a restart: %+v, %v; want known under epoch %s", h, err, epoch)
	}
}

// awaitGone waits until no connection holds id: connections tear down in
// their own goroutines.
func awaitGone(t *testing.T, s *Server, id string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		s.mu.Lock()
		_, live := s.clients[id]
		s.mu.Unlock()
		if !live {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %s still live", id)
		}
		time.Sleep(time.Millisecond) // polling teardown, which announces nothing
	}
}

// A wiped store is a new store: a new epoch, ids from 1 again.
func TestWipedStoreHasANewEpoch(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, Config{DataDir: dir})
	epoch := s.st.Epoch()
	stopServer(t, s)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, Config{DataDir: dir})
	if s.st.Epoch() == epoch || !wire.ValidEpoch(s.st.Epoch()) {
		t.Fatalf("epoch %q after a wipe, was %q", s.st.Epoch(), epoch)
	}
}

// dialRaw connects to s from a loopback source address, for a goroutine
// (no test helpers that fail the test there) and for many connections
// (no cleanup registered per connection).
func dialRaw(s *Server, src string) (net.Conn, *bufio.Reader, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: testTimeout}
	nc, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	return nc, bufio.NewReader(nc), nil
}

// strangersSayHello opens n connections from 8 loopback addresses, 8 at
// a time, each saying hello with a fresh id and closing.
func strangersSayHello(t *testing.T, s *Server, n int, ack bool) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf("127.0.%d.%d", 10+w, 1+w)
			for i := w; i < n; i += 8 {
				nc, br, err := dialRaw(s, src)
				if err != nil {
					errs <- err
					return
				}
				line := "hello stranger-" + strconv.Itoa(i) + "\r\n"
				if ack {
					line += "seen 1\r\n"
				}
				nc.SetDeadline(time.Now().Add(testTimeout))
				_, err = nc.Write([]byte(line))
				for range 1 + btoi(ack) {
					if err == nil {
						_, err = br.ReadString('\n')
					}
				}
				nc.Close()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a stranger: %v", err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// 110,000 strangers say hello with fresh ids (more than the 100,000 ids
// the store keeps): they write nothing, and a desktop that identified
// once, and has received nothing since, gets every ad published while it
// was away. It used to get 1 of 5: the strangers' ids, each written at
// hello, had evicted its position.
func TestStrangersHellosEvictNobody(t *testing.T) {
	s := startServer(t, Config{MaxConns: 100})
	desk := dial(t, s)
	desk.Identify("desktop")
	desk.NC.Close()
	var ids []uint64
	for i := range 5 {
		id, _ := publish(t, s, wire.KindClassified, fmt.Sprintf("A%d", i+1))
		ids = append(ids, id)
	}
	strangersSayHello(t, s, 110_000, false)
	if n := s.st.Clients(); n != 1 {
		t.Fatalf("the store keeps %d client ids after 110,000 hellos; want 1, the desktop's", n)
	}
	back := dial(t, s)
	back.Send("hello desktop", "classified?", "classified?", "classified?", "classified?", "classified?")
	back.Expect("OK")
	for i, id := range ids {
		back.Expect(fmt.Sprintf("%d A%d", id, i+1))
	}
}

// Strangers that also acknowledge are stored, within the budgets: each
// source keeps at most its share, the store at most its cap, and none of
// them evicts the desktop that acknowledged first.
func TestStrangersAcknowledgingEvictNobody(t *testing.T) {
	s := startServer(t, Config{Retention: store.Retention{Clients: 40, ClientsPerSource: 4}})
	desk := dial(t, s)
	desk.Identify("desktop")
	desk.NC.Close()
	id, _ := publish(t, s, wire.KindClassified, "while away")
	strangersSayHello(t, s, 800, true)
	// A publish carries the staged positions to disk.
	publish(t, s, wire.KindRandom, "1")
	if n := s.st.Clients(); n > 1+8*4 {
		t.Fatalf("the store keeps %d ids from 8 sources with a budget of 4 each (+1)", n)
	}
	back := dial(t, s)
	back.Send("hello desktop", "classified?")
	back.Expect("OK", fmt.Sprintf("%d while away", id))
}

// A damaged ad in the store (here: an ad that would inject protocol lines)
// is skipped when the store is loaded, reported, and never sent.
func TestDamagedStoredAdIsNeverServed(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, Config{DataDir: dir})
	good, _ := publish(t, s, wire.KindClassified, "a good ad")
	path := s.StorePath()
	stopServer(t, s)

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The store's item record: kind, time (Unix ns, big endian), value.
	rec := append([]byte{'c', 0, 0, 0, 0, 0, 0, 0, 1}, "bad\r\nnotif: random\r\nOK"...)
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("ads")).Put([]byte{0, 0, 0, 0, 0, 0, 0xff, 0xff}, rec)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	logs := &logRecords{}
	s = startServer(t, Config{DataDir: dir, Logger: slog.New(logs)})
	if !slices.ContainsFunc(logs.all(), func(l string) bool { return strings.Contains(l, "skipped") }) {
		t.Errorf("the damaged ad was not reported: %q", logs.all())
	}
	c := dial(t, s)
	c.Identify("reader")
	c.Send("notif", "classified?", "classified?")
	c.Expect("OK", fmt.Sprintf("%d a good ad", good), fmt.Sprintf("%d a good ad", good))
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); err != nil {
		t.Fatal(err)
	}
}
