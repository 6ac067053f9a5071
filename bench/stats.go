package bench

import (
	"math"
	"slices"
)

// distOf sorts samples (microseconds) and returns their distribution in
// milliseconds. Percentiles are nearest rank: the p-th is the smallest
// sample with at least p% of all samples at or below it.
func distOf(us []uint32) Dist {
	if len(us) == 0 {
		return Dist{}
	}
	slices.Sort(us)
	at := func(p int) float64 {
		rank := (p*len(us) + 99) / 100 // ceil(p% of n), in integers: exact
		return float64(us[max(rank, 1)-1]) / 1000
	}
	return Dist{P50: at(50), P90: at(90), P99: at(99), Max: float64(us[len(us)-1]) / 1000, N: len(us)}
}

// round3 rounds to three decimals: milliseconds, seconds and MiB need no
// more.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
