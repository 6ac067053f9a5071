package netclient

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/harkapp/hark/internal/filelock"
	"github.com/harkapp/hark/wire"
)

// Marks are the ids of the last ad and random number delivered from one
// server's store. They only mean something under the epoch they were made
// in: ids from another store, or from this one before it was wiped, say
// nothing about what is news.
type Marks struct {
	Epoch  string // "" for a server that does not tell its epoch
	Ad     uint64
	Random uint64
}

func (m Marks) of(k wire.Kind) uint64 {
	if k == wire.KindRandom {
		return m.Random
	}
	return m.Ad
}

func (m *Marks) set(k wire.Kind, id uint64) {
	if k == wire.KindRandom {
		m.Random = max(m.Random, id)
	} else {
		m.Ad = max(m.Ad, id)
	}
}

func (m Marks) max() uint64 { return max(m.Ad, m.Random) }

// markBook keeps marks per server; *Identity keeps them on disk, memBook
// for one session.
type markBook interface {
	Marks(server string) (Marks, bool)
	SetMarks(server string, m Marks) error
}

type memBook map[string]Marks

func (b memBook) Marks(server string) (Marks, bool) { m, ok := b[server]; return m, ok }
func (b memBook) SetMarks(server string, m Marks) error {
	b[server] = m
	return nil
}

const (
	// maxSlots bounds how many instances of one user may run sessions at
	// once, each with an id of its own.
	maxSlots = 8
	// maxServers bounds the servers whose marks are kept; the least
	// recently used is forgotten first (it then counts as new to them).
	maxServers = 16
	// maxIdentityFile bounds what is read of the file.
	maxIdentityFile = 16 << 10
)

// Identity is a client id kept in a file, with the marks of the last items
// delivered from each server it talked to, so that a restarted client
// neither misses nor repeats anything, and a client pointed at another
// server, or at a server whose store was wiped, does not take its new ids
// for old ones. It holds a lock on its file until Close.
type Identity struct {
	id   string
	path string
	f    *os.File

	mu      sync.Mutex
	servers []serverMarks // most recently used first
	legacy  *Marks        // from a file written before marks per server
}

type serverMarks struct {
	addr string
	m    Marks
}

// OpenIdentity opens the client id kept in dir (the user's XDG state
// directory for hark), creating it on first use. Two sessions sharing an
// id would share one read position and split the items between them, so a
// second instance running at the same time gets the next slot's id
// (client-id.2, …), which is just as durable.
func OpenIdentity(dir string) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	for slot := 1; slot <= maxSlots; slot++ {
		path := filepath.Join(dir, "client-id")
		if slot > 1 {
			path += fmt.Sprintf(".%d", slot)
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open client id: %w", err)
		}
		// The kernel drops the lock when the process dies, so a crash
		// never strands an id. Without flock (errors.ErrUnsupported),
		// every instance uses the first slot.
		if err := filelock.TryLock(f); errors.Is(err, filelock.ErrLocked) {
			f.Close()
			continue // another instance holds this one
		} else if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			f.Close()
			return nil, fmt.Errorf("client id: %w", err)
		}
		idt := &Identity{f: f, path: path}
		if err := idt.load(); err != nil {
			idt.Close()
			return nil, fmt.Errorf("client id in %s: %w: delete the file to get a new id", path, err)
		}
		return idt, nil
	}
	return nil, fmt.Errorf("%d hark clients already run for this user: stop one of them first", maxSlots)
}

// The file holds the client id on its first line, then one line per
// server, most recently used first:
//
//	server <host:port> <epoch, or - when it has none> <ad id> <random id>
//
// A file from before marks per server has "seen <ad id> <random id>" as
// its second line; those marks are offered for the first server that
// vouches for them (see Session.adopt), then dropped.
func (idt *Identity) load() error {
	b, err := io.ReadAll(io.LimitReader(idt.f, maxIdentityFile))
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	id := strings.TrimSpace(lines[0])
	if id == "" {
		idt.id = strings.ToLower(rand.Text()) // 128 random bits, base32
		return idt.write()
	}
	if err := wire.ValidateClientID(id); err != nil {
		return err
	}
	idt.id = id
	// A damaged line only costs its server's marks: that server's items
	// are then taken as the server offers them, which can repeat one,
	// never lose one. So damage is skipped, not refused.
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "seen":
			ad, err1 := strconv.ParseUint(f[1], 10, 64)
			random, err2 := strconv.ParseUint(f[2], 10, 64)
			if err1 == nil && err2 == nil {
				idt.legacy = &Marks{Ad: ad, Random: random}
			}
		case len(f) == 5 && f[0] == "server" && len(idt.servers) < maxServers:
			m, ok := parseMarks(f[2], f[3], f[4])
			if ok && !idt.has(f[1]) {
				idt.servers = append(idt.servers, serverMarks{f[1], m})
			}
		}
	}
	return nil
}

func parseMarks(epoch, ad, random string) (Marks, bool) {
	var m Marks
	var err1, err2 error
	if epoch != "-" {
		if !wire.ValidEpoch(epoch) {
			return m, false
		}
		m.Epoch = epoch
	}
	m.Ad, err1 = strconv.ParseUint(ad, 10, 64)
	m.Random, err2 = strconv.ParseUint(random, 10, 64)
	return m, err1 == nil && err2 == nil
}

func (idt *Identity) has(addr string) bool {
	for _, s := range idt.servers {
		if s.addr == addr {
			return true
		}
	}
	return false
}

// write rewrites the file. It is not synced to disk: losing it in a crash
// costs a repeated item (the server offers what was not acknowledged
// again, and the client no longer knows it had it), never a lost one.
func (idt *Identity) write() error {
	var b strings.Builder
	b.WriteString(idt.id + "\n")
	for _, s := range idt.servers {
		epoch := s.m.Epoch
		if epoch == "" {
			epoch = "-"
		}
		fmt.Fprintf(&b, "server %s %s %d %d\n", s.addr, epoch, s.m.Ad, s.m.Random)
	}
	if idt.legacy != nil {
		fmt.Fprintf(&b, "seen %d %d\n", idt.legacy.Ad, idt.legacy.Random)
	}
	if _, err := idt.f.WriteAt([]byte(b.String()), 0); err != nil {
		return fmt.Errorf("write %s: %w", idt.path, err)
	}
	if err := idt.f.Truncate(int64(b.Len())); err != nil {
		return fmt.Errorf("write %s: %w", idt.path, err)
	}
	return nil
}

// ID is the client id.
func (idt *Identity) ID() string { return idt.id }

// Marks returns the marks kept for server. For a server it has none for,
// marks from a file written before marks per server are returned, with
// no epoch, for the session to judge.
func (idt *Identity) Marks(server string) (Marks, bool) {
	idt.mu.Lock()
	defer idt.mu.Unlock()
	for _, s := range idt.servers {
		if s.addr == server {
			return s.m, true
		}
	}
	if idt.legacy != nil {
		return *idt.legacy, true
	}
	return Marks{}, false
}

// SetMarks records server's marks, and makes it the most recently used.
// Server names are kept as given (host:port, without spaces).
func (idt *Identity) SetMarks(server string, m Marks) error {
	if server == "" || strings.ContainsAny(server, " \t\r\n") {
		return fmt.Errorf("marks for %q: a server is host:port", server)
	}
	idt.mu.Lock()
	defer idt.mu.Unlock()
	kept := []serverMarks{{server, m}}
	for _, s := range idt.servers {
		if s.addr != server && len(kept) < maxServers {
			kept = append(kept, s)
		}
	}
	idt.servers = kept
	idt.legacy = nil // taken over by the first server a session talked to
	return idt.write()
}

// Close releases the id for another instance.
func (idt *Identity) Close() error {
	_ = filelock.Unlock(idt.f)
	return idt.f.Close()
}
