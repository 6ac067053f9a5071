package netclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"

	"github.com/harkapp/hark/wire"
)

// sentinel is an error that wraps others: ErrTokenExpired is an
// ErrAuthFailed, with its reason.
type sentinel struct {
	msg  string
	wrap []error
}

func (e *sentinel) Error() string   { return e.msg }
func (e *sentinel) Unwrap() []error { return e.wrap }

// Errors about TLS and tokens (docs/PROTOCOL.md, TLS and Authentication).
// Those the server says are farewells: they end the connection and fail
// every command pending on it. Each comes as a *ServerError holding the
// line, which errors.Is matches against these.
var (
	// ErrAuthRequired: the server requires a token and none was given.
	ErrAuthRequired = errors.New("the server requires a token")
	// ErrAuthFailed: the server refused the token (unknown, revoked, for
	// another scope, expired, or sent in plaintext).
	ErrAuthFailed = errors.New("the server refused the token")
	// ErrTokenExpired is the ErrAuthFailed of a token past its expiry.
	ErrTokenExpired error = &sentinel{"the server refused the token: it has expired", []error{ErrAuthFailed}}
	// ErrTokenInClear: a token is only sent over TLS, except to
	// loopback. Dial returns it, without connecting, for a token and a
	// plaintext address elsewhere; and wrapped with ErrAuthFailed when the
	// server refused a token that reached it in plaintext from an address
	// other than its loopback.
	ErrTokenInClear = errors.New("a token is only sent over TLS, except to loopback")
	// ErrServerWantsTLS: a plaintext client met a port that speaks TLS.
	ErrServerWantsTLS = errors.New("the server speaks TLS on this port: connect with tls://HOST:PORT")
	// ErrServerNotTLS: a TLS client met a port that does not speak TLS.
	ErrServerNotTLS = errors.New("the server does not speak TLS on this port: connect without tls://")

	// ErrServerGoingAway: the server shuts down (wire.ErrGoingAway). A
	// Session with several addresses moves to the next at once and takes
	// this one for gone (docs/PROTOCOL.md, Going away).
	ErrServerGoingAway = errors.New("the server is going away")

	errAuthInClear error = &sentinel{"the server refused the token: tokens need TLS from this address", []error{ErrTokenInClear, ErrAuthFailed}}
)

// farewell is the error a connection ends with when the server sent
// line, one of wire.IsFarewell's: a *ServerError that errors.Is matches
// against the sentinel it means, if any.
func farewell(line string) error {
	var err error
	switch {
	case line == wire.ErrAuthRequired:
		err = ErrAuthRequired
	case line == wire.ErrAuthExpired:
		err = ErrTokenExpired
	case line == wire.ErrAuthInClear:
		err = errAuthInClear
	case wire.IsAuthFarewell(line):
		err = ErrAuthFailed
	case line == wire.ErrTLSRequired:
		err = ErrServerWantsTLS
	case line == wire.ErrNoTLS:
		err = ErrServerNotTLS
	case line == wire.ErrGoingAway:
		err = ErrServerGoingAway
	}
	return &ServerError{Line: line, err: err}
}

// tokenError is a failure of SessionOptions.Token.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "cannot get the token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// retryLater reports whether err is a failure that retrying soon cannot
// fix: a setting or a token is wrong, and only a person can change that.
func retryLater(err error) bool {
	for _, target := range []error{ErrAuthRequired, ErrAuthFailed, ErrTokenInClear, ErrServerWantsTLS, ErrServerNotTLS, ErrBadAddr, errBadToken} {
		if errors.Is(err, target) {
			return true
		}
	}
	var te *tokenError
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var sr x509.SystemRootsError
	return errors.As(err, &te) || errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) ||
		errors.As(err, &ci) || errors.As(err, &sr)
}

// Hint returns one short line for a person about err, the State.Err of a
// session or a Dial error: what is wrong and what to do, for a tray's
// status line or `hark watch`. It is "" when there is nothing more
// specific to say than the error itself.
func Hint(err error) string {
	if err == nil {
		return ""
	}
	var te *tokenError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var sr x509.SystemRootsError
	switch {
	case errors.As(err, &te):
		return "Cannot read the saved token: run hark login"
	case errors.Is(err, errBadToken):
		return "The saved token is malformed: run hark login"
	case errors.Is(err, ErrBadAddr):
		return "Bad server address: use HOST:PORT or tls://HOST:PORT"
	case errors.Is(err, ErrTokenInClear):
		return "Not sending the token without TLS: use tls://"
	case errors.Is(err, ErrTokenExpired):
		return "Token expired: ask for a new one, then run hark login"
	case errors.Is(err, ErrAuthFailed):
		return "Token refused by the server: run hark login"
	case errors.Is(err, ErrAuthRequired):
		return "Server needs a token: run hark login (see man hark)"
	case errors.Is(err, ErrServerWantsTLS):
		return "Server speaks TLS: use tls://HOST:PORT"
	case errors.Is(err, ErrServerNotTLS):
		return "Server does not speak TLS: remove tls://"
	case errors.As(err, &ua), errors.As(err, &sr):
		return "Certificate not trusted: set ca_file"
	case errors.As(err, &he):
		return "Certificate is not for this server name"
	case errors.As(err, &ci):
		if ci.Reason == x509.Expired {
			return "Certificate expired or not yet valid: check the server's certificate and this clock"
		}
		return "Certificate not valid for a server: check the server's certificate"
	}
	return ""
}

// errBadToken: a token that cannot go on one command line.
var errBadToken = errors.New("the token is malformed (it must be one word of printable ASCII)")

// checkToken refuses a token that would not be one command's argument.
// The token itself is never put in an error or a log line.
func checkToken(tok string) error {
	if len(tok) > wire.MaxTokenBytes {
		return errBadToken
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return errBadToken
		}
	}
	return nil
}

// authLine is how an auth command shows in messages: without its token.
const authLine = wire.CmdAuth + " …"

func isAuth(cmd Cmd) bool { return strings.HasPrefix(string(cmd), wire.CmdAuth+" ") }
