package netclient

import (
	"slices"
	"testing"
)

// TestFailoverOrder: the order in which a session tries its addresses.
// A failure moves to the next address round the list while the round
// has one that has not failed; the round ends when all have failed. A
// gone address is tried only when every other one has failed in the
// round, and is not gone once connected to.
func TestFailoverOrder(t *testing.T) {
	type step struct {
		slow, gone, connect bool
		cur                 string // the address tried next
		over, allSlow       bool
	}
	for _, tc := range []struct {
		name  string
		addrs []string
		steps []step
	}{
		{"one address: every failure ends the round", []string{"a"}, []step{
			{cur: "a", over: true},
			{slow: true, cur: "a", over: true, allSlow: true},
			{gone: true, cur: "a", over: true},
		}},
		{"a round through the list, then another", []string{"a", "b", "c"}, []step{
			{cur: "b"}, {cur: "c"}, {cur: "a", over: true},
			{cur: "b"},
			{connect: true, cur: "b"},
			{cur: "c"}, {cur: "a"}, {cur: "b", over: true},
		}},
		{"a round of failures only a setting can fix", []string{"a", "b"}, []step{
			{slow: true, cur: "b"}, {slow: true, cur: "a", over: true, allSlow: true},
			{slow: true, cur: "b"}, {cur: "a", over: true},
		}},
		{"a gone address comes last, and back once it works", []string{"a", "b", "c"}, []step{
			{gone: true, cur: "b"},
			{connect: true, cur: "b"},
			{cur: "c"}, // b dropped
			{connect: true, cur: "c"},
			{cur: "b"}, // c dropped: b, not a, which is gone
			{cur: "a"}, // every other one failed: a's turn
			{cur: "b", over: true},
			{cur: "c"}, {cur: "a"}, // still gone: last of the round
			{connect: true, cur: "a"},
			{cur: "b"}, // a works again: not gone
		}},
		{"every address gone", []string{"a", "b"}, []step{
			{gone: true, cur: "b"}, {gone: true, cur: "a", over: true}, {cur: "b"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFailover(slices.Clone(tc.addrs))
			for i, st := range tc.steps {
				var over, allSlow bool
				if st.connect {
					f.connected()
				} else {
					over, allSlow = f.fail(st.slow, st.gone)
				}
				if f.addr() != st.cur || over != st.over || allSlow != st.allSlow {
					t.Fatalf("step %d (%+v): next %s, over %v, all slow %v; want %s, %v, %v",
						i+1, st, f.addr(), over, allSlow, st.cur, st.over, st.allSlow)
				}
			}
		})
	}
}
