package server

import (
	"sync"
	"testing"
	"time"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// racingStore is a real store whose first Items lets an append (from
// "another gateway") be told to the server first, holding a lock that
// Items then takes, as the JetStream store's follower does with its own.
type racingStore struct {
	Store
	mu   sync.Mutex
	once sync.Once
	t    *testing.T
}

func (r *racingStore) Items() ([]store.Item, store.Item) {
	r.once.Do(func() {
		held := make(chan struct{})
		go func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			close(held)
			if _, _, err := r.Store.AppendKeyed(wire.KindClassified, "raced in", time.Now(), "", [32]byte{}); err != nil {
				r.t.Errorf("append: %v", err)
			}
		}()
		<-held
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Store.Items()
}

// A shared store that tells of an item while the server starts, holding
// the lock its Items takes, neither deadlocks Start (it did: Start held
// the server's lock while calling Items) nor loses that item.
func TestStartWhileTheStoreTellsOfAnItem(t *testing.T) {
	inner, err := store.OpenWith(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *Server, 1)
	go func() { started <- startServer(t, Config{Store: &racingStore{Store: inner, t: t}}) }()
	var s *Server
	select {
	case s = <-started:
	case <-time.After(testTimeout):
		t.Fatal("Start did not return: deadlocked with the store's feed")
	}
	c := dial(t, s)
	c.Send("classified?")
	c.Expect("raced in")
}
