package server

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/harkapp/hark/store"
	"github.com/harkapp/hark/wire"
)

// Published is the publish API's answer to a successful POST.
type Published struct {
	ID       uint64    `json:"id"`
	Kind     wire.Kind `json:"kind"`
	Value    string    `json:"value"` // a string even for numbers: they can exceed 2^53
	Time     time.Time `json:"time"`
	Notified int       `json:"notified"` // connections in notification mode that were told
	// Replayed is set on the answer to a repeated Idempotency-Key: the
	// item is the one the first request stored, and nobody was told again.
	Replayed bool `json:"replayed,omitempty"`
}

// Health is the answer to GET /v1/health.
type Health struct {
	Status      string `json:"status"`
	Connections int    `json:"connections"`
	Notifying   int    `json:"notifying"`
	Ads         int    `json:"ads"`
	LatestID    uint64 `json:"latest_id"`
	Epoch       string `json:"epoch"`   // the store's: item ids are comparable under one epoch only
	Clients     int    `json:"clients"` // client ids the store keeps positions for
}

// maxHTTPAuthDelay bounds the slow-down of a failed token on the API:
// below the server's write timeout, so the 401 is still sent.
const maxHTTPAuthDelay = 5 * time.Second

// maxBody bounds a request body. An ad is at most wire.MaxAdBytes; a
// larger body is still read up to this bound so the error can say how
// long the ad was.
const maxBody = 64 << 10

// Handler is the publish API:
//
//	POST /v1/random      body: a decimal integer, or empty to draw one
//	POST /v1/classified  body: the ad, one line of UTF-8
//	GET  /v1/health
//
// Successes are 201 with a Published object; bad input is 400 with
// {"error": "..."} saying what is wrong. Whatever a web page can make a
// browser send is refused first (guard), and publishing needs a token
// when the server requires one (bearer).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/random", s.bearer(s.handlePublish(wire.KindRandom)))
	mux.HandleFunc("POST /v1/classified", s.bearer(s.handlePublish(wire.KindClassified)))
	mux.HandleFunc("GET /v1/health", s.handleHealth)
	for path, allow := range map[string]string{"/v1/random": "POST", "/v1/classified": "POST", "/v1/health": "GET"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" "+path+": use "+allow)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: the API is POST /v1/random, POST /v1/classified and GET /v1/health")
	})
	return s.guard(mux)
}

// guard refuses what a web page in the user's browser can send, with or
// without a token: a cross-origin request, by the browser's own headers
// (Sec-Fetch-Site, Origin: net/http's CrossOriginProtection), and a Host
// the server does not go by. DNS rebinding makes a stranger's page
// same-origin with itself while its requests reach this server, so only
// the Host check stops that. curl and hark publish send neither header
// and the Host they were given, and pass.
func (s *Server) guard(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			s.rl.Warn("publish API: request refused: Host not served here", "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "Host "+strconv.Quote(r.Host)+" is not served here: use the server's address, localhost, or a name given to hark serve --http-host")
			return
		}
		if err := cop.Check(r); err != nil {
			s.rl.Warn("publish API: request refused: cross-origin", "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "cross-origin request refused: a web page cannot publish to hark")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiHosts are the Host names the publish API answers to besides IP
// literals (a page served from an IP address is that server, no
// rebinding) and the certificate's names (hostAllowed): localhost, the
// listen host and the configured ones.
func (s *Server) apiHosts() map[string]bool {
	hosts := map[string]bool{"localhost": true}
	add := func(h string) { hosts[canonicalHost(h)] = true }
	if h, _, err := net.SplitHostPort(s.cfg.HTTP); err == nil && h != "" {
		add(h)
	}
	for _, h := range s.cfg.HTTPHosts {
		add(h)
	}
	return hosts
}

// hostAllowed checks a request's Host. The certificate's names are those
// of the certificate in use, reloaded or not.
func (s *Server) hostAllowed(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = canonicalHost(strings.Trim(h, "[]"))
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if s.hosts[h] {
		return true
	}
	// A name the certificate is for, wildcards included: a rebinding
	// page cannot get a valid TLS session for it.
	return s.certs != nil && s.certs.cur.Load().Leaf.VerifyHostname(h) == nil
}

func canonicalHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// bearer checks a publish request's token: required when the server
// requires tokens, and checked whenever one is sent (a publisher learns
// its token is wrong even where none is needed). Answers follow RFC 6750:
// 401 with WWW-Authenticate for a missing or bad token, 403 for one of
// another scope (and one sent in plaintext from another machine).
func (s *Server) bearer(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		authz := r.Header.Get("Authorization")
		if authz == "" && !s.cfg.Auth {
			next(w, r)
			return
		}
		scheme, secret, _ := strings.Cut(authz, " ")
		if authz == "" || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hark"`)
			writeError(w, http.StatusUnauthorized, "this server needs a publish token: send Authorization: Bearer <token> (hark publish --token-file FILE, or HARK_TOKEN)")
			return
		}
		remote, _ := net.ResolveTCPAddr("tcp", r.RemoteAddr)
		var raddr net.Addr
		if remote != nil {
			raddr = remote
		}
		res := s.checkToken(strings.TrimSpace(secret), store.ScopePublish, raddr, r.TLS != nil)
		if res.reply == "" {
			s.tokens.Used(res.tok.ID, time.Now())
			next(w, r)
			return
		}
		// Within the API's write timeout (10 s), or the answer would be
		// a broken connection instead of a 401.
		s.slowDown(r.Context(), raddr, maxHTTPAuthDelay)
		s.rl.Warn("publish API: auth failed: "+res.why, "remote", r.RemoteAddr)
		switch res.reply {
		case wire.ErrAuthInClear:
			writeError(w, http.StatusForbidden, "tokens are not accepted over plaintext from another machine: use https://")
		case wire.ErrAuthExpired:
			w.Header().Set("WWW-Authenticate", `Bearer realm="hark", error="invalid_token", error_description="token expired"`)
			writeError(w, http.StatusUnauthorized, "token expired: ask for a new one")
		default:
			if res.why == whyScope {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hark", error="insufficient_scope", scope="publish"`)
				writeError(w, http.StatusForbidden, "this token may not publish: it needs the publish scope")
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="hark", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "token refused: unknown or revoked")
		}
	}
}

func (s *Server) handlePublish(kind wire.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, "request body over 64 KiB: an ad is at most 1000 bytes")
			return
		case err != nil:
			writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
			return
		}
		key, err := idempotencyKey(r.Header)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		// The request as sent, before the server draws a number for an
		// empty body: a retry of it must get the same number back.
		fp := sha256.Sum256([]byte(string(kind) + "\n" + string(body)))
		value := string(body)
		if kind == wire.KindRandom {
			value = strings.TrimSpace(value)
			if value == "" {
				value, err = drawRandom()
				if err != nil {
					writeError(w, http.StatusInternalServerError, err.Error())
					return
				}
			} else if _, err := wire.ParseRandom(value); err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
		} else if err := wire.ValidateAd(value); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		it, n, replayed, err := s.publish(r.Context(), kind, value, key, fp)
		switch {
		case errors.Is(err, store.ErrKeyReused):
			writeError(w, http.StatusUnprocessableEntity, "this Idempotency-Key was used for another item: use a new key for a new item")
			return
		case errors.Is(err, store.ErrUnavailable), errors.Is(err, ErrClosed):
			// Not stored, or (a shared store that did not answer in time)
			// not confirmed: the same request again, with the same
			// Idempotency-Key, publishes it once either way. Said once,
			// then counted: an outage makes many.
			s.rl.Warn("publish refused: the store is unavailable or the server is stopping", "err", err)
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, "not published (or, if the store did not answer in time, not confirmed): "+err.Error()+
				"; send the same request again later, with the same Idempotency-Key so that it is published once")
			return
		case err != nil:
			s.log.Error("publish failed", "kind", kind, "err", err)
			writeError(w, http.StatusInternalServerError, "publish failed: "+err.Error())
			return
		}
		p := published(it, n)
		if replayed {
			p.Replayed = true
			w.Header().Set("Idempotent-Replayed", "true")
		}
		writeJSON(w, http.StatusCreated, p)
	}
}

// idempotencyKey reads the Idempotency-Key header (the IETF httpapi
// draft: a structured-field string, "…"; a bare token is taken as well):
// "" when there is none.
func idempotencyKey(h http.Header) (string, error) {
	vs := h.Values("Idempotency-Key")
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", errors.New("more than one Idempotency-Key header: send one")
	}
	k := vs[0]
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = k[1 : len(k)-1]
	}
	if k == "" || len(k) > store.MaxKeyBytes {
		return "", fmt.Errorf("an Idempotency-Key is 1 to %d characters, got %d", store.MaxKeyBytes, len(k))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e || k[i] == '"' || k[i] == '\\' {
			return "", fmt.Errorf("an Idempotency-Key holds printable ASCII without spaces, quotes or backslashes: byte 0x%02x at offset %d", k[i], i)
		}
	}
	return k, nil
}

func published(it store.Item, n int) Published {
	return Published{ID: it.ID, Kind: it.Kind, Value: it.Value, Time: it.Time.UTC(), Notified: n}
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	h := Health{Status: "ok", Connections: len(s.conns), Notifying: s.notifying, Ads: len(s.ads), LatestID: s.random.ID,
		Epoch: s.st.Epoch(), Clients: s.st.Clients()}
	if n := len(s.ads); n > 0 {
		h.LatestID = max(h.LatestID, s.ads[n-1].ID)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, h)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
