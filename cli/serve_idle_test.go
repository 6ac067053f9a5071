package cli_test

import (
	"strings"
	"testing"
)

// An idle timeout below a minute is said once at start: clients that do
// not learn it from hello refresh far less often, and miss items until
// they do. The default says nothing.
func TestServeWarnsOfShortIdleTimeout(t *testing.T) {
	const warning = "--idle-timeout is below a minute"
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--idle-timeout", "2s"}, 1},
		{[]string{"--idle-timeout", "59s"}, 1},
		{[]string{"--idle-timeout", "1m"}, 0},
		{nil, 0}, // the default, 30m
	} {
		args := append([]string{"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...)
		p := startServe(t, args...)
		if err := p.stop(t); err != nil {
			t.Fatalf("serve %v: %v", tc.args, err)
		}
		var n int
		for line := range strings.Lines(p.log.String()) {
			if strings.Contains(line, warning) {
				n++
				if !strings.Contains(line, "level=WARN") {
					t.Errorf("serve %v: the warning is not at WARN: %s", tc.args, line)
				}
			}
		}
		if n != tc.want {
			t.Errorf("serve %v: %q said %d times, want %d\nlog:\n%s", tc.args, warning, n, tc.want, p.log)
		}
	}
}
