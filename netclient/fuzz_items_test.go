package netclient_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// FuzzConnItems plays arbitrary server bytes against a client in
// notification mode with items in the pushes, which pipelines notif items
// and random? in one write. The client must never panic nor hang, and
// every pushed item it hands over must be one the protocol allows: a
// malformed push ends the connection, it never becomes an item.
//
//	go test -run '^$' -fuzz FuzzConnItems -fuzztime 20s ./netclient/
func FuzzConnItems(f *testing.F) {
	for _, s := range []string{
		"",
		"OK\r\nnotif: classified 17 Nice flat\r\nnotif: random 18 42\r\n18 42\r\n",
		"notif: classified 17 Before the OK\r\nOK\r\n18 42\r\nnotif: random 19 7\r\n",
		"OK\r\nnotif: classified\r\nnotif: random\r\nnotif: classified 0 zero\r\n18 42\r\n",
		"OK\r\nnotif: classified 17\r\nnotif: classified 17 \r\nnotif: random 18 012\r\n",
		"OK\r\nnotif: classified 18446744073709551616 big\r\nnotif: random 1 18446744073709551616\r\n",
		"OK\r\nnotif: classified 17 OK\r\nnotif: classified 17 ERR x\r\nnotif: classified 17 notif: x\r\n",
		"OK\r\nnotif: classified 17 a\tb\r\nnotif: classified 17 \xff\r\n",
		"ERR not identified\r\n18 42\r\nnotif: classified 17 late\r\n",
		"OK\r\nnotif: classified 17 cut sh",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		cli, srv := net.Pipe()
		c := netclient.New(cli, netclient.Options{ReplyTimeout: 200 * time.Millisecond, QueuedItems: 4})
		// The user takes items as they come, so that a full queue never
		// holds the replies back.
		taken := make(chan []netclient.Item, 1)
		go func() {
			var items []netclient.Item
			for {
				select {
				case p := <-c.Items():
					items = append(items, p.Item)
				case <-c.Done():
					for {
						select {
						case p := <-c.Items():
							items = append(items, p.Item)
						default:
							taken <- items
							return
						}
					}
				}
			}
		}()

		srvDone := serveOnce(srv, []string{"notif items\r\n", "random?\r\n"}, data)

		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := c.Do(ctx, netclient.NotifyItemsCmd, netclient.RandomCmd)
		c.Close()
		awaitServed(t, srvDone)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do hung until the ctx deadline (%d strays)", c.Strays())
		}
		for _, it := range await(t, taken, "the items") {
			if it.ID == 0 || it.Empty {
				t.Fatalf("pushed item %+v", it)
			}
			switch it.Kind {
			case wire.KindRandom:
				if _, perr := wire.ParseRandom(it.Value); perr != nil {
					t.Fatalf("pushed item %+v: %v", it, perr)
				}
			case wire.KindClassified:
				if verr := wire.ValidateAd(it.Value); verr != nil {
					t.Fatalf("pushed item %+v: not an ad: %v", it, verr)
				}
			default:
				t.Fatalf("pushed item %+v", it)
			}
		}
	})
}
