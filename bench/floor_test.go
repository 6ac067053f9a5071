//go:build linux

package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLoopbackFloor measures what loopback allows for the classic
// fetch cycle on this machine: the same writes and reads as hark serve and
// hark bench make (a push; the client's batch "seen, stop_notif,
// classified?, notif" in one write; the replies in one write), between
// two processes of plain goroutines with no protocol, no store and no
// bookkeeping. hark's latency targets are judged against it
// (docs/PERFORMANCE.md): no server can do the cycle for N clients on these
// cores faster than this.
//
// Per iteration the server process writes the push to every connection
// (see below for how); each client reacts.
// Reported: the p50 and p99, over every client and iteration, of the time
// from the start of the fan-out to the client having read its replies,
// and the CPU time of both processes per cycle.
//
// The server process works in one of two ways: server=goroutines, a
// goroutine per connection blocked in Read, as hark serve does today; and
// server=epoll, no goroutine per connection, one epoll instance per core
// (GOMAXPROCS) whose goroutine reads each ready connection's batch and
// writes its replies with raw non-blocking system calls, as an event loop
// does (issue 15's yardstick: what giving up goroutines can win).
//
// And a third, items: the cycle with items in pushes (docs/PROTOCOL.md),
// where the push carries the item and the client only reads it, with no
// batch and no replies.
//
// In every mode the server process writes the pushes of a fan-out from
// one goroutine per core (GOMAXPROCS), each to its share of the
// connections, as hark serve's pusher does since it spread them.
func BenchmarkLoopbackFloor(b *testing.B) {
	for _, mode := range []string{"goroutines", "epoll", floorItems} {
		for _, n := range []int{1000, 10000} {
			name := "server=" + mode
			if mode == floorItems {
				name = "items-in-pushes"
			}
			b.Run(fmt.Sprintf("%s/clients=%d", name, n), func(b *testing.B) {
				if err := raiseFileLimit(n, func(string) {}); err != nil {
					b.Fatal(err)
				}
				floor(b, n, mode)
			})
		}
	}
}

const (
	floorPush  = "notif: classified\r\n"
	floorBatch = "seen 4181\r\nstop_notif\r\nclassified?\r\nnotif\r\n"
	floorReply = "OK\r\nOK\r\n4182 Nice appart in the 11e.\r\nOK\r\n"
	// floorItem is the push of the items cycle: the reply's item, in it.
	floorItem  = "notif: classified 4182 Nice appart in the 11e.\r\n"
	floorItems = "items"
	floorEnv   = "HARK_FLOOR_SERVER" // set (to N clients): this test binary is the floor's server
	floorMode  = "HARK_FLOOR_MODE"   // goroutines or epoll
)

func floor(b *testing.B, n int, mode string) {
	cmd := exec.Command(os.Args[0], "-test.run=^$") // TestMain runs floorChild
	cmd.Env = append(os.Environ(), floorEnv+"="+strconv.Itoa(n), floorMode+"="+mode)
	cmd.Stderr = os.Stderr
	ctl, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctl.Close() // the server process exits at the end of its input
		if err := cmd.Wait(); err != nil {
			b.Errorf("floor server process: %v", err)
		}
	}()
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		b.Fatalf("the floor server process printed no address: %v", lines.Err())
	}
	addr := lines.Text()

	var wg sync.WaitGroup
	defer wg.Wait()
	clients := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for range n {
		cc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, cc)
	}
	var start atomic.Int64 // UnixNano at each fan-out's start (the other process reads no clock)
	done := make(chan time.Duration, n)
	for _, cc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for mode == floorItems {
				if _, err := io.ReadFull(cc, buf[:len(floorItem)]); err != nil {
					return
				}
				done <- time.Duration(time.Now().UnixNano() - start.Load())
			}
			for {
				if _, err := io.ReadFull(cc, buf[:len(floorPush)]); err != nil {
					return
				}
				if _, err := cc.Write([]byte(floorBatch)); err != nil {
					return
				}
				if _, err := io.ReadFull(cc, buf[:len(floorReply)]); err != nil {
					return
				}
				done <- time.Duration(time.Now().UnixNano() - start.Load())
			}
		}()
	}
	if !lines.Scan() || lines.Text() != "ready" { // all n accepted
		b.Fatalf("the floor server process did not get ready: %v", lines.Err())
	}

	var samples []uint32
	cpu0 := floorCPU(b, cmd.Process.Pid)
	b.ResetTimer()
	for b.Loop() {
		start.Store(time.Now().UnixNano())
		if _, err := io.WriteString(ctl, "push\n"); err != nil {
			b.Fatal(err)
		}
		for range n {
			samples = append(samples, uint32((<-done).Microseconds()))
		}
	}
	b.StopTimer()
	cpu := floorCPU(b, cmd.Process.Pid) - cpu0
	d := distOf(samples)
	b.ReportMetric(d.P50, "p50-ms")
	b.ReportMetric(d.P99, "p99-ms")
	b.ReportMetric(cpu.Seconds()*1e6/float64(len(samples)), "cpu-us/cycle")
}

// floorCPU is the CPU time of this process and the server process.
func floorCPU(b *testing.B, pid int) time.Duration {
	server, err := readProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration((server.cpu + selfProc().cpu) * float64(time.Second))
}

// floorChild runs the server side of BenchmarkLoopbackFloor when this test
// binary was started as its child process (floorEnv set), and reports its
// exit status; child is false in any other run. The server accepts the
// clients, answers each batch with one write, and writes a push to every
// connection for each line on its stdin, until stdin ends.
func floorChild() (code int, child bool) {
	v := os.Getenv(floorEnv)
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err == nil {
		switch os.Getenv(floorMode) {
		case "epoll":
			err = floorServerEpoll(n)
		case floorItems:
			err = floorServer(n, floorItem)
		default:
			err = floorServer(n, floorPush)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor server:", err)
		return 1, true
	}
	return 0, true
}

func floorServer(n int, push string) error {
	if err := raiseFileLimit(n, func(string) {}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr())
	var wg sync.WaitGroup
	defer wg.Wait()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		sc, err := ln.Accept()
		if err != nil {
			return err
		}
		conns = append(conns, sc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for {
				if _, err := io.ReadFull(sc, buf[:len(floorBatch)]); err != nil {
					return
				}
				if _, err := sc.Write([]byte(floorReply)); err != nil {
					return
				}
			}
		}()
	}
	fmt.Println("ready")
	ctl := bufio.NewScanner(os.Stdin)
	for ctl.Scan() {
		err := pushAll(len(conns), func(i int) error {
			_, err := conns[i].Write([]byte(push))
			return err
		})
		if err != nil {
			return err
		}
	}
	return ctl.Err()
}

// pushAll writes a fan-out's n pushes (write(i) for each i) from one
// goroutine per core, each taking its share, as hark serve's pusher does.
func pushAll(n int, write func(i int) error) error {
	parts := runtime.GOMAXPROCS(0)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() {
			for i := n * p / parts; i < n*(p+1)/parts; i++ {
				if err := write(i); err != nil {
					errs[p] = fmt.Errorf("push: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
