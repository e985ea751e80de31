package anthropictest

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPlainAnswer: an echo answer in the API's message shape, whose
// input_tokens follow the count rule.
func TestPlainAnswer(t *testing.T) {
	s := newServer(t)
	r := post(t, s, plainBody)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := decode(t, r.body)
	if id, _ := m["id"].(string); !strings.HasPrefix(id, "msg_01") {
		t.Fatalf("id %v", m["id"])
	}
	if m["type"] != "message" || m["role"] != "assistant" || m["model"] != "claude-sonnet-4-5-20250929" ||
		m["stop_reason"] != "end_turn" || m["stop_sequence"] != nil {
		t.Fatalf("message %s", r.body)
	}
	content := m["content"].([]any)
	if len(content) != 1 || asObj(content[0])["type"] != "text" || asObj(content[0])["text"] != "echo: hello there" {
		t.Fatalf("content %v", content)
	}
	u := asObj(m["usage"])
	want, _ := CountTokens([]byte(plainBody), false)
	if num(u["input_tokens"]) != want || want != 5 || num(u["output_tokens"]) != 3 {
		t.Fatalf("usage %v, count rule %d", u, want)
	}
	if !strings.HasPrefix(r.header.Get("Request-Id"), "req_") {
		t.Fatalf("request-id %q", r.header.Get("Request-Id"))
	}
	rec := s.Requests()
	if len(rec) != 1 || rec[0].Outcome != "ok" || rec[0].Status != 200 || rec[0].Model != "claude-sonnet-4-5-20250929" ||
		rec[0].Key != testKey || rec[0].Version != "2023-06-01" || string(rec[0].RawBody) != plainBody {
		t.Fatalf("record %+v", rec)
	}
}

// TestHeaderChecks: key, version, content type, method and path are
// checked before the body.
func TestHeaderChecks(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		name    string
		method  string
		path    string
		edit    func(h http.Header)
		status  int
		errType string
		msg     string
	}{
		{"no key", "POST", "/v1/messages", func(h http.Header) { h.Del("X-Api-Key") }, 401, "authentication_error", "x-api-key header is required"},
		{"unknown key", "POST", "/v1/messages", func(h http.Header) { h.Set("X-Api-Key", "sk-ant-other") }, 401, "authentication_error", "invalid x-api-key"},
		{"key as bearer", "POST", "/v1/messages", func(h http.Header) { h.Del("X-Api-Key"); h.Set("Authorization", "Bearer "+testKey) }, 401, "authentication_error", "OAuth authentication is currently not supported."},
		{"no version", "POST", "/v1/messages", func(h http.Header) { h.Del("Anthropic-Version") }, 400, "invalid_request_error", "anthropic-version: header is required"},
		{"unknown version", "POST", "/v1/messages", func(h http.Header) { h.Set("Anthropic-Version", "2024-01-01") }, 400, "invalid_request_error", "anthropic-version: invalid version '2024-01-01'"},
		{"two versions", "POST", "/v1/messages", func(h http.Header) { h.Add("Anthropic-Version", "2023-01-01") }, 400, "invalid_request_error", "anthropic-version: invalid version"},
		{"not JSON content type", "POST", "/v1/messages", func(h http.Header) { h.Set("Content-Type", "text/plain") }, 400, "invalid_request_error", "Content-Type must be application/json"},
		{"GET messages", "GET", "/v1/messages", func(http.Header) {}, 405, "invalid_request_error", "Method Not Allowed"},
		{"POST models", "POST", "/v1/models", func(http.Header) {}, 405, "invalid_request_error", "Method Not Allowed"},
		{"chat completions path", "POST", "/v1/chat/completions", func(http.Header) {}, 404, "not_found_error", "Not Found"},
		{"path without v1", "POST", "/messages", func(http.Header) {}, 404, "not_found_error", "Not Found"},
		{"count tokens without key", "POST", "/v1/messages/count_tokens", func(h http.Header) { h.Del("X-Api-Key") }, 401, "authentication_error", "x-api-key header is required"},
		{"models without version", "GET", "/v1/models", func(h http.Header) { h.Del("Anthropic-Version") }, 400, "invalid_request_error", "anthropic-version: header is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := headers()
			tc.edit(h)
			body := plainBody
			if tc.method == "GET" {
				body = ""
			}
			r := do(t, s, tc.method, tc.path, h, body)
			typ, msg := apiErr(t, r)
			if r.status != tc.status || typ != tc.errType || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %d %s %q, want %d %s %q", r.status, typ, msg, tc.status, tc.errType, tc.msg)
			}
			if r.header.Get(ReasonHeader) == "" {
				t.Fatal("no reason header")
			}
		})
	}
	s.RemoveKey(testKey)
	if r := post(t, s, plainBody); r.status != 401 {
		t.Fatalf("removed key: %d", r.status)
	}
}

// TestBetas: betas are recorded from every header line, taken by
// default, and refused unless known after RefuseUnknownBetas.
func TestBetas(t *testing.T) {
	s := newServer(t)
	h := headers()
	h.Add("Anthropic-Beta", "prompt-caching-2024-07-31, interleaved-thinking-2025-05-14")
	h.Add("Anthropic-Beta", "made-up-beta")
	if r := do(t, s, "POST", "/v1/messages", h, plainBody); r.status != 200 {
		t.Fatalf("any beta: %d %s", r.status, r.body)
	}
	want := []string{"prompt-caching-2024-07-31", "interleaved-thinking-2025-05-14", "made-up-beta"}
	if got := s.Requests()[0].Betas; !slices.Equal(got, want) {
		t.Fatalf("recorded betas %q, want %q", got, want)
	}

	s.RefuseUnknownBetas("prompt-caching-2024-07-31", "interleaved-thinking-2025-05-14")
	r := do(t, s, "POST", "/v1/messages", h, plainBody)
	typ, msg := apiErr(t, r)
	if r.status != 400 || typ != "invalid_request_error" ||
		msg != "Unexpected value(s) `made-up-beta` for the `anthropic-beta` header. Please consult our documentation at docs.anthropic.com or try again without the header." {
		t.Fatalf("unknown beta: %d %s %q", r.status, typ, msg)
	}
	known := headers()
	known.Set("Anthropic-Beta", "interleaved-thinking-2025-05-14")
	if r := do(t, s, "POST", "/v1/messages", known, plainBody); r.status != 200 {
		t.Fatalf("known beta: %d %s", r.status, r.body)
	}
	if r := do(t, s, "GET", "/v1/models", h, ""); r.status != 400 {
		t.Fatalf("models with an unknown beta: %d", r.status)
	}
	s.AcceptAnyBeta()
	if r := do(t, s, "POST", "/v1/messages", h, plainBody); r.status != 200 {
		t.Fatalf("after AcceptAnyBeta: %d", r.status)
	}
}

// body builds a Messages body from members after model and max_tokens.
func body(members string) string {
	b := `{"model":"claude-sonnet-4-5-20250929","max_tokens":4096`
	if members != "" {
		b += "," + members
	}
	return b + "}"
}

const userHi = `"messages":[{"role":"user","content":"hi"}]`

// TestBodyRefused: what the API refuses, the fake refuses, with the API's
// words.
func TestBodyRefused(t *testing.T) {
	s := newServer(t)
	toolUse := `{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]}`
	tests := []struct {
		name string
		body string
		msg  string
	}{
		{"not JSON", `{"model":`, "There was an error parsing the body of your request"},
		{"two JSON values", plainBody + plainBody, "more than one JSON value"},
		{"an array", `[]`, "Input should be a valid dictionary or object"},
		{"unknown field", body(userHi + `,"foo":1`), "foo: Extra inputs are not permitted"},
		{"OpenAI field", body(userHi + `,"max_completion_tokens":5`), "max_completion_tokens: Extra inputs are not permitted"},
		{"OpenAI n", body(userHi + `,"n":1`), "n: Extra inputs are not permitted"},
		{"no model", `{"max_tokens":5,` + userHi + `}`, "model: Field required"},
		{"model a number", `{"model":5,"max_tokens":5,` + userHi + `}`, "model: Input should be a valid string"},
		{"empty model", `{"model":"","max_tokens":5,` + userHi + `}`, "model: String should have at least 1 character"},
		{"no max_tokens", `{"model":"claude-sonnet-4-5-20250929",` + userHi + `}`, "max_tokens: Field required"},
		{"fractional max_tokens", `{"model":"claude-sonnet-4-5-20250929","max_tokens":1.5,` + userHi + `}`, "max_tokens: Input should be a valid integer"},
		{"max_tokens a string", `{"model":"claude-sonnet-4-5-20250929","max_tokens":"100",` + userHi + `}`, "max_tokens: Input should be a valid integer"},
		{"negative max_tokens", `{"model":"claude-sonnet-4-5-20250929","max_tokens":-1,` + userHi + `}`, "max_tokens: Input should be greater than or equal to 0"},
		{"no messages", body(""), "messages: Field required"},
		{"messages an object", body(`"messages":{}`), "messages: Input should be a valid list"},
		{"empty messages", body(`"messages":[]`), "messages: at least one message is required"},
		{"message not an object", body(`"messages":["hi"]`), "messages.0: Input should be a valid dictionary"},
		{"role tool", body(`"messages":[{"role":"tool","content":"x"}]`), "messages.0.role: Input should be 'user', 'assistant' or 'system'"},
		{"no role", body(`"messages":[{"content":"x"}]`), "messages.0.role: Field required"},
		{"no content", body(`"messages":[{"role":"user"}]`), "messages.0.content: Field required"},
		{"content a number", body(`"messages":[{"role":"user","content":5}]`), "messages.0.content: Input should be a valid string or a valid list"},
		{"null content", body(`"messages":[{"role":"user","content":null}]`), "messages.0.content: Input should be a valid string or a valid list"},
		{"member of OpenAI messages", body(`"messages":[{"role":"user","content":"x","name":"bob"}]`), "messages.0.name: Extra inputs are not permitted"},
		{"empty user content", body(`"messages":[{"role":"user","content":""}]`), "messages.0: all messages must have non-empty content except for the optional final assistant message"},
		{"empty assistant content before the end", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[]},{"role":"user","content":"b"}]`), "messages.1: all messages must have non-empty content"},
		{"empty text block", body(`"messages":[{"role":"user","content":[{"type":"text","text":""}]}]`), "messages: text content blocks must be non-empty"},
		{"text block without text", body(`"messages":[{"role":"user","content":[{"type":"text"}]}]`), "messages.0.content.0.text: Field required"},
		{"block without type", body(`"messages":[{"role":"user","content":[{"text":"x"}]}]`), "messages.0.content.0.type: Field required"},
		{"OpenAI part type", body(`"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x"}}]}]`), "messages.0.content.0: Input tag 'image_url' found using 'type' does not match any of the expected tags"},
		{"extra member in a block", body(`"messages":[{"role":"user","content":[{"type":"text","text":"x","foo":1}]}]`), "messages.0.content.0.text.foo: Extra inputs are not permitted"},
		{"tool_use from the user", body(`"messages":[{"role":"user","content":[{"type":"tool_use","id":"t","name":"n","input":{}}]}]`), "messages.0.content.0: `tool_use` blocks are not permitted in `user` content"},
		{"tool_result from the assistant", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"t"}]}]`), "messages.1.content.0: `tool_result` blocks are not permitted in `assistant` content"},
		{"thinking from the user", body(`"messages":[{"role":"user","content":[{"type":"thinking","thinking":"x","signature":"s"}]}]`), "`thinking` blocks are not permitted in `user` content"},
		{"image in a system message", body(`"messages":[{"role":"system","content":[{"type":"image","source":{"type":"url","url":"http://x"}}]},{"role":"user","content":"a"}]`), "`image` blocks are not permitted in `system` content"},
		{"tool_use without input", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"n"}]}]`), "messages.1.content.0.tool_use.input: Field required"},
		{"tool_use input a string", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"n","input":"{}"}]}]`), "messages.1.content.0.tool_use.input: Input should be a valid dictionary"},
		{"tool_use id with a dot", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_use","id":"call.1","name":"n","input":{}}]}]`), "tool_use.id: String should match pattern"},
		{"tool_result without id", body(`"messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]`), "messages.0.content.0.tool_result.tool_use_id: Field required"},
		{"tool_result is_error a string", body(`"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","is_error":"yes"}]}]`), "is_error: Input should be a valid boolean"},
		{"tool_result holding a tool_use", body(`"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"tool_use","id":"x","name":"n","input":{}}]}]}]`), "tool_result.content.0: `tool_use` blocks are not permitted in `tool_result` content"},
		{"thinking without signature", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"hm"}]}]`), "messages.1.content.0.thinking.signature: Field required"},
		{"redacted thinking without data", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"redacted_thinking"}]}]`), "redacted_thinking.data: Field required"},
		{"image of a wrong type", body(`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"AAAA"}}]}]`), "image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"},
		{"image without source", body(`"messages":[{"role":"user","content":[{"type":"image"}]}]`), "messages.0.content.0.image.source: Field required"},
		{"image without data", body(`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png"}}]}]`), "base64.data: Field required"},
		{"document not a PDF", body(`"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"image/png","data":"AA"}}]}]`), "document.source.base64.media_type: Input should be 'application/pdf'"},
		{"cache_control not ephemeral", body(`"messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"persistent"}}]}]`), "text.cache_control.type: Input should be 'ephemeral'"},
		{"cache_control ttl", body(`"messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"ephemeral","ttl":"2h"}}]}]`), "cache_control.ttl: Input should be '5m' or '1h'"},
		{"tool_use never answered", body(`"tools":[` + weatherTool + `],"messages":[{"role":"user","content":"a"},` + toolUse + `,{"role":"user","content":"b"}]`), "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1. Each `tool_use` block must have a corresponding `tool_result` block in the next message."},
		{"tool_result of no tool_use", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_9","content":"x"}]}]`), "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."},
		{"tool_result of an older tool_use", body(`"tools":[` + weatherTool + `],"messages":[{"role":"user","content":"a"},` + toolUse + `,{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"x"}]},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"x"}]}]`), "messages.4.content.0: unexpected `tool_use_id`"},
		{"system a number", body(userHi + `,"system":5`), "system: Input should be a valid string or a valid list"},
		{"system block not text", body(userHi + `,"system":[{"type":"image","source":{"type":"url","url":"http://x"}}]`), "system.0.type: Input should be 'text'"},
		{"system block without text", body(userHi + `,"system":[{"type":"text"}]`), "system.0.text: Field required"},
		{"stream a string", body(userHi + `,"stream":"yes"`), "stream: Input should be a valid boolean"},
		{"temperature above 1", body(userHi + `,"temperature":1.5`), "temperature: Input should be less than or equal to 1"},
		{"top_p negative", body(userHi + `,"top_p":-0.1`), "top_p: Input should be greater than or equal to 0"},
		{"top_k fractional", body(userHi + `,"top_k":2.5`), "top_k: Input should be a valid integer"},
		{"stop_sequences a string", body(userHi + `,"stop_sequences":"END"`), "stop_sequences: Input should be a valid list"},
		{"stop_sequences of numbers", body(userHi + `,"stop_sequences":[1]`), "stop_sequences.0: Input should be a valid string"},
		{"metadata extra", body(userHi + `,"metadata":{"user_id":"u","session":"s"}`), "metadata.session: Extra inputs are not permitted"},
		{"service_tier unknown", body(userHi + `,"service_tier":"priority"`), "service_tier: Input should be 'auto' or 'standard_only'"},
		{"tool name with a space", body(userHi + `,"tools":[{"name":"get weather","input_schema":{"type":"object"}}]`), "tools.0.custom.name: String should match pattern"},
		{"tool without name", body(userHi + `,"tools":[{"input_schema":{"type":"object"}}]`), "tools.0.custom.name: Field required"},
		{"tool without schema", body(userHi + `,"tools":[{"name":"t"}]`), "tools.0.custom.input_schema: Field required"},
		{"tool schema not an object", body(userHi + `,"tools":[{"name":"t","input_schema":{"type":"array"}}]`), "tools.0.custom.input_schema.type: Input should be 'object'"},
		{"OpenAI tool", body(userHi + `,"tools":[{"type":"function","function":{"name":"t","parameters":{"type":"object"}}}]`), "tools.0: Input tag 'function' found using 'type'"},
		{"tools not a list", body(userHi + `,"tools":{}`), "tools: Input should be a valid list"},
		{"duplicate tool names", body(userHi + `,"tools":[` + weatherTool + `,` + weatherTool + `]`), "tools: Tool names must be unique."},
		{"tool_choice required", body(userHi + `,"tools":[` + weatherTool + `],"tool_choice":{"type":"required"}`), "tool_choice: Input tag 'required'"},
		{"tool_choice a string", body(userHi + `,"tools":[` + weatherTool + `],"tool_choice":"auto"`), "tool_choice: Input should be a valid dictionary"},
		{"tool_choice of another tool", body(userHi + `,"tools":[` + weatherTool + `],"tool_choice":{"type":"tool","name":"other"}`), `tool_choice.tool.name: the tool "other" is not one of the request's tools`},
		{"tool_choice tool without name", body(userHi + `,"tools":[` + weatherTool + `],"tool_choice":{"type":"tool"}`), "tool_choice.tool.name: Field required"},
		{"tool_choice extra", body(userHi + `,"tools":[` + weatherTool + `],"tool_choice":{"type":"auto","name":"get_weather"}`), "tool_choice.auto.name: Extra inputs are not permitted"},
		{"thinking budget too small", body(userHi + `,"thinking":{"type":"enabled","budget_tokens":1000}`), "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"},
		{"thinking budget not below max_tokens", body(userHi + `,"thinking":{"type":"enabled","budget_tokens":4096}`), "`max_tokens` must be greater than `thinking.budget_tokens`"},
		{"thinking without budget", body(userHi + `,"thinking":{"type":"enabled"}`), "thinking.enabled.budget_tokens: Field required"},
		{"thinking of an unknown type", body(userHi + `,"thinking":{"type":"on"}`), "thinking: Input tag 'on' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'"},
		{"disabled thinking with a budget", body(userHi + `,"thinking":{"type":"disabled","budget_tokens":2048}`), "thinking.disabled.budget_tokens: Extra inputs are not permitted"},
		{"thinking with temperature", body(userHi + `,"temperature":0.5,"thinking":{"type":"enabled","budget_tokens":2048}`), "`temperature` may only be set to 1 when thinking is enabled"},
		{"thinking tool loop without its thinking", body(`"tools":[` + weatherTool + `],"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"a"},` + toolUse + `,{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}]`), "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, s, tc.body)
			typ, msg := apiErr(t, r)
			if r.status != 400 || typ != "invalid_request_error" || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %d %s %q, want 400 invalid_request_error %q", r.status, typ, msg, tc.msg)
			}
			if got := r.header.Get(ReasonHeader); got != msg {
				t.Fatalf("reason %q, want the message", got)
			}
		})
	}
}

// TestBodyTaken: what the API takes, the fake takes.
func TestBodyTaken(t *testing.T) {
	s := newServer(t)
	toolUse := `{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]}`
	toolResult := `{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"sunny"}],"is_error":false}]}`
	tests := []struct{ name, body string }{
		{"prefill", body(`"messages":[{"role":"user","content":"Pick A or B"},{"role":"assistant","content":"The answer is ("}]`)},
		{"empty final assistant", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[]}]`)},
		{"assistant first", body(`"messages":[{"role":"assistant","content":"Hello, how can I help?"},{"role":"user","content":"a"}]`)},
		{"consecutive user turns", body(`"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]`)},
		{"system message", body(`"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"a"}]`)},
		{"system blocks with cache_control", body(userHi + `,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral","ttl":"1h"}}]`)},
		{"system string", body(userHi + `,"system":"be brief"`)},
		{"tool loop", body(`"tools":[` + weatherTool + `],"messages":[{"role":"user","content":"a"},` + toolUse + `,` + toolResult + `]`)},
		{"tool loop split in two assistant messages", body(`"tools":[` + weatherTool + `],"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"let me look"},` + toolUse + `,` + toolResult + `]`)},
		{"thinking tool loop", body(`"tools":[` + weatherTool + `],"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"sig"},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},` + toolResult + `]`)},
		{"thinking with temperature 1", body(userHi + `,"temperature":1,"thinking":{"type":"enabled","budget_tokens":1024}`)},
		{"adaptive thinking", body(userHi + `,"thinking":{"type":"adaptive"}`)},
		{"image and text", body(`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"text","text":"what is it?"}]}]`)},
		{"image by url", body(`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}]`)},
		{"pdf document", body(`"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="},"title":"a"}]}]`)},
		{"text document", body(`"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"hello"}}]}]`)},
		{"nulls for optional fields", body(userHi + `,"system":null,"temperature":null,"tools":null,"stream":null,"thinking":null,"metadata":null,"tool_choice":null`)},
		{"every sampling field", body(userHi + `,"temperature":0.2,"top_p":0.9,"top_k":40,"stop_sequences":["END"],"metadata":{"user_id":"u-1"},"service_tier":"auto"`)},
		{"integral float max_tokens", `{"model":"claude-sonnet-4-5-20250929","max_tokens":1024.0,` + userHi + `}`},
		{"server tool", body(userHi + `,"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}]`)},
		{"custom tool typed custom", body(userHi + `,"tools":[{"type":"custom","name":"t","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}`)},
		{"tool_result with string content and error", body(`"tools":[` + weatherTool + `],"messages":[{"role":"user","content":"a"},` + toolUse + `,{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"no such city","is_error":true},{"type":"text","text":"try again"}]}]`)},
		{"a tool_use in the final assistant message", body(`"tools":[` + weatherTool + `],"messages":[{"role":"user","content":"a"},` + toolUse + `]`)},
		{"beta fields", body(userHi + `,"context_management":{"edits":[]},"container":"c1"`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, s, tc.body)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if m := decode(t, r.body); m["type"] != "message" {
				t.Fatalf("answer %s", r.body)
			}
		})
	}
	// Claude Code adds ?beta=true.
	if r := do(t, s, "POST", "/v1/messages?beta=true", headers(), plainBody); r.status != 200 {
		t.Fatalf("with a query: %d", r.status)
	}
	if q := s.Requests()[len(s.Requests())-1].Query; q != "beta=true" {
		t.Fatalf("recorded query %q", q)
	}
}

func TestUnknownModel(t *testing.T) {
	s := newServer(t)
	for _, path := range []string{"/v1/messages", "/v1/messages/count_tokens"} {
		b := `{"model":"claude-unknown","max_tokens":10,` + userHi + `}`
		if strings.HasSuffix(path, "count_tokens") {
			b = `{"model":"claude-unknown",` + userHi + `}`
		}
		r := do(t, s, "POST", path, headers(), b)
		typ, msg := apiErr(t, r)
		if r.status != 404 || typ != "not_found_error" || msg != "model: claude-unknown" {
			t.Fatalf("%s: %d %s %q", path, r.status, typ, msg)
		}
	}
	s.SetModels("my-model")
	if r := post(t, s, `{"model":"my-model","max_tokens":10,`+userHi+`}`); r.status != 200 {
		t.Fatalf("SetModels: %d", r.status)
	}
	if r := post(t, s, plainBody); r.status != 404 {
		t.Fatalf("model no longer listed: %d", r.status)
	}
}

// TestMaxTokensZero: max_tokens 0 warms the cache and answers nothing.
func TestMaxTokensZero(t *testing.T) {
	s := newServer(t)
	m := decode(t, post(t, s, `{"model":"claude-sonnet-4-5-20250929","max_tokens":0,`+userHi+`}`).body)
	if len(m["content"].([]any)) != 0 || m["stop_reason"] != "max_tokens" {
		t.Fatalf("answer %v", m)
	}
}

// TestDefaultAnswers: echo, tool calls asked for or forced, tool results,
// thinking.
func TestDefaultAnswers(t *testing.T) {
	s := newServer(t)
	tools := `"tools":[` + weatherTool + `,{"name":"get_time","input_schema":{"type":"object"}}]`
	tests := []struct {
		name   string
		body   string
		blocks []string // type: text or input
		stop   string
	}{
		{"echo", plainBody, []string{"text:echo: hello there"}, "end_turn"},
		{"a call asked for", body(tools + `,"messages":[{"role":"user","content":"call get_weather {\"city\": \"Paris\"}"}]`), []string{`tool_use:get_weather {"city":"Paris"}`}, "tool_use"},
		{"two calls", body(tools + `,"messages":[{"role":"user","content":"call get_weather {\"city\":\"Oslo\"} and call get_time {}"}]`), []string{`tool_use:get_weather {"city":"Oslo"}`, `tool_use:get_time {}`}, "tool_use"},
		{"two calls, parallel off", body(tools + `,"tool_choice":{"type":"auto","disable_parallel_tool_use":true},"messages":[{"role":"user","content":"call get_weather {\"city\":\"Oslo\"} and call get_time {}"}]`), []string{`tool_use:get_weather {"city":"Oslo"}`}, "tool_use"},
		{"an unknown tool asked for", body(tools + `,"messages":[{"role":"user","content":"call launch {}"}]`), []string{"text:echo: call launch {}"}, "end_turn"},
		{"tool_choice none", body(tools + `,"tool_choice":{"type":"none"},"messages":[{"role":"user","content":"call get_time {}"}]`), []string{"text:echo: call get_time {}"}, "end_turn"},
		{"forced tool", body(tools + `,"tool_choice":{"type":"tool","name":"get_time"},"messages":[{"role":"user","content":"hello"}]`), []string{`tool_use:get_time {}`}, "tool_use"},
		{"any tool", body(tools + `,"tool_choice":{"type":"any"},"messages":[{"role":"user","content":"hello"}]`), []string{`tool_use:get_weather {}`}, "tool_use"},
		{"tool result", body(tools + `,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_time","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"noon"}]}]`), []string{"text:tool said: noon"}, "end_turn"},
		{"thinking", body(userHi + `,"thinking":{"type":"enabled","budget_tokens":2048}`), []string{"thinking:thinking about: hi", "text:echo: hi"}, "end_turn"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, s, tc.body)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			m := decode(t, r.body)
			var got []string
			for _, b := range m["content"].([]any) {
				b := asObj(b)
				switch b["type"] {
				case "text":
					got = append(got, "text:"+b["text"].(string))
				case "thinking":
					if b["signature"] != signature(b["thinking"].(string)) {
						t.Fatalf("signature %v", b["signature"])
					}
					got = append(got, "thinking:"+b["thinking"].(string))
				case "tool_use":
					if id, _ := b["id"].(string); !strings.HasPrefix(id, "toolu_01") {
						t.Fatalf("tool id %v", b["id"])
					}
					got = append(got, "tool_use:"+b["name"].(string)+" "+compactJSON(mustJSON(t, b["input"])))
				}
			}
			if !slices.Equal(got, tc.blocks) || m["stop_reason"] != tc.stop {
				t.Fatalf("blocks %q stop %v, want %q %s", got, m["stop_reason"], tc.blocks, tc.stop)
			}
		})
	}
}

// TestScriptedReplies: SetReplyFunc comes before SetReply, which comes
// before the echo; scripted usage is reported as it is.
func TestScriptedReplies(t *testing.T) {
	s := newServer(t)
	s.SetReply("claude-sonnet-4-5-20250929", Reply{
		Content:      []Block{Thinking("let me see", "sig-1"), Text("scripted"), ToolUse("get_weather", `{"city": "Rome"}`), RedactedThinking("opaque")},
		StopReason:   "stop_sequence",
		StopSequence: "END",
		Usage:        &Usage{Input: 7, Output: 9, CacheRead: 100, CacheCreation: 20},
	})
	m := decode(t, post(t, s, plainBody).body)
	content := m["content"].([]any)
	if len(content) != 4 || asObj(content[0])["signature"] != "sig-1" || asObj(content[1])["text"] != "scripted" ||
		asObj(asObj(content[2])["input"])["city"] != "Rome" || asObj(content[3])["data"] != "opaque" {
		t.Fatalf("content %v", content)
	}
	u := asObj(m["usage"])
	if m["stop_reason"] != "stop_sequence" || m["stop_sequence"] != "END" || num(u["input_tokens"]) != 7 || num(u["output_tokens"]) != 9 ||
		num(u["cache_read_input_tokens"]) != 100 || num(u["cache_creation_input_tokens"]) != 20 {
		t.Fatalf("message %v", m)
	}

	var seen []string
	s.SetReplyFunc(func(r Request) Reply {
		seen = append(seen, string(r.RawBody))
		if strings.Contains(string(r.RawBody), "func please") {
			return Reply{Content: []Block{Text("from func")}}
		}
		return Reply{}
	})
	m = decode(t, post(t, s, strings.Replace(plainBody, "hello there", "func please", 1)).body)
	if asObj(m["content"].([]any)[0])["text"] != "from func" {
		t.Fatalf("func reply %v", m)
	}
	m = decode(t, post(t, s, plainBody).body)
	if asObj(m["content"].([]any)[1])["text"] != "scripted" || len(seen) != 2 {
		t.Fatalf("fallback to SetReply: %v (%d calls)", m, len(seen))
	}
	s.SetReplyFunc(nil)
	s.SetReply("claude-sonnet-4-5-20250929", Reply{})
	if m = decode(t, post(t, s, plainBody).body); asObj(m["content"].([]any)[0])["text"] != "echo: hello there" {
		t.Fatalf("scripts removed: %v", m)
	}

	s.SetReply("claude-sonnet-4-5-20250929", Reply{Content: []Block{ToolUse("t", "[1]")}})
	if r := post(t, s, plainBody); r.status != 500 || !strings.Contains(r.header.Get(ReasonHeader), "not a JSON object") {
		t.Fatalf("bad script: %d %q", r.status, r.header.Get(ReasonHeader))
	}
}

// TestStreamEvents: the API's event order, indexes, deltas that join to
// the blocks, and usage in message_start and message_delta.
func TestStreamEvents(t *testing.T) {
	s := newServer(t)
	input := `{"city":"Zürich","days":[1,2,3],"note":"say \"hi\""}`
	s.SetReply("claude-sonnet-4-5-20250929", Reply{
		Content: []Block{Thinking("first I think about the weather", "sig-xyz"), Text("Let me look that up for you."), ToolUse("get_weather", input)},
		Usage:   &Usage{Input: 11, Output: 42, CacheRead: 5, CacheCreation: 3},
	})
	r := post(t, s, streamBody(plainBody))
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %q", r.status, r.header.Get("Content-Type"))
	}
	evs := parseSSE(t, r.body)
	n := names(evs)
	if n[0] != "message_start" || n[1] != "ping" || n[len(n)-2] != "message_delta" || n[len(n)-1] != "message_stop" {
		t.Fatalf("order %q", n)
	}
	start := asObj(evs[0].data["message"])
	if len(start["content"].([]any)) != 0 || start["stop_reason"] != nil || num(asObj(start["usage"])["input_tokens"]) != 11 ||
		num(asObj(start["usage"])["cache_read_input_tokens"]) != 5 {
		t.Fatalf("message_start %v", start)
	}
	// Blocks open and close in order, one at a time, and their deltas fit.
	type joined struct{ typ, text, sig, json string }
	var blocks []joined
	open := -1
	var deltaTypes []string
	var fragments []string
	for _, ev := range evs[2 : len(evs)-2] {
		idx := num(ev.data["index"])
		switch ev.name {
		case "content_block_start":
			if open != -1 || idx != len(blocks) {
				t.Fatalf("block %d starts while %d is open (%d seen)", idx, open, len(blocks))
			}
			open = idx
			cb := asObj(ev.data["content_block"])
			blocks = append(blocks, joined{typ: cb["type"].(string)})
			if cb["type"] == "tool_use" && (len(asObj(cb["input"])) != 0 || cb["name"] != "get_weather") {
				t.Fatalf("tool_use start %v", cb)
			}
		case "content_block_delta":
			if idx != open {
				t.Fatalf("delta for %d while %d is open", idx, open)
			}
			d := asObj(ev.data["delta"])
			b := &blocks[idx]
			deltaTypes = append(deltaTypes, strconv.Itoa(idx)+":"+d["type"].(string))
			switch d["type"] {
			case "thinking_delta":
				b.text += d["thinking"].(string)
			case "signature_delta":
				b.sig += d["signature"].(string)
			case "text_delta":
				b.text += d["text"].(string)
			case "input_json_delta":
				fragments = append(fragments, d["partial_json"].(string))
				b.json += d["partial_json"].(string)
			}
		case "content_block_stop":
			if idx != open {
				t.Fatalf("stop for %d while %d is open", idx, open)
			}
			open = -1
		default:
			t.Fatalf("unexpected event %s", ev.name)
		}
	}
	want := []joined{
		{typ: "thinking", text: "first I think about the weather", sig: "sig-xyz"},
		{typ: "text", text: "Let me look that up for you."},
		{typ: "tool_use", json: input},
	}
	if !slices.Equal(blocks, want) {
		t.Fatalf("joined blocks %+v", blocks)
	}
	// The signature comes after the thinking, and text comes in pieces.
	if i := slices.Index(deltaTypes, "0:signature_delta"); i < 1 || deltaTypes[i-1] != "0:thinking_delta" || slices.Index(deltaTypes, "0:thinking_delta") > i {
		t.Fatalf("delta order %q", deltaTypes)
	}
	if c := strings.Count(strings.Join(deltaTypes, " "), "1:text_delta"); c < 2 {
		t.Fatalf("text in %d deltas", c)
	}
	if len(fragments) < 4 || fragments[0] != "" || fragments[1] != "{" {
		t.Fatalf("fragments %q", fragments)
	}
	md := evs[len(evs)-2].data
	if asObj(md["delta"])["stop_reason"] != "tool_use" || num(asObj(md["usage"])["output_tokens"]) != 42 || num(asObj(md["usage"])["input_tokens"]) != 11 {
		t.Fatalf("message_delta %v", md)
	}
}

// TestStreamGate: a gated stream sends its first event at once and each
// further one only for a value received from the gate.
func TestStreamGate(t *testing.T) {
	s := newServer(t)
	gate := make(chan struct{})
	s.SetStreamGate(testKey, gate)
	req, _ := http.NewRequest("POST", s.URL()+"/v1/messages", strings.NewReader(streamBody(plainBody)))
	req.Header = headers()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	got := []string{readFrame(t, br).name}
	for range 3 {
		// The gate is unbuffered: the send goes through only while the
		// stream waits for it, between two events.
		select {
		case gate <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatalf("the stream does not wait at the gate after %q", got)
		}
		got = append(got, readFrame(t, br).name)
	}
	if !slices.Equal(got, []string{"message_start", "ping", "content_block_start", "content_block_delta"}) {
		t.Fatalf("events %q", got)
	}
	close(gate)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if n := names(parseSSE(t, rest)); n[len(n)-1] != "message_stop" {
		t.Fatalf("rest %q", n)
	}
}

// TestStreamGateCancel: a client that leaves while its stream waits is
// counted; a stream held by Close is not, and Close does not wait for it.
func TestStreamGateCancel(t *testing.T) {
	s := NewServer()
	t.Cleanup(s.Close)
	s.AddKey(testKey)
	s.SetStreamGate(testKey, make(chan struct{}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL()+"/v1/messages", strings.NewReader(streamBody(plainBody)))
	req.Header = headers()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readFrame(t, bufio.NewReader(resp.Body))
	cancel()
	resp.Body.Close()
	if !s.WaitCanceledStreams(1, 5*time.Second) || !s.Requests()[0].Canceled {
		t.Fatal("the fake did not notice the client going away")
	}

	req, _ = http.NewRequest("POST", s.URL()+"/v1/messages", strings.NewReader(streamBody(plainBody)))
	req.Header = headers()
	held, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Body.Close()
	readFrame(t, bufio.NewReader(held.Body))
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the held stream")
	}
	if n := s.CanceledStreams(); n != 1 {
		t.Fatalf("CanceledStreams %d after Close", n)
	}
}

// TestBehaviors: the scripted failures, with the API's statuses, types
// and headers.
func TestBehaviors(t *testing.T) {
	s := newServer(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.SetNow(func() time.Time { return now })
	const key = "sk-ant-api03-scripted-key"
	tests := []struct {
		b       Behavior
		status  int
		errType string
		msg     string
		check   func(t *testing.T, h http.Header)
	}{
		{Unauthorized, 401, "authentication_error", "invalid x-api-key", nil},
		{Forbidden, 403, "permission_error", "does not have permission", nil},
		{RateLimited, 429, "rate_limit_error", "would exceed the rate limit", func(t *testing.T, h http.Header) {
			if h.Get("Retry-After") != "20" || h.Get("Anthropic-Ratelimit-Requests-Reset") != "2026-03-01T12:00:20Z" ||
				h.Get("Anthropic-Ratelimit-Tokens-Reset") != "2026-03-01T12:00:50Z" ||
				h.Get("Anthropic-Ratelimit-Input-Tokens-Reset") != "2026-03-01T12:00:50Z" ||
				h.Get("Anthropic-Ratelimit-Output-Tokens-Reset") != "2026-03-01T12:00:30Z" {
				t.Fatalf("headers %v", h)
			}
		}},
		{Overloaded, 529, "overloaded_error", "Overloaded", nil},
		{ServerError, 500, "api_error", "Internal server error", nil},
		{CreditTooLow, 400, "invalid_request_error", "Your credit balance is too low", nil},
		{BillingError, 402, "billing_error", "billing", nil},
		{ModelNotFound, 404, "not_found_error", "model: claude-sonnet-4-5-20250929", nil},
		{TooLarge, 413, "request_too_large", "maximum allowed number of bytes", nil},
		{Redirect, 307, "api_error", "moved", func(t *testing.T, h http.Header) {
			if h.Get("Location") != "https://api.anthropic.example/v1/messages?key="+key {
				t.Fatalf("location %q", h.Get("Location"))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.b.String(), func(t *testing.T) {
			s.SetBehavior(key, tc.b)
			h := headers()
			h.Set("X-Api-Key", key)
			req, _ := http.NewRequest("POST", s.URL()+"/v1/messages", strings.NewReader(plainBody))
			req.Header = h
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := reply{resp.StatusCode, resp.Header, b}
			typ, msg := apiErr(t, r)
			if r.status != tc.status || typ != tc.errType || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %d %s %q", r.status, typ, msg)
			}
			if r.header.Get(ReasonHeader) != "scripted behavior "+tc.b.String() {
				t.Fatalf("reason %q", r.header.Get(ReasonHeader))
			}
			if tc.check != nil {
				tc.check(t, r.header)
			}
		})
	}
	// A bad body is refused before the script.
	s.SetBehavior(key, Overloaded)
	h := headers()
	h.Set("X-Api-Key", key)
	if r := do(t, s, "POST", "/v1/messages", h, body(userHi+`,"foo":1`)); r.status != 400 {
		t.Fatalf("bad body with a script: %d", r.status)
	}
	// Reset headers only, as when the upstream leaves retry-after out.
	s.SetBehavior(key, RateLimited)
	s.SetRateLimit(RateLimit{TokensReset: 90 * time.Second})
	r := do(t, s, "POST", "/v1/messages", h, plainBody)
	if r.status != 429 || r.header.Get("Retry-After") != "" || r.header.Get("Anthropic-Ratelimit-Requests-Reset") != "" ||
		r.header.Get("Anthropic-Ratelimit-Tokens-Reset") != "2026-03-01T12:01:30Z" {
		t.Fatalf("reset only: %d %v", r.status, r.header)
	}
	s.SetBehavior(key, Normal)
	if r := do(t, s, "POST", "/v1/messages", h, plainBody); r.status != 401 {
		t.Fatalf("a key known only by its script: %d", r.status)
	}
}

// TestStreamBehaviors: failures in and instead of streams.
func TestStreamBehaviors(t *testing.T) {
	s := newServer(t)
	const key = "sk-ant-api03-stream-key"
	h := headers()
	h.Set("X-Api-Key", key)

	s.SetBehavior(key, StreamOverloaded)
	n := names(parseSSE(t, do(t, s, "POST", "/v1/messages", h, streamBody(plainBody)).body))
	if !slices.Equal(n, []string{"message_start", "ping", "content_block_start", "content_block_delta", "error"}) {
		t.Fatalf("StreamOverloaded: %q", n)
	}
	s.SetBehavior(key, StreamOverloadedAtStart)
	r := do(t, s, "POST", "/v1/messages", h, streamBody(plainBody))
	evs := parseSSE(t, r.body)
	if r.status != 200 || len(evs) != 1 || asObj(evs[0].data["error"])["type"] != "overloaded_error" {
		t.Fatalf("StreamOverloadedAtStart: %d %s", r.status, r.body)
	}
	s.SetBehavior(key, StreamAsJSON)
	r = do(t, s, "POST", "/v1/messages", h, streamBody(plainBody))
	if r.header.Get("Content-Type") != "application/json" || decode(t, r.body)["type"] != "message" {
		t.Fatalf("StreamAsJSON: %q %s", r.header.Get("Content-Type"), r.body)
	}

	s.SetBehavior(key, StreamBreak)
	for _, b := range []string{streamBody(plainBody), plainBody} {
		req, _ := http.NewRequest("POST", s.URL()+"/v1/messages", strings.NewReader(b))
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("StreamBreak: the body ended cleanly: %q", got)
		}
	}
}

// TestCountTokens: the documented rule, the same checks as messages but
// for max_tokens, which count_tokens refuses.
func TestCountTokens(t *testing.T) {
	s := newServer(t)
	count := func(b string) reply { return do(t, s, "POST", "/v1/messages/count_tokens", headers(), b) }
	b := `{"model":"claude-sonnet-4-5-20250929","system":"be very brief",` +
		`"tools":[` + weatherTool + `],` +
		`"messages":[{"role":"user","content":"what is the weather"},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny and warm"},{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]}]}`
	// system 3; messages 3+4, 3+2 (name, input), 3+3+100; tool 4+1+4.
	const want = 3 + 7 + 5 + 106 + 9
	r := count(b)
	if r.status != 200 || num(decode(t, r.body)["input_tokens"]) != want {
		t.Fatalf("%d %s, want %d", r.status, r.body, want)
	}
	if n, ok := CountTokens([]byte(b), true); !ok || n != want {
		t.Fatalf("CountTokens %d %v", n, ok)
	}
	// An answer to the same conversation reports the same input tokens.
	msg := decode(t, post(t, s, strings.Replace(b, `"system"`, `"max_tokens":100,"system"`, 1)).body)
	if num(asObj(msg["usage"])["input_tokens"]) != want {
		t.Fatalf("answer usage %v", msg["usage"])
	}
	for _, tc := range []struct{ body, msg string }{
		{`{"model":"claude-sonnet-4-5-20250929","max_tokens":10,` + userHi + `}`, "max_tokens: Extra inputs are not permitted"},
		{`{"model":"claude-sonnet-4-5-20250929","stream":true,` + userHi + `}`, "stream: Extra inputs are not permitted"},
		{`{"model":"claude-sonnet-4-5-20250929","messages":[]}`, "messages: at least one message is required"},
		{`{"model":"claude-sonnet-4-5-20250929","messages":[{"role":"user","content":"a"}],"thinking":{"type":"enabled","budget_tokens":10}}`, "greater than or equal to 1024"},
		{`{"messages":[{"role":"user","content":"a"}]}`, "model: Field required"},
	} {
		r := count(tc.body)
		if typ, msg := apiErr(t, r); r.status != 400 || typ != "invalid_request_error" || !strings.Contains(msg, tc.msg) {
			t.Fatalf("%s: %d %q", tc.body, r.status, msg)
		}
	}
	if _, ok := CountTokens([]byte(`{"model":"m"}`), true); ok {
		t.Fatal("CountTokens took a body without messages")
	}
	// Scripted failures apply to count_tokens as well.
	const key = "sk-ant-api03-limited"
	s.SetBehavior(key, RateLimited)
	h := headers()
	h.Set("X-Api-Key", key)
	if r := do(t, s, "POST", "/v1/messages/count_tokens", h, `{"model":"claude-sonnet-4-5-20250929",`+userHi+`}`); r.status != 429 {
		t.Fatalf("scripted count: %d", r.status)
	}
}

// TestModelsPages: pages follow after_id and before_id, with has_more,
// first_id and last_id, capped by SetModelsPageMax.
func TestModelsPages(t *testing.T) {
	s := newServer(t)
	s.SetModels("m1", "m2", "m3", "m4", "m5")
	page := func(query string) map[string]any {
		t.Helper()
		r := do(t, s, "GET", "/v1/models"+query, headers(), "")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", query, r.status, r.body)
		}
		return decode(t, r.body)
	}
	ids := func(m map[string]any) []string {
		var out []string
		for _, d := range m["data"].([]any) {
			d := asObj(d)
			if d["type"] != "model" || d["created_at"] != ModelCreatedAt || d["display_name"] == "" {
				t.Fatalf("model %v", d)
			}
			out = append(out, d["id"].(string))
		}
		return out
	}
	all := page("")
	if got := ids(all); !slices.Equal(got, []string{"m1", "m2", "m3", "m4", "m5"}) || all["has_more"] != false || all["first_id"] != "m1" || all["last_id"] != "m5" {
		t.Fatalf("all %v", all)
	}
	p := page("?limit=2")
	if got := ids(p); !slices.Equal(got, []string{"m1", "m2"}) || p["has_more"] != true || p["last_id"] != "m2" {
		t.Fatalf("limit 2: %v", p)
	}
	p = page("?limit=2&after_id=m4")
	if got := ids(p); !slices.Equal(got, []string{"m5"}) || p["has_more"] != false {
		t.Fatalf("after m4: %v", p)
	}
	p = page("?limit=2&before_id=m3")
	if got := ids(p); !slices.Equal(got, []string{"m1", "m2"}) || p["has_more"] != false {
		t.Fatalf("before m3: %v", p)
	}
	s.SetModelsPageMax(3)
	p = page("?limit=1000")
	if got := ids(p); !slices.Equal(got, []string{"m1", "m2", "m3"}) || p["has_more"] != true {
		t.Fatalf("page max: %v", p)
	}
	s.SetModels()
	if p = page(""); len(ids(p)) != 0 || p["first_id"] != nil || p["last_id"] != nil || p["has_more"] != false {
		t.Fatalf("empty: %v", p)
	}
	s.SetModels("m1")
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?after_id=nope", "?after_id=m1&before_id=m1"} {
		if r := do(t, s, "GET", "/v1/models"+q, headers(), ""); r.status != 400 {
			t.Fatalf("%s: %d", q, r.status)
		}
	}
	const key = "sk-ant-api03-models"
	s.SetBehavior(key, Forbidden)
	h := headers()
	h.Set("X-Api-Key", key)
	if r := do(t, s, "GET", "/v1/models", h, ""); r.status != 403 {
		t.Fatalf("scripted: %d", r.status)
	}
	s.SetBehavior(key, ModelNotFound)
	if r := do(t, s, "GET", "/v1/models", h, ""); r.status != 200 {
		t.Fatalf("a model failure on the list: %d", r.status)
	}
}

func TestDisplayName(t *testing.T) {
	for id, want := range map[string]string{
		"claude-sonnet-4-5-20250929": "Claude Sonnet 4.5",
		"claude-3-5-haiku-20241022":  "Claude 3.5 Haiku",
		"claude-opus-4-20250514":     "Claude Opus 4",
		"m1":                         "M1",
	} {
		if got := displayName(id); got != want {
			t.Errorf("%s: %q, want %q", id, got, want)
		}
	}
}

func TestRequestLog(t *testing.T) {
	s := newServer(t)
	logged := make(chan Request, 1)
	s.SetRequestLog(func(r Request) { logged <- r })
	post(t, s, plainBody)
	select {
	case r := <-logged:
		if r.Status != 200 || r.Outcome != "ok" {
			t.Fatalf("logged %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not logged")
	}
}
