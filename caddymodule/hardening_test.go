package caddymodule_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// credentialJSON reads one credential from the admin API as a map.
func credentialJSON(t *testing.T, prov, id string) map[string]any {
	t.Helper()
	status, body := admin(t, "GET", "/proxycast/credentials/"+prov+"/"+id, "")
	if status != 200 {
		t.Fatalf("GET %s/%s: %d %s", prov, id, status, body)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// errorText is the "error" of a JSON error body, or the body.
func errorText(body string) string {
	var e struct{ Error string }
	if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
		return body
	}
	return e.Error
}

// nextRenewalIn is how far in the future a credential's next_renewal is
// (negative when unset or past).
func nextRenewalIn(t *testing.T, prov, id string) time.Duration {
	t.Helper()
	s, _ := credentialJSON(t, prov, id)["next_renewal"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return -1
	}
	return time.Until(at)
}

// TestShortLivedKeysRenewedSpaced: an upstream that hands out keys living
// less than the renewal lead (1h access tokens with the 24h default, cookie
// keys valid for 24h with the 48h default) gets one renewal, and the next
// halfway through the key's life, as the admin API's next_renewal shows.
func TestShortLivedKeysRenewedSpaced(t *testing.T) {
	srv := fakeIFlow(t)
	acct := srv.AddAccount("short@example.com", "")
	srv.SetAccessTokenTTL(time.Hour)
	srv.SetCookieKeyLifetime(24 * time.Hour)
	srv.AddCookieAccount("bx-short")
	root := t.TempDir()
	writeToken(t, root, "iflow/oauth.json", srv, acct, -time.Hour, true)
	startWithStorage(t, root, oauthSite(srv, "iflow/oauth.json", `				credential cookie-1 {
					auth_type cookie
					cookies "BXAuth=bx-short"
				}`))

	waitFor(t, "both renewals to be scheduled", func() bool {
		return nextRenewalIn(t, "iflow", "oauth-1") > 10*time.Minute && nextRenewalIn(t, "iflow", "cookie-1") > 10*time.Minute
	})
	if got := nextRenewalIn(t, "iflow", "oauth-1"); got < 25*time.Minute || got > 31*time.Minute {
		t.Errorf("oauth-1 renews in %v, want about 30m (half of its 1h token)", got)
	}
	// The platform gives expiry times to the minute.
	if got := nextRenewalIn(t, "iflow", "cookie-1"); got < 11*time.Hour || got > 12*time.Hour+time.Minute {
		t.Errorf("cookie-1 renews in %v, want about 12h (half of its 24h key)", got)
	}
	if n := srv.RefreshCount(); n != 1 {
		t.Errorf("%d token refreshes, want 1", n)
	}
	if n := srv.KeyRegenerations(); n != 1 {
		t.Errorf("%d cookie key regenerations, want 1", n)
	}
	for _, id := range []string{"oauth-1", "cookie-1"} {
		if resp, body := chat(t, qwenBody, "X-Test", id); resp.StatusCode != 200 {
			t.Fatalf("chat: %d %s", resp.StatusCode, body)
		}
	}
}

// TestNoSecretInErrors: config-load and admin API errors quote fields as
// written, never what their placeholders resolve to, and values that
// cannot work are refused naming the field.
func TestNoSecretInErrors(t *testing.T) {
	const secret = "hunter2-Secret-Value"
	t.Setenv("PROXYCAST_TEST_SECRET", secret)
	srv := fakeIFlow(t, "sk-a")
	root := t.TempDir()
	startWithStorage(t, root, adminSite(srv))

	bad := strings.Replace(adminSite(srv), "api_key sk-a", "api_key sk-a\n\t\t\t\t\tproxy_url \"{env.PROXYCAST_TEST_SECRET}:\"", 1)
	status, body := loadCaddyfile(t, storageOptions(root)+site(bad))
	if status == 200 || strings.Contains(body, secret) || !strings.Contains(body, "{env.PROXYCAST_TEST_SECRET}") {
		t.Errorf("config load: %d %s", status, body)
	}
	settle(t)
	for _, tt := range []struct{ body, field string }{
		{`{"id":"x","auth_type":"oauth","token_file":"../{env.PROXYCAST_TEST_SECRET}","token":{"refresh_token":"rt"}}`, "token_file"},
		{`{"id":"x","auth_type":"oauth","token_file":"state/{env.PROXYCAST_TEST_SECRET}","token":{"refresh_token":"rt"}}`, "token_file"},
		{`{"id":"x","auth_type":"api_key","api_key":"k","proxy_url":"{env.PROXYCAST_TEST_SECRET}:"}`, "proxy_url"},
		{`{"id":"x","auth_type":"cookie","cookies":"{env.PROXYCAST_TEST_SECRET}"}`, "cookies"},
		{`{"id":"x","auth_type":"api_key","api_key":"sk-x\r\nX-Evil: 1"}`, "api_key"},
		{`{"id":"..","auth_type":"api_key","api_key":"k"}`, "id"},
		{`{"id":".","auth_type":"api_key","api_key":"k"}`, "id"},
	} {
		status, body := admin(t, "POST", "/proxycast/credentials/iflow", tt.body)
		if status != 400 || strings.Contains(body, secret) || strings.Contains(body, "X-Evil") {
			t.Errorf("POST %s: %d %s", tt.body, status, body)
			continue
		}
		var e struct{ Field string }
		if json.Unmarshal([]byte(body), &e) != nil || e.Field != tt.field {
			t.Errorf("POST %s: %s, want the field %s named", tt.body, body, tt.field)
		}
	}
	if _, ok := list(t)["x"]; ok {
		t.Error("a refused credential was added")
	}
}

// TestProxyFailuresFailOver: a credential whose proxy refuses it (407) or
// cannot be reached is rested with a reason that names the proxy, and the
// request goes to another credential; when none is left, the client gets
// a 502 that names the proxy problem, never the proxy's password.
func TestProxyFailuresFailOver(t *testing.T) {
	srv := fakeIFlow(t, "sk-direct", "sk-proxied")
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="proxy"`)
		w.WriteHeader(http.StatusProxyAuthRequired)
	}))
	defer refusing.Close()
	closed := freePort(t)

	for _, tt := range []struct{ name, proxy, says string }{
		{"407", "http://user:pr0xy-Pass@" + strings.TrimPrefix(refusing.URL, "http://"), "407"},
		{"unreachable", fmt.Sprintf("http://user:pr0xy-Pass@127.0.0.1:%d", closed), "proxyconnect"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fmt.Sprintf(`		api_keys %s
		credential_pool {
			iflow {
				credential proxied {
					auth_type api_key
					api_key sk-proxied
					priority 1
					proxy_url %s
				}
				credential direct {
					auth_type api_key
					api_key sk-direct
					priority 2
				}
			}
		}
		provider iflow {
			api_base %s
		}`, clientKey, tt.proxy, srv.APIBase())
			startCaddy(t, cfg)
			resp, body := chat(t, qwenBody)
			if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "direct" {
				t.Fatalf("%d from %q: %s", resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), body)
			}
			v := credentialJSON(t, "iflow", "proxied")
			if v["state"] != "cooling" || !strings.Contains(fmt.Sprint(v["cooling_reason"]), "proxy") {
				t.Errorf("proxied: state %v, reason %v", v["state"], v["cooling_reason"])
			}
			if strings.Contains(fmt.Sprint(v), "pr0xy-Pass") {
				t.Errorf("the admin API shows the proxy's password: %v", v)
			}
			if n := sumMetric(t, "caddy_proxycast_failovers_total", `reason="proxy"`); n < 1 {
				t.Errorf("failovers for the proxy: %v", n)
			}

			// Alone (and fresh: a rest survives reloads), the client learns
			// what is wrong.
			alone := strings.Replace(cfg, "sk-direct", "sk-direct\n\t\t\t\t\tdisabled", 1)
			startCaddy(t, strings.Replace(alone, "credential proxied", "credential proxied-alone", 1))
			resp, body = chat(t, qwenBody)
			e := decodeError(t, body)
			if resp.StatusCode != 502 || e.Error.Code != "upstream_proxy_failed" || !strings.Contains(e.Error.Message, tt.says) {
				t.Errorf("%d %s", resp.StatusCode, body)
			}
			if strings.Contains(body, "pr0xy-Pass") {
				t.Errorf("the answer names the proxy's password: %s", body)
			}
		})
	}
}

// TestRequestsRefusedUpFront: a body announced larger than max_body_size
// is answered 413 before any of it is read, and a body whose model (or
// stream switch) could be read two ways is refused before routing.
func TestRequestsRefusedUpFront(t *testing.T) {
	srv := fakeIFlow(t, "sk-one")
	startCaddy(t, poolConfig(srv, "\t\tmax_body_size 1KiB", "sk-one"))

	// Headers only: the body never comes, so only an answer that does not
	// wait for it arrives before the deadline.
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1025\r\n\r\n", clientKey)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}

	for _, body := range []string{
		`{"model":"qwen3-max","MODEL":"glm-4.6","messages":[{"role":"user","content":"x"}]}`,
		`{"Model":"qwen3-max","messages":[{"role":"user","content":"x"}]}`,
		`{"model":"qwen3-max","model":"glm-4.6","messages":[{"role":"user","content":"x"}]}`,
		`{"model":"qwen3-max","stream":false,"STREAM":true,"messages":[{"role":"user","content":"x"}]}`,
	} {
		resp, out := chat(t, body)
		e := decodeError(t, out)
		if resp.StatusCode != 400 || !strings.HasPrefix(e.Error.Code, "invalid_") {
			t.Errorf("%s: %d %s", body, resp.StatusCode, out)
		}
	}
	if n := srv.ChatCount(); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
}

// TestSetAsideShown: a runtime credential that can no longer be put in
// force (its {env.X} is gone) shows in the admin API, with its state and
// why, and can be fixed or deleted there; a config credential whose
// runtime change is set aside says so.
func TestSetAsideShown(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	root := t.TempDir()
	site := adminSite(srv)
	startWithStorage(t, root, site)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer proxy.Close()
	t.Setenv("PROXYCAST_TEST_KEY_B", "sk-b")
	t.Setenv("PROXYCAST_TEST_PROXY_A", strings.TrimPrefix(proxy.URL, "http://"))
	if status, body := admin(t, "POST", "/proxycast/credentials/iflow", `{"id":"b","auth_type":"api_key","api_key":"{env.PROXYCAST_TEST_KEY_B}"}`); status != 201 {
		t.Fatalf("add: %d %s", status, body)
	}
	if status, body := admin(t, "PATCH", "/proxycast/credentials/iflow/a", `{"proxy_url":"http://{env.PROXYCAST_TEST_PROXY_A}"}`); status != 200 {
		t.Fatalf("patch: %d %s", status, body)
	}

	t.Setenv("PROXYCAST_TEST_KEY_B", "")
	t.Setenv("PROXYCAST_TEST_PROXY_A", "")
	if status, body := reload(t, root, site); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	b := credentialJSON(t, "iflow", "b")
	if b["state"] != "invalid" || b["source"] != "runtime" || !strings.Contains(fmt.Sprint(b["last_error"]), "PROXYCAST_TEST_KEY_B is unset or empty") {
		t.Errorf("b: %v", b)
	}
	if _, ok := list(t)["b"]; !ok {
		t.Error("the list leaves b out")
	}
	a := credentialJSON(t, "iflow", "a")
	if a["state"] != "active" || !strings.Contains(fmt.Sprint(a["runtime_change"]), "PROXYCAST_TEST_PROXY_A is unset or empty") {
		t.Errorf("a: %v", a)
	}
	if v := scrapeMetric(t, "caddy_proxycast_credential_state", `credential="b"`, `state="invalid"`); v != 1 {
		t.Errorf("b's state gauge: %v", v)
	}

	// Fixed through the admin API, it serves again.
	t.Setenv("PROXYCAST_TEST_KEY_B", "sk-b")
	if status, body := admin(t, "PATCH", "/proxycast/credentials/iflow/b", `{"priority":1}`); status != 200 {
		t.Fatalf("patch b: %d %s", status, body)
	}
	if got := credentialJSON(t, "iflow", "b")["state"]; got != "active" {
		t.Errorf("b after the fix: %v", got)
	}
	t.Setenv("PROXYCAST_TEST_KEY_B", "")
	if status, body := reload(t, root, site); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if status, body := admin(t, "DELETE", "/proxycast/credentials/iflow/b", ""); status != 204 {
		t.Fatalf("delete b: %d %s", status, body)
	}
	if status, _ := admin(t, "GET", "/proxycast/credentials/iflow/b", ""); status != 404 {
		t.Errorf("b after delete: %d", status)
	}
}

// TestOneAccountOneCredential: two credentials that would renew one
// account (one token file, also named once by its storage key and once by
// its path; one cookie) are refused, naming the first, in the config and
// through the admin API.
func TestOneAccountOneCredential(t *testing.T) {
	srv := fakeIFlow(t)
	acct := srv.AddAccount("twice@example.com", "")
	srv.AddCookieAccount("bx-twice")
	root := t.TempDir()
	writeToken(t, root, "iflow/a.json", srv, acct, 48*time.Hour, true)
	oauth := func(id, tokenFile string) string {
		return fmt.Sprintf("\t\t\t\tcredential %s {\n\t\t\t\t\tauth_type oauth\n\t\t\t\t\ttoken_file %q\n\t\t\t\t}\n", id, tokenFile)
	}
	cookie := func(id string) string {
		return fmt.Sprintf("\t\t\t\tcredential %s {\n\t\t\t\t\tauth_type cookie\n\t\t\t\t\tcookies \"x=1; BXAuth=bx-twice\"\n\t\t\t\t}\n", id)
	}
	startWithStorage(t, root, oauthSite(srv, "iflow/a.json", ""))
	for _, tt := range []struct{ name, more, says string }{
		{"one key twice", oauth("oauth-2", "iflow/a.json"), `token file of credential "oauth-1" of iflow`},
		{"a key and its path", oauth("oauth-2", filepath.Join(root, "proxycast", "iflow", "a.json")), `token file of credential "oauth-1" of iflow`},
		{"one cookie twice", cookie("cookie-1") + cookie("cookie-2"), `same account as credential "cookie-1" of iflow`},
	} {
		status, body := loadCaddyfile(t, storageOptions(root)+site(oauthSite(srv, "iflow/a.json", tt.more)))
		if status == 200 || !strings.Contains(errorText(body), tt.says) {
			t.Errorf("%s: %d %s", tt.name, status, body)
		}
	}
	settle(t)

	// Through the admin API: a second credential on the token file, or
	// on the account of a cookie credential, is a conflict.
	if status, body := admin(t, "POST", "/proxycast/credentials/iflow", `{"id":"oauth-2","auth_type":"oauth","token_file":"iflow/a.json"}`); status != 409 || !strings.Contains(errorText(body), `"oauth-1"`) {
		t.Errorf("a second oauth credential on the token file: %d %s", status, body)
	}
	if status, body := admin(t, "POST", "/proxycast/credentials/iflow", `{"id":"cookie-1","auth_type":"cookie","cookies":"BXAuth=bx-twice"}`); status != 201 {
		t.Fatalf("cookie-1: %d %s", status, body)
	}
	if status, body := admin(t, "POST", "/proxycast/credentials/iflow", `{"id":"cookie-2","auth_type":"cookie","cookies":"BXAuth=bx-twice"}`); status != 409 || !strings.Contains(errorText(body), `"cookie-1"`) {
		t.Errorf("a second cookie credential of the account: %d %s", status, body)
	}
	if n := srv.KeyRegenerations(); n != 1 {
		t.Errorf("the account's key was issued %d times, want once", n)
	}
	if status, body := admin(t, "POST", "/proxycast/oauth/iflow", fmt.Sprintf(`{"id":"oauth-3","token_file":"iflow/a.json","port":%d}`, freePort(t))); status != 409 || !strings.Contains(errorText(body), `"oauth-1"`) {
		t.Errorf("a login into the token file of another credential: %d %s", status, body)
	}
}

// TestAdminTokenFilesOutsideStorage: the admin API writes absolute token
// files only inside admin_token_dirs, and never over a file that is not a
// token file.
func TestAdminTokenFilesOutsideStorage(t *testing.T) {
	srv := fakeIFlow(t)
	acct := srv.AddAccount("abs@example.com", "")
	access, refresh := srv.IssueTokens(acct, 48*time.Hour)
	token := fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"expires_at":%q,"api_key":%q}`,
		access, refresh, time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339), acct.APIKey())
	dir := t.TempDir()
	precious := filepath.Join(dir, "precious.conf")
	if err := os.WriteFile(precious, []byte("not a token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	base := adminSite(srv)
	startWithStorage(t, root, base)
	add := func(id, tokenFile string) (int, string) {
		return admin(t, "POST", "/proxycast/credentials/iflow", fmt.Sprintf(`{"id":%q,"auth_type":"oauth","token_file":%q,"token":%s}`, id, tokenFile, token))
	}
	if status, body := add("abs-1", filepath.Join(dir, "abs-1.json")); status != 400 || !strings.Contains(body, "admin_token_dirs") {
		t.Errorf("an absolute token file without admin_token_dirs: %d %s", status, body)
	}

	startWithStorage(t, root, strings.Replace(base, "api_keys", "admin_token_dirs "+dir+"\n\t\tapi_keys", 1))
	if status, body := add("abs-1", precious); status != 409 || !strings.Contains(body, "not a token file") {
		t.Errorf("a token over a file that is not a token file: %d %s", status, body)
	}
	if raw, _ := os.ReadFile(precious); string(raw) != "not a token\n" {
		t.Errorf("the file was overwritten: %q", raw)
	}
	if status, body := add("abs-2", filepath.Join(t.TempDir(), "elsewhere.json")); status != 400 || !strings.Contains(body, "not inside") {
		t.Errorf("an absolute token file outside admin_token_dirs: %d %s", status, body)
	}
	if status, body := add("abs-3", filepath.Join(dir, "abs-3.json")); status != 201 {
		t.Fatalf("a token file inside admin_token_dirs: %d %s", status, body)
	}
	fi, err := os.Stat(filepath.Join(dir, "abs-3.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the token file: %v %v", err, fi)
	}
}
