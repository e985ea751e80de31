package caddymodule_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const clientsBlock = `
		client alice {
			key alice-key alice-second-key
			models qwen3-* claude-*
		}
		client carol {
			key carol-key
			rate_limit 2/1h
		}
		client old {
			key old-key
			expires 2020-01-01
		}
`

// dialectCall sends a minimal request for model in one client dialect
// with key, and returns the status, the Retry-After and the body.
func dialectCall(t *testing.T, dialect, key, model string) (int, string, string) {
	t.Helper()
	var resp *http.Response
	switch dialect {
	case "chat":
		resp = post(t, "/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`, "Authorization", "Bearer "+key)
	case "messages":
		resp = post(t, "/v1/messages", `{"model":"`+model+`","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`,
			"X-Api-Key", key, "Anthropic-Version", "2023-06-01")
	case "responses":
		resp = post(t, "/v1/responses", `{"model":"`+model+`","input":"hi"}`, "Authorization", "Bearer "+key)
	case "count_tokens":
		resp = post(t, "/v1/messages/count_tokens", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`,
			"X-Api-Key", key, "Anthropic-Version", "2023-06-01")
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(raw)
}

// checkShape checks an error body is in the dialect's own shape.
func checkShape(t *testing.T, dialect, body, typ string) string {
	t.Helper()
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type, Code, Message string
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Message == "" {
		t.Fatalf("%s: not an error object: %s", dialect, body)
	}
	if anthropicShape := dialect == "messages" || dialect == "count_tokens"; anthropicShape != (e.Type == "error") {
		t.Errorf("%s: the error is not in the dialect's shape: %s", dialect, body)
	}
	if e.Error.Type != typ {
		t.Errorf("%s: error type %q, want %q: %s", dialect, e.Error.Type, typ, body)
	}
	return e.Error.Message
}

// TestClients: named clients' keys, models, expiry and rate limit, in
// every client dialect.
func TestClients(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	root := t.TempDir()
	cfg := poolConfig(srv, clientsBlock, "sk-a")
	startWithStorage(t, root, "\tproxycast {\n"+cfg+"\t}")
	dialects := []string{"chat", "messages", "responses", "count_tokens"}

	for _, d := range dialects {
		// Every client's key works for what it may use; the unnamed
		// api_keys client for anything.
		for _, key := range []string{"alice-key", "alice-second-key", clientKey} {
			if status, _, body := dialectCall(t, d, key, "qwen3-max"); status != 200 {
				t.Errorf("%s with %s: %d %s", d, key, status, body)
			}
		}
		// A model outside alice's globs.
		status, _, body := dialectCall(t, d, "alice-key", "glm-4.6")
		if status != http.StatusForbidden {
			t.Errorf("%s: alice asking for glm-4.6: %d %s", d, status, body)
		} else if m := checkShape(t, d, body, "permission_error"); !strings.Contains(m, `client "alice" may not use model "glm-4.6"`) || !strings.Contains(m, "qwen3-*, claude-*") {
			t.Errorf("%s: %q", d, m)
		}
		if status, _, _ := dialectCall(t, d, clientKey, "glm-4.6"); status != 200 {
			t.Errorf("%s: the api_keys client asking for glm-4.6: %d", d, status)
		}
		// An expired client.
		status, _, body = dialectCall(t, d, "old-key", "qwen3-max")
		if status != http.StatusUnauthorized {
			t.Errorf("%s: the expired client: %d %s", d, status, body)
		} else if m := checkShape(t, d, body, map[bool]string{true: "authentication_error", false: "invalid_request_error"}[d == "messages" || d == "count_tokens"]); !strings.Contains(m, `client "old" expired at 2020-01-01T00:00:00Z`) {
			t.Errorf("%s: %q", d, m)
		}
	}

	// carol may send two requests an hour, whatever the dialect: the third
	// and after are 429s with Retry-After, in each dialect's shape.
	for i, d := range []string{"chat", "messages"} {
		if status, _, body := dialectCall(t, d, "carol-key", "qwen3-max"); status != 200 {
			t.Fatalf("carol's request %d (%s): %d %s", i+1, d, status, body)
		}
	}
	for _, d := range dialects {
		status, retry, body := dialectCall(t, d, "carol-key", "qwen3-max")
		secs, _ := strconv.Atoi(retry)
		if status != http.StatusTooManyRequests || secs < 3500 || secs > 3600 {
			t.Errorf("%s: carol over her limit: %d, Retry-After %q: %s", d, status, retry, body)
			continue
		}
		if m := checkShape(t, d, body, "rate_limit_error"); !strings.Contains(m, `client "carol" may send 2/h requests`) {
			t.Errorf("%s: %q", d, m)
		}
	}
	// The model list is not a model request and is not limited; it shows
	// a client only what it may use.
	resp, err := http.NewRequest(http.MethodGet, baseURL+"/v1/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Header.Set("Authorization", "Bearer alice-key")
	r, err := testClient.Do(resp)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(r.Body)
	r.Body.Close()
	var list struct{ Data []struct{ ID string } }
	if r.StatusCode != 200 || json.Unmarshal(raw, &list) != nil || len(list.Data) == 0 {
		t.Fatalf("alice's models: %d %s", r.StatusCode, raw)
	}
	for _, m := range list.Data {
		if !strings.HasPrefix(m.ID, "qwen3-") && !strings.HasPrefix(m.ID, "claude-") {
			t.Errorf("alice is shown %q", m.ID)
		}
	}

	// A reload keeps what carol has sent.
	if status, body := reload(t, root, "\tproxycast {\n"+cfg+"\t}"); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if status, _, _ := dialectCall(t, "chat", "carol-key", "qwen3-max"); status != http.StatusTooManyRequests {
		t.Errorf("after a reload carol got %d", status)
	}
}

// TestClientsConfigErrors: the config errors of named clients name the
// client and what is wrong.
func TestClientsConfigErrors(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	startCaddy(t, poolConfig(srv, "", "sk-a"))
	for _, tt := range []struct{ name, block, want string }{
		{"a key of two clients", "client a {\nkey shared\n}\nclient b {\nkey shared\n}", `client "a" and client "b" have the same key`},
		{"a client key in api_keys", "client a {\nkey " + clientKey + "\n}", `client "a": key 1 is also in api_keys`},
		{"an unset placeholder", "client a {\nkey {env.PROXYCAST_TEST_NOT_SET}\n}", `client "a": key 1`},
	} {
		status, body := loadCaddyfile(t, globalOptions+site("\tproxycast {\n"+poolConfig(srv, tt.block+"\n", "sk-a")+"\t}"))
		var answer struct{ Error string }
		_ = json.Unmarshal([]byte(body), &answer)
		if status == 200 || !strings.Contains(answer.Error, tt.want) {
			t.Errorf("%s: %d %s; want %q", tt.name, status, body, tt.want)
		}
	}
}

// TestClientUsage: a named client's requests and tokens are counted by
// model over plain and streamed answers, in the admin API (without its
// key) and in metrics labelled by its name.
func TestClientUsage(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	startCaddy(t, poolConfig(srv, "\t\tclient dana {\n\t\t\tkey dana-secret-key\n\t\t}\n", "sk-a"))
	metric := func() float64 {
		return scrapeMetric(t, "caddy_proxycast_client_requests_total", `client="dana"`, `model="qwen3-max"`)
	}
	before := max(metric(), 0)
	for _, body := range []string{
		`{"model":"qwen3-max","messages":[{"role":"user","content":"plain"}]}`,
		`{"model":"qwen3-max","stream":true,"messages":[{"role":"user","content":"streamed"}]}`,
	} {
		resp := post(t, "/v1/chat/completions", body, "Authorization", "Bearer dana-secret-key")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", body, resp.StatusCode)
		}
	}
	if status, _, body := dialectCall(t, "messages", "dana-secret-key", "qwen3-max"); status != 200 {
		t.Fatalf("messages: %d %s", status, body)
	}
	status, body := admin(t, "GET", "/proxycast/clients", "")
	if status != 200 || strings.Contains(body, "dana-secret-key") {
		t.Fatalf("clients: %d %s", status, body)
	}
	var views []struct {
		Name  string
		Keys  int
		Usage map[string]struct {
			Requests, Prompt, Completion int64
			Estimated                    int64
		}
		UsageTotal struct{ Requests int64 } `json:"usage_total"`
	}
	if err := json.Unmarshal([]byte(body), &views); err != nil || len(views) != 1 || views[0].Name != "dana" || views[0].Keys != 1 {
		t.Fatalf("clients: %v %s", err, body)
	}
	u := views[0].Usage["qwen3-max"]
	if u.Requests != 3 || views[0].UsageTotal.Requests != 3 || u.Prompt <= 0 || u.Completion <= 0 || u.Estimated != 0 {
		t.Errorf("dana's usage: %+v (%s)", u, body)
	}
	if got := metric() - before; got != 3 {
		t.Errorf("client_requests_total grew by %v, want 3", got)
	}
	if v := scrapeMetric(t, "caddy_proxycast_client_tokens_total", `client="dana"`, `kind="prompt"`); v < float64(u.Prompt) {
		t.Errorf("client_tokens_total prompt %v, want at least %d", v, u.Prompt)
	}
}

// TestClientBudget: a token budget refuses with when it renews, in every
// dialect; the usage behind it is stored, so a stop and start keep it;
// and instances that share storage share the budget.
func TestClientBudget(t *testing.T) {
	// On the handler's clock: a day does not end in the middle.
	startClock(t, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	srv := fakeIFlow(t, "sk-a")
	root := t.TempDir()
	block := "\t\tusage_sync 100ms\n\t\tclient erin {\n\t\t\tkey erin-key\n\t\t\ttoken_budget 1/day\n\t\t}\n" +
		"\t\tclient fay {\n\t\t\tkey fay-key\n\t\t\ttoken_budget 1000/day\n\t\t}\n"
	cfg := "\tproxycast {\n" + poolConfig(srv, block, "sk-a") + "\t}"
	startWithStorage(t, root, cfg)

	if status, _, body := dialectCall(t, "chat", "erin-key", "qwen3-max"); status != 200 {
		t.Fatalf("erin's first request: %d %s", status, body)
	}
	overBudget := func(when string) {
		t.Helper()
		for _, d := range []string{"chat", "messages", "responses", "count_tokens"} {
			status, retry, body := dialectCall(t, d, "erin-key", "qwen3-max")
			secs, _ := strconv.Atoi(retry)
			if status != http.StatusTooManyRequests || secs <= 0 || secs > 86400 {
				t.Errorf("%s, %s: erin over her budget: %d, Retry-After %q: %s", when, d, status, retry, body)
				continue
			}
			if m := checkShape(t, d, body, "rate_limit_error"); !strings.Contains(m, `client "erin" has used its token budget of 1/day; it renews at `) || !strings.Contains(m, "T00:00:00Z") {
				t.Errorf("%s, %s: %q", when, d, m)
			}
		}
	}
	overBudget("before the stop")

	// A stop (a config without the handler) and a start: the usage comes
	// back from storage.
	if status, body := loadCaddyfile(t, storageOptions(root)+site("\trespond \"nothing here\"")); status != 200 {
		t.Fatalf("stopping: %d %s", status, body)
	}
	if status, body := reload(t, root, cfg); status != 200 {
		t.Fatalf("starting again: %d %s", status, body)
	}
	overBudget("after the start")
	_, body := admin(t, "GET", "/proxycast/clients", "")
	if !strings.Contains(body, `"requests": 1`) {
		t.Errorf("erin's usage after the start: %s", body)
	}

	// Another instance on the same storage has spent fay's budget today.
	today := "2026-12-07T00:00:00Z"
	peer := `{"instance":"peer","saved_at":"2026-12-07T11:00:00Z","clients":{"fay":{"usage":{},"window":"` + today + `","window_tokens":1000}}}`
	if status, _, body := dialectCall(t, "chat", "fay-key", "qwen3-max"); status != 200 {
		t.Fatalf("fay before the peer: %d %s", status, body)
	}
	if err := os.MkdirAll(filepath.Join(root, "proxycast", "usage"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proxycast", "usage", "peer-instance.json"), []byte(peer), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the peer's spend to count", func() bool {
		status, _, _ := dialectCall(t, "chat", "fay-key", "qwen3-max")
		return status == http.StatusTooManyRequests
	})
	// This instance's own file holds what it counted, and no key.
	entries, err := os.ReadDir(filepath.Join(root, "proxycast", "usage"))
	if err != nil || len(entries) != 2 {
		t.Fatalf("usage files: %v %v", entries, err)
	}
	for _, e := range entries {
		if e.Name() == "peer-instance.json" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(root, "proxycast", "usage", e.Name()))
		if err != nil || !strings.Contains(string(raw), `"erin"`) || strings.Contains(string(raw), "erin-key") {
			t.Errorf("%s: %v %s", e.Name(), err, raw)
		}
	}
}
