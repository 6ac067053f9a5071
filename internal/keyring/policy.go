package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/harkapp/hark/internal/sessionbus"
)

// FromSecretService is what Lookup returns as from, and Save as where,
// when the token is in the Secret Service.
const FromSecretService = "Secret Service"

// serviceTimeout bounds the Secret Service part of Lookup and Save, so
// that a hung service (or one slow to activate) delays the tray by at
// most this much before the file is tried. It is D-Bus's own default
// reply timeout.
const serviceTimeout = 25 * time.Second

// errNoSessionBus: there is no session bus to look on, which for the
// policy means the same as no Secret Service.
var errNoSessionBus = fmt.Errorf("%w (%w)", ErrNoService, sessionbus.ErrNoBus)

// Lookup finds the token for server, for the tray and `hark login`.
//
// When tokenFile is set (the user named a file), only that file is read,
// whatever server is, and from is its path. Otherwise it asks the Secret
// Service on the session bus for server's token, then reads
// DefaultTokenFile(server), where Save puts it when there is no Secret
// Service; never another server's file. from is FromSecretService or
// that path. The error wraps ErrNotFound when neither has a token, and
// says what to do.
func Lookup(ctx context.Context, server, tokenFile string) (token, from string, err error) {
	if tokenFile != "" {
		tok, err := ReadTokenFile(tokenFile)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return "", "", fmt.Errorf("%w; run `hark login` to store one", err)
			}
			return "", "", err
		}
		return tok, tokenFile, nil
	}
	tok, ssErr := withService(ctx, func(ctx context.Context, s *SecretService) (string, error) {
		return s.Get(ctx, server)
	})
	if ssErr == nil {
		return tok, FromSecretService, nil
	}
	// A locked keyring or a broken service is reported as such, not
	// hidden behind a file fallback that is then also missing: the
	// user's fix is to unlock, not to log in again. But a token in the
	// server's default file still wins, as Save writes it there when the
	// Secret Service was missing, and may have been since.
	def, defErr := DefaultTokenFile(server)
	file := def
	if defErr == nil {
		tok, fileErr := ReadTokenFile(def)
		if fileErr == nil {
			return tok, def, nil
		}
		if !errors.Is(fileErr, ErrNotFound) {
			return "", "", fileErr
		}
	} else {
		file = fmt.Sprintf("a token file (%v)", defErr)
	}
	switch {
	case errors.Is(ssErr, ErrNotFound):
		return "", "", fmt.Errorf("%w for %s, neither in the Secret Service nor in %s: run `hark login`", ErrNotFound, server, file)
	case errors.Is(ssErr, ErrNoService):
		return "", "", fmt.Errorf("%w for %s: %w, nor %s: run `hark login`", ErrNotFound, server, ssErr, file)
	default:
		return "", "", fmt.Errorf("read the token for %s from the Secret Service: %w", server, ssErr)
	}
}

// Save stores the token for server: in the Secret Service when the
// session has one, else in tokenFile (DefaultTokenFile(server) when
// empty), and says where. When the Secret Service is there but fails (a locked
// keyring), Save returns the error rather than writing the file: the user
// chose a keyring, and a silent copy of the credential in a plain file
// is not what they chose.
func Save(ctx context.Context, server, token, tokenFile string) (where string, err error) {
	if server == "" {
		return "", errors.New("save a token: empty server address")
	}
	if err := CheckToken(token); err != nil {
		return "", fmt.Errorf("save a token for %s: %w", server, err)
	}
	_, ssErr := withService(ctx, func(ctx context.Context, s *SecretService) (string, error) {
		return "", s.Set(ctx, server, token)
	})
	if ssErr == nil {
		return FromSecretService, nil
	}
	if !errors.Is(ssErr, ErrNoService) {
		return "", fmt.Errorf("save the token for %s in the Secret Service: %w", server, ssErr)
	}
	if tokenFile == "" {
		def, err := DefaultTokenFile(server)
		if err != nil {
			return "", err
		}
		tokenFile = def
	}
	if err := WriteTokenFile(tokenFile, token); err != nil {
		return "", fmt.Errorf("%w (there is no Secret Service, so the token goes to a file)", err)
	}
	return tokenFile, nil
}

// withService runs f against the Secret Service on a private connection
// to the session bus, closed afterwards: not dbus.SessionBus(), which is
// shared with systray and would stay open.
func withService(ctx context.Context, f func(context.Context, *SecretService) (string, error)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, serviceTimeout)
	defer cancel()
	addr, err := sessionBusAddress()
	if err != nil {
		return "", err
	}
	conn, err := dial(ctx, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	s, err := Connect(ctx, conn)
	if err != nil {
		return "", err
	}
	return f(ctx, s)
}

// sessionBusAddress is sessionbus.Address, its error one of
// ErrNoService's: no bus, no Secret Service.
func sessionBusAddress() (string, error) {
	a, err := sessionbus.Address()
	if err != nil {
		return "", errNoSessionBus
	}
	return a, nil
}

// dial connects to the session bus. A bus address that does not answer is
// reported as a missing service: the fallback is what the user needs
// then.
func dial(ctx context.Context, addr string) (*dbus.Conn, error) {
	conn, err := sessionbus.Dial(ctx, addr)
	switch {
	case err == nil:
		return conn, nil
	case ctx.Err() != nil:
		return nil, fmt.Errorf("the session bus: %w", err)
	}
	return nil, fmt.Errorf("%w: cannot reach the session bus: %v", ErrNoService, err)
}
