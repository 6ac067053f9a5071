//go:build !linux

package desktoptest

import "syscall"

// Off Linux the package only compiles: Missing reports the platform and
// Require skips, so Start never gets here.

func procAttr() *syscall.SysProcAttr { return nil }

func signalGroup(pgid int, kill bool) {}

func becomeSubreaper() {}

func reapGroup(pgid int) bool { return true }

func groupMembers(pgid int) []int { return nil }
