package tray

import "errors"

// Running reports whether a tray already runs in this user session (it
// holds the instance lock): what `hark --demo` checks before it starts
// anything, so a second demo does not start a throwaway server first.
// Run takes the lock for itself; a tray started between the two is still
// refused there.
func Running(stateDir string) (bool, error) {
	release, err := lockInstance(stateDir)
	if errors.Is(err, errRunning) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	release()
	return false, nil
}
