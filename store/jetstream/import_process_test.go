package jetstream_test

import (
	"context"
	"slices"
	"testing"

	"github.com/harkapp/hark/internal/natstest"
	"github.com/harkapp/hark/store/jetstream"
)

// Import on the nats-server a distribution ships (CI: Debian's 2.9.10, a
// three-node cluster of processes): a server before 2.10 ignores
// StreamConfig.FirstSeq, and Import fills the ids before the first item
// with placeholders instead. The ids, the epoch and the positions come
// out the same.
func TestImportOnProcessCluster(t *testing.T) {
	exe := natstest.Exe(t)
	urls := natstest.ProcURLs(natstest.StartProcessCluster(t, exe, 3))
	src, clients := importSource()
	ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
	defer cancel()
	if _, err := jetstream.Import(ctx, jetstream.Options{URLs: urls, Prefix: "PROC"}, src); err != nil {
		t.Fatal(err)
	}
	st, err := jetstream.Open(ctx, jetstream.Options{URLs: urls, Prefix: "PROC"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ads, random := st.Items()
	if st.Epoch() != src.Epoch || !slices.Equal(ids(ads), []uint64{3, 4, 7, 10}) || !sameItem(random, src.Items[3]) {
		t.Errorf("after the import: epoch %q, ads %v, random %+v; want %q, [3 4 7 10], %+v", st.Epoch(), ids(ads), random, src.Epoch, src.Items[3])
	}
	for id, want := range clients {
		if c, found, err := st.Client(id); err != nil || !found || c.Ad != want.Ad || c.Random != want.Random {
			t.Errorf("client %q: %+v, %v, %v; want %+v", id, c, found, err, want)
		}
	}
	if it := appendAd(t, st, "after the move"); it.ID != 13 {
		t.Errorf("the first item after the import got id %d, want 13", it.ID)
	}
}
