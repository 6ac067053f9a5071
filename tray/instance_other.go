//go:build !unix

package tray

import "errors"

var errRunning = errors.New("hark is already running in this session")

// lockInstance does not guard against a second tray outside Unix.
func lockInstance(stateDir string) (release func(), err error) {
	return func() {}, nil
}
