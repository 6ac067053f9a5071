package store_test

import (
	"testing"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/store/storetest"
)

// The bbolt store meets the contract every store of hark serve meets.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string, keep store.Retention) storetest.Store {
		st, err := store.Open(dir, keep)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
