package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// profiler serves net/http/pprof's endpoints for `hark serve --pprof`.
// It has its own mux: importing net/http/pprof also registers the handlers
// on http.DefaultServeMux, which hark never serves, so the publish API
// cannot expose them by accident.
type profiler struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// startProfiler listens on addr, which must be a loopback address: the
// endpoints reveal the command line and memory, and a CPU profile costs
// the server while it runs.
func startProfiler(addr string, log *slog.Logger) (*profiler, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for --pprof on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &profiler{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			// No WriteTimeout: /debug/pprof/profile?seconds=N writes after N seconds.
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof endpoint stopped", "err", err)
		}
	}()
	return p, nil
}

// URL is where the endpoints are.
func (p *profiler) URL() string { return "http://" + p.ln.Addr().String() + "/debug/pprof/" }

// stop closes the listener and any profile in progress, and waits for the
// serving goroutine.
func (p *profiler) stop() {
	_ = p.srv.Close()
	<-p.done
}
