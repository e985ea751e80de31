package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

// writeToken puts a token file for acct in Caddy's storage.
func writeToken(t *testing.T, root, name string, srv *iflowtest.Server, acct *iflowtest.Account, expiresIn time.Duration, withKey bool) (refresh string) {
	t.Helper()
	access, refresh := srv.IssueTokens(acct, expiresIn)
	tok := map[string]any{"access_token": access, "refresh_token": refresh, "expires_at": time.Now().Add(expiresIn).UTC().Format(time.RFC3339)}
	if withKey {
		tok["api_key"] = acct.APIKey()
	}
	raw, _ := json.Marshal(tok)
	path := filepath.Join(root, "proxycast", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return refresh
}

func readToken(t *testing.T, root, name string) (iflow.Token, os.FileMode) {
	t.Helper()
	path := filepath.Join(root, "proxycast", name)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	tok, err := iflow.ParseToken(raw)
	if err != nil {
		t.Fatalf("stored token does not parse: %v\n%s", err, raw)
	}
	return tok, fi.Mode().Perm()
}

func oauthSite(srv *iflowtest.Server, tokenFile string, more string) string {
	return oauthSiteAt(srv.URL(), tokenFile, more)
}

// oauthSiteAt is a proxycast block with one oauth credential, for a fake
// iFlow served at base (chat API at base/v1).
func oauthSiteAt(base, tokenFile, more string) string {
	return fmt.Sprintf(`	proxycast {
		api_keys %s
		credential_pool {
			iflow {
				credential oauth-1 {
					auth_type oauth
					token_file %s
				}
%s
			}
		}
		provider iflow {
			api_base %s/v1
			oauth_base %s
			platform_base %s
		}
	}`, clientKey, tokenFile, more, base, base, base)
}

const qwenBody = `{"model":"qwen3-max","messages":[{"role":"user","content":"x"}]}`

// TestOAuthRefreshAhead: a token inside the refresh lead is refreshed in
// the background, the new one is written back (0600, rotated refresh
// token, API key) and used.
func TestOAuthRefreshAhead(t *testing.T) {
	srv := fakeIFlow(t)
	acct := srv.AddAccount("someone@example.com", "")
	root := t.TempDir()
	oldRefresh := writeToken(t, root, "iflow/oauth.json", srv, acct, 2*time.Hour, true)
	startWithStorage(t, root, oauthSite(srv, "iflow/oauth.json", ""))

	waitFor(t, "the background refresh", func() bool { return srv.RefreshCount() == 1 })
	waitFor(t, "the token to be written back", func() bool {
		tok, _ := readToken(t, root, "iflow/oauth.json")
		return tok.RefreshToken != oldRefresh
	})
	tok, mode := readToken(t, root, "iflow/oauth.json")
	if tok.APIKey != acct.APIKey() || tok.Account != "someone@example.com" || time.Until(tok.ExpiresAt) < 40*time.Hour {
		t.Errorf("stored token: key ok=%v account=%q expires in %v", tok.APIKey == acct.APIKey(), tok.Account, time.Until(tok.ExpiresAt))
	}
	if mode != 0o600 {
		t.Errorf("token file mode %o, want 600", mode)
	}
	resp, body := chat(t, qwenBody)
	if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "oauth-1" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if srv.RefreshCount() != 1 || srv.ReusedRefreshTokens() != 0 {
		t.Errorf("refreshes %d, reused refresh tokens %d", srv.RefreshCount(), srv.ReusedRefreshTokens())
	}
}

// TestOAuthExpiredConcurrent: 100 requests on an expired credential cause
// exactly one refresh, and all of them are served with the new key.
func TestOAuthExpiredConcurrent(t *testing.T) {
	srv := fakeIFlow(t)
	acct := srv.AddAccount("", "13800000000")
	root := t.TempDir()
	writeToken(t, root, "iflow/oauth.json", srv, acct, -time.Hour, false)
	startWithStorage(t, root, oauthSite(srv, "iflow/oauth.json", ""))

	var wg sync.WaitGroup
	statuses := make(chan int, 100)
	for range 100 {
		wg.Go(func() {
			resp, _ := chat(t, qwenBody)
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Errorf("a request got %d", s)
		}
	}
	if srv.RefreshCount() != 1 || srv.ReusedRefreshTokens() != 0 {
		t.Errorf("refreshes %d (want 1), reused refresh tokens %d", srv.RefreshCount(), srv.ReusedRefreshTokens())
	}
	if tok, _ := readToken(t, root, "iflow/oauth.json"); tok.Account != "13800000000" {
		t.Errorf("account %q, want the phone number when there is no email", tok.Account)
	}
}

// TestOAuthTwoHandlersShareStorage: two handlers that use one token file
// in one storage refresh it exactly once between them.
func TestOAuthTwoHandlersShareStorage(t *testing.T) {
	srv := fakeIFlow(t)
	acct := srv.AddAccount("shared@example.com", "")
	root := t.TempDir()
	writeToken(t, root, "iflow/shared.json", srv, acct, -time.Minute, false)
	site := func(prefix string) string {
		return fmt.Sprintf("\thandle_path /%s/* {\n%s\n\t}\n", prefix, oauthSite(srv, "iflow/shared.json", ""))
	}
	startWithStorage(t, root, site("a")+site("b"))

	var wg sync.WaitGroup
	for i := range 40 {
		prefix := []string{"a", "b"}[i%2]
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, baseURL+"/"+prefix+"/v1/chat/completions", strings.NewReader(qwenBody))
			req.Header.Set("Authorization", "Bearer "+clientKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("/%s: status %d", prefix, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if srv.RefreshCount() != 1 || srv.ReusedRefreshTokens() != 0 {
		t.Errorf("refreshes %d (want 1), reused refresh tokens %d (want 0)", srv.RefreshCount(), srv.ReusedRefreshTokens())
	}
}

// TestOAuthRevokedIsSkipped: invalid_grant marks the credential as needing
// a login; the other credential serves, and the token file is left as it
// was for the person who fixes it.
func TestOAuthRevokedIsSkipped(t *testing.T) {
	srv := fakeIFlow(t, "sk-spare")
	acct := srv.AddAccount("gone@example.com", "")
	root := t.TempDir()
	writeToken(t, root, "iflow/oauth.json", srv, acct, time.Hour, true)
	before, _ := os.ReadFile(filepath.Join(root, "proxycast/iflow/oauth.json"))
	srv.RevokeAccount(acct)
	startWithStorage(t, root, oauthSite(srv, "iflow/oauth.json", "\t\t\t\tcredential spare {\n\t\t\t\t\tauth_type api_key\n\t\t\t\t\tapi_key sk-spare\n\t\t\t\t}"))

	// The background refresh fails with invalid_grant at once; from then
	// on only the spare serves.
	waitFor(t, "the revoked credential to be skipped", func() bool {
		for range 4 {
			if resp, _ := chat(t, qwenBody); resp.Header.Get("X-Proxycast-Credential") != "spare" {
				return false
			}
		}
		return true
	})
	after, _ := os.ReadFile(filepath.Join(root, "proxycast/iflow/oauth.json"))
	if string(before) != string(after) {
		t.Error("the token file of a revoked credential was changed")
	}
}

// TestOAuthOverloadKeepsKey: while the token endpoint is overloaded, the
// still-valid key keeps serving.
func TestOAuthOverloadKeepsKey(t *testing.T) {
	srv := fakeIFlow(t)
	acct := srv.AddAccount("busy@example.com", "")
	srv.SetTokenBehavior(iflowtest.TokenOverloaded)
	root := t.TempDir()
	writeToken(t, root, "iflow/oauth.json", srv, acct, 3*time.Hour, true)
	startWithStorage(t, root, oauthSite(srv, "iflow/oauth.json", ""))
	// The refresh, due (3h left, 24h ahead), meets the overload first.
	waitFor(t, "the overloaded refresh", func() bool { return strings.Contains(getCred(t, "oauth-1").LastError, "overloaded") })
	for range 5 {
		if resp, body := chat(t, qwenBody); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	if v := settledCred(t, "oauth-1"); v.State != "active" {
		t.Errorf("under overload the credential is %q, want active on its valid key", v.State)
	}
}

// TestOAuthRejectedKeyRefreshesOnce: a 434 for the current key triggers
// one immediate refresh; the next request uses the new key.
func TestOAuthRejectedKeyRefreshesOnce(t *testing.T) {
	srv := fakeIFlow(t)
	acct := srv.AddAccount("rotating@example.com", "")
	srv.SetRotateAPIKeyOnRefresh(true)
	root := t.TempDir()
	writeToken(t, root, "iflow/oauth.json", srv, acct, 72*time.Hour, true)
	startWithStorage(t, root, oauthSite(srv, "iflow/oauth.json", ""))
	srv.RemoveAPIKey(acct.APIKey())

	resp, body := chat(t, qwenBody)
	if resp.StatusCode != 401 {
		t.Fatalf("first request: %d %s", resp.StatusCode, body)
	}
	waitFor(t, "the refresh after the 434", func() bool { return srv.RefreshCount() == 1 })
	waitFor(t, "the new key to serve", func() bool {
		resp, _ := chat(t, qwenBody)
		return resp.StatusCode == 200
	})
	if srv.RefreshCount() != 1 {
		t.Errorf("refreshes %d, want exactly 1", srv.RefreshCount())
	}
}

func cookieSite(srv *iflowtest.Server, creds string) string {
	return fmt.Sprintf(`	proxycast {
		api_keys %s
		credential_pool {
			iflow {
%s
			}
		}
		provider iflow {
			api_base %s
			platform_base %s
		}
	}`, clientKey, creds, srv.APIBase(), srv.PlatformBase())
}

// TestCookieCredential: a cookie yields a key (GET then POST), the key is
// kept in storage, and a reload or restart reuses it instead of issuing a
// new one; an expired cookie is skipped while the others serve.
func TestCookieCredential(t *testing.T) {
	srv := fakeIFlow(t)
	good := srv.AddCookieAccount("bx-good")
	srv.AddCookieAccount("bx-stale")
	srv.ExpireCookie("bx-stale")
	root := t.TempDir()
	site := cookieSite(srv, `				credential cookie-good {
					auth_type cookie
					cookies "foo=1; BXAuth=bx-good; bar=2"
				}
				credential cookie-stale {
					auth_type cookie
					cookies "BXAuth=bx-stale"
				}`)
	startWithStorage(t, root, site)

	waitFor(t, "only the good cookie to serve", func() bool {
		for range 4 {
			resp, _ := chat(t, qwenBody)
			if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "cookie-good" {
				return false
			}
		}
		return true
	})
	if n := srv.KeyRegenerations(); n != 1 {
		t.Fatalf("key regenerations %d, want 1", n)
	}
	if v := scrapeMetric(t, "caddy_proxycast_credential_state", `credential="cookie-stale"`, `state="cookie_expired"`); v != 1 {
		t.Errorf("the expired cookie's state gauge = %v, want cookie_expired", v)
	}
	statePath := filepath.Join(root, "proxycast/state/iflow/cookie-good.json")
	fi, err := os.Stat(statePath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cookie state: %v, mode %v", err, fi)
	}
	raw, _ := os.ReadFile(statePath)
	if strings.Contains(string(raw), "bx-good") {
		t.Error("the stored state holds the cookie itself")
	}
	if !strings.Contains(string(raw), good.APIKey()) {
		t.Error("the stored state lacks the issued key")
	}

	// A restart with the same storage reuses the stored key.
	startWithStorage(t, root, site)
	if resp, body := chat(t, qwenBody); resp.StatusCode != 200 {
		t.Fatalf("after reload: %d %s", resp.StatusCode, body)
	}
	if n := srv.KeyRegenerations(); n != 1 {
		t.Errorf("key regenerations after reload %d, want still 1", n)
	}
}
