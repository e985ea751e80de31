package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

// revCase is one file of testdata/reverse/<kind>: an explanation, then
// sections, each begun by a line "-- name --".
type revCase struct {
	name     string
	sections map[string]string
}

func revCases(t *testing.T, kind string) []revCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "reverse", kind, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in testdata/reverse/%s: %v", kind, err)
	}
	var cases []revCase
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := revCase{name: strings.TrimSuffix(filepath.Base(f), ".txt"), sections: map[string]string{}}
		section := ""
		for line := range strings.Lines(string(raw)) {
			if name, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "-- "); ok && strings.HasSuffix(name, " --") {
				section = strings.TrimSuffix(name, " --")
				c.sections[section] = ""
				continue
			}
			if section != "" {
				c.sections[section] += line
			}
		}
		cases = append(cases, c)
	}
	return cases
}

// revJSON decodes JSON for comparing.
func revJSON(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	return v
}

func revCompact(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// TestMessagesRequestData: chat requests as clients send them, from
// testdata/reverse/request, and the Messages request each becomes.
func TestMessagesRequestData(t *testing.T) {
	for _, c := range revCases(t, "request") {
		t.Run(c.name, func(t *testing.T) {
			got, err := MessagesRequest([]byte(c.sections["chat"]), "claude-sonnet-4-5", 8192)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.sections["messages"]; !reflect.DeepEqual(revJSON(t, got), revJSON(t, []byte(want))) {
				t.Errorf("\n got %s\nwant %s", got, revCompact([]byte(want)))
			}
		})
	}
}

// TestMessagesRequest: each mapping rule on its own.
func TestMessagesRequest(t *testing.T) {
	const user = `"messages":[{"role":"user","content":"x"}]`
	const userOut = `"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]`
	for _, tt := range []struct{ name, in, want string }{
		{"max_tokens wins over max_completion_tokens", `{"max_tokens":7,"max_completion_tokens":9,` + user + `}`,
			`{"model":"up","max_tokens":7,` + userOut + `}`},
		{"temperature clamped, top_p and top_k passed", `{"temperature":2,"top_p":0.5,"top_k":3,` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"temperature":1,"top_p":0.5,"top_k":3}`},
		{"temperature within range", `{"temperature":0,` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"temperature":0}`},
		{"stop as a string", `{"stop":"END",` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"stop_sequences":["END"]}`},
		{"safety_identifier when there is no user", `{"safety_identifier":"s-1",` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"metadata":{"user_id":"s-1"}}`},
		{"text is not HTML-escaped", `{"messages":[{"role":"user","content":"a<b && c>d"}]}`,
			`{"model":"up","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"a<b && c>d"}]}]}`},
		{"empty text parts and messages are left out", `{"messages":[{"role":"user","content":""},{"role":"assistant","content":"a"},{"role":"user","content":[{"type":"text","text":""},{"type":"text","text":"b"}]}]}`,
			`{"model":"up","max_tokens":100,"messages":[{"role":"assistant","content":[{"type":"text","text":"a"}]},{"role":"user","content":[{"type":"text","text":"b"}]}]}`},
		{"image_url as a bare string", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":"https://x.test/a.png"}]}]}`,
			`{"model":"up","max_tokens":100,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x.test/a.png"}}]}]}`},
		{"an image in a tool result", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"null"}}]},{"role":"tool","tool_call_id":"c","content":[{"type":"image_url","image_url":{"url":"data:image/webp;base64,UklG"}}]}]}`,
			`{"model":"up","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]},{"role":"assistant","content":[{"type":"tool_use","id":"c","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":[{"type":"image","source":{"type":"base64","media_type":"image/webp","data":"UklG"}}]}]}]}`},
		{"assistant text and refusal parts", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"refusal","refusal":"no"}]},{"role":"user","content":"y"}]}`,
			`{"model":"up","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]},{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"text","text":"no"}]},{"role":"user","content":[{"type":"text","text":"y"}]}]}`},
		{"unsigned thinking blocks are dropped", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"a","thinking_blocks":[{"type":"thinking","thinking":"hm"}]},{"role":"user","content":"y"}]}`,
			`{"model":"up","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]},{"role":"assistant","content":[{"type":"text","text":"a"}]},{"role":"user","content":[{"type":"text","text":"y"}]}]}`},
		{"a whitespace-only prefill is left out", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":" \n"}]}`,
			`{"model":"up","max_tokens":100,` + userOut + `}`},
		{"tool_choice without tools is left out", `{"tool_choice":"required","parallel_tool_calls":false,` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `}`},
		{"tool_choice none keeps parallel use as it is", `{"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none","parallel_tool_calls":false,` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"none"}}`},
		{"tool_choice required is any", `{"tools":[{"type":"function","function":{"name":"f","parameters":null}}],"tool_choice":"required",` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"}}`},
		{"parallel_tool_calls true changes nothing", `{"tools":[{"type":"function","function":{"name":"f"}}],"parallel_tool_calls":true,` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"tools":[{"name":"f","input_schema":{"type":"object"}}]}`},
		{"a tool's cache_control", `{"tools":[{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}}],` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"tools":[{"name":"f","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}]}`},
		{"legacy function_call naming a function", `{"functions":[{"name":"f"}],"function_call":{"name":"f"},` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"}}`},
		{"reasoning_effort none thinks not", `{"reasoning_effort":"none","temperature":0.5,` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"temperature":0.5}`},
		{"reasoning_effort minimal thinks not", `{"reasoning_effort":"minimal",` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `}`},
		{"reasoning_effort low below max_tokens", `{"reasoning_effort":"low","max_tokens":5000,"top_p":0.95,` + user + `}`,
			`{"model":"up","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":4000},` + userOut + `,"top_p":0.95}`},
		{"reasoning_effort medium raises max_tokens by the budget", `{"reasoning_effort":"medium","max_tokens":2000,` + user + `}`,
			`{"model":"up","max_tokens":12000,"thinking":{"type":"enabled","budget_tokens":10000},` + userOut + `}`},
		{"reasoning_effort xhigh", `{"reasoning_effort":"xhigh","max_tokens":31999,` + user + `}`,
			`{"model":"up","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999},` + userOut + `}`},
		{"thinking with a forced tool is left out", `{"reasoning_effort":"high","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required","temperature":0.1,` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"},"temperature":0.1}`},
		{"Anthropic's own thinking member", `{"thinking":{"type":"enabled","budget_tokens":2048},"max_tokens":1000,` + user + `}`,
			`{"model":"up","max_tokens":3048,"thinking":{"type":"enabled","budget_tokens":2048},` + userOut + `}`},
		{"thinking wins over reasoning_effort", `{"thinking":{"type":"disabled"},"reasoning_effort":"high",` + user + `}`,
			`{"model":"up","max_tokens":100,` + userOut + `}`},
		{"adaptive thinking passes", `{"thinking":{"type":"adaptive"},"top_k":5,` + user + `}`,
			`{"model":"up","max_tokens":100,"thinking":{"type":"adaptive"},` + userOut + `}`},
	} {
		got, err := MessagesRequest([]byte(tt.in), "up", 100)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(revJSON(t, got), revJSON(t, []byte(tt.want))) {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

// TestMessagesRequestDefaultMaxTokens: the default stands in for a
// missing max_tokens, and 8192 for a default that is none.
func TestMessagesRequestDefaultMaxTokens(t *testing.T) {
	for _, tt := range []struct{ def, want int }{{4096, 4096}, {0, 8192}, {-1, 8192}} {
		got, err := MessagesRequest([]byte(`{"messages":[{"role":"user","content":"x"}],"max_tokens":null}`), "up", tt.def)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := provider.Field(got, "max_tokens"); string(v) != revItoa(tt.want) {
			t.Errorf("default %d: max_tokens %s, want %d", tt.def, v, tt.want)
		}
	}
}

func revItoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestMessagesRequestRefused: bodies that cannot be translated are 400s
// naming the member at fault.
func TestMessagesRequestRefused(t *testing.T) {
	const user = `"messages":[{"role":"user","content":"x"}]`
	call := func(args string) string {
		return `{"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":` + args + `}}]}]}`
	}
	for _, tt := range []struct{ name, in, says string }{
		{"not JSON", `{"messages":`, "body: not valid JSON"},
		{"not an object", `[1]`, "body: must be an object, not array"},
		{"a member of the wrong type", `{"max_tokens":"many",` + user + `}`, "max_tokens: must be an integer, not string"},
		{"a message's member of the wrong type", `{"messages":[{"role":"assistant","tool_calls":[{"id":5}]}]}`, "messages[0].tool_calls.id: must be a string, not number"},
		{"stream not a boolean", `{"stream":"yes",` + user + `}`, "stream: must be a boolean, not string"},
		{"no messages", `{"messages":[]}`, "messages: at least one"},
		{"nothing with content", `{"messages":[{"role":"system","content":"s"},{"role":"user","content":""}]}`, "messages: no user or assistant message"},
		{"n above 1", `{"n":2,` + user + `}`, "n: "},
		{"max_tokens 0", `{"max_tokens":0,` + user + `}`, "max_tokens: must be a positive integer"},
		{"max_completion_tokens negative", `{"max_completion_tokens":-5,` + user + `}`, "max_completion_tokens: must be a positive integer"},
		{"a message that is no object", `{"messages":["hi"]}`, "messages[0]: "},
		{"an unknown role", `{"messages":[{"role":"bot","content":"x"}]}`, `messages[0].role: must be system, developer, user, assistant, tool or function, not "bot"`},
		{"content that is a number", `{"messages":[{"role":"user","content":5}]}`, "messages[0].content: must be a string or an array of parts"},
		{"audio", `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"user","content":[{"type":"text","text":"d"},{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`,
			`messages[3].content[1]: unknown part type "input_audio"`},
		{"a text part without text", `{"messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages[0].content[0].text: field required"},
		{"an image without a URL", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}`, "messages[0].content[0].image_url.url: field required"},
		{"an image URL of another scheme", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]}]}`, "messages[0].content[0].image_url.url: must be an http(s) URL or a data: URI"},
		{"an image type Anthropic does not take", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}]}`, `not "image/bmp"`},
		{"a data URI that is not base64", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "must be a base64 data: URI"},
		{"a file by id", `{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-abc"}}]}]}`, "messages[0].content[0].file.file_id: "},
		{"a file without data", `{"messages":[{"role":"user","content":[{"type":"file","file":{}}]}]}`, "messages[0].content[0].file.file_data: field required"},
		{"a file part without file", `{"messages":[{"role":"user","content":[{"type":"file"}]}]}`, "messages[0].content[0].file: field required"},
		{"a file type Anthropic does not take", `{"messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/zip;base64,UEs="}}]}]}`, `not "application/zip"`},
		{"plain text that is not base64", `{"messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:text/plain;base64,!!"}}]}]}`, "the text is not base64"},
		{"an image in a system message", `{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]},{"role":"user","content":"x"}]}`, "messages[0].content[0]: a system or developer message holds text parts only"},
		{"an image from the assistant", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}`, "messages[1].content[0]: an assistant message holds text or refusal parts"},
		{"a thinking block of another type", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"a","thinking_blocks":[{"type":"summary"}]}]}`, "messages[1].thinking_blocks[0].type"},
		{"invalid arguments", call(`"{\"a\":"`), "messages[1].tool_calls[0].function.arguments: not valid JSON"},
		{"arguments not an object", call(`"[1,2]"`), "messages[1].tool_calls[0].function.arguments: must be a JSON object"},
		{"arguments a number", call(`5`), "messages[1].tool_calls[0].function.arguments: must be a JSON object"},
		{"a call without id", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}`, "messages[1].tool_calls[0].id: field required"},
		{"a call without name", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{}}]}]}`, "messages[1].tool_calls[0].function.name: field required"},
		{"a custom call", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"custom","custom":{"name":"f","input":"x"}}]}]}`, "messages[1].tool_calls[0].type"},
		{"a tool message without tool_call_id", `{"messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id: field required"},
		{"an audio tool result", `{"messages":[{"role":"tool","tool_call_id":"c","content":[{"type":"input_audio"}]}]}`, "messages[0].content[0]: a tool result holds text or image_url parts"},
		{"a function result without its call", `{"messages":[{"role":"function","name":"f","content":"x"}]}`, `messages[0].name: no earlier function_call of "f"`},
		{"a non-function tool", `{"tools":[{"type":"web_search_preview"}],` + user + `}`, `tools[0].type: the Anthropic provider this model routes to takes function tools, not "web_search_preview"`},
		{"a tool without function", `{"tools":[{"type":"function"}],` + user + `}`, "tools[0].function: field required"},
		{"a tool without name", `{"tools":[{"type":"function","function":{"description":"d"}}],` + user + `}`, "tools[0].function.name: field required"},
		{"a schema that is no object", `{"tools":[{"type":"function","function":{"name":"f","parameters":[1]}}],` + user + `}`, "tools[0].function.parameters: must be a JSON schema object"},
		{"a legacy function without name", `{"functions":[{}],` + user + `}`, "functions[0].name: field required"},
		{"an unknown tool_choice", `{"tool_choice":"always",` + user + `}`, `tool_choice: must be auto, required, none or a function, not "always"`},
		{"allowed_tools", `{"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}},` + user + `}`, "tool_choice: must be auto"},
		{"a function choice without name", `{"tool_choice":{"type":"function","function":{}},` + user + `}`, "tool_choice: must be auto"},
		{"a legacy function_call of no kind", `{"function_call":"sometimes",` + user + `}`, `function_call: must be auto`},
		{"stop of numbers", `{"stop":[1],` + user + `}`, "stop: must be a string or an array of strings"},
		{"json_object", `{"response_format":{"type":"json_object"},` + user + `}`, "response_format: the Anthropic provider this model routes to has no JSON mode without a schema"},
		{"json_schema without schema", `{"response_format":{"type":"json_schema","json_schema":{"name":"x"}},` + user + `}`, "response_format.json_schema.schema: field required"},
		{"an unknown response_format", `{"response_format":{"type":"yaml"},` + user + `}`, `response_format.type: must be text, json_schema or json_object, not "yaml"`},
		{"an unknown reasoning_effort", `{"reasoning_effort":"extreme",` + user + `}`, `reasoning_effort: must be none, minimal, low, medium, high or xhigh, not "extreme"`},
		{"a thinking budget too small", `{"thinking":{"type":"enabled","budget_tokens":100},` + user + `}`, "thinking.budget_tokens: field required, at least 1024"},
		{"an unknown thinking type", `{"thinking":{"type":"deep"},` + user + `}`, `thinking.type: must be enabled, adaptive or disabled, not "deep"`},
	} {
		_, err := MessagesRequest([]byte(tt.in), "up", 100)
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Status != http.StatusBadRequest || pe.Type != "invalid_request_error" || pe.Kind != provider.KindClient ||
			!strings.Contains(pe.Message, tt.says) || pe.Param == "" || !strings.HasPrefix(pe.Message, pe.Param+": ") {
			t.Errorf("%s: %#v, want a 400 saying %q", tt.name, err, tt.says)
		}
	}
}

// TestThinkingRoundTrip: the thinking_blocks of ChatAnswer's message,
// sent back by the client with the tool's result, lead the assistant
// turn again, so that a tool loop keeps thinking on.
func TestThinkingRoundTrip(t *testing.T) {
	answer, err := ChatAnswer([]byte(`{"id":"msg_1","type":"message","role":"assistant","content":[`+
		`{"type":"thinking","thinking":"","signature":"sig-omitted"},{"type":"redacted_thinking","data":"red"},`+
		`{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}`), "m")
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := provider.Field(answer, "choices")
	msg = msg[1 : len(msg)-1]
	msg, _ = provider.Field(msg, "message")
	body := `{"reasoning_effort":"low","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"go"},` +
		string(msg) + `,{"role":"tool","tool_call_id":"toolu_1","content":"done"}]}`
	got, err := MessagesRequest([]byte(body), "up", 8192)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"up","max_tokens":8192,"thinking":{"type":"enabled","budget_tokens":4000},"messages":[` +
		`{"role":"user","content":[{"type":"text","text":"go"}]},` +
		`{"role":"assistant","content":[{"type":"thinking","thinking":"","signature":"sig-omitted"},{"type":"redacted_thinking","data":"red"},{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"done"}]}],` +
		`"tools":[{"name":"f","input_schema":{"type":"object"}}]}`
	if !reflect.DeepEqual(revJSON(t, got), revJSON(t, []byte(want))) {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func BenchmarkMessagesRequest(b *testing.B) {
	var msgs []string
	for i := range 20 {
		switch i % 4 {
		case 0:
			msgs = append(msgs, `{"role":"user","content":"`+strings.Repeat("some words of the conversation ", 20)+`"}`)
		case 1:
			msgs = append(msgs, `{"role":"assistant","content":null,"tool_calls":[{"id":"call_`+revItoa(i)+`","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"main.go\"}"}}]}`)
		case 2:
			msgs = append(msgs, `{"role":"tool","tool_call_id":"call_`+revItoa(i-1)+`","content":"`+strings.Repeat("package main // code ", 40)+`"}`)
		case 3:
			msgs = append(msgs, `{"role":"assistant","content":"`+strings.Repeat("an answer ", 30)+`"}`)
		}
	}
	body := []byte(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"tools":[{"type":"function","function":{"name":"read_file","description":"Read a file","parameters":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}}],` +
		`"messages":[{"role":"system","content":"` + strings.Repeat("be helpful ", 100) + `"},` + strings.Join(msgs, ",") + `]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MessagesRequest(body, "up", 8192); err != nil {
			b.Fatal(err)
		}
	}
}
