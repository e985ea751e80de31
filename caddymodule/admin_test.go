package caddymodule_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

type view struct {
	Provider, ID, Source, State, ProxyURL, Account string
	AuthType                                       string `json:"auth_type"`
	Disabled                                       bool
	Priority                                       int
	Requests                                       uint64
	ProxyURLRaw                                    string `json:"proxy_url"`
}

func list(t *testing.T) map[string]view {
	t.Helper()
	status, body := admin(t, "GET", "/proxycast/credentials", "")
	if status != 200 {
		t.Fatalf("list: %d %s", status, body)
	}
	var vs []view
	if err := json.Unmarshal([]byte(body), &vs); err != nil {
		t.Fatalf("list: %v: %s", err, body)
	}
	out := map[string]view{}
	for _, v := range vs {
		out[v.ID] = v
	}
	return out
}

func servedBy(t *testing.T) string {
	t.Helper()
	resp, body := chat(t, qwenBody)
	if resp.StatusCode != 200 {
		t.Fatalf("chat: %d %s", resp.StatusCode, body)
	}
	return resp.Header.Get("X-Proxycast-Credential")
}

func adminSite(srv *iflowtest.Server) string {
	return fmt.Sprintf(`	proxycast {
		api_keys %s
		credential_pool {
			iflow {
				credential a {
					auth_type api_key
					api_key sk-a
				}
			}
		}
		provider iflow {
			api_base %s
			oauth_base %s
			platform_base %s
		}
	}`, clientKey, srv.APIBase(), srv.OAuthBase(), srv.PlatformBase())
}

// settled is list(t)[id] once no renewal of id is under way (see
// settledCred).
func settled(t *testing.T, id string) view {
	t.Helper()
	var v view
	waitFor(t, id+" with no renewal under way", func() bool {
		v = list(t)[id]
		return v.State != "refreshing"
	})
	return v
}

// TestAdminLifecycle: add → used; disable → skipped; delete → gone; all of
// it kept across reload and restart, and config changes win over runtime
// changes of config credentials.
func TestAdminLifecycle(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	root := t.TempDir()
	site := adminSite(srv)
	startWithStorage(t, root, site)

	status, body := admin(t, "POST", "/proxycast/credentials/iflow",
		`{"id":"b","auth_type":"api_key","api_key":"sk-b","priority":1,"proxy_url":"http://user:hunter2@127.0.0.1:1"}`)
	if status != 201 {
		t.Fatalf("add: %d %s", status, body)
	}
	if strings.Contains(body, "sk-b") || strings.Contains(body, "hunter2") {
		t.Fatalf("the answer holds a secret: %s", body)
	}
	// b sits behind a proxy that does not exist: take it out of the way
	// again by clearing the proxy, and check it serves next.
	if status, body := admin(t, "PATCH", "/proxycast/credentials/iflow/b", `{"proxy_url":""}`); status != 200 {
		t.Fatalf("patch: %d %s", status, body)
	}
	if got := servedBy(t); got != "b" {
		t.Fatalf("after adding b with priority 1, served by %q", got)
	}
	if v := list(t)["b"]; v.Source != "runtime" || v.State != "active" || v.Priority != 1 {
		t.Errorf("b: %+v", v)
	}

	// Disable the config credential a and b in turn.
	if status, body := admin(t, "PATCH", "/proxycast/credentials/iflow/b", `{"disabled":true}`); status != 200 {
		t.Fatalf("disable b: %d %s", status, body)
	}
	for range 3 {
		if got := servedBy(t); got != "a" {
			t.Fatalf("disabled b still served: %q", got)
		}
	}
	if status, _ := admin(t, "PATCH", "/proxycast/credentials/iflow/b", `{"disabled":false}`); status != 200 {
		t.Fatal("enable b")
	}
	if status, _ := admin(t, "PATCH", "/proxycast/credentials/iflow/a", `{"disabled":true}`); status != 200 {
		t.Fatal("disable a")
	}

	// Reload the same config, then "restart" (a config without the
	// handler, then the config again): the changes hold.
	startWithStorage(t, root, site)
	if v := list(t); !v["a"].Disabled || v["b"].Source != "runtime" {
		t.Errorf("after reload: %+v", v)
	}
	startWithStorage(t, root, "\trespond ok")
	startWithStorage(t, root, site)
	vs := list(t)
	if !vs["a"].Disabled || vs["b"].Source != "runtime" || vs["b"].Priority != 1 {
		t.Errorf("after restart: %+v", vs)
	}
	if got := servedBy(t); got != "b" {
		t.Errorf("after restart served by %q", got)
	}
	fi, err := os.Stat(filepath.Join(root, "proxycast/runtime.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("runtime state: %v %v", err, fi)
	}
	raw, _ := os.ReadFile(filepath.Join(root, "proxycast/runtime.json"))
	if !json.Valid(raw) {
		t.Fatalf("runtime state is not JSON: %s", raw)
	}

	// Delete b: gone, also after a restart.
	if status, body := admin(t, "DELETE", "/proxycast/credentials/iflow/b", ""); status != 204 {
		t.Fatalf("delete: %d %s", status, body)
	}
	if status, _ := admin(t, "GET", "/proxycast/credentials/iflow/b", ""); status != 404 {
		t.Errorf("deleted b still answers %d", status)
	}
	startWithStorage(t, root, site)
	if _, ok := list(t)["b"]; ok {
		t.Error("b is back after a reload")
	}

	// The config changes a: the runtime change (disabled) gives way.
	startWithStorage(t, root, strings.Replace(site, "credential a {", "credential a {\n\t\t\t\t\tpriority 3", 1))
	if v := list(t)["a"]; v.Disabled || v.Priority != 3 {
		t.Errorf("config change did not win: %+v", v)
	}
}

func TestAdminBadRequests(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	srv.AddCookieAccount("bx-ok")
	startWithStorage(t, t.TempDir(), adminSite(srv))
	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"unknown field", "POST", "/proxycast/credentials/iflow", `{"id":"x","auth_type":"api_key","api_key":"k","colour":"red"}`, 400, "colour"},
		{"not JSON", "POST", "/proxycast/credentials/iflow", `{"id":`, 400, ""},
		{"empty", "POST", "/proxycast/credentials/iflow", ``, 400, ""},
		{"wrong type", "POST", "/proxycast/credentials/iflow", `{"id":"x","auth_type":"api_key","api_key":"k","priority":"high"}`, 400, "priority"},
		{"missing secret", "POST", "/proxycast/credentials/iflow", `{"id":"x","auth_type":"api_key"}`, 400, "api_key"},
		{"bad id", "POST", "/proxycast/credentials/iflow", `{"id":"a/b","auth_type":"api_key","api_key":"k"}`, 400, "id"},
		{"duplicate id", "POST", "/proxycast/credentials/iflow", `{"id":"a","auth_type":"api_key","api_key":"k"}`, 409, "id"},
		{"bad proxy", "POST", "/proxycast/credentials/iflow", `{"id":"x","auth_type":"api_key","api_key":"k","proxy_url":"ftp://p"}`, 400, "proxy_url"},
		{"cookie without BXAuth", "POST", "/proxycast/credentials/iflow", `{"id":"x","auth_type":"cookie","cookies":"a=b"}`, 400, "cookies"},
		{"cookie the platform refuses", "POST", "/proxycast/credentials/iflow", `{"id":"x","auth_type":"cookie","cookies":"BXAuth=nope"}`, 400, "cookies"},
		{"oauth without token", "POST", "/proxycast/credentials/iflow", `{"id":"x","auth_type":"oauth"}`, 400, "token"},
		{"oauth with a bad token", "POST", "/proxycast/credentials/iflow", `{"id":"x","auth_type":"oauth","token":{"access_token":"a"}}`, 400, "token"},
		{"unknown provider", "POST", "/proxycast/credentials/openai", `{"id":"x","auth_type":"api_key","api_key":"k"}`, 404, ""},
		{"too large", "POST", "/proxycast/credentials/iflow", `{"id":"x","pad":"` + strings.Repeat("x", 70<<10) + `"}`, 413, ""},
		{"patch immutable", "PATCH", "/proxycast/credentials/iflow/a", `{"api_key":"sk-new"}`, 400, "api_key"},
		{"patch unknown", "PATCH", "/proxycast/credentials/iflow/zzz", `{"disabled":true}`, 404, ""},
		{"patch token on api_key", "PATCH", "/proxycast/credentials/iflow/a", `{"token":{"refresh_token":"r"}}`, 400, "token"},
		{"delete unknown", "DELETE", "/proxycast/credentials/iflow/zzz", ``, 404, ""},
		{"refresh api_key", "POST", "/proxycast/credentials/iflow/a/refresh", ``, 400, ""},
		{"wrong method", "PUT", "/proxycast/credentials", ``, 405, ""},
		{"unknown path", "GET", "/proxycast/nothing", ``, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := admin(t, tt.method, tt.path, tt.body)
			var e struct{ Error, Field string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
				t.Fatalf("%d: not a JSON error: %s", status, body)
			}
			if status != tt.status || e.Field != tt.field {
				t.Errorf("%d field %q, want %d field %q: %s", status, e.Field, tt.status, tt.field, e.Error)
			}
			for _, secret := range []string{"sk-new", "BXAuth=nope"} {
				if strings.Contains(body, secret) {
					t.Errorf("the error repeats a secret: %s", body)
				}
			}
		})
	}
	if len(list(t)) != 1 {
		t.Errorf("a bad request left something behind: %+v", list(t))
	}
}

// TestAdminCookieAndToken: a cookie is checked against the platform and
// its key stored; an oauth credential takes its token in the body; refresh
// renews at once.
func TestAdminCookieAndToken(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	srv.AddCookieAccount("bx-good")
	acct := srv.AddAccount("admin@example.com", "")
	root := t.TempDir()
	startWithStorage(t, root, adminSite(srv))

	if status, body := admin(t, "POST", "/proxycast/credentials/iflow", `{"id":"c","auth_type":"cookie","cookies":"x=1; BXAuth=bx-good","priority":1}`); status != 201 {
		t.Fatalf("cookie: %d %s", status, body)
	}
	if srv.KeyRegenerations() != 1 {
		t.Errorf("key regenerations %d", srv.KeyRegenerations())
	}
	if got := servedBy(t); got != "c" {
		t.Errorf("served by %q", got)
	}
	if srv.KeyRegenerations() != 1 {
		t.Errorf("the stored key was not used: %d regenerations", srv.KeyRegenerations())
	}

	access, refresh := srv.IssueTokens(acct, 30*time.Hour)
	token := fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"expires_at":%q,"api_key":%q}`,
		access, refresh, time.Now().Add(30*time.Hour).UTC().Format(time.RFC3339), acct.APIKey())
	status, body := admin(t, "POST", "/proxycast/credentials/iflow", `{"id":"o","auth_type":"oauth","priority":1,"token":`+token+`}`)
	if status != 201 || strings.Contains(body, refresh) || strings.Contains(body, access) {
		t.Fatalf("oauth: %d %s", status, body)
	}
	if _, err := os.Stat(filepath.Join(root, "proxycast/iflow/o.json")); err != nil {
		t.Errorf("token file: %v", err)
	}
	before := srv.RefreshCount()
	status, body = admin(t, "POST", "/proxycast/credentials/iflow/o/refresh", "")
	if status != 200 || srv.RefreshCount() != before+1 {
		t.Fatalf("refresh: %d %s (refreshes %d -> %d)", status, body, before, srv.RefreshCount())
	}
	var v view
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("refresh: %v: %s", err, body)
	}
	if v.State != "active" || v.Account != "admin@example.com" {
		t.Errorf("after refresh: %s", body)
	}
	status, body = admin(t, "GET", "/proxycast/credentials", "")
	if status != 200 {
		t.Fatalf("list: %d %s", status, body)
	}
	for _, secret := range []string{"sk-a", "bx-good", access, refresh, acct.APIKey()} {
		if strings.Contains(body, secret) {
			t.Errorf("the list holds a secret")
		}
	}
}

// TestAdminOAuthLogin runs a browser login through the admin API against
// the fake's authorize page; the new credential serves with no further
// call.
func TestAdminOAuthLogin(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	acct := srv.AddAccount("browser@example.com", "")
	startWithStorage(t, t.TempDir(), adminSite(srv))

	status, body := admin(t, "POST", "/proxycast/oauth/iflow", fmt.Sprintf(`{"id":"web","port":%d,"priority":1}`, freePort(t)))
	if status != 200 {
		t.Fatalf("start: %d %s", status, body)
	}
	var start struct{ URL, State, Redirect string }
	if err := json.Unmarshal([]byte(body), &start); err != nil || start.URL == "" || start.State == "" {
		t.Fatalf("start: %s", body)
	}
	if status, body := admin(t, "GET", "/proxycast/oauth/iflow/"+start.State, ""); status != 200 || !strings.Contains(body, `"pending"`) {
		t.Fatalf("status before the browser: %d %s", status, body)
	}
	// The browser: the fake logs in at once and redirects to the callback.
	resp, err := http.Get(start.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Logged in") {
		t.Fatalf("callback page: %d %s", resp.StatusCode, page)
	}
	waitFor(t, "the login to complete", func() bool {
		_, body := admin(t, "GET", "/proxycast/oauth/iflow/"+start.State, "")
		return strings.Contains(body, `"done"`)
	})
	if v := settled(t, "web"); v.Source != "runtime" || v.AuthType != "oauth" || v.State != "active" || v.Account != "browser@example.com" {
		t.Fatalf("web: %+v", v)
	}
	resp2, body2 := chat(t, qwenBody)
	if resp2.Header.Get("X-Proxycast-Credential") != "web" || resp2.StatusCode != 200 {
		t.Fatalf("served by %q: %d %s", resp2.Header.Get("X-Proxycast-Credential"), resp2.StatusCode, body2)
	}
	found := false
	for _, r := range srv.ChatRequests() {
		if r.APIKey == acct.APIKey() {
			found = true
		}
	}
	if !found {
		t.Error("the logged-in account's key never reached iFlow")
	}
	if status, _ := admin(t, "GET", "/proxycast/oauth/iflow/nope", ""); status != 404 {
		t.Errorf("unknown login state: %d", status)
	}
}

// TestAdminConcurrent changes credentials while traffic flows, under
// -race: no request fails for lack of a credential, and the stored state
// stays readable.
func TestAdminConcurrent(t *testing.T) {
	keys := []string{"sk-a"}
	for i := range 8 {
		keys = append(keys, fmt.Sprintf("sk-%d", i))
	}
	srv := fakeIFlow(t, keys...)
	root := t.TempDir()
	startWithStorage(t, root, adminSite(srv))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	failures := make(chan string, 1000)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if resp, body := chat(t, qwenBody); resp.StatusCode != 200 {
					failures <- fmt.Sprintf("%d %s", resp.StatusCode, body)
				}
			}
		})
	}
	var admins sync.WaitGroup
	for i := range 8 {
		admins.Go(func() {
			id := fmt.Sprintf("k%d", i)
			for range 3 {
				if s, b := admin(t, "POST", "/proxycast/credentials/iflow", fmt.Sprintf(`{"id":%q,"auth_type":"api_key","api_key":"sk-%d"}`, id, i)); s != 201 {
					failures <- "add: " + b
				}
				if s, b := admin(t, "PATCH", "/proxycast/credentials/iflow/"+id, `{"disabled":true}`); s != 200 {
					failures <- "patch: " + b
				}
				if s, b := admin(t, "DELETE", "/proxycast/credentials/iflow/"+id, ""); s != 204 {
					failures <- "delete: " + b
				}
			}
		})
	}
	admins.Wait()
	close(stop)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	if vs := list(t); len(vs) != 1 {
		t.Errorf("left: %+v", vs)
	}
	raw, _ := os.ReadFile(filepath.Join(root, "proxycast/runtime.json"))
	if !json.Valid(raw) {
		t.Errorf("runtime state corrupted: %s", raw)
	}
}

// proxycastCLI runs `caddy proxycast <args>` as registered with Caddy and
// returns a reader of its output.
func proxycastCLI(t *testing.T, stdin string, args ...string) (*os.File, chan error) {
	t.Helper()
	root := &cobra.Command{Use: "proxycast"}
	caddycmd.Commands()["proxycast"].CobraFunc(root)
	r, w, _ := os.Pipe()
	root.SetOut(w)
	root.SetErr(w)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- root.Execute(); w.Close() }()
	return r, done
}

// TestCLIThroughAdmin: `caddy proxycast login iflow --admin` and
// `import-cookie --admin` hand their credentials to the running Caddy.
func TestCLIThroughAdmin(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	srv.AddAccount("cli@example.com", "")
	srv.AddCookieAccount("bx-cli")
	startWithStorage(t, t.TempDir(), adminSite(srv))

	out, done := proxycastCLI(t, "", "login", "iflow", "--admin", adminAddr, "--no-browser", "--port", strconv.Itoa(freePort(t)), "--id", "cli-oauth", "--timeout", "10s")
	buf := make([]byte, 4096)
	n, _ := out.Read(buf)
	u := regexp.MustCompile(`http://\S+/oauth\?\S+`).FindString(string(buf[:n]))
	if u == "" {
		t.Fatalf("no login URL printed: %q", buf[:n])
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-done; err != nil {
		t.Fatalf("login --admin: %v", err)
	}
	if v := settled(t, "cli-oauth"); v.State != "active" || v.Account != "cli@example.com" {
		t.Errorf("cli-oauth: %+v", v)
	}

	_, done = proxycastCLI(t, "x=1; BXAuth=bx-cli\n", "import-cookie", "--admin", adminAddr, "--id", "cli-cookie")
	if err := <-done; err != nil {
		t.Fatalf("import-cookie --admin: %v", err)
	}
	if v := settled(t, "cli-cookie"); v.AuthType != "cookie" || v.State != "active" {
		t.Errorf("cli-cookie: %+v", v)
	}
	// Again, with the same id: the cookie is replaced, not added twice.
	_, done = proxycastCLI(t, "BXAuth=bx-cli\n", "import-cookie", "--admin", adminAddr, "--id", "cli-cookie")
	if err := <-done; err != nil {
		t.Fatalf("import-cookie --admin again: %v", err)
	}
	_, done = proxycastCLI(t, "BXAuth=unknown\n", "import-cookie", "--admin", adminAddr, "--id", "cli-cookie")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "cookies") {
		t.Errorf("a refused cookie: %v", err)
	}
}

// TestAdminDeleteInFlight: deleting a credential lets the requests it is
// serving finish.
func TestAdminDeleteInFlight(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	srv.SetStreamDelay(150 * time.Millisecond)
	startWithStorage(t, t.TempDir(), adminSite(srv))
	if status, body := admin(t, "POST", "/proxycast/credentials/iflow", `{"id":"b","auth_type":"api_key","api_key":"sk-b","priority":1}`); status != 201 {
		t.Fatalf("add: %d %s", status, body)
	}
	req, _ := http.NewRequest(http.MethodPost, baseURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"qwen3-max","stream":true,"messages":[{"role":"user","content":"a stream of several chunks"}]}`))
	req.Header.Set("Authorization", "Bearer "+clientKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Proxycast-Credential") != "b" {
		t.Fatalf("served by %q", resp.Header.Get("X-Proxycast-Credential"))
	}
	if status, body := admin(t, "DELETE", "/proxycast/credentials/iflow/b", ""); status != 204 {
		t.Fatalf("delete: %d %s", status, body)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if evs := events(string(raw)); len(evs) < 3 || evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("the stream did not finish after the delete: %q", raw)
	}
	if got := servedBy(t); got != "a" {
		t.Errorf("after the delete served by %q", got)
	}
}

// TestRuntimeSync: changes that another instance of a cluster stores
// (written here straight into the shared storage, as it would) are applied
// without a reload, and this instance's own changes are not undone by it.
func TestRuntimeSync(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b", "sk-c", "sk-d")
	root := t.TempDir()
	body := strings.Replace(adminSite(srv), "\tproxycast {\n", "\tproxycast {\n\t\truntime_sync 100ms\n", 1)
	// Caddy's log goes to a file, where the sync's report of unreadable
	// changes shows that it has read them.
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	opts := strings.Replace(storageOptions(root), "persist_config off", "persist_config off\n\tlog {\n\t\toutput file "+logFile+"\n\t\tformat json\n\t}", 1)
	newTester(t).InitServer(opts+site(body), "caddyfile")
	settle(t)
	logged := func(msg string) bool {
		raw, err := os.ReadFile(logFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return strings.Contains(string(raw), `"msg":"`+msg+`"`)
	}

	file := filepath.Join(root, "proxycast", "runtime.json")
	other := func(overlay string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file+".tmp", []byte(overlay), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			t.Fatal(err)
		}
	}
	other(`{"version":1,"providers":{"iflow":{"added":[{"id":"b","auth_type":"api_key","api_key":"sk-b","priority":1}]}}}`)
	waitFor(t, "the other instance's credential", func() bool { return list(t)["b"].Source == "runtime" })
	if got := servedBy(t); got != "b" {
		t.Fatalf("served by %q, want b (priority 1, added by the other instance)", got)
	}

	// A change made here, on top of the other instance's, holds through
	// later syncs: the other instance adds d to what is stored now, and
	// once that sync is applied, c is still there.
	if status, body := admin(t, "POST", "/proxycast/credentials/iflow",
		`{"id":"c","auth_type":"api_key","api_key":"sk-c"}`); status != 201 {
		t.Fatalf("add c: %d %s", status, body)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// The other instance keeps what it does not know of as it is.
	var stored map[string]any
	if err := json.Unmarshal(raw, &stored); err != nil {
		t.Fatalf("runtime state: %v: %s", err, raw)
	}
	providers, _ := stored["providers"].(map[string]any)
	iflowChanges, _ := providers["iflow"].(map[string]any)
	added, _ := iflowChanges["added"].([]any)
	var ids []string
	for _, c := range added {
		c, _ := c.(map[string]any)
		ids = append(ids, fmt.Sprint(c["id"]))
	}
	if strings.Join(ids, ",") != "b,c" {
		t.Fatalf("stored runtime credentials %v, want b and c: %s", ids, raw)
	}
	iflowChanges["added"] = append(added, map[string]any{"id": "d", "auth_type": "api_key", "api_key": "sk-d"})
	if raw, err = json.Marshal(stored); err != nil {
		t.Fatal(err)
	}
	other(string(raw))
	waitFor(t, "the other instance's d", func() bool { return list(t)["d"].Source == "runtime" })
	if vs := list(t); vs["b"].Source != "runtime" || vs["c"].Source != "runtime" {
		t.Fatalf("after syncs: %+v", vs)
	}

	// The other instance deletes b and d.
	other(`{"version":1,"providers":{"iflow":{"added":[{"id":"c","auth_type":"api_key","api_key":"sk-c"}]}}}`)
	waitFor(t, "b and d gone", func() bool { vs := list(t); _, b := vs["b"]; _, d := vs["d"]; return !b && !d })
	if got := servedBy(t); got == "b" {
		t.Fatal("a deleted credential still serves")
	}

	// Garbage in storage is reported, changes nothing, and is forgotten
	// once fixed.
	if logged("reading runtime credential changes from storage") {
		t.Fatal("unreadable runtime changes reported before there were any")
	}
	other(`{"version":1,`)
	waitFor(t, "the sync to report the unreadable changes", func() bool {
		return logged("reading runtime credential changes from storage")
	})
	if vs := list(t); vs["c"].Source != "runtime" || vs["a"].Source != "config" {
		t.Fatalf("after unreadable changes: %+v", vs)
	}
	other(`{"version":1}`)
	waitFor(t, "c gone", func() bool { _, ok := list(t)["c"]; return !ok })
	waitFor(t, "the sync to report the changes readable again", func() bool {
		return logged("runtime credential changes in storage are readable again")
	})
}

// TestAdminPlaceholdersCheckedResolved: a change whose {env.X} resolves to
// something invalid is refused and not stored; one that goes bad later
// (its variable unset before a restart) is set aside, and the config loads.
func TestAdminPlaceholdersCheckedResolved(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	root := t.TempDir()
	site := adminSite(srv)
	startWithStorage(t, root, site)

	status, body := admin(t, "PATCH", "/proxycast/credentials/iflow/a", `{"proxy_url":"http://{env.PROXYCAST_TEST_UNSET}"}`)
	if status != 400 || !strings.Contains(body, "PROXYCAST_TEST_UNSET is unset or empty") || !strings.Contains(body, `"proxy_url"`) {
		t.Errorf("PATCH with a proxy_url that resolves to no host: %d %s", status, body)
	}
	add := `{"id":"b","auth_type":"api_key","api_key":"sk-b","proxy_url":"http://{env.PROXYCAST_TEST_UNSET}"}`
	for range 2 {
		if status, body := admin(t, "POST", "/proxycast/credentials/iflow", add); status != 400 {
			t.Errorf("POST with a proxy_url that resolves to no host: %d %s", status, body)
		}
	}
	if status, _ := reload(t, root, site); status != 200 {
		t.Fatalf("reload after refused changes: %d", status)
	}

	// A proxy that works now and is gone at the next start: the start
	// works, and a runs as configured (without the proxy).
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "a forward proxy would be here", http.StatusBadGateway)
	}))
	defer proxy.Close()
	t.Setenv("PROXYCAST_TEST_PROXY_HOST", strings.TrimPrefix(proxy.URL, "http://"))
	if status, body := admin(t, "PATCH", "/proxycast/credentials/iflow/a", `{"proxy_url":"http://{env.PROXYCAST_TEST_PROXY_HOST}"}`); status != 200 {
		t.Fatalf("PATCH with a good proxy placeholder: %d %s", status, body)
	}
	if resp, _ := chat(t, qwenBody); resp.StatusCode != 502 {
		t.Fatalf("through the proxy: %d, want its 502", resp.StatusCode)
	}
	t.Setenv("PROXYCAST_TEST_PROXY_HOST", "")
	if status, body := reload(t, root, site); status != 200 {
		t.Fatalf("reload with the proxy's variable unset: %d %s", status, body)
	}
	if got := servedBy(t); got != "a" {
		t.Errorf("served by %q, want a as configured", got)
	}
}

// TestAdminTokenFileNotPluginKeys: a token_file may not name the runtime
// changes or another credential's state.
func TestAdminTokenFileNotPluginKeys(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	startWithStorage(t, t.TempDir(), adminSite(srv))
	for _, file := range []string{"runtime.json", "state/iflow/a.json", "./runtime.json"} {
		status, body := admin(t, "POST", "/proxycast/oauth/iflow", `{"id":"web","port":0,"token_file":"`+file+`"}`)
		if status != 400 || !strings.Contains(body, "keeps for itself") {
			t.Errorf("login with token_file %q: %d %s", file, status, body)
		}
	}
}

// TestAdminDeleteShadowed: deleting a config credential also deletes a
// runtime credential of the same id that it hid, which must not come back.
func TestAdminDeleteShadowed(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	root := t.TempDir()
	site := adminSite(srv)
	startWithStorage(t, root, site)
	if status, body := admin(t, "POST", "/proxycast/credentials/iflow", `{"id":"b","auth_type":"api_key","api_key":"sk-b"}`); status != 201 {
		t.Fatalf("add b: %d %s", status, body)
	}
	withB := strings.Replace(site, "\t\t\t\tcredential a {", "\t\t\t\tcredential b {\n\t\t\t\t\tauth_type api_key\n\t\t\t\t\tapi_key sk-b\n\t\t\t\t}\n\t\t\t\tcredential a {", 1)
	startWithStorage(t, root, withB)
	if v := list(t)["b"]; v.Source != "config" {
		t.Fatalf("b: %+v, want the config's", v)
	}
	if status, body := admin(t, "DELETE", "/proxycast/credentials/iflow/b", ""); status != 204 {
		t.Fatalf("delete b: %d %s", status, body)
	}
	if status, body := admin(t, "GET", "/proxycast/credentials/iflow/b", ""); status != 404 {
		t.Errorf("b after its delete: %d %s", status, body)
	}
	startWithStorage(t, root, site)
	if _, ok := list(t)["b"]; ok {
		t.Error("the hidden runtime b came back once the config dropped its b")
	}
}

// TestAdminTwoHandlers: with two proxycast handlers serving one provider,
// every credential listed can be changed.
func TestAdminTwoHandlers(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	one := adminSite(srv)
	two := strings.Replace(strings.Replace(one, "credential a {", "credential b {", 1), "sk-a", "sk-b", 1)
	startWithStorage(t, t.TempDir(), "\troute {\n"+one+"\n"+two+"\n\t}")
	for _, id := range []string{"a", "b"} {
		if status, body := admin(t, "PATCH", "/proxycast/credentials/iflow/"+id, `{"priority":2}`); status != 200 {
			t.Errorf("PATCH %s: %d %s", id, status, body)
		}
		if v := list(t)[id]; v.Priority != 2 {
			t.Errorf("%s after PATCH: %+v", id, v)
		}
	}
}

// startLogin starts a browser login through the admin API and returns its
// login URL and state.
func startLogin(t *testing.T, body string) (loginURL, state string) {
	t.Helper()
	status, answer := admin(t, "POST", "/proxycast/oauth/iflow", body)
	if status != 200 {
		t.Fatalf("start login: %d %s", status, answer)
	}
	var s struct{ URL, State string }
	if err := json.Unmarshal([]byte(answer), &s); err != nil {
		t.Fatal(err)
	}
	return s.URL, s.State
}

// TestAdminLoginProxyPlaceholder: a login's token exchange goes through
// the credential's proxy_url as it resolves, {env.X} included.
func TestAdminLoginProxyPlaceholder(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	srv.AddAccount("browser@example.com", "")
	var through atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		through.Add(1)
		r.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		maps.Copy(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	t.Setenv("PROXYCAST_TEST_PROXY_HOST", strings.TrimPrefix(proxy.URL, "http://"))
	startWithStorage(t, t.TempDir(), adminSite(srv))

	u, state := startLogin(t, fmt.Sprintf(`{"id":"web","port":%d,"proxy_url":"http://{env.PROXYCAST_TEST_PROXY_HOST}"}`, freePort(t)))
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, "the login", func() bool {
		_, b := admin(t, "GET", "/proxycast/oauth/iflow/"+state, "")
		return strings.Contains(b, `"done"`)
	})
	if through.Load() == 0 {
		t.Error("the login's token exchange went around the credential's proxy")
	}
}

// TestAdminLoginOneAtATime: a second login for a credential while one is
// under way is refused, so two cannot race to store their tokens.
func TestAdminLoginOneAtATime(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	startWithStorage(t, t.TempDir(), adminSite(srv))
	// Short timeouts: these logins are never completed, and must not
	// stay pending for other tests.
	// Ids of this run only: logins are process-wide, and these stay
	// pending (for their short timeout) after the test.
	id := fmt.Sprintf("solo-%d", time.Now().UnixNano())
	startLogin(t, fmt.Sprintf(`{"id":%q,"port":%d,"token_file":"one.json","timeout":"2s"}`, id, freePort(t)))
	status, body := admin(t, "POST", "/proxycast/oauth/iflow", fmt.Sprintf(`{"id":%q,"port":%d,"token_file":"two.json","timeout":"2s"}`, id, freePort(t)))
	if status != 409 || !strings.Contains(body, "under way") {
		t.Errorf("second login for %s: %d %s", id, status, body)
	}
	// Another credential may log in meanwhile.
	startLogin(t, fmt.Sprintf(`{"id":%q,"port":%d,"timeout":"2s"}`, id+"-2", freePort(t)))
}

// TestMetricsOfDeletedCredential: a credential deleted through the admin
// API takes its metric series with it; one that stays keeps its own.
func TestMetricsOfDeletedCredential(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	startWithStorage(t, t.TempDir(), adminSite(srv))
	if status, body := admin(t, "POST", "/proxycast/credentials/iflow", `{"id":"gone","auth_type":"api_key","api_key":"sk-b","priority":1}`); status != 201 {
		t.Fatalf("add: %d %s", status, body)
	}
	if got := servedBy(t); got != "gone" {
		t.Fatalf("served by %q, want gone", got)
	}
	if v := scrapeMetric(t, "caddy_proxycast_requests_total", `credential="gone"`); v != 1 {
		t.Fatalf("requests of gone: %v, want 1", v)
	}
	if status, body := admin(t, "DELETE", "/proxycast/credentials/iflow/gone", ""); status != 204 {
		t.Fatalf("delete: %d %s", status, body)
	}
	if v := scrapeMetric(t, "caddy_proxycast_requests_total", `credential="gone"`); v != -1 {
		t.Errorf("requests of the deleted credential still exported: %v", v)
	}
	if got := servedBy(t); got != "a" {
		t.Fatalf("served by %q, want a", got)
	}
	if v := scrapeMetric(t, "caddy_proxycast_requests_total", `credential="a"`); v < 1 {
		t.Errorf("requests of a: %v", v)
	}
}

// TestFailedReloadChangesNothing: a reload that disables a and then fails,
// while provisioning (a later credential is bad) or when starting (a port
// is taken), leaves the credentials of the config in force as they were,
// also as the admin API reports them. (Caddy v2.11.9's /metrics cannot be
// checked here: after a failed load it serves the failed config's
// registry.)
func TestFailedReloadChangesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tt := range []struct {
		name    string
		breakIt func(site string) string
	}{
		{"fails to provision", func(site string) string {
			// z, which fails, comes after a.
			return strings.Replace(site, "api_key sk-a\n\t\t\t\t}\n", "api_key sk-a\n\t\t\t\t}\n\t\t\t\tcredential z {\n\t\t\t\t\tauth_type cookie\n\t\t\t\t\tcookies \"no-bxauth=1\"\n\t\t\t\t}\n", 1)
		}},
		{"fails to start", func(site string) string {
			return site + fmt.Sprintf("\n}\n\nhttp://%s {\n\trespond ok", busy.Addr())
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeIFlow(t, "sk-a")
			root := t.TempDir()
			site := adminSite(srv)
			startWithStorage(t, root, site)
			disabled := strings.Replace(site, "auth_type api_key\n", "auth_type api_key\n\t\t\t\t\tdisabled\n", 1)
			bad := tt.breakIt(disabled)
			if disabled == site || bad == disabled {
				t.Fatal("test setup: the bad config is not what it should be")
			}
			if status, _ := reload(t, root, bad); status == 200 {
				t.Fatal("the bad config loaded")
			}
			if v := list(t)["a"]; v.Disabled || v.State == "disabled" {
				t.Errorf("after a failed reload that disabled a: %+v", v)
			}
			if got := servedBy(t); got != "a" {
				t.Errorf("served by %q, want a", got)
			}
		})
	}
}

// TestDisabledNotRenewed: an oauth credential disabled in the config in
// force is not renewed in the background, also not by a reload that
// enables it but fails to start. (credpool's TestRenewingNotWanted covers
// the pause of a credential disabled later.)
func TestDisabledNotRenewed(t *testing.T) {
	srv := fakeIFlow(t)
	acct := srv.AddAccount("someone@example.com", "")
	root := t.TempDir()
	writeToken(t, root, "iflow/oauth.json", srv, acct, 2*time.Hour, true) // due: 2h left, renewed 24h ahead
	enabled := oauthSite(srv, "iflow/oauth.json", "")
	disabled := strings.Replace(enabled, "auth_type oauth\n", "auth_type oauth\n\t\t\t\t\tdisabled\n", 1)
	startWithStorage(t, root, disabled)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if status, _ := reload(t, root, enabled+fmt.Sprintf("\n}\n\nhttp://%s {\n\trespond ok", busy.Addr())); status == 200 {
		t.Fatal("a config with a taken port loaded")
	}
	// Nothing can renew it now: either its renewal never started (no
	// key read, no renewal planned), or the loop has asked twice since
	// the failed reload whether renewing is wanted (it asks every second,
	// and each time plans anew) and was told no.
	if v := getCred(t, "oauth-1"); v.NextRenewal != nil || v.ExpiresAt != nil {
		since := time.Now()
		for range 2 {
			waitFor(t, "the renewal loop to look again", func() bool {
				if srv.RefreshCount() != 0 {
					return true // renewed: reported below
				}
				next := getCred(t, "oauth-1").NextRenewal
				if next == nil || !next.After(since) {
					return false
				}
				since = *next
				return true
			})
		}
	}
	if n := srv.RefreshCount(); n != 0 {
		t.Errorf("a credential disabled in the config in force was renewed %d times after a failed reload", n)
	}

	// Enabled for real, it is renewed (it is due). The renewal is over
	// (stored, storage unlocked) once the credential is no longer
	// refreshing: the test's storage directory goes right after.
	startWithStorage(t, root, enabled)
	waitFor(t, "the renewal", func() bool { return srv.RefreshCount() == 1 })
	waitFor(t, "the renewal to end", func() bool {
		v := getCred(t, "oauth-1")
		return v.LastRefresh != nil && v.State == "active"
	})
}
