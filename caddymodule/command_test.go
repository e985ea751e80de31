package caddymodule

import (
	"bytes"
	"context"
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
	if ls, err := startLoginServer(p, held, nil); err == nil {
		ls.Close()
		t.Errorf("listened on port %d although another program holds [::1]:%d", held, held)
	} else if !strings.Contains(err.Error(), "another program holds it") {
		t.Errorf("error %v", err)
	}
	other.Close()

	ls, err := startLoginServer(p, 0, nil)
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
