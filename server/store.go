package server

import (
	"time"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// Store is where a server keeps what it must not lose: the items within
// the retention, the read positions of identified clients, the
// idempotency keys of recent publishes, and the epoch their ids live
// under. *store.Store (one bbolt file, one process) is one; the contract
// every one meets is store/storetest's conformance suite.
//
// The server keeps its own copy of the retained items, for commands that
// must not touch the disk: it loads them with Items at start, and follows
// the store through what OnAppend and Prune report. That copy
// is the only one: the store holds none of its own.
type Store interface {
	Epoch() string
	Items() (ads []store.Item, random store.Item)
	AppendKeyed(kind wire.Kind, value string, at time.Time, key string, fp [32]byte) (store.Item, bool, error)
	// OnAppend's f is told of every new item, whoever appended it, once,
	// in id order, one at a time, and of an append's own item before
	// AppendKeyed returns: the server takes items and fans them out
	// there, so that id order is fan-out order with no lock of its own.
	OnAppend(f func(store.Appended))
	Client(id string) (store.Client, bool, error)
	StageClient(id string, c store.Client) *store.Commit
	Clients() int
	Prune(now time.Time) (droppedAds []uint64, err error)
	OnCommitError(f func(error))
	Path() string
	Close() error
}

// The one the server opens.
var _ Store = (*store.Store)(nil)
