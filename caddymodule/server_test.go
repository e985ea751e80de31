package caddymodule_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/proxycast/caddy-proxycast"
	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

func TestChatNonStream(t *testing.T) {
	srv := fakeIFlow(t, "sk-one")
	startCaddy(t, poolConfig(srv, "\t\trouting {\n\t\t\trule iflow-* iflow model $1\n\t\t}", "sk-one"))

	resp, body := chat(t, `{"model":"iflow-qwen3-max","messages":[{"role":"user","content":"hi there"}],"x_custom":{"keep":[1,2.50]},"temperature":0.7}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Proxycast-Credential"); got != "key-1" {
		t.Errorf("credential header = %q, want key-1", got)
	}
	var completion struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(body), &completion); err != nil || len(completion.Choices) != 1 {
		t.Fatalf("bad completion %q: %v", body, err)
	}
	if got := completion.Choices[0].Message.Content; got != "echo: hi there" {
		t.Errorf("content = %q", got)
	}
	reqs := srv.ChatRequests()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	up := reqs[0]
	if up.Model != "qwen3-max" {
		t.Errorf("upstream model = %q, want the rewritten qwen3-max", up.Model)
	}
	if !strings.Contains(string(up.RawBody), `"x_custom":{"keep":[1,2.50]}`) || !strings.Contains(string(up.RawBody), `"temperature":0.7`) {
		t.Errorf("unknown fields were not forwarded as sent: %s", up.RawBody)
	}
	if up.Header.Get("Authorization") != "Bearer sk-one" {
		t.Errorf("upstream was not sent the credential's key")
	}
	if strings.Contains(up.Header.Get("Authorization"), clientKey) {
		t.Error("the client's key leaked upstream")
	}
}

func TestChatStream(t *testing.T) {
	srv := fakeIFlow(t, "sk-one")
	srv.SetStreamDelay(150 * time.Millisecond)
	startCaddy(t, poolConfig(srv, "", "sk-one"))

	req, _ := http.NewRequest(http.MethodPost, baseURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"glm-4.6","stream":true,"messages":[{"role":"user","content":"a stream of several chunks"}]}`))
	req.Header.Set("Authorization", "Bearer "+clientKey)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Each event must arrive as the upstream sends it, not at the end.
	r := bufio.NewReader(resp.Body)
	first, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	firstAt := time.Since(start)
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	evs := events(first + string(rest))
	if len(evs) < 4 {
		t.Fatalf("only %d events: %q", len(evs), first+string(rest))
	}
	if total-firstAt < 300*time.Millisecond {
		t.Errorf("first event after %v, whole stream after %v: events were not flushed one by one", firstAt, total)
	}
	if evs[len(evs)-1] != "[DONE]" {
		t.Errorf("stream does not end with [DONE]: %q", evs[len(evs)-1])
	}
	var text strings.Builder
	for _, e := range evs[:len(evs)-1] {
		var chunk struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(e), &chunk); err != nil || chunk.Object != "chat.completion.chunk" {
			t.Fatalf("bad chunk %q", e)
		}
		for _, c := range chunk.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if text.String() != "echo: a stream of several chunks" {
		t.Errorf("streamed text = %q", text.String())
	}
}

// TestUpstreamErrors checks that iFlow's error envelopes, sent with HTTP
// 200, and its error statuses reach the client as OpenAI errors with the
// right status, for plain and stream requests alike.
func TestUpstreamErrors(t *testing.T) {
	srv := fakeIFlow(t)
	tests := []struct {
		behavior iflowtest.Behavior
		status   int
		typ      string
	}{
		{iflowtest.InvalidKey, 401, "authentication_error"},
		{iflowtest.BlockedKey, 403, "permission_error"},
		{iflowtest.RateLimited, 429, "rate_limit_error"},
		{iflowtest.TokenExpired, 401, "authentication_error"},
		{iflowtest.ModelNotSupported, 400, "invalid_request_error"},
		{iflowtest.HTTP406, 406, "invalid_request_error"},
		{iflowtest.NotFoundModel, 404, "not_found_error"},
		{iflowtest.HTTP500, 502, "api_error"},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/stream=%v", tt.behavior, stream), func(t *testing.T) {
				// A credential of its own, so that the rests earlier cases
				// imposed do not answer for it.
				key := fmt.Sprintf("sk-%v-%v", tt.behavior, stream)
				srv.AddAPIKey(key)
				srv.SetBehavior(key, tt.behavior)
				startCaddy(t, poolConfig(srv, "", key))
				resp, body := chat(t, fmt.Sprintf(`{"model":"qwen3-max","stream":%v,"messages":[{"role":"user","content":"x"}]}`, stream))
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("content type %q", ct)
				}
				if e := decodeError(t, body); e.Error.Type != tt.typ {
					t.Errorf("type %q, want %q (%s)", e.Error.Type, tt.typ, body)
				}
				if strings.Contains(body, key) {
					t.Errorf("the credential's key leaked into the error: %s", body)
				}
				if resp.Header.Get("X-Proxycast-Credential") != "key-1" {
					t.Error("credential header missing on an error")
				}
			})
		}
	}
}

func TestStreamQuirks(t *testing.T) {
	srv := fakeIFlow(t, "sk-one")
	startCaddy(t, poolConfig(srv, "", "sk-one"))
	streamBody := `{"model":"qwen3-max","stream":true,"messages":[{"role":"user","content":"quirky"}]}`

	t.Run("no [DONE] from upstream", func(t *testing.T) {
		srv.SetBehavior("sk-one", iflowtest.StreamNoDone)
		resp, body := chat(t, streamBody)
		evs := events(body)
		if resp.StatusCode != 200 || len(evs) < 2 || evs[len(evs)-1] != "[DONE]" {
			t.Fatalf("status %d, stream not ended with [DONE]: %q", resp.StatusCode, body)
		}
	})
	t.Run("network_error mid-stream", func(t *testing.T) {
		srv.SetBehavior("sk-one", iflowtest.StreamNetworkError)
		resp, body := chat(t, streamBody)
		evs := events(body)
		if resp.StatusCode != 200 || len(evs) < 2 {
			t.Fatalf("status %d: %q", resp.StatusCode, body)
		}
		last := evs[len(evs)-1]
		if e := decodeError(t, last); e.Error.Code != "upstream_network_error" {
			t.Errorf("last event %q is not the network error", last)
		}
		if strings.Contains(body, "[DONE]") {
			t.Error("a broken stream must not end as if complete")
		}
	})
	t.Run("JSON answer to a stream request", func(t *testing.T) {
		srv.SetBehavior("sk-one", iflowtest.StreamAsJSON)
		resp, body := chat(t, streamBody)
		evs := events(body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || len(evs) != 2 || evs[1] != "[DONE]" {
			t.Fatalf("status %d %q: %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var chunk struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(evs[0]), &chunk); err != nil || chunk.Object != "chat.completion.chunk" ||
			len(chunk.Choices) != 1 || chunk.Choices[0].Delta.Content != "echo: quirky" {
			t.Errorf("completion not turned into a chunk: %q", evs[0])
		}
	})
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	srv := fakeIFlow(t, "sk-one")
	srv.SetBehavior("sk-one", iflowtest.SlowStream)
	startCaddy(t, poolConfig(srv, "", "sk-one"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"qwen3-max","stream":true,"messages":[{"role":"user","content":"slow"}]}`))
	req.Header.Set("Authorization", "Bearer "+clientKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	if !srv.WaitCanceledStreams(1, 2*time.Second) {
		t.Fatal("the upstream stream was not cancelled within 2s of the client leaving")
	}
}

func TestClientAuthentication(t *testing.T) {
	srv := fakeIFlow(t, "sk-one")
	startCaddy(t, poolConfig(srv, "", "sk-one"))
	body := `{"model":"qwen3-max","messages":[{"role":"user","content":"x"}]}`
	tests := []struct {
		name   string
		header []string
		status int
	}{
		{"bearer", nil, 200},
		{"lowercase bearer", []string{"Authorization", "bearer " + clientKey}, 200},
		{"x-api-key", []string{"Authorization", "", "X-Api-Key", clientKey}, 200},
		{"wrong key", []string{"Authorization", "Bearer wrong"}, 401},
		{"prefix of the key", []string{"Authorization", "Bearer client-key"}, 401},
		{"no key", []string{"Authorization", ""}, 401},
		{"basic auth", []string{"Authorization", "Basic " + clientKey}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.ChatCount()
			resp, got := chat(t, body, tt.header...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, got)
			}
			if tt.status == 401 {
				if e := decodeError(t, got); e.Error.Code != "invalid_api_key" {
					t.Errorf("code %q", e.Error.Code)
				}
				if srv.ChatCount() != before {
					t.Error("an unauthenticated request reached the upstream")
				}
			}
		})
	}
}

func TestRoundRobinSkipsDisabled(t *testing.T) {
	srv := fakeIFlow(t, "sk-a", "sk-b", "sk-c")
	cfg := fmt.Sprintf(`		api_keys %s
		credential_pool {
			iflow {
				credential a {
					auth_type api_key
					api_key sk-a
				}
				credential b {
					auth_type api_key
					api_key sk-b
					disabled
				}
				credential c {
					auth_type api_key
					api_key sk-c
				}
			}
		}
		provider iflow {
			api_base %s
		}`, clientKey, srv.APIBase())
	startCaddy(t, cfg)
	var got []string
	for range 6 {
		resp, body := chat(t, `{"model":"qwen3-max","messages":[{"role":"user","content":"x"}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		got = append(got, resp.Header.Get("X-Proxycast-Credential"))
	}
	// The round-robin position survives reloads, so either may start.
	if j := strings.Join(got, ","); j != "a,c,a,c,a,c" && j != "c,a,c,a,c,a" {
		t.Errorf("credentials used: %v, want a and c in turn, never b", got)
	}
	for _, r := range srv.ChatRequests() {
		if r.APIKey == "sk-b" {
			t.Error("the disabled credential was used")
		}
	}
}

// TestProxyURL sends a credential's calls through a local forward proxy.
func TestProxyURL(t *testing.T) {
	srv := fakeIFlow(t, "sk-direct", "sk-proxied")
	var proxied atomic.Int32
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		proxied.Add(1)
		out := r.Clone(r.Context())
		out.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go proxy.Serve(ln)
	t.Cleanup(func() { proxy.Close() })

	cfg := fmt.Sprintf(`		api_keys %s
		credential_pool {
			iflow {
				credential direct {
					auth_type api_key
					api_key sk-direct
				}
				credential proxied {
					auth_type api_key
					api_key sk-proxied
					proxy_url http://%s
				}
			}
		}
		provider iflow {
			api_base %s
		}`, clientKey, ln.Addr(), srv.APIBase())
	startCaddy(t, cfg)
	counts := map[string]int{}
	for range 4 {
		resp, body := chat(t, `{"model":"qwen3-max","messages":[{"role":"user","content":"x"}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		counts[resp.Header.Get("X-Proxycast-Credential")]++
	}
	if counts["direct"] != 2 || counts["proxied"] != 2 {
		t.Fatalf("credentials used: %v", counts)
	}
	if got := proxied.Load(); got != 2 {
		t.Errorf("the proxy carried %d requests, want exactly the 2 of the proxied credential", got)
	}
}

func TestAPIEdges(t *testing.T) {
	srv := fakeIFlow(t, "sk-one")
	startCaddy(t, poolConfig(srv, "\t\tmax_body_size 2KiB\n\t\trouting {\n\t\t\trule iflow-* iflow model $1\n\t\t\trule qwen3-* iflow\n\t\t}", "sk-one"))
	do := func(method, path, body string) (*http.Response, string) {
		req, _ := http.NewRequest(method, baseURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+clientKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, string(raw)
	}
	t.Run("models", func(t *testing.T) {
		resp, body := do("GET", "/v1/models", "")
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID      string `json:"id"`
				OwnedBy string `json:"owned_by"`
			} `json:"data"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &list) != nil || list.Object != "list" {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		ids := map[string]bool{}
		for _, m := range list.Data {
			ids[m.ID] = true
		}
		// qwen3-max routes both as itself and through the iflow- prefix;
		// glm-4.6 only through the prefix (no rule matches it bare).
		for _, want := range []string{"qwen3-max", "iflow-qwen3-max", "iflow-glm-4.6"} {
			if !ids[want] {
				t.Errorf("model list lacks %q", want)
			}
		}
		if ids["glm-4.6"] {
			t.Error("model list has glm-4.6, which no rule routes")
		}
		resp, body = do("GET", "/v1/models/iflow-glm-4.6", "")
		if resp.StatusCode != 200 || !strings.Contains(body, `"id":"iflow-glm-4.6"`) {
			t.Errorf("GET one model: %d %s", resp.StatusCode, body)
		}
		resp, _ = do("GET", "/v1/models/nope", "")
		if resp.StatusCode != 404 {
			t.Errorf("GET unknown model: %d", resp.StatusCode)
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		resp, body := do("POST", "/v1/embeddings", "{}")
		if resp.StatusCode != 404 || decodeError(t, body).Error.Type != "invalid_request_error" {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("outside /v1 goes to the next handler", func(t *testing.T) {
		resp, body := do("GET", "/health", "")
		if resp.StatusCode != 200 || body != "outside the API" {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		resp, _ := do("GET", "/v1/chat/completions", "")
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
			t.Errorf("%d allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	t.Run("no route", func(t *testing.T) {
		resp, body := do("POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`)
		if resp.StatusCode != 404 || !strings.Contains(decodeError(t, body).Error.Message, `"gpt-4o"`) {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("bad bodies", func(t *testing.T) {
		for body, want := range map[string]string{
			`{"model":`:                          "invalid_json",
			`[1,2]`:                              "invalid_json",
			`{"messages":[]}`:                    "invalid_model",
			`{"model":42}`:                       "invalid_model",
			`{"model":"qwen3-max","stream":"y"}`: "invalid_stream",
		} {
			resp, got := do("POST", "/v1/chat/completions", body)
			if resp.StatusCode != 400 || decodeError(t, got).Error.Code != want {
				t.Errorf("%s: %d %s", body, resp.StatusCode, got)
			}
		}
	})
	t.Run("body too large", func(t *testing.T) {
		big := `{"model":"qwen3-max","messages":[{"role":"user","content":"` + strings.Repeat("x", 4096) + `"}]}`
		resp, body := do("POST", "/v1/chat/completions", big)
		if resp.StatusCode != 413 {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})
}

// TestConfigErrors loads bad configs into the running Caddy and checks
// that each is refused with a message naming the problem.
func TestConfigErrors(t *testing.T) {
	tester := newTester(t)
	tester.InitServer(globalOptions+"\n"+siteAddr+" {\n\trespond ok\n}\n", "caddyfile")
	tests := []struct{ name, block, want string }{
		{"no api_keys", `credential_pool {
			iflow {
				credential a {
					auth_type api_key
					api_key x
				}
			}
		}`, "no api_keys: set api_keys, or write anonymous"},
		{"unset env key", `api_keys {env.PROXYCAST_TEST_UNSET}`, "api_keys: key 1: environment variable PROXYCAST_TEST_UNSET is unset or empty"},
		{"unset env inside a key", `api_keys pk-{env.PROXYCAST_TEST_UNSET}`, "api_keys: key 1: environment variable PROXYCAST_TEST_UNSET is unset or empty"},
		{"unset env credential key", `api_keys k
		credential_pool {
			iflow {
				credential a {
					auth_type api_key
					api_key {env.PROXYCAST_TEST_UNSET}
				}
			}
		}`, `credential "a": api_key: environment variable PROXYCAST_TEST_UNSET is unset or empty`},
		{"cookie without BXAuth", `api_keys k
		credential_pool {
			iflow {
				credential c {
					auth_type cookie
					cookies "session=1; other=2"
				}
			}
		}`, `credential "c": cookies have no BXAuth value`},
		{"rule to a provider without credentials", `api_keys k
		routing {
			rule * iflow
		}`, `routing: provider "iflow" is not declared`},
		{"proxy_url of an unset variable", `api_keys k
		credential_pool {
			iflow {
				credential a {
					auth_type api_key
					api_key x
					proxy_url {env.PROXYCAST_TEST_UNSET}
				}
			}
		}`, `credential "a": proxy_url: environment variable PROXYCAST_TEST_UNSET is unset or empty`},
		{"runtime_sync too short", `api_keys k
		runtime_sync 1ms
		credential_pool {
			iflow {
				credential a {
					auth_type api_key
					api_key x
				}
			}
		}`, "runtime_sync 1ms is too short"},
	}
	// load is loadCaddyfile, sent again when the connection is dropped
	// unanswered: each refused config replaces the admin server twice
	// (for the new config, then for the old one again), Caddy shuts the
	// replaced one down in the background, and Go's server closes a
	// connection whose request it reads while shutting down without an
	// answer (EOF) and without a handler seeing it.
	load := func(t *testing.T, cfg string) (int, string) {
		t.Helper()
		for try := 1; ; try++ {
			req, err := http.NewRequest(http.MethodPost, adminURL+"/load", strings.NewReader(cfg))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "text/caddyfile")
			req.Header.Set("Cache-Control", "must-revalidate")
			resp, err := testClient.Do(req)
			if err != nil {
				if try < 5 {
					t.Logf("try %d: %v; sending again", try, err)
					continue
				}
				t.Fatal(err)
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, string(raw)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := load(t, globalOptions+"\n"+siteAddr+" {\n\tproxycast {\n"+tt.block+"\n\t}\n}\n")
			var out struct{ Error string }
			if err := json.Unmarshal([]byte(body), &out); err != nil {
				t.Fatal(err)
			}
			if status == 200 {
				t.Fatalf("config was accepted; want an error containing %q", tt.want)
			}
			if !strings.Contains(out.Error, tt.want) {
				t.Errorf("error %q\ndoes not contain %q", out.Error, tt.want)
			}
		})
	}
}

// TestEnvPlaceholders: {env.X} in api_keys and in a credential's api_key
// is replaced when the handler starts, and the values never show in the
// adapted config.
func TestEnvPlaceholders(t *testing.T) {
	srv := fakeIFlow(t, "sk-from-env")
	t.Setenv("PROXYCAST_TEST_CLIENT_KEY", "client-key-from-env")
	t.Setenv("PROXYCAST_TEST_IFLOW_KEY", "sk-from-env")
	startCaddy(t, fmt.Sprintf(`		api_keys {env.PROXYCAST_TEST_CLIENT_KEY}
		credential_pool {
			iflow {
				credential env {
					auth_type api_key
					api_key {env.PROXYCAST_TEST_IFLOW_KEY}
				}
			}
		}
		provider iflow {
			api_base %s
		}`, srv.APIBase()))
	resp, body := chat(t, qwenBody, "Authorization", "Bearer client-key-from-env")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if reqs := srv.ChatRequests(); len(reqs) != 1 || reqs[0].APIKey != "sk-from-env" {
		t.Errorf("upstream was not sent the key from the environment")
	}
	if resp, _ := chat(t, qwenBody, "Authorization", "Bearer {env.PROXYCAST_TEST_CLIENT_KEY}"); resp.StatusCode != 401 {
		t.Errorf("the unreplaced placeholder was accepted as a key: %d", resp.StatusCode)
	}
	cfg, err := http.Get(adminURL + "/config/")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(cfg.Body)
	cfg.Body.Close()
	if strings.Contains(string(raw), "from-env") {
		t.Error("a value from the environment reached the config")
	}
}

// TestAccessLogFilterHidesXAPIKey: the log filter the README and the
// production example use keeps a client key sent as x-api-key out of
// Caddy's access log (the plugin cannot: Caddy logs a copy of the request
// made before any handler runs).
func TestAccessLogFilterHidesXAPIKey(t *testing.T) {
	srv := fakeIFlow(t, "sk-one")
	logFile := filepath.Join(t.TempDir(), "access.log")
	newTester(t).InitServer(globalOptions+"\n"+siteAddr+" {\n\tlog {\n\t\toutput file "+logFile+
		"\n\t\tformat filter {\n\t\t\trequest>headers>X-Api-Key replace REDACTED\n\t\t}\n\t}\n\tproxycast {\n"+
		poolConfig(srv, "", "sk-one")+"\n\t}\n\thandle /health {\n\t\trespond ok\n\t}\n}\n", "caddyfile")
	settle(t)
	resp, body := chat(t, `{"model":"qwen3-max","messages":[{"role":"user","content":"x"}]}`, "Authorization", "", "X-Api-Key", clientKey)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var raw []byte
	waitFor(t, "the access log line", func() bool {
		raw, _ = os.ReadFile(logFile)
		return strings.Contains(string(raw), "/v1/chat/completions")
	})
	if strings.Contains(string(raw), clientKey) || !strings.Contains(string(raw), `"X-Api-Key":"REDACTED"`) {
		t.Errorf("access log:\n%s", raw)
	}
}
