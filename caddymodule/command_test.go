package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

// browser plays the user: it opens the login URL and follows iFlow's
// redirect back to the local callback, as a browser would.
func browser(t *testing.T) func(string) error {
	return func(u string) error {
		go func() {
			resp, err := http.Get(u)
			if err != nil {
				t.Logf("browser: %v", err)
				return
			}
			resp.Body.Close()
		}()
		return nil
	}
}

func TestLoginCommand(t *testing.T) {
	srv := iflowtest.NewServer()
	defer srv.Close()
	acct := srv.AddAccount("login@example.com", "")
	p := &iflow.Provider{OAuthBase: srv.OAuthBase()}

	t.Run("stores the token in storage", func(t *testing.T) {
		root := t.TempDir()
		var out bytes.Buffer
		tok, err := runLogin(context.Background(), loginOptions{
			provider: p, tokenFile: "iflow/login.json", port: 0, timeout: 5 * time.Second,
			storage: &certmagic.FileStorage{Path: root}, out: &out, openBrowser: browser(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(root, "proxycast/iflow/login.json"))
		if err != nil {
			t.Fatal(err)
		}
		stored, err := iflow.ParseToken(raw)
		if err != nil || stored.APIKey != acct.APIKey() || stored.RefreshToken != tok.RefreshToken || stored.Account != "login@example.com" {
			t.Errorf("stored token %+v, %v", stored.Account, err)
		}
		if fi, _ := os.Stat(filepath.Join(root, "proxycast/iflow/login.json")); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %o", fi.Mode().Perm())
		}
		if !strings.Contains(out.String(), "token_file iflow/login.json") || strings.Contains(out.String(), tok.RefreshToken) {
			t.Errorf("output does not show how to use the token, or shows a secret:\n%s", out.String())
		}
	})
	t.Run("absolute token file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "abs.json")
		if _, err := runLogin(context.Background(), loginOptions{
			provider: p, tokenFile: path, port: 0, timeout: 5 * time.Second,
			storage: &certmagic.FileStorage{Path: t.TempDir()}, out: new(bytes.Buffer), openBrowser: browser(t),
		}); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := iflow.ParseToken(raw); err != nil {
			t.Error(err)
		}
	})
	t.Run("iflow refuses", func(t *testing.T) {
		srv.SetAuthorizeError("access_denied")
		defer srv.SetAuthorizeError("")
		_, err := runLogin(context.Background(), loginOptions{
			provider: p, tokenFile: "x.json", port: 0, timeout: 5 * time.Second,
			storage: &certmagic.FileStorage{Path: t.TempDir()}, out: new(bytes.Buffer), openBrowser: browser(t),
		})
		if err == nil || !strings.Contains(err.Error(), "iflow refused the login: access_denied") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("stray callback", func(t *testing.T) {
		// Any web page can make the browser ask for the callback URL: such
		// a request is turned away, and the login goes on.
		stray := 0
		play := func(u string) error {
			parsed, _ := url.Parse(u)
			if resp, err := http.Get(parsed.Query().Get("redirect") + "?code=stolen&state=not-ours"); err == nil {
				stray = resp.StatusCode
				resp.Body.Close()
			}
			return browser(t)(u)
		}
		if _, err := runLogin(context.Background(), loginOptions{
			provider: p, tokenFile: "x.json", port: 0, timeout: 5 * time.Second,
			storage: &certmagic.FileStorage{Path: t.TempDir()}, out: new(bytes.Buffer), openBrowser: play,
		}); err != nil {
			t.Fatalf("a stray callback ended the login: %v", err)
		}
		if stray != http.StatusBadRequest {
			t.Errorf("stray callback answered %d, want 400", stray)
		}
	})
	t.Run("empty token file", func(t *testing.T) {
		_, err := runLogin(context.Background(), loginOptions{
			provider: p, tokenFile: " ", port: 0, timeout: time.Second,
			storage: &certmagic.FileStorage{Path: t.TempDir()}, out: new(bytes.Buffer),
		})
		if err == nil || !strings.Contains(err.Error(), "--token-file is empty") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		_, err := runLogin(context.Background(), loginOptions{
			provider: p, tokenFile: "x.json", port: 0, timeout: 100 * time.Millisecond,
			storage: &certmagic.FileStorage{Path: t.TempDir()}, out: new(bytes.Buffer),
		})
		if err == nil || !strings.Contains(err.Error(), "no login within 100ms") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("through the cobra command", func(t *testing.T) {
		root := t.TempDir()
		path := filepath.Join(root, "cli.json")
		cmd := loginCommand()
		r, w, _ := os.Pipe()
		cmd.SetOut(w)
		cmd.SetArgs([]string{"iflow", "--no-browser", "--port", "0", "--timeout", "5s",
			"--oauth-base", srv.OAuthBase(), "--token-file", path})
		done := make(chan error, 1)
		go func() { done <- cmd.ExecuteContext(context.Background()); w.Close() }()
		// Read the printed URL and play the browser.
		buf := make([]byte, 4096)
		n, _ := r.Read(buf)
		m := regexp.MustCompile(`http://\S+/oauth\?\S+`).FindString(string(buf[:n]))
		if m == "" {
			t.Fatalf("no login URL printed: %q", buf[:n])
		}
		_ = browser(t)(m)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Error(err)
		}
	})
	t.Run("unknown provider", func(t *testing.T) {
		cmd := loginCommand()
		cmd.SetArgs([]string{"openai"})
		cmd.SetOut(new(bytes.Buffer))
		cmd.SetErr(new(bytes.Buffer))
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `unknown provider "openai"`) {
			t.Errorf("error %v", err)
		}
	})
}

func TestImportCookie(t *testing.T) {
	srv := iflowtest.NewServer()
	defer srv.Close()
	acct := srv.AddCookieAccount("bx-import")
	p := &iflow.Provider{PlatformBase: srv.PlatformBase()}
	root := t.TempDir()
	var out bytes.Buffer
	if err := importCookie(context.Background(), p, &certmagic.FileStorage{Path: root}, "cookie-1", "a=b; BXAuth=bx-import", &out); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "proxycast/state/iflow/cookie-1.json"))
	if err != nil || !strings.Contains(string(raw), acct.APIKey()) {
		t.Fatalf("state %s, %v", raw, err)
	}
	if strings.Contains(out.String(), acct.APIKey()) || strings.Contains(out.String(), "bx-import") {
		t.Errorf("output shows a secret:\n%s", out.String())
	}
	if err := importCookie(context.Background(), p, &certmagic.FileStorage{Path: root}, "cookie-2", "BXAuth=unknown", new(bytes.Buffer)); err == nil ||
		!strings.Contains(err.Error(), "fresh Cookie") {
		t.Errorf("unknown cookie: %v", err)
	}
	if err := importCookie(context.Background(), p, &certmagic.FileStorage{Path: root}, "", "BXAuth=bx-import", new(bytes.Buffer)); err == nil ||
		!strings.Contains(err.Error(), "--id") {
		t.Errorf("missing id: %v", err)
	}
	// An id that cannot name a state file is refused before the platform
	// issues a key, which would end the account's key in use.
	before := srv.KeyRegenerations()
	if err := importCookie(context.Background(), p, &certmagic.FileStorage{Path: root}, "team/one", "BXAuth=bx-import", new(bytes.Buffer)); err == nil {
		t.Error("an id with a slash was taken")
	}
	if n := srv.KeyRegenerations(); n != before {
		t.Errorf("a refused import issued %d keys", n-before)
	}
}

// TestLoginListensOnBothLoopbacks: the redirect names localhost, which a
// browser may try on ::1: the callback is served there too, and a port
// another program holds on ::1 is refused.
func TestLoginListensOnBothLoopbacks(t *testing.T) {
	other, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback here")
	}
	p := &iflow.Provider{OAuthBase: "http://127.0.0.1:1"}
	held := other.Addr().(*net.TCPAddr).Port
	if ls, err := startLoginServer(p, held, nil, loginHolder{}); err == nil {
		ls.Close()
		t.Errorf("listened on port %d although another program holds [::1]:%d", held, held)
	} else if !strings.Contains(err.Error(), "another program holds it") {
		t.Errorf("error %v", err)
	}
	other.Close()

	ls, err := startLoginServer(p, 0, nil, loginHolder{})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	u, _ := url.Parse(ls.Redirect)
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		resp, err := http.Get("http://" + host + ":" + u.Port() + "/oauth2callback?state=not-ours")
		if err != nil {
			t.Errorf("%s: %v", host, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want the login server's 400", host, resp.StatusCode)
		}
	}
}

func TestLoginArgs(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "name the provider to log in to: caddy proxycast login iflow (providers with a browser login: iflow)"},
		{[]string{"iflow", "extra"}, "name one provider to log in to, not 2"},
		{[]string{"openai"}, `unknown provider "openai": the providers with a browser login are iflow`},
		{[]string{"iflow", "--port", "70000"}, "--port 70000 is not a port"},
		{[]string{"iflow", "--timeout", "0s"}, "--timeout must be positive"},
	}
	for _, tc := range tests {
		cmd := loginCommand()
		cmd.SetArgs(append([]string{}, tc.args...)) // nil would mean os.Args
		cmd.SetOut(new(bytes.Buffer))
		cmd.SetErr(new(bytes.Buffer))
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// unreadable fails the test that reads it: flags are checked before the
// cookie is asked for.
type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("the command read standard input before its flags were checked")
	return 0, io.EOF
}

func TestImportCookieChecksFlagsFirst(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such.Caddyfile")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no id", nil, "--id is required"},
		{"blank id", []string{"--id", " "}, "--id is required"},
		{"id that names no state file", []string{"--id", "team/one"}, "slash"},
		{"bad platform base", []string{"--id", "c", "--platform-base", "ftp://platform"}, "--platform-base"},
		{"config that does not load", []string{"--id", "c", "--config", missing}, "no-such.Caddyfile"},
		{"admin that does not answer", []string{"--id", "c", "--admin", "127.0.0.1:1"}, "127.0.0.1:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := importCookieCommand()
			var stderr bytes.Buffer
			cmd.SetArgs(append([]string{}, tc.args...)) // nil would mean os.Args
			cmd.SetIn(unreadable{t})
			cmd.SetOut(new(bytes.Buffer))
			cmd.SetErr(&stderr)
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(stderr.String(), "Paste") {
				t.Errorf("asked for the cookie before refusing the flags:\n%s", stderr.String())
			}
		})
	}
}

// blockingLogin is a provider login whose code exchange waits for
// release, to catch a login between its callback and its outcome.
type blockingLogin struct {
	arrived chan struct{}
	release chan struct{}
}

func (b blockingLogin) AuthorizeURL(redirectURL, state string) string {
	return "http://127.0.0.1:1/oauth?state=" + state
}

func (b blockingLogin) CompleteLogin(ctx context.Context, _ *http.Client, code, _ string) ([]byte, string, error) {
	close(b.arrived)
	select {
	case <-b.release:
		return []byte(`{}`), "someone@example.com", nil
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
}

// canListen reports whether port is free on 127.0.0.1 now.
func canListen(port int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// TestLoginServerEnd: End ends a login that waits for the browser and
// frees its port before it returns; a login whose browser came back is
// not ended, but its port is freed all the same.
func TestLoginServerEnd(t *testing.T) {
	p := &iflow.Provider{OAuthBase: "http://127.0.0.1:1"}
	t.Run("waiting", func(t *testing.T) {
		ls, err := startLoginServer(p, 0, nil, loginHolder{})
		if err != nil {
			t.Fatal(err)
		}
		defer ls.Close()
		if !ls.End(errors.New("ended by the test")) {
			t.Fatal("End did not end a waiting login")
		}
		if !canListen(ls.Port) {
			t.Errorf("port %d still taken after End", ls.Port)
		}
		if ls.End(errors.New("again")) {
			t.Error("a login was ended twice")
		}
		if res := ls.Wait(context.Background(), 5*time.Second); res.err == nil || res.err.Error() != "ended by the test" {
			t.Errorf("result %v", res.err)
		}
	})
	t.Run("browser came back", func(t *testing.T) {
		bl := blockingLogin{arrived: make(chan struct{}), release: make(chan struct{})}
		ls, err := startLoginServer(bl, 0, nil, loginHolder{})
		if err != nil {
			t.Fatal(err)
		}
		defer ls.Close()
		page := make(chan int, 1)
		go func() {
			resp, err := http.Get(ls.Redirect + "?code=c&state=" + ls.State)
			if err != nil {
				page <- 0
				return
			}
			resp.Body.Close()
			page <- resp.StatusCode
		}()
		select {
		case <-bl.arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the callback never reached the code exchange")
		}
		if ls.End(errors.New("too late")) {
			t.Error("End ended a login whose browser had come back")
		}
		if !canListen(ls.Port) {
			t.Errorf("port %d still taken after End", ls.Port)
		}
		close(bl.release)
		if res := ls.Wait(context.Background(), 5*time.Second); res.err != nil || res.account != "someone@example.com" {
			t.Errorf("result %+v", res)
		}
		select {
		case status := <-page:
			if status != http.StatusOK {
				t.Errorf("callback page %d", status)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the callback page never came")
		}
	})
}

// TestLoginPortHolder: a login that finds its port taken by another login
// says whose it is and how to free it; the answer is for local names
// only.
func TestLoginPortHolder(t *testing.T) {
	p := &iflow.Provider{OAuthBase: "http://127.0.0.1:1"}
	first, err := startLoginServer(p, 0, nil, loginHolder{By: "admin", Provider: "iflow", Credential: "web-1", Admin: "localhost:2019", ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = startLoginServer(p, first.Port, nil, loginHolder{By: "cli", Provider: "iflow"})
	for _, want := range []string{fmt.Sprintf("port %d", first.Port), "admin API", "localhost:2019", `"web-1"`, "DELETE /proxycast/oauth/iflow/{state}", "--admin localhost:2019"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q in it", err, want)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", first.Port, holderPath), nil)
	req.Host = "attacker.example"
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("holder answered %d to another host name", resp.StatusCode)
		}
	}
	first.Close()

	cli, err := startLoginServer(p, 0, nil, loginHolder{By: "cli", Provider: "iflow", ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := startLoginServer(p, cli.Port, nil, loginHolder{}); err == nil || !strings.Contains(err.Error(), "another `caddy proxycast login iflow`") {
		t.Errorf("error %v", err)
	}
}

// TestLoginServerEndFreesPort: the port is free when End returns, also
// while the login's Wait closes the server at the same moment.
func TestLoginServerEndFreesPort(t *testing.T) {
	p := &iflow.Provider{OAuthBase: "http://127.0.0.1:1"}
	ls, err := startLoginServer(p, 0, nil, loginHolder{})
	if err != nil {
		t.Fatal(err)
	}
	port := ls.Port
	for i := range 1000 {
		go ls.Wait(context.Background(), time.Minute)
		ls.End(errors.New("taken over"))
		next, err := startLoginServer(p, port, nil, loginHolder{})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		ls = next
	}
	ls.Close()
}
