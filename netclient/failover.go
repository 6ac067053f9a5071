package netclient

// failover is where a session is in its list of addresses, the servers
// of one store (docs/PROTOCOL.md, Several addresses). A round is the
// failures since the last successful connection: while the round has an
// address that has not failed, the session moves to it at once; when
// every address has failed, the round is over and the session backs off
// before the next. An address whose server said it is going away is
// gone: it is tried only after every other address has failed in the
// round, until the session next connects to it. Owned by Run's goroutine.
type failover struct {
	addrs  []string // each one address, as Dial takes it
	cur    int      // the address being tried, or connected to
	failed []bool   // in the current round
	gone   []bool
	fast   bool // a failure of the round that retrying may fix
}

func newFailover(addrs []string) *failover {
	return &failover{addrs: addrs, failed: make([]bool, len(addrs)), gone: make([]bool, len(addrs))}
}

// addr is the address being tried, or connected to.
func (f *failover) addr() string { return f.addrs[f.cur] }

// connected ends the round: the current address works, gone or not.
func (f *failover) connected() {
	clear(f.failed)
	f.fast = false
	f.gone[f.cur] = false
}

// fail takes a failure of the current address (slow: only a setting can
// fix it; gone: the server said it is going away) and moves to the next
// address. over says the round is over, every address having failed:
// the session waits before it tries the next; allSlow, that each of
// them failed in a way only a setting can fix.
func (f *failover) fail(slow, gone bool) (over, allSlow bool) {
	f.failed[f.cur] = true
	f.gone[f.cur] = f.gone[f.cur] || gone
	f.fast = f.fast || !slow
	if i, ok := f.next(); ok {
		f.cur = i
		return false, false
	}
	allSlow = !f.fast
	clear(f.failed)
	f.fast = false
	f.cur, _ = f.next() // always one, now that none has failed
	return true, allSlow
}

// next is the address to try after the current one, round the list: the
// first that has not failed in the round and is not gone, else the first
// gone one that has not failed in the round; false when every address
// has failed.
func (f *failover) next() (int, bool) {
	n := len(f.addrs)
	for _, gone := range []bool{false, true} {
		for k := 1; k <= n; k++ {
			if i := (f.cur + k) % n; !f.failed[i] && f.gone[i] == gone {
				return i, true
			}
		}
	}
	return 0, false
}
