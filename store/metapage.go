package store

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt keeps two meta pages, written alternately, and opens from the
// newest that validates. When the newest is damaged it silently opens the
// older one: the last committed transaction is rolled back, and an item id
// it handed out can be handed out again for another item. Open reads the
// two pages itself first, to know when that happened and mint a new epoch.
//
// The layout is bbolt's (internal/common/page.go and meta.go, v1.4), in the
// machine's byte order: a 16-byte page header (id, flags, count,
// overflow), then the meta: magic, version, pageSize, flags (4 bytes
// each), root {pgid, sequence}, freelist, pgid, txid, checksum (8 bytes
// each). The checksum is FNV-64a of the meta's bytes before it.
const (
	boltPageHeader = 16
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltMetaSum    = boltPageHeader + 56 // offset of the checksum
	boltMetaEnd    = boltMetaSum + 8
)

// checkMeta says why a meta page is invalid, as bbolt's Meta.Validate
// decides it; nil when it is valid.
func checkMeta(page []byte) error {
	if len(page) < boltMetaEnd {
		return fmt.Errorf("cut short (%d bytes)", len(page))
	}
	m := page[boltPageHeader:boltMetaEnd]
	if magic := binary.NativeEndian.Uint32(m[0:4]); magic != boltMagic {
		return fmt.Errorf("bad magic %08x", magic)
	}
	if v := binary.NativeEndian.Uint32(m[4:8]); v != boltVersion {
		return fmt.Errorf("format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(page[boltPageHeader:boltMetaSum])
	if sum := binary.NativeEndian.Uint64(page[boltMetaSum:]); sum != h.Sum64() {
		return fmt.Errorf("checksum %016x, computed %016x", sum, h.Sum64())
	}
	return nil
}

// metaDamage reads the meta pages of the bbolt file at path and, when
// exactly one fails validation, says which and why. It returns "" when
// both are valid, and when it cannot tell (no file, an empty one, both
// pages invalid): bolt.Open creates or refuses those.
//
// bbolt writes the meta page of transaction n to page n%2, so a damaged
// page may be the newest (a rollback) or the older one (none); a damaged
// page's transaction id cannot be trusted to tell which, so both count.
func metaDamage(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return ""
	}
	read := func(off int64) []byte {
		buf := make([]byte, boltMetaEnd)
		n, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			return nil
		}
		return buf[:n]
	}
	page0 := read(0)
	err0 := checkMeta(page0)
	if err0 == nil {
		size := int64(binary.NativeEndian.Uint32(page0[boltPageHeader+8:]))
		if err1 := checkMeta(read(size)); err1 != nil {
			return fmt.Sprintf("meta page 1 (at %d) is invalid: %v", size, err1)
		}
		return ""
	}
	// Page 0 holds the page size; without it, look for page 1 where bbolt
	// does: at every power of two from 1 KiB to 16 MiB.
	for i := range 15 {
		pos := int64(1024) << i
		if pos >= fi.Size()-1024 {
			break
		}
		if checkMeta(read(pos)) == nil {
			return fmt.Sprintf("meta page 0 is invalid: %v", err0)
		}
	}
	return ""
}
