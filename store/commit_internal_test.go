package store

import (
	"testing"
	"time"

	"github.com/harkapp/hark/wire"
)

// An Append returns only once every position staged before it is on disk,
// whether it wrote them itself or waited for the commit that had taken
// them: a client's acknowledgement survives a crash right after a publish.
func TestAppendCarriesStagedPositions(t *testing.T) {
	st, err := Open(t.TempDir(), Retention{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	for i := range 50 {
		commit := st.StageClient("c", Client{Ad: uint64(i + 1), Seen: at})
		if _, err := st.Append(wire.KindRandom, "7", at); err != nil {
			t.Fatal(err)
		}
		select {
		case <-commit.done:
			if commit.err != nil {
				t.Fatalf("round %d: the commit failed: %v", i, commit.err)
			}
		default:
			t.Fatalf("round %d: Append returned before the position staged ahead of it was on disk", i)
		}
	}
}
