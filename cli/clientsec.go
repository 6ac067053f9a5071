package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/harkapp/hark/internal/keyring"
)

// clientSecurity is what the terminal clients (watch, publish, bench)
// take to reach a server beyond loopback: a private CA, and a token from
// a file or $HARK_TOKEN. There is no flag that skips verification.
type clientSecurity struct {
	caFile    string
	tokenFile string
}

func (c *clientSecurity) register(fs *flag.FlagSet, scope string) {
	fs.StringVar(&c.caFile, "ca", "", "verify the server's certificate against this CA `file` (PEM) instead of the system's roots: for a private CA")
	fs.StringVar(&c.tokenFile, "token-file", "", "read the "+scope+" token from this `file` (mode 0600); default: $HARK_TOKEN")
}

// tlsConfig is the client's TLS configuration: the system's roots, or
// the CA file's certificates alone.
func (c *clientSecurity) tlsConfig() (*tls.Config, error) {
	return loadTLSConfig("--ca", c.caFile)
}

// loadTLSConfig reads a CA file (what names it, for messages: a flag or
// a config key); "" keeps the system's roots.
func loadTLSConfig(what, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it (want the CA's certificate, -----BEGIN CERTIFICATE-----)", what, caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// token is the token to present: --token-file, else $HARK_TOKEN, else
// none. Its shape is checked here so a mistake (a copied newline, a
// stray quote) is told before anything is sent.
func (c *clientSecurity) token() (string, error) {
	var tok, from string
	switch {
	case c.tokenFile != "":
		t, err := keyring.ReadTokenFile(c.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		tok, from = t, c.tokenFile
	case os.Getenv("HARK_TOKEN") != "":
		tok, from = strings.TrimSpace(os.Getenv("HARK_TOKEN")), "$HARK_TOKEN"
	default:
		return "", nil
	}
	if err := checkTokenShape(tok); err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	return tok, nil
}

// checkTokenShape rejects what cannot be a token: hark's are "hark_" and
// 52 base32 characters, but a server may issue others, so only what
// could not travel on one protocol line or in a header is refused.
func checkTokenShape(tok string) error {
	switch {
	case tok == "":
		return errors.New("the token is empty")
	case len(tok) > 128:
		return fmt.Errorf("the token is %d bytes long; a token is at most 128 (is it the right file?)", len(tok))
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return fmt.Errorf("the token holds a space or an unprintable byte at offset %d: copy it again, alone", i)
		}
	}
	return nil
}
