package server

import (
	"fmt"
	"testing"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// The store decides what is retained; the server's copy of the items
// follows what each append reports it dropped: a client is offered only
// what the store still has.
func TestServerFollowsTheStoresRetention(t *testing.T) {
	s := startServer(t, Config{Retention: store.Retention{Ads: 2}})
	c := dial(t, s)
	c.Send("hello c1")
	c.Expect("OK")
	var ids []uint64
	for i := range 4 {
		id, _ := publish(t, s, wire.KindClassified, fmt.Sprint("ad ", i))
		ids = append(ids, id)
	}
	c.Send("classified?", "classified?", "classified?")
	c.Expect(fmt.Sprintf("%d ad 2", ids[2]), fmt.Sprintf("%d ad 3", ids[3]), fmt.Sprintf("%d ad 3", ids[3]))
}
