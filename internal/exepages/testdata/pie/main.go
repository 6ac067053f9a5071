// A program built -buildmode=pie by TestReleaseInAPIEBinary: it releases
// its pages, then uses interfaces, maps and fmt, which read the relocated
// read-only data.
package main

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/harkapp/hark/internal/exepages"
)

func main() {
	n, err := exepages.Release()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	m := map[string]error{"a": errors.New("x"), "b": fmt.Errorf("y: %w", os.ErrNotExist)}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("still running after releasing %d bytes of mappings: %v %v\n", n, keys, errors.Is(m["b"], os.ErrNotExist))
}
