package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/anthropic/anthropictest"
	"github.com/proxycast/caddy-proxycast/provider"
)

const testKey = "sk-ant-api03-provider-test-key-0123456789"

const testModel = "claude-sonnet-4-5-20250929"

// testNow is the clock of the fake and of the provider in tests that read
// reset times.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newFake(t *testing.T) *anthropictest.Server {
	t.Helper()
	s := anthropictest.NewServer()
	t.Cleanup(s.Close)
	s.AddKey(testKey)
	s.SetNow(func() time.Time { return testNow })
	return s
}

func newProvider(s *anthropictest.Server) *Provider {
	return &Provider{Name: "claude", APIBase: s.APIBase(), now: func() time.Time { return testNow }}
}

// plainBody has odd spacing, an unusual member order and a member the
// proxy knows nothing of, all of which must reach the upstream as sent.
const plainBody = `{ "messages":[{"role":"user","content":"hello there"}],  "model":"` + testModel + `","max_tokens":1024,"metadata":{"user_id":"u-1"}}`

func streamBody(body string) string {
	return strings.Replace(body, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)
}

func msgCall(body string, stream bool) *provider.Call {
	return &provider.Call{Model: testModel, Format: provider.FormatMessages, Body: []byte(body), Stream: stream, APIKey: testKey}
}

// drain reads a stream to its end.
func drain(t *testing.T, ev provider.EventReader) (events []map[string]any, err error) {
	t.Helper()
	defer ev.Close()
	for {
		data, err := ev.Next()
		if errors.Is(err, io.EOF) {
			return events, nil
		}
		if err != nil {
			return events, err
		}
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			t.Fatalf("event data is not JSON: %q", data)
		}
		if !strings.HasPrefix(string(data), `{"type":`) {
			t.Fatalf("event data does not begin with its type: %q", data)
		}
		events = append(events, m)
	}
}

func types(events []map[string]any) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i], _ = e["type"].(string)
	}
	return out
}

func asObj(v any) map[string]any { m, _ := v.(map[string]any); return m }

// assemble rebuilds a message from its stream, as SDKs accumulate one,
// failing on events out of order.
func assemble(t *testing.T, events []map[string]any) map[string]any {
	t.Helper()
	if len(events) < 3 || events[0]["type"] != "message_start" || events[len(events)-1]["type"] != "message_stop" {
		t.Fatalf("stream %q", types(events))
	}
	msg := asObj(events[0]["message"])
	var content []any
	partial := map[int]string{}
	open := -1
	for _, ev := range events[1 : len(events)-1] {
		if ev["type"] == "ping" {
			continue
		}
		idx := -2
		if f, ok := ev["index"].(float64); ok {
			idx = int(f)
		}
		switch ev["type"] {
		case "content_block_start":
			if open != -1 || idx != len(content) {
				t.Fatalf("block %d starts with %d open and %d seen", idx, open, len(content))
			}
			open = idx
			content = append(content, asObj(ev["content_block"]))
		case "content_block_delta":
			if idx != open {
				t.Fatalf("delta for block %d while %d is open", idx, open)
			}
			b := asObj(content[idx])
			d := asObj(ev["delta"])
			switch d["type"] {
			case "text_delta":
				b["text"] = b["text"].(string) + d["text"].(string)
			case "thinking_delta":
				b["thinking"] = b["thinking"].(string) + d["thinking"].(string)
			case "signature_delta":
				b["signature"] = b["signature"].(string) + d["signature"].(string)
			case "input_json_delta":
				partial[idx] += d["partial_json"].(string)
			case "citations_delta":
				cites, _ := b["citations"].([]any)
				b["citations"] = append(cites, d["citation"])
			default:
				t.Fatalf("delta type %v", d["type"])
			}
		case "content_block_stop":
			if idx != open {
				t.Fatalf("stop of block %d while %d is open", idx, open)
			}
			if js, ok := partial[idx]; ok {
				var input any
				if err := json.Unmarshal([]byte(js), &input); err != nil {
					t.Fatalf("tool input %q: %v", js, err)
				}
				asObj(content[idx])["input"] = input
			}
			open = -1
		case "message_delta":
			d := asObj(ev["delta"])
			msg["stop_reason"], msg["stop_sequence"] = d["stop_reason"], d["stop_sequence"]
			if ev["usage"] == nil {
				t.Fatal("message_delta without usage")
			}
			u := asObj(msg["usage"])
			for k, v := range asObj(ev["usage"]) {
				u[k] = v
			}
		default:
			t.Fatalf("event %v", ev["type"])
		}
	}
	if content == nil {
		content = []any{}
	}
	msg["content"] = content
	return msg
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		p    Provider
		err  string // "" for valid
	}{
		{"minimal", Provider{APIBase: "https://api.anthropic.com"}, ""},
		{"every setting", Provider{APIBase: "http://127.0.0.1:8080/proxy", Version: "2023-01-01", Betas: BetaPolicy{Allow: []string{"prompt-caching-2024-07-31"}},
			Refresh: time.Hour, Headers: http.Header{"Anthropic-Beta": {"a-1, b-2"}, "X-Team": {"t"}}}, ""},
		{"drop only", Provider{APIBase: "https://api.anthropic.com", Betas: BetaPolicy{Drop: true}}, ""},
		{"no api_base", Provider{}, "api_base is required"},
		{"not http", Provider{APIBase: "ftp://api.anthropic.com"}, "http:// or https://"},
		{"no host", Provider{APIBase: "https://"}, "http:// or https://"},
		{"with /v1", Provider{APIBase: "https://api.anthropic.com/v1"}, "must not end in /v1"},
		{"with a query", Provider{APIBase: "https://api.anthropic.com?x=1"}, "no query"},
		{"version with a space", Provider{APIBase: "https://a.example", Version: "2023 06 01"}, `version "2023 06 01"`},
		{"drop and allow", Provider{APIBase: "https://a.example", Betas: BetaPolicy{Drop: true, Allow: []string{"x"}}}, "keep one of them"},
		{"allow with a comma", Provider{APIBase: "https://a.example", Betas: BetaPolicy{Allow: []string{"a,b"}}}, `"a,b" is not a beta name`},
		{"allow empty", Provider{APIBase: "https://a.example", Betas: BetaPolicy{Allow: []string{""}}}, `"" is not a beta name`},
		{"negative refresh", Provider{APIBase: "https://a.example", Refresh: -time.Second}, "must not be negative"},
		{"key in headers", Provider{APIBase: "https://a.example", Headers: http.Header{"x-api-key": {"k"}}}, "x-api-key comes from each credential"},
		{"version in headers", Provider{APIBase: "https://a.example", Headers: http.Header{"Anthropic-Version": {"2023-06-01"}}}, "version option"},
		{"bad beta in headers", Provider{APIBase: "https://a.example", Headers: http.Header{"Anthropic-Beta": {"a b"}}}, `anthropic-beta "a b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Check()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

func TestNewAuth(t *testing.T) {
	p := &Provider{Name: "claude"}
	auth, err := p.NewAuth(provider.CredentialSpec{AuthType: provider.AuthAPIKey, APIKey: "  " + testKey + "\n"})
	if err != nil || auth.APIKey != testKey || auth.Renewer != nil {
		t.Fatalf("api_key: %+v %v", auth, err)
	}
	for _, tc := range []struct {
		spec provider.CredentialSpec
		err  string
	}{
		{provider.CredentialSpec{AuthType: provider.AuthAPIKey}, "needs api_key"},
		{provider.CredentialSpec{APIKey: testKey}, "auth_type is required"},
		{provider.CredentialSpec{AuthType: provider.AuthOAuth, TokenFile: "x"}, `auth_type oauth is not taken by anthropic instance "claude"`},
		{provider.CredentialSpec{AuthType: provider.AuthCookie, Cookies: "a=b"}, "auth_type cookie is not taken"},
	} {
		if _, err := p.NewAuth(tc.spec); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: %v, want %q", tc.spec, err, tc.err)
		}
	}
}

func TestSettingsAccessors(t *testing.T) {
	p := &Provider{StaticModels: []string{"a", "b"}, Refresh: time.Minute}
	if !slices.Equal(p.Models(), []string{"a", "b"}) || p.ModelsRefresh() != time.Minute ||
		!slices.Equal(provider.FormatsOf(p), []provider.Format{provider.FormatMessages}) {
		t.Fatal("accessors")
	}
	if got := (&Provider{}).label(); got != "the anthropic upstream" {
		t.Fatalf("unnamed label %q", got)
	}
}

// TestPassthrough: the body goes as sent, with the key, the version, the
// instance's headers, the content types, and none of the client's
// headers but the betas the policy passes.
func TestPassthrough(t *testing.T) {
	s := newFake(t)
	client := http.Header{
		"Anthropic-Beta":    {"prompt-caching-2024-07-31, Interleaved-Thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"},
		"Authorization":     {"Bearer client-own-token"},
		"X-Client-Thing":    {"secret"},
		"Anthropic-Version": {"2023-01-01"},
	}
	allBetas := []string{"prompt-caching-2024-07-31", "Interleaved-Thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"}
	tests := []struct {
		name    string
		p       Provider
		stream  bool
		version string
		betas   []string
	}{
		{"pass all", Provider{}, false, DefaultAPIVersion, allBetas},
		{"pass all, stream", Provider{}, true, DefaultAPIVersion, allBetas},
		{"drop", Provider{Betas: BetaPolicy{Drop: true}}, false, DefaultAPIVersion, nil},
		{"allow, any case", Provider{Betas: BetaPolicy{Allow: []string{"interleaved-thinking-2025-05-14", "PROMPT-CACHING-2024-07-31", "other"}}}, false, DefaultAPIVersion,
			[]string{"prompt-caching-2024-07-31", "Interleaved-Thinking-2025-05-14"}},
		{"instance betas first, each once", Provider{Headers: http.Header{"anthropic-beta": {"context-1m-2025-08-07,prompt-caching-2024-07-31"}}, Betas: BetaPolicy{Allow: []string{"prompt-caching-2024-07-31"}}},
			false, DefaultAPIVersion, []string{"context-1m-2025-08-07", "prompt-caching-2024-07-31"}},
		{"instance betas with drop", Provider{Headers: http.Header{"Anthropic-Beta": {"context-1m-2025-08-07"}}, Betas: BetaPolicy{Drop: true}}, false, DefaultAPIVersion, []string{"context-1m-2025-08-07"}},
		{"own version", Provider{Version: "2023-01-01"}, false, "2023-01-01", allBetas},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.Name, p.APIBase = "claude", s.APIBase()
			if p.Headers == nil {
				p.Headers = http.Header{}
			}
			p.Headers.Set("X-Team", "blue")
			body := plainBody
			if tc.stream {
				body = streamBody(plainBody)
			}
			call := msgCall(body, tc.stream)
			call.Header = client
			resp, err := p.Chat(context.Background(), call)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Events != nil {
				if _, err := drain(t, resp.Events); err != nil {
					t.Fatal(err)
				}
			}
			recs := s.RequestsTo("/v1/messages")
			r := recs[len(recs)-1]
			if r.Status != 200 || string(r.RawBody) != body {
				t.Fatalf("status %d, body %q, want %q", r.Status, r.RawBody, body)
			}
			if r.Key != testKey || r.Version != tc.version || !slices.Equal(r.Betas, tc.betas) {
				t.Fatalf("key %q version %q betas %q, want %q %q", r.Key, r.Version, r.Betas, tc.version, tc.betas)
			}
			if n := len(r.Header.Values("Anthropic-Beta")); n > 1 {
				t.Fatalf("%d anthropic-beta lines", n)
			}
			accept := "application/json"
			if tc.stream {
				accept = "text/event-stream"
			}
			if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Accept") != accept || r.Header.Get("X-Team") != "blue" {
				t.Fatalf("headers %v", r.Header)
			}
			if r.Header.Get("Authorization") != "" || r.Header.Get("X-Client-Thing") != "" {
				t.Fatalf("a client header went upstream: %v", r.Header)
			}
		})
	}
}

// TestBetaPolicyAgainstStrictUpstream: an upstream that refuses unknown
// betas fails the call that passes them all, and takes it under an allow
// list.
func TestBetaPolicyAgainstStrictUpstream(t *testing.T) {
	s := newFake(t)
	s.RefuseUnknownBetas("prompt-caching-2024-07-31")
	call := msgCall(plainBody, false)
	call.Header = http.Header{"Anthropic-Beta": {"prompt-caching-2024-07-31,claude-code-20250219"}}
	_, err := newProvider(s).Chat(context.Background(), call)
	pe, ok := errors.AsType[*provider.Error](err)
	if !ok || pe.Kind != provider.KindClient || pe.Status != 400 || !strings.Contains(pe.Message, "claude-code-20250219") {
		t.Fatalf("pass all: %v", err)
	}
	p := newProvider(s)
	p.Betas.Allow = []string{"prompt-caching-2024-07-31"}
	if _, err := p.Chat(context.Background(), call); err != nil {
		t.Fatalf("allow list: %v", err)
	}
}

func TestChatPlain(t *testing.T) {
	s := newFake(t)
	resp, err := newProvider(s).Chat(context.Background(), msgCall(plainBody, false))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentType != "application/json" || resp.Events != nil {
		t.Fatalf("response %+v", resp)
	}
	var m map[string]any
	if err := json.Unmarshal(resp.Body, &m); err != nil || m["type"] != "message" ||
		asObj(m["content"].([]any)[0])["text"] != "echo: hello there" || asObj(m["usage"])["input_tokens"] != float64(5) {
		t.Fatalf("body %s", resp.Body)
	}
}

func TestChatWrongFormat(t *testing.T) {
	call := msgCall(plainBody, false)
	call.Format = provider.FormatChat
	p := &Provider{Name: "claude", APIBase: "http://127.0.0.1:1"}
	if _, err := p.Chat(context.Background(), call); err == nil || !strings.Contains(err.Error(), "takes Anthropic Messages bodies, not chat") {
		t.Fatalf("chat: %v", err)
	}
	if _, err := p.CountTokens(context.Background(), call); err == nil || !strings.Contains(err.Error(), "not chat") {
		t.Fatalf("count: %v", err)
	}
}

// TestStreamEventByEvent: each event reaches the caller before the
// upstream has sent the next.
func TestStreamEventByEvent(t *testing.T) {
	s := newFake(t)
	gate := make(chan struct{})
	s.SetStreamGate(testKey, gate)
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	resp, err := newProvider(s).Chat(context.Background(), msgCall(streamBody(plainBody), true))
	if err != nil {
		t.Fatal(err)
	}
	ev := resp.Events
	defer ev.Close()
	if resp.ContentType != "text/event-stream" {
		t.Fatalf("content type %q", resp.ContentType)
	}
	if b, ok := ev.(provider.BufferedEvents); !ok || !b.EventBuffered() {
		t.Fatal("the first event, read already, is not reported buffered")
	}
	// The fake waits at the gate: this event came alone.
	data, err := ev.Next()
	if err != nil || !strings.HasPrefix(string(data), `{"type":"message_start"`) {
		t.Fatalf("first event %q %v", data, err)
	}
	var got []string
	for range 3 {
		select {
		case gate <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatal("the fake is not waiting at the gate")
		}
		data, err := ev.Next()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		got = append(got, m["type"].(string))
	}
	if !slices.Equal(got, []string{"ping", "content_block_start", "content_block_delta"}) {
		t.Fatalf("events %q", got)
	}
	close(gate)
	rest, err := drain(t, ev)
	if err != nil || rest[len(rest)-1]["type"] != "message_stop" {
		t.Fatalf("rest %q %v", types(rest), err)
	}
	if _, err := ev.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the end: %v", err)
	}
}

// TestStreamMatchesAnswer: a streamed answer, rebuilt, is the plain
// answer: thinking with its signature, text, tool input, usage.
func TestStreamMatchesAnswer(t *testing.T) {
	s := newFake(t)
	s.SetReply(testModel, anthropictest.Reply{
		Content: []anthropictest.Block{
			anthropictest.Thinking("the user wants weather", "sig-abc"),
			anthropictest.Text("Looking it up."),
			{Type: "tool_use", ID: "toolu_fixed", Name: "get_weather", Input: `{"city":"Zürich","units":["c"]}`},
		},
		Usage: &anthropictest.Usage{Input: 10, Output: 20, CacheRead: 30, CacheCreation: 40},
	})
	p := newProvider(s)
	plain, err := p.Chat(context.Background(), msgCall(plainBody, false))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Chat(context.Background(), msgCall(streamBody(plainBody), true))
	if err != nil {
		t.Fatal(err)
	}
	events, err := drain(t, resp.Events)
	if err != nil {
		t.Fatal(err)
	}
	if types(events)[1] != "ping" {
		t.Fatalf("ping not passed on: %q", types(events))
	}
	got := assemble(t, events)
	var want map[string]any
	_ = json.Unmarshal(plain.Body, &want)
	delete(got, "id")
	delete(want, "id")
	if mustJSON(t, got) != mustJSON(t, want) {
		t.Fatalf("rebuilt\n%s\nwant\n%s", mustJSON(t, got), mustJSON(t, want))
	}
}

// TestJSONAnswerToStream: an upstream that answers a stream request with
// one message still gives the caller a stream, which rebuilds the
// message.
func TestJSONAnswerToStream(t *testing.T) {
	s := newFake(t)
	s.SetBehavior(testKey, anthropictest.StreamAsJSON)
	s.SetReply(testModel, anthropictest.Reply{
		Content: []anthropictest.Block{
			anthropictest.Thinking("hmm", "sig-1"),
			anthropictest.RedactedThinking("opaque=="),
			anthropictest.Text("two"),
			{Type: "tool_use", ID: "toolu_fixed", Name: "t", Input: `{"a":[1,{"b":"c"}]}`},
		},
		Usage: &anthropictest.Usage{Input: 3, Output: 4, CacheRead: 5, CacheCreation: 6},
	})
	p := newProvider(s)
	resp, err := p.Chat(context.Background(), msgCall(streamBody(plainBody), true))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentType != "text/event-stream" || resp.Events == nil {
		t.Fatalf("response %+v", resp)
	}
	events, err := drain(t, resp.Events)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"message_start",
		"content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
		"content_block_start", "content_block_stop",
		"content_block_start", "content_block_delta", "content_block_stop",
		"content_block_start", "content_block_delta", "content_block_stop",
		"message_delta", "message_stop"}
	if !slices.Equal(types(events), want) {
		t.Fatalf("events %q", types(events))
	}
	start := asObj(events[0]["message"])
	if len(start["content"].([]any)) != 0 || start["stop_reason"] != nil || asObj(start["usage"])["output_tokens"] != float64(0) ||
		asObj(start["usage"])["input_tokens"] != float64(3) {
		t.Fatalf("message_start %v", start)
	}
	if u := asObj(events[len(events)-2]["usage"]); u["output_tokens"] != float64(4) || u["cache_read_input_tokens"] != float64(5) {
		t.Fatalf("message_delta usage %v", u)
	}
	got := assemble(t, events)
	// The same request without stream is the message itself.
	s.SetBehavior(testKey, anthropictest.Normal)
	plain, err := p.Chat(context.Background(), msgCall(plainBody, false))
	if err != nil {
		t.Fatal(err)
	}
	var wantMsg map[string]any
	_ = json.Unmarshal(plain.Body, &wantMsg)
	delete(got, "id")
	delete(wantMsg, "id")
	if mustJSON(t, got) != mustJSON(t, wantMsg) {
		t.Fatalf("rebuilt\n%s\nwant\n%s", mustJSON(t, got), mustJSON(t, wantMsg))
	}
}

// TestJSONAnswerEventsKeepsEverything: conversion keeps members it does
// not know, citations, and server tool blocks.
func TestJSONAnswerEventsKeepsEverything(t *testing.T) {
	raw := `{"id":"msg_1","type":"message","role":"assistant","model":"m","container":{"id":"c1"},"content":[` +
		`{"type":"text","text":"cited","citations":[{"type":"char_location","cited_text":"x","document_index":0,"start_char_index":0,"end_char_index":1}]},` +
		`{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"q"}},` +
		`{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]},` +
		`{"type":"text","text":""}],` +
		`"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":2,"server_tool_use":{"web_search_requests":1}}}`
	ev, err := jsonAnswerEvents([]byte(raw), "x")
	if err != nil {
		t.Fatal(err)
	}
	events, err := drain(t, ev)
	if err != nil {
		t.Fatal(err)
	}
	got := assemble(t, events)
	var want map[string]any
	_ = json.Unmarshal([]byte(raw), &want)
	if mustJSON(t, got) != mustJSON(t, want) {
		t.Fatalf("rebuilt\n%s\nwant\n%s", mustJSON(t, got), mustJSON(t, want))
	}
	if asObj(events[0]["message"])["container"] == nil {
		t.Fatal("message_start lost a member")
	}

	// No usage at all still gives message_delta a usage.
	ev, err = jsonAnswerEvents([]byte(`{"type":"message","content":[],"stop_reason":"end_turn"}`), "x")
	if err != nil {
		t.Fatal(err)
	}
	events, _ = drain(t, ev)
	if asObj(events[len(events)-2]["usage"])["output_tokens"] != float64(0) {
		t.Fatalf("usage %v", events[len(events)-2])
	}
	if _, err := jsonAnswerEvents([]byte(`{"type":"message","content":{}}`), "x"); err == nil {
		t.Fatal("malformed content converted")
	}
}

func TestCountTokens(t *testing.T) {
	s := newFake(t)
	body := `{"model":"` + testModel + `","system":"be brief","messages":[{"role":"user","content":"count these four words"}]}`
	call := msgCall(body, false)
	call.Header = http.Header{"Anthropic-Beta": {"token-counting-2024-11-01"}}
	n, err := newProvider(s).CountTokens(context.Background(), call)
	want, _ := anthropictest.CountTokens([]byte(body), true)
	if err != nil || n != int64(want) || want != 9 {
		t.Fatalf("count %d %v, want %d", n, err, want)
	}
	r := s.RequestsTo("/v1/messages/count_tokens")[0]
	if string(r.RawBody) != body || r.Key != testKey || r.Header.Get("Accept") != "application/json" ||
		!slices.Equal(r.Betas, []string{"token-counting-2024-11-01"}) {
		t.Fatalf("request %+v", r)
	}
	// count_tokens refuses max_tokens: the client's mistake.
	_, err = newProvider(s).CountTokens(context.Background(), msgCall(plainBody, false))
	if pe, ok := errors.AsType[*provider.Error](err); !ok || pe.Kind != provider.KindClient || !strings.Contains(pe.Message, "max_tokens: Extra inputs are not permitted") {
		t.Fatalf("bad body: %v", err)
	}
	s.SetBehavior(testKey, anthropictest.RateLimited)
	_, err = newProvider(s).CountTokens(context.Background(), call)
	if pe, ok := errors.AsType[*provider.Error](err); !ok || pe.Kind != provider.KindRateLimit || pe.RetryAfter != 20*time.Second {
		t.Fatalf("rate limited: %v", err)
	}
}

// countingTransport counts the calls it carries.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestFetchModelsPages(t *testing.T) {
	s := newFake(t)
	s.SetModels("m1", "m2", "m3", "m4", "m5")
	s.SetModelsPageMax(2)
	rt := &countingTransport{}
	call := &provider.Call{APIKey: testKey, Transport: rt}
	ids, err := newProvider(s).FetchModels(context.Background(), call)
	if err != nil || !slices.Equal(ids, []string{"m1", "m2", "m3", "m4", "m5"}) {
		t.Fatalf("ids %q %v", ids, err)
	}
	reqs := s.RequestsTo("/v1/models")
	var queries []string
	for _, r := range reqs {
		queries = append(queries, r.Query)
		if r.Key != testKey || r.Version != DefaultAPIVersion {
			t.Fatalf("request %+v", r)
		}
	}
	if !slices.Equal(queries, []string{"limit=1000", "after_id=m2&limit=1000", "after_id=m4&limit=1000"}) || rt.n.Load() != 3 {
		t.Fatalf("queries %q, %d through the call's transport", queries, rt.n.Load())
	}

	s.SetBehavior(testKey, anthropictest.Unauthorized)
	_, err = newProvider(s).FetchModels(context.Background(), call)
	if pe, ok := errors.AsType[*provider.Error](err); !ok || pe.Kind != provider.KindAuth {
		t.Fatalf("unauthorized: %v", err)
	}
}
