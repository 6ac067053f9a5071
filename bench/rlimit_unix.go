//go:build unix

package bench

import (
	"fmt"
	"syscall"
)

// raiseFileLimit makes room for need open files: it raises the soft
// RLIMIT_NOFILE to the hard limit when the soft one is too low, and says
// so. (Go's runtime already raises it at start-up on most systems since
// Go 1.19, so this rarely has anything to do; it still finds a hard limit
// that is too low, and says what to change.)
func raiseFileLimit(need int, progress func(string)) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // nothing to go by: let the connects tell
	}
	if uint64(lim.Cur) >= uint64(need) {
		return nil
	}
	if uint64(lim.Max) < uint64(need) {
		return fmt.Errorf("%d clients need about %d open files, but the hard limit is %d: raise it (ulimit -Hn as root, LimitNOFILE= for a systemd unit) or use fewer --clients", need-fdMargin, need, lim.Max)
	}
	old := lim.Cur
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising the open-file limit from %d to its hard limit %d: %w", old, lim.Max, err)
	}
	progress(fmt.Sprintf("raised the open-file soft limit from %d to the hard limit, %d, for %d clients", old, lim.Cur, need-fdMargin))
	return nil
}
