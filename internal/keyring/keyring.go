// Package keyring keeps hark's subscribe token per server: in the
// desktop's Secret Service (org.freedesktop.secrets: gnome-keyring,
// KWallet, KeePassXC) when there is one, else in a file only its owner can
// read.
//
// It talks to the Secret Service over D-Bus itself, with godbus, rather
// than through a keyring library: those use the process-wide shared
// session-bus connection, which tests cannot point at a private bus, and
// which the tray already shares with systray.
//
// Secrets travel with the "plain" session algorithm, as libsecret and
// go-keyring do on the per-user session bus: the bus is reachable only by
// the user, and transport encryption would protect against nobody who
// could not read the keyring anyway.
package keyring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/godbus/dbus/v5"
)

// Sentinel errors, to test with errors.Is.
var (
	// ErrNoService: nobody owns org.freedesktop.secrets on the bus and no
	// service file can activate it.
	ErrNoService = errors.New("no Secret Service (org.freedesktop.secrets) on the D-Bus session bus")
	// ErrNotFound: no token is stored for that server.
	ErrNotFound = errors.New("no token stored")
	// ErrLocked: the keyring is locked and unlocking it needs the user
	// (a password prompt), which a background app must not start on its
	// own.
	ErrLocked = errors.New("the keyring is locked")
	// ErrNoCollection: the Secret Service has no default keyring, and
	// creating one needs the user to choose its password.
	ErrNoCollection = errors.New("the Secret Service has no default keyring")
)

// Names of the Secret Service API (freedesktop.org Secret Service 0.2).
const (
	serviceName     = "org.freedesktop.secrets"
	servicePath     = dbus.ObjectPath("/org/freedesktop/secrets")
	loginPath       = dbus.ObjectPath("/org/freedesktop/secrets/collection/login")
	serviceIface    = "org.freedesktop.Secret.Service"
	collectionIface = "org.freedesktop.Secret.Collection"
	itemIface       = "org.freedesktop.Secret.Item"
	sessionIface    = "org.freedesktop.Secret.Session"
	propsIface      = "org.freedesktop.DBus.Properties"
	noPrompt        = dbus.ObjectPath("/") // "no prompt needed", and "no object"

	errIsLocked     = "org.freedesktop.Secret.Error.IsLocked"
	errNoSuchObject = "org.freedesktop.Secret.Error.NoSuchObject"
	errUnknownObj   = "org.freedesktop.DBus.Error.UnknownObject"
)

// closeTimeout bounds closing a session, which is done even when the
// caller's context has ended.
const closeTimeout = 5 * time.Second

// Item attributes and label. "application" keeps hark's items apart from
// other programs' in a shared keyring; "server" keeps one per server.
const (
	attrApp     = "application"
	appName     = "hark"
	attrServer  = "server"
	contentType = "text/plain"
)

// unlockHint is what the user must do about ErrLocked.
const unlockHint = "unlock your keyring (log in to the desktop session) and retry"

// wireSecret is the Secret Service's Secret struct, (oayays).
type wireSecret struct {
	Session     dbus.ObjectPath
	Parameters  []byte
	Value       []byte
	ContentType string
}

// SecretService is a client of the Secret Service on one bus connection,
// which the caller owns and closes. Its methods may be called from
// several goroutines.
type SecretService struct {
	conn *dbus.Conn
}

// Connect checks that the Secret Service runs on conn, or can be
// activated there, and starts it if it must. The error wraps ErrNoService
// when neither is the case. ctx bounds the checks and the activation.
func Connect(ctx context.Context, conn *dbus.Conn) (*SecretService, error) {
	bus := conn.BusObject()
	var owned bool
	if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, serviceName).Store(&owned); err != nil {
		return nil, fmt.Errorf("ask the bus whether %s runs: %w", serviceName, err)
	}
	if !owned {
		// Only a name with a service file can start on demand; calling
		// it otherwise would just fail, and checking first keeps that
		// failure distinct from a service that starts but breaks.
		var names []string
		if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&names); err != nil {
			return nil, fmt.Errorf("ask the bus whether %s can be started: %w", serviceName, err)
		}
		if !slices.Contains(names, serviceName) {
			return nil, fmt.Errorf("%w: nothing runs or can start it (install gnome-keyring or KWallet, or use a token file)", ErrNoService)
		}
		var code uint32
		if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.StartServiceByName", 0, serviceName, uint32(0)).Store(&code); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("start %s: %w", serviceName, err)
			}
			return nil, fmt.Errorf("%w: it is installed but did not start: %v", ErrNoService, err)
		}
	}
	return &SecretService{conn: conn}, nil
}

func attributes(server string) map[string]string {
	return map[string]string{attrApp: appName, attrServer: server}
}

// call makes a method call and stores the reply, naming the method in the
// error.
func (s *SecretService) call(ctx context.Context, path dbus.ObjectPath, method string, args []any, out ...any) error {
	err := s.conn.Object(serviceName, path).CallWithContext(ctx, method, 0, args...).Store(out...)
	if err != nil {
		return fmt.Errorf("the Secret Service's %s on %s: %w", method, path, err)
	}
	return nil
}

// openSession opens a "plain" session for transferring one secret; the
// caller closes it. Sessions live as long as the connection otherwise,
// and ours may be long-lived (the tray's).
func (s *SecretService) openSession(ctx context.Context) (dbus.ObjectPath, error) {
	var out dbus.Variant
	var path dbus.ObjectPath
	if err := s.call(ctx, servicePath, serviceIface+".OpenSession", []any{"plain", dbus.MakeVariant("")}, &out, &path); err != nil {
		return "", err
	}
	return path, nil
}

func (s *SecretService) closeSession(path dbus.ObjectPath) {
	// Not bound to the caller's ctx, which may have ended: a session left
	// open only costs the service memory until we disconnect, so a short
	// bound of its own is enough.
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = s.conn.Object(serviceName, path).CallWithContext(ctx, sessionIface+".Close", 0).Err
}

// unlock unlocks objects (items or collections) if the service can do so
// without asking the user, and returns those now unlocked. A prompt means
// the user must type a password: we never start one (see ErrLocked).
func (s *SecretService) unlock(ctx context.Context, objs []dbus.ObjectPath) ([]dbus.ObjectPath, error) {
	var unlocked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := s.call(ctx, servicePath, serviceIface+".Unlock", []any{objs}, &unlocked, &prompt); err != nil {
		return nil, err
	}
	if prompt != noPrompt {
		return nil, fmt.Errorf("%w: %s", ErrLocked, unlockHint)
	}
	return unlocked, nil
}

// find returns the unlocked items holding server's token, unlocking
// locked ones if that needs no prompt.
func (s *SecretService) find(ctx context.Context, server string) ([]dbus.ObjectPath, error) {
	var unlocked, locked []dbus.ObjectPath
	if err := s.call(ctx, servicePath, serviceIface+".SearchItems", []any{attributes(server)}, &unlocked, &locked); err != nil {
		return nil, err
	}
	if len(locked) > 0 {
		more, err := s.unlock(ctx, locked)
		if err != nil {
			return nil, err
		}
		unlocked = append(unlocked, more...)
	}
	return unlocked, nil
}

// Get returns the token stored for server. The error wraps ErrNotFound
// when there is none, and ErrLocked when it is in a locked keyring.
func (s *SecretService) Get(ctx context.Context, server string) (string, error) {
	items, err := s.find(ctx, server)
	if err != nil {
		return "", err
	}
	if len(items) == 0 {
		return "", fmt.Errorf("%w for %s in the Secret Service", ErrNotFound, server)
	}
	item := s.newest(ctx, items)
	session, err := s.openSession(ctx)
	if err != nil {
		return "", err
	}
	defer s.closeSession(session)
	var sec wireSecret
	if err := s.call(ctx, item, itemIface+".GetSecret", []any{session}, &sec); err != nil {
		if isDBusError(err, errIsLocked) {
			return "", fmt.Errorf("%w: %s", ErrLocked, unlockHint)
		}
		if isDBusError(err, errNoSuchObject, errUnknownObj) {
			// Deleted between the search and now.
			return "", fmt.Errorf("%w for %s in the Secret Service", ErrNotFound, server)
		}
		return "", err
	}
	return string(sec.Value), nil
}

// newest picks the most recently modified item. There is normally one,
// but Set replaces only within one collection: an older copy can remain
// in another (say, before the user changed the default keyring).
func (s *SecretService) newest(ctx context.Context, items []dbus.ObjectPath) dbus.ObjectPath {
	best, bestMod := items[0], uint64(0)
	if len(items) == 1 {
		return best
	}
	for _, it := range items {
		v, err := s.property(ctx, it, itemIface, "Modified")
		if err != nil {
			continue // deleted meanwhile, or the service does not say: not the newest
		}
		if m, ok := v.Value().(uint64); ok && m > bestMod {
			best, bestMod = it, m
		}
	}
	return best
}

// Set stores secret as the token for server, replacing any earlier one
// in the same keyring. It uses the default keyring (see collection). The
// error wraps ErrLocked when that keyring is locked and only the user can
// unlock it.
func (s *SecretService) Set(ctx context.Context, server, secret string) error {
	if server == "" {
		return errors.New("store a token: empty server address")
	}
	coll, err := s.collection(ctx)
	if err != nil {
		return err
	}
	locked, err := s.locked(ctx, coll)
	if err != nil {
		return err
	}
	if locked {
		if _, err := s.unlock(ctx, []dbus.ObjectPath{coll}); err != nil {
			return err
		}
	}
	session, err := s.openSession(ctx)
	if err != nil {
		return err
	}
	defer s.closeSession(session)
	props := map[string]dbus.Variant{
		itemIface + ".Label":      dbus.MakeVariant("hark token for " + server),
		itemIface + ".Attributes": dbus.MakeVariant(attributes(server)),
	}
	sec := wireSecret{Session: session, Parameters: []byte{}, Value: []byte(secret), ContentType: contentType}
	var item, prompt dbus.ObjectPath
	if err := s.call(ctx, coll, collectionIface+".CreateItem", []any{props, sec, true}, &item, &prompt); err != nil {
		if isDBusError(err, errIsLocked) {
			return fmt.Errorf("%w: %s", ErrLocked, unlockHint)
		}
		return err
	}
	if prompt != noPrompt {
		// The spec allows a prompt here (KWallet may ask whether hark
		// may write); we do not answer it, so nothing was stored.
		return fmt.Errorf("%w: the Secret Service wants to ask you before storing hark's token; %s", ErrLocked, unlockHint)
	}
	return nil
}

// Delete removes the token stored for server. The error wraps ErrNotFound
// when there was none, so that callers who do not care can ignore it.
func (s *SecretService) Delete(ctx context.Context, server string) error {
	items, err := s.find(ctx, server)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return fmt.Errorf("%w for %s in the Secret Service", ErrNotFound, server)
	}
	for _, it := range items {
		var prompt dbus.ObjectPath
		if err := s.call(ctx, it, itemIface+".Delete", nil, &prompt); err != nil {
			if isDBusError(err, errIsLocked) {
				return fmt.Errorf("%w: %s", ErrLocked, unlockHint)
			}
			return err
		}
		if prompt != noPrompt {
			return fmt.Errorf("%w: the Secret Service wants to ask you before deleting hark's token; %s", ErrLocked, unlockHint)
		}
	}
	return nil
}

// collection returns the keyring Set stores into: the one the "default"
// alias names; else the "login" keyring, which is the default on GNOME
// although some setups lose the alias; else a new keyring made the
// default, if the service can create one without asking for its password.
// The in-memory "session" keyring is deliberately not a fallback: a token
// stored there would vanish at logout while Save reported it saved.
func (s *SecretService) collection(ctx context.Context) (dbus.ObjectPath, error) {
	var coll dbus.ObjectPath
	if err := s.call(ctx, servicePath, serviceIface+".ReadAlias", []any{"default"}, &coll); err != nil {
		return "", err
	}
	if coll != noPrompt {
		return coll, nil
	}
	v, err := s.property(ctx, servicePath, serviceIface, "Collections")
	if err != nil {
		return "", err
	}
	if all, ok := v.Value().([]dbus.ObjectPath); ok && slices.Contains(all, loginPath) {
		return loginPath, nil
	}
	props := map[string]dbus.Variant{collectionIface + ".Label": dbus.MakeVariant("Login")}
	var prompt dbus.ObjectPath
	if err := s.call(ctx, servicePath, serviceIface+".CreateCollection", []any{props, "default"}, &coll, &prompt); err != nil {
		return "", err
	}
	if prompt != noPrompt || coll == noPrompt {
		return "", fmt.Errorf("%w: create one (GNOME: the Passwords and Keys app, \"seahorse\"; KDE: KWallet Manager) and make it the default, or use a token file", ErrNoCollection)
	}
	return coll, nil
}

// property reads a property with ctx (godbus's GetProperty takes none).
func (s *SecretService) property(ctx context.Context, path dbus.ObjectPath, iface, name string) (dbus.Variant, error) {
	var v dbus.Variant
	err := s.call(ctx, path, propsIface+".Get", []any{iface, name}, &v)
	return v, err
}

func (s *SecretService) locked(ctx context.Context, coll dbus.ObjectPath) (bool, error) {
	v, err := s.property(ctx, coll, collectionIface, "Locked")
	if err != nil {
		return false, err
	}
	b, ok := v.Value().(bool)
	if !ok {
		return false, fmt.Errorf("the Secret Service's %s: Locked is %s, want b", coll, v.Signature())
	}
	return b, nil
}

func isDBusError(err error, names ...string) bool {
	var e dbus.Error
	return errors.As(err, &e) && slices.Contains(names, e.Name)
}
