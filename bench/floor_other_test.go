//go:build !linux

package bench

// floorChild: BenchmarkLoopbackFloor runs on Linux only.
func floorChild() (code int, child bool) { return 0, false }
