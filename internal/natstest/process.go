package natstest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// debianNATS is where Debian's nats-server package puts the server.
const debianNATS = "/usr/sbin/nats-server"

// Exe returns the nats-server to run as a process: the one on PATH, else
// Debian's. Without one the test is skipped, or fails when CI=true:
// .ci/run installs Debian's package, and a CI run that lacks it must not
// pass by skipping what it is meant to prove.
func Exe(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if _, err := os.Stat(debianNATS); err == nil {
		return debianNATS
	}
	msg := "natstest: no nats-server; install with: apt-get install --no-install-recommends nats-server"
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true, so this is a failure, not a skip)", msg)
	}
	t.Skip(msg)
	return ""
}

// Proc is a nats-server process, one node of a cluster.
type Proc struct {
	Name string
	URL  string // nats://127.0.0.1:PORT
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{} // closed once the process has exited
}

// StartProcessCluster starts n nats-server processes (exe, from Exe) that
// form one JetStream cluster on loopback, each with its storage in a
// temporary directory, killed when the test ends. It returns once every
// node reports itself healthy (its /healthz, which in JetStream mode waits
// for contact with the cluster's meta leader).
func StartProcessCluster(t testing.TB, exe string, n int) []*Proc {
	t.Helper()
	// Every port is known before any node starts: each names the others
	// as routes, and the test names the client ports. (The kernel may
	// hand a closed port to somebody else in between; on loopback in a
	// test that is a failure to start, not a wrong result.)
	ports := freePorts(t, 3*n)
	client, routes, monitor := ports[:n], ports[n:2*n], ports[2*n:]
	var routeURLs []string
	for _, p := range routes {
		routeURLs = append(routeURLs, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	procs := make([]*Proc, n)
	for i := range procs {
		dir := t.TempDir()
		conf := fmt.Sprintf(`server_name: n%d
listen: "127.0.0.1:%d"
http: "127.0.0.1:%d"
jetstream { store_dir: %q }
cluster {
  name: hark-test
  listen: "127.0.0.1:%d"
  routes: [%s]
}
`, i+1, client[i], monitor[i], filepath.Join(dir, "js"), routes[i], strings.Join(routeURLs, ", "))
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		p := &Proc{Name: fmt.Sprintf("n%d", i+1), URL: fmt.Sprintf("nats://127.0.0.1:%d", client[i]),
			cmd: exec.Command(exe, "-c", path), log: &lockedBuffer{}, done: make(chan struct{})}
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", exe, err)
		}
		go func() {
			_ = p.cmd.Wait()
			close(p.done)
		}()
		t.Cleanup(p.Kill)
		procs[i] = p
	}
	for i, p := range procs {
		healthy(t, p, monitor[i])
	}
	return procs
}

// healthy waits, bounded, until the node's /healthz answers 200 and its
// /jsz names the cluster's meta leader: only then does it create streams
// promptly (a 2.9 node says healthy before it knows the leader).
func healthy(t testing.TB, p *Proc, port int) {
	t.Helper()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cl := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("nats-server %s exited at start:\n%s", p.Name, p.log)
		default:
		}
		err := ready(cl, base)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server %s not ready within 30 s (%v):\n%s", p.Name, err, p.log)
		}
		time.Sleep(100 * time.Millisecond) // the cluster's own pace: nothing to await
	}
}

// ready checks a node's monitoring endpoint once.
func ready(cl *http.Client, base string) error {
	resp, err := cl.Get(base + "/healthz")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s", resp.Status)
	}
	resp, err = cl.Get(base + "/jsz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var jsz struct {
		Meta *struct {
			Leader string `json:"leader"`
		} `json:"meta_cluster"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return fmt.Errorf("/jsz: %w", err)
	}
	if jsz.Meta == nil || jsz.Meta.Leader == "" {
		return errors.New("/jsz: no meta leader yet")
	}
	return nil
}

// Kill kills the node with SIGKILL, as a crash, and waits until it has
// exited (again: a no-op).
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Log is what the node wrote so far.
func (p *Proc) Log() string { return p.log.String() }

// ProcURLs is the client URLs of procs, joined with commas.
func ProcURLs(procs []*Proc) string {
	urls := make([]string, len(procs))
	for i, p := range procs {
		urls[i] = p.URL
	}
	return strings.Join(urls, ",")
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	var lns []net.Listener
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// lockedBuffer is a process's output, written by exec's copying goroutine
// and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
