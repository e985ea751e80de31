package responses

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

// jsonEqual compares two JSON documents as values.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("not JSON: %s", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want: %s", want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestChatRequest: the translation table of Responses requests into chat
// bodies, as Codex and the SDKs send them.
func TestChatRequest(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"string input, instructions, sampling",
			`{"model":"gpt-x","instructions":"be brief","input":"hi","temperature":0.2,"top_p":0.9,"max_output_tokens":100,"stream":true,"store":false,"include":["reasoning.encrypted_content"],"prompt_cache_key":"k","service_tier":"auto","truncation":"auto","metadata":{"a":"b"},"user":"u1"}`,
			`{"model":"up","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_tokens":100,"temperature":0.2,"top_p":0.9,"user":"u1","stream":true}`},
		{"messages of every role, easy and typed",
			`{"model":"m","input":[{"role":"developer","content":"dev rules"},{"type":"message","role":"system","content":[{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]},{"role":"user","content":[{"type":"input_text","text":"look"},{"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"high"}]},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"seen","annotations":[]}]},{"role":"user","content":[{"type":"input_text","text":"only text"}]}]}`,
			`{"model":"up","messages":[{"role":"system","content":"dev rules"},{"role":"system","content":"a\n\nb"},{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"high"}}]},{"role":"assistant","content":"seen"},{"role":"user","content":"only text"}]}`},
		{"a file as file_data",
			`{"model":"m","input":[{"role":"user","content":[{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,JVBE"}]}]}`,
			`{"model":"up","messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBE"}}]}]}`},
		{"a function-call round trip, reasoning carried back",
			`{"model":"m","input":[{"role":"user","content":"weather?"},{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"need the tool"}],"encrypted_content":"opaque"},{"type":"function_call","id":"fc_1","call_id":"call_1","name":"weather","arguments":"{\"city\":\"Paris\"}"},{"type":"function_call","call_id":"call_2","name":"time","arguments":"{}"},{"type":"function_call_output","call_id":"call_1","output":"sunny"},{"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"noon"}]},{"type":"message","role":"assistant","content":"It is sunny."}],"tools":[{"type":"function","name":"weather","description":"w","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true},{"type":"function","name":"time"}],"tool_choice":"auto","parallel_tool_calls":false}`,
			`{"model":"up","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"reasoning_content":"need the tool","tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":{"name":"time","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"},{"role":"tool","tool_call_id":"call_2","content":"noon"},{"role":"assistant","content":"It is sunny."}],"tools":[{"type":"function","function":{"name":"weather","description":"w","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}},{"type":"function","function":{"name":"time"}}],"tool_choice":"auto","parallel_tool_calls":false}`},
		{"text and a call in one assistant turn",
			`{"model":"m","input":[{"role":"user","content":"go"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"calling"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"done"}],"tools":[{"type":"function","name":"f"}]}`,
			`{"model":"up","messages":[{"role":"user","content":"go"},{"role":"assistant","content":"calling","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"done"}],"tools":[{"type":"function","function":{"name":"f"}}]}`},
		{"a tool's image output follows its tool message",
			`{"model":"m","input":[{"role":"user","content":"shot"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":"here"},{"type":"input_image","image_url":"https://x/y.png"}]},{"role":"user","content":"and?"}],"tools":[{"type":"function","name":"f"}]}`,
			`{"model":"up","messages":[{"role":"user","content":"shot"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"here"},{"role":"user","content":[{"type":"text","text":"The tool's output holds these:"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},{"role":"user","content":"and?"}],"tools":[{"type":"function","function":{"name":"f"}}]}`},
		{"a custom tool as a function of one string",
			`{"model":"m","input":[{"role":"user","content":"patch"},{"type":"custom_tool_call","call_id":"c","name":"apply_patch","input":"*** Begin Patch"},{"type":"custom_tool_call_output","call_id":"c","output":"ok"}],"tools":[{"type":"custom","name":"apply_patch","description":"Edit files.","format":{"type":"grammar","syntax":"lark","definition":"start: x"}}],"tool_choice":{"type":"custom","name":"apply_patch"}}`,
			`{"model":"up","messages":[{"role":"user","content":"patch"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"apply_patch","arguments":"{\"input\":\"*** Begin Patch\"}"}}]},{"role":"tool","tool_call_id":"c","content":"ok"}],"tools":[{"type":"function","function":{"name":"apply_patch","description":"Edit files.\n\nThe input must follow this lark grammar:\nstart: x","parameters":{"type":"object","properties":{"input":{"type":"string","description":"The tool's input, as free text."}},"required":["input"],"additionalProperties":false}}}],"tool_choice":{"type":"function","function":{"name":"apply_patch"}}}`},
		{"a namespace's tools join the others (Codex's multi_agent_v1)",
			`{"model":"m","input":"x","tools":[{"type":"function","name":"exec_command"},{"type":"namespace","name":"multi_agent_v1","description":"agents","tools":[{"type":"function","name":"spawn_agent","parameters":{"type":"object"}}]}]}`,
			`{"model":"up","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"exec_command"}},{"type":"function","function":{"name":"spawn_agent","parameters":{"type":"object"}}}]}`},
		{"tool_choice naming a function; allowed_tools filters",
			`{"model":"m","input":"x","tools":[{"type":"function","name":"a"},{"type":"function","name":"b"}],"tool_choice":{"type":"allowed_tools","mode":"required","tools":[{"type":"function","name":"b"}]}}`,
			`{"model":"up","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"b"}}],"tool_choice":"required"}`},
		{"tool_choice and parallel_tool_calls without tools are left out",
			`{"model":"m","input":"x","tool_choice":"none","parallel_tool_calls":true}`,
			`{"model":"up","messages":[{"role":"user","content":"x"}]}`},
		{"reasoning effort to the provider's switch",
			`{"model":"m","input":"x","reasoning":{"effort":"high","summary":"auto"}}`,
			`{"model":"up","messages":[{"role":"user","content":"x"}],"reasoning_effort":"high"}`},
		{"json_schema to response_format",
			`{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"answer","schema":{"type":"object","properties":{"a":{"type":"string"}}},"strict":true},"verbosity":"low"}}`,
			`{"model":"up","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object","properties":{"a":{"type":"string"}}},"strict":true}}}`},
		{"json_object to response_format; text is the default",
			`{"model":"m","input":"x","text":{"format":{"type":"json_object"}}}`,
			`{"model":"up","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`},
		{"plain text format sends nothing",
			`{"model":"m","input":"x","text":{"format":{"type":"text"}}}`,
			`{"model":"up","messages":[{"role":"user","content":"x"}]}`},
		{"reasoning_text content of open-weight models",
			`{"model":"m","input":[{"role":"user","content":"q"},{"type":"reasoning","summary":[],"content":[{"type":"reasoning_text","text":"raw thought"}]},{"role":"assistant","content":"a"}]}`,
			`{"model":"up","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a","reasoning_content":"raw thought"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ChatRequest([]byte(tc.in), "up", "asked")
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, r.Chat, tc.want)
		})
	}
}

// TestChatRequestRefusals: what a chat upstream cannot do is refused
// with a 400 naming the member, never dropped.
func TestChatRequestRefusals(t *testing.T) {
	for _, tc := range []struct{ name, in, param, says string }{
		{"previous_response_id", `{"model":"m","input":"x","previous_response_id":"resp_1"}`, "previous_response_id", "does not store responses"},
		{"conversation", `{"model":"m","input":"x","conversation":"conv_1"}`, "conversation", "does not store conversations"},
		{"background", `{"model":"m","input":"x","background":true}`, "background", "background"},
		{"stored prompt", `{"model":"m","input":"x","prompt":{"id":"pmpt_1"}}`, "prompt", "stored prompt"},
		{"max_tool_calls", `{"model":"m","input":"x","max_tool_calls":3}`, "max_tool_calls", "bound"},
		{"built-in tool", `{"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"web_search"}]}`, "tools[1].type", `"web_search" is one of OpenAI's built-in tools`},
		{"built-in tool_choice", `{"model":"m","input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"file_search"}}`, "tool_choice.type", `"file_search"`},
		{"tool_choice naming no tool", `{"model":"m","input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"g"}}`, "tool_choice.name", `no tool is named "g"`},
		{"built-in item", `{"model":"m","input":[{"role":"user","content":"x"},{"type":"web_search_call","id":"ws_1","status":"completed"}]}`, "input[1].type", `"web_search_call"`},
		{"item_reference", `{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0]", "stores none"},
		{"image by file id", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}`, "input[0].content[0].file_id", "stores no files"},
		{"file by url", `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_url":"https://x/a.pdf"}]}]}`, "input[0].content[0]", "file_data"},
		{"no model", `{"input":"x"}`, "model", "field required"},
		{"two tools of one name", `{"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"namespace","name":"ns","tools":[{"type":"function","name":"f"}]}]}`, "tools[1].tools[0].name", `"f" is the name of another tool too`},
		{"no input", `{"model":"m"}`, "input", "field required"},
		{"input of a number", `{"model":"m","input":3}`, "input", "a string or an array"},
		{"role missing", `{"model":"m","input":[{"content":"x"}]}`, "input[0].role", "field required"},
		{"bad role", `{"model":"m","input":[{"role":"tool","content":"x"}]}`, "input[0].role", `not "tool"`},
		{"call without call_id", `{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0].call_id", "field required"},
		{"output without call_id", `{"model":"m","input":[{"type":"function_call_output","output":"x"}]}`, "input[0].call_id", "field required"},
		{"image in a system message", `{"model":"m","input":[{"role":"system","content":[{"type":"input_image","image_url":"https://x"}]}]}`, "input[0].content[0].type", "input_text parts only"},
		{"unknown part", `{"model":"m","input":[{"role":"user","content":[{"type":"input_audio"}]}]}`, "input[0].content[0].type", `not "input_audio"`},
		{"bad text format", `{"model":"m","input":"x","text":{"format":{"type":"yaml"}}}`, "text.format.type", `not "yaml"`},
		{"json_schema without a schema", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n"}}}`, "text.format.schema", "field required"},
		{"wrong type", `{"model":"m","input":"x","temperature":"hot"}`, "temperature", "must be a number"},
		{"max_output_tokens zero", `{"model":"m","input":"x","max_output_tokens":0}`, "max_output_tokens", "positive"},
		{"bad tool_choice", `{"model":"m","input":"x","tool_choice":"sometimes"}`, "tool_choice", `not "sometimes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ChatRequest([]byte(tc.in), "up", "asked")
			pe, ok := err.(*provider.Error)
			if !ok {
				t.Fatalf("err = %v, want a *provider.Error", err)
			}
			if pe.Status != 400 || pe.Kind != provider.KindClient || pe.Param != tc.param || !strings.Contains(pe.Message, tc.says) {
				t.Errorf("got %d %v param %q: %s\nwant 400 param %q saying %q", pe.Status, pe.Kind, pe.Param, pe.Message, tc.param, tc.says)
			}
		})
	}
}

// TestEcho: a Response repeats the request's settings, and says it was
// not stored.
func TestEcho(t *testing.T) {
	r, err := ChatRequest([]byte(`{"model":"m","input":"x","store":true,"temperature":0.5,"max_output_tokens":64,"tool_choice":"required","parallel_tool_calls":false,"reasoning":{"effort":"low","summary":"auto"},"text":{"format":{"type":"json_object"}},"metadata":{"k":"v"}}`), "up", "asked")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, []byte("{"+string(r.echo[1:])+"}"), `{"parallel_tool_calls":false,"tool_choice":"required","temperature":0.5,"top_p":null,"max_output_tokens":64,"text":{"format":{"type":"json_object"}},"reasoning":{"effort":"low","summary":"auto"},"store":false,"metadata":{"k":"v"},"previous_response_id":null,"truncation":"disabled"}`)
}
