package tray

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/server"
	"github.com/harkapp/hark/wire"
)

// logLines is a slog destination that hands each line to the test.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // the test stopped reading; never block the code under test
	}
	return len(p), nil
}

// await reads log lines until one contains want.
func (l logLines) await(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line := <-l:
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			t.Fatalf("no log line says %q", want)
		}
	}
}

// Without a session bus there is no tray and no popup: hark says so once,
// keeps its session, and writes each item to the log. It must not run
// systray (which would start a stray bus with dbus-launch).
func TestRunWithoutSessionBus(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+dir+"/no-system-bus")
	t.Setenv("XDG_RUNTIME_DIR", dir)
	t.Setenv("XDG_CONFIG_HOME", dir)

	srv, err := server.Start(server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	lines := make(logLines, 100)
	log := slog.New(slog.NewTextHandler(lines, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Server: srv.Addr().String(), ConfigPath: dir + "/config.toml", StateDir: dir, Logger: log})
	}()
	lines.await(t, "no tray icon and no popups")
	lines.await(t, "msg=connected")
	if _, _, err := srv.Publish(ctx, wire.KindClassified, "Bike <b>cheap</b>"); err != nil {
		t.Fatal(err)
	}
	lines.await(t, `msg="New classified ad" body="Bike <b>cheap</b>"`)

	// A second tray in the same session stops at once.
	if err := Run(ctx, Options{Server: srv.Addr().String(), StateDir: dir}); err != ErrRunning {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
}
