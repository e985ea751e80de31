package responses

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

// drain reads a translated stream to its end: the events' data, and the
// error that ended it (nil for io.EOF).
func drain(t *testing.T, r *Request, chunks ...string) ([]map[string]any, error) {
	t.Helper()
	in := make([][]byte, len(chunks))
	for i, c := range chunks {
		in[i] = []byte(c)
	}
	s := r.Stream(&provider.SliceEvents{Events: in})
	defer s.Close()
	var out []map[string]any
	for {
		data, err := s.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		var ev map[string]any
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatalf("event is not JSON: %s", data)
		}
		if !strings.HasPrefix(string(data), `{"type":"`+ev["type"].(string)+`","sequence_number":`) {
			t.Fatalf("event does not begin with its type and sequence number: %s", data)
		}
		out = append(out, ev)
	}
}

func types(evs []map[string]any) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e["type"].(string))
	}
	return out
}

func translated(t *testing.T, body string) *Request {
	t.Helper()
	r, err := ChatRequest([]byte(body), "up", "asked")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const (
	roleChunk = `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`
	stopChunk = `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`
)

// TestStreamEvents: the event sequence of a text answer, and of calls
// that come with no arguments or interleaved.
func TestStreamEvents(t *testing.T) {
	r := translated(t, `{"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"function","name":"g"}]}`)
	evs, err := drain(t, r, roleChunk, `{"choices":[{"index":0,"delta":{"content":"he"}}]}`, `{"choices":[{"index":0,"delta":{"content":"llo"}}]}`, stopChunk,
		`{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added response.output_text.delta response.output_text.delta response.output_text.done response.content_part.done response.output_item.done response.completed"
	if got := strings.Join(types(evs), " "); got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}
	last := evs[len(evs)-1]["response"].(map[string]any)
	if u := last["usage"].(map[string]any); u["input_tokens"] != 7.0 || u["output_tokens"] != 2.0 || u["total_tokens"] != 9.0 {
		t.Errorf("usage %v", u)
	}
	if last["model"] != "asked" || last["status"] != "completed" {
		t.Errorf("terminal response %v", last)
	}

	// g's fragments come while f's arguments are unfinished, and f takes
	// none at all: each call is one item, in order, whose arguments parse.
	evs, err = drain(t, r,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_f","function":{"name":"f","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_g","function":{"name":"g","arguments":"{\"a\""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":":[1,2]}"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	var calls []map[string]any
	for _, e := range evs {
		if e["type"] == "response.output_item.done" {
			calls = append(calls, e["item"].(map[string]any))
		}
	}
	if len(calls) != 2 || calls[0]["name"] != "f" || calls[0]["arguments"] != "{}" || calls[0]["call_id"] != "call_f" ||
		calls[1]["name"] != "g" || calls[1]["arguments"] != `{"a":[1,2]}` {
		t.Fatalf("calls %v", calls)
	}
}

// TestStreamNamespace: a call of a tool that came in a namespace says
// its namespace, in the added and the done item.
func TestStreamNamespace(t *testing.T) {
	r := translated(t, `{"model":"m","input":"x","tools":[{"type":"namespace","name":"multi_agent_v1","tools":[{"type":"function","name":"spawn_agent"}]}]}`)
	evs, err := drain(t, r, `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"spawn_agent","arguments":"{}"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if item, ok := e["item"].(map[string]any); ok && item["type"] == "function_call" {
			if item["namespace"] != "multi_agent_v1" || item["name"] != "spawn_agent" {
				t.Errorf("%s: %v", e["type"], item)
			}
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d function_call items in added and done events, want 2", n)
	}
}

// TestStreamIncomplete: a stream cut for length ends with
// response.incomplete, its message item incomplete.
func TestStreamIncomplete(t *testing.T) {
	evs, err := drain(t, translated(t, `{"model":"m","input":"x","max_output_tokens":16}`), roleChunk,
		`{"choices":[{"index":0,"delta":{"content":"abc"}}]}`, `{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	resp := last["response"].(map[string]any)
	if last["type"] != "response.incomplete" || resp["status"] != "incomplete" ||
		resp["incomplete_details"].(map[string]any)["reason"] != "max_output_tokens" || resp["max_output_tokens"] != 16.0 {
		t.Fatalf("terminal event %v", last)
	}
	if item := resp["output"].([]any)[0].(map[string]any); item["status"] != "incomplete" {
		t.Errorf("message item %v", item)
	}
}

// TestStreamBroken: a chat stream that ends before its finish_reason is
// a failure, not a completed response; an upstream's failure is passed
// on as it is.
func TestStreamBroken(t *testing.T) {
	r := translated(t, `{"model":"m","input":"x"}`)
	evs, err := drain(t, r, roleChunk, `{"choices":[{"index":0,"delta":{"content":"ab"}}]}`)
	if pe, ok := err.(*provider.Error); !ok || pe.Status != 502 || !strings.Contains(pe.Message, "finish_reason") {
		t.Fatalf("err = %v", err)
	}
	for _, e := range evs {
		if e["type"] == "response.completed" {
			t.Fatal("a cut stream was completed")
		}
	}
	if _, err := drain(t, r); err == nil {
		t.Error("an empty stream was completed")
	}

	boom := &provider.Error{Status: 502, Code: "upstream_stream_error", Message: "boom"}
	s := r.Stream(&failing{events: [][]byte{[]byte(roleChunk)}, err: boom})
	for {
		_, err := s.Next()
		if err != nil {
			if err != boom {
				t.Fatalf("err = %v, want the upstream's", err)
			}
			break
		}
	}
}

type failing struct {
	events [][]byte
	err    error
}

func (f *failing) Next() ([]byte, error) {
	if len(f.events) == 0 {
		return nil, f.err
	}
	ev := f.events[0]
	f.events = f.events[1:]
	return ev, nil
}

func (f *failing) Close() error { return nil }

// TestStreamReasoning: reasoning streams as summary text before the
// message.
func TestStreamReasoning(t *testing.T) {
	evs, err := drain(t, translated(t, `{"model":"m","input":"x","reasoning":{"effort":"high"}}`),
		`{"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"let me "}}]}`,
		`{"choices":[{"index":0,"delta":{"reasoning_content":"think"}}]}`,
		`{"choices":[{"index":0,"delta":{"content":"42"}}]}`, stopChunk)
	if err != nil {
		t.Fatal(err)
	}
	want := "response.created response.in_progress response.output_item.added response.reasoning_summary_part.added response.reasoning_summary_text.delta response.reasoning_summary_text.delta response.reasoning_summary_text.done response.reasoning_summary_part.done response.output_item.done response.output_item.added response.content_part.added response.output_text.delta response.output_text.done response.content_part.done response.output_item.done response.completed"
	if got := strings.Join(types(evs), " "); got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}
	if evs[6]["text"] != "let me think" || evs[9]["output_index"] != 1.0 {
		t.Errorf("summary done %v, message added %v", evs[6], evs[9])
	}
}

// BenchmarkStream: a 64-chunk chat stream into Responses events, and its
// request, as the bench's responses64 scenario sends it.
func BenchmarkStream(b *testing.B) {
	chunks := [][]byte{[]byte(roleChunk)}
	for i := range 64 {
		chunks = append(chunks, []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok`+strconv.Itoa(i)+` "},"finish_reason":null}]}`))
	}
	chunks = append(chunks, []byte(stopChunk), []byte(`{"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":64,"total_tokens":94}}`))
	body := []byte(`{"model":"qwen3-max","max_output_tokens":64,"input":"hello","stream":true,"store":false}`)
	b.ReportAllocs()
	for b.Loop() {
		r, err := ChatRequest(body, "qwen3-max", "qwen3-max")
		if err != nil {
			b.Fatal(err)
		}
		s := r.Stream(&provider.SliceEvents{Events: chunks})
		for {
			if _, err := s.Next(); err != nil {
				break
			}
		}
	}
}
