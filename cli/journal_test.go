package cli

import (
	stdlog "log"
	"log/slog"
	"sync"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
)

type journalEntry struct {
	msg  string
	pri  journal.Priority
	vars map[string]string
}

// The tray's log entries as the journal gets them: the message first,
// the attributes after it as slog's text handler writes them, the level
// as the priority, and the identifier journalctl -t selects on. (The
// journal's socket itself is the go-systemd library's, and there is no
// journald on this machine to read back from.)
func TestJournalHandler(t *testing.T) {
	var mu sync.Mutex
	var got []journalEntry
	send := func(msg string, pri journal.Priority, vars map[string]string) error {
		mu.Lock()
		got = append(got, journalEntry{msg, pri, vars})
		mu.Unlock()
		return nil
	}
	var level logLevel // info
	log := slog.New(newJournalHandler(send, &level))
	log.Debug("not shown")
	log.Info("connected", "addr", "127.0.0.1:6789", "identified", true)
	log.With("component", "demo server").Warn("slow", "note", "two words")
	log.WithGroup("g").Error("broken", "k", 1)
	want := []journalEntry{
		{"connected addr=127.0.0.1:6789 identified=true", journal.PriInfo, nil},
		{`slow component="demo server" note="two words"`, journal.PriWarning, nil},
		{"broken g.k=1", journal.PriErr, nil},
	}
	if len(got) != len(want) {
		t.Fatalf("entries %+v, want %d", got, len(want))
	}
	for i, w := range want {
		if got[i].msg != w.msg || got[i].pri != w.pri || got[i].vars["SYSLOG_IDENTIFIER"] != "hark" {
			t.Errorf("entry %d = %+v, want %q at priority %d, identifier hark", i, got[i], w.msg, w.pri)
		}
	}
}

// What a library prints with the standard library's log package reaches
// the tray's log as a warning, in the journal as everything else, and the
// std logger is the process's own again once the tray ends.
func TestStdLogGoesToTheTraysLog(t *testing.T) {
	var mu sync.Mutex
	var got []journalEntry
	send := func(msg string, pri journal.Priority, vars map[string]string) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, journalEntry{msg, pri, vars})
		return nil
	}
	before, flags := stdlog.Writer(), stdlog.Flags()
	restore := logStdLogTo(slog.New(newJournalHandler(send, slog.LevelInfo)))
	stdlog.Printf("systray error: failed to register: %s\n", "no watcher")
	restore()
	if len(got) != 1 || got[0].msg != "systray error: failed to register: no watcher" || got[0].pri != journal.PriWarning {
		t.Errorf("the journal got %+v, want one warning, the line without its newline", got)
	}
	if stdlog.Writer() != before || stdlog.Flags() != flags {
		t.Errorf("after the tray, the std logger writes to %v with flags %d, want %v and %d", stdlog.Writer(), stdlog.Flags(), before, flags)
	}
}
