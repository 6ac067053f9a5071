package cli

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/harkapp/hark/internal/keyring"
	"github.com/harkapp/hark/netclient"
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

// load is what the flags say: the TLS configuration and the token.
func (c *clientSecurity) load() (*tls.Config, string, error) {
	conf, err := c.tlsConfig()
	if err != nil {
		return nil, "", err
	}
	tok, err := c.token()
	return conf, tok, err
}

// loadTLSConfig reads a CA file (what names it, for messages: a flag or
// a config key); "" keeps the system's roots.
func loadTLSConfig(what, caFile string) (*tls.Config, error) {
	if caFile == "" {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	cfg, err := netclient.LoadCA(caFile)
	if errors.Is(err, netclient.ErrNoCert) {
		return nil, fmt.Errorf("%s %s: %w", what, caFile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
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
	if err := keyring.CheckToken(tok); err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	return tok, nil
}
