package cli_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harkapp/hark/internal/linetest"
	"github.com/harkapp/hark/internal/tlstest"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// harkProc is a real `hark serve` process: this test binary re-executed
// with reexecEnv set, which makes TestMain run cli.Run as main does.
type harkProc struct {
	cmd    *exec.Cmd
	log    *serveLog // its stderr
	exited chan struct{}
	err    error // cmd.Wait's result, set before exited is closed
	proto  string
	api    string
}

// harkExe is the hark a test runs: this test binary, or for benchmarks
// that compare releases, the binary named by HARK_BIN.
func harkExe(t testing.TB) string {
	t.Helper()
	if exe := os.Getenv("HARK_BIN"); exe != "" {
		return exe
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// startTimeout bounds a hark serve's start-up: a gateway's includes
// creating its replicated streams on a NATS cluster that has just formed,
// which took over 10 s on a loaded machine (the whole suite under -race).
const startTimeout = 3 * testTimeout

// startHark starts `hark serve` on dir with kernel-chosen loopback ports,
// and returns once it has logged its addresses. The process is killed at
// the end of the test if it is still running.
func startHark(t testing.TB, dir string, extra ...string) *harkProc {
	t.Helper()
	exe := harkExe(t)
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", dir}, extra...)
	p := &harkProc{cmd: exec.Command(exe, args...), log: newServeLog(), exited: make(chan struct{})}
	// Under -race a process sleeps 1 s before exiting (atexit_sleep_ms),
	// which the graceful-exit tests would wait out.
	p.cmd.Env = append(os.Environ(), reexecEnv+"=1", "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start hark serve: %v", err)
	}
	go func() {
		_, _ = io.Copy(p.log, stderr)
		p.err = p.cmd.Wait() // after the last read, as exec requires
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(testTimeout):
			t.Errorf("hark serve (pid %d) did not exit after SIGKILL", p.cmd.Process.Pid)
		}
	})
	select {
	case <-p.log.running:
	case <-p.exited:
		t.Fatalf("hark serve exited before running: %v\nstderr:\n%s", p.err, p.log)
	case <-time.After(startTimeout):
		t.Fatalf("hark serve did not log its addresses within %v\nstderr:\n%s", startTimeout, p.log)
	}
	p.proto, p.api = p.log.addrs()
	if p.api == "" {
		t.Fatalf("no publish_api address in hark serve's log:\n%s", p.log)
	}
	return p
}

// wait waits, bounded, for the process to exit and returns cmd.Wait's
// result.
func (p *harkProc) wait(t testing.TB, within time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(within):
		t.Fatalf("hark serve (pid %d) still running after %v\nstderr:\n%s", p.cmd.Process.Pid, within, p.log)
		return nil
	}
}

// kill9 kills the process with SIGKILL: no shutdown code runs.
func (p *harkProc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	err := p.wait(t, testTimeout)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("hark serve did not die of SIGKILL: %v\nstderr:\n%s", err, p.log)
	}
	if strings.Contains(p.log.String(), "shutting down") {
		t.Fatalf("hark serve shut down gracefully: the kill was not a crash\nstderr:\n%s", p.log)
	}
}

// TestServeKill9Durability runs the real `hark serve`, kills it with
// SIGKILL, and checks that everything it acknowledged survived: items
// answered 201, and an identified client's read position.
func TestServeKill9Durability(t *testing.T) {
	dir := t.TempDir()

	p := startHark(t, dir)
	c := linetest.Dial(t, p.proto)
	c.Send("hello c1")
	c.Expect("OK")
	// c2 identifies itself, acknowledges where it starts, and reads
	// nothing: after the crash, A1 and A2 are still unread for it. A
	// client the server had forgotten would start from "now" and get only
	// the most recent ad.
	c2 := linetest.Dial(t, p.proto)
	c2.Identify("c2")
	a1 := postItem(t, p.api, "classified", "A1")
	a2 := postItem(t, p.api, "classified", "A2")
	if a2.ID <= a1.ID {
		t.Fatalf("ids %d then %d: not increasing", a1.ID, a2.ID)
	}
	c.Send("classified?")
	c.Expect(itemLine(a1)) // the oldest unread
	c.Send("random?")
	random := c.Line()
	rid, rnum, err := wire.ParseItem(random)
	if err != nil || rid == 0 {
		t.Fatalf("random? answered %q to an identified client: %v", random, err)
	}
	if _, err := wire.ParseRandom(rnum); err != nil {
		t.Fatalf("random? answered %q: %v", random, err)
	}
	c.Send(fmt.Sprintf("seen %d", max(a1.ID, rid)))
	c.Expect("OK") // acknowledged; staged for the disk
	// A publish answered 201 carries the positions staged before it to
	// disk. Without one, a kill right after the OK may cost the repeat of
	// A1 (and the client would drop it by id); with it, none.
	r2 := postItem(t, p.api, "random", "77")
	p.kill9(t)

	p = startHark(t, dir)
	c = linetest.Dial(t, p.proto)
	c.Send("hello c1")
	c.Expect("OK")
	// A1 was delivered before the crash and is not offered again.
	c.Send("classified?")
	c.Expect(itemLine(a2))
	// Nothing unread: the most recent ad.
	c.Send("classified?")
	c.Expect(itemLine(a2))
	c.Send("random?")
	c.Expect(itemLine(r2))
	c.Send(fmt.Sprintf("seen %d", a2.ID))
	c.Expect("OK")
	c2 = linetest.Dial(t, p.proto)
	c2.Send("hello c2")
	c2.Expect("OK")
	c2.Send("classified?", "classified?", "classified?")
	c2.Expect(itemLine(a1), itemLine(a2), itemLine(a2))

	// An ad published (answered 201) right before the kill is there after the restart.
	a3 := postItem(t, p.api, "classified", "A3")
	p.kill9(t)

	p = startHark(t, dir)
	c = linetest.Dial(t, p.proto)
	c.Send("hello c1")
	c.Expect("OK")
	c.Send("classified?")
	c.Expect(itemLine(a3))
	anon := linetest.Dial(t, p.proto)
	anon.Send("classified?", "random?")
	anon.Expect("A3", "77")
	// The id sequence survived too: no id is handed out twice.
	if a4 := postItem(t, p.api, "classified", "A4"); a4.ID <= a3.ID {
		t.Errorf("first id after the restart %d, want > %d", a4.ID, a3.ID)
	}
}

// TestServeSignals: SIGTERM and SIGINT stop `hark serve` gracefully: exit
// status 0, connections closed, "stopped" logged, the store closed and
// intact.
func TestServeSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			p := startHark(t, dir)
			c := linetest.Dial(t, p.proto)
			c.Send("notif")
			c.Expect("OK")
			ad := postItem(t, p.api, "classified", "Lost: grey umbrella")
			c.Expect(wire.NotifClassified)

			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := p.wait(t, 5*time.Second); err != nil {
				t.Fatalf("hark serve after %v: %v, want exit status 0\nstderr:\n%s", sig, err, p.log)
			}
			if log := p.log.String(); !strings.Contains(log, "stopped") {
				t.Errorf("hark serve's stderr does not say it stopped:\n%s", log)
			}
			c.ExpectEOF()

			st, err := store.Open(dir, store.Retention{})
			if err != nil {
				t.Fatalf("reopen the store: %v", err)
			}
			defer st.Close()
			if ads, _ := st.Items(); len(ads) != 1 || ads[0].ID != ad.ID {
				t.Errorf("store after %v holds %+v, want ad %d", sig, ads, ad.ID)
			}
		})
	}
}

// SIGHUP reloads the certificate of a running hark serve (systemctl
// reload), without dropping a connection; without TLS it is a no-op. Its
// default action would end the process: it must not.
func TestServeSIGHUP(t *testing.T) {
	files := t.TempDir()
	ca := tlstest.NewCA(t, "hark test CA")
	cert, key := ca.Issue(t, "127.0.0.1").Write(t, files)
	for _, withTLS := range []bool{true, false} {
		var extra []string
		want := "SIGHUP: nothing to reload without TLS"
		if withTLS {
			extra = []string{"--tls-cert", cert, "--tls-key", key}
			want = "TLS certificate reloaded"
		}
		p := startHark(t, t.TempDir(), extra...)
		logs := newLines()
		p.log.tee(logs)
		var c *linetest.Conn
		if withTLS {
			nc, err := tls.Dial("tcp", strings.TrimPrefix(p.proto, "tls://"), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
			c = linetest.New(t, nc)
		} else {
			c = linetest.Dial(t, p.proto)
		}
		c.Send("notif")
		c.Expect("OK")
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		logs.next(t, want)
		c.Send("random?")
		if c.Line() == "" {
			t.Fatal("no random number after SIGHUP")
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.wait(t, 5*time.Second); err != nil {
			t.Fatalf("hark serve after SIGHUP then SIGTERM: %v\nstderr:\n%s", err, p.log)
		}
	}
}
