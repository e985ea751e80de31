package anthropic

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return m
}

// TestChatRequest: Messages requests as Claude Code sends them, and the
// chat request each becomes.
func TestChatRequest(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"text and system blocks",
			`{"model":"claude-sonnet-4-5","max_tokens":1024,"system":[{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}},{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"u-1"},"temperature":0.5,"stop_sequences":["END"],"stream":true}`,
			`{"model":"up","max_tokens":1024,"messages":[{"role":"system","content":"You are Claude Code.\n\nBe brief."},{"role":"user","content":"hi"}],"user":"u-1","temperature":0.5,"stop":["END"],"stream":true}`},
		{"system role inside messages",
			`{"model":"m","max_tokens":10,"messages":[{"role":"system","content":"sys"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`,
			`{"model":"up","max_tokens":10,"messages":[{"role":"system","content":"sys"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`},
		{"images and documents",
			`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}},{"type":"image","source":{"type":"url","url":"https://x/a.png"}},{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"},"title":"a.pdf"},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain"}}]}]}`,
			`{"model":"up","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}},{"type":"image_url","image_url":{"url":"https://x/a.png"}},{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBE"}},{"type":"text","text":"plain"}]}]}`},
		{"tool round trip",
			`{"model":"m","max_tokens":10,"tools":[{"name":"get_weather","description":"weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true},"messages":[` +
				`{"role":"user","content":"weather?"},` +
				`{"role":"assistant","content":[{"type":"thinking","thinking":"need a tool","signature":"sig"},{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"toolu_2","name":"get_weather","input":{"city":"Rome"}}]},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"},{"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"rain"}],"is_error":true},{"type":"text","text":"and?"}]}]}`,
			`{"model":"up","max_tokens":10,"tools":[{"type":"function","function":{"name":"get_weather","description":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"required","parallel_tool_calls":false,"messages":[` +
				`{"role":"user","content":"weather?"},` +
				`{"role":"assistant","content":"Checking.","reasoning_content":"need a tool","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"toolu_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},` +
				`{"role":"tool","content":"sunny","tool_call_id":"toolu_1"},{"role":"tool","content":"Error: rain","tool_call_id":"toolu_2"},{"role":"user","content":"and?"}]}`},
		{"tool choice by name, and none",
			`{"model":"m","max_tokens":10,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"},"messages":[{"role":"user","content":"x"}]}`,
			`{"model":"up","max_tokens":10,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}},"messages":[{"role":"user","content":"x"}]}`},
		{"thinking budgets",
			`{"model":"m","max_tokens":40000,"thinking":{"type":"enabled","budget_tokens":31999},"messages":[{"role":"user","content":"x"}]}`,
			`{"model":"up","max_tokens":40000,"reasoning_effort":"high","messages":[{"role":"user","content":"x"}]}`},
		{"thinking off",
			`{"model":"m","max_tokens":10,"thinking":{"type":"disabled"},"top_k":5,"top_p":0.9,"messages":[{"role":"user","content":"x"}]}`,
			`{"model":"up","max_tokens":10,"top_k":5,"top_p":0.9,"messages":[{"role":"user","content":"x"}]}`},
		{"unknown members dropped",
			`{"model":"m","max_tokens":10,"context_management":{"edits":[]},"container":"c","messages":[{"role":"user","content":"x"}]}`,
			`{"model":"up","max_tokens":10,"messages":[{"role":"user","content":"x"}]}`},
	}
	for _, tt := range tests {
		got, err := ChatRequest([]byte(tt.in), "up")
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if g, w := decodeJSON(t, got), decodeJSON(t, []byte(tt.want)); !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
	for budget, effort := range map[int]string{4000: "low", 10000: "medium", 16000: "medium", 20000: "high"} {
		got, _ := ChatRequest([]byte(`{"model":"m","max_tokens":50000,"thinking":{"type":"enabled","budget_tokens":`+itoa(budget)+`},"messages":[{"role":"user","content":"x"}]}`), "up")
		if e := decodeJSON(t, got)["reasoning_effort"]; e != effort {
			t.Errorf("budget %d: effort %v, want %s", budget, e, effort)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestChatRequestRefused: what cannot be translated is the client's
// error, naming the member.
func TestChatRequestRefused(t *testing.T) {
	for _, tt := range []struct{ name, in, says string }{
		{"not JSON", `{"model":`, "not a Messages request"},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{"zero max_tokens", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{"no messages", `{"model":"m","max_tokens":5,"messages":[]}`, "messages"},
		{"bad role", `{"model":"m","max_tokens":5,"messages":[{"role":"bot","content":"x"}]}`, "messages.0.role"},
		{"unknown block", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"audio"}]}]}`, `messages.0.content.0: unknown block type "audio"`},
		{"server tool", `{"model":"m","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"x"}]}`, `"web_search" is one of Anthropic's server tools`},
		{"bad tool choice", `{"model":"m","max_tokens":5,"tool_choice":{"type":"maybe"},"messages":[{"role":"user","content":"x"}]}`, "tool_choice.type"},
		{"stream not bool", `{"model":"m","max_tokens":5,"stream":"yes","messages":[{"role":"user","content":"x"}]}`, "stream"},
		{"tool_use without id", `{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]}`, "messages.0.content.0"},
	} {
		_, err := ChatRequest([]byte(tt.in), "up")
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Status != http.StatusBadRequest || pe.Kind != provider.KindClient || !strings.Contains(pe.Message, tt.says) {
			t.Errorf("%s: %v, want a 400 saying %q", tt.name, err, tt.says)
		}
	}
}

// TestAnswer: completions as upstreams answer them, as Messages answers.
func TestAnswer(t *testing.T) {
	usage := `"usage":{"prompt_tokens":30,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":12}}`
	for _, tt := range []struct {
		name, in string
		content  string
		stop     string
	}{
		{"text", `{"choices":[{"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],` + usage + `}`,
			`[{"type":"text","text":"Hello"}]`, "end_turn"},
		{"reasoning and text", `{"choices":[{"message":{"content":"Yes","reasoning_content":"Hmm"},"finish_reason":"length"}],` + usage + `}`,
			`[{"type":"thinking","thinking":"Hmm","signature":""},{"type":"text","text":"Yes"}]`, "max_tokens"},
		{"tool calls", `{"choices":[{"message":{"content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},{"id":"call_2","type":"function","function":{"name":"g","arguments":""}}]},"finish_reason":"tool_calls"}],` + usage + `}`,
			`[{"type":"tool_use","id":"call_1","name":"f","input":{"a":1}},{"type":"tool_use","id":"call_2","name":"g","input":{}}]`, "tool_use"},
		{"empty", `{"choices":[{"message":{"content":""},"finish_reason":"stop"}],` + usage + `}`, `[{"type":"text","text":""}]`, "end_turn"},
		{"content as parts", `{"choices":[{"message":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"plan"}]},{"type":"text","text":"done"}]},"finish_reason":"stop"}],` + usage + `}`,
			`[{"type":"thinking","thinking":"plan","signature":""},{"type":"text","text":"done"}]`, "end_turn"},
	} {
		got, err := Answer([]byte(tt.in), "claude-x")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		m := decodeJSON(t, got)
		var want any
		_ = json.Unmarshal([]byte(tt.content), &want)
		if !reflect.DeepEqual(m["content"], want) || m["stop_reason"] != tt.stop || m["model"] != "claude-x" || m["type"] != "message" ||
			!strings.HasPrefix(m["id"].(string), "msg_") {
			t.Errorf("%s: %s", tt.name, got)
		}
		if u := m["usage"].(map[string]any); u["input_tokens"] != 18.0 || u["cache_read_input_tokens"] != 12.0 || u["output_tokens"] != 9.0 {
			t.Errorf("%s: usage %v", tt.name, u)
		}
	}
	for _, bad := range []string{`{}`, `not json`, `{"choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":"[1"}}]}}]}`} {
		var pe *provider.Error
		if _, err := Answer([]byte(bad), "m"); !errors.As(err, &pe) || pe.Status != http.StatusBadGateway || pe.Kind != provider.KindTransient {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestErrorShapes(t *testing.T) {
	for status, want := range map[int]string{400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
		404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 502: "api_error", 529: "overloaded_error", 405: "invalid_request_error"} {
		if got := ErrorType(status); got != want {
			t.Errorf("%d: %s, want %s", status, got, want)
		}
	}
	b := ErrorBody("rate_limit_error", "slow \"down\"\n")
	if m := decodeJSON(t, b); m["type"] != "error" || m["error"].(map[string]any)["message"] != "slow \"down\"\n" {
		t.Errorf("%s", b)
	}
	if u, ok := UsageOf([]byte(`{"type":"message_start","message":{"usage":{"input_tokens":5,"cache_read_input_tokens":7,"cache_creation_input_tokens":1,"output_tokens":1}}}`)); !ok ||
		u != (provider.Usage{Prompt: 13, Cached: 7, Completion: 1}) {
		t.Errorf("message_start usage %+v", u)
	}
	if u, ok := UsageOf([]byte(`{"type":"message_delta","delta":{},"usage":{"output_tokens":42}}`)); !ok || u.Completion != 42 {
		t.Errorf("message_delta usage %+v", u)
	}
	if _, ok := UsageOf([]byte(`{"type":"ping"}`)); ok {
		t.Error("usage in a ping")
	}
}

func BenchmarkChatRequest(b *testing.B) {
	var msgs []string
	for i := range 20 {
		if i%2 == 0 {
			msgs = append(msgs, `{"role":"user","content":[{"type":"text","text":"`+strings.Repeat("please look at the file and fix the bug ", 20)+`"}]}`)
		} else {
			msgs = append(msgs, `{"role":"assistant","content":[{"type":"text","text":"`+strings.Repeat("I will read it first. ", 20)+`"}]}`)
		}
	}
	var tools []string
	for i := range 15 {
		tools = append(tools, `{"name":"tool`+itoa(i)+`","description":"`+strings.Repeat("does a thing ", 30)+`","input_schema":{"type":"object","properties":{"path":{"type":"string"},"n":{"type":"integer"}},"required":["path"]}}`)
	}
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":32000,"stream":true,"system":[{"type":"text","text":"` + strings.Repeat("You are Claude Code. ", 200) + `","cache_control":{"type":"ephemeral"}}],"tools":[` +
		strings.Join(tools, ",") + `],"messages":[` + strings.Join(msgs, ",") + `]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ChatRequest(body, "up"); err != nil {
			b.Fatal(err)
		}
	}
}
