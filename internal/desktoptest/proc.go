package desktoptest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// proc is one long-running program of the desktop, alone in its own
// process group so that it and everything it spawns (the panel's plugin
// wrappers, the panel that `xfce4-panel --restart` re-executes) can be
// stopped together.
type proc struct {
	name string
	log  string // file receiving its stdout and stderr
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
	err  error         // cmd.Wait's result, readable after done
}

// Grace periods for stopping: SIGTERM first, so Xvfb removes its
// /tmp/.X<n>-lock and socket and xfconfd flushes; then SIGKILL.
const (
	termGrace = 3 * time.Second
	killGrace = 5 * time.Second
)

// spawn starts argv as the named component, with its output going to
// OutDir/<name>.log. The log is an *os.File handed to the child directly
// rather than a pipe: with a pipe, cmd.Wait would also wait for every
// grandchild holding it, such as a re-executed panel.
func (d *Desktop) spawn(name string, env []string, extra []*os.File, argv ...string) (*proc, error) {
	logPath := filepath.Join(d.outDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log for %s: %w", name, err)
	}
	defer f.Close() // the child has its own copy once started
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = d.home
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = procAttr()
	fmt.Fprintf(f, "desktoptest: %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.logs = append(d.logs, logPath)
	d.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exitErr describes an early exit for readiness waits.
func (p *proc) exitErr() error {
	return fmt.Errorf("%s exited early (%v); see %s", p.name, p.err, p.log)
}

// stop ends the process group and waits until no process of it is left.
func (p *proc) stop() error {
	pgid := p.cmd.Process.Pid
	if groupGone(pgid, p.done) {
		return nil
	}
	signalGroup(pgid, false)
	if waitGroupGone(pgid, p.done, termGrace) {
		return nil
	}
	signalGroup(pgid, true)
	if waitGroupGone(pgid, p.done, killGrace) {
		return fmt.Errorf("%s ignored SIGTERM for %v and was killed", p.name, termGrace)
	}
	return fmt.Errorf("%s: processes %v still running after SIGKILL", p.name, groupMembers(pgid))
}

// waitGroupGone polls until the group is empty. Polling (every 20ms) is
// deliberate: members other than the direct child are not our children
// until they are orphaned, so there is nothing to wait on for them.
func waitGroupGone(pgid int, done <-chan struct{}, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if groupGone(pgid, done) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func groupGone(pgid int, done <-chan struct{}) bool {
	select {
	case <-done:
	default:
		return false
	}
	// Reap before listing: as a subreaper we are an ancestor of every
	// process in the group and adopt each one whose parent dies, so once
	// reapGroup finds no child of ours there, no zombie of ours can appear
	// there later. The listing then catches processes that escaped
	// adoption (if prctl failed).
	if !reapGroup(pgid) {
		return false
	}
	return len(groupMembers(pgid)) == 0
}

// readLine reads one line that a starting program writes to r (Xvfb's
// -displayfd, dbus-daemon's --print-address), which is how they tell us
// they are ready. It gives up when ctx ends or the program exits.
func readLine(ctx context.Context, r *os.File, p *proc) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
	}()
	select {
	case res := <-ch:
		if res.err != nil && !(errors.Is(res.err, io.EOF) && res.line != "") {
			<-p.doneOrTimeout(time.Second)
			return "", fmt.Errorf("reading readiness line of %s: %w (exit: %v; see %s)", p.name, res.err, p.exitStatus(), p.log)
		}
		return res.line, nil
	case <-ctx.Done():
		r.Close() // unblocks the reader
		<-ch
		return "", fmt.Errorf("waiting for %s to be ready: %w", p.name, ctx.Err())
	}
}

func (p *proc) doneOrTimeout(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		select {
		case <-p.done:
		case <-time.After(d):
		}
	}()
	return ch
}

func (p *proc) exitStatus() any {
	select {
	case <-p.done:
		if p.err == nil {
			return "exit status 0"
		}
		return p.err
	default:
		return "still running"
	}
}

// tail returns the last n lines of a file, for failure reports.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
