//go:build linux

package cli_test

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// BenchmarkIdleConnRSS measures what an idle connection in notification
// mode costs the real `hark serve` process: its resident memory before
// and after HARK_IDLE_CONNS connections (default 10,000) have each sent
// notif and read OK, divided by their number. The connections come from
// this process; both ends need that many file descriptors.
//
//	go test -run '^$' -bench IdleConnRSS -benchtime 1x -count 3 ./cli/
func BenchmarkIdleConnRSS(b *testing.B) {
	n := 10000
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
		p := startHark(b, b.TempDir(), "--max-conns", strconv.Itoa(n+10))
		pid := p.cmd.Process.Pid
		before := vmRSS(b, pid)
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
		after := vmRSS(b, pid)
		b.ReportMetric(float64(after-before)*1024/float64(n), "server-B/conn")
		b.ReportMetric(float64(after)/1024, "server-MiB")
		for _, c := range conns {
			c.Close()
		}
		p.cmd.Process.Kill()
		p.wait(b, testTimeout)
	}
}

// vmRSS is a process's resident memory in KiB.
func vmRSS(tb testing.TB, pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}
