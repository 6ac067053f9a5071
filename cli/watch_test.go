package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/harkapp/hark/cli"
	"github.com/harkapp/hark/internal/linetest"
)

// lines is an io.Writer that hands each complete line to a channel.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan string
}

func newLines() *lines { return &lines{ch: make(chan string, 1000)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		s, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(s) // keep the partial line
			return len(p), nil
		}
		l.ch <- strings.TrimSuffix(s, "\n")
	}
}

// next returns the next line containing substr, skipping others.
func (l *lines) next(t testing.TB, substr string) string {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		select {
		case s := <-l.ch:
			if strings.Contains(s, substr) {
				return s
			}
		case <-timeout:
			t.Fatalf("no line containing %q in time", substr)
		}
	}
}

// TestWatchKill9EveryAdOnce: hark serve is killed with SIGKILL while ads
// are being published and restarted on its store; hark watch prints every
// ad exactly once, in order.
func TestWatchKill9EveryAdOnce(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	dir := t.TempDir()
	p1 := startHark(t, dir)

	out, logs := newLines(), newLines()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cli.Watch(ctx, []string{"--server", p1.proto, "--json"}, out, logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	logs.next(t, "msg=connected")

	for i := 1; i <= 8; i++ {
		postItem(t, p1.api, "classified", fmt.Sprintf("A%d", i))
	}
	p1.kill9(t)
	p2 := startHark(t, dir, "--listen", p1.proto)
	for i := 9; i <= 16; i++ {
		postItem(t, p2.api, "classified", fmt.Sprintf("A%d", i))
	}
	logs.next(t, "msg=connected") // it came back
	for i := 17; i <= 19; i++ {
		postItem(t, p2.api, "classified", fmt.Sprintf("A%d", i))
	}
	postItem(t, p2.api, "classified", "A20 <b>&</b>")

	seen := map[uint64]bool{}
	for want := 1; want <= 20; {
		var it struct {
			Kind, Value, Time string
			ID                uint64
		}
		line := out.next(t, "")
		if err := json.Unmarshal([]byte(line), &it); err != nil {
			t.Fatalf("watch printed %q: %v", line, err)
		}
		if _, err := time.Parse(time.RFC3339, it.Time); err != nil || it.ID == 0 {
			t.Fatalf("watch printed %q: want an id and an RFC 3339 time", line)
		}
		if seen[it.ID] {
			t.Fatalf("item %d printed twice: %q", it.ID, line)
		}
		seen[it.ID] = true
		if it.Kind != "classified" {
			continue // the random number fetched on connecting
		}
		w := fmt.Sprintf("A%d", want)
		if want == 20 {
			w = "A20 <b>&</b>"
			if !strings.Contains(line, w) {
				t.Fatalf("watch printed %q: want <, > and & as they are", line)
			}
		}
		if it.Value != w {
			t.Fatalf("printed %q, want %s", it.Value, w)
		}
		want++
	}
}

// TestWatchExitsAtOnceOnSIGTERM: the real `hark watch`, its fetch cycle
// pending against a server that stopped answering, exits with status 0 on
// SIGTERM at once. It used to wait out the reply timeout (30 s): the
// batch ran without cancellation. What it had not acknowledged is offered
// again next time, so nothing is lost by not waiting.
func TestWatchExitsAtOnceOnSIGTERM(t *testing.T) {
	addr, pending := linetest.FrozenServer(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "watch", "--v1", "--server", addr)
	cmd.Env = append(os.Environ(), reexecEnv+"=1", "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	stderr := newServeLog() // a locked buffer: read while the process writes
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	select {
	case <-pending:
	case <-exited:
		t.Fatalf("hark watch exited early: %v\n%s", werr, stderr.String())
	case <-time.After(testTimeout):
		t.Fatalf("hark watch never started a fetch cycle\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if werr != nil {
			t.Fatalf("hark watch after SIGTERM: %v, want exit status 0\n%s", werr, stderr.String())
		}
	case <-time.After(testTimeout):
		t.Fatalf("hark watch still running %v after SIGTERM: a pending batch held it\n%s", testTimeout, stderr.String())
	}
}

// failingWriter fails every write, as a full disk does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// hark watch that cannot print an item ends with an error that says what
// the item was: it is counted as shown once taken, so it must not vanish
// without a word.
func TestWatchWriteFailureNamesTheItem(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	s := startServer(t)
	logs := newLines()
	done := make(chan error, 1)
	go func() {
		done <- cli.Watch(context.Background(), []string{"--server", s.Addr().String()}, failingWriter{}, logs)
	}()
	logs.next(t, "msg=connected")
	postItem(t, "http://"+s.HTTPAddr().String(), "classified", "Bike for sale")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), "Bike for sale") {
			t.Fatalf("Watch = %v; want the write error, naming the ad", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Watch went on after a failed write")
	}
}

// TestWatchServerNeverReached: a server that is not there is "cannot
// connect", said once with the error, and its repeats (the session backs
// off: 3 or more tries in 4 s) counted in one line; never
// "disconnected", which it never was.
func TestWatchServerNeverReached(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := cli.Run(ctx, []string{"watch", "--v1", "--server", addr}, &stdout, &stderr)
	log := stderr.String()
	if code != 0 || stdout.Len() > 0 {
		t.Errorf("hark watch --server %s: exit status %d, stdout %q", addr, code, stdout.String())
	}
	if strings.Contains(log, "msg=disconnected") {
		t.Errorf("hark watch says disconnected from a server it never reached:\n%s", log)
	}
	first := fmt.Sprintf(`level=WARN msg="cannot connect to %s" err="dial tcp %s: connect: connection refused"`, addr, addr)
	count := regexp.MustCompile(`level=WARN msg="cannot connect to ` + regexp.QuoteMeta(addr) + ` \(([2-9]|\d\d+) more times in the last \d+s\)" err=`)
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], first) || !count.MatchString(lines[1]) {
		t.Errorf("hark watch --server %s logged:\n%s\nwant 2 lines: %s ..., then the count of repeats", addr, log, first)
	}
}

// TestWatchFailsOver: `hark watch --server a,b` with nothing at a
// connects to b, prints what is published there, and says that it
// failed over.
func TestWatchFailsOver(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close() // nobody listens there now
	p := startHark(t, t.TempDir())
	out, logs := newLines(), newLines()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cli.Watch(ctx, []string{"--server", gone + "," + p.proto}, out, logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	logs.next(t, `msg="failing over to `+p.proto+`"`)
	logs.next(t, "msg=connected addr="+p.proto)
	postItem(t, p.api, "classified", "via b")
	out.next(t, "classified via b")
}

// TestWatchRefusesABadList: a list with a bad element is refused, naming
// it.
func TestWatchRefusesABadList(t *testing.T) {
	for list, says := range map[string]string{
		"127.0.0.1:6789,":                     "address 2 of the list is empty",
		"127.0.0.1:6789,tls://127.0.0.1:6790": "either every address speaks TLS",
		"127.0.0.1:6789,nohost":               `address 2 of the list: "nohost"`,
	} {
		var stdout, stderr bytes.Buffer
		code := cli.Run(context.Background(), []string{"watch", "--v1", "--server", list}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), says) {
			t.Errorf("hark watch --server %q: exit status %d, stderr %q; want 2 and %q", list, code, stderr.String(), says)
		}
	}
}
