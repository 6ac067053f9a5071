package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/harkapp/hark/wire"
)

// publisher puts one item on the server and returns once the server has
// accepted it.
type publisher interface {
	publish(ctx context.Context, kind wire.Kind, value string) error
	close()
}

func newPublisher(cfg Config) (publisher, error) {
	if cfg.PublishCmd != "" {
		return &cmdPublisher{tmpl: cfg.PublishCmd}, nil
	}
	base, err := url.Parse(cfg.PublishURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("bench: publish URL %q: want e.g. http://127.0.0.1:6790", cfg.PublishURL)
	}
	// Connections kept alive, as many as calls may be in flight.
	tr := &http.Transport{MaxIdleConnsPerHost: maxInFlight, DisableCompression: true, TLSClientConfig: cfg.TLS}
	return &httpPublisher{
		base:  base,
		token: cfg.PublishToken,
		tr:    tr,
		hc:    &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}, nil
}

// httpPublisher uses a publish API like hark serve's: POST the value to
// /v1/<kind>, 201 on success.
type httpPublisher struct {
	base  *url.URL
	token string // "": none
	tr    *http.Transport
	hc    *http.Client
}

func (p *httpPublisher) publish(ctx context.Context, kind wire.Kind, value string) error {
	endpoint := p.base.JoinPath("v1", string(kind)).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(value))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the publish API at %s: %w", p.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("reading the answer from %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusCreated {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s answered %s: %s", endpoint, resp.Status, e.Error)
		}
		return fmt.Errorf("%s answered %s, want 201 Created", endpoint, resp.Status)
	}
	return nil
}

func (p *httpPublisher) close() { p.tr.CloseIdleConnections() }

// cmdPublisher runs a shell command per item, for a server with another
// publishing path.
type cmdPublisher struct{ tmpl string }

func (p *cmdPublisher) publish(ctx context.Context, kind wire.Kind, value string) error {
	line := strings.NewReplacer("{value}", shellQuote(value), "{kind}", shellQuote(string(kind))).Replace(p.tmpl)
	out, err := exec.CommandContext(ctx, "sh", "-c", line).CombinedOutput()
	if err != nil {
		return fmt.Errorf("publish command %q: %w: %s", line, err, strings.TrimSpace(clip(out)))
	}
	return nil
}

func (p *cmdPublisher) close() {}

// shellQuote quotes s as one word for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
