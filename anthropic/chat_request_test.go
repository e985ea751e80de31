package anthropic

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

// TestMessagesRequest: chat requests as OpenAI clients send them, and the
// Messages request each becomes.
func TestMessagesRequest(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"system, developer and text",
			`{"model":"gpt","messages":[{"role":"system","content":"be brief"},{"role":"developer","content":[{"type":"text","text":"no lists"}]},{"role":"user","content":"hi"}],"temperature":1.5,"stop":"END","user":"u-1","stream":true,"stream_options":{"include_usage":true},"logprobs":true,"seed":3}`,
			`{"model":"up","max_tokens":8192,"system":"be brief\n\nno lists","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"temperature":1,"stop_sequences":["END"],"metadata":{"user_id":"u-1"},"stream":true}`},
		{"images and files",
			`{"model":"gpt","max_completion_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}},{"type":"image_url","image_url":{"url":"https://x/a.png"}},{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBE"}}]}]}`,
			`{"model":"up","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}},{"type":"image","source":{"type":"url","url":"https://x/a.png"}},{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}}]}]}`},
		{"tool round trip with parallel calls",
			`{"model":"gpt","max_tokens":50,"tools":[{"type":"function","function":{"name":"get_weather","description":"weather","parameters":{"type":"object"}}}],"tool_choice":"required","parallel_tool_calls":false,"messages":[` +
				`{"role":"user","content":"weather?"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":""}}]},` +
				`{"role":"tool","tool_call_id":"call_1","content":"sunny"},{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"rain"}]},{"role":"user","content":"and?"}]}`,
			`{"model":"up","max_tokens":50,"tools":[{"name":"get_weather","description":"weather","input_schema":{"type":"object"}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true},"messages":[` +
				`{"role":"user","content":[{"type":"text","text":"weather?"}]},` +
				`{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"call_2","name":"get_weather","input":{}}]},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"sunny"},{"type":"tool_result","tool_use_id":"call_2","content":"rain"},{"type":"text","text":"and?"}]}]}`},
		{"consecutive user messages merge, a named function",
			`{"model":"gpt","max_tokens":5,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}},"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}`,
			`{"model":"up","max_tokens":5,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"},"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`},
		{"reasoning effort",
			`{"model":"gpt","max_tokens":2000,"reasoning_effort":"medium","temperature":0.2,"messages":[{"role":"user","content":"x"}]}`,
			`{"model":"up","max_tokens":18192,"thinking":{"type":"enabled","budget_tokens":10000},"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`},
	}
	for _, tt := range tests {
		got, err := MessagesRequest([]byte(tt.in), "up", 8192)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if g, w := decodeJSON(t, got), decodeJSON(t, []byte(tt.want)); !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
	for _, tt := range []struct{ name, in, says string }{
		{"n", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n:"},
		{"response_format", `{"model":"m","response_format":{"type":"json_schema","json_schema":{}},"messages":[{"role":"user","content":"x"}]}`, "response_format"},
		{"audio", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, `messages[0].content[0]: unknown part type "input_audio"`},
		{"bad arguments", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"tool without id", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "tool_call_id"},
		{"no messages", `{"model":"m","messages":[]}`, "messages"},
		{"non-function tool", `{"model":"m","tools":[{"type":"web_search"}],"messages":[{"role":"user","content":"x"}]}`, "tools[0].type"},
	} {
		_, err := MessagesRequest([]byte(tt.in), "up", 100)
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Status != http.StatusBadRequest || pe.Kind != provider.KindClient || !strings.Contains(pe.Message, tt.says) {
			t.Errorf("%s: %v, want a 400 saying %q", tt.name, err, tt.says)
		}
	}
}

func BenchmarkMessagesRequest(b *testing.B) {
	var msgs []string
	for i := range 20 {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		msgs = append(msgs, `{"role":"`+role+`","content":"`+strings.Repeat("some words of the conversation ", 20)+`"}`)
	}
	body := []byte(`{"model":"claude","stream":true,"messages":[{"role":"system","content":"` + strings.Repeat("be helpful ", 100) + `"},` + strings.Join(msgs, ",") + `]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MessagesRequest(body, "up", 8192); err != nil {
			b.Fatal(err)
		}
	}
}
