// Package natstest runs a real NATS server with JetStream inside a test
// (github.com/nats-io/nats-server/v2): on a loopback port the kernel
// chose, its storage in the test's temporary directory, and able to stop
// and start again on the same port and storage, as an outage does.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyTimeout bounds the wait for a server to take connections.
const readyTimeout = 10 * time.Second

// Server is one NATS server with JetStream. URL is its client URL
// (nats://127.0.0.1:PORT), the same across Stop and Start.
type Server struct {
	t    testing.TB
	opts server.Options
	srv  *server.Server
	URL  string
}

// Start starts a server that is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ns := &Server{t: t, opts: server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	}}
	ns.Start()
	ns.URL = ns.srv.ClientURL()
	ns.opts.Port = ns.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(ns.Stop)
	return ns
}

// Start starts the server again after Stop, on the same port and storage.
func (ns *Server) Start() {
	ns.t.Helper()
	opts := ns.opts // the server keeps and changes what it is given
	srv, err := server.NewServer(&opts)
	if err != nil {
		ns.t.Fatalf("NATS server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		ns.t.Fatal("NATS server not ready")
	}
	ns.srv = srv
}

// Stop shuts the server down and waits until it has (again: a no-op).
func (ns *Server) Stop() {
	if ns.srv == nil {
		return
	}
	ns.srv.Shutdown()
	ns.srv.WaitForShutdown()
	ns.srv = nil
}

// StartCluster starts n servers that form one JetStream cluster on
// loopback (each with its own storage), stopped when the test ends. It
// returns once each takes connections; JetStream elects its leaders in
// its own time after that.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	// Cluster ports must be known before the servers start: each names
	// the others as routes.
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))})
	}
	servers := make([]*Server, n)
	for i := range servers {
		ns := &Server{t: t, opts: server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "hark-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		}}
		opts := ns.opts
		srv, err := server.NewServer(&opts)
		if err != nil {
			t.Fatalf("NATS server %d: %v", i+1, err)
		}
		go srv.Start()
		ns.srv = srv
		servers[i] = ns
		t.Cleanup(ns.Stop)
	}
	for i, ns := range servers {
		if !ns.srv.ReadyForConnections(readyTimeout) {
			t.Fatalf("NATS server %d not ready", i+1)
		}
		ns.URL = ns.srv.ClientURL()
		ns.opts.Port = ns.srv.Addr().(*net.TCPAddr).Port
	}
	return servers
}

// URLs is the client URLs of servers, joined with commas.
func URLs(servers []*Server) string {
	urls := make([]string, len(servers))
	for i, ns := range servers {
		urls[i] = ns.URL
	}
	return strings.Join(urls, ",")
}

// JetStream connects a JetStream client to the server, for a test that
// looks at or changes the streams and buckets directly; the connection
// closes when the test ends.
func (ns *Server) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("JetStream: %v", err)
	}
	return js
}
