package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

// TestSoak runs steady traffic (plain and streamed) through a real Caddy
// for a while, and meanwhile makes one credential fail now and then,
// changes credentials through the admin API, reloads the config and lets
// an OAuth credential renew itself every few seconds. No request may fail
// while a good credential is there to serve it, the OAuth credential must
// never lose its token, no credential may go missing and nothing may be
// left running. PROXYCAST_SOAK=5m runs it longer (default 20s).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test")
	}
	duration := 20 * time.Second
	if v := os.Getenv("PROXYCAST_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PROXYCAST_SOAK=%q: %v", v, err)
		}
		duration = d
	}

	srv, tr := trackedIFlow(t, "sk-s1", "sk-s2", "sk-s3", "sk-rt")
	acct := srv.AddAccount("soak@example.com", "")
	// Tokens live 6s and are renewed 4s ahead: a renewal every 2s or so.
	srv.SetAccessTokenTTL(6 * time.Second)
	root := t.TempDir()
	firstRefresh := writeToken(t, root, "iflow/oauth.json", srv, acct, 6*time.Second, true)
	creds := ""
	for _, id := range []string{"s1", "s2", "s3"} {
		creds += fmt.Sprintf("\t\t\t\tcredential %s {\n\t\t\t\t\tauth_type api_key\n\t\t\t\t\tapi_key sk-%s\n\t\t\t\t}\n", id, id)
	}
	site := oauthSiteAt(tr.URL, "iflow/oauth.json", creds)
	site = strings.Replace(site, "token_file iflow/oauth.json", "token_file iflow/oauth.json\n\t\t\t\t\trefresh_before 4s", 1)
	site = strings.Replace(site, "\t\tcredential_pool {", "\t\tcooldowns {\n\t\t\ttransient 2s\n\t\t\trate_limit_max 2s\n\t\t}\n\t\tcredential_pool {", 1)
	config := storageOptions(root) + "\n" + siteAddr + " {\n" + site + "\n\thandle /health {\n\t\trespond ok\n\t}\n}\n"
	newTester(t).InitServer(config, "caddyfile")
	settle(t)
	before := baseline()
	refreshesBefore := srv.RefreshCount()
	failoversBefore := sumMetric(t, "caddy_proxycast_failovers_total")

	// Clients and the admin calls use fresh connections: a reload closes
	// the old servers' idle ones, and a request sent on one just then is
	// lost on the way (HTTP's keep-alive race, not the handler's doing).
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableKeepAlives = true
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	var (
		stop                                 = make(chan struct{})
		wg                                   sync.WaitGroup
		requests, streams, reloads, adminOps atomic.Int64
		flips, drops, failed, allCooling     atomic.Int64
		failMu                               sync.Mutex
		failures, adminErrs, loadErrs        []string
		reloading                            []time.Time // start and end of each reload
		dropped                              []string    // contents of chat requests sent again
	)
	record := func(list *[]string, format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(*list) < 20 {
			*list = append(*list, fmt.Sprintf(format, args...))
		} else if len(*list) == 20 {
			*list = append(*list, "…")
		}
	}
	running := func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	send := func(method, url, contentType, body string, header ...string) (int, string, http.Header, error) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			return 0, "", nil, err
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw), resp.Header, err
	}
	// duringReload reports whether at is within a reload, give or take
	// the time it takes to notice.
	duringReload := func(at time.Time) bool {
		failMu.Lock()
		defer failMu.Unlock()
		for i := 0; i < len(reloading); i += 2 {
			end := at
			if i+1 < len(reloading) {
				end = reloading[i+1]
			}
			if at.After(reloading[i].Add(-100*time.Millisecond)) && at.Before(end.Add(500*time.Millisecond)) {
				return true
			}
		}
		return false
	}
	do := func(method, url, contentType, body string, header ...string) (int, string, http.Header, error) {
		status, got, hdr, err := send(method, url, contentType, body, header...)
		if status == 0 && duringReload(time.Now()) {
			// A reload stops the old servers, and Go's HTTP server drops a
			// request that it read just as it began to shut down (or the
			// old listener resets a connection it had not accepted), or,
			// past the grace period, one its handler is still answering:
			// send it again, as a client would.
			drops.Add(1)
			if content, ok := strings.CutPrefix(body, `{"model":"qwen3-max","stream":`); ok {
				failMu.Lock()
				dropped = append(dropped, content[strings.Index(content, `"soak `):strings.LastIndex(content, `"`)+1])
				failMu.Unlock()
			}
			status, got, hdr, err = send(method, url, contentType, body, header...)
		}
		return status, got, hdr, err
	}

	// Traffic: two plain and two streaming clients. A longer soak sends
	// at a lower rate, so that the fake's record of every request stays
	// about as large as in the default run.
	pause := max(5*time.Millisecond, 5*time.Millisecond*time.Duration(duration/(20*time.Second)))
	for i := range 4 {
		stream := i%2 == 1
		wg.Go(func() {
			for n := 0; running(); n++ {
				body := fmt.Sprintf(`{"model":"qwen3-max","stream":%v,"messages":[{"role":"user","content":"soak %d-%d"}]}`, stream, i, n)
				status, got, hdr, err := do("POST", baseURL+"/v1/chat/completions", "application/json", body, "Authorization", "Bearer "+clientKey)
				requests.Add(1)
				if stream {
					streams.Add(1)
				}
				want := fmt.Sprintf("echo: soak %d-%d", i, n)
				why := ""
				switch {
				case err != nil:
					why = fmt.Sprintf("stream=%v: %v", stream, err)
				case status == 429 && strings.Contains(got, "all_credentials_cooling"):
					allCooling.Add(1)
					why = fmt.Sprintf("stream=%v: %s", stream, got)
				case status != 200:
					why = fmt.Sprintf("stream=%v: %d from %q: %s", stream, status, hdr.Get("X-Proxycast-Credential"), got)
				case !stream && !strings.Contains(got, `"content":"`+want+`"`):
					why = fmt.Sprintf("plain: wrong answer from %q: %s", hdr.Get("X-Proxycast-Credential"), got)
				case stream && (!strings.HasSuffix(got, "data: [DONE]\n\n") || strings.Contains(got, `"error"`)):
					why = fmt.Sprintf("stream: broken stream from %q: %q", hdr.Get("X-Proxycast-Credential"), got)
				}
				if why != "" {
					failed.Add(1)
					record(&failures, "%s", why)
				}
				time.Sleep(pause)
			}
		})
	}

	// (a) s1 fails now and then: rate limits and 500s, which the others
	// must hide.
	wg.Go(func() {
		faults := []iflowtest.Behavior{iflowtest.RateLimited, iflowtest.Normal, iflowtest.HTTP500, iflowtest.Normal}
		for n := 0; running(); n++ {
			srv.SetBehavior("sk-s1", faults[n%len(faults)])
			flips.Add(1)
			select {
			case <-stop:
			case <-time.After(700 * time.Millisecond):
			}
		}
		srv.SetBehavior("sk-s1", iflowtest.Normal)
	})

	// (b) A runtime credential is added, changed and removed over and over.
	wg.Go(func() {
		steps := []struct {
			method, path, body string
			status             int
		}{
			{"POST", "/proxycast/credentials/iflow", `{"id":"rt","auth_type":"api_key","api_key":"sk-rt"}`, 201},
			{"PATCH", "/proxycast/credentials/iflow/rt", `{"disabled":true}`, 200},
			{"PATCH", "/proxycast/credentials/iflow/rt", `{"disabled":false,"priority":2}`, 200},
			{"GET", "/proxycast/credentials/iflow/rt", "", 200},
			{"DELETE", "/proxycast/credentials/iflow/rt", "", 204},
		}
		for running() {
			for _, s := range steps { // always a whole round: rt is gone at the end
				status, body, _, err := do(s.method, adminURL+s.path, "application/json", s.body)
				adminOps.Add(1)
				if err != nil || status != s.status {
					record(&adminErrs, "%s %s: %d %v %s", s.method, s.path, status, err, body)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})

	// (c) The same config is loaded again every few seconds.
	wg.Go(func() {
		for running() {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Second):
			}
			failMu.Lock()
			reloading = append(reloading, time.Now())
			failMu.Unlock()
			status, body, _, err := send("POST", adminURL+"/load", "text/caddyfile", config, "Cache-Control", "must-revalidate")
			failMu.Lock()
			reloading = append(reloading, time.Now())
			failMu.Unlock()
			reloads.Add(1)
			if err != nil || status != 200 {
				record(&loadErrs, "%d %v %s", status, err, body)
			}
		}
	})

	time.Sleep(duration)
	close(stop)
	wg.Wait()

	refreshes := srv.RefreshCount() - refreshesBefore
	failovers := sumMetric(t, "caddy_proxycast_failovers_total") - failoversBefore
	t.Logf("soak %v: %d requests (%d streamed), %d failed (%d of them all-cooling); %.0f failovers, %d fault flips; %d refreshes; %d reloads (%d requests dropped by them and sent again); %d admin ops",
		duration, requests.Load(), streams.Load(), failed.Load(), allCooling.Load(), failovers, flips.Load(), refreshes, reloads.Load(), drops.Load(), adminOps.Load())

	// s2, s3 and the OAuth credential never fail, so no request may, not
	// even with "all credentials cooling".
	for _, f := range failures {
		t.Errorf("a request failed although a good credential could serve: %s", f)
	}
	for _, e := range adminErrs {
		t.Errorf("admin call: %s", e)
	}
	for _, e := range loadErrs {
		t.Errorf("reload: %s", e)
	}
	// A request a reload dropped was answered upstream once by its second
	// sending, and at most once more by its first: with the tests' 1ns
	// grace period, a reload also cuts requests whose handler has had its
	// answer and is writing it. More would mean the gateway sent one
	// client request upstream twice on its own.
	answered := map[string]int{}
	for _, r := range srv.ChatRequests() {
		if r.Status == 200 {
			if i := bytes.Index(r.RawBody, []byte(`"soak `)); i >= 0 {
				answered[string(r.RawBody[i:i+bytes.IndexByte(r.RawBody[i+1:], '"')+2])]++
			}
		}
	}
	for _, d := range dropped {
		if answered[d] < 1 || answered[d] > 2 {
			t.Errorf("request %s, dropped by a reload and sent again, was answered upstream %d times", d, answered[d])
		}
	}
	if requests.Load() < 100 || failovers < 1 || reloads.Load() < max(1, int64(duration/(6*time.Second))) {
		t.Errorf("the soak did too little: %d requests, %.0f failovers, %d reloads", requests.Load(), failovers, reloads.Load())
	}

	// The OAuth credential renewed itself again and again, never used a
	// refresh token twice, and its stored token is whole and current.
	if want := max(1, int(duration/(6*time.Second))); refreshes < want {
		t.Errorf("%d refreshes in %v, want at least %d", refreshes, duration, want)
	}
	if n := srv.ReusedRefreshTokens(); n != 0 {
		t.Errorf("%d refresh tokens were used twice", n)
	}
	tok, _ := readToken(t, root, "iflow/oauth.json")
	if tok.RefreshToken == firstRefresh || tok.APIKey != acct.APIKey() || time.Until(tok.ExpiresAt) <= 0 {
		t.Errorf("stored token: refreshed %v, key ok %v, expires in %v", tok.RefreshToken != firstRefresh, tok.APIKey == acct.APIKey(), time.Until(tok.ExpiresAt))
	}

	// Every credential of the config is there and usable; rt is gone.
	status, body := admin(t, "GET", "/proxycast/credentials", "")
	var vs []credView
	if status != 200 || json.Unmarshal([]byte(body), &vs) != nil {
		t.Fatalf("list: %d %s", status, body)
	}
	got := map[string]credView{}
	for _, v := range vs {
		got[v.ID] = v
	}
	for _, id := range []string{"s1", "s2", "s3", "oauth-1"} {
		v, ok := got[id]
		usable := v.State == "active" || id == "s1" && v.State == "cooling" || id == "oauth-1" && v.State == "refreshing"
		switch {
		case !ok:
			t.Errorf("credential %s is gone", id)
		case !usable || v.Requests == 0:
			t.Errorf("credential %s: state %q, %d requests", id, v.State, v.Requests)
		}
	}
	if _, ok := got["rt"]; ok || len(got) != 4 {
		t.Errorf("credentials after the soak: %v", vs)
	}
	// Nothing holds on to the removed credential's state.
	if v := scrapeMetric(t, "caddy_proxycast_credential_state", `credential="rt"`); v != -1 {
		t.Errorf("the removed credential rt still has a state (gauge %v)", v)
	}
	if v := got["oauth-1"]; v.LastError != "" || v.ExpiresAt == nil || !v.ExpiresAt.After(time.Now()) {
		t.Errorf("oauth-1 after the soak: %+v", v)
	}
	transport.CloseIdleConnections()
	checkNoLeaks(t, before, tr)
}
