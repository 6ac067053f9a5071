package desktoptest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
)

// busConfig is the configuration of our private dbus-daemons. It is our
// own rather than --session (the two options exclude each other) because
// the stock session.conf has <standard_session_servicedirs/>: with it, a
// Notify call with no notification daemon running would activate whatever
// daemon the machine has installed (xfce4-notifyd, notification-daemon...)
// and a test could pass against a daemon we did not choose. Without any
// <servicedir>, the bus can only route to programs we started. The socket
// path is fixed so that it is easy to find in a failing test's temp dir.
func busConfig(busType, socket string) []byte {
	var esc bytes.Buffer
	_ = xml.EscapeText(&esc, []byte(socket))
	return []byte(fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>%s</type>
  <keep_umask/>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <!-- No servicedirs: no service activation. -->
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`, busType, esc.String()))
}

// panelXML is the xfce4-panel channel that xfconfd serves: one panel at
// the top, 32px high, full width, with an expanding separator pushing the
// systray plugin to the right like a typical desktop. The systray plugin
// is the point: it hosts StatusNotifierItems and owns
// org.kde.StatusNotifierWatcher. Nothing time-dependent (a clock) is on
// it, so screenshots of an idle panel are comparable between runs.
const panelXML = `<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="size" type="uint" value="32"/>
      <property name="icon-size" type="uint" value="24"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
        <value type="int" value="2"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="separator">
      <property name="expand" type="bool" value="true"/>
      <property name="style" type="uint" value="0"/>
    </property>
    <property name="plugin-2" type="string" value="systray">
      <property name="square-icons" type="bool" value="true"/>
    </property>
  </property>
</channel>
`

// lxqtPanelConf is lxqt-panel's configuration (QSettings' INI format):
// one panel at the top, 32px high and full width, like panelXML, holding
// only the statusnotifier plugin (the StatusNotifierItem host and
// watcher) at the right, drawing icons at 22px. Without an LXQt theme
// the panel would be transparent, black on Xvfb: a dark grey background
// makes screenshots look like a panel.
const lxqtPanelConf = `[General]
__userfile__=true
panels=panel1

[panel1]
alignment=1
background-color=#2e3436
desktop=0
font-color=#eeeeec
hidable=false
iconSize=22
lineCount=1
lockPanel=true
opacity=100
panelSize=32
plugins=statusnotifier
position=Top
reserve-space=true
width=100
width-percent=true

[statusnotifier]
alignment=Right
type=statusnotifier
`

// dunstrc configures dunst (1.9 syntax) so that tests see what users see:
// markup = full, so a body with unescaped markup shows up as broken or
// bold text rather than being silently escaped; a 30s timeout, so a
// popup is still on screen for a screenshot; no limit on displayed
// popups, so none wait in a queue; a long history, so Popups sees them
// all. The popup sits left of where the tray menu opens, so a screenshot
// shows both; icons are on (an app's image-data hint needs no theme).
const dunstrc = `[global]
    monitor = 0
    follow = none
    width = 350
    height = 150
    origin = top-right
    offset = 290x42
    notification_limit = 0
    indicate_hidden = yes
    markup = full
    format = "<b>%s</b>\n%b"
    font = Monospace 10
    frame_width = 2
    frame_color = "#888888"
    separator_height = 2
    padding = 8
    horizontal_padding = 8
    icon_position = left
    min_icon_size = 32
    max_icon_size = 32
    idle_threshold = 0
    show_age_threshold = -1
    sticky_history = yes
    history_length = 1000
    ignore_dbusclose = false
    mouse_left_click = close_current
    mouse_middle_click = do_action, close_current
    mouse_right_click = close_all

[urgency_low]
    background = "#222222"
    foreground = "#ffffff"
    timeout = 30

[urgency_normal]
    background = "#222222"
    foreground = "#ffffff"
    timeout = 30

[urgency_critical]
    background = "#900000"
    foreground = "#ffffff"
    frame_color = "#ff0000"
    timeout = 0
`

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
