//go:build linux

package cli_test

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
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
// they stay idle. The Twisted server of bench/twisted is measured the
// same way in the same run, when the system's Python has Twisted.
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
	twisted := exec.Command("/usr/bin/python3", "-c", "import twisted").Run() == nil
	if !twisted {
		b.Log("no Twisted for /usr/bin/python3 (Debian: python3-twisted): measuring hark only")
	}
	for b.Loop() {
		p := startHark(b, b.TempDir(), "--max-conns", strconv.Itoa(n+10), "--max-conns-per-addr", strconv.Itoa(n+10)) // every connection comes from 127.0.0.1
		perConn, mib, cpu := measureIdle(b, p.cmd.Process.Pid, p.proto, n, idle)
		b.ReportMetric(perConn, "server-B/conn")
		b.ReportMetric(mib, "server-MiB")
		b.ReportMetric(cpu, "server-idle-cpu-%")
		p.cmd.Process.Kill()
		p.wait(b, testTimeout)
		if twisted {
			cmd, addr := startTwisted(b, n+10)
			perConn, _, _ := measureIdle(b, cmd.Process.Pid, addr, n, 0)
			b.ReportMetric(perConn, "twisted-B/conn")
			cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
}

// measureIdle connects n clients to the server at addr (process pid),
// each sending notif and reading OK, and returns the growth of the
// server's resident memory per connection, its size then, and its CPU
// use over idle with the connections idle.
func measureIdle(b *testing.B, pid int, addr string, n int, idle time.Duration) (perConn, mib, cpu float64) {
	before := proctest.StatusKiB(b, pid, "VmRSS")
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", addr)
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
	perConn, mib = float64(after-before)*1024/float64(n), float64(after)/1024
	if idle > 0 {
		cpu0 := proctest.CPUTicks(b, pid)
		start := time.Now()
		time.Sleep(idle) // the measurement itself: idle is what is measured
		ticks := proctest.CPUTicks(b, pid) - cpu0
		cpu = float64(ticks) / 100 / time.Since(start).Seconds() * 100
	}
	return perConn, mib, cpu
}

// startTwisted starts bench/twisted/server.py on kernel-chosen loopback
// ports and returns it with its protocol address.
func startTwisted(b *testing.B, maxConns int) (*exec.Cmd, string) {
	cmd := exec.Command("/usr/bin/python3", "../bench/twisted/server.py", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--max-conns", strconv.Itoa(maxConns))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start the Twisted server: %v", err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if _, rest, ok := strings.Cut(sc.Text(), "serving protocol="); ok {
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			addr, _, _ := strings.Cut(rest, " ")
			return cmd, addr
		}
	}
	cmd.Process.Kill()
	_ = cmd.Wait()
	b.Fatalf("the Twisted server did not say where it serves: %v", sc.Err())
	return nil, ""
}
