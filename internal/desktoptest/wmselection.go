package desktoptest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// holdWMSelection connects to the X server and takes ownership of the
// WM_S0 selection, the ICCCM way of announcing "a window manager runs on
// screen 0", and holds it until the returned connection is closed.
//
// Why: there is no window manager, and `xfce4-panel --restart` re-executes
// the panel without --disable-wm-check, so the new panel would wait about
// 5 seconds for a window manager before loading its plugins (and
// re-creating the StatusNotifierWatcher). With the selection owned, it
// starts at once. Nothing else in the session looks at WM_S0.
//
// It speaks the few X11 requests it needs directly (setup, InternAtom,
// CreateWindow, SetSelectionOwner, GetSelectionOwner) rather than adding
// an X11 library to go.mod for a test helper.
func holdWMSelection(display string, timeout time.Duration) (net.Conn, error) {
	n := strings.TrimPrefix(display, ":")
	if i := strings.IndexByte(n, '.'); i >= 0 {
		n = n[:i]
	}
	c, err := net.DialTimeout("unix", "/tmp/.X11-unix/X"+n, timeout)
	if err != nil {
		// Xvfb also listens on the abstract socket, which works where
		// /tmp/.X11-unix is not shared with us.
		c, err = net.DialTimeout("unix", "@/tmp/.X11-unix/X"+n, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to X server %s: %w", display, err)
	}
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		c.Close()
		return nil, fmt.Errorf("setting the X connection's deadline: %w", err)
	}
	if err := claimWMS0(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("take WM_S0 on %s: %w", display, err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, fmt.Errorf("setting the X connection's deadline: %w", err)
	}
	return c, nil
}

var le = binary.LittleEndian

func pad4(n int) int { return (4 - n%4) % 4 }

func claimWMS0(c net.Conn) error {
	// Connection setup: little-endian, protocol 11.0, no authorization
	// (Xvfb was started without -auth, so local clients need none).
	setup := make([]byte, 12)
	setup[0] = 'l'
	le.PutUint16(setup[2:], 11)
	if _, err := c.Write(setup); err != nil {
		return err
	}
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return fmt.Errorf("setup reply: %w", err)
	}
	info := make([]byte, int(le.Uint16(hdr[6:]))*4)
	if _, err := io.ReadFull(c, info); err != nil {
		return fmt.Errorf("setup reply: %w", err)
	}
	if hdr[0] != 1 {
		return fmt.Errorf("the X server refused the connection: %q", info)
	}
	if len(info) < 32 {
		return fmt.Errorf("short setup reply")
	}
	idBase := le.Uint32(info[4:])
	vendorLen := int(le.Uint16(info[16:]))
	formats := int(info[21])
	screen := 32 + vendorLen + pad4(vendorLen) + 8*formats
	if len(info) < screen+4 {
		return fmt.Errorf("short setup reply")
	}
	root := le.Uint32(info[screen:])

	// InternAtom("WM_S0"), and wait for the atom.
	const name = "WM_S0"
	intern := make([]byte, 8+len(name)+pad4(len(name)))
	intern[0] = 16
	le.PutUint16(intern[2:], uint16(len(intern)/4))
	le.PutUint16(intern[4:], uint16(len(name)))
	copy(intern[8:], name)
	if _, err := c.Write(intern); err != nil {
		return err
	}
	reply, err := readReply(c)
	if err != nil {
		return fmt.Errorf("InternAtom: %w", err)
	}
	atom := le.Uint32(reply[8:])

	// CreateWindow: a 1x1 InputOnly child of the root, never mapped; a
	// selection owner must be a window.
	win := idBase
	create := make([]byte, 32)
	create[0] = 1
	le.PutUint16(create[2:], 8)
	le.PutUint32(create[4:], win)
	le.PutUint32(create[8:], root)
	le.PutUint16(create[16:], 1) // width
	le.PutUint16(create[18:], 1) // height
	le.PutUint16(create[22:], 2) // InputOnly
	// SetSelectionOwner(win, WM_S0, CurrentTime).
	own := make([]byte, 16)
	own[0] = 22
	le.PutUint16(own[2:], 4)
	le.PutUint32(own[4:], win)
	le.PutUint32(own[8:], atom)
	// GetSelectionOwner(WM_S0), to learn that the two above took effect.
	get := make([]byte, 8)
	get[0] = 23
	le.PutUint16(get[2:], 2)
	le.PutUint32(get[4:], atom)
	if _, err := c.Write(append(append(create, own...), get...)); err != nil {
		return err
	}
	reply, err = readReply(c)
	if err != nil {
		return fmt.Errorf("GetSelectionOwner: %w", err)
	}
	if owner := le.Uint32(reply[8:]); owner != win {
		return fmt.Errorf("WM_S0 is owned by window %#x, not ours (%#x)", owner, win)
	}
	return nil
}

// readReply reads the next reply, failing on an X error and skipping
// events. The replies we ask for are 32 bytes long.
func readReply(c net.Conn) ([]byte, error) {
	for {
		b := make([]byte, 32)
		if _, err := io.ReadFull(c, b); err != nil {
			return nil, err
		}
		switch b[0] {
		case 0:
			return nil, fmt.Errorf("an X error %d (opcode %d)", b[1], b[10])
		case 1:
			if extra := le.Uint32(b[4:]); extra != 0 {
				if _, err := io.CopyN(io.Discard, c, int64(extra)*4); err != nil {
					return nil, err
				}
			}
			return b, nil
		}
	}
}
