package desktoptest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// procAttr puts each component in its own process group, so stop can
// signal everything it spawned. Pdeathsig kills the direct child if the
// test binary dies without running cleanups (a panic or `go test
// -timeout`), so that such a run leaves as little as possible behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func signalGroup(pgid int, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-pgid, sig)
}

var subreaper sync.Once

// becomeSubreaper makes the test process adopt orphaned descendants.
// `xfce4-panel --restart` re-executes the panel in a new process whose
// parent then exits; without this it is reparented to PID 1, and where PID
// 1 does not reap (many containers) every killed panel would stay a zombie
// forever. As a subreaper we reap them ourselves (reapGroup). The effect
// is process-wide but harmless: orphans of other tests just become our
// zombies instead of PID 1's.
func becomeSubreaper() {
	subreaper.Do(func() {
		const prSetChildSubreaper = 36
		_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	})
}

// reapGroup collects exited children of ours in the process group and
// reports whether none is left, dead or alive. It is called only after
// the component's direct child has been waited for, so it cannot steal
// that exit status from exec.Cmd.Wait.
func reapGroup(pgid int) bool {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
		case err == syscall.ECHILD:
			return true
		case err != nil || pid == 0:
			return false // a child of ours in the group still runs
		}
	}
}

// groupMembers lists the live processes of a process group. Zombies are
// left out: those that are ours were reaped by reapGroup just before, so
// any left belong to someone else and hold nothing but a PID.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// The command name may contain spaces and parentheses; the
		// fields after its closing parenthesis are: state ppid pgrp ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}
