//go:build linux

package cli_test

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/proctest"
)

// BenchmarkIdleConnRSS measures what an idle connection in notification
// mode costs the real `hark serve` process: its resident memory before
// and after HARK_IDLE_CONNS connections (default 10,000) have each sent
// notif and read OK, divided by their number. The connections come from
// this process; both ends need that many file descriptors. Then, for
// HARK_IDLE_WAIT (default 10s), it measures the server's CPU use while
// they stay idle.
//
//	go test -run '^$' -bench IdleConnRSS -benchtime 1x -count 3 ./cli/
func BenchmarkIdleConnRSS(b *testing.B) {
	n := 10000
	idle := 10 * time.Second
	if v := os.Getenv("HARK_IDLE_WAIT"); v != "" {
		var err error
		if idle, err = time.ParseDuration(v); err != nil {
			b.Fatalf("HARK_IDLE_WAIT=%q: %v", v, err)
		}
	}
	if v := os.Getenv("HARK_IDLE_CONNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("HARK_IDLE_CONNS=%q: %v", v, err)
		}
	}
	// Both ends need n descriptors. Go raises its soft open-file limit to
	// the hard one at start-up (and the server inherits it): stay below.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(n)+200 {
		n = int(lim.Cur) - 200
		b.Logf("open-file limit %d: measuring %d connections", lim.Cur, n)
	}
	for b.Loop() {
		p := startHark(b, b.TempDir(), "--max-conns", strconv.Itoa(n+10), "--max-conns-per-addr", strconv.Itoa(n+10)) // every connection comes from 127.0.0.1
		pid := p.cmd.Process.Pid
		before := proctest.StatusKiB(b, pid, "VmRSS")
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := net.Dial("tcp", p.proto)
			if err != nil {
				b.Fatalf("connection %d: %v (raise the open-file limit: ulimit -n)", len(conns), err)
			}
			conns = append(conns, c)
			if _, err := c.Write([]byte("notif\r\n")); err != nil {
				b.Fatal(err)
			}
			if l, err := bufio.NewReaderSize(c, 16).ReadString('\n'); err != nil || l != "OK\r\n" {
				b.Fatalf("notif: %q, %v", l, err)
			}
		}
		after := proctest.StatusKiB(b, pid, "VmRSS")
		b.ReportMetric(float64(after-before)*1024/float64(n), "server-B/conn")
		b.ReportMetric(float64(after)/1024, "server-MiB")
		// Then the server's CPU while the connections stay idle.
		cpu0 := proctest.CPUTicks(b, pid)
		start := time.Now()
		time.Sleep(idle) // the measurement itself: idle is what is measured
		ticks := proctest.CPUTicks(b, pid) - cpu0
		b.ReportMetric(float64(ticks)/100/time.Since(start).Seconds()*100, "server-idle-cpu-%")
		for _, c := range conns {
			c.Close()
		}
		p.cmd.Process.Kill()
		p.wait(b, testTimeout)
	}
}
