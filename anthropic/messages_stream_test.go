package anthropic

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

// chunkOf is one chat.completion.chunk with the given delta (JSON),
// finish_reason and usage (JSON, or "").
func chunkOf(delta, finish, usage string) []byte {
	fr := "null"
	if finish != "" {
		fr = `"` + finish + `"`
	}
	c := `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + fr + `}]`
	if usage != "" {
		c += `,"usage":` + usage
	}
	return []byte(c + "}")
}

func usageChunk(usage string) []byte {
	return []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up","choices":[],"usage":` + usage + `}`)
}

// events runs a chat stream through StreamFromChat and decodes its
// events; err is the stream's end.
func translateStream(t *testing.T, chunks [][]byte, end error) (evs []map[string]any, err error) {
	t.Helper()
	var src provider.EventReader = &provider.SliceEvents{Events: chunks}
	if end != nil {
		src = &failingEvents{SliceEvents: provider.SliceEvents{Events: chunks}, err: end}
	}
	s := StreamFromChat(src, "claude-x")
	defer s.Close()
	for {
		data, err := s.Next()
		if err != nil {
			return evs, err
		}
		var m map[string]any
		if jerr := json.Unmarshal(data, &m); jerr != nil {
			t.Fatalf("event is not JSON: %s", data)
		}
		if !strings.HasPrefix(string(data), `{"type":"`+fmt.Sprint(m["type"])+`"`) {
			t.Fatalf("type is not first: %s", data)
		}
		evs = append(evs, m)
	}
}

type failingEvents struct {
	provider.SliceEvents
	err error
}

func (f *failingEvents) Next() ([]byte, error) {
	if len(f.Events) == 0 {
		return nil, f.err
	}
	return f.SliceEvents.Next()
}

// checkWellFormed checks what Anthropic's clients rely on: one
// message_start first, message_stop last, message_delta with usage just
// before it, contiguous block indexes, every block stopped before the
// next starts, deltas of their block's kind, tool input that joins into
// JSON. It returns each block's type and joined content.
func checkWellFormed(t *testing.T, evs []map[string]any, complete bool) (types []string, contents []string) {
	t.Helper()
	if len(evs) == 0 || evs[0]["type"] != "message_start" {
		t.Fatalf("the stream does not begin with message_start: %v", evs)
	}
	open := -1
	var parts []strings.Builder
	for i, e := range evs {
		typ := e["type"].(string)
		if i > 0 && typ == "message_start" {
			t.Fatalf("a second message_start at %d", i)
		}
		idx := -1
		if v, ok := e["index"].(float64); ok {
			idx = int(v)
		}
		switch typ {
		case "content_block_start":
			if open >= 0 {
				t.Fatalf("block %d starts while %d is open", idx, open)
			}
			if idx != len(types) {
				t.Fatalf("block index %d, want %d", idx, len(types))
			}
			cb := e["content_block"].(map[string]any)
			types = append(types, cb["type"].(string))
			parts = append(parts, strings.Builder{})
			open = idx
			if cb["type"] == "tool_use" && (cb["id"] == "" || cb["name"] == "") {
				t.Fatalf("a tool block without id or name: %v", cb)
			}
		case "content_block_delta":
			if idx != open {
				t.Fatalf("a delta for block %d while %d is open", idx, open)
			}
			d := e["delta"].(map[string]any)
			want := map[string]string{"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}[types[idx]]
			if d["type"] != want {
				t.Fatalf("a %v in a %s block", d["type"], types[idx])
			}
			for _, k := range []string{"text", "thinking", "partial_json"} {
				if s, ok := d[k].(string); ok {
					parts[idx].WriteString(s)
				}
			}
		case "content_block_stop":
			if idx != open {
				t.Fatalf("stop for block %d while %d is open", idx, open)
			}
			open = -1
		case "message_delta":
			if open >= 0 {
				t.Fatalf("message_delta while block %d is open", open)
			}
			if _, ok := e["usage"].(map[string]any)["output_tokens"]; !ok {
				t.Fatalf("message_delta without usage: %v", e)
			}
			if i != len(evs)-2 {
				t.Fatalf("message_delta is not just before the end")
			}
		case "message_stop":
			if i != len(evs)-1 {
				t.Fatalf("message_stop is not last")
			}
		}
	}
	if complete && evs[len(evs)-1]["type"] != "message_stop" {
		t.Fatalf("the stream does not end with message_stop")
	}
	for i, p := range parts {
		contents = append(contents, p.String())
		if types[i] == "tool_use" {
			var v map[string]any
			if err := json.Unmarshal([]byte(p.String()), &v); err != nil {
				t.Fatalf("tool block %d: input %q does not parse as an object", i, p.String())
			}
		}
	}
	return types, contents
}

// TestStreamFromChat: recorded stream shapes, translated in Anthropic's
// event order.
func TestStreamFromChat(t *testing.T) {
	tc := func(index, id, name, args string) string {
		var parts []string
		if index != "" {
			parts = append(parts, `"index":`+index)
		}
		if id != "" {
			parts = append(parts, `"id":"`+id+`","type":"function"`)
		}
		fn := `"arguments":` + fmt.Sprintf("%q", args)
		if name != "" {
			fn = `"name":"` + name + `",` + fn
		}
		parts = append(parts, `"function":{`+fn+`}`)
		return `{"tool_calls":[{` + strings.Join(parts, ",") + `}]}`
	}
	usage := `{"prompt_tokens":30,"completion_tokens":9,"total_tokens":39,"prompt_tokens_details":{"cached_tokens":12}}`
	tests := []struct {
		name     string
		chunks   [][]byte
		types    []string
		contents []string
		stop     string
	}{
		{"text", [][]byte{chunkOf(`{"role":"assistant","content":""}`, "", ""), chunkOf(`{"content":"Hel"}`, "", ""),
			chunkOf(`{"content":"lo"}`, "", ""), chunkOf(`{}`, "stop", ""), usageChunk(usage)},
			[]string{"text"}, []string{"Hello"}, "end_turn"},
		{"DeepSeek reasoning then text", [][]byte{chunkOf(`{"role":"assistant","content":null,"reasoning_content":""}`, "", ""),
			chunkOf(`{"content":null,"reasoning_content":"Hmm, "}`, "", ""), chunkOf(`{"content":null,"reasoning_content":"yes."}`, "", ""),
			chunkOf(`{"content":"Yes"}`, "", ""), chunkOf(`{}`, "stop", usage)},
			[]string{"thinking", "text"}, []string{"Hmm, yes.", "Yes"}, "end_turn"},
		{"OpenRouter reasoning", [][]byte{chunkOf(`{"reasoning":"think"}`, "", ""), chunkOf(`{"content":"ok"}`, "length", "")},
			[]string{"thinking", "text"}, []string{"think", "ok"}, "max_tokens"},
		{"text, then thinking again", [][]byte{chunkOf(`{"content":"a"}`, "", ""), chunkOf(`{"reasoning_content":"b"}`, "", ""), chunkOf(`{"content":"c"}`, "stop", "")},
			[]string{"text", "thinking", "text"}, []string{"a", "b", "c"}, "end_turn"},
		{"one tool call", [][]byte{chunkOf(`{"role":"assistant","content":null}`, "", ""), chunkOf(tc("0", "call_1", "get_weather", ""), "", ""),
			chunkOf(tc("0", "", "", `{"ci`), "", ""), chunkOf(tc("0", "", "", `ty":"Paris"}`), "", ""), chunkOf(`{}`, "tool_calls", "")},
			[]string{"tool_use"}, []string{`{"city":"Paris"}`}, "tool_use"},
		{"text then parallel calls", [][]byte{chunkOf(`{"content":"Checking."}`, "", ""),
			chunkOf(tc("0", "call_1", "a", `{"x":`), "", ""), chunkOf(tc("0", "", "", `1}`), "", ""),
			chunkOf(tc("1", "call_2", "b", `{"y":2}`), "", ""), chunkOf(`{}`, "tool_calls", "")},
			[]string{"text", "tool_use", "tool_use"}, []string{"Checking.", `{"x":1}`, `{"y":2}`}, "tool_use"},
		{"1-based indexes", [][]byte{chunkOf(tc("1", "call_1", "a", ""), "", ""), chunkOf(tc("1", "", "", `{"x":1}`), "", ""),
			chunkOf(tc("2", "call_2", "b", ""), "", ""), chunkOf(tc("2", "", "", `{"y":2}`), "", ""), chunkOf(`{}`, "tool_calls", "")},
			[]string{"tool_use", "tool_use"}, []string{`{"x":1}`, `{"y":2}`}, "tool_use"},
		{"missing indexes", [][]byte{chunkOf(tc("", "call_1", "a", `{"x"`), "", ""), chunkOf(tc("", "", "", `:1}`), "", ""),
			chunkOf(tc("", "call_2", "b", `{}`), "", ""), chunkOf(`{}`, "tool_calls", "")},
			[]string{"tool_use", "tool_use"}, []string{`{"x":1}`, `{}`}, "tool_use"},
		{"interleaved calls", [][]byte{chunkOf(tc("0", "call_1", "a", `{"x":`), "", ""), chunkOf(tc("1", "call_2", "b", `{"y":`), "", ""),
			chunkOf(tc("0", "", "", `1}`), "", ""), chunkOf(tc("1", "", "", `2}`), "", ""), chunkOf(`{}`, "tool_calls", "")},
			[]string{"tool_use", "tool_use"}, []string{`{"x":1}`, `{"y":2}`}, "tool_use"},
		{"empty arguments", [][]byte{chunkOf(tc("0", "call_1", "now", ""), "", ""), chunkOf(`{}`, "tool_calls", "")},
			[]string{"tool_use"}, []string{`{}`}, "tool_use"},
		{"arguments of spaces", [][]byte{chunkOf(tc("0", "call_1", "now", " "), "", ""), chunkOf(`{}`, "tool_calls", "")},
			[]string{"tool_use"}, []string{` {}`}, "tool_use"},
		{"text while a call is unfinished", [][]byte{chunkOf(tc("0", "call_1", "a", `{"a":`), "", ""), chunkOf(`{"content":"hi"}`, "", ""),
			chunkOf(`{"reasoning_content":"hm"}`, "", ""), chunkOf(tc("0", "", "", `"}{"}`), "", ""), chunkOf(`{}`, "tool_calls", "")},
			[]string{"tool_use", "text", "thinking"}, []string{`{"a":"}{"}`, "hi", "hm"}, "tool_use"},
		{"content as parts", [][]byte{chunkOf(`{"content":[{"type":"thinking","thinking":[{"type":"text","text":"plan"}]},{"type":"text","text":"done"}]}`, "stop", "")},
			[]string{"thinking", "text"}, []string{"plan", "done"}, "end_turn"},
		{"no chunk at all", nil, nil, nil, "end_turn"},
		{"content filter", [][]byte{chunkOf(`{"content":"no"}`, "content_filter", "")}, []string{"text"}, []string{"no"}, "refusal"},
		{"spaced JSON", [][]byte{[]byte(`{"choices": [ {"index": 0, "delta": {"content": "ok", "reasoning": "r"}, "finish_reason" : "length"} ]}`)},
			[]string{"thinking", "text"}, []string{"r", "ok"}, "max_tokens"},
		{"escapes kept, odd escapes decoded", [][]byte{chunkOf(`{"content":"a\nb \u00e9 \"q\" \\"}`, "", ""), chunkOf(`{"content":"\ud83d\ude00 ok"}`, "", ""),
			chunkOf(`{"content":"x\'y"}`, "stop", "")},
			[]string{"text"}, []string{"a\nb é \"q\" \\😀 ok"}, "end_turn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := translateStream(t, tt.chunks, nil)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("end: %v", err)
			}
			types, contents := checkWellFormed(t, evs, true)
			if !reflect.DeepEqual(types, tt.types) || !reflect.DeepEqual(contents, tt.contents) {
				t.Errorf("blocks %v %q, want %v %q", types, contents, tt.types, tt.contents)
			}
			md := evs[len(evs)-2]
			if md["delta"].(map[string]any)["stop_reason"] != tt.stop {
				t.Errorf("stop_reason %v, want %s", md["delta"], tt.stop)
			}
			if ms := evs[0]["message"].(map[string]any); ms["model"] != "claude-x" || !strings.HasPrefix(ms["id"].(string), "msg_") {
				t.Errorf("message_start %v", ms)
			}
		})
	}
	// Usage from the last chunk that had it, as Anthropic counts it.
	evs, _ := translateStream(t, tests[0].chunks, nil)
	if u := evs[len(evs)-2]["usage"].(map[string]any); u["input_tokens"] != 18.0 || u["output_tokens"] != 9.0 || u["cache_read_input_tokens"] != 12.0 {
		t.Errorf("usage %v", u)
	}
	// A failure mid-stream is the stream's error, after what came before.
	broken := &provider.Error{Status: http.StatusBadGateway, Code: "upstream_stream_broken", Message: "broke"}
	evs, err := translateStream(t, tests[0].chunks[:2], broken)
	if !errors.Is(err, broken) || len(evs) != 3 || evs[2]["type"] != "content_block_delta" {
		t.Errorf("a broken stream: %v after %v", err, evs)
	}
}

// TestStreamFromChatProperty: whatever mix of reasoning, text, tool-call
// fragments (with every index style), usage-only and empty chunks an
// upstream sends, the translated stream is well formed and each tool
// block's input is its call's arguments.
func TestStreamFromChatProperty(t *testing.T) {
	for seed := range uint64(500) {
		r := rand.New(rand.NewPCG(seed, 7))
		style := r.IntN(3) // 0-based, 1-based, no index
		var chunks [][]byte
		type call struct{ id, args string }
		var calls []call
		var text, thinking strings.Builder
		for range r.IntN(40) {
			switch r.IntN(6) {
			case 0:
				// Thinking and text may come at any time, even between a
				// call's fragments.
				s := fmt.Sprintf("t%d ", r.IntN(100))
				thinking.WriteString(s)
				chunks = append(chunks, chunkOf(`{"reasoning_content":"`+s+`"}`, "", ""))
			case 1:
				s := fmt.Sprintf("w%d ", r.IntN(100))
				text.WriteString(s)
				chunks = append(chunks, chunkOf(`{"content":"`+s+`"}`, "", ""))
			case 2, 3:
				// A new call, or the next fragments of the last one.
				// Without indexes a fragment can only be the last call's,
				// so such upstreams send their calls one after another.
				lastOpen := len(calls) > 0 && !strings.HasSuffix(calls[len(calls)-1].args, "}")
				if len(calls) == 0 || r.IntN(3) == 0 && !(style == 2 && lastOpen) {
					calls = append(calls, call{id: fmt.Sprintf("call_%d", len(calls))})
					args := fmt.Sprintf(`{"n":%d,"s":"x`, len(calls))
					calls[len(calls)-1].args = args
					chunks = append(chunks, chunkOf(toolDelta(style, len(calls)-1, calls[len(calls)-1].id, "f", args), "", ""))
					continue
				}
				// Close the last call's JSON in a fragment or two.
				last := &calls[len(calls)-1]
				if strings.HasSuffix(last.args, "}") {
					continue
				}
				rest := `y"}`
				cut := r.IntN(len(rest) + 1)
				for _, frag := range []string{rest[:cut], rest[cut:]} {
					last.args += frag
					chunks = append(chunks, chunkOf(toolDelta(style, len(calls)-1, "", "", frag), "", ""))
				}
			case 4:
				chunks = append(chunks, usageChunk(`{"prompt_tokens":5,"completion_tokens":3}`))
			case 5:
				chunks = append(chunks, chunkOf(`{}`, "", ""))
			}
		}
		for i := range calls {
			if !strings.HasSuffix(calls[i].args, "}") {
				calls[i].args += `y"}`
				chunks = append(chunks, chunkOf(toolDelta(style, i, "", "", `y"}`), "", ""))
			}
		}
		chunks = append(chunks, chunkOf(`{}`, "stop", ""))
		evs, err := translateStream(t, chunks, nil)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("seed %d: %v", seed, err)
		}
		types, contents := checkWellFormed(t, evs, true)
		var gotCalls []string
		for i, typ := range types {
			if typ == "tool_use" {
				gotCalls = append(gotCalls, contents[i])
			}
		}
		var want []string
		for _, c := range calls {
			want = append(want, c.args)
		}
		if !reflect.DeepEqual(gotCalls, want) {
			t.Fatalf("seed %d (index style %d): tool inputs %q, want %q", seed, style, gotCalls, want)
		}
	}
}

// toolDelta is a tool-call delta in one of the index styles upstreams
// use: 0-based, 1-based, or none (a new call said by its id).
func toolDelta(style, i int, id, name, args string) string {
	var parts []string
	switch style {
	case 0:
		parts = append(parts, fmt.Sprintf(`"index":%d`, i))
	case 1:
		parts = append(parts, fmt.Sprintf(`"index":%d`, i+1))
	}
	if id != "" {
		parts = append(parts, `"id":"`+id+`","type":"function"`)
	}
	fn := fmt.Sprintf(`"arguments":%q`, args)
	if name != "" {
		fn = `"name":"` + name + `",` + fn
	}
	return `{"tool_calls":[{` + strings.Join(append(parts, `"function":{`+fn+`}`), ",") + `}]}`
}

func BenchmarkStreamFromChat(b *testing.B) {
	chunks := [][]byte{chunkOf(`{"role":"assistant","content":""}`, "", "")}
	for i := range 64 {
		chunks = append(chunks, chunkOf(fmt.Sprintf(`{"content":"token %d "}`, i), "", ""))
	}
	chunks = append(chunks, chunkOf(`{}`, "stop", ""), usageChunk(`{"prompt_tokens":30,"completion_tokens":64}`))
	b.ReportAllocs()
	for b.Loop() {
		s := StreamFromChat(&provider.SliceEvents{Events: chunks}, "claude-x")
		for {
			if _, err := s.Next(); err != nil {
				break
			}
		}
	}
}
