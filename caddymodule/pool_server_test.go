package caddymodule_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

// twoKeys is a proxycast block with credentials a and b (keys sk-a, sk-b)
// and extra options.
func twoKeys(srv *iflowtest.Server, extra, aOpts, bOpts string) string {
	return fmt.Sprintf(`		api_keys %s
%s
		credential_pool {
			iflow {
				credential a {
					auth_type api_key
					api_key sk-a
%s
				}
				credential b {
					auth_type api_key
					api_key sk-b
%s
				}
			}
		}
		provider iflow {
			api_base %s
		}`, clientKey, extra, aOpts, bOpts, srv.APIBase())
}

// scrapeMetric reads one sample from Caddy's admin /metrics; -1 if absent.
func scrapeMetric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		all := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				all = false
			}
		}
		if all {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return v
		}
	}
	return -1
}

// TestFailoverHidesRateLimit: with one rate-limited and one good account,
// the client never sees the 449.
func TestFailoverHidesRateLimit(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	srv.SetBehavior("sk-a", iflowtest.RateLimited)
	startCaddy(t, twoKeys(srv, "", "", ""))
	before := scrapeMetric(t, "caddy_proxycast_failovers_total", `provider="iflow"`, `reason="rate_limit"`)

	for i := range 6 {
		stream := i%2 == 1
		resp, body := chat(t, fmt.Sprintf(`{"model":"qwen3-max","stream":%v,"messages":[{"role":"user","content":"x"}]}`, stream))
		if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "b" {
			t.Fatalf("request %d: %d from %q: %s", i, resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), body)
		}
	}
	limited := 0
	for _, r := range srv.ChatRequests() {
		if r.APIKey == "sk-a" {
			limited++
		}
	}
	if limited != 1 {
		t.Errorf("the rate-limited account was tried %d times; after the first 449 it must rest", limited)
	}
	if after := scrapeMetric(t, "caddy_proxycast_failovers_total", `provider="iflow"`, `reason="rate_limit"`); after != max(before, 0)+1 {
		t.Errorf("failovers metric %v -> %v, want one more", before, after)
	}
	if v := scrapeMetric(t, "caddy_proxycast_credential_state", `credential="a"`, `state="cooling"`); v != 1 {
		t.Errorf("credential a's cooling state gauge = %v", v)
	}
}

// TestAllCoolingThenRecovery: when every account is rate-limited the
// client gets 429 with Retry-After naming the earliest recovery; after the
// rest the accounts serve again without anyone acting.
func TestAllCoolingThenRecovery(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	srv.SetBehavior("sk-a", iflowtest.RateLimited)
	srv.SetBehavior("sk-b", iflowtest.RateLimited)
	startCaddy(t, twoKeys(srv, "", "", ""))

	resp, body := chat(t, qwenBody)
	if resp.StatusCode != 429 || decodeError(t, body).Error.Code != "upstream_rate_limited" {
		t.Fatalf("first: %d %s", resp.StatusCode, body)
	}
	resp, body = chat(t, qwenBody)
	if resp.StatusCode != 429 || decodeError(t, body).Error.Code != "all_credentials_cooling" {
		t.Fatalf("second: %d %s", resp.StatusCode, body)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 2 {
		t.Errorf("Retry-After %q, want the 1s rest of a first rate limit", resp.Header.Get("Retry-After"))
	}
	if !regexp.MustCompile(`back in \d+s \(at 20\d\d-`).MatchString(decodeError(t, body).Error.Message) {
		t.Errorf("message does not name the recovery: %s", body)
	}
	srv.SetBehavior("sk-a", iflowtest.Normal)
	srv.SetBehavior("sk-b", iflowtest.Normal)
	time.Sleep(time.Duration(ra)*time.Second + 100*time.Millisecond)
	if resp, body := chat(t, qwenBody); resp.StatusCode != 200 {
		t.Fatalf("after the rest: %d %s", resp.StatusCode, body)
	}
}

// TestNoneUsable: disabled everywhere is a 503 with Retry-After.
func TestNoneUsable(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	startCaddy(t, twoKeys(srv, "", "\t\t\t\t\tdisabled", "\t\t\t\t\tdisabled"))
	resp, body := chat(t, qwenBody)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || decodeError(t, body).Error.Code != "no_usable_credential" {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// TestReloadKeepsState: a rest and the counters survive `caddy reload`,
// and the metrics keep counting.
func TestReloadKeepsState(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	srv.SetBehavior("sk-a", iflowtest.BlockedKey)
	cfg := twoKeys(srv, "\t\tselection fill_first", "", "")
	startCaddy(t, cfg)
	for range 3 {
		if resp, body := chat(t, qwenBody); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	served := scrapeMetric(t, "caddy_proxycast_requests_total", `credential="b"`, `status="200"`)
	if served < 3 {
		t.Fatalf("requests metric for b: %v", served)
	}
	srv.SetBehavior("sk-a", iflowtest.Normal)

	// Reload the same config (and a changed unrelated option): a keeps
	// resting, so fill_first still lands on b.
	startCaddy(t, cfg+"\n\t\tmax_attempts 4")
	for range 3 {
		resp, body := chat(t, qwenBody)
		if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "b" {
			t.Fatalf("after reload: %d from %q %s", resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), body)
		}
	}
	if got := scrapeMetric(t, "caddy_proxycast_requests_total", `credential="b"`, `status="200"`); got != served+3 {
		t.Errorf("requests metric for b after reload %v, want %v", got, served+3)
	}
	if v := scrapeMetric(t, "caddy_proxycast_credential_state", `credential="a"`, `state="cooling"`); v != 1 {
		t.Errorf("a's cooling gauge after reload = %v", v)
	}

	// A config without a drops its state: added back, it starts fresh.
	startCaddy(t, strings.Replace(cfg, "api_key sk-a", "api_key sk-b", 1)+"\n\t\tmax_attempts 2")
	startCaddy(t, cfg)
	if resp, _ := chat(t, qwenBody); resp.Header.Get("X-Proxycast-Credential") != "a" {
		t.Errorf("a changed and back: still resting (served by %q)", resp.Header.Get("X-Proxycast-Credential"))
	}
}

// TestPriorityGroups: priority 1 serves until it cannot, then priority 2.
func TestPriorityGroups(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	startCaddy(t, twoKeys(srv, "", "\t\t\t\t\tpriority 2", "\t\t\t\t\tpriority 1"))
	for range 4 {
		if resp, _ := chat(t, qwenBody); resp.Header.Get("X-Proxycast-Credential") != "b" {
			t.Fatalf("served by %q, want the priority-1 credential b", resp.Header.Get("X-Proxycast-Credential"))
		}
	}
	srv.SetBehavior("sk-b", iflowtest.HTTP500)
	resp, body := chat(t, qwenBody)
	if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "a" {
		t.Fatalf("with b failing: %d from %q: %s", resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), body)
	}
}

// TestStickySessions: requests carrying one session id stay on one
// credential; another session goes elsewhere.
func TestStickySessions(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	startCaddy(t, twoKeys(srv, "\t\tsticky_header X-Session-Id", "", ""))
	first, _ := chat(t, qwenBody, "X-Session-Id", "conv-1")
	for range 4 {
		resp, _ := chat(t, qwenBody, "X-Session-Id", "conv-1")
		if resp.Header.Get("X-Proxycast-Credential") != first.Header.Get("X-Proxycast-Credential") {
			t.Fatal("a session moved between credentials")
		}
	}
	seen := map[string]bool{}
	for i := range 4 {
		resp, _ := chat(t, qwenBody, "X-Session-Id", fmt.Sprintf("other-%d", i))
		seen[resp.Header.Get("X-Proxycast-Credential")] = true
	}
	if len(seen) != 2 {
		t.Errorf("new sessions all went to %v", seen)
	}
}

// TestStreamFailoverBeforeFirstEvent: a stream whose first event is a
// failure goes to the next credential; the client sees one clean stream.
func TestStreamFailoverBeforeFirstEvent(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	srv.SetBehavior("sk-a", iflowtest.InvalidKey)
	startCaddy(t, twoKeys(srv, "\t\tselection fill_first", "", ""))
	req, _ := http.NewRequest(http.MethodPost, baseURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"qwen3-max","stream":true,"messages":[{"role":"user","content":"hello"}]}`))
	req.Header.Set("Authorization", "Bearer "+clientKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(bufio.NewReader(resp.Body))
	if err != nil {
		t.Fatal(err)
	}
	evs := events(string(raw))
	if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "b" || len(evs) < 2 || evs[len(evs)-1] != "[DONE]" || strings.Contains(string(raw), "error") {
		t.Fatalf("%d from %q: %s", resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), raw)
	}
	// a was tried first (fill_first) and failed: b's stream is a
	// failover, not a pick that skipped a.
	var keys []string
	for _, r := range srv.ChatRequests() {
		keys = append(keys, r.APIKey+": "+r.Outcome)
	}
	if strings.Join(keys, ", ") != "sk-a: behavior InvalidKey, sk-b: ok" {
		t.Errorf("upstream saw %v, want a (refused) then b", keys)
	}
}

// TestConcurrentFailover hammers a pool in which one account starts
// failing midway, under -race: every request is served, each failure of
// the failing account is failed over to the other (and counted as one),
// and the failing account then rests instead of being tried again and
// again.
func TestConcurrentFailover(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	startCaddy(t, twoKeys(srv, "", "", ""))
	failovers := sumMetric(t, "caddy_proxycast_failovers_total", `reason="transient"`)
	const n = 200
	// The requests are sent from goroutines, which must not stop the
	// test (chat would): failures are collected and reported here.
	send := func() error {
		req, err := http.NewRequest(http.MethodPost, baseURL+"/v1/chat/completions", strings.NewReader(qwenBody))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+clientKey)
		resp, err := testClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("%d from %q: %s", resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), raw)
		}
		if from := resp.Header.Get("X-Proxycast-Credential"); from != "a" && from != "b" {
			return fmt.Errorf("served by %q", from)
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		if i == 50 {
			srv.SetBehavior("sk-a", iflowtest.HTTP500)
		}
		wg.Go(func() {
			if err := send(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a request failed although b could serve it: %v", e)
	}

	// The fake's log: each request was served upstream exactly once,
	// and the only failures are a's 500s.
	var served, failedA int
	for _, r := range srv.ChatRequests() {
		switch {
		case r.Status == 200 && r.Outcome == "ok":
			served++
		case r.APIKey == "sk-a" && r.Status == 500 && r.Outcome == "behavior HTTP500":
			failedA++
		default:
			t.Errorf("upstream answered %s with %d (%s)", r.APIKey, r.Status, r.Outcome)
		}
	}
	if served != n {
		t.Errorf("upstream served %d requests, want each of the %d once", served, n)
	}
	// At least 150 requests were sent after a began to fail, and they
	// picked a and b in turn until a rested: a failed at least once. No
	// request tried a twice.
	t.Logf("a failed %d times", failedA)
	if failedA < 1 || failedA > n {
		t.Errorf("a failed %d times, want at least once and at most once per request", failedA)
	}
	got := sumMetric(t, "caddy_proxycast_failovers_total", `reason="transient"`) - failovers
	if got != float64(failedA) {
		t.Errorf("transient failovers metric grew by %v, want %d: one per failure of a", got, failedA)
	}
	if v := scrapeMetric(t, "caddy_proxycast_credential_state", `credential="a"`, `state="cooling"`); v != 1 {
		t.Errorf("a's cooling state gauge = %v after its failures, want 1", v)
	}
	// Resting, a is not tried again.
	before := srv.ChatCount()
	for range 4 {
		if resp, body := chat(t, qwenBody); resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "b" {
			t.Fatalf("while a rests: %d from %q: %s", resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), body)
		}
	}
	if got := srv.ChatCount() - before; got != 4 {
		t.Errorf("4 requests while a rests reached the upstream %d times, want 4 (b only)", got)
	}
}

// TestUnsupportedModelEverywhere: when every credential said it cannot
// serve a model, the client keeps getting a model error, not a 429 that
// promises the model back in 12 hours; other models are served.
func TestUnsupportedModelEverywhere(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	startCaddy(t, twoKeys(srv, "", "", ""))
	glm := `{"model":"glm-4.6","messages":[{"role":"user","content":"x"}]}`
	srv.SetBehavior("sk-a", iflowtest.ModelNotSupported)
	srv.SetBehavior("sk-b", iflowtest.ModelNotSupported)
	for i := range 2 {
		resp, body := chat(t, glm)
		if resp.StatusCode != 400 || decodeError(t, body).Error.Code != "model_not_supported" {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	srv.SetBehavior("sk-a", iflowtest.Normal)
	srv.SetBehavior("sk-b", iflowtest.Normal)
	if resp, body := chat(t, qwenBody); resp.StatusCode != 200 {
		t.Fatalf("another model: %d %s", resp.StatusCode, body)
	}
}
