package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hark autostart enable|status|disable manage the XDG autostart entry,
// which runs this binary with the given flags.
func TestAutostartCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	entry := filepath.Join(dir, "autostart", "hark.desktop")
	cfg := filepath.Join(dir, "my hark.toml")

	code, stdout, stderr := run(t, "autostart", "enable", "--server", "127.0.0.1:7000", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, entry) {
		t.Fatalf("enable: %d %q %q", code, stdout, stderr)
	}
	data, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), ` --server 127.0.0.1:7000 --config "`+cfg+`"`+"\n") {
		t.Errorf("entry does not run hark with the flags (the config path quoted, it has a space):\n%s", data)
	}
	if code, stdout, _ := run(t, "autostart", "status"); code != 0 || !strings.HasPrefix(stdout, "enabled: "+entry) {
		t.Errorf("status after enable: %d %q", code, stdout)
	}
	if code, _, _ := run(t, "autostart", "disable"); code != 0 {
		t.Errorf("disable: %d", code)
	}
	if _, err := os.Stat(entry); !os.IsNotExist(err) {
		t.Errorf("entry still there after disable: %v", err)
	}
	if code, stdout, _ := run(t, "autostart", "status"); code != 0 || !strings.HasPrefix(stdout, "disabled: ") {
		t.Errorf("status after disable: %d %q", code, stdout)
	}
}
