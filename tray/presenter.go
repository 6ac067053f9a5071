package tray

import (
	"fmt"
	"strings"
	"time"

	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/wire"
)

// Popup is one desktop notification. Body is plain text: the notifier
// escapes it for daemons that read markup.
type Popup struct {
	Title string
	Body  string
	// Group names popups that replace each other instead of stacking up
	// (a burst summary updates the previous one); "" for a new popup.
	Group string
}

// Burst coalescing: more than burstLimit popups within burstWindow and
// the rest are gathered into one summary, shown burstWindow after the
// first one held back. A flood thus costs at most burstLimit+1 popups
// every burstWindow.
const (
	burstLimit  = 3
	burstWindow = 2 * time.Second
	summaryShow = 3   // values listed in a summary
	summaryCut  = 100 // runes of one value in a summary
)

// presenter decides which popups the items make: the kind toggles (per
// server), do not disturb and burst coalescing (for all servers: a
// person has one screen). It holds no clock and does no I/O, so every
// rule is tested with made-up times.
type presenter struct {
	kinds map[string]kindSet // per server, by its serverKey
	dnd   bool

	shown   []time.Time // popups shown within the last burstWindow
	batch   []sourced
	batchAt time.Time // when the batch is due
	away    map[sourceKind]int
}

// kindSet is which kinds make popups.
type kindSet struct{ random, classified bool }

// source is the server an item came from: key (serverKey) says which,
// whatever the menu calls it meanwhile; label is its name in popups ("",
// when it is the only one).
type source struct{ key, label string }

// sourced is an item and the server it came from.
type sourced struct {
	src source
	d   netclient.Delivery
}

type sourceKind struct {
	key  string
	kind wire.Kind
}

// newPresenter makes a presenter for one server, source{}, with the
// kinds of s; servers replaces it with those of a list.
func newPresenter(s Settings) *presenter {
	return &presenter{
		kinds: map[string]kindSet{"": {random: s.Random, classified: s.Classified}},
		dnd:   s.DoNotDisturb,
		away:  map[sourceKind]int{},
	}
}

// servers makes the presenter's servers those of confs, with the kinds
// of each; the items held back from a server gone are dropped, those of
// a server kept are kept, whatever it is called now.
func (p *presenter) servers(confs []serverConf) {
	clear(p.kinds)
	for _, c := range confs {
		p.kinds[serverKey(c.Addr)] = kindSet{random: c.Random, classified: c.Classified}
	}
}

func (p *presenter) wants(key string, k wire.Kind) bool {
	ks, ok := p.kinds[key]
	if !ok {
		return false
	}
	switch k {
	case wire.KindRandom:
		return ks.random
	case wire.KindClassified:
		return ks.classified
	}
	return false
}

// item returns the popups a newly fetched item from src makes now.
func (p *presenter) item(src source, d netclient.Delivery, now time.Time) []Popup {
	if !p.wants(src.key, d.Kind) {
		return nil
	}
	if p.dnd {
		p.away[sourceKind{src.key, d.Kind}]++
		return nil
	}
	if len(p.batch) > 0 {
		p.batch = append(p.batch, sourced{src, d})
		return nil
	}
	p.forget(now)
	if len(p.shown) >= burstLimit {
		p.batch = append(p.batch, sourced{src, d})
		p.batchAt = now.Add(burstWindow)
		return nil
	}
	p.shown = append(p.shown, now)
	return []Popup{single(src.label, d)}
}

// forget drops popup times older than the window.
func (p *presenter) forget(now time.Time) {
	i := 0
	for i < len(p.shown) && now.Sub(p.shown[i]) >= burstWindow {
		i++
	}
	p.shown = p.shown[i:]
}

// due says when flush has work, if it has any.
func (p *presenter) due() (time.Time, bool) {
	return p.batchAt, len(p.batch) > 0
}

// flush shows the held-back items once they are due. Items of a kind
// switched off meanwhile are dropped from it.
func (p *presenter) flush(now time.Time) []Popup {
	if len(p.batch) == 0 || now.Before(p.batchAt) {
		return nil
	}
	var keep []sourced
	for _, it := range p.batch {
		if p.wants(it.src.key, it.d.Kind) {
			keep = append(keep, it)
		}
	}
	p.batch = nil
	if len(keep) == 0 {
		return nil
	}
	p.forget(now)
	p.shown = append(p.shown, now)
	if len(keep) == 1 {
		return []Popup{single(keep[0].src.label, keep[0].d)}
	}
	return []Popup{summary(keep)}
}

// setKind switches one kind's popups from the server key on or off.
func (p *presenter) setKind(key string, k wire.Kind, on bool) {
	ks, ok := p.kinds[key]
	if !ok {
		return
	}
	switch k {
	case wire.KindRandom:
		ks.random = on
	case wire.KindClassified:
		ks.classified = on
	}
	p.kinds[key] = ks
}

// setDND turns do not disturb on or off. Leaving it returns one popup
// that counts what arrived meanwhile; entering it holds back a pending
// batch as "arrived while do not disturb was on" too.
func (p *presenter) setDND(on bool) []Popup {
	if on == p.dnd {
		return nil
	}
	p.dnd = on
	if on {
		for _, it := range p.batch {
			if p.wants(it.src.key, it.d.Kind) {
				p.away[sourceKind{it.src.key, it.d.Kind}]++
			}
		}
		p.batch = nil
		return nil
	}
	// A kind switched off while away, or a server gone, is no longer of
	// interest.
	var ads, nums int
	for k, n := range p.away {
		if !p.wants(k.key, k.kind) {
			continue
		}
		if k.kind == wire.KindClassified {
			ads += n
		} else {
			nums += n
		}
	}
	clear(p.away)
	n := ads + nums
	if n == 0 {
		return nil
	}
	title := fmt.Sprintf("%d items arrived while do not disturb was on", n)
	if n == 1 {
		title = "1 item arrived while do not disturb was on"
	}
	var parts []string
	if ads > 0 {
		parts = append(parts, plural(ads, "classified ad", "classified ads"))
	}
	if nums > 0 {
		parts = append(parts, plural(nums, "random number", "random numbers"))
	}
	body := strings.Join(parts, " and ") + ". The latest are in hark's menu."
	return []Popup{{Title: title, Body: body}}
}

// single is the popup for one item; it names its server, when it has a
// label (there are several).
func single(server string, d netclient.Delivery) Popup {
	title := "New classified ad"
	if d.Kind == wire.KindRandom {
		title = "New random number"
	}
	if server != "" {
		title = server + ": " + title
	}
	return Popup{Title: title, Body: d.Value}
}

func summary(items []sourced) Popup {
	kind := items[0].d.Kind
	for _, it := range items[1:] {
		if it.d.Kind != kind {
			kind = ""
		}
	}
	var title string
	switch kind {
	case wire.KindClassified:
		title = fmt.Sprintf("%d new classified ads", len(items))
	case wire.KindRandom:
		title = fmt.Sprintf("%d new random numbers", len(items))
	default:
		title = fmt.Sprintf("%d new items", len(items))
	}
	var b strings.Builder
	for i, it := range items[:min(len(items), summaryShow)] {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("• ")
		if it.src.label != "" {
			b.WriteString(it.src.label + ": ")
		}
		b.WriteString(cut(it.d.Value, summaryCut))
	}
	if more := len(items) - summaryShow; more > 0 {
		fmt.Fprintf(&b, "\n…and %d more", more)
	}
	return Popup{Title: title, Body: b.String(), Group: "burst"}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// cut shortens s to at most n runes, marking the cut with an ellipsis.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
