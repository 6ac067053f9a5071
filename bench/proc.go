package bench

// procSnap is a process's CPU time and memory at one moment.
type procSnap struct {
	ok       bool
	cpu      float64 // user+system seconds
	rss, hwm uint64  // bytes: resident now, and the high-water mark
}

type snap struct{ server, self procSnap }

func snapshot(serverPID int) snap {
	var s snap
	if serverPID > 0 {
		s.server, _ = readProc(serverPID)
	}
	s.self = selfProc()
	return s
}

// procs turns the snapshots taken before connecting (s0), before the first
// publish (s1) and at the end (s2) into figures.
func procs(serverPID int, s0, s1, s2 snap) (server, self *Proc) {
	mk := func(pid int, a, b, c procSnap) *Proc {
		if !a.ok || !b.ok || !c.ok {
			return nil
		}
		return &Proc{
			PID:         pid,
			ConnectCPUS: round3(b.cpu - a.cpu),
			CPUS:        round3(c.cpu - b.cpu),
			StartRSSMiB: mib(a.rss),
			ConnRSSMiB:  mib(b.rss),
			RSSMiB:      mib(c.rss),
			PeakRSSMiB:  mib(c.hwm),
		}
	}
	if serverPID > 0 {
		server = mk(serverPID, s0.server, s1.server, s2.server)
	}
	return server, mk(selfPID(), s0.self, s1.self, s2.self)
}

func mib(b uint64) float64 { return round3(float64(b) / (1 << 20)) }
