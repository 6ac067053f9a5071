//go:build !unix

package netclient

import "os"

// tryLock: without flock, every instance uses the first slot.
func tryLock(*os.File) bool { return true }

func unlock(*os.File) {}
