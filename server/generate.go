package server

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/harkapp/hark/wire"
)

// drawRandom draws a number below 10^12 with crypto/rand: twelve digits
// read well in a popup and still exceed 32 bits, as the protocol's example
// does.
func drawRandom() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000_000_000))
	if err != nil {
		return "", fmt.Errorf("draw a random number: %w", err)
	}
	return strconv.FormatUint(n.Uint64(), 10), nil
}

// sampleAds feed the built-in classified generator (demo mode, testing).
var sampleAds = [...]string{
	"Nice appart in the 11e.",
	"Bright two-room flat near the canal, 1,150 €/month",
	"Vintage road bike, 56 cm frame, new tyres: 240 €",
	"Piano lessons for beginners, Tuesday evenings",
	"Looking for a bandmate: bass player for a jazz trio",
	"Oak dining table with six chairs, pick-up only",
	"Free kittens to a good home (3 left)",
	"Room to let in a shared house, garden, quiet street",
	"Selling a 2014 hatchback, 88,000 km, one owner",
	"Lost: grey umbrella with a wooden handle, reward",
}

// generate publishes an item of kind every period until shutdown.
func (s *Server) generate(kind wire.Kind, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		value := sampleAds[n%len(sampleAds)]
		if kind == wire.KindRandom {
			var err error
			if value, err = drawRandom(); err != nil {
				s.log.Error("generator", "err", err)
				continue
			}
		}
		if _, _, err := s.Publish(s.ctx, kind, value); err != nil && s.ctx.Err() == nil {
			s.log.Error("generator: publish failed", "kind", kind, "err", err)
		}
	}
}
