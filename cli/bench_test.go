package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/harkapp/hark/bench"
	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/server"
)

// benchArgs are the arguments of a bench against s, publishing through its
// API, followed by extra.
func benchArgs(s *server.Server, extra ...string) []string {
	return append([]string{"bench", "--server", s.Addr().String(), "--http", "http://" + s.HTTPAddr().String()}, extra...)
}

// benchJSON decodes what `hark bench --json` printed: the object must
// hold the fields scripts rely on, named as documented.
func benchJSON(t *testing.T, stdout string) bench.Result {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	for _, k := range []string{"clients", "items", "notif_ms", "fetch_ms", "lost", "duplicated", "items_per_s"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %q in %s", k, stdout)
		}
	}
	for _, k := range []string{"notif_ms", "fetch_ms"} {
		var d map[string]float64
		if err := json.Unmarshal(raw[k], &d); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		for _, p := range []string{"p50", "p90", "p99", "max"} {
			if _, ok := d[p]; !ok {
				t.Errorf("no %s.%s in %s", k, p, stdout)
			}
		}
	}
	var r bench.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBenchDelivers runs the bench against an in-process hark serve, in
// each mode, and checks that every client fetched every item exactly once
// and that every item × client pair left one sample of each latency.
func TestBenchDelivers(t *testing.T) {
	const clients, items = 200, 10
	cases := []struct {
		name  string
		extra []string
		ided  bool
		kind  string
		items bool // items in pushes: no fetch cycle
	}{
		{"identified, closed loop", nil, true, "classified", true},
		{"identified, fetch cycle", []string{"--classic"}, true, "classified", false},
		{"version 1, at a rate", []string{"--v1", "--rate", "100"}, false, "classified", false},
		{"random numbers, closed loop", []string{"--kind", "random"}, true, "random", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			args := benchArgs(s, append([]string{"--clients", strconv.Itoa(clients), "--items", strconv.Itoa(items),
				"--json", "--server-pid", strconv.Itoa(os.Getpid())}, tc.extra...)...)
			code, stdout, stderr := run(t, args...)
			if code != 0 {
				t.Fatalf("hark %q: exit status %d\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
			}
			r := benchJSON(t, stdout)
			if r.Clients != clients || r.Items != items || r.Identified != tc.ided || r.Kind != tc.kind {
				t.Errorf("clients %d, items %d, identified %v, kind %q; want %d, %d, %v, %q",
					r.Clients, r.Items, r.Identified, r.Kind, clients, items, tc.ided, tc.kind)
			}
			if want := map[bool]int{true: clients}[tc.items]; r.PushItems != want {
				t.Errorf("%d clients took items in pushes, want %d", r.PushItems, want)
			}
			if r.Lost != 0 || r.Duplicated != 0 || r.Superseded != 0 || r.Dropped != 0 || r.Foreign != 0 {
				t.Errorf("lost %d, duplicated %d, superseded %d, dropped %d, foreign %d: want all 0\n%s",
					r.Lost, r.Duplicated, r.Superseded, r.Dropped, r.Foreign, stdout)
			}
			if r.Delivered != clients*items || r.NotifMS.N != clients*items || r.FetchMS.N != clients*items || r.PublishMS.N != items {
				t.Errorf("delivered %d, samples: notif %d, fetch %d, publish %d; want %d, %d, %d, %d",
					r.Delivered, r.NotifMS.N, r.FetchMS.N, r.PublishMS.N, clients*items, clients*items, clients*items, items)
			}
			for name, d := range map[string]bench.Dist{"notif": r.NotifMS, "fetch": r.FetchMS} {
				if !(0 <= d.P50 && d.P50 <= d.P90 && d.P90 <= d.P99 && d.P99 <= d.Max && d.Max > 0) {
					t.Errorf("%s: percentiles out of order: %+v", name, d)
				}
			}
			if r.FetchMS.Max < r.NotifMS.P50 {
				t.Errorf("fetched (max %v ms) before notified (p50 %v ms)?", r.FetchMS.Max, r.NotifMS.P50)
			}
			if r.ItemsPerS <= 0 || r.MaxBatch < 1 && !tc.items || r.MaxBatch > 0 && tc.items {
				t.Errorf("items/s %v, largest batch %d", r.ItemsPerS, r.MaxBatch)
			}
			if r.ServerProc == nil || r.ServerProc.PID != os.Getpid() || r.ServerProc.RSSMiB <= 0 || r.BenchProc == nil {
				t.Errorf("process figures: server %+v, bench %+v", r.ServerProc, r.BenchProc)
			}
		})
	}
}

// TestBenchTable checks the human report's key lines.
func TestBenchTable(t *testing.T) {
	s := startServer(t)
	code, stdout, stderr := run(t, benchArgs(s, "--clients", "20", "--items", "3")...)
	if code != 0 {
		t.Fatalf("exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, w := range []string{"20 identified (items in pushes) clients, 3 classified ads", "notif: received", "item fetched", "p99",
		"delivered   60 of 60", "lost 0, duplicated 0", "items/s", "nobody fell behind"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("the report does not say %q:\n%s", w, stdout)
		}
	}
	if !strings.Contains(stderr, "20 clients in notification mode") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
}

// publishCmd is a --publish-cmd that runs this test binary as `hark
// publish` against s, with shell code around it.
func publishCmd(t *testing.T, s *server.Server) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s=1 GORACE=atexit_sleep_ms=0 '%s' publish --http http://%s classified {value}", reexecEnv, exe, s.HTTPAddr())
}

// TestBenchCountsLost publishes only the even items (the odd ones go
// nowhere): the bench must count exactly those as lost, for every client,
// and fail.
func TestBenchCountsLost(t *testing.T) {
	const clients, items = 20, 6
	s := startServer(t)
	pub := publishCmd(t, s)
	// The value's last digit is the item's number.
	cmd := "case {value} in *[13579]) ;; *) " + pub + " >/dev/null ;; esac"
	code, stdout, stderr := run(t, "bench", "--server", s.Addr().String(), "--publish-cmd", cmd,
		"--clients", strconv.Itoa(clients), "--items", strconv.Itoa(items), "--rate", "1000", "--settle", "2s", "--v1", "--json")
	if code != 1 {
		t.Fatalf("exit status %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	r := benchJSON(t, stdout)
	if r.Lost != clients*items/2 || r.Delivered != clients*items/2 || r.Duplicated != 0 {
		t.Errorf("lost %d, delivered %d, duplicated %d; want %d, %d, 0", r.Lost, r.Delivered, r.Duplicated, clients*items/2, clients*items/2)
	}
	if want := fmt.Sprintf("%d lost, 0 duplicated", clients*items/2); !strings.Contains(stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr)
	}
}

// TestBenchCountsDuplicates publishes every item twice: clients fetch each
// value twice, and the bench must fail on it.
func TestBenchCountsDuplicates(t *testing.T) {
	s := startServer(t)
	pub := publishCmd(t, s) + " >/dev/null"
	code, stdout, stderr := run(t, "bench", "--server", s.Addr().String(), "--publish-cmd", pub+" && "+pub,
		"--clients", "20", "--items", "3", "--v1", "--json")
	if code != 1 {
		t.Fatalf("exit status %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	r := benchJSON(t, stdout)
	if r.Duplicated == 0 || r.Lost != 0 {
		t.Errorf("duplicated %d, lost %d: want some duplicates and nothing lost", r.Duplicated, r.Lost)
	}
	if !strings.Contains(stderr, "duplicated") {
		t.Errorf("stderr does not mention the duplicates:\n%s", stderr)
	}
}

// TestBenchTooManyConnections: a server that refuses connections beyond
// its --max-conns makes the bench stop with a message saying so.
func TestBenchTooManyConnections(t *testing.T) {
	s := startServerWith(t, server.Config{MaxConns: 5, MaxConnsPerAddr: 5})
	code, stdout, stderr := run(t, benchArgs(s, "--clients", "10", "--items", "1")...)
	if code != 1 || !strings.Contains(stderr, `"ERR too many connections"`) || !strings.Contains(stderr, "--max-conns ") {
		t.Errorf("exit status %d, want 1 with a message about --max-conns\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// TestBenchTooManyFromOneAddress: a server that refuses connections
// beyond its --max-conns-per-addr makes the bench stop with a message
// saying so.
func TestBenchTooManyFromOneAddress(t *testing.T) {
	s := startServerWith(t, server.Config{MaxConnsPerAddr: 5})
	code, stdout, stderr := run(t, benchArgs(s, "--clients", "10", "--items", "1")...)
	if code != 1 || !strings.Contains(stderr, "too many connections from your address") || !strings.Contains(stderr, "--max-conns-per-addr") {
		t.Errorf("exit status %d, want 1 with a message about --max-conns-per-addr\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// TestBenchSpreadsSourceAddresses: more clients than a server lets one
// address hold all get in, each fetching every item: the bench connects
// them from several loopback addresses.
func TestBenchSpreadsSourceAddresses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the bench spreads its clients over loopback addresses on Linux only")
	}
	const clients, items = 250, 2
	s := startServerWith(t, server.Config{MaxConnsPerAddr: bench.MaxPerSource})
	code, stdout, stderr := run(t, benchArgs(s, "--clients", strconv.Itoa(clients), "--items", strconv.Itoa(items), "--json")...)
	if code != 0 {
		t.Fatalf("exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if r := benchJSON(t, stdout); r.Delivered != clients*items || r.Dropped != 0 {
		t.Errorf("delivered %d, dropped %d; want %d, 0", r.Delivered, r.Dropped, clients*items)
	}
	if !strings.Contains(stderr, "from 3 loopback addresses, 127.0.0.2 to 127.0.0.4") {
		t.Errorf("the progress does not say where the clients connect from:\n%s", stderr)
	}
}

// startServerWith runs an in-process server with cfg on kernel-chosen
// loopback ports and a fresh store, shut down when the test ends.
func startServerWith(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	cfg.Listen, cfg.HTTP, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	s, err := server.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// TestBenchSpreadsOverServers: `--server a,b` spreads the clients over
// both, here a server and a proxy in front of it (two gateways of one
// store): every client fetches every item exactly once.
func TestBenchSpreadsOverServers(t *testing.T) {
	const clients, items = 20, 3
	s := startServer(t)
	p := linetest.NewProxy(t, s.Addr().String()).Start()
	list := s.Addr().String() + "," + p.Addr()
	code, stdout, stderr := run(t, "bench", "--server", list, "--http", "http://"+s.HTTPAddr().String(),
		"--clients", strconv.Itoa(clients), "--items", strconv.Itoa(items), "--json")
	if code != 0 {
		t.Fatalf("exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if r := benchJSON(t, stdout); r.Delivered != clients*items || !r.OK() || r.Server != list {
		t.Errorf("server %q, delivered %d, lost %d, duplicated %d, dropped %d; want %q, %d, 0, 0, 0", r.Server, r.Delivered, r.Lost, r.Duplicated, r.Dropped, list, clients*items)
	}
	if !strings.Contains(stderr, "connecting 20 clients to "+list) {
		t.Errorf("the progress does not name both servers:\n%s", stderr)
	}
}
