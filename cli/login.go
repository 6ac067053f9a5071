package cli

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/harkapp/hark/internal/keyring"
	"github.com/harkapp/hark/netclient"
	"github.com/harkapp/hark/tray"
)

// loginTimeout bounds checking the token against the server.
const loginTimeout = 30 * time.Second

// Login runs `hark login`: it reads a subscribe token, checks it against
// the server, and keeps it where the tray looks for it (the Secret
// Service, else a 0600 file), as `docker login` and `gh auth login` do.
func Login(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return login(ctx, args, os.Stdin, stdout, stderr)
}

func login(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("login", "[--server tls://host:port] [flags] < token", stderr)
	var f trayFlags
	fs.StringVar(&f.server, "server", "", "the hark server: host:port, tls://host:port, a list of them (servers of one store), or a [[servers]] name from the config file (default: the config file's, else "+DefaultServer+")")
	fs.StringVar(&f.config, "config", "", "the tray's settings `file`, for its server, ca_file and token_file (default $XDG_CONFIG_HOME/hark/config.toml)")
	caFile := fs.String("ca", "", "verify the server against this CA `file` (PEM) (default: the config's ca_file, else the system's roots)")
	tokenFile := fs.String("token-file", "", "store the token in this `file` (mode 0600) instead of the desktop's keyring (default: the config's token_file)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: the token is read from standard input, never from the command line (it would stay in your shell's history)", fs.Arg(0))
	}
	cfgPath, err := f.configPath()
	if err != nil {
		return err
	}
	settings, err := tray.LoadSettings(cfgPath)
	if err != nil {
		return err
	}
	chosen, err := settings.Find(f.server)
	if err != nil {
		return usagef("%s: %v", cfgPath, err)
	}
	server := cmp.Or(chosen.Address, DefaultServer)
	addrs, err := netclient.ParseAddrs(server)
	if err != nil {
		return usagef("--server: %v", err)
	}
	ca, what := *caFile, "--ca"
	if ca == "" && chosen.CAFile != "" {
		if ca, err = tray.ResolvePath(cfgPath, chosen.CAFile); err != nil {
			return err
		}
		what = "ca_file in " + cfgPath
	}
	tlsConf, err := loadTLSConfig(what, ca)
	if err != nil {
		return err
	}
	file := *tokenFile
	if file == "" && chosen.TokenFile != "" {
		if file, err = tray.ResolvePath(cfgPath, chosen.TokenFile); err != nil {
			return err
		}
	}

	// One name for a list (its servers share one store, and its tokens),
	// as the tray looks it up.
	name := tray.KeyringServer(server)
	token, err := readToken(stdin, stderr, name)
	if err != nil {
		return err
	}
	if err := keyring.CheckToken(token); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	addr, err := checkLogin(cctx, addrs, tlsConf, token)
	if err != nil {
		return err
	}

	var where string
	if file != "" {
		// A file the user named: only there, since that is where the tray
		// will look (keyring.Lookup reads only it).
		if err := keyring.WriteTokenFile(file, token); err != nil {
			return err
		}
		where = file
	} else {
		// The keyring, else this server's own default file: the tray
		// looks there for this server only.
		if where, err = keyring.Save(cctx, name, token, ""); err != nil {
			return err
		}
		if where != keyring.FromSecretService {
			fmt.Fprintf(stderr, "hark login: no Secret Service (GNOME Keyring, KWallet) on this session: the token for %s goes in %s, readable by you only\n", name, where)
		}
	}
	_, err = fmt.Fprintf(stdout, "Token accepted by %s and stored in %s. A running tray uses it at its next try (menu: Reconnect now).\n", addr, where)
	return err
}

// readToken reads the token: prompted without echo on a terminal, else
// the first line of standard input (a pipe: `pass hark | hark login`).
func readToken(stdin io.Reader, stderr io.Writer, server string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "Subscribe token for %s (hark token add --scope subscribe on the server): ", server)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the token from standard input: %w", err)
	}
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", usagef("no token on standard input: pipe it in (hark login < file), or run hark login in a terminal to be asked for it")
	}
	return tok, nil
}

// checkLogin presents the token to the server, and returns the address
// that accepted it: only a token the server accepts is stored. Of a list
// (servers of one store, which share their tokens), the first that can
// be reached answers for all.
func checkLogin(ctx context.Context, addrs []netclient.Addr, tlsConf *tls.Config, token string) (netclient.Addr, error) {
	var err error
	for _, addr := range addrs {
		var c *netclient.Conn
		c, err = netclient.Dial(ctx, addr.String(), netclient.Options{TLS: tlsConf, Token: token})
		if err != nil {
			if h := netclient.Hint(err); h != "" {
				return addr, fmt.Errorf("%s: %w", h, err) // a refusal, or a setting to fix: the others would say the same
			}
			err = fmt.Errorf("checking the token with %s: %w", addr, err)
			continue // cannot reach this one: the next may do
		}
		defer c.Close()
		if !c.Authenticated() {
			return addr, fmt.Errorf("%s does not check tokens (a server older than hark's tokens): nothing stored", addr)
		}
		return addr, nil
	}
	return netclient.Addr{}, err
}
