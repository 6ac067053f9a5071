package desktoptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// run runs a short-lived tool with the desktop environment and returns its
// stdout. It runs in its own process group which is killed when ctx ends,
// because the tools are often scripts (dunstctl runs dbus-send) whose
// children would otherwise outlive the cancellation.
func (d *Desktop) run(ctx context.Context, argv ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = d.env
	cmd.Dir = d.home
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error {
		signalGroup(cmd.Process.Pid, true)
		return nil
	}
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	d.logf("ran %s in %v: err=%v stderr=%q", strings.Join(argv, " "), time.Since(start).Round(time.Millisecond), err, stderr.String())
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Popup is a notification dunst has displayed. Summary and Body are as
// sent, markup included: dunst renders them with markup = full.
type Popup struct {
	ID      int
	AppName string
	Summary string
	Body    string
}

// Popups returns every notification dunst has displayed so far, oldest
// first (by ID). dunst only lists closed notifications in its history, so
// Popups first closes all open ones (`dunstctl close-all`), then reads
// `dunstctl history`: take screenshots of popups before calling it.
//
// The history is dunst's D-Bus a{sv} dump as JSON, each value wrapped with
// its D-Bus type:
//
//	{"type": "aa{sv}", "data": [[
//	  {"body": {"type": "s", "data": "..."}, "id": {"type": "i", "data": 2}, ...}
//	]]}
//
// (dunst 1.9 lists the newest first; we sort.)
func (d *Desktop) Popups(ctx context.Context) ([]Popup, error) {
	if _, err := d.run(ctx, "dunstctl", "close-all"); err != nil {
		return nil, err
	}
	out, err := d.run(ctx, "dunstctl", "history")
	if err != nil {
		return nil, err
	}
	return parseHistory(out)
}

type dunstValue struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func parseHistory(out []byte) ([]Popup, error) {
	var h struct {
		Type string                    `json:"type"`
		Data [][]map[string]dunstValue `json:"data"`
	}
	if err := json.Unmarshal(out, &h); err != nil {
		return nil, fmt.Errorf("parse dunstctl history: %w: %.200q", err, out)
	}
	if h.Type != "aa{sv}" {
		return nil, fmt.Errorf("dunstctl history: type %q, want aa{sv}", h.Type)
	}
	var popups []Popup
	for _, list := range h.Data {
		for _, n := range list {
			var p Popup
			for key, dst := range map[string]*string{"appname": &p.AppName, "summary": &p.Summary, "body": &p.Body} {
				if v, ok := n[key]; ok {
					if err := json.Unmarshal(v.Data, dst); err != nil {
						return nil, fmt.Errorf("dunstctl history: %s: %w", key, err)
					}
				}
			}
			if v, ok := n["id"]; ok {
				if err := json.Unmarshal(v.Data, &p.ID); err != nil {
					return nil, fmt.Errorf("dunstctl history: id: %w", err)
				}
			}
			popups = append(popups, p)
		}
	}
	sort.Slice(popups, func(i, j int) bool { return popups[i].ID < popups[j].ID })
	return popups, nil
}

// Screenshot saves the whole screen as OutDir/name.png with ImageMagick's
// `import -window root` and returns the path, so that a failing or
// visually checked test leaves a picture of the desktop behind.
func (d *Desktop) Screenshot(name string) (string, error) {
	name = unsafeName.ReplaceAllString(strings.TrimSuffix(name, ".png"), "_")
	path := filepath.Join(d.outDir, name+".png")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := d.run(ctx, "import", "-window", "root", path); err != nil {
		return "", fmt.Errorf("screenshot: %w", err)
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("screenshot: %w", err)
	}
	return path, nil
}
