package openaitest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestChatCompletion(t *testing.T) {
	s := newServer(t)
	r := do(t, chatReq(t, s, testKey, chatBody(false))).ok(t)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	m := decode(t, r.body)
	if !strings.HasPrefix(str(m["id"]), "chatcmpl-") || m["object"] != "chat.completion" || m["model"] != testModel || num(m["created"]) == 0 {
		t.Fatalf("bad completion %s", r.body)
	}
	ch := choice(m)
	msg := obj(ch["message"])
	if msg["role"] != "assistant" || msg["content"] != "echo: hello there" || ch["finish_reason"] != "stop" || num(ch["index"]) != 0 {
		t.Fatalf("bad choice %v", ch)
	}
	if _, has := msg["tool_calls"]; has {
		t.Fatalf("tool_calls in a text answer: %v", msg)
	}
	// One token a word: "be brief" + "hello there", "echo: hello there".
	u := obj(m["usage"])
	if num(u["prompt_tokens"]) != 4 || num(u["completion_tokens"]) != 3 || num(u["total_tokens"]) != 7 ||
		obj(u["prompt_tokens_details"])["cached_tokens"] != float64(0) ||
		obj(u["completion_tokens_details"])["reasoning_tokens"] != float64(0) {
		t.Fatalf("usage %v", u)
	}
	// Ids are fresh for every answer.
	again := decode(t, do(t, chatReq(t, s, testKey, chatBody(false))).ok(t).body)
	if again["id"] == m["id"] {
		t.Fatalf("two answers share id %v", m["id"])
	}
}

func TestChatEchoes(t *testing.T) {
	tests := []struct {
		name string
		msgs []any
		want string
	}{
		{"string", []any{userMsg("hi")}, "echo: hi"},
		{"empty string", []any{userMsg("")}, "echo: "},
		{"text parts", []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "text", "text": "look"},
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "data:image/png;base64,AAAA"}},
			map[string]any{"type": "text", "text": "here"},
		}}}, "echo: look here"},
		{"image only", []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "https://example.com/a.png"}},
		}}}, "echo: ok"},
		{"last user message", []any{userMsg("first"), map[string]any{"role": "assistant", "content": "x"}, userMsg("second")}, "echo: second"},
		{"assistant prefill", []any{userMsg("q"), map[string]any{"role": "assistant", "content": "partial"}}, "echo: q"},
		{"tool result", []any{
			userMsg("weather?"),
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
				"id": "call_1", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": `{"city":"Paris"}`},
			}}},
			map[string]any{"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
		}, "tool said: sunny"},
		{"tool result parts", []any{
			userMsg("weather?"),
			map[string]any{"role": "assistant", "tool_calls": []any{map[string]any{
				"id": "call_1", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": "{}"},
			}}},
			map[string]any{"role": "tool", "tool_call_id": "call_1", "content": []any{map[string]any{"type": "text", "text": "rain"}}},
		}, "tool said: rain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			body := map[string]any{"model": testModel, "messages": tc.msgs}
			m := decode(t, do(t, chatReq(t, s, testKey, body)).ok(t).body)
			if got := obj(choice(m)["message"])["content"]; got != tc.want {
				t.Fatalf("content %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStream(t *testing.T) {
	for _, noSpace := range []bool{false, true} {
		for _, includeUsage := range []any{nil, false, true} {
			t.Run(fmt.Sprintf("nospace=%t/include_usage=%v", noSpace, includeUsage), func(t *testing.T) {
				s := newServer(t)
				s.SetNoSpaceData(noSpace)
				body := chatBody(true)
				if includeUsage != nil {
					body["stream_options"] = map[string]any{"include_usage": includeUsage}
				}
				r := do(t, chatReq(t, s, testKey, body)).ok(t)
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
					t.Fatalf("Content-Type %q", ct)
				}
				spaced := strings.Contains(string(r.body), "data: ")
				if spaced == noSpace || !strings.HasPrefix(string(r.body), "data:") {
					t.Fatalf("framing with nospace=%t: %q", noSpace, r.body)
				}
				events, complete := parseSSE(t, r.body)
				if !complete {
					t.Fatalf("stream does not end on an event boundary: %q", r.body)
				}
				chs := chunks(t, events, true)
				text, finishes, roles := joinText(chs)
				if text != "echo: hello there" || !slices.Equal(finishes, []string{"stop"}) || roles != 1 {
					t.Fatalf("text %q, finishes %q, roles %d", text, finishes, roles)
				}
				if obj(choice(chs[0])["delta"])["role"] != "assistant" {
					t.Fatalf("first chunk has no role: %v", chs[0])
				}
				contents := 0
				for _, c := range chs {
					if str(obj(choice(c)["delta"])["content"]) != "" {
						contents++
					}
				}
				if contents < 3 {
					t.Fatalf("content in %d chunks, want several", contents)
				}
				ids := map[any]bool{}
				for _, c := range chs {
					ids[c["id"]] = true
				}
				if len(ids) != 1 {
					t.Fatalf("chunks of one stream with ids %v", ids)
				}

				if includeUsage != true {
					for _, c := range chs {
						if _, has := c["usage"]; has {
							t.Fatalf("usage without include_usage: %v", c)
						}
					}
					return
				}
				last := chs[len(chs)-1]
				if cs, ok := last["choices"].([]any); !ok || len(cs) != 0 {
					t.Fatalf("usage chunk must have empty choices: %v", last)
				}
				if u := obj(last["usage"]); num(u["prompt_tokens"]) != 4 || num(u["completion_tokens"]) != 3 || num(u["total_tokens"]) != 7 {
					t.Fatalf("usage %v", last["usage"])
				}
				for _, c := range chs[:len(chs)-1] {
					if u, has := c["usage"]; !has || u != nil {
						t.Fatalf("chunk before the usage chunk must carry usage null: %v", c)
					}
				}
				if finish := choice(chs[len(chs)-2])["finish_reason"]; finish != "stop" {
					t.Fatalf("the finish chunk must come just before the usage chunk: %v", chs[len(chs)-2])
				}
			})
		}
	}
}

func TestSetUsage(t *testing.T) {
	s := newServer(t)
	s.SetUsage(Usage{Prompt: 100, Completion: 40, Cached: 64, Reasoning: 30})
	check := func(what string, u map[string]any, prompt, completion, cached, reasoning int) {
		t.Helper()
		if num(u["prompt_tokens"]) != prompt || num(u["completion_tokens"]) != completion || num(u["total_tokens"]) != prompt+completion ||
			num(obj(u["prompt_tokens_details"])["cached_tokens"]) != cached ||
			num(obj(u["completion_tokens_details"])["reasoning_tokens"]) != reasoning {
			t.Fatalf("%s: usage %v", what, u)
		}
	}
	m := decode(t, do(t, chatReq(t, s, testKey, chatBody(false))).ok(t).body)
	check("non-stream", obj(m["usage"]), 100, 40, 64, 30)

	body := chatBody(true)
	body["stream_options"] = map[string]any{"include_usage": true}
	events, _ := parseSSE(t, do(t, chatReq(t, s, testKey, body)).ok(t).body)
	chs := chunks(t, events, true)
	check("stream", obj(chs[len(chs)-1]["usage"]), 100, 40, 64, 30)

	s.SetUsage(Usage{})
	m = decode(t, do(t, chatReq(t, s, testKey, chatBody(false))).ok(t).body)
	check("restored", obj(m["usage"]), 4, 3, 0, 0)
}

// TestSetReasoning: answers think first, as DeepSeek's reasoning_content,
// before the text (and before tool calls), streamed in several chunks
// that join into the reasoning, with the role said once.
func TestSetReasoning(t *testing.T) {
	s := newServer(t)
	s.SetReasoning("weighing the options carefully")
	m := decode(t, do(t, chatReq(t, s, testKey, chatBody(false))).ok(t).body)
	if msg := obj(choice(m)["message"]); msg["reasoning_content"] != "weighing the options carefully" || msg["content"] != "echo: hello there" {
		t.Fatalf("message %v", msg)
	}
	for _, body := range []map[string]any{chatBody(true), toolBody(true, `call get_weather {"city":"Paris"}`)} {
		events, _ := parseSSE(t, do(t, chatReq(t, s, testKey, body)).ok(t).body)
		chs := chunks(t, events, true)
		var reasoning string
		parts := 0
		for i, ch := range chs {
			d := obj(choice(ch)["delta"])
			if r := str(d["reasoning_content"]); r != "" {
				reasoning += r
				parts++
				if d["content"] != nil || d["tool_calls"] != nil {
					t.Fatalf("chunk %d mixes reasoning with content: %v", i, d)
				}
			} else if (str(d["content"]) != "" || d["tool_calls"] != nil) && reasoning == "" {
				t.Fatalf("chunk %d answers before the reasoning: %v", i, d)
			}
		}
		if _, _, roles := joinText(chs); reasoning != "weighing the options carefully" || parts < 2 || roles != 1 {
			t.Fatalf("streamed reasoning %q in %d parts, %d role deltas", reasoning, parts, roles)
		}
	}
	s.SetReasoning("")
	m = decode(t, do(t, chatReq(t, s, testKey, chatBody(false))).ok(t).body)
	if _, ok := obj(choice(m)["message"])["reasoning_content"]; ok {
		t.Errorf("reasoning after SetReasoning(\"\"): %v", m)
	}
}

func TestToolCalls(t *testing.T) {
	type want struct {
		name, args string
	}
	tests := []struct {
		name   string
		text   string
		mutate func(map[string]any)
		calls  []want
		text2  string // content when no calls are wanted
	}{
		{"one call", `call get_weather {"city":"Paris"}`, nil, []want{{"get_weather", `{"city":"Paris"}`}}, ""},
		{"spaced json compacted", `call get_weather { "city" : "Paris" }`, nil, []want{{"get_weather", `{"city":"Paris"}`}}, ""},
		{"parallel", `call get_weather {"city":"Paris"} and call get_time {}`, nil,
			[]want{{"get_weather", `{"city":"Paris"}`}, {"get_time", `{}`}}, ""},
		{"parallel off", `call get_weather {"city":"Paris"} and call get_time {}`,
			func(b map[string]any) { b["parallel_tool_calls"] = false },
			[]want{{"get_weather", `{"city":"Paris"}`}}, ""},
		{"tool_choice forces a function", "what time is it?",
			func(b map[string]any) {
				b["tool_choice"] = map[string]any{"type": "function", "function": map[string]any{"name": "get_time"}}
			},
			[]want{{"get_time", `{}`}}, ""},
		{"tool_choice forced keeps matching arguments", `call get_weather {"city":"Oslo"} and call get_time {"tz":"UTC"}`,
			func(b map[string]any) {
				b["tool_choice"] = map[string]any{"type": "function", "function": map[string]any{"name": "get_time"}}
			},
			[]want{{"get_time", `{"tz":"UTC"}`}}, ""},
		{"tool_choice required", "anything", func(b map[string]any) { b["tool_choice"] = "required" },
			[]want{{"get_weather", `{}`}}, ""},
		{"tool_choice none", `call get_weather {"city":"Paris"}`, func(b map[string]any) { b["tool_choice"] = "none" },
			nil, `echo: call get_weather {"city":"Paris"}`},
		{"unknown function", `call launch {"x":1}`, nil, nil, `echo: call launch {"x":1}`},
		{"not an object", `call get_weather [1]`, nil, nil, `echo: call get_weather [1]`},
		{"trailing words", `call get_weather {} please`, nil, nil, `echo: call get_weather {} please`},
		{"no tools", `call get_weather {"city":"Paris"}`, func(b map[string]any) { delete(b, "tools") },
			nil, `echo: call get_weather {"city":"Paris"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			body := toolBody(false, tc.text)
			if tc.mutate != nil {
				tc.mutate(body)
			}
			m := decode(t, do(t, chatReq(t, s, testKey, body)).ok(t).body)
			ch := choice(m)
			msg := obj(ch["message"])
			if tc.calls == nil {
				if msg["content"] != tc.text2 || ch["finish_reason"] != "stop" || msg["tool_calls"] != nil {
					t.Fatalf("want text %q, got %v", tc.text2, ch)
				}
				return
			}
			if content, has := msg["content"]; !has || content != nil || ch["finish_reason"] != "tool_calls" {
				t.Fatalf("a tool-call answer needs content null and finish_reason tool_calls: %v", ch)
			}
			calls, _ := msg["tool_calls"].([]any)
			if len(calls) != len(tc.calls) {
				t.Fatalf("%d calls, want %d: %v", len(calls), len(tc.calls), msg)
			}
			ids := map[string]bool{}
			for i, raw := range calls {
				c := obj(raw)
				fn := obj(c["function"])
				args, isString := fn["arguments"].(string)
				if !isString || !json.Valid([]byte(args)) || args != tc.calls[i].args || fn["name"] != tc.calls[i].name {
					t.Fatalf("call %d: %v, want %v", i, c, tc.calls[i])
				}
				if c["type"] != "function" || !strings.HasPrefix(str(c["id"]), "call_") || ids[str(c["id"])] {
					t.Fatalf("call %d: bad id or type: %v", i, c)
				}
				if _, has := c["index"]; has {
					t.Fatalf("non-streamed tool calls carry no index: %v", c)
				}
				ids[str(c["id"])] = true
			}
		})
	}
}

func TestToolCallStream(t *testing.T) {
	modes := []ToolIndexMode{ToolIndexNormal, ToolIndexMissing, ToolIndexOneBased}
	texts := map[string][]joinedCall{
		`call get_weather {"city":"Paris, Île-de-France"}`: {{name: "get_weather", args: `{"city":"Paris, Île-de-France"}`}},
		`call get_weather {"city":"Paris"} and call get_time {}`: {
			{name: "get_weather", args: `{"city":"Paris"}`}, {name: "get_time", args: `{}`},
		},
	}
	for _, mode := range modes {
		for text, want := range texts {
			for _, noSpace := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%d calls/nospace=%t", mode, len(want), noSpace), func(t *testing.T) {
					s := newServer(t)
					s.SetToolCallIndex(mode)
					s.SetNoSpaceData(noSpace)
					body := toolBody(true, text)
					body["stream_options"] = map[string]any{"include_usage": true}
					events, complete := parseSSE(t, do(t, chatReq(t, s, testKey, body)).ok(t).body)
					if !complete {
						t.Fatal("stream does not end on an event boundary")
					}
					chs := chunks(t, events, true)
					first := obj(choice(chs[0])["delta"])
					if first["role"] != "assistant" || first["tool_calls"] == nil {
						t.Fatalf("first delta must carry the role and the first call: %v", first)
					}
					calls := joinToolCalls(t, chs, mode)
					if len(calls) != len(want) {
						t.Fatalf("joined %d calls, want %d: %+v", len(calls), len(want), calls)
					}
					for i, c := range calls {
						if c.name != want[i].name || c.args != want[i].args || !json.Valid([]byte(c.args)) || !strings.HasPrefix(c.id, "call_") {
							t.Fatalf("call %d: %+v, want %+v", i, c, want[i])
						}
					}
					fragments := 0
					for _, c := range chs {
						for _, tc := range toolDeltas(c) {
							if obj(tc)["id"] == nil {
								fragments++
							}
						}
					}
					if fragments < 2*len(want) {
						t.Fatalf("arguments in %d fragments, want at least two a call", fragments)
					}
					_, finishes, _ := joinText(chs)
					if !slices.Equal(finishes, []string{"tool_calls"}) {
						t.Fatalf("finish reasons %q", finishes)
					}
					if !strings.HasPrefix(str(chs[len(chs)-1]["id"]), "chatcmpl-") || obj(chs[len(chs)-1]["usage"]) == nil {
						t.Fatalf("no usage chunk: %v", chs[len(chs)-1])
					}
				})
			}
		}
	}
}

// toolDeltas lists the tool-call deltas of a chunk.
func toolDeltas(c map[string]any) []any {
	tcs, _ := obj(choice(c)["delta"])["tool_calls"].([]any)
	return tcs
}

func TestAuth(t *testing.T) {
	const wrongKey = "sk-wrong-key-1234567890"
	tests := []struct {
		name       string
		header     string // SetAuthHeader name; "" for the default
		prefix     string
		set        map[string]string // request headers
		code       any
		reasonHas  string
		maskedWant string
	}{
		{name: "no key", set: nil, code: nil, reasonHas: "no Authorization header"},
		{name: "not bearer", set: map[string]string{"Authorization": testKey}, code: nil, reasonHas: `"Bearer "`},
		{name: "lowercase bearer", set: map[string]string{"Authorization": "bearer " + testKey}, code: nil, reasonHas: `"Bearer "`},
		{name: "bearer without key", set: map[string]string{"Authorization": "Bearer "}, code: nil, reasonHas: `"Bearer "`},
		{name: "wrong key", set: map[string]string{"Authorization": "Bearer " + wrongKey}, code: "invalid_api_key", reasonHas: "unknown API key", maskedWant: "sk-wr****90"},
		{name: "short wrong key", set: map[string]string{"Authorization": "Bearer abc"}, code: "invalid_api_key", reasonHas: "unknown API key", maskedWant: "****"},
		{name: "key in api-key header", set: map[string]string{"Api-Key": testKey}, code: nil, reasonHas: "sent in the Api-Key header"},
		{name: "key in x-api-key header", set: map[string]string{"X-Api-Key": testKey}, code: nil, reasonHas: "sent in the X-Api-Key header"},
		{name: "azure: bearer instead of api-key", header: "api-key", set: map[string]string{"Authorization": "Bearer " + testKey}, code: nil, reasonHas: "sent in the Authorization header, but this server takes it in Api-Key"},
		{name: "azure: wrong key", header: "api-key", set: map[string]string{"api-key": wrongKey}, code: "invalid_api_key", maskedWant: "sk-wr****90"},
		{name: "azure: prefixed key", header: "api-key", set: map[string]string{"api-key": "Bearer " + testKey}, code: "invalid_api_key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			if tc.header != "" {
				s.SetAuthHeader(tc.header, tc.prefix)
			}
			for _, req := range []*http.Request{chatReq(t, s, testKey, chatBody(false)), modelsReq(t, s, testKey)} {
				req.Header.Del("Authorization")
				for k, v := range tc.set {
					req.Header.Set(k, v)
				}
				r := do(t, req)
				if r.status != http.StatusUnauthorized {
					t.Fatalf("%s: status %d: %s", req.URL.Path, r.status, r.body)
				}
				e := apiErr(t, r.body)
				if e["type"] != "invalid_request_error" || e["code"] != tc.code || e["param"] != nil {
					t.Fatalf("%s: error %v", req.URL.Path, e)
				}
				if tc.code == "invalid_api_key" && !strings.HasPrefix(str(e["message"]), "Incorrect API key provided: "+tc.maskedWant+".") && tc.maskedWant != "" {
					t.Fatalf("message %q, want the key masked as %q", e["message"], tc.maskedWant)
				}
				if tc.code == nil && !strings.HasPrefix(str(e["message"]), "You didn't provide an API key.") {
					t.Fatalf("message %q", e["message"])
				}
				if strings.Contains(string(r.body), testKey) || strings.Contains(string(r.body), wrongKey) || strings.Contains(r.header.Get(ReasonHeader), wrongKey) {
					t.Fatalf("the answer reveals a key: %s %v", r.body, r.header)
				}
				if reason := r.header.Get(ReasonHeader); !strings.Contains(reason, tc.reasonHas) {
					t.Fatalf("reason %q, want it to say %q", reason, tc.reasonHas)
				}
			}
			for _, rec := range s.Requests() {
				if rec.Status != http.StatusUnauthorized || !strings.HasPrefix(rec.Outcome, "rejected: ") {
					t.Fatalf("record %+v", rec)
				}
			}
		})
	}
}

func TestAzureHeaderAccepted(t *testing.T) {
	s := newServer(t)
	s.SetAuthHeader("api-key", "")
	req := chatReq(t, s, testKey, chatBody(false))
	req.Header.Del("Authorization")
	req.Header.Set("api-key", testKey)
	do(t, req).ok(t)
	if rec := s.Requests()[0]; rec.Key != testKey {
		t.Fatalf("record key %q", rec.Key)
	}
}

func TestRemoveKey(t *testing.T) {
	s := newServer(t)
	do(t, chatReq(t, s, testKey, chatBody(false))).ok(t)
	s.RemoveKey(testKey)
	if r := do(t, chatReq(t, s, testKey, chatBody(false))); r.status != 401 || apiErr(t, r.body)["code"] != "invalid_api_key" {
		t.Fatalf("removed key: %d %s", r.status, r.body)
	}
	s.AddKey(testKey)
	do(t, chatReq(t, s, testKey, chatBody(false))).ok(t)
}

func TestRequireHeader(t *testing.T) {
	s := newServer(t)
	s.RequireHeader("HTTP-Referer", "https://proxycast.example")
	s.RequireHeader("x-title", "proxycast")
	tests := []struct {
		name   string
		set    map[string]string
		status int
		want   string
	}{
		{"none", nil, 400, "missing required header Http-Referer"},
		{"one", map[string]string{"HTTP-Referer": "https://proxycast.example"}, 400, "missing required header X-Title"},
		{"wrong value", map[string]string{"HTTP-Referer": "https://proxycast.example", "X-Title": "other"}, 400, `header X-Title is "other", want "proxycast"`},
		{"both", map[string]string{"HTTP-Referer": "https://proxycast.example", "X-Title": "proxycast"}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, req := range []*http.Request{chatReq(t, s, testKey, chatBody(false)), modelsReq(t, s, testKey)} {
				for k, v := range tc.set {
					req.Header.Set(k, v)
				}
				r := do(t, req)
				if r.status != tc.status {
					t.Fatalf("%s: status %d: %s", req.URL.Path, r.status, r.body)
				}
				if tc.status == 400 {
					if e := apiErr(t, r.body); !strings.Contains(str(e["message"]), tc.want) || r.header.Get(ReasonHeader) != tc.want {
						t.Fatalf("%s: %s, reason %q", req.URL.Path, r.body, r.header.Get(ReasonHeader))
					}
				}
			}
		})
	}
	s.RequireHeader("X-Title", "")
	s.RequireHeader("Http-Referer", "")
	do(t, chatReq(t, s, testKey, chatBody(false))).ok(t)
}

func TestHTTPChecks(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		path    string
		ctype   string
		status  int
		message string
	}{
		{"get chat", http.MethodGet, "/v1/chat/completions", "application/json", 405, "Invalid method for URL (GET /v1/chat/completions)"},
		{"post models", http.MethodPost, "/v1/models", "application/json", 405, "Invalid method for URL (POST /v1/models)"},
		{"no /v1", http.MethodPost, "/chat/completions", "application/json", 404, "Invalid URL (POST /chat/completions)"},
		{"double /v1", http.MethodPost, "/v1/v1/chat/completions", "application/json", 404, "Invalid URL (POST /v1/v1/chat/completions)"},
		{"trailing slash", http.MethodPost, "/v1/chat/completions/", "application/json", 404, "Invalid URL"},
		{"completions", http.MethodPost, "/v1/completions", "application/json", 404, "Invalid URL"},
		{"text content type", http.MethodPost, "/v1/chat/completions", "text/plain", 400, `Content-Type must be application/json, got "text/plain"`},
		{"form content type", http.MethodPost, "/v1/chat/completions", "application/x-www-form-urlencoded", 400, "Content-Type must be application/json"},
		{"no content type", http.MethodPost, "/v1/chat/completions", "", 400, "Content-Type must be application/json"},
		{"charset is fine", http.MethodPost, "/v1/chat/completions", "application/json; charset=utf-8", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			req := chatReq(t, s, testKey, chatBody(false))
			req.Method = tc.method
			req.URL.Path = tc.path
			req.Header.Set("Content-Type", tc.ctype)
			if tc.ctype == "" {
				req.Header.Del("Content-Type")
			}
			r := do(t, req)
			if r.status != tc.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if tc.status == 200 {
				return
			}
			if e := apiErr(t, r.body); !strings.Contains(str(e["message"]), tc.message) || r.header.Get(ReasonHeader) == "" {
				t.Fatalf("got %s, want %q", r.body, tc.message)
			}
			if rec := s.Requests(); len(rec) != 1 || rec[0].Path != tc.path || rec[0].Method != tc.method || rec[0].Status != tc.status {
				t.Fatalf("records %+v", rec)
			}
		})
	}
}

// Pieces of bodies for the check tables.
const (
	callMsg  = `{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}`
	call2Msg = `{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{}"}},{"id":"c2","type":"function","function":{"name":"get_time","arguments":"{}"}}]}`
	user     = `{"role":"user","content":"hi"}`
	toolC1   = `{"role":"tool","tool_call_id":"c1","content":"sunny"}`
	toolC2   = `{"role":"tool","tool_call_id":"c2","content":"noon"}`
	fnTool   = `{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}`
)

// withMsgs is a body with these messages and extra top-level members.
func withMsgs(msgs string, extra ...string) string {
	b := `{"model":"` + testModel + `","messages":[` + msgs + `]`
	for _, e := range extra {
		b += "," + e
	}
	return b + "}"
}

func TestChatBodyRefused(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		want  string // substring of error.message
		param any    // error.param; "-" to skip the check
	}{
		{"not json", `{model`, "could not parse the JSON body", nil},
		{"empty body", ``, "could not parse the JSON body", nil},
		{"two values", withMsgs(user) + `{}`, "could not parse the JSON body", nil},
		{"array", `[]`, "Invalid type for request body: expected an object, but got an array instead.", nil},
		{"string", `"hi"`, "expected an object, but got a string", nil},
		{"no model", `{"messages":[` + user + `]}`, "Missing required parameter: 'model'.", "model"},
		{"null model", `{"model":null,"messages":[` + user + `]}`, "Missing required parameter: 'model'.", "model"},
		{"model not string", `{"model":5,"messages":[` + user + `]}`, "Invalid type for 'model': expected a string, but got an integer instead.", "model"},
		{"empty model", `{"model":"","messages":[` + user + `]}`, "Invalid 'model': empty string.", "model"},
		{"no messages", `{"model":"demo-chat"}`, "Missing required parameter: 'messages'.", "messages"},
		{"messages object", `{"model":"demo-chat","messages":{}}`, "Invalid type for 'messages': expected an array, but got an object instead.", "messages"},
		{"empty messages", withMsgs(``), "Invalid 'messages': empty array.", "messages"},
		{"message string", withMsgs(`"hi"`), "Invalid type for 'messages[0]': expected an object, but got a string instead.", "messages[0]"},
		{"no role", withMsgs(`{"content":"x"}`), "Missing required parameter: 'messages[0].role'.", "messages[0].role"},
		{"role not string", withMsgs(`{"role":1,"content":"x"}`), "Invalid type for 'messages[0].role'", "messages[0].role"},
		{"bad role", withMsgs(`{"role":"bot","content":"x"}`), "Invalid value: 'bot'. Supported values are: 'system', 'developer', 'user', 'assistant', and 'tool'.", "messages[0].role"},
		{"function role", withMsgs(user + `,{"role":"function","name":"f","content":"x"}`), "Invalid value: 'function'.", "messages[1].role"},
		{"no content", withMsgs(`{"role":"user"}`), "Missing required parameter: 'messages[0].content'.", "messages[0].content"},
		{"null user content", withMsgs(`{"role":"user","content":null}`), "got null", "messages[0].content"},
		{"null system content", withMsgs(`{"role":"system","content":null},` + user), "got null", "messages[0].content"},
		{"number content", withMsgs(`{"role":"user","content":5}`), "Invalid type for 'messages[0].content': expected one of a string or an array of content parts, but got an integer instead.", "messages[0].content"},
		{"empty parts", withMsgs(`{"role":"user","content":[]}`), "Invalid 'messages[0].content': empty array.", "messages[0].content"},
		{"part string", withMsgs(`{"role":"user","content":["hi"]}`), "Invalid type for 'messages[0].content[0]': expected an object", "messages[0].content[0]"},
		{"part without type", withMsgs(`{"role":"user","content":[{"text":"hi"}]}`), "Missing required parameter: 'messages[0].content[0].type'.", "messages[0].content[0].type"},
		{"text part without text", withMsgs(`{"role":"user","content":[{"type":"text"}]}`), "Missing required parameter: 'messages[0].content[0].text'.", "messages[0].content[0].text"},
		{"text part with number", withMsgs(`{"role":"user","content":[{"type":"text","text":1}]}`), "Invalid type for 'messages[0].content[0].text'", "messages[0].content[0].text"},
		{"unknown part", withMsgs(`{"role":"user","content":[{"type":"video","video":{}}]}`), "Invalid value: 'video'. Supported values are: 'text', 'image_url', 'input_audio', and 'file'.", "messages[0].content[0].type"},
		{"image in system", withMsgs(`{"role":"system","content":[{"type":"image_url","image_url":{"url":"x"}}]},` + user), "Invalid value: 'image_url'. Supported values are: 'text'.", "messages[0].content[0].type"},
		{"image without url", withMsgs(`{"role":"user","content":[{"type":"image_url","image_url":{}}]}`), "Missing required parameter: 'messages[0].content[0].image_url.url'.", "-"},
		{"image url string", withMsgs(`{"role":"user","content":[{"type":"image_url","image_url":"https://x"}]}`), "Invalid type for 'messages[0].content[0].image_url': expected an object", "-"},
		{"assistant without content", withMsgs(user + `,{"role":"assistant"}`), "An assistant message needs content unless it has tool_calls.", "messages[1].content"},
		{"assistant null content", withMsgs(user + `,{"role":"assistant","content":null}`), "needs content unless it has tool_calls", "messages[1].content"},
		{"assistant empty tool_calls", withMsgs(user + `,{"role":"assistant","content":null,"tool_calls":[]}`), "Invalid 'messages[1].tool_calls': empty array.", "messages[1].tool_calls"},
		{"assistant tool_calls object", withMsgs(user + `,{"role":"assistant","tool_calls":{}}`), "Invalid type for 'messages[1].tool_calls': expected an array", "messages[1].tool_calls"},
		{"arguments as object", withMsgs(user + `,{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":{"city":"Paris"}}}]},` + toolC1),
			"Invalid type for 'messages[1].tool_calls[0].function.arguments': expected a string, but got an object instead.", "messages[1].tool_calls[0].function.arguments"},
		{"tool call without arguments", withMsgs(user + `,{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f"}}]},` + toolC1),
			"Missing required parameter: 'messages[1].tool_calls[0].function.arguments'.", "-"},
		{"tool call without id", withMsgs(user + `,{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}`),
			"Missing required parameter: 'messages[1].tool_calls[0].id'.", "-"},
		{"tool call with empty id", withMsgs(user + `,{"role":"assistant","tool_calls":[{"id":"","type":"function","function":{"name":"f","arguments":"{}"}}]}`),
			"Invalid 'messages[1].tool_calls[0].id': empty string.", "-"},
		{"tool call of other type", withMsgs(user + `,{"role":"assistant","tool_calls":[{"id":"c1","type":"fn","function":{"name":"f","arguments":"{}"}}]}`),
			"Invalid value: 'fn'. Supported values are: 'function'.", "messages[1].tool_calls[0].type"},
		{"tool without tool_call_id", withMsgs(user + `,` + callMsg + `,{"role":"tool","content":"sunny"}`), "Missing required parameter: 'messages[2].tool_call_id'.", "messages[2].tool_call_id"},
		{"tool with unknown id", withMsgs(user + `,` + callMsg + `,{"role":"tool","tool_call_id":"c9","content":"sunny"}`), "'messages[2].tool_call_id' is 'c9'", "messages[2].tool_call_id"},
		{"tool answering twice", withMsgs(user + `,` + callMsg + `,` + toolC1 + `,` + toolC1), "'messages[3].tool_call_id' is 'c1'", "messages[3].tool_call_id"},
		{"tool without assistant", withMsgs(user + `,` + toolC1), "messages with role 'tool' must be a response to a preceding message with 'tool_calls'", "messages[1].role"},
		{"tool after a user message", withMsgs(user + `,` + callMsg + `,` + toolC1 + `,` + user + `,` + toolC1), "must be a response to a preceding message with 'tool_calls'", "messages[4].role"},
		{"unanswered call", withMsgs(user + `,` + call2Msg + `,` + toolC1 + `,` + user), "The following tool_call_ids did not have response messages: c2", "messages[1].tool_calls"},
		{"unanswered at the end", withMsgs(user + `,` + callMsg), "did not have response messages: c1", "messages[1].tool_calls"},
		{"tool content null", withMsgs(user + `,` + callMsg + `,{"role":"tool","tool_call_id":"c1","content":null}`), "got null", "messages[2].content"},
		{"stream string", withMsgs(user, `"stream":"yes"`), "Invalid type for 'stream': expected a boolean, but got a string instead.", "stream"},
		{"stream number", withMsgs(user, `"stream":1`), "Invalid type for 'stream': expected a boolean, but got an integer instead.", "stream"},
		{"stream_options without stream", withMsgs(user, `"stream_options":{"include_usage":true}`), "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"},
		{"stream_options with stream false", withMsgs(user, `"stream":false`, `"stream_options":{"include_usage":true}`), "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"},
		{"stream_options not object", withMsgs(user, `"stream":true`, `"stream_options":true`), "Invalid type for 'stream_options': expected an object", "stream_options"},
		{"include_usage string", withMsgs(user, `"stream":true`, `"stream_options":{"include_usage":"yes"}`), "Invalid type for 'stream_options.include_usage': expected a boolean", "stream_options.include_usage"},
		{"tools object", withMsgs(user, `"tools":{}`), "Invalid type for 'tools': expected an array", "tools"},
		{"empty tools", withMsgs(user, `"tools":[]`), "Invalid 'tools': empty array.", "tools"},
		{"tool not object", withMsgs(user, `"tools":["get_weather"]`), "Invalid type for 'tools[0]': expected an object", "tools[0]"},
		{"tool without type", withMsgs(user, `"tools":[{"function":{"name":"f"}}]`), "Missing required parameter: 'tools[0].type'.", "tools[0].type"},
		{"tool of other type", withMsgs(user, `"tools":[{"type":"retrieval"}]`), "Invalid value: 'retrieval'. Supported values are: 'function'.", "tools[0].type"},
		{"tool without function", withMsgs(user, `"tools":[{"type":"function"}]`), "Missing required parameter: 'tools[0].function'.", "tools[0].function"},
		{"flat tool", withMsgs(user, `"tools":[{"type":"function","name":"f","parameters":{}}]`), "Missing required parameter: 'tools[0].function'.", "tools[0].function"},
		{"tool without name", withMsgs(user, `"tools":[{"type":"function","function":{"parameters":{}}}]`), "Missing required parameter: 'tools[0].function.name'.", "tools[0].function.name"},
		{"tool name with space", withMsgs(user, `"tools":[{"type":"function","function":{"name":"get weather"}}]`), "Invalid 'tools[0].function.name': string does not match pattern.", "tools[0].function.name"},
		{"tool parameters string", withMsgs(user, `"tools":[{"type":"function","function":{"name":"f","parameters":"{}"}}]`), "Invalid type for 'tools[0].function.parameters': expected an object, but got a string instead.", "tools[0].function.parameters"},
		{"tool description number", withMsgs(user, `"tools":[{"type":"function","function":{"name":"f","description":1}}]`), "Invalid type for 'tools[0].function.description'", "-"},
		{"tool strict string", withMsgs(user, `"tools":[{"type":"function","function":{"name":"f","strict":"yes"}}]`), "Invalid type for 'tools[0].function.strict'", "-"},
		{"tool_choice without tools", withMsgs(user, `"tool_choice":"auto"`), "'tool_choice' is only allowed when 'tools' are specified.", "tool_choice"},
		{"bad tool_choice", withMsgs(user, `"tools":[`+fnTool+`]`, `"tool_choice":"sometimes"`), "Invalid value: 'sometimes'. Supported values are: 'none', 'auto', and 'required'.", "tool_choice"},
		{"tool_choice number", withMsgs(user, `"tools":[`+fnTool+`]`, `"tool_choice":1`), "Invalid type for 'tool_choice'", "tool_choice"},
		{"tool_choice unknown function", withMsgs(user, `"tools":[`+fnTool+`]`, `"tool_choice":{"type":"function","function":{"name":"launch"}}`), "function 'launch' is not one of the functions in 'tools'", "tool_choice"},
		{"tool_choice without function", withMsgs(user, `"tools":[`+fnTool+`]`, `"tool_choice":{"type":"function"}`), "Missing required parameter: 'tool_choice.function'.", "tool_choice.function"},
		{"tool_choice flat name", withMsgs(user, `"tools":[`+fnTool+`]`, `"tool_choice":{"type":"function","name":"get_weather"}`), "Missing required parameter: 'tool_choice.function'.", "tool_choice.function"},
		{"parallel_tool_calls without tools", withMsgs(user, `"parallel_tool_calls":false`), "'parallel_tool_calls' is only allowed when 'tools' are specified.", "parallel_tool_calls"},
		{"parallel_tool_calls string", withMsgs(user, `"tools":[`+fnTool+`]`, `"parallel_tool_calls":"no"`), "Invalid type for 'parallel_tool_calls': expected a boolean", "parallel_tool_calls"},
		{"max_tokens zero", withMsgs(user, `"max_tokens":0`), "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.", "max_tokens"},
		{"max_tokens negative", withMsgs(user, `"max_tokens":-5`), "but got -5 instead", "max_tokens"},
		{"max_tokens decimal", withMsgs(user, `"max_tokens":1.5`), "Invalid type for 'max_tokens': expected an integer, but got a decimal number instead.", "max_tokens"},
		{"max_tokens string", withMsgs(user, `"max_tokens":"100"`), "Invalid type for 'max_tokens': expected an integer, but got a string instead.", "max_tokens"},
		{"max_tokens huge", withMsgs(user, `"max_tokens":99999999999999999999`), "Invalid 'max_tokens': integer above maximum value.", "max_tokens"},
		{"max_completion_tokens zero", withMsgs(user, `"max_completion_tokens":0`), "Invalid 'max_completion_tokens': integer below minimum value.", "max_completion_tokens"},
		{"max_completion_tokens decimal", withMsgs(user, `"max_completion_tokens":2.0`), "expected an integer, but got a decimal number", "max_completion_tokens"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			r := do(t, chatReq(t, s, testKey, tc.body))
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			e := apiErr(t, r.body)
			if !strings.Contains(str(e["message"]), tc.want) || e["type"] != "invalid_request_error" {
				t.Fatalf("error %v, want a message with %q", e, tc.want)
			}
			if tc.param != "-" && e["param"] != tc.param {
				t.Fatalf("param %v, want %v", e["param"], tc.param)
			}
			if r.header.Get(ReasonHeader) == "" {
				t.Fatal("rejection without reason header")
			}
			rec := s.Requests()
			if len(rec) != 1 || rec[0].Status != 400 || !strings.HasPrefix(rec[0].Outcome, "rejected: ") || string(rec[0].RawBody) != tc.body {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}

func TestChatBodyAccepted(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"minimal", withMsgs(user)},
		{"every role", withMsgs(`{"role":"system","content":"s"},{"role":"developer","content":"d"},` + user + `,{"role":"assistant","content":"a"},` + user)},
		{"system parts", withMsgs(`{"role":"system","content":[{"type":"text","text":"s"}]},` + user)},
		{"user parts", withMsgs(`{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x/a.png","detail":"low"}},{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}},{"type":"file","file":{"file_id":"file-1"}}]}`)},
		{"assistant refusal part", withMsgs(user + `,{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]},` + user)},
		{"assistant empty content", withMsgs(user + `,{"role":"assistant","content":""},` + user)},
		{"tool round", withMsgs(user+`,`+callMsg+`,`+toolC1, `"tools":[`+fnTool+`]`)},
		{"tool round then user", withMsgs(user + `,` + callMsg + `,` + toolC1 + `,{"role":"assistant","content":"it is sunny"},` + user)},
		{"parallel round", withMsgs(user + `,` + call2Msg + `,` + toolC2 + `,` + toolC1)},
		{"assistant content and calls", withMsgs(user + `,{"role":"assistant","content":"let me look","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},` + toolC1)},
		{"nulls for absent", withMsgs(user, `"stream":null`, `"stream_options":null`, `"max_tokens":null`, `"max_completion_tokens":null`, `"tools":null`, `"tool_choice":null`)},
		{"stream false", withMsgs(user, `"stream":false`)},
		{"stream with options", withMsgs(user, `"stream":true`, `"stream_options":{"include_usage":false}`)},
		{"stream with empty options", withMsgs(user, `"stream":true`, `"stream_options":{}`)},
		{"token limits", withMsgs(user, `"max_tokens":1`, `"max_completion_tokens":4096`)},
		{"tool without parameters", withMsgs(user, `"tools":[{"type":"function","function":{"name":"ping"}}]`)},
		{"tool strict", withMsgs(user, `"tools":[{"type":"function","function":{"name":"f","strict":true,"parameters":{"type":"object"}}}]`)},
		{"tool_choice auto", withMsgs(user, `"tools":[`+fnTool+`]`, `"tool_choice":"auto"`, `"parallel_tool_calls":true`)},
		{"tool_choice function", withMsgs(user, `"tools":[`+fnTool+`]`, `"tool_choice":{"type":"function","function":{"name":"get_weather"}}`)},
		{"vendor fields", withMsgs(user, `"chat_template_kwargs":{"enable_thinking":true}`, `"enable_thinking":false`, `"reasoning_effort":"xhigh"`)},
		{"sampling fields", withMsgs(user, `"temperature":0.2`, `"top_p":1`, `"stop":["\n"]`, `"seed":7`, `"n":1`, `"user":"u1"`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			r := do(t, chatReq(t, s, testKey, tc.body)).ok(t)
			if r.header.Get(ReasonHeader) != "" {
				t.Fatalf("accepted with a reason header: %q", r.header.Get(ReasonHeader))
			}
			// A stream must still be a stream.
			if strings.Contains(tc.body, `"stream":true`) {
				events, complete := parseSSE(t, r.body)
				if !complete {
					t.Fatal("incomplete stream")
				}
				chunks(t, events, true)
			} else if decode(t, r.body)["object"] != "chat.completion" {
				t.Fatalf("not a completion: %s", r.body)
			}
		})
	}
}

func TestRefuseFields(t *testing.T) {
	s := newServer(t)
	body := chatBody(true)
	body["stream_options"] = map[string]any{"include_usage": true}

	s.RefuseFields("stream_options")
	r := do(t, chatReq(t, s, testKey, body))
	want := `{"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error","param":null,"code":null}}`
	if r.status != 400 || string(r.body) != want {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if reason := r.header.Get(ReasonHeader); !strings.Contains(reason, "stream_options") {
		t.Fatalf("reason %q", reason)
	}
	// Other fields pass.
	do(t, chatReq(t, s, testKey, chatBody(false))).ok(t)

	s.RefuseFields("max_completion_tokens", "stream_options")
	body["max_completion_tokens"] = 10
	r = do(t, chatReq(t, s, testKey, body))
	if r.status != 400 || str(apiErr(t, r.body)["message"]) != "Unrecognized request arguments supplied: max_completion_tokens, stream_options" {
		t.Fatalf("two refused: %d %s", r.status, r.body)
	}

	s.RefuseFields()
	do(t, chatReq(t, s, testKey, body)).ok(t)
}

func TestRefuseUnknownFields(t *testing.T) {
	s := newServer(t)
	s.RefuseUnknownFields(true)
	body := chatBody(false)
	body["temperature"] = 0.3
	body["max_tokens"] = 50
	do(t, chatReq(t, s, testKey, body)).ok(t)

	body["chat_template_kwargs"] = map[string]any{"enable_thinking": true}
	r := do(t, chatReq(t, s, testKey, body))
	if r.status != 400 || str(apiErr(t, r.body)["message"]) != "Unrecognized request argument supplied: chat_template_kwargs" {
		t.Fatalf("got %d %s", r.status, r.body)
	}

	// Every documented field is let through (the check happens before the
	// values are looked at).
	all := map[string]any{}
	for _, f := range ChatFields() {
		all[f] = true
	}
	if got := refusedFields(all, nil, true); len(got) != 0 {
		t.Fatalf("documented fields refused: %q", got)
	}
	for _, f := range []string{"model", "messages", "stream", "stream_options", "tools", "tool_choice", "max_tokens", "max_completion_tokens", "reasoning_effort", "parallel_tool_calls"} {
		if !slices.Contains(ChatFields(), f) {
			t.Fatalf("%s missing from ChatFields", f)
		}
	}

	s.RefuseUnknownFields(false)
	do(t, chatReq(t, s, testKey, body)).ok(t)
}

func TestModels(t *testing.T) {
	s := newServer(t)
	r := do(t, modelsReq(t, s, testKey)).ok(t)
	m := decode(t, r.body)
	data, _ := m["data"].([]any)
	if m["object"] != "list" || len(data) != 2 {
		t.Fatalf("list %s", r.body)
	}
	var ids []string
	for _, d := range data {
		md := obj(d)
		if md["object"] != "model" || num(md["created"]) != ModelCreated || md["owned_by"] != ModelOwner {
			t.Fatalf("model %v", md)
		}
		ids = append(ids, str(md["id"]))
	}
	if !slices.Equal(ids, []string{testModel, "demo-reasoner"}) {
		t.Fatalf("ids %q", ids)
	}

	s.SetModels("only-one")
	data, _ = decode(t, do(t, modelsReq(t, s, testKey)).ok(t).body)["data"].([]any)
	if len(data) != 1 || obj(data[0])["id"] != "only-one" {
		t.Fatalf("after SetModels: %v", data)
	}

	// A chat for a model no longer listed.
	r = do(t, chatReq(t, s, testKey, chatBody(false)))
	e := apiErr(t, r.body)
	if r.status != 404 || e["message"] != "The model `demo-chat` does not exist or you do not have access to it." || e["code"] != "model_not_found" || e["type"] != "invalid_request_error" {
		t.Fatalf("unknown model: %d %s", r.status, r.body)
	}
	if s.ModelsRequests() != 2 {
		t.Fatalf("ModelsRequests %d", s.ModelsRequests())
	}
}

func TestDefaultModels(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddKey(testKey)
	data, _ := decode(t, do(t, modelsReq(t, s, testKey)).ok(t).body)["data"].([]any)
	if len(data) != len(DefaultModels()) || obj(data[0])["id"] != DefaultModels()[0] {
		t.Fatalf("default list %v", data)
	}
}

func TestModelsStatus(t *testing.T) {
	for _, code := range []int{401, 402, 403, 404, 429, 500, 502, 503} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			s := newServer(t)
			s.SetModelsStatus(code)
			r := do(t, modelsReq(t, s, testKey))
			if r.status != code {
				t.Fatalf("status %d", r.status)
			}
			apiErr(t, r.body)
			if reason := r.header.Get(ReasonHeader); reason != fmt.Sprintf("scripted behavior SetModelsStatus(%d)", code) {
				t.Fatalf("reason %q", reason)
			}
			// The chat endpoint is not affected.
			do(t, chatReq(t, s, testKey, chatBody(false))).ok(t)
			s.SetModelsStatus(0)
			do(t, modelsReq(t, s, testKey)).ok(t)
			if s.ModelsRequests() != 2 {
				t.Fatalf("ModelsRequests %d", s.ModelsRequests())
			}
		})
	}
}

func TestBehaviors(t *testing.T) {
	fixed := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		b       Behavior
		setup   func(*Server)
		status  int
		typ     string
		code    any
		message string // substring
		check   func(t *testing.T, h http.Header, message string)
	}{
		{b: Unauthorized, status: 401, typ: "invalid_request_error", code: "invalid_api_key", message: "Incorrect API key provided: sk-te****01."},
		{b: Forbidden, status: 403, typ: "permission_error", code: "permission_denied", message: "does not have permission"},
		{b: PaymentRequired, status: 402, typ: "unknown_error", code: "invalid_request_error", message: "Insufficient Balance"},
		{b: InsufficientQuota, status: 429, typ: "insufficient_quota", code: "insufficient_quota",
			message: "You exceeded your current quota, please check your plan and billing details.",
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("Retry-After") != "" {
					t.Fatal("an exhausted quota has no Retry-After")
				}
			}},
		{b: RateLimited, status: 429, typ: "requests", code: "rate_limit_exceeded", message: "Rate limit reached",
			check: func(t *testing.T, h http.Header, msg string) {
				if h.Get("Retry-After") != "20" || strings.Contains(msg, "try again in") {
					t.Fatalf("Retry-After %q, message %q", h.Get("Retry-After"), msg)
				}
			}},
		{b: RateLimited, setup: func(s *Server) { s.SetRetryAfter(1500 * time.Millisecond) }, status: 429, code: "rate_limit_exceeded", typ: "requests", message: "Rate limit",
			check: func(t *testing.T, h http.Header, _ string) {
				if h.Get("Retry-After") != "2" {
					t.Fatalf("Retry-After %q, want whole seconds rounded up", h.Get("Retry-After"))
				}
			}},
		{b: RateLimitedDate, setup: func(s *Server) {
			s.SetNow(func() time.Time { return fixed })
			s.SetRetryAfter(90 * time.Second)
		}, status: 429, typ: "requests", code: "rate_limit_exceeded", message: "Rate limit",
			check: func(t *testing.T, h http.Header, _ string) {
				at, err := http.ParseTime(h.Get("Retry-After"))
				if err != nil || !at.Equal(fixed.Add(90*time.Second)) {
					t.Fatalf("Retry-After %q (%v), want %s", h.Get("Retry-After"), err, fixed.Add(90*time.Second))
				}
			}},
		{b: RateLimitedBodyHint, status: 429, typ: "tokens", code: "rate_limit_exceeded",
			message: "Rate limit reached for model `demo-chat`",
			check: func(t *testing.T, h http.Header, msg string) {
				if h.Get("Retry-After") != "" || !strings.Contains(msg, "Please try again in 7.5s.") {
					t.Fatalf("Retry-After %q, message %q", h.Get("Retry-After"), msg)
				}
				if d := hintOf(t, msg); d != DefaultRetryHint {
					t.Fatalf("hint %s", d)
				}
			}},
		{b: RateLimitedBodyHint, setup: func(s *Server) { s.SetRetryHint(644 * time.Millisecond) }, status: 429, typ: "tokens", code: "rate_limit_exceeded",
			message: "Please try again in 644ms.",
			check: func(t *testing.T, _ http.Header, msg string) {
				if d := hintOf(t, msg); d != 644*time.Millisecond {
					t.Fatalf("hint %s", d)
				}
			}},
		{b: RateLimitedBodyHint, setup: func(s *Server) { s.SetRetryHint(72500 * time.Millisecond) }, status: 429, typ: "tokens", code: "rate_limit_exceeded",
			message: "Please try again in 1m12.5s.",
			check: func(t *testing.T, _ http.Header, msg string) {
				if d := hintOf(t, msg); d != 72500*time.Millisecond {
					t.Fatalf("hint %s", d)
				}
			}},
		{b: ServerError, status: 500, typ: "server_error", code: nil, message: "The server had an error"},
		{b: Overloaded, status: 503, typ: "service_unavailable_error", code: "server_is_overloaded", message: "overloaded"},
		{b: BadRequest, status: 400, typ: "invalid_request_error", code: nil, message: "messages: field required"},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d-%v", i, tc.b), func(t *testing.T) {
			for _, stream := range []bool{false, true} {
				s := newServer(t)
				if tc.setup != nil {
					tc.setup(s)
				}
				const scripted = "sk-test-scripted-0001"
				s.SetBehavior(scripted, tc.b) // not added: a script makes a key known
				s.SetBehavior(testKey, tc.b)
				for _, key := range []string{testKey, scripted} {
					body := chatBody(stream)
					r := do(t, chatReq(t, s, key, body))
					if r.status != tc.status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
						t.Fatalf("stream=%t: status %d, Content-Type %q: %s", stream, r.status, r.header.Get("Content-Type"), r.body)
					}
					e := apiErr(t, r.body)
					if e["type"] != tc.typ || e["code"] != tc.code || !strings.Contains(str(e["message"]), tc.message) {
						t.Fatalf("error %v", e)
					}
					if reason := r.header.Get(ReasonHeader); reason != "scripted behavior "+tc.b.String() {
						t.Fatalf("reason %q", reason)
					}
					if strings.Contains(string(r.body), key) {
						t.Fatalf("the answer reveals the key: %s", r.body)
					}
					if tc.check != nil {
						tc.check(t, r.header, str(e["message"]))
					}
				}
				recs := s.Requests()
				if recs[0].Outcome != "behavior "+tc.b.String() || recs[0].Status != tc.status {
					t.Fatalf("record %+v", recs[0])
				}
				s.SetBehavior(testKey, Normal)
				do(t, chatReq(t, s, testKey, chatBody(false))).ok(t)
			}
		})
	}
}

var hintPattern = regexp.MustCompile(`Please try again in ([0-9.hms]+)\.`)

// hintOf reads the wait out of a rate-limit message as a client must.
func hintOf(t *testing.T, msg string) time.Duration {
	t.Helper()
	m := hintPattern.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no hint in %q", msg)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBehaviorsOnModels(t *testing.T) {
	tests := []struct {
		b      Behavior
		status int
	}{
		{Unauthorized, 401},
		{Forbidden, 403},
		{RateLimited, 200},
		{PaymentRequired, 200},
		{StreamBreak, 200},
	}
	for _, tc := range tests {
		t.Run(tc.b.String(), func(t *testing.T) {
			s := newServer(t)
			s.SetBehavior(testKey, tc.b)
			if r := do(t, modelsReq(t, s, testKey)); r.status != tc.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		})
	}
}

// TestBehaviorAfterChecks: a script answers only requests the fake would
// serve, so a client's own mistake is never hidden behind it.
func TestBehaviorAfterChecks(t *testing.T) {
	s := newServer(t)
	s.SetBehavior(testKey, RateLimited)
	body := chatBody(false)
	body["stream_options"] = map[string]any{"include_usage": true}
	if r := do(t, chatReq(t, s, testKey, body)); r.status != 400 {
		t.Fatalf("bad body with a script: %d %s", r.status, r.body)
	}
	body = chatBody(false)
	body["model"] = "no-such-model"
	if r := do(t, chatReq(t, s, testKey, body)); r.status != 404 {
		t.Fatalf("unknown model with a script: %d %s", r.status, r.body)
	}
}

func TestStreamBreak(t *testing.T) {
	for _, tools := range []bool{false, true} {
		t.Run(fmt.Sprintf("tools=%t", tools), func(t *testing.T) {
			s := newServer(t)
			s.SetBehavior(testKey, StreamBreak)
			logged := make(chan Request, 1)
			s.SetRequestLog(func(r Request) { logged <- r })
			body := chatBody(true)
			if tools {
				body = toolBody(true, `call get_weather {"city":"Paris"}`)
			}
			body["stream_options"] = map[string]any{"include_usage": true}
			r := do(t, chatReq(t, s, testKey, body))
			if r.status != 200 || !errors.Is(r.err, io.ErrUnexpectedEOF) {
				t.Fatalf("status %d, read error %v, want the connection dropped", r.status, r.err)
			}
			events, complete := parseSSE(t, r.body)
			chs := chunks(t, events, false)
			if !complete || len(chs) != 2 || len(events) != 2 {
				t.Fatalf("want the role chunk and one more, got %q", events)
			}
			_, finishes, roles := joinText(chs)
			if len(finishes) != 0 || roles != 1 {
				t.Fatalf("finishes %q, roles %d", finishes, roles)
			}
			if tools {
				if calls := joinToolCalls(t, chs, ToolIndexNormal); len(calls) != 1 || json.Valid([]byte(calls[0].args)) {
					t.Fatalf("a broken tool call must leave its arguments unfinished: %+v", calls)
				}
			} else if text, _, _ := joinText(chs); text == "" || text == "echo: hello there" {
				t.Fatalf("want one piece of the text, got %q", text)
			}
			select {
			case rec := <-logged:
				if rec.Outcome != "behavior StreamBreak" {
					t.Fatalf("logged %+v", rec)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a broken stream was not logged")
			}
		})
	}
}

func TestStreamBreakNonStream(t *testing.T) {
	s := newServer(t)
	s.SetBehavior(testKey, StreamBreak)
	r := do(t, chatReq(t, s, testKey, chatBody(false)))
	if r.status != 200 || r.err == nil || len(r.body) == 0 || json.Valid(r.body) {
		t.Fatalf("status %d, read error %v, body %q: want half a JSON object", r.status, r.err, r.body)
	}
}

func TestSlowStreamCancel(t *testing.T) {
	s := newServer(t)
	s.SetBehavior(testKey, SlowStream)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := chatReq(t, s, testKey, chatBody(true)).WithContext(ctx)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for range 4 { // two events with their blank lines: mid-stream
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if s.CanceledStreams() != 0 {
		t.Fatal("counted before the client left")
	}
	cancel()
	resp.Body.Close()
	if !s.WaitCanceledStreams(1, 10*time.Second) {
		t.Fatal("the fake did not notice the client going away")
	}
	if rec := s.Requests()[0]; !rec.Canceled || rec.Outcome != "behavior SlowStream" {
		t.Fatalf("record %+v", rec)
	}
}

func TestSlowStreamNonStream(t *testing.T) {
	s := newServer(t)
	s.SetBehavior(testKey, SlowStream)
	m := decode(t, do(t, chatReq(t, s, testKey, chatBody(false))).ok(t).body)
	if obj(choice(m)["message"])["content"] != "echo: hello there" {
		t.Fatalf("got %v", m)
	}
}

func TestCloseEndsSlowStream(t *testing.T) {
	s := NewServer()
	t.Cleanup(s.Close) // in case the test fails before its own Close
	s.AddKey(testKey)
	s.SetModels(testModel)
	s.SetBehavior(testKey, SlowStream)
	resp, err := client.Do(chatReq(t, s, testKey, chatBody(true)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the slow stream")
	}
	if s.CanceledStreams() != 0 {
		t.Fatal("a stream ended by Close counted as canceled by the client")
	}
}

func TestWaitCanceledStreamsTimeout(t *testing.T) {
	s := newServer(t)
	start := time.Now()
	if s.WaitCanceledStreams(1, 20*time.Millisecond) {
		t.Fatal("reported a cancel that never happened")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("did not keep to its timeout")
	}
	if !s.WaitCanceledStreams(0, time.Millisecond) {
		t.Fatal("zero is always reached")
	}
}

func TestRecords(t *testing.T) {
	s := newServer(t)
	body := chatBody(true)
	req := chatReq(t, s, testKey, body)
	req.Header.Set("X-Custom", "yes")
	do(t, req).ok(t)
	do(t, modelsReq(t, s, testKey)).ok(t)
	do(t, chatReq(t, s, "sk-nobody-000000000", `{"model":"x"`))

	recs := s.Requests()
	if len(recs) != 3 || s.ChatCount() != 2 || s.ModelsRequests() != 1 {
		t.Fatalf("%d records, ChatCount %d, ModelsRequests %d", len(recs), s.ChatCount(), s.ModelsRequests())
	}
	chat := recs[0]
	if chat.Method != "POST" || chat.Path != "/v1/chat/completions" || chat.Key != testKey || chat.Model != testModel || !chat.Stream ||
		chat.Header.Get("X-Custom") != "yes" || string(chat.RawBody) != string(rawBody(t, body)) ||
		chat.Status != 200 || chat.Outcome != "ok" || chat.Canceled || chat.Time.IsZero() {
		t.Fatalf("chat record %+v", chat)
	}
	if m := recs[1]; m.Method != "GET" || m.Path != "/v1/models" || m.Key != testKey || m.Model != "" || m.Status != 200 {
		t.Fatalf("models record %+v", m)
	}
	if bad := recs[2]; bad.Key != "sk-nobody-000000000" || bad.Status != 401 || !strings.HasPrefix(bad.Outcome, "rejected: unknown API key") {
		t.Fatalf("rejected record %+v", bad)
	}

	// Copies are independent.
	chat.Header.Set("X-Custom", "changed")
	chat.RawBody[0] = 'X'
	if again := s.Requests()[0]; again.Header.Get("X-Custom") != "yes" || again.RawBody[0] != '{' {
		t.Fatal("Requests shares state with the fake")
	}
}

func TestRequestLog(t *testing.T) {
	s := newServer(t)
	logged := make(chan Request, 4)
	s.SetRequestLog(func(r Request) { logged <- r })
	do(t, chatReq(t, s, testKey, chatBody(true))).ok(t)
	select {
	case r := <-logged:
		if r.Path != chatPath || r.Status != 200 || r.Outcome != "ok" || !r.Stream {
			t.Fatalf("logged %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing logged")
	}
}

func TestMaskKey(t *testing.T) {
	tests := map[string]string{
		"sk-abcdefghijklmnopyz": "sk-ab****yz",
		"sk-demo-openai":        "sk-de****ai",
		"short":                 "****",
		"":                      "****",
		"sk-ключ-ключ-ключ":     "sk-кл****юч",
	}
	for key, want := range tests {
		if got := maskKey(key); got != want || (len(key) > 0 && strings.Contains(got, key)) {
			t.Errorf("maskKey(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestParseCalls(t *testing.T) {
	tests := []struct {
		text string
		want []toolCall // nil: not a call
	}{
		{`call f {}`, []toolCall{{name: "f", args: "{}"}}},
		{`  call f {"a": [1, 2]}  `, []toolCall{{name: "f", args: `{"a":[1,2]}`}}},
		{"call f\n{\"a\":1}", []toolCall{{name: "f", args: `{"a":1}`}}},
		{`call a {} and call b {"x":"and call c {}"}`, []toolCall{{name: "a", args: "{}"}, {name: "b", args: `{"x":"and call c {}"}`}}},
		{`call a {} and call b {} and call c {}`, []toolCall{{name: "a", args: "{}"}, {name: "b", args: "{}"}, {name: "c", args: "{}"}}},
		{`call f`, nil},
		{`call f {`, nil},
		{`call f "x"`, nil},
		{`call f {} and`, nil},
		{`call f {} or call g {}`, nil},
		{`please call f {}`, nil},
		{`hello`, nil},
		{``, nil},
	}
	for _, tc := range tests {
		got, ok := parseCalls(tc.text)
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("parseCalls(%q) = %+v, %t; want %+v", tc.text, got, ok, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	for b := Normal; b <= SlowStream; b++ {
		if strings.HasPrefix(b.String(), "Behavior(") {
			t.Errorf("behavior %d has no name", b)
		}
	}
	if Behavior(99).String() != "Behavior(99)" || ToolIndexMode(7).String() != "ToolIndexMode(7)" || ToolIndexOneBased.String() != "ToolIndexOneBased" {
		t.Error("fallback names")
	}
}

func TestHandlerWithoutListener(t *testing.T) {
	s := New()
	defer s.Close()
	if s.URL() != "" || s.APIBase() != "" || s.Handler() == nil {
		t.Fatal("a Server from New has no URL")
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newServer(t)
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		var body map[string]any
		switch i % 3 {
		case 0:
			body = chatBody(false)
		case 1:
			body = chatBody(true)
		default:
			body = toolBody(true, `call get_weather {"city":"Paris"} and call get_time {}`)
		}
		req := chatReq(t, s, testKey, body)
		go func() {
			defer wg.Done()
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			_ = s.Requests()
		}()
		go func() { s.SetNoSpaceData(i%2 == 0); s.SetUsage(Usage{Prompt: i}); _ = s.ChatCount() }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("concurrent requests did not finish")
	}
	if s.ChatCount() != n {
		t.Fatalf("count %d", s.ChatCount())
	}
}
