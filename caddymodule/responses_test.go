package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/openai/openaitest"
)

// respConfig has an openai instance that takes chat only (up) and one
// that speaks the Responses API (native), one credential each.
func respConfig(up, native *openaitest.Server, extra string) string {
	return fmt.Sprintf(`		api_keys %s
		provider up {
			type openai
			api_base %s
		}
		provider native {
			type openai
			api_base %s
			responses native
		}
		credential_pool {
			up {
				credential up-1 {
					auth_type api_key
					api_key sk-up-1
				}
			}
			native {
				credential native-1 {
					auth_type api_key
					api_key sk-native-1
				}
			}
		}
		routing {
			rule native/* native model $1
			default_provider up
		}
%s`, clientKey, up.APIBase(), native.APIBase(), extra)
}

// respond posts a Responses request and reads the whole answer.
func respond(t *testing.T, body string, header ...string) (*http.Response, string) {
	t.Helper()
	resp := post(t, "/v1/responses", body, append([]string{"Authorization", "Bearer " + clientKey}, header...)...)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(raw)
}

// respEvents reads a Responses stream and checks it against the
// protocol (openaitest.CheckStream).
func respEvents(t *testing.T, body string) []openaitest.StreamEvent {
	t.Helper()
	evs, err := openaitest.ReadStream(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if err := openaitest.CheckStream(evs); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	return evs
}

func eventData(t *testing.T, ev openaitest.StreamEvent) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		t.Fatalf("event %s: %v", ev.Event, err)
	}
	return m
}

// TestResponsesTranslated: a Responses request to a chat upstream is a
// Response object, or a stream the protocol checker passes, with the
// usage counted on the credential; the upstream sees nothing it would
// refuse.
func TestResponsesTranslated(t *testing.T) {
	up, native := fakeOpenAI(t, []string{"m"}, "sk-up-1"), fakeOpenAI(t, []string{"m"}, "sk-native-1")
	up.RefuseUnknownFields(true)
	up.SetUsage(openaitest.Usage{Prompt: 10, Completion: 5, Cached: 4, Reasoning: 2})
	native.SetResponses(true)
	startCaddy(t, respConfig(up, native, ""))

	req := `{"model":"m","instructions":"be brief","input":[{"role":"user","content":[{"type":"input_text","text":"hello there"}]}],"store":true,"include":["reasoning.encrypted_content"],"prompt_cache_key":"abc","stream":%t}`
	resp, body := respond(t, fmt.Sprintf(req, false))
	if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "up-1" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var r struct {
		Object, Status, Model string
		Store                 bool
		Output                []struct {
			Type    string
			Content []struct{ Type, Text string }
		}
		Usage struct {
			InputTokens        int `json:"input_tokens"`
			OutputTokens       int `json:"output_tokens"`
			InputTokensDetails struct {
				CachedTokens int `json:"cached_tokens"`
			} `json:"input_tokens_details"`
		}
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Object != "response" || r.Status != "completed" || r.Model != "m" || r.Store ||
		len(r.Output) != 1 || r.Output[0].Content[0].Text != "echo: hello there" || r.Usage.InputTokens != 10 || r.Usage.InputTokensDetails.CachedTokens != 4 {
		t.Fatalf("answer %s", body)
	}

	resp, body = respond(t, fmt.Sprintf(req, true))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	evs := respEvents(t, body)
	if last := evs[len(evs)-1]; last.Event != "response.completed" || strings.Contains(body, "[DONE]") {
		t.Fatalf("stream ended with %s", last.Event)
	}
	chats := chatsOf(up)
	if len(chats) != 2 || !strings.Contains(string(chats[1].RawBody), `"stream_options":{"include_usage":true}`) {
		t.Fatalf("upstream got %v", chats)
	}
	tokens, _ := credentialJSON(t, "up", "up-1")["tokens"].(map[string]any)
	if tokens["prompt"] != 20.0 || tokens["completion"] != 10.0 || tokens["cached"] != 8.0 || tokens["reasoning"] != 4.0 {
		t.Errorf("tokens: %v", tokens)
	}
}

// TestResponsesNative: an instance with `responses native` passes the
// request through to {api_base}/responses, built-in tools and all, and
// counts the usage of its answers and streams.
func TestResponsesNative(t *testing.T) {
	up, native := fakeOpenAI(t, []string{"m"}, "sk-up-1"), fakeOpenAI(t, []string{"gpt-4o"}, "sk-native-1")
	native.SetResponses(true)
	native.SetUsage(openaitest.Usage{Prompt: 7, Completion: 3})
	startCaddy(t, respConfig(up, native, ""))

	req := `{"model":"native/gpt-4o","input":"hello there","tools":[{"type":"web_search"}],"include":["web_search_call.action.sources"],"stream":%t}`
	resp, body := respond(t, fmt.Sprintf(req, false))
	if resp.StatusCode != 200 || !strings.Contains(body, "echo: hello there") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, body = respond(t, fmt.Sprintf(req, true))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	respEvents(t, body)
	sent := responsesOf(native)
	if len(sent) != 2 || len(chatsOf(native)) != 0 {
		t.Fatalf("native got %d Responses and %d chat requests", len(sent), len(chatsOf(native)))
	}
	var got map[string]any
	if err := json.Unmarshal(sent[1].RawBody, &got); err != nil || got["model"] != "gpt-4o" || got["stream"] != true ||
		!strings.Contains(string(sent[1].RawBody), `"tools":[{"type":"web_search"}]`) || got["stream_options"] != nil {
		t.Errorf("native got %s", sent[1].RawBody)
	}
	tokens, _ := credentialJSON(t, "native", "native-1")["tokens"].(map[string]any)
	if tokens["prompt"] != 14.0 || tokens["completion"] != 6.0 {
		t.Errorf("tokens: %v", tokens)
	}
}

// TestResponsesFailures: failures in the Responses dialect. Before the
// stream: OpenAI's error object and status (429 with Retry-After). After
// it began: response.failed, numbered after the last event and naming
// the response that began, whether the stream was translated or the
// upstream's own.
func TestResponsesFailures(t *testing.T) {
	up, native := fakeOpenAI(t, []string{"m"}, "sk-up-1"), fakeOpenAI(t, []string{"gpt-4o"}, "sk-native-1")
	native.SetResponses(true)
	startCaddy(t, respConfig(up, native, ""))

	for _, tc := range []struct {
		name, model string
		srv         *openaitest.Server
		key         string
		behavior    openaitest.Behavior
		code        string
	}{
		{"translated stream cut", "m", up, "sk-up-1", openaitest.StreamBreak, "server_error"},
		{"native stream cut", "native/gpt-4o", native, "sk-native-1", openaitest.StreamBreak, "server_error"},
		{"native response.failed passed on", "native/gpt-4o", native, "sk-native-1", openaitest.StreamFailed, "server_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.srv.SetBehavior(tc.key, tc.behavior)
			resp, body := respond(t, `{"model":"`+tc.model+`","input":"hello there","stream":true}`)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			evs := respEvents(t, body)
			last := evs[len(evs)-1]
			if last.Event != "response.failed" {
				t.Fatalf("last event %s: %s", last.Event, body)
			}
			d := eventData(t, last)
			r := d["response"].(map[string]any)
			first := eventData(t, evs[0])["response"].(map[string]any)
			if r["id"] != first["id"] || r["status"] != "failed" || r["error"].(map[string]any)["code"] != tc.code {
				t.Errorf("response.failed %s", last.Data)
			}
		})
	}

	// Last: the credential rests after it.
	up.SetBehavior("sk-up-1", openaitest.RateLimited)
	resp, body := respond(t, `{"model":"m","input":"x","stream":true}`)
	if e := decodeError(t, body); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || e.Error.Code != "upstream_rate_limited" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
}

// TestResponsesPaths: what the gateway does not store is a 404 that says
// so, in OpenAI's error shape; the methods are checked.
func TestResponsesPaths(t *testing.T) {
	up, native := fakeOpenAI(t, []string{"m"}, "sk-up-1"), fakeOpenAI(t, []string{"m"}, "sk-native-1")
	startCaddy(t, respConfig(up, native, ""))
	for _, tc := range []struct {
		method, path string
		status       int
		says         string
	}{
		{http.MethodGet, "/v1/responses/resp_123", 404, "does not store responses"},
		{http.MethodDelete, "/v1/responses/resp_123", 404, "does not store responses"},
		{http.MethodGet, "/v1/responses/resp_123/input_items", 404, "does not store responses"},
		{http.MethodPost, "/v1/responses/resp_123/cancel", 404, "does not store responses"},
		{http.MethodGet, "/v1/responses", 405, "use POST"},
	} {
		req, _ := http.NewRequest(tc.method, baseURL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+clientKey)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if e := decodeError(t, string(raw)); resp.StatusCode != tc.status || !strings.Contains(e.Error.Message, tc.says) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, raw)
		}
	}
	resp, body := respond(t, `{"model":"m","input":"x"}`, "Authorization", "Bearer wrong")
	if e := decodeError(t, body); resp.StatusCode != 401 || e.Error.Code != "invalid_api_key" {
		t.Errorf("a wrong key: %d %s", resp.StatusCode, body)
	}
}
