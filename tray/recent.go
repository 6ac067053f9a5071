package tray

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/harkapp/hark/wire"
)

// The Recent ads menu survives a restart: the ads it shows are kept in
// the state directory, per server address, with the epoch of the
// server's store when it tells one (ids from another store mean nothing,
// and its ads are another server's). A reboot then starts with the menu
// as it was, not empty until the next ad.
const (
	recentFileName = "recent-ads.json"
	recentVersion  = 1
	recentServers  = 8       // servers kept, most recently used first
	recentFileMax  = 4 << 20 // bytes: a bigger file is not one hark wrote
)

// recentAd is one ad of the menu. ID is 0 from a server without ids.
type recentAd struct {
	ID    uint64 `json:"id,omitempty"`
	Value string `json:"value"`
}

// recentList is one server's ads, newest first.
type recentList struct {
	Server string     `json:"server"`
	Epoch  string     `json:"epoch,omitempty"`
	Ads    []recentAd `json:"ads"`
}

type recentFile struct {
	Version int          `json:"version"`
	Servers []recentList `json:"servers"`
}

// errNoRecent: there is no file yet, which is no problem.
var errNoRecent = errors.New("no recent ads kept")

// readRecent reads the whole file. A missing file is errNoRecent; a file
// that cannot be read or is not what hark writes is another error.
func readRecent(dir string) (recentFile, error) {
	path := filepath.Join(dir, recentFileName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return recentFile{}, errNoRecent
	}
	if err != nil {
		return recentFile{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, recentFileMax+1))
	if err != nil {
		return recentFile{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > recentFileMax {
		return recentFile{}, fmt.Errorf("%s is over %d bytes", path, recentFileMax)
	}
	var rf recentFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rf); err != nil {
		return recentFile{}, fmt.Errorf("%s: %w", path, err)
	}
	if dec.More() {
		return recentFile{}, fmt.Errorf("%s: data after the list", path)
	}
	if rf.Version != recentVersion {
		return recentFile{}, fmt.Errorf("%s: version %d, want %d", path, rf.Version, recentVersion)
	}
	for _, l := range rf.Servers {
		if l.Server == "" || (l.Epoch != "" && !wire.ValidEpoch(l.Epoch)) {
			return recentFile{}, fmt.Errorf("%s: a list for server %q, epoch %q", path, l.Server, l.Epoch)
		}
		for _, ad := range l.Ads {
			if ad.Value == "" || len(ad.Value) > wire.MaxLine || !utf8.ValidString(ad.Value) {
				return recentFile{}, fmt.Errorf("%s: an ad of %d bytes that is empty, too long or not UTF-8", path, len(ad.Value))
			}
		}
	}
	return rf, nil
}

// loadRecent returns the ads kept for server, at most recentMax.
func loadRecent(dir, server string) (recentList, error) {
	rf, err := readRecent(dir)
	if err != nil {
		return recentList{Server: server}, err
	}
	for _, l := range rf.Servers {
		if l.Server == server {
			l.Ads = l.Ads[:min(len(l.Ads), recentMax)]
			return l, nil
		}
	}
	return recentList{Server: server}, nil
}

// saveRecent keeps l as its server's list, first in the file, with the
// lists of up to recentServers-1 other servers. The file is replaced
// atomically: a new file, synced, renamed over the old one, so a crash
// or a power cut leaves the old list or the new one, never half of one.
// A file that cannot be read is replaced.
func saveRecent(dir string, l recentList) error {
	rf, err := readRecent(dir)
	if err != nil {
		rf = recentFile{}
	}
	l.Ads = l.Ads[:min(len(l.Ads), recentMax)]
	kept := []recentList{l}
	for _, o := range rf.Servers {
		if o.Server != l.Server && len(kept) < recentServers {
			kept = append(kept, o)
		}
	}
	data, err := json.MarshalIndent(recentFile{Version: recentVersion, Servers: kept}, "", "\t")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, recentFileName), append(data, '\n'))
}
