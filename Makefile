# Everyday commands; `go test -race ./...` and `go run . --demo` need none
# of this.

.PHONY: screenshot assets

# docs/screenshot.png: the end-to-end test's picture of the tray with its
# menu open and a popup, cropped to the top of the screen.
screenshot:
	rm -rf /tmp/hark-shot
	HARK_TEST_OUT=/tmp/hark-shot go test -count=1 -run '^TestTrayOnARealDesktop$$' ./tray/
	convert /tmp/hark-shot/TestTrayOnARealDesktop/tray-menu-and-popup.png -crop 1024x290+0+0 +repage docs/screenshot.png

# assets/*.png: drawn by assets/gen.go.
assets:
	go generate ./assets
