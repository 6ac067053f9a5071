package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need
// cgo). The resolution is therefore 10 ms.
const clockTicks = 100

// CheckPID reports whether pid is a process whose figures can be read.
func CheckPID(pid int) error {
	_, err := readProc(pid)
	return err
}

// readProc reads a process's CPU time (/proc/PID/stat: utime + stime) and
// memory (/proc/PID/status: VmRSS, VmHWM).
func readProc(pid int) (procSnap, error) {
	var p procSnap
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, fmt.Errorf("no process %d to measure: %w", pid, err)
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis. utime and stime are fields 14
	// and 15 of the line; the state, field 3, comes first here.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return p, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return p, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return p, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	p.cpu = float64(ut+st) / clockTicks
	if p.rss, p.hwm, err = readMem(fmt.Sprintf("/proc/%d/status", pid)); err != nil {
		return p, err
	}
	p.ok = true
	return p, nil
}

// readMem reads VmRSS and VmHWM from a /proc status file.
func readMem(path string) (rss, hwm uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("cannot parse %s in %s", k, path)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm, sc.Err()
}

// selfProc is the bench's own figures: CPU from getrusage (microseconds,
// finer than /proc's ticks), memory from /proc/self/status.
func selfProc() procSnap {
	var p procSnap
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return p
	}
	p.cpu = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	var err error
	if p.rss, p.hwm, err = readMem("/proc/self/status"); err != nil {
		return p
	}
	p.ok = true
	return p
}

func selfPID() int { return os.Getpid() }
