package caddymodule

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/certmagic"
	"github.com/spf13/cobra"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/provider"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "proxycast",
		Usage: "<login|import-cookie|ui> [flags]",
		Short: "Adds iFlow accounts for the proxycast handler, and serves its management page",
		Long: `
Adds iFlow accounts for the proxycast handler, and serves its management page.

  caddy proxycast login iflow        logs in through the browser and stores an OAuth token file
  caddy proxycast import-cookie      checks a platform.iflow.cn cookie and stores the key it yields
  caddy proxycast ui                 serves the management page on 127.0.0.1:2020 for a running Caddy

Both store what they obtain where a running Caddy looks for it: a relative
--token-file is a key under proxycast/ in Caddy's storage (the data directory
with the default file storage; use --config to take the storage from your
config), an absolute one is a plain file.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(loginCommand(), importCookieCommand(), uiCommand())
		},
	})
}

func addStorageFlags(cmd *cobra.Command) {
	cmd.Flags().StringP("config", "c", "", "Caddy config whose storage to use (default: Caddy's default storage)")
	cmd.Flags().StringP("adapter", "a", "", "Name of the config adapter for --config")
}

func loginCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login iflow",
		Short: "Logs in to iFlow in the browser and stores the OAuth token file",
		Long: `
Opens iFlow's login page (or prints its URL with --no-browser), waits for the
browser to come back to a local callback on localhost, exchanges the code for
tokens, fetches the account's API key and writes the token file that a
credential with "auth_type oauth" and the same token_file uses.`,
		Args: loginArgs,
	}
	cmd.Flags().String("token-file", "iflow/oauth.json", "where to store the token: relative = key in Caddy's storage under proxycast/, absolute = file")
	cmd.Flags().Int("port", iflow.DefaultRedirectPort, "port of the local callback on localhost (127.0.0.1 and ::1)")
	cmd.Flags().Bool("no-browser", false, "print the login URL instead of opening a browser")
	cmd.Flags().Duration("timeout", 5*time.Minute, "how long to wait for the login")
	cmd.Flags().String("oauth-base", iflow.DefaultOAuthBase, "iFlow's OAuth base URL")
	cmd.Flags().String("admin", "", "log in for a running Caddy through its admin API at this address (e.g. localhost:2019 or unix//run/caddy/admin.sock)")
	cmd.Flags().String("id", "iflow-oauth", "with --admin: the credential to log in (added if it does not exist)")
	addStorageFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		fl := caddycmd.Flags{FlagSet: cmd.Flags()}
		if port := fl.Int("port"); port < 0 || port > 65535 {
			return fmt.Errorf("--port %d is not a port; give one from 1 to 65535, such as %d", port, iflow.DefaultRedirectPort)
		}
		if fl.Duration("timeout") <= 0 {
			return fmt.Errorf("--timeout must be positive, such as 5m")
		}
		if addr := fl.String("admin"); addr != "" {
			var browser func(string) error
			if !fl.Bool("no-browser") {
				browser = openBrowser
			}
			tokenFile := ""
			if cmd.Flags().Changed("token-file") {
				tokenFile = fl.String("token-file")
			}
			// Ctrl-C cancels the login in Caddy too, which frees the
			// callback port at once instead of at the login's timeout.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return loginViaAdmin(ctx, addr, args[0], fl.String("id"), tokenFile, fl.Int("port"), fl.Duration("timeout"), browser, cmd.OutOrStdout())
		}
		storage, err := commandStorage(fl.String("config"), fl.String("adapter"))
		if err != nil {
			return err
		}
		opts := loginOptions{
			provider:  &iflow.Provider{OAuthBase: strings.TrimRight(fl.String("oauth-base"), "/")},
			tokenFile: fl.String("token-file"),
			port:      fl.Int("port"),
			timeout:   fl.Duration("timeout"),
			storage:   storage,
			out:       cmd.OutOrStdout(),
		}
		if !fl.Bool("no-browser") {
			opts.openBrowser = openBrowser
		}
		_, err = runLogin(cmd.Context(), opts)
		return err
	}
	return cmd
}

// browserLogins are the providers `caddy proxycast login` can log in to.
var browserLogins = []string{"iflow"}

// loginArgs checks that the command names one provider it can log in to,
// and names them when it does not.
func loginArgs(_ *cobra.Command, args []string) error {
	names := strings.Join(browserLogins, ", ")
	switch {
	case len(args) == 0:
		return fmt.Errorf("name the provider to log in to: caddy proxycast login %s (providers with a browser login: %s)", browserLogins[0], names)
	case len(args) > 1:
		return fmt.Errorf("name one provider to log in to, not %d (%s): caddy proxycast login %s", len(args), strings.Join(args, " "), browserLogins[0])
	case !slices.Contains(browserLogins, args[0]):
		return fmt.Errorf("unknown provider %q: the providers with a browser login are %s", args[0], names)
	}
	return nil
}

type loginOptions struct {
	provider  *iflow.Provider
	tokenFile string
	port      int
	timeout   time.Duration
	storage   certmagic.Storage
	out       io.Writer
	// openBrowser opens the login URL; nil prints it only.
	openBrowser func(url string) error
}

// runLogin runs one browser login and stores its token file.
func runLogin(ctx context.Context, o loginOptions) (iflow.Token, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if strings.TrimSpace(o.tokenFile) == "" {
		return iflow.Token{}, errors.New("--token-file is empty: name the token file, such as iflow/oauth.json")
	}
	loc, err := locateState(o.storage, o.tokenFile, "iflow", "")
	if err != nil {
		return iflow.Token{}, fmt.Errorf("--token-file %q: %w", o.tokenFile, err)
	}
	holder := loginHolder{By: "cli", Provider: "iflow", ExpiresAt: time.Now().Add(o.timeout)}
	ls, err := startLoginServer(o.provider, o.port, nil, holder)
	if err != nil {
		return iflow.Token{}, err
	}
	defer ls.Close()
	fmt.Fprintf(o.out, "Log in to iFlow at:\n\n  %s\n\nWaiting for the browser to come back to %s …\n", ls.URL, ls.Redirect)
	if o.openBrowser != nil {
		if err := o.openBrowser(ls.URL); err != nil {
			fmt.Fprintf(o.out, "(could not open a browser: %v; open the URL yourself)\n", err)
		}
	}
	res := ls.Wait(ctx, o.timeout)
	if res.err != nil {
		return iflow.Token{}, res.err
	}
	tok, err := iflow.ParseToken(res.state)
	if err != nil {
		return iflow.Token{}, err
	}
	if err := storeState(ctx, loc, res.state, isTokenFile(func(old []byte) error { _, err := iflow.ParseToken(old); return err })); err != nil {
		return iflow.Token{}, err
	}
	fmt.Fprintf(o.out, "\nLogged in as %s. Token stored in %s.\nUse it with:\n\n  credential iflow-oauth {\n    auth_type oauth\n    token_file %s\n  }\n",
		res.account, describeLocation(loc, o.storage), o.tokenFile)
	return tok, nil
}

func describeLocation(loc stateLocation, storage certmagic.Storage) string {
	if fs, ok := storage.(*certmagic.FileStorage); ok && loc.store == storage {
		return loc.where + " (under " + fs.Path + ")"
	}
	return loc.where
}

func importCookieCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import-cookie",
		Short: "Checks a platform.iflow.cn cookie and stores the API key it yields",
		Long: `
Checks a cookie of platform.iflow.cn against the platform, issues the
account's API key (the account's previous key stops working) and stores it
where the credential with that --id finds it, so Caddy does not issue
another. Without --cookie the cookie is read from standard input, which
keeps it out of your shell history.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().String("id", "", "id of the cookie credential in your config (required)")
	cmd.Flags().String("cookie", "", "the Cookie header value (default: read from standard input)")
	cmd.Flags().String("platform-base", iflow.DefaultPlatformBase, "iFlow's platform base URL")
	cmd.Flags().String("admin", "", "add or update the credential in a running Caddy through its admin API at this address")
	addStorageFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		fl := caddycmd.Flags{FlagSet: cmd.Flags()}
		id := fl.String("id")
		// Every flag is checked before the cookie is asked for: a person
		// should not paste it only to learn that the command was wrong.
		if strings.TrimSpace(id) == "" {
			return errors.New("--id is required: the id of the cookie credential, such as --id iflow-cookie-1")
		}
		readCookie := func() (string, error) {
			if c := fl.String("cookie"); c != "" {
				return c, nil
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Paste the Cookie header of platform.iflow.cn and press Enter:")
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && line == "" {
				return "", errors.New("no cookie on standard input: paste it, or pass --cookie")
			}
			return strings.TrimSpace(line), nil
		}
		if addr := fl.String("admin"); addr != "" {
			exists, err := checkCookieTarget(addr, "iflow", id)
			if err != nil {
				return err
			}
			cookies, err := readCookie()
			if err != nil {
				return err
			}
			return importCookieViaAdmin(addr, "iflow", id, cookies, exists, cmd.OutOrStdout())
		}
		base := fl.String("platform-base")
		if err := checkBaseURL(base); err != nil {
			return fmt.Errorf("--platform-base: %w", err)
		}
		storage, err := commandStorage(fl.String("config"), fl.String("adapter"))
		if err != nil {
			return err
		}
		if _, err := locateState(storage, "", "iflow", id); err != nil {
			return err
		}
		cookies, err := readCookie()
		if err != nil {
			return err
		}
		p := &iflow.Provider{PlatformBase: strings.TrimRight(base, "/")}
		return importCookie(cmd.Context(), p, storage, id, cookies, cmd.OutOrStdout())
	}
	return cmd
}

// importCookie issues the key of a cookie credential and stores it as the
// credential's state.
func importCookie(ctx context.Context, p provider.Provider, storage certmagic.Storage, id, cookies string, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if strings.TrimSpace(id) == "" {
		return errors.New("--id is required: the id of the cookie credential in your config")
	}
	auth, err := p.NewAuth(provider.CredentialSpec{ID: id, AuthType: provider.AuthCookie, Cookies: cookies})
	if err != nil {
		return err
	}
	// Everything that can be checked is, before the platform is asked:
	// issuing the key ends the account's previous one.
	loc, err := locateState(storage, auth.StateKey, "iflow", id)
	if err != nil {
		return err
	}
	state, err := auth.Renewer.Renew(ctx, nil, nil)
	if err != nil {
		return err
	}
	key, err := auth.Renewer.Key(state)
	if err != nil {
		return err
	}
	if err := storeState(ctx, loc, state, nil); err != nil {
		return fmt.Errorf("the platform issued a new key (the previous one no longer works), but storing it failed: %w; run the command again once the storage works", err)
	}
	fmt.Fprintf(out, "The cookie is good: the account's API key (named %q) was issued anew, valid until %s, and stored in %s.\n"+
		"The account's previous API key no longer works. Use the cookie with:\n\n"+
		"  credential %s {\n    auth_type cookie\n    cookies {env.IFLOW_COOKIE}\n  }\n",
		key.Account, key.ExpiresAt.Local().Format(time.DateTime), describeLocation(loc, storage), id)
	return nil
}

// adminCall sends one request to a running Caddy's admin API.
func adminCall(addr, method, uri string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, rd)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// loginViaAdmin has a running Caddy do a browser login and waits for it.
func loginViaAdmin(ctx context.Context, addr, prov, id, tokenFile string, port int, timeout time.Duration, browser func(string) error, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	req := map[string]any{"id": id, "port": port, "timeout": timeout.String()}
	if tokenFile != "" {
		req["token_file"] = tokenFile
	}
	raw, err := adminCall(addr, http.MethodPost, "/proxycast/oauth/"+prov, req)
	if err != nil {
		return err
	}
	var start struct{ URL, State, Redirect string }
	if err := json.Unmarshal(raw, &start); err != nil || start.URL == "" {
		return fmt.Errorf("unexpected answer from the admin API: %s", raw)
	}
	fmt.Fprintf(out, "Log in to iFlow at:\n\n  %s\n\nThe running Caddy waits for the browser at %s (Ctrl-C cancels) …\n", start.URL, start.Redirect)
	if browser != nil {
		if err := browser(start.URL); err != nil {
			fmt.Fprintf(out, "(could not open a browser: %v; open the URL yourself)\n", err)
		}
	}
	deadline := time.Now().Add(timeout + 5*time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			// Left pending, the login would hold the callback port
			// until its timeout.
			if _, err := adminCall(addr, http.MethodDelete, "/proxycast/oauth/"+prov+"/"+start.State, nil); err != nil {
				return fmt.Errorf("login interrupted (%v), and canceling it in Caddy failed: %w", ctx.Err(), err)
			}
			return errors.New("login canceled: the running Caddy no longer waits for the browser")
		case <-time.After(500 * time.Millisecond):
		}
		raw, err := adminCall(addr, http.MethodGet, "/proxycast/oauth/"+prov+"/"+start.State, nil)
		if err != nil {
			return err
		}
		var st struct{ State, Error, Account string }
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("unexpected answer from the admin API: %s", raw)
		}
		switch st.State {
		case "done":
			fmt.Fprintf(out, "\nLogged in as %s; credential %q is in use.\n", st.Account, id)
			return nil
		case "failed":
			return fmt.Errorf("the login failed: %s", st.Error)
		}
	}
	return fmt.Errorf("no login within %s", timeout)
}

// checkCookieTarget asks a running Caddy whether credential id exists,
// and refuses one that is not a cookie credential, or an id the admin API
// would not add.
func checkCookieTarget(addr, prov, id string) (exists bool, err error) {
	raw, err := adminCall(addr, http.MethodGet, "/proxycast/credentials/"+prov+"/"+url.PathEscape(id), nil)
	switch {
	case err == nil:
		var v struct {
			AuthType string `json:"auth_type"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return false, fmt.Errorf("unexpected answer from the admin API: %s", raw)
		}
		if v.AuthType != provider.AuthCookie {
			return false, fmt.Errorf("credential %q has auth_type %s, not cookie; choose another --id", id, v.AuthType)
		}
		return true, nil
	case strings.Contains(err.Error(), "HTTP 404"):
		if err := checkID(id); err != nil {
			return false, fmt.Errorf("--id: %w", err)
		}
		return false, nil
	}
	return false, err
}

// importCookieViaAdmin adds a cookie credential to a running Caddy, or
// gives an existing one the new cookie; Caddy checks it with the platform.
func importCookieViaAdmin(addr, prov, id, cookies string, exists bool, out io.Writer) error {
	var err error
	if exists {
		_, err = adminCall(addr, http.MethodPatch, "/proxycast/credentials/"+prov+"/"+url.PathEscape(id), map[string]any{"cookies": cookies})
	} else {
		_, err = adminCall(addr, http.MethodPost, "/proxycast/credentials/"+prov,
			map[string]any{"id": id, "auth_type": provider.AuthCookie, "cookies": cookies})
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "The cookie is good; credential %q is in use (the account's previous API key no longer works).\n", id)
	return nil
}

// commandStorage is the storage of the config file, if one is given, or
// Caddy's default storage.
func commandStorage(configFile, adapter string) (certmagic.Storage, error) {
	if configFile == "" {
		return &certmagic.FileStorage{Path: caddy.AppDataDir()}, nil
	}
	raw, _, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return nil, err
	}
	var cfg caddy.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("reading %s: %w", configFile, err)
	}
	if cfg.StorageRaw == nil {
		return &certmagic.FileStorage{Path: caddy.AppDataDir()}, nil
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	mod, err := ctx.LoadModule(&cfg, "StorageRaw")
	if err != nil {
		return nil, fmt.Errorf("loading the storage of %s: %w", configFile, err)
	}
	return mod.(caddy.StorageConverter).CertMagicStorage()
}

func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
