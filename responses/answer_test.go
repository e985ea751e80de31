package responses

import (
	"regexp"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

var ids = regexp.MustCompile(`"(resp|msg|rs|fc|ctc|call)_[0-9a-f]{32}"`)

// stable replaces generated ids and times so that answers compare.
func stable(b []byte) []byte {
	b = ids.ReplaceAll(b, []byte(`"${1}_ID"`))
	return regexp.MustCompile(`"created_at":\d+`).ReplaceAll(b, []byte(`"created_at":0`))
}

const echoed = `"parallel_tool_calls":true,"tool_choice":"auto","temperature":null,"top_p":null,"max_output_tokens":null,"text":{"format":{"type":"text"}},"reasoning":{"effort":null,"summary":null},"store":false,"metadata":{},"previous_response_id":null,"truncation":"disabled"`

// TestAnswer: chat completions as Response objects.
func TestAnswer(t *testing.T) {
	tools := `,"tools":[{"type":"function","name":"f"},{"type":"custom","name":"apply_patch"}]`
	for _, tc := range []struct{ name, chat, want string }{
		{"text with usage",
			`{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":2}}}`,
			`{"id":"resp_ID","object":"response","created_at":0,"status":"completed","error":null,"model":"asked",` + echoed + `,"output":[{"id":"msg_ID","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"hi"}]}],"incomplete_details":null,"usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":6},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":14}}`},
		{"reasoning, then calls of a function and a custom tool",
			`{"choices":[{"message":{"role":"assistant","content":null,"reasoning_content":"think","tool_calls":[{"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}},{"id":"call_b","type":"function","function":{"name":"apply_patch","arguments":"{\"input\":\"*** Begin\"}"}},{"id":"","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":"tool_calls"}]}`,
			`{"id":"resp_ID","object":"response","created_at":0,"status":"completed","error":null,"model":"asked",` + echoed + `,"output":[{"id":"rs_ID","type":"reasoning","summary":[{"type":"summary_text","text":"think"}]},{"id":"fc_ID","type":"function_call","status":"completed","call_id":"call_a","name":"f","arguments":"{\"x\":1}"},{"id":"ctc_ID","type":"custom_tool_call","status":"completed","call_id":"call_b","name":"apply_patch","input":"*** Begin"},{"id":"fc_ID","type":"function_call","status":"completed","call_id":"call_ID","name":"f","arguments":"{}"}],"incomplete_details":null,"usage":{"input_tokens":0,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0}}`},
		{"cut for length",
			`{"choices":[{"message":{"role":"assistant","content":"abc"},"finish_reason":"length"}]}`,
			`{"id":"resp_ID","object":"response","created_at":0,"status":"incomplete","error":null,"model":"asked",` + echoed + `,"output":[{"id":"msg_ID","type":"message","status":"incomplete","role":"assistant","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"abc"}]}],"incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":0,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0}}`},
		{"a refusal, filtered",
			`{"choices":[{"message":{"role":"assistant","content":null,"refusal":"I can't."},"finish_reason":"content_filter"}]}`,
			`{"id":"resp_ID","object":"response","created_at":0,"status":"incomplete","error":null,"model":"asked",` + echoed + `,"output":[{"id":"msg_ID","type":"message","status":"incomplete","role":"assistant","content":[{"type":"refusal","refusal":"I can't."}]}],"incomplete_details":{"reason":"content_filter"},"usage":{"input_tokens":0,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0}}`},
		{"thinking parts (Mistral)",
			`{"choices":[{"message":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"hm"}]},{"type":"text","text":"ok"}]},"finish_reason":"stop"}]}`,
			`{"id":"resp_ID","object":"response","created_at":0,"status":"completed","error":null,"model":"asked",` + echoed + `,"output":[{"id":"rs_ID","type":"reasoning","summary":[{"type":"summary_text","text":"hm"}]},{"id":"msg_ID","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"ok"}]}],"incomplete_details":null,"usage":{"input_tokens":0,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ChatRequest([]byte(`{"model":"m","input":"x"`+tools+`}`), "up", "asked")
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Answer([]byte(tc.chat))
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, stable(got), tc.want)
		})
	}
}

// TestAnswerBadReply: a 200 that is no completion is the upstream's
// fault, a 502.
func TestAnswerBadReply(t *testing.T) {
	r, _ := ChatRequest([]byte(`{"model":"m","input":"x"}`), "up", "asked")
	for _, body := range []string{`{"object":"chat.completion"}`, `not json`, `{"choices":[{"message":{"content":7}}]}`} {
		_, err := r.Answer([]byte(body))
		if pe, ok := err.(*provider.Error); !ok || pe.Status != 502 || pe.Code != "upstream_bad_reply" {
			t.Errorf("%s: err = %v, want a 502 upstream_bad_reply", body, err)
		}
	}
}

// TestUsageOf: native Responses usage, from an answer and from the
// events that end a stream; other events have none.
func TestUsageOf(t *testing.T) {
	usage := `{"input_tokens":9,"input_tokens_details":{"cached_tokens":3},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":14}`
	want := provider.Usage{Prompt: 9, Completion: 5, Cached: 3, Reasoning: 2}
	for _, data := range []string{
		`{"id":"resp_1","object":"response","usage":` + usage + `}`,
		`{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","usage":` + usage + `}}`,
		`{"type":"response.incomplete","sequence_number":9,"response":{"usage":` + usage + `}}`,
	} {
		if got, ok := UsageOf([]byte(data)); !ok || got != want {
			t.Errorf("%s: %+v %t, want %+v", data, got, ok, want)
		}
	}
	for _, data := range []string{`{"type":"response.output_text.delta","delta":"usage"}`, `{"type":"response.created","response":{"usage":null}}`} {
		if _, ok := UsageOf([]byte(data)); ok {
			t.Errorf("%s: usage found", data)
		}
	}
}
