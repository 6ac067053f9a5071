package store

import (
	"sync"
	"time"
)

// TokenUses records in memory when each token was last used, until a
// flush writes them: a use is not worth a write of its own. Both token
// sets (the file's, TokenSet, and a shared store's) keep one. The zero
// value is ready.
type TokenUses struct {
	mu   sync.Mutex
	last map[string]time.Time // since the last Take, by token id
}

// Record notes that the token id was used at now; the later use wins.
func (u *TokenUses) Record(id string, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		u.last = make(map[string]time.Time)
	}
	if now.After(u.last[id]) {
		u.last[id] = now
	}
}

// Take returns the uses recorded and forgets them; nil when there are none.
func (u *TokenUses) Take() map[string]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := u.last
	u.last = nil
	return m
}

// Keep puts back uses taken that could not be written, for the next
// flush; a use recorded meanwhile that is later wins.
func (u *TokenUses) Keep(m map[string]time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		u.last = make(map[string]time.Time, len(m))
	}
	for id, at := range m {
		if at.After(u.last[id]) {
			u.last[id] = at
		}
	}
}
