// Package assets holds hark's images, embedded in the binary so the tray
// and its popups need no installed files. The PNGs are generated: edit
// gen.go and run `go generate ./assets`.
package assets

import _ "embed"

//go:generate go run gen.go

// Icon is hark's application icon (128×128 PNG), shown on popups.
//
//go:embed hark.png
var Icon []byte

// Tray icons (64×64 PNG, transparent), one per state the tray shows.
var (
	//go:embed tray-connected.png
	TrayConnected []byte
	//go:embed tray-offline.png
	TrayOffline []byte
	//go:embed tray-dnd.png
	TrayDoNotDisturb []byte
	//go:embed tray-unread.png
	TrayUnread []byte
)
