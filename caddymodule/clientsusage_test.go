package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/caddymodule"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func startClock(t *testing.T, at time.Time) *testClock {
	c := &testClock{now: at}
	t.Cleanup(caddymodule.SetClock(c.Now))
	return c
}

// TestClientWindowEdges: a rate limit's window and a budget's period at
// their edges, on the handler's clock.
func TestClientWindowEdges(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 23, 59, 0, 0, time.UTC)
	clock := startClock(t, t0)
	srv := fakeIFlow(t, "sk-a")
	startCaddy(t, poolConfig(srv, `		client edge {
			key edge-key
			rate_limit 3/m
		}
		client daily {
			key daily-key
			token_budget 1/day
		}
`, "sk-a"))
	at := func(d time.Duration, dialect string, want int, retry string) {
		t.Helper()
		clock.set(t0.Add(d))
		status, ra, body := dialectCall(t, dialect, "edge-key", "qwen3-max")
		if status != want || ra != retry {
			t.Errorf("at +%v (%s): %d, Retry-After %q; want %d, %q: %s", d, dialect, status, ra, want, retry, body)
		}
	}
	at(0, "chat", 200, "")
	at(20*time.Second, "messages", 200, "")
	at(40*time.Second, "responses", 200, "")
	at(59*time.Second+999*time.Millisecond, "count_tokens", 429, "1")
	at(time.Minute, "chat", 200, "")                      // the first has left the window
	at(time.Minute, "chat", 429, "20")                    // the second has not
	at(80*time.Second-time.Millisecond, "chat", 429, "1") // nor one millisecond before
	at(80*time.Second, "messages", 200, "")

	// The day's budget renews at 00:00:00 UTC to the nanosecond.
	clock.set(t0.Add(59*time.Second + 500*time.Millisecond))
	if status, _, body := dialectCall(t, "chat", "daily-key", "qwen3-max"); status != 200 {
		t.Fatalf("daily's first request: %d %s", status, body)
	}
	status, ra, body := dialectCall(t, "chat", "daily-key", "qwen3-max")
	if status != 429 || ra != "1" || !strings.Contains(body, "renews at 2026-12-08T00:00:00Z") {
		t.Errorf("half a second before midnight: %d, Retry-After %q: %s", status, ra, body)
	}
	clock.set(time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC))
	if status, _, body := dialectCall(t, "messages", "daily-key", "qwen3-max"); status != 200 {
		t.Errorf("at midnight: %d %s", status, body)
	}
}

type usageJSON struct {
	Requests, Prompt, Completion, Cached, Reasoning int64
	Estimated                                       int64
	EstimatedTokens                                 int64 `json:"estimated_tokens"`
}

type clientJSON struct {
	Name, Source string
	Keys         int
	Models       []string
	RateLimit    string `json:"rate_limit"`
	TokenBudget  string `json:"token_budget"`
	Expires      *time.Time
	Budget       *struct {
		Spent         int64
		Start, Renews time.Time
	}
	LeftOut       string `json:"left_out"`
	RuntimeChange string `json:"runtime_change"`
	Usage         map[string]usageJSON
	UsageTotal    usageJSON `json:"usage_total"`
}

func clientsJSON(t *testing.T) map[string]clientJSON {
	t.Helper()
	status, body := admin(t, "GET", "/proxycast/clients", "")
	var list []clientJSON
	if status != 200 || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("clients: %d %s", status, body)
	}
	out := map[string]clientJSON{}
	for _, c := range list {
		out[c.Name] = c
	}
	return out
}

// TestUsageEstimated: an upstream that reports no usage, in plain answers
// and in streams, has what its answers cost estimated and marked so, for
// the client and for the credential, in the admin API and the metrics;
// estimates count against a budget.
func TestUsageEstimated(t *testing.T) {
	up := fakeOpenAI(t, []string{"m"}, "sk-e")
	up.SetOmitUsage(true)
	startCaddy(t, fmt.Sprintf(`		provider quiet {
			type openai
			api_base %s
		}
		credential_pool {
			quiet {
				credential q-1 {
					auth_type api_key
					api_key sk-e
				}
			}
		}
		client est {
			key est-key-0123456789
			token_budget 1000/day
		}`, up.APIBase()))
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20)
	for _, tt := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"` + long + `"}]}`},
		{"/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"` + long + `"}]}`},
		{"/v1/messages", `{"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"` + long + `"}]}`},
	} {
		resp := post(t, tt.path, tt.body, "Authorization", "Bearer est-key-0123456789", "Anthropic-Version", "2023-06-01")
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tt.path, resp.StatusCode, raw)
		}
	}
	u := clientsJSON(t)["est"].Usage["m"]
	// Each prompt is about 200 tokens, each answer a few.
	if u.Requests != 3 || u.Estimated != 3 || u.Prompt < 3*150 || u.Prompt > 3*260 || u.Completion < 3 || u.EstimatedTokens != u.Prompt+u.Completion {
		t.Errorf("est's usage: %+v", u)
	}
	cred := credentialJSON(t, "quiet", "q-1")
	var cu map[string]usageJSON
	raw, _ := json.Marshal(cred["usage"])
	if err := json.Unmarshal(raw, &cu); err != nil || cu["m"] != u {
		t.Errorf("the credential's usage by model %s, want the client's %+v", raw, u)
	}
	if tokens, _ := cred["tokens"].(map[string]any); tokens["estimated"] != float64(u.EstimatedTokens) {
		t.Errorf("the credential's tokens: %v", tokens)
	}
	if got := scrapeMetric(t, "caddy_proxycast_client_estimated_tokens_total", `client="est"`, `kind="prompt"`); got != float64(u.Prompt) {
		t.Errorf("client_estimated_tokens_total prompt %v, want %d", got, u.Prompt)
	}
	if got := scrapeMetric(t, "caddy_proxycast_estimated_tokens_total", `credential="q-1"`, `kind="completion"`); got != float64(u.Completion) {
		t.Errorf("estimated_tokens_total completion %v, want %d", got, u.Completion)
	}
	if got := scrapeMetric(t, "caddy_proxycast_client_tokens_total", `client="est"`); got != -1 {
		t.Errorf("estimates went into client_tokens_total: %v", got)
	}

	// Past 1000 estimated tokens the budget refuses.
	refused := false
	for range 10 {
		status, _, body := dialectCall(t, "chat", "est-key-0123456789", "m")
		if status == http.StatusTooManyRequests {
			refused = strings.Contains(body, "token budget of 1000/day")
			break
		}
	}
	after := clientsJSON(t)["est"]
	if !refused || after.Budget == nil || after.Budget.Spent < 1000 || after.Budget.Spent != after.UsageTotal.EstimatedTokens {
		t.Errorf("the budget and the estimates: refused %v, %+v", refused, after)
	}

	// An upstream that reports is not estimated.
	up.SetOmitUsage(false)
	startClock(t, time.Now().AddDate(0, 0, 2)) // a fresh budget period
	if status, _, body := dialectCall(t, "chat", "est-key-0123456789", "m"); status != 200 {
		t.Fatalf("reported: %d %s", status, body)
	}
	got := clientsJSON(t)["est"].Usage["m"]
	if got.Requests != after.UsageTotal.Requests+1 || got.Estimated != after.UsageTotal.Estimated || got.EstimatedTokens != after.UsageTotal.EstimatedTokens {
		t.Errorf("a reported answer changed the estimates: %+v, before %+v", got, after.UsageTotal)
	}
}

// TestCredentialUsageKept: a credential's usage by model is counted from
// what the upstream reports, shown by the admin API, stored, and kept
// across a stop and start, and across a deletion and a config that
// brings the credential back with another key.
func TestCredentialUsageKept(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b")
	root := t.TempDir()
	cfg := func(key string) string {
		return "\tproxycast {\n" + poolConfig(srv, "\t\tusage_sync 100ms\n", key) + "\t}"
	}
	startWithStorage(t, root, cfg("sk-a"))
	for _, body := range []string{
		`{"model":"qwen3-max","messages":[{"role":"user","content":"one two three"}]}`,
		`{"model":"qwen3-max","stream":true,"messages":[{"role":"user","content":"four five"}]}`,
		`{"model":"glm-4.6","messages":[{"role":"user","content":"six"}]}`,
	} {
		if resp, raw := chat(t, body); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, raw)
		}
	}
	byModel := func() map[string]usageJSON {
		t.Helper()
		var u map[string]usageJSON
		raw, _ := json.Marshal(credentialJSON(t, "iflow", "key-1")["usage"])
		if err := json.Unmarshal(raw, &u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	first := byModel()
	if q, g := first["qwen3-max"], first["glm-4.6"]; q.Requests != 2 || q.Prompt <= 0 || q.Completion <= 0 || q.Estimated != 0 || g.Requests != 1 {
		t.Fatalf("usage by model: %+v", first)
	}

	if status, body := loadCaddyfile(t, storageOptions(root)+site("\trespond \"nothing here\"")); status != 200 {
		t.Fatalf("stopping: %d %s", status, body)
	}
	if status, body := reload(t, root, cfg("sk-a")); status != 200 {
		t.Fatalf("starting again: %d %s", status, body)
	}
	if got := byModel(); got["qwen3-max"] != first["qwen3-max"] || got["glm-4.6"] != first["glm-4.6"] {
		t.Errorf("after a stop and start: %+v, before %+v", got, first)
	}
	// Deleted at run time, the credential's counts are kept aside; the
	// config that brings it back (another key under the same id, so a
	// new credential state) takes them up again.
	if status, body := admin(t, "DELETE", "/proxycast/credentials/iflow/key-1", ""); status != 204 {
		t.Fatalf("deleting key-1: %d %s", status, body)
	}
	if _, ok := list(t)["key-1"]; ok {
		t.Fatal("key-1 is still there")
	}
	if status, body := reload(t, root, cfg("sk-b")); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if resp, raw := chat(t, `{"model":"glm-4.6","messages":[{"role":"user","content":"seven"}]}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	if got := byModel(); got["qwen3-max"] != first["qwen3-max"] || got["glm-4.6"].Requests != 2 {
		t.Errorf("after a new key: %+v, before %+v", got, first)
	}
}
