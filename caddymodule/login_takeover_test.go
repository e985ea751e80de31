package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// uniqueID is a credential id of this run only: logins are process-wide,
// and an ended one stays listed after its test.
func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// loginStatus is GET /proxycast/oauth/iflow/{state}.
func loginStatus(t *testing.T, state string) (status, errText string) {
	t.Helper()
	code, body := admin(t, "GET", "/proxycast/oauth/iflow/"+state, "")
	if code != 200 {
		t.Fatalf("login status: %d %s", code, body)
	}
	var st struct{ State, Error string }
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("login status: %v: %s", err, body)
	}
	return st.State, st.Error
}

// openInBrowser plays the browser on a login URL: the fake iFlow
// redirects to the callback, whose status and page it returns.
func openInBrowser(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := testClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(page)
}

// TestAdminLoginTakeover: a login through the admin API on the port of a
// pending one takes the port over; the pending one fails, saying so, and
// its browser no longer completes it.
func TestAdminLoginTakeover(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	srv.AddAccount("takeover@example.com", "")
	startWithStorage(t, t.TempDir(), adminSite(srv))
	port := freePort(t)
	first, second, third := uniqueID("first"), uniqueID("second"), uniqueID("third")

	oldURL, oldState := startLogin(t, fmt.Sprintf(`{"id":%q,"port":%d,"timeout":"1m"}`, first, port))
	newURL, newState := startLogin(t, fmt.Sprintf(`{"id":%q,"port":%d,"timeout":"1m","priority":1}`, second, port))
	if st, errText := loginStatus(t, oldState); st != "failed" || !strings.Contains(errText, "took over its callback port "+strconv.Itoa(port)) {
		t.Errorf("the login taken over: %s %q", st, errText)
	}
	if st, _ := loginStatus(t, newState); st != "pending" {
		t.Errorf("the new login: %s", st)
	}

	// The old login's browser comes back to the new login's server.
	if status, page := openInBrowser(t, oldURL); status != http.StatusBadRequest {
		t.Errorf("old login's callback: %d %s", status, page)
	}
	if status, page := openInBrowser(t, newURL); status != 200 || !strings.Contains(page, "takeover@example.com") {
		t.Fatalf("new login's callback: %d %s", status, page)
	}
	waitFor(t, "the new login to complete", func() bool {
		st, _ := loginStatus(t, newState)
		return st == "done"
	})
	if got := servedBy(t); got != second {
		t.Errorf("served by %q, want the logged-in %q", got, second)
	}
	if v, ok := list(t)[first]; ok {
		t.Errorf("the login taken over added its credential: %+v", v)
	}

	// A login again for the same credential, on the same port: the
	// pending one goes, rather than waiting out its timeout.
	_, pendingState := startLogin(t, fmt.Sprintf(`{"id":%q,"port":%d,"timeout":"1m"}`, third, port))
	againURL, againState := startLogin(t, fmt.Sprintf(`{"id":%q,"port":%d,"timeout":"1m"}`, third, port))
	if st, errText := loginStatus(t, pendingState); st != "failed" || !strings.Contains(errText, "took over") {
		t.Errorf("the same credential's pending login: %s %q", st, errText)
	}
	if status, page := openInBrowser(t, againURL); status != 200 {
		t.Fatalf("callback: %d %s", status, page)
	}
	waitFor(t, "the second login of the credential", func() bool {
		st, _ := loginStatus(t, againState)
		return st == "done"
	})
}

// TestAdminLoginCancel: a CLI login cannot take over a port that a
// pending admin-API login holds, and says which login holds it and how
// to cancel it; DELETE /proxycast/oauth/{provider}/{state} cancels it and
// frees the port.
func TestAdminLoginCancel(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	srv.AddAccount("cancel@example.com", "")
	startWithStorage(t, t.TempDir(), adminSite(srv))
	port := freePort(t)
	id := uniqueID("pending")
	_, state := startLogin(t, fmt.Sprintf(`{"id":%q,"port":%d,"timeout":"1m"}`, id, port))

	tokenFile := filepath.Join(t.TempDir(), "cli.json")
	cliArgs := []string{"login", "iflow", "--no-browser", "--port", strconv.Itoa(port), "--timeout", "20s",
		"--oauth-base", srv.OAuthBase(), "--token-file", tokenFile}
	_, done := proxycastCLI(t, "", cliArgs...)
	select {
	case err := <-done:
		for _, want := range []string{"port " + strconv.Itoa(port), "admin API", "pending", strconv.Quote(id), adminAddr, "DELETE /proxycast/oauth/iflow/{state}"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("CLI login on a held port: %v; want %q in it", err, want)
			}
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the CLI login on a held port did not fail")
	}

	if status, body := admin(t, "DELETE", "/proxycast/oauth/iflow/"+state, ""); status != http.StatusNoContent {
		t.Fatalf("cancel: %d %s", status, body)
	}
	if st, errText := loginStatus(t, state); st != "failed" || !strings.Contains(errText, "canceled") {
		t.Errorf("after cancel: %s %q", st, errText)
	}
	if status, body := admin(t, "DELETE", "/proxycast/oauth/iflow/"+state, ""); status != http.StatusConflict || !strings.Contains(body, "no longer pending") {
		t.Errorf("cancel again: %d %s", status, body)
	}
	if status, body := admin(t, "DELETE", "/proxycast/oauth/iflow/no-such-state", ""); status != http.StatusNotFound {
		t.Errorf("cancel of an unknown login: %d %s", status, body)
	}
	if status, body := admin(t, "DELETE", "/proxycast/oauth/other/"+state, ""); status != http.StatusNotFound {
		t.Errorf("cancel under another provider: %d %s", status, body)
	}

	// The port is free: the CLI login binds it and completes.
	out, done := proxycastCLI(t, "", cliArgs...)
	buf := make([]byte, 4096)
	n, _ := out.Read(buf)
	u := regexp.MustCompile(`http://\S+/oauth\?\S+`).FindString(string(buf[:n]))
	if u == "" {
		select {
		case err := <-done:
			t.Fatalf("CLI login after the cancel: %v (%q)", err, buf[:n])
		default:
			t.Fatalf("no login URL printed: %q", buf[:n])
		}
	}
	if status, page := openInBrowser(t, u); status != 200 {
		t.Fatalf("callback: %d %s", status, page)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("CLI login after the cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the CLI login did not complete")
	}

	// A completed login is no longer pending either.
	doneID := uniqueID("done")
	loginURL, doneState := startLogin(t, fmt.Sprintf(`{"id":%q,"port":%d,"timeout":"1m"}`, doneID, freePort(t)))
	if status, page := openInBrowser(t, loginURL); status != 200 {
		t.Fatalf("callback: %d %s", status, page)
	}
	waitFor(t, "the login to complete", func() bool {
		st, _ := loginStatus(t, doneState)
		return st == "done"
	})
	if status, body := admin(t, "DELETE", "/proxycast/oauth/iflow/"+doneState, ""); status != http.StatusConflict || !strings.Contains(body, "done") {
		t.Errorf("cancel of a completed login: %d %s", status, body)
	}
}

// TestImportCookieAdminChecksFirst: import-cookie --admin refuses an id
// it cannot use before it asks for the cookie.
func TestImportCookieAdminChecksFirst(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	srv.AddCookieAccount("bx-first")
	startWithStorage(t, t.TempDir(), adminSite(srv))
	for _, tc := range []struct{ id, want string }{
		{"a", `credential "a" has auth_type api_key, not cookie`},
		{"no spaces", "--id:"},
	} {
		out, done := proxycastCLI(t, "BXAuth=bx-first\n", "import-cookie", "--admin", adminAddr, "--id", tc.id)
		var err error
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("import-cookie did not end")
		}
		printed, _ := io.ReadAll(out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--id %q: %v, want %q", tc.id, err, tc.want)
		}
		if strings.Contains(string(printed), "Paste") {
			t.Errorf("--id %q: asked for the cookie first:\n%s", tc.id, printed)
		}
	}
	if n := srv.KeyRegenerations(); n != 0 {
		t.Errorf("refused imports issued %d keys", n)
	}
}
