package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
	"github.com/proxycast/caddy-proxycast/openai/openaitest"
)

// fakeOpenAI is a strict fake OpenAI-compatible upstream serving models,
// with the given keys.
func fakeOpenAI(t *testing.T, models []string, keys ...string) *openaitest.Server {
	t.Helper()
	srv := openaitest.NewServer()
	t.Cleanup(srv.Close)
	srv.SetModels(models...)
	for _, k := range keys {
		srv.AddKey(k)
	}
	return srv
}

// threeUpstreams is a config with two openai instances and iFlow:
// deepseek (fixed models; ds-2 serves deepseek-chat only), openrouter
// (models from its upstream, an extra header) and iflow.
func threeUpstreams(ds, or *openaitest.Server, ifl *iflowtest.Server, extra string) string {
	return fmt.Sprintf(`		api_keys %s
		provider deepseek {
			type openai
			api_base %s
			models deepseek-chat deepseek-reasoner
		}
		provider openrouter {
			type openai
			api_base %s
			models_from_upstream
			header X-Title "proxycast test"
		}
		provider iflow {
			api_base %s
		}
		credential_pool {
			deepseek {
				credential ds-1 {
					auth_type api_key
					api_key sk-ds-1
				}
				credential ds-2 {
					auth_type api_key
					api_key sk-ds-2
					models deepseek-chat
				}
			}
			openrouter {
				credential or-1 {
					auth_type api_key
					api_key sk-or-1
				}
			}
			iflow {
				credential if-1 {
					auth_type api_key
					api_key sk-if-1
				}
			}
		}
		routing {
			rule deepseek-* deepseek
			rule */* openrouter
			default_provider iflow
		}
%s`, clientKey, ds.APIBase(), or.APIBase(), ifl.APIBase(), extra)
}

// chatsOf are the chat requests an upstream saw.
func chatsOf(srv *openaitest.Server) []openaitest.Request {
	var out []openaitest.Request
	for _, r := range srv.Requests() {
		if r.Path == "/v1/chat/completions" {
			out = append(out, r)
		}
	}
	return out
}

func chatFor(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"user","content":"hello there"}],"x_custom":{"keep":[1,2.50]}}`, model, stream)
}

// TestOpenAIInstances: two openai instances and iFlow in one config;
// each model goes where the rules send it, the body reaches the upstream
// as sent but for the model, with the key and the instance's headers, and
// a failure fails over inside its instance only.
func TestOpenAIInstances(t *testing.T) {
	ds := fakeOpenAI(t, []string{"deepseek-chat", "deepseek-reasoner"}, "sk-ds-1", "sk-ds-2")
	or := fakeOpenAI(t, []string{"anthropic/claude-sonnet-4", "meta-llama/llama-4"}, "sk-or-1")
	or.RequireHeader("X-Title", "proxycast test")
	ifl := fakeIFlow(t, "sk-if-1")
	startCaddy(t, threeUpstreams(ds, or, ifl, ""))

	for _, tt := range []struct{ model, from string }{
		{"deepseek-chat", "ds-"}, {"anthropic/claude-sonnet-4", "or-1"}, {"qwen3-max", "if-1"},
	} {
		resp, body := chat(t, chatFor(tt.model, false))
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("X-Proxycast-Credential"), tt.from) || !strings.Contains(body, "echo: hello there") {
			t.Errorf("%s: %d from %q: %s", tt.model, resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), body)
		}
	}
	reqs := chatsOf(or)
	if len(reqs) != 1 || reqs[0].Key != "sk-or-1" || !strings.Contains(string(reqs[0].RawBody), `"x_custom":{"keep":[1,2.50]}`) {
		t.Fatalf("openrouter saw %+v", reqs)
	}

	// ds-1 is rate limited: ds-2 serves; a model only ds-1 serves gets
	// the rate limit, never another instance.
	ds.SetBehavior("sk-ds-1", openaitest.RateLimited)
	for range 3 {
		resp, body := chat(t, chatFor("deepseek-chat", false))
		if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "ds-2" {
			t.Fatalf("deepseek-chat with ds-1 limited: %d from %q: %s", resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), body)
		}
	}
	before := or.ChatCount() + ifl.ChatCount()
	resp, body := chat(t, chatFor("deepseek-reasoner", false))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("deepseek-reasoner with ds-1 limited: %d %s", resp.StatusCode, body)
	}
	if n := or.ChatCount() + ifl.ChatCount(); n != before {
		t.Errorf("a deepseek request went to another instance")
	}
	if v := credentialJSON(t, "deepseek", "ds-1"); v["state"] != "cooling" || v["cooling_kind"] != "rate_limit" {
		t.Errorf("ds-1: %v", v)
	}

	// A reload keeps each instance's state: ds-1 still rests, and the
	// other instances' credentials are untouched by it.
	startCaddy(t, threeUpstreams(ds, or, ifl, ""))
	if v := credentialJSON(t, "deepseek", "ds-1"); v["state"] != "cooling" {
		t.Errorf("ds-1 after a reload: %v", v)
	}
	if v := credentialJSON(t, "openrouter", "or-1"); v["state"] != "active" || v["requests"] != 1.0 {
		t.Errorf("or-1 after a reload: %v", v)
	}
}

// TestOpenAIErrorClasses: every failure class of real upstreams rests the
// credential as it calls for, and the client gets its error.
func TestOpenAIErrorClasses(t *testing.T) {
	tests := []struct {
		name     string
		behavior openaitest.Behavior
		model    string
		status   int
		code     string
		state    string
		kind     string
		rest     time.Duration // about; 0: no rest
	}{
		{"401", openaitest.Unauthorized, "m", 401, "upstream_key_invalid", "cooling", "auth", 30 * time.Minute},
		{"403", openaitest.Forbidden, "m", 403, "upstream_forbidden", "cooling", "blocked", 30 * time.Minute},
		{"402 balance", openaitest.PaymentRequired, "m", 429, "upstream_quota_exhausted", "quota_exhausted", "quota", 6 * time.Hour},
		{"429 insufficient_quota", openaitest.InsufficientQuota, "m", 429, "upstream_quota_exhausted", "quota_exhausted", "quota", 6 * time.Hour},
		{"429 Retry-After", openaitest.RateLimited, "m", 429, "upstream_rate_limited", "cooling", "rate_limit", 20 * time.Second},
		{"429 Retry-After date", openaitest.RateLimitedDate, "m", 429, "upstream_rate_limited", "cooling", "rate_limit", 20 * time.Second},
		{"429 body hint", openaitest.RateLimitedBodyHint, "m", 429, "upstream_rate_limited", "cooling", "rate_limit", 7500 * time.Millisecond},
		{"500 (last credential: no rest)", openaitest.ServerError, "m", 502, "upstream_error", "active", "", 0},
		{"400", openaitest.BadRequest, "m", 400, "upstream_rejected", "active", "", 0},
		{"unknown model", openaitest.Normal, "nosuch", 404, "model_not_found", "active", "", 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := fakeOpenAI(t, []string{"m"}, "sk-x")
			up.SetBehavior("sk-x", tt.behavior)
			id := fmt.Sprintf("c%d", i) // a fresh credential: rests survive reloads
			startCaddy(t, fmt.Sprintf(`		api_keys %s
		provider up {
			type openai
			api_base %s
		}
		credential_pool {
			up {
				credential %s {
					auth_type api_key
					api_key sk-x
				}
			}
		}`, clientKey, up.APIBase(), id))
			resp, body := chat(t, chatFor(tt.model, false))
			e := decodeError(t, body)
			if resp.StatusCode != tt.status || e.Error.Code != tt.code || strings.Contains(body, "sk-x") {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			v := credentialJSON(t, "up", id)
			if v["state"] != tt.state || fmt.Sprint(v["cooling_kind"]) != fmt.Sprint(map[bool]any{true: tt.kind, false: nil}[tt.kind != ""]) {
				t.Errorf("state %v, cooling_kind %v", v["state"], v["cooling_kind"])
			}
			if tt.rest > 0 {
				until, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(v["cooling_until"]))
				if d := time.Until(until); d < tt.rest-5*time.Second || d > tt.rest+time.Second {
					t.Errorf("rests %v, want about %v", d, tt.rest)
				}
				// A resting credential is not asked again.
				n := up.ChatCount()
				if resp, _ := chat(t, chatFor(tt.model, false)); resp.StatusCode != 429 || up.ChatCount() != n {
					t.Errorf("the resting credential was asked again: %d", resp.StatusCode)
				}
			}
		})
	}
}

// TestOpenAIRefusedMember: an upstream that refuses a member the
// instance could leave out gets a message that says which setting does.
func TestOpenAIRefusedMember(t *testing.T) {
	up := fakeOpenAI(t, []string{"m"}, "sk-x")
	up.RefuseFields("stream_options")
	startCaddy(t, fmt.Sprintf(`		api_keys %s
		provider strict {
			type openai
			api_base %s
		}
		credential_pool {
			strict {
				credential s-1 {
					auth_type api_key
					api_key sk-x
				}
			}
		}`, clientKey, up.APIBase()))
	resp, body := chat(t, chatFor("m", true))
	if resp.StatusCode != 400 || !strings.Contains(decodeError(t, body).Error.Message, "stream_usage off") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

// TestOpenAIModels: /v1/models lists each instance's fixed models, the
// ones fetched from its upstream (kept when a later fetch fails), and no
// model that no credential serves; a model no credential serves is a 404
// naming it.
func TestOpenAIModels(t *testing.T) {
	ds := fakeOpenAI(t, []string{"deepseek-chat", "deepseek-reasoner"}, "sk-ds-1", "sk-ds-2")
	or := fakeOpenAI(t, []string{"anthropic/claude-sonnet-4", "meta-llama/llama-4"}, "sk-or-1")
	or.RequireHeader("X-Title", "proxycast test")
	ifl := fakeIFlow(t, "sk-if-1")
	root := t.TempDir()
	cfg := threeUpstreams(ds, or, ifl, "")
	startWithStorage(t, root, "\tproxycast {\n"+cfg+"\n\t}")

	ids := func() []string {
		req, _ := http.NewRequest(http.MethodGet, baseURL+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+clientKey)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list struct{ Data []struct{ ID string } }
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatalf("%s", raw)
		}
		var out []string
		for _, m := range list.Data {
			out = append(out, m.ID)
		}
		return out
	}
	waitFor(t, "openrouter's models", func() bool { return slices.Contains(ids(), "meta-llama/llama-4") })
	got := ids()
	for _, want := range []string{"deepseek-chat", "deepseek-reasoner", "anthropic/claude-sonnet-4", "qwen3-max"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s is not listed: %v", want, got)
		}
	}
	if or.ModelsRequests() == 0 || or.Requests()[0].Path != "/v1/models" || or.Requests()[0].Key != "sk-or-1" {
		t.Errorf("the model list was not fetched with a credential's key")
	}

	// A fetch that fails keeps the list.
	or.SetModelsStatus(http.StatusInternalServerError)
	n := or.ModelsRequests()
	if status, body := reload(t, root, "\tproxycast {\n"+cfg+"\n\t}"); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	waitFor(t, "a fetch after the reload", func() bool { return or.ModelsRequests() > n })
	if got := ids(); !slices.Contains(got, "meta-llama/llama-4") {
		t.Errorf("the list was lost when a fetch failed: %v", got)
	}

	// Only ds-2, which serves deepseek-chat only: deepseek-reasoner is
	// neither listed nor served.
	only := strings.Replace(cfg, "\t\t\t\tcredential ds-1 {\n\t\t\t\t\tauth_type api_key\n\t\t\t\t\tapi_key sk-ds-1\n\t\t\t\t}\n", "", 1)
	if status, body := reload(t, root, "\tproxycast {\n"+only+"\n\t}"); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if got := ids(); slices.Contains(got, "deepseek-reasoner") || !slices.Contains(got, "deepseek-chat") {
		t.Errorf("with ds-2 only: %v", got)
	}
	resp, body := chat(t, chatFor("deepseek-reasoner", false))
	if resp.StatusCode != 404 || !strings.Contains(body, `deepseek-reasoner`) || decodeError(t, body).Error.Code != "model_not_found" {
		t.Errorf("a model no credential serves: %d %s", resp.StatusCode, body)
	}
}

// TestOpenAIUsage: the tokens upstreams report are counted per
// credential (admin API, metrics), for plain answers and for streams,
// where usage is asked for and its extra chunk shown only to a client
// that asked for it.
func TestOpenAIUsage(t *testing.T) {
	up := fakeOpenAI(t, []string{"m"}, "sk-u")
	up.SetUsage(openaitest.Usage{Prompt: 10, Completion: 5, Cached: 4, Reasoning: 2})
	startCaddy(t, fmt.Sprintf(`		api_keys %s
		provider counted {
			type openai
			api_base %s
		}
		credential_pool {
			counted {
				credential u-1 {
					auth_type api_key
					api_key sk-u
				}
			}
		}`, clientKey, up.APIBase()))

	if resp, body := chat(t, chatFor("m", false)); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, body := chat(t, chatFor("m", true))
	if resp.StatusCode != 200 || strings.Contains(body, `"choices":[]`) {
		t.Fatalf("a stream that did not ask for usage: %d %s", resp.StatusCode, body)
	}
	if raw := string(chatsOf(up)[1].RawBody); !strings.Contains(raw, `"stream_options":{"include_usage":true}`) {
		t.Errorf("usage was not asked for: %s", raw)
	}
	asked := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	if resp, body := chat(t, asked); resp.StatusCode != 200 || !strings.Contains(body, `"choices":[]`) {
		t.Errorf("a stream that asked for usage lacks it: %d %s", resp.StatusCode, body)
	}

	tokens, _ := credentialJSON(t, "counted", "u-1")["tokens"].(map[string]any)
	if tokens["prompt"] != 30.0 || tokens["completion"] != 15.0 || tokens["cached"] != 12.0 || tokens["reasoning"] != 6.0 {
		t.Errorf("tokens: %v", tokens)
	}
	for kind, want := range map[string]float64{"prompt": 30, "completion": 15, "cached": 12, "reasoning": 6} {
		if got := scrapeMetric(t, "caddy_proxycast_tokens_total", `provider="counted"`, `credential="u-1"`, `kind="`+kind+`"`); got != want {
			t.Errorf("tokens_total %s = %v, want %v", kind, got, want)
		}
	}
}

// TestOpenAIAuthHeaderAndQuirks: an instance that sends its key as
// Azure does, and an upstream that writes "data:" without a space and
// streams tool calls, are served as clients expect.
func TestOpenAIAuthHeaderAndQuirks(t *testing.T) {
	up := fakeOpenAI(t, []string{"m"}, "sk-az")
	up.SetAuthHeader("api-key", "")
	up.SetNoSpaceData(true)
	startCaddy(t, fmt.Sprintf(`		api_keys %s
		provider azure {
			type openai
			api_base %s
			auth_header api-key "{key}"
			stream_usage off
		}
		credential_pool {
			azure {
				credential az-1 {
					auth_type api_key
					api_key sk-az
				}
			}
		}`, clientKey, up.APIBase()))
	tools := `{"model":"m","stream":true,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],"messages":[{"role":"user","content":"call get_weather {\"city\":\"Paris\"}"}]}`
	resp, body := chat(t, tools)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var args strings.Builder
	for _, ev := range events(body) {
		if ev == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					ToolCalls []struct {
						Function struct{ Arguments string } `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(ev), &chunk); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		for _, c := range chunk.Choices {
			for _, tc := range c.Delta.ToolCalls {
				args.WriteString(tc.Function.Arguments)
			}
		}
	}
	if args.String() != `{"city":"Paris"}` {
		t.Errorf("tool arguments joined: %q", args.String())
	}
	if raw := string(chatsOf(up)[0].RawBody); strings.Contains(raw, "stream_options") {
		t.Errorf("stream_usage off still asked for usage: %s", raw)
	}
}

// TestOpenAIAdmin: the admin API adds, changes and removes credentials of
// an openai instance, whose credentials take api_key only.
func TestOpenAIAdmin(t *testing.T) {
	up := fakeOpenAI(t, []string{"m", "n"}, "sk-a", "sk-b")
	startWithStorage(t, t.TempDir(), fmt.Sprintf(`	proxycast {
		api_keys %s
		provider up {
			type openai
			api_base %s
		}
		credential_pool {
			up {
				credential a {
					auth_type api_key
					api_key sk-a
					priority 2
				}
			}
		}
	}`, clientKey, up.APIBase()))
	if status, body := admin(t, "POST", "/proxycast/credentials/up", `{"id":"b","auth_type":"api_key","api_key":"sk-b","priority":1,"models":["n"]}`); status != 201 {
		t.Fatalf("add: %d %s", status, body)
	}
	if resp, _ := chat(t, chatFor("n", false)); resp.Header.Get("X-Proxycast-Credential") != "b" {
		t.Errorf("n served by %q, want b", resp.Header.Get("X-Proxycast-Credential"))
	}
	if resp, _ := chat(t, chatFor("m", false)); resp.Header.Get("X-Proxycast-Credential") != "a" {
		t.Errorf("m served by %q, want a (b serves n only)", resp.Header.Get("X-Proxycast-Credential"))
	}
	if status, body := admin(t, "PATCH", "/proxycast/credentials/up/b", `{"models":["m","n"]}`); status != 200 {
		t.Fatalf("patch: %d %s", status, body)
	}
	if resp, _ := chat(t, chatFor("m", false)); resp.Header.Get("X-Proxycast-Credential") != "b" {
		t.Errorf("after the patch, m served by %q, want b", resp.Header.Get("X-Proxycast-Credential"))
	}
	if status, body := admin(t, "POST", "/proxycast/credentials/up", `{"id":"c","auth_type":"cookie","cookies":"BXAuth=x"}`); status != 400 || !strings.Contains(body, "api_key") {
		t.Errorf("a cookie credential of an openai instance: %d %s", status, body)
	}
	if status, body := admin(t, "DELETE", "/proxycast/credentials/up/b", ""); status != 204 {
		t.Fatalf("delete: %d %s", status, body)
	}
	if _, ok := list(t)["b"]; ok {
		t.Error("b is still listed")
	}
}

// TestLegacyProviderJSON: a JSON config from before provider instances
// had types ("providers": {"iflow": {…}}) loads and serves as it did.
func TestLegacyProviderJSON(t *testing.T) {
	srv := fakeIFlow(t, "sk-old")
	cfg := fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d"},
	"apps": {"http": {"grace_period": 1, "http_port": %d, "servers": {"srv0": {
		"listen": [":%d"],
		"automatic_https": {"disable": true},
		"routes": [{"handle": [{
			"handler": "proxycast",
			"api_keys": [%q],
			"credential_pool": {"iflow": [{"id": "old", "auth_type": "api_key", "api_key": "sk-old"}]},
			"providers": {"iflow": {"api_base": %q}}
		}, {"handler": "static_response", "body": "ok"}]}]
	}}}}
}`, adminPort, httpPort, httpPort, clientKey, srv.APIBase())
	newTester(t).InitServer(cfg, "json")
	settle(t)
	if resp, body := chat(t, qwenBody); resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "old" {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}
