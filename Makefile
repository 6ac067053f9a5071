# Everyday commands; `go test -race ./...` and `go run . --demo` need none
# of this.

.PHONY: screenshot assets package windows

# docs/screenshot.png: the end-to-end test's picture of the tray with two
# servers, its menu open and popups, cropped to the top of the screen.
screenshot:
	rm -rf /tmp/hark-shot
	HARK_TEST_OUT=/tmp/hark-shot go test -count=1 -run '^TestTwoServersOnARealDesktop$$' ./tray/
	convert /tmp/hark-shot/TestTwoServersOnARealDesktop/two-servers.png -crop 1024x290+0+0 +repage docs/screenshot.png

# assets/*.png, assets/icons/: drawn by assets/gen.go.
assets:
	go generate ./assets

# Packages (packaging/README.md). The version is the newest entry of
# packaging/changelog: `hark version`, the packages, the man page and the
# files' dates all take it from there.
VERSION := ${shell sed -n '1s/^hark (\([^)]*\)).*/\1/p' packaging/changelog}
RELEASED := $(shell sed -n '0,/^ -- /s/^ -- .*>  //p' packaging/changelog)
DATE := $(shell date -u -d '$(RELEASED)' +%Y-%m-%d)
export SOURCE_DATE_EPOCH := $(shell date -u -d '$(RELEASED)' +%s)
ARCH ?= $(shell go env GOARCH)
LDFLAGS := -s -w -X github.com/harkapp/hark/cli.version=$(VERSION)

# dist/: hark_VERSION_ARCH.deb, hark-VERSION-1.ARCH.rpm, hark.exe and
# SHA256SUMS; dist/build/ holds what goes into the packages.
package: windows
	@test -n '$(VERSION)' -a -n '$(DATE)' || { echo 'packaging/changelog: no version or date in its first entry'; exit 1; }
	rm -rf dist/build dist/*.deb dist/*.rpm dist/SHA256SUMS
	mkdir -p dist/build
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) go build -trimpath -buildmode=pie -ldflags '$(LDFLAGS)' -o dist/build/hark .
	sed -e 's/@VERSION@/$(VERSION)/g' -e 's/@DATE@/$(DATE)/g' packaging/hark.1 | gzip -9n > dist/build/hark.1.gz
	gzip -9n < packaging/changelog > dist/build/changelog.gz
	sh packaging/copyright.sh dist/build/hark > dist/build/copyright
	VERSION='$(VERSION)' ARCH='$(ARCH)' go tool nfpm package -f packaging/nfpm.yaml -p deb -t dist/
	VERSION='$(VERSION)' ARCH='$(ARCH)' go tool nfpm package -f packaging/nfpm.yaml -p rpm -t dist/
	cd dist && sha256sum *.deb *.rpm hark.exe > SHA256SUMS && cat SHA256SUMS

# dist/hark.exe: Windows (the tray uses systray's and beeep's Windows
# backends); proves that hark builds there.
windows:
	mkdir -p dist
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 go build -trimpath -ldflags '$(LDFLAGS)' -o dist/hark.exe .
