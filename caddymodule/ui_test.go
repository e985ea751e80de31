package caddymodule_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// startUI runs `caddy proxycast ui` for the admin API at admin, on a
// free loopback port, and returns its page's URL.
func startUI(t *testing.T, admin string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	root := &cobra.Command{Use: "proxycast"}
	caddycmd.Commands()["proxycast"].CobraFunc(root)
	r, w, _ := os.Pipe()
	root.SetOut(w)
	root.SetErr(w)
	root.SetArgs([]string{"ui", "--admin", admin, "--listen", "127.0.0.1:0"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); w.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("caddy proxycast ui: %v", err)
		}
		r.Close()
	})
	line, err := bufio.NewReader(r).ReadString('\n')
	page := regexp.MustCompile(`http://127\.0\.0\.1:\d+/proxycast/ui/`).FindString(line)
	if page == "" {
		t.Fatalf("caddy proxycast ui printed %q (%v)", line, err)
	}
	return page
}

// sameOrigin are the headers a browser sends with a fetch of the page at
// page (origin scheme://host:port).
func sameOrigin(page string, change bool) map[string]string {
	origin := strings.TrimSuffix(page, "/proxycast/ui/")
	h := map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Referer": page}
	if change {
		h["Origin"] = origin
	}
	return h
}

// checkForwarder drives the admin API through the forwarder at page as
// the page would, and checks what it turns away.
func checkForwarder(t *testing.T, page string) {
	t.Helper()
	api := strings.TrimSuffix(page, "ui/")
	navigate := map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
	if status, body := send(t, "GET", page, "", navigate); status != 200 || !strings.Contains(body, "app.js") {
		t.Fatalf("the page: %d %.200s", status, body)
	}
	status, body := send(t, "GET", api+"providers", "", sameOrigin(page, false))
	var provs []struct {
		Name, Type  string
		AuthTypes   []string `json:"auth_types"`
		Login       bool
		Credentials int
	}
	if status != 200 || json.Unmarshal([]byte(body), &provs) != nil || len(provs) != 1 {
		t.Fatalf("providers: %d %s", status, body)
	}
	if p := provs[0]; p.Name != "iflow" || p.Type != "iflow" || !p.Login || p.Credentials != 1 ||
		strings.Join(p.AuthTypes, ",") != "oauth,cookie,api_key" {
		t.Errorf("providers: %+v", p)
	}
	add := `{"id":"via-ui","auth_type":"api_key","api_key":"sk-via-ui"}`
	if status, body := send(t, "POST", api+"credentials/iflow", add, sameOrigin(page, true)); status != 201 || strings.Contains(body, "sk-via-ui") {
		t.Fatalf("add through the forwarder: %d %s", status, body)
	}
	listed := func() bool {
		status, body := send(t, "GET", api+"credentials", "", sameOrigin(page, false))
		if status != 200 {
			t.Fatalf("list through the forwarder: %d %s", status, body)
		}
		return strings.Contains(body, `"via-ui"`)
	}
	if !listed() {
		t.Fatal("the credential added through the forwarder is not listed")
	}
	for _, tt := range []struct {
		name, method, url, body string
		header                  map[string]string
		status                  int
	}{
		{"a change without the browser's Origin", "DELETE", api + "credentials/iflow/via-ui", "", map[string]string{}, 403},
		{"a change from another site", "DELETE", api + "credentials/iflow/via-ui", "", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
		{"a read another site makes", "GET", api + "credentials", "", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, 403},
		{"Caddy's own config", "GET", strings.TrimSuffix(api, "proxycast/") + "config/", "", sameOrigin(page, false), 404},
		{"Caddy's stop", "POST", strings.TrimSuffix(api, "proxycast/") + "stop", "", sameOrigin(page, true), 404},
	} {
		if status, body := send(t, tt.method, tt.url, tt.body, tt.header); status != tt.status {
			t.Errorf("%s: %d %s; want %d", tt.name, status, body, tt.status)
		}
	}
	// A DNS rebinding attack reaches the forwarder with another Host.
	req, _ := http.NewRequest("GET", api+"credentials", nil)
	req.Host = "rebind.example:80"
	if resp, err := testClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("another Host: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if !listed() {
		t.Fatal("a refused request deleted the credential")
	}
	if status, body := send(t, "DELETE", api+"credentials/iflow/via-ui", "", sameOrigin(page, true)); status != 200 && status != 204 {
		t.Fatalf("delete through the forwarder: %d %s", status, body)
	}
	if listed() {
		t.Error("deleted through the forwarder, and still listed")
	}
}

// TestUIForwarder: `caddy proxycast ui` in front of the default admin
// listener, which turns a browser's navigation to the page away itself.
func TestUIForwarder(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	startWithStorage(t, t.TempDir(), adminSite(srv))

	// Straight to the admin listener, a browser's navigation has no
	// Origin, and Caddy refuses it; curl is served.
	status, body := send(t, "GET", adminURL+"/proxycast/ui/", "", map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"})
	if status != 403 {
		t.Errorf("a browser's navigation to the admin listener: %d %.200s (the README says Caddy refuses it)", status, body)
	}
	if status, body := admin(t, "GET", "/proxycast/ui/", ""); status != 200 || !strings.Contains(body, "app.js") {
		t.Errorf("the page from the admin API: %d %.200s", status, body)
	}
	checkForwarder(t, startUI(t, adminAddr))

	// Only loopback addresses are served.
	_, done := proxycastCLI(t, "", "ui", "--admin", adminAddr, "--listen", "0.0.0.0:0")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("--listen 0.0.0.0: %v", err)
	}
	_, done = proxycastCLI(t, "", "ui", "--admin", "unix/", "--listen", "127.0.0.1:0")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "--admin") {
		t.Errorf("--admin unix/: %v", err)
	}
}

// TestUIForwarderSocket: the production setup, an admin API on a unix
// socket, reached only through the forwarder.
func TestUIForwarderSocket(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	root := t.TempDir()
	dir, err := os.MkdirTemp("", "pc-sock-") // a socket path must be short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	startWithStorage(t, root, adminSite(srv))
	onSocket := strings.Replace(storageOptions(root), fmt.Sprintf("admin localhost:%d", adminPort), "admin unix/"+sock, 1)
	if status, body := loadCaddyfile(t, onSocket+site(adminSite(srv))); status != 200 {
		t.Fatalf("moving the admin API to %s: %d %s", sock, status, body)
	}
	socketClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	t.Cleanup(func() {
		// Back to the port the other tests use.
		req, _ := http.NewRequest("POST", "http://127.0.0.1/load", strings.NewReader(globalOptions))
		req.Header.Set("Content-Type", "text/caddyfile")
		if resp, err := socketClient.Do(req); err == nil {
			resp.Body.Close()
		}
		settleListeners(t)
	})
	waitFor(t, "the admin API on the socket", func() bool {
		resp, err := socketClient.Get("http://127.0.0.1/proxycast/providers")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	checkForwarder(t, startUI(t, "unix/"+sock))
}

// TestAdminPasteCallback: a login completed with the callback URL that a
// browser on another machine shows, pasted into the admin API.
func TestAdminPasteCallback(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	srv.AddAccount("far@example.com", "")
	startWithStorage(t, t.TempDir(), adminSite(srv))

	status, body := admin(t, "POST", "/proxycast/oauth/iflow", fmt.Sprintf(`{"id":"far","port":%d}`, freePort(t)))
	var start struct{ URL, State string }
	if status != 200 || json.Unmarshal([]byte(body), &start) != nil {
		t.Fatalf("start: %d %s", status, body)
	}
	// The far browser logs in; its redirect to localhost goes nowhere
	// there, and its user copies the address.
	callback := authorizeRedirect(t, start.URL)
	other := strings.Replace(callback, "state="+start.State, "state=another", 1)
	for _, tt := range []struct {
		name, state, body string
		status            int
		has               string
	}{
		{"no url", start.State, `{}`, 400, `"field": "url"`},
		{"not a callback", start.State, `{"url":"hello"}`, 400, "oauth2callback?code="},
		{"another login's", start.State, fmt.Sprintf(`{"url":%q}`, other), 400, "not of this login"},
		{"unknown member", start.State, `{"url":"x","code":"y"}`, 400, "code"},
		{"unknown login", "nope", fmt.Sprintf(`{"url":%q}`, callback), 404, "no login"},
	} {
		if status, body := admin(t, "POST", "/proxycast/oauth/iflow/"+tt.state+"/callback", tt.body); status != tt.status || !strings.Contains(body, tt.has) {
			t.Errorf("%s: %d %s; want %d with %q", tt.name, status, body, tt.status, tt.has)
		}
	}
	if status, body := admin(t, "GET", "/proxycast/oauth/iflow/"+start.State, ""); !strings.Contains(body, `"pending"`) {
		t.Fatalf("a refused paste ended the login: %d %s", status, body)
	}
	status, body = admin(t, "POST", "/proxycast/oauth/iflow/"+start.State+"/callback", fmt.Sprintf(`{"url":%q}`, callback))
	if status != 200 || !strings.Contains(body, `"done"`) || !strings.Contains(body, "far@example.com") {
		t.Fatalf("paste: %d %s", status, body)
	}
	if v := settled(t, "far"); v.AuthType != "oauth" || v.State != "active" || v.Account != "far@example.com" {
		t.Fatalf("far: %+v", v)
	}
	if status, body := admin(t, "POST", "/proxycast/oauth/iflow/"+start.State+"/callback", fmt.Sprintf(`{"url":%q}`, callback)); status != 409 {
		t.Errorf("a second paste: %d %s", status, body)
	}
	if status, _ := admin(t, "GET", "/proxycast/oauth/iflow/"+start.State+"/callback", ""); status != 405 {
		t.Errorf("GET of the callback endpoint: %d", status)
	}
}

// authorizeRedirect runs the fake's authorize page and returns where it
// sends the browser, without following.
func authorizeRedirect(t *testing.T, authorize string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authorize)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.Contains(loc, "/oauth2callback?") {
		t.Fatalf("authorize: %d to %q", resp.StatusCode, loc)
	}
	return loc
}
