package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
	"golang.org/x/term"
)

// journalIdentifier is what `journalctl --user -t hark` selects on.
const journalIdentifier = "hark"

// trayLogger is where the tray's log goes. Run from a terminal, it is the
// terminal (stderr). Started from the application menu or at login there
// is nobody at stderr: then the systemd journal, when there is one, with
// the identifier "hark", so a user finds it with journalctl --user -t
// hark; else stderr, wherever the session sends it.
func trayLogger(stderr io.Writer, level *logLevel) (*slog.Logger, string) {
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return newLogger(stderr, level), "stderr"
	}
	if journal.Enabled() {
		return slog.New(newJournalHandler(journal.Send, level)), "the systemd journal (journalctl --user -t hark)"
	}
	return newLogger(stderr, level), "stderr"
}

// journalSend is journal.Send: a message, its priority and its fields.
type journalSend func(message string, priority journal.Priority, vars map[string]string) error

// journalHandler is an slog.Handler writing to the systemd journal: one
// entry per record, its level as the entry's priority, the record's
// attributes after the message as key=value (as slog's text handler
// writes them), and SYSLOG_IDENTIFIER=hark.
type journalHandler struct {
	send  journalSend
	level slog.Leveler
	inner slog.Handler // a text handler writing into buf, for the attributes
	mu    *sync.Mutex  // guards buf, shared by the handlers derived from one
	buf   *bytes.Buffer
}

func newJournalHandler(send journalSend, level slog.Leveler) *journalHandler {
	h := &journalHandler{send: send, level: level, mu: new(sync.Mutex), buf: new(bytes.Buffer)}
	h.inner = slog.NewTextHandler(h.buf, &slog.HandlerOptions{
		Level: slog.LevelDebug, // Enabled decides
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{} // the journal keeps time and priority; the message goes first
			}
			return a
		},
	})
	return h
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	h.buf.Reset()
	err := h.inner.Handle(ctx, r)
	attrs := strings.TrimSpace(h.buf.String())
	h.mu.Unlock()
	if err != nil {
		return err
	}
	msg := r.Message
	if attrs != "" {
		msg += " " + attrs
	}
	return h.send(msg, priority(r.Level), map[string]string{"SYSLOG_IDENTIFIER": journalIdentifier})
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(as)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}

// priority maps slog's levels to syslog's, as journalctl -p reads them.
func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
