//go:build !linux

package bench

import (
	"errors"
	"os"
)

// CheckPID reports whether pid is a process whose figures can be read:
// never, here, as they come from Linux's /proc.
func CheckPID(int) error {
	return errors.New("process figures come from /proc, which only Linux has")
}

func readProc(int) (procSnap, error) { return procSnap{}, CheckPID(0) }

func selfProc() procSnap { return procSnap{} }

func selfPID() int { return os.Getpid() }
