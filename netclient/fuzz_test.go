package netclient_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// FuzzConn plays arbitrary server bytes against a client that pipelines
// random?, classified?, notif and stop_notif in one write. The client must
// never panic nor hang, and whatever it returns without error must be
// replies of the right shape: a pipelined client that misroutes a line
// hands one command's reply to another.
//
//	go test -run '^$' -fuzz FuzzConn -fuzztime 20s ./netclient/
func FuzzConn(f *testing.F) {
	long := strings.Repeat("7", wire.MaxLine)
	for _, s := range []string{
		"",
		"123\r\nNice flat\r\nOK\r\nOK\r\n",
		"123\nNice flat\nOK\nOK\n",
		// Duplicate OK, strays before the replies.
		"OK\r\n123\r\nOK\r\nNice flat\r\nOK\r\nOK\r\n",
		"hello there\r\nOK\r\n42\r\nNice flat\r\nOK\r\nOK\r\nOK\r\n",
		// Pushes anywhere, including crossing stop_notif; an unknown one.
		"notif: random\r\n123\r\nnotif: classified\r\nNice flat\r\nOK\r\nnotif: classified\r\nnotif: random\r\nOK\r\n",
		"123\r\nnotif: weather\r\nnotif:\r\nnotif: random \r\nNice flat\r\nOK\r\nOK\r\n",
		// Empty lines.
		"\r\n123\r\n\r\nOK\r\n\r\nOK\r\n",
		"123\r\n\nOK\nOK\n",
		// ERR replies, ERR without a space, ERR unsolicited.
		"ERR unknown command\r\nNice flat\r\nOK\r\nOK\r\n",
		"123\r\nERR line too long\r\n",
		"123\r\nNice flat\r\nERRATIC\r\nOK\r\n",
		"ERR too many connections\r\n",
		// Farewells of auth and TLS, before and among the replies.
		"ERR auth required\r\n",
		"123\r\nERR auth failed\r\nOK\r\nOK\r\n",
		"123\r\nNice flat\r\nERR auth failed: token expired\r\n",
		"ERR this port speaks TLS: connect with tls://\r\n",
		"ERR auth must be the first command\r\n123\r\nNice flat\r\nOK\r\nOK\r\n",
		// Identified replies to a connection that did not say hello.
		"17 123\r\n18 Nice flat\r\nOK\r\nOK\r\n",
		"0 1\r\n 123\r\n123 \r\n123\r\n18 \r\nNice flat\r\nOK\r\nOK\r\n",
		// Numbers that are not canonical, or too large.
		"0123\r\n-1\r\n+1\r\n18446744073709551616\r\n18446744073709551615\r\nOK\r\nOK\r\nOK\r\n",
		"0\r\n0\r\nOK\r\nOK\r\n",
		// Reserved lines as ads.
		"123\r\nOK\r\nERR\r\nnotif: x\r\nNice flat\r\nOK\r\nOK\r\n",
		// Long lines: exactly the limit (a stray), then one byte over.
		"123\r\n" + long + "\r\nNice flat\r\nOK\r\nOK\r\n",
		"123\r\n" + long + "8\r\n",
		"123\r\n" + long + "\r\r\n",
		strings.Repeat("x", 5000) + "\r\n",
		// Invalid UTF-8, binary, control characters.
		"123\r\n\xff\xfe\r\nOK\r\nOK\r\n",
		"\xc3\x28\r\n",
		"123\r\n\x00\x01\x02\r\nNice\tflat\r\nNice\x7fflat\r\nNice flat\r\nOK\r\nOK\r\n",
		"\x00\x00\x00\x00\n\x00\n\x00\n\x00\n",
		// CR/LF variations: a CR inside a line is part of it.
		"123\r\r\nNice\rflat\r\nNice flat\r\r\nNice flat\r\nOK\r\nOK\r\n",
		"123\rNice flat\r\nOK\r\n",
		"\r\r\r\n\n\r\n123\r\nNice flat\r\nOK\nOK\r\n",
		// Cut short.
		"123\r\nNice fl",
		"123\r\nNice flat\r\nOK\r\nOK",
		"12",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		cli, srv := net.Pipe()
		var badPush atomic.Value
		c := netclient.New(cli, netclient.Options{
			ReplyTimeout: 200 * time.Millisecond,
			OnNotify: func(k wire.Kind) {
				if !k.Valid() {
					badPush.Store(k)
				}
			},
		})

		// The server reads the batch, writes data and hangs up.
		srvDone := serveOnce(srv, []string{"random?\r\n", "classified?\r\n", "notif\r\n", "stop_notif\r\n"}, data)

		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		items, err := c.Do(ctx, netclient.RandomCmd, netclient.ClassifiedCmd, netclient.NotifyCmd, netclient.StopNotifyCmd)
		c.Close()
		awaitServed(t, srvDone)

		if k := badPush.Load(); k != nil {
			t.Fatalf("OnNotify(%q)", k)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do hung until the ctx deadline (%d strays)", c.Strays())
		}
		if err != nil {
			return
		}
		if len(items) != 4 {
			t.Fatalf("Do returned %d items", len(items))
		}
		if it := items[0]; it.Kind != wire.KindRandom || it.Empty || it.ID != 0 {
			t.Fatalf("random? = %+v", it)
		} else if _, perr := wire.ParseRandom(it.Value); perr != nil {
			t.Fatalf("random? = %+v: %v", it, perr)
		}
		it := items[1]
		if it.Kind != wire.KindClassified || it.ID != 0 {
			t.Fatalf("classified? = %+v", it)
		}
		if it.Empty != (it.Value == "") {
			t.Fatalf("classified? = %+v", it)
		}
		if v := it.Value; v == wire.OK || strings.HasPrefix(v, wire.ErrPrefix) || strings.HasPrefix(v, wire.NotifPrefix) {
			t.Fatalf("classified? = %+v: a protocol line taken for an ad", it)
		}
		if !it.Empty {
			if verr := wire.ValidateAd(it.Value); verr != nil {
				t.Fatalf("classified? = %+v: not an ad: %v", it, verr)
			}
		}
		if items[2] != (netclient.Item{}) || items[3] != (netclient.Item{}) {
			t.Fatalf("notif, stop_notif = %+v, %+v", items[2], items[3])
		}
	})
}

// serveOnce is a fuzz target's scripted server: it reads the lines want
// from srv, writes data and hangs up. The channel says whether the lines
// were as wanted.
func serveOnce(srv net.Conn, want []string, data []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		defer srv.Close()
		_ = srv.SetDeadline(time.Now().Add(waitFor))
		br := bufio.NewReader(srv)
		for _, w := range want {
			line, err := br.ReadString('\n')
			if err != nil || line != w {
				done <- errors.New("server read " + line + ", want " + w)
				return
			}
		}
		_, _ = srv.Write(data) // fails once the client has given up: fine
		done <- nil
	}()
	return done
}

// awaitServed fails t unless serveOnce finished, as wanted, within waitFor.
func awaitServed(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("the scripted server did not finish")
	}
}
