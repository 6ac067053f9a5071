// Package packaging_test checks that the files packaging/ installs agree
// with each other and with the program: one version, one application id,
// one licence, and a man page that names every flag. CI then builds the
// packages, runs the validators and lintian, and installs and purges the
// .deb (packaging/ci.sh).
package packaging_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/harkapp/hark/cli"
)

const (
	appID       = "io.github.harkapp.hark"
	desktopFile = appID + ".desktop"
	metainfo    = appID + ".metainfo.xml"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type release struct{ version, date string }

// changelog reads packaging/changelog (Debian's format), newest first.
func changelog(t *testing.T) []release {
	t.Helper()
	head := regexp.MustCompile(`^hark \(([^)]+)\) [a-z-]+; urgency=[a-z]+$`)
	var rels []release
	sc := bufio.NewScanner(strings.NewReader(read(t, "changelog")))
	for sc.Scan() {
		line := sc.Text()
		if m := head.FindStringSubmatch(line); m != nil {
			rels = append(rels, release{version: m[1]})
			continue
		}
		if rest, ok := strings.CutPrefix(line, " -- "); ok {
			_, date, ok := strings.Cut(rest, ">  ")
			if !ok || len(rels) == 0 || rels[len(rels)-1].date != "" {
				t.Fatalf("changelog: bad trailer line %q", line)
			}
			when, err := time.Parse(time.RFC1123Z, date)
			if err != nil {
				t.Fatalf("changelog: trailer date %q: %v", date, err)
			}
			rels[len(rels)-1].date = when.UTC().Format(time.DateOnly)
			continue
		}
		if line != "" && !strings.HasPrefix(line, "  ") {
			t.Fatalf("changelog: unexpected line %q", line)
		}
	}
	if len(rels) == 0 {
		t.Fatal("changelog has no entries")
	}
	for _, r := range rels {
		if r.date == "" {
			t.Fatalf("changelog: entry %s has no trailer line", r.version)
		}
	}
	return rels
}

type component struct {
	ID         string   `xml:"id"`
	License    string   `xml:"project_license"`
	Launchable []string `xml:"launchable"`
	Icon       string   `xml:"icon"`
	Categories []string `xml:"categories>category"`
	Binaries   []string `xml:"provides>binary"`
	Releases   []struct {
		Version string `xml:"version,attr"`
		Date    string `xml:"date,attr"`
	} `xml:"releases>release"`
}

func parseMetainfo(t *testing.T) component {
	t.Helper()
	var c component
	if err := xml.Unmarshal([]byte(read(t, metainfo)), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// desktopEntry reads the [Desktop Entry] group's keys.
func desktopEntry(t *testing.T) map[string]string {
	t.Helper()
	keys := map[string]string{}
	for _, line := range strings.Split(read(t, desktopFile), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			keys[k] = v
		}
	}
	return keys
}

// The version lives in packaging/changelog alone: make package reads it
// for -ldflags (hark version), nfpm and the man page. The metainfo's
// releases repeat the changelog's, newest first, with the same dates.
func TestVersionsAgree(t *testing.T) {
	rels := changelog(t)
	c := parseMetainfo(t)
	var got []release
	for _, r := range c.Releases {
		got = append(got, release{r.Version, r.Date})
	}
	if !slices.Equal(got, rels) {
		t.Errorf("metainfo releases %v, changelog entries %v: keep them in step", got, rels)
	}
	if !strings.Contains(read(t, "nfpm.yaml"), "version: ${VERSION}") {
		t.Error("nfpm.yaml must take its version from $VERSION (set by make package from packaging/changelog)")
	}
	if th := regexp.MustCompile(`(?m)^\.TH .*$`).FindString(read(t, "hark.1")); !strings.Contains(th, `@DATE@ "hark @VERSION@"`) {
		t.Errorf("hark.1: %q should carry @DATE@ and @VERSION@ for make package to fill in", th)
	}
	mk := read(t, "../Makefile")
	if !strings.Contains(mk, "packaging/changelog") || !strings.Contains(mk, "cli.version=$(VERSION)") {
		t.Error("the Makefile should read VERSION from packaging/changelog and set cli.version with it")
	}
}

func TestDesktopEntryAndMetainfoAgree(t *testing.T) {
	c := parseMetainfo(t)
	d := desktopEntry(t)
	if c.ID != appID {
		t.Errorf("metainfo id %q, want %q", c.ID, appID)
	}
	if !slices.Equal(c.Launchable, []string{desktopFile}) {
		t.Errorf("metainfo launchable %q, want %q", c.Launchable, desktopFile)
	}
	// The tray's popups and its autostart entry use the icon name hark.
	if c.Icon != "hark" || d["Icon"] != "hark" {
		t.Errorf("icon: metainfo %q, desktop entry %q, want hark", c.Icon, d["Icon"])
	}
	if d["Exec"] != "hark" || !slices.Equal(c.Binaries, []string{"hark"}) {
		t.Errorf("Exec=%q, metainfo binaries %q: want hark", d["Exec"], c.Binaries)
	}
	cats := strings.Split(strings.TrimSuffix(d["Categories"], ";"), ";")
	if !slices.Equal(cats, c.Categories) {
		t.Errorf("desktop entry Categories %q, metainfo categories %q", cats, c.Categories)
	}
}

// One licence, said in three places.
func TestLicenseAgrees(t *testing.T) {
	c := parseMetainfo(t)
	nfpm := regexp.MustCompile(`(?m)^license: (.+)$`).FindStringSubmatch(read(t, "nfpm.yaml"))
	cp := regexp.MustCompile(`(?m)^Files: \*\nCopyright: .+\nLicense: (.+)$`).FindStringSubmatch(read(t, "copyright"))
	if nfpm == nil || cp == nil || nfpm[1] != c.License || cp[1] != c.License {
		t.Errorf("licence: metainfo %q, nfpm.yaml %q, copyright %q: make them one", c.License, nfpm, cp)
	}
}

// Every file nfpm.yaml takes from the repository exists, and every icon
// assets/gen.go draws for the desktop is packaged at its hicolor path.
func TestPackageContents(t *testing.T) {
	y := read(t, "nfpm.yaml")
	pairs := regexp.MustCompile(`(?m)^  - src: (\S+)\n    dst: (\S+)$`).FindAllStringSubmatch(y, -1)
	dst := map[string]string{}
	for _, p := range pairs {
		dst[p[1]] = p[2]
		if strings.HasPrefix(p[1], "dist/") {
			continue // made by make package
		}
		if _, err := os.Stat(filepath.Join("..", filepath.FromSlash(p[1]))); err != nil {
			t.Errorf("nfpm.yaml packages %s: %v", p[1], err)
		}
	}
	icons := 0
	filepath.WalkDir("../assets/icons", func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		icons++
		rel := filepath.ToSlash(strings.TrimPrefix(p, ".."+string(filepath.Separator)))
		want := "/usr/share/icons/" + strings.TrimPrefix(rel, "assets/icons/")
		if dst[rel] != want {
			t.Errorf("%s is packaged at %q, want %s", rel, dst[rel], want)
		}
		return nil
	})
	if icons != 9 { // 8 PNG sizes and the SVG
		t.Errorf("assets/icons holds %d icons, want 9", icons)
	}
	for src, want := range map[string]string{
		"dist/build/hark":                             "/usr/bin/hark",
		"packaging/" + desktopFile:                    "/usr/share/applications/" + desktopFile,
		"packaging/" + metainfo:                       "/usr/share/metainfo/" + metainfo,
		"packaging/systemd/user/hark-serve.service":   "/usr/lib/systemd/user/hark-serve.service",
		"packaging/systemd/system/hark-serve.service": "/usr/lib/systemd/system/hark-serve.service",
		"dist/build/hark.1.gz":                        "/usr/share/man/man1/hark.1.gz",
	} {
		if dst[src] != want {
			t.Errorf("%s is packaged at %q, want %s", src, dst[src], want)
		}
	}
}

// The units run /usr/bin/hark serve with flags hark serve accepts, and
// the system unit's store is its StateDirectory.
func TestUnits(t *testing.T) {
	for _, unit := range []string{"systemd/user/hark-serve.service", "systemd/system/hark-serve.service"} {
		text := read(t, unit)
		m := regexp.MustCompile(`(?m)^ExecStart=/usr/bin/hark serve(.*)$`).FindStringSubmatch(text)
		if m == nil {
			t.Errorf("%s: no ExecStart=/usr/bin/hark serve", unit)
			continue
		}
		args := append([]string{"serve"}, strings.Fields(m[1])...)
		// -h after the flags: they are parsed, then serve prints its
		// usage and stops, exit status 0; an unknown flag is status 2.
		var stderr bytes.Buffer
		if code := cli.Run(context.Background(), append(args, "-h"), new(bytes.Buffer), &stderr); code != 0 {
			t.Errorf("%s: hark %s: exit status %d\n%s", unit, strings.Join(args, " "), code, stderr.String())
		}
		if strings.Contains(unit, "system/") {
			sd := regexp.MustCompile(`(?m)^StateDirectory=(\S+)$`).FindStringSubmatch(text)
			if sd == nil || !strings.Contains(m[1], "--data /var/lib/"+sd[1]) {
				t.Errorf("%s: --data should be /var/lib/ + StateDirectory (%q)", unit, sd)
			}
			for _, opt := range []string{"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes"} {
				if !strings.Contains(text, "\n"+opt+"\n") {
					t.Errorf("%s lacks %s", unit, opt)
				}
			}
		}
	}
}

// flags lists a command's flags as its -h usage prints them.
func flags(t *testing.T, args ...string) []string {
	t.Helper()
	var stderr bytes.Buffer
	if code := cli.Run(context.Background(), append(args, "-h"), new(bytes.Buffer), &stderr); code != 0 {
		t.Fatalf("hark %s -h: exit status %d\n%s", strings.Join(args, " "), code, stderr.String())
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(stderr.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("hark %s -h lists no flags:\n%s", strings.Join(args, " "), stderr.String())
	}
	slices.Sort(names)
	return names
}

// manFlags lists the --flags named in the part of hark.1 from the line
// start up to the next section or subsection heading.
func manFlags(t *testing.T, page, start string) []string {
	t.Helper()
	i := strings.Index(page, "\n"+start+"\n")
	if i < 0 {
		t.Fatalf("hark.1 has no %q", start)
	}
	part := page[i+len(start)+2:]
	if j := regexp.MustCompile(`(?m)^\.S[HS] `).FindStringIndex(part); j != nil {
		part = part[:j[0]]
	}
	var names []string
	for _, m := range regexp.MustCompile(`\\-\\-((?:[a-z0-9]|\\-)+)`).FindAllStringSubmatch(part, -1) {
		names = append(names, strings.ReplaceAll(m[1], `\-`, "-"))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// hark.1 is written by hand; this keeps it true to cli/: it has a
// subsection for each command `hark help` lists (and no other), and each
// command's part of the page names exactly the flags that command has.
func TestManPageFlags(t *testing.T) {
	page := read(t, "hark.1")
	var help bytes.Buffer
	if code := cli.Run(context.Background(), []string{"help"}, &help, new(bytes.Buffer)); code != 0 {
		t.Fatalf("hark help: exit status %d", code)
	}
	_, list, _ := strings.Cut(help.String(), "Commands:\n")
	var commands []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z]+) `).FindAllStringSubmatch(list, -1) {
		commands = append(commands, m[1])
	}
	commands = append(commands, "help")
	var sections []string
	for _, m := range regexp.MustCompile(`(?m)^\.SS hark ([a-z]+)`).FindAllStringSubmatch(page, -1) {
		sections = append(sections, m[1])
	}
	if !slices.Equal(sections, commands) {
		t.Errorf("hark.1 has subsections for %q; hark help lists %q (and help)", sections, commands)
	}

	// The command line that makes each command print its flags.
	usage := map[string][]string{"autostart": {"autostart", "status"}, "token": {"token", "add"}}
	noFlags := map[string]bool{"version": true, "help": true}
	check := func(heading string, args []string) {
		var want []string
		if !noFlags[args[0]] {
			want = flags(t, args...)
		}
		if got := manFlags(t, page, heading); !slices.Equal(got, want) {
			t.Errorf("hark.1 %q names flags %q; hark %s -h lists %q", heading, got, args[0], want)
		}
	}
	check(".SH THE TRAY APP", []string{"--demo"})
	for _, c := range commands {
		heading := regexp.MustCompile(`(?m)^\.SS hark ` + c + `\b.*$`).FindString(page)
		if heading == "" {
			continue // reported above
		}
		args, ok := usage[c]
		if !ok {
			args = []string{c}
		}
		check(heading, args)
	}
}
