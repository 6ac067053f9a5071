#!/usr/bin/env bash
# packaging/ci.sh: the packaging part of CI (.ci/run calls it; it needs
# root). It builds the packages with `make package`, runs the validators
# and lintian, checks the .rpm's contents, then installs the .deb, checks
# every file and the version, purges it and checks that nothing is left.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

if [ "$(id -u)" != 0 ]; then
  echo "packaging/ci.sh installs and purges a package: run it as root" >&2
  exit 1
fi
need=()
command -v make >/dev/null 2>&1 || need+=(make)
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v appstreamcli >/dev/null 2>&1 || need+=(appstream)
command -v desktop-file-validate >/dev/null 2>&1 || need+=(desktop-file-utils)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v deb-systemd-helper >/dev/null 2>&1 || need+=(init-system-helpers)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v rpm >/dev/null 2>&1 || need+=(rpm)
command -v rsvg-convert >/dev/null 2>&1 || need+=(librsvg2-bin)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi
# A run that stopped half-way may have left hark installed.
if dpkg-query -W -f '${Status}' hark 2>/dev/null | grep -q installed; then
  dpkg --purge hark
fi

version=$(sed -n '1s/^hark (\([^)]*\)).*/\1/p' packaging/changelog)
deb=dist/hark_${version}_$(dpkg --print-architecture).deb

echo "== make package (version $version)"
make package
rpm=$(ls dist/hark-"${version}"-1.*.rpm)
ls -l dist/
(cd dist && sha256sum -c SHA256SUMS)

echo "== the SVG icon is the PNGs' design (rendered by librsvg)"
HARK_TEST_SVG=1 go test -count=1 -run '^TestSVGMatchesPNG$' -v ./assets/ | grep -E '^(---|ok|FAIL)|difference'

echo "== validators on the sources"
desktop-file-validate packaging/io.github.harkapp.hark.desktop
appstreamcli validate --no-net --pedantic packaging/io.github.harkapp.hark.metainfo.xml
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
dpkg-deb -x "$deb" "$tree"
# The package's tree as a whole: the launchable's desktop file and the
# icon are found where the metainfo says.
appstreamcli validate-tree --no-net --pedantic "$tree"

echo "== lintian"
lintian --fail-on error --display-info --pedantic "$deb" 2>&1 | grep -v '^running with root privileges' | tee "$tree/lintian.txt"
# Every warning or error must be fixed or explained in packaging/README.md.
unexplained=0
for tag in $(awk '/^[EW]: /{print $3}' "$tree/lintian.txt" | sort -u); do
  if ! grep -q "\`$tag\`" packaging/README.md; then
    echo "lintian: $tag is neither fixed nor explained in packaging/README.md"; unexplained=1
  fi
done
[ $unexplained = 0 ]

echo "== the .rpm"
rpm -qip "$rpm"
scripts=$(rpm -qp --scripts "$rpm")
grep -q 'systemctl --no-reload disable --now hark-serve.service' <<<"$scripts"
# The same files as the .deb, but the copyright is %license under
# /usr/share/licenses.
diff <(rpm -qlp "$rpm" | sed 's|^/usr/share/licenses/hark/|/usr/share/doc/hark/|' | sort) \
     <(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print substr($6, 2)}' | sort)
echo "rpm and deb hold the same $(rpm -qlp "$rpm" | wc -l) files"

# Every path the packages install, at the freedesktop (and Debian) places.
files=(
  /usr/bin/hark
  /usr/share/applications/io.github.harkapp.hark.desktop
  /usr/share/metainfo/io.github.harkapp.hark.metainfo.xml
  /usr/share/icons/hicolor/scalable/apps/hark.svg
  /usr/lib/systemd/user/hark-serve.service
  /usr/lib/systemd/system/hark-serve.service
  /usr/share/man/man1/hark.1.gz
  /usr/share/doc/hark/copyright
  /usr/share/doc/hark/changelog.gz
)
for s in 16 22 24 32 48 64 128 256; do files+=("/usr/share/icons/hicolor/${s}x${s}/apps/hark.png"); done
# What purge must restore: every file and link under these, by name.
# man-db's cache of formatted pages is not dpkg's (systemd-analyze verify
# runs man for Documentation=; man-db's cron expires it).
snapshot() { find /usr /etc /var /opt -xdev \( -path /var/cache/man -o -path /var/cache/apt -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/log \) -prune -o -print 2>/dev/null | sort; }
# systemd makes /var/lib/private for DynamicUser= state; the check below
# fakes a store in it, so it must exist before the snapshot.
made_private=
[ -d /var/lib/private ] || { mkdir -m 0700 /var/lib/private; made_private=1; }
snapshot > "$tree/before.txt"

echo "== install the .deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "./$deb"
[ "$(command -v hark)" = /usr/bin/hark ]
echo "hark version: $(hark version)"
[ "$(hark version)" = "hark $version" ]
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "missing: $f"; exit 1; }
done
# dpkg installed exactly these files (and directories).
diff <(printf '%s\n' "${files[@]}" | sort) \
     <(dpkg -L hark | while read -r p; do [ -d "$p" ] || echo "$p"; done | sort)
echo "all ${#files[@]} files in place"
desktop-file-validate /usr/share/applications/io.github.harkapp.hark.desktop
appstreamcli validate --no-net /usr/share/metainfo/io.github.harkapp.hark.metainfo.xml
man --warnings -l /usr/share/man/man1/hark.1.gz 2>&1 >/dev/null | { ! grep .; }
systemd-analyze verify /usr/lib/systemd/system/hark-serve.service
rt=$(mktemp -d)
XDG_RUNTIME_DIR=$rt systemd-analyze --user verify /usr/lib/systemd/user/hark-serve.service
rm -rf "$rt"
systemd-analyze security --offline=true --threshold=20 /usr/lib/systemd/system/hark-serve.service | tail -1
echo "units verified"
# Installing enables nothing: the operator chooses to run hark serve.
for l in /etc/systemd/system/multi-user.target.wants/hark-serve.service /etc/systemd/user/default.target.wants/hark-serve.service; do
  [ ! -e "$l" ] && [ ! -L "$l" ] || { echo "installing enabled $l"; exit 1; }
done

echo "== an operator's traces; upgrade, remove, purge"
systemctl enable hark-serve.service
systemctl --global enable hark-serve.service
# The store the system server would keep (StateDirectory=hark with
# DynamicUser=yes): /var/lib/private/hark, reached through /var/lib/hark.
mkdir /var/lib/private/hark && : > /var/lib/private/hark/hark.db
ln -sfn private/hark /var/lib/hark
# An upgrade (here to the same version) keeps the operator's choice.
dpkg -i "$deb"
[ -L /etc/systemd/system/multi-user.target.wants/hark-serve.service ] || { echo "the upgrade disabled hark-serve"; exit 1; }
[ ! -L /etc/systemd/system/hark-serve.service ] || { echo "the upgrade masked hark-serve"; exit 1; }
dpkg --remove hark
# Remove keeps the operator's settings (masked) and the store...
[ -L /etc/systemd/system/hark-serve.service ] || { echo "remove did not mask hark-serve"; exit 1; }
[ -e /var/lib/hark/hark.db ] || { echo "remove deleted the store"; exit 1; }
# ...purge removes them.
dpkg --purge hark
if dpkg-query -W hark >/dev/null 2>&1; then echo "dpkg still knows hark"; exit 1; fi
for f in "${files[@]}"; do
  [ ! -e "$f" ] || { echo "left behind: $f"; exit 1; }
done
snapshot > "$tree/after.txt"
if ! diff "$tree/before.txt" "$tree/after.txt"; then
  echo "purge left the files above behind (> lines)"; exit 1
fi
echo "purge left nothing behind"
[ -z "$made_private" ] || rmdir /var/lib/private

echo "== packaging checks took $((SECONDS - start)) s"
