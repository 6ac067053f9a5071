package wire

import "strings"

// CmdAuth presents a subscribe token: "auth <token>". It is valid only as
// a connection's first command; a server that requires tokens answers any
// other first command with ErrAuthRequired and closes. See
// docs/PROTOCOL.md, Authentication.
const CmdAuth = "auth"

// Replies to auth, and the farewells of a server that requires it. Every
// one but OK is followed by the server closing the connection, except
// ErrAuthNotFirst, which answers an auth sent after another command.
const (
	ErrAuthRequired = "ERR auth required"
	ErrAuthFailed   = "ERR auth failed" // an unknown, revoked or wrong-scope token
	// ErrAuthExpired and ErrAuthInClear are ErrAuthFailed with its reason:
	// a client that only knows the prefix reads them as ErrAuthFailed.
	ErrAuthExpired  = "ERR auth failed: token expired"
	ErrAuthInClear  = "ERR auth failed: tokens need TLS from this address"
	ErrAuthNotFirst = "ERR auth must be the first command"
)

// Lines sent in plaintext by a server about TLS itself, before any
// handshake, after which it closes. A TLS client that finds "ERR " where
// a TLS record should start reads the rest of the line in plaintext: it is
// one of these, or a refusal (ErrTooManyConns…) sent before the handshake.
const (
	ErrTLSRequired = "ERR this port speaks TLS: connect with tls://"
	ErrNoTLS       = "ERR this port does not speak TLS: connect without tls://"
)

// MaxTokenBytes bounds a token as a server reads it.
const MaxTokenBytes = 128

// IsAuthFarewell reports whether line is an auth error after which the
// server closes the connection.
func IsAuthFarewell(line string) bool {
	return line == ErrAuthRequired || line == ErrAuthFailed || strings.HasPrefix(line, ErrAuthFailed+":")
}
