//go:build !linux

package server

import (
	"errors"
	"net"
	"sync"
)

// evloop is Linux's event loop (loop_linux.go); elsewhere every
// connection takes the portable path.
type evloop struct{}

const haveLoop = false

func newLoop(net.Listener, *sync.WaitGroup, bool) (*evloop, error) {
	return nil, errors.ErrUnsupported
}

func (*evloop) run(*Server)        {}
func (*evloop) closeArms() []*conn { return nil }
func (*evloop) stop()              {}
func (*evloop) close()             {}

func (s *Server) acceptRaw() (sock, error) { return nil, errors.ErrUnsupported }
