package jetstream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// refollowEvery is how long after a sign of trouble the follower is
// replaced, and how often again while that fails.
const refollowEvery = 2 * time.Second

// watch is the follower's watchdog. nats.go's ordered consumer recreates
// its server-side consumer by itself when it breaks, but with a backoff
// that grows to 10 s between tries of up to 10 s each, and after a NATS
// node died it left gateways fanning out nothing for over 30 s, some
// without reporting an error at all. So on any sign of trouble (the
// connection came back, the consumer reported an error, an append's item
// was not told within tellWait) the handle replaces the consumer itself,
// refollowEvery later, from the item after the last one told, and again
// every refollowEvery until that succeeds. A consumer is one request to
// create; take skips what was told already.
type watch struct {
	behind    chan struct{} // capacity 1: a sign of trouble
	watchDone chan struct{} // closed when watchFollower returns
	// retired are the followers refollow replaced, being stopped: Stop
	// waits for nats.go's own reset of that consumer to give up, so it
	// is not waited for by the watchdog, only by Close.
	retired sync.WaitGroup
}

// lagging tells the watchdog that the follower may be behind.
func (s *Store) lagging() {
	select {
	case s.behind <- struct{}{}:
	default:
	}
}

// followFrom starts an ordered consumer of the items from seq on, feeding
// take, and makes it the follower.
func (s *Store) followFrom(ctx context.Context, seq uint64) (jetstream.ConsumeContext, error) {
	cons, err := s.items.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   seq,
		// One try of its own (nats.go's default is to retry without end,
		// holding the lock its Stop needs): past it, the watchdog
		// replaces the consumer.
		MaxResetAttempts: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("follow the items: %w", err)
	}
	cc, err := cons.Consume(s.take, jetstream.PullHeartbeat(followHeartbeat), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// The ordered consumer tries to recover by itself; the watchdog
		// makes sure it does in time. A disconnection is logged once
		// by the connection's handlers.
		s.log.Debug("NATS store: following the items", "err", err)
		s.lagging()
	}))
	if err != nil {
		return nil, fmt.Errorf("follow the items: %w", err)
	}
	return cc, nil
}

// watchFollower is the watchdog's goroutine, until Close.
func (s *Store) watchFollower() {
	defer close(s.watchDone)
	tick := time.NewTimer(time.Hour)
	tick.Stop()
	defer tick.Stop()
	pending := false
	for {
		select {
		case <-s.closed:
			return
		case <-s.behind:
			if !pending {
				pending = true
				tick.Reset(refollowEvery)
			}
			continue
		case <-tick.C:
		}
		from := s.told.Load() + 1
		if err := s.refollow(from); err != nil {
			s.rl.Warn("NATS store: cannot follow the items; trying again", "err", err)
			tick.Reset(refollowEvery)
			continue
		}
		pending = false
		s.rl.Info("NATS store: following the items on a new consumer", "from", from)
	}
}

// refollow replaces the follower with a new ordered consumer from seq on.
// take skips what was told already, should the old one still deliver.
func (s *Store) refollow(seq uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cc, err := s.followFrom(ctx, seq)
	if err != nil {
		return err
	}
	s.dmu.Lock()
	if s.stopped {
		s.dmu.Unlock()
		cc.Stop()
		return nil
	}
	old := s.follow
	s.follow = cc
	s.retired.Add(1)
	s.dmu.Unlock()
	// Outside dmu (its handler may be waiting for it), and not waited
	// for here: take skips what it might still deliver.
	go func() {
		defer s.retired.Done()
		old.Stop()
		<-old.Closed()
	}()
	return nil
}
