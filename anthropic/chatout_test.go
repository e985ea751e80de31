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
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// revUncreated is a completion or chunk decoded, its created checked to
// be now and set to 0 for comparing.
func revUncreated(t *testing.T, raw []byte) any {
	t.Helper()
	v := revJSON(t, raw)
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not an object: %s", raw)
	}
	created, err := m["created"].(json.Number).Int64()
	if now := time.Now().Unix(); err != nil || created < now-60 || created > now+1 {
		t.Fatalf("created %v is not now: %s", m["created"], raw)
	}
	m["created"] = json.Number("0")
	return m
}

// TestChatAnswerData: Messages answers from testdata/reverse/answer and
// the chat completions they become.
func TestChatAnswerData(t *testing.T) {
	for _, c := range revCases(t, "answer") {
		t.Run(c.name, func(t *testing.T) {
			model, _ := provider.StringField([]byte(c.sections["chat"]), "model")
			got, err := ChatAnswer([]byte(c.sections["messages"]), model)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.sections["chat"]; !reflect.DeepEqual(revUncreated(t, got), revJSON(t, []byte(want))) {
				t.Errorf("\n got %s\nwant %s", got, revCompact([]byte(want)))
			}
		})
	}
}

// TestChatAnswerFinishReason: every stop_reason's finish_reason.
func TestChatAnswerFinishReason(t *testing.T) {
	for stop, want := range map[string]string{"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
		"model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter", "": "stop", "a_future_reason": "stop"} {
		got, err := ChatAnswer([]byte(`{"id":"msg_1","type":"message","content":[],"stop_reason":"`+stop+`"}`), "m")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(got), `"finish_reason":"`+want+`"`) {
			t.Errorf("stop_reason %q: %s, want %s", stop, got, want)
		}
	}
}

// TestChatAnswerRefused: what is not a Messages answer is a 502.
func TestChatAnswerRefused(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{"not JSON", `{"id":`},
		{"an error object", `{"type":"error","error":{"type":"api_error","message":"x"}}`},
		{"content of the wrong type", `{"type":"message","content":"hi"}`},
		{"tool input that is not JSON", `{"type":"message","content":[{"type":"tool_use","id":"t","name":"f","input":{"a":}}]}`},
	} {
		_, err := ChatAnswer([]byte(tt.in), "m")
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Status != http.StatusBadGateway || pe.Type != "api_error" || pe.Code != "upstream_bad_reply" || pe.Kind != provider.KindTransient {
			t.Errorf("%s: %#v", tt.name, err)
		}
	}
}

// TestChatAnswerID: the chat id is the Messages id's, or random.
func TestChatAnswerID(t *testing.T) {
	ids := map[string]bool{}
	for _, in := range []string{`"id":"","`, `"`, `"id":"msg_","`} {
		got, err := ChatAnswer([]byte(`{`+in+`type":"message","content":[]}`), "m")
		if err != nil {
			t.Fatal(err)
		}
		id, _ := provider.StringField(got, "id")
		if !strings.HasPrefix(id, "chatcmpl-") || len(id) != len("chatcmpl-")+24 || ids[id] {
			t.Errorf("id %q", id)
		}
		ids[id] = true
	}
	got, _ := ChatAnswer([]byte(`{"id":"abc","type":"message","content":[]}`), "m")
	if id, _ := provider.StringField(got, "id"); id != "chatcmpl-abc" {
		t.Errorf("id %q for a Messages id without msg_", id)
	}
}

// revSSE is a Messages stream read from SSE text, as the provider reads
// it, buffered.
type revSSE struct {
	*provider.SSEReader
	closed int
}

func (r *revSSE) Close() error { r.closed++; return nil }

// revDrain reads s to its end, calling EventBuffered between chunks when
// s has it; it returns the chunks and the end.
func revDrain(t *testing.T, s provider.EventReader, buffered bool) ([][]byte, error) {
	t.Helper()
	var chunks [][]byte
	for {
		if b, ok := s.(provider.BufferedEvents); ok && buffered {
			b.EventBuffered()
		}
		data, err := s.Next()
		if err != nil {
			return chunks, err
		}
		if len(data) == 0 {
			t.Fatal("an empty event")
		}
		chunks = append(chunks, append([]byte(nil), data...))
	}
}

// TestStreamToChatData: Messages streams from testdata/reverse/stream
// and the chunks they become, with and without the usage chunk, read
// plainly and with EventBuffered asked before every chunk.
func TestStreamToChatData(t *testing.T) {
	for _, c := range revCases(t, "stream") {
		var want []string
		for line := range strings.Lines(c.sections["chat"]) {
			if line = strings.TrimSpace(line); line != "" {
				want = append(want, line)
			}
		}
		model, _ := provider.StringField([]byte(want[0]), "model")
		for _, usage := range []bool{true, false} {
			for _, buffered := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/usage=%t/buffered=%t", c.name, usage, buffered), func(t *testing.T) {
					src := &revSSE{SSEReader: provider.NewSSEReader(strings.NewReader(c.sections["messages"]))}
					s := StreamToChat(src, model, usage)
					chunks, err := revDrain(t, s, buffered)
					w := want
					if !usage && strings.Contains(w[len(w)-1], `"choices":[]`) {
						w = w[:len(w)-1]
					}
					for i, ch := range chunks {
						if i >= len(w) || !reflect.DeepEqual(revUncreated(t, ch), revJSON(t, []byte(w[i]))) {
							var all strings.Builder
							for _, ch := range chunks {
								all.WriteString(string(ch) + "\n")
							}
							t.Fatalf("chunk %d differs; got:\n%s", i, all.String())
						}
					}
					if len(chunks) != len(w) {
						t.Fatalf("%d chunks, want %d", len(chunks), len(w))
					}
					if code := strings.TrimSpace(c.sections["end"]); code == "" {
						if err != io.EOF {
							t.Fatalf("ended with %v", err)
						}
					} else {
						var pe *provider.Error
						if !errors.As(err, &pe) || pe.Code != code || pe.Status != http.StatusBadGateway || pe.Kind != provider.KindTransient {
							t.Fatalf("ended with %#v, want %s", err, code)
						}
					}
					if _, again := s.Next(); again != err {
						t.Errorf("the end %v, then %v", err, again)
					}
					s.Close()
					if src.closed != 1 {
						t.Errorf("closed %d times", src.closed)
					}
				})
			}
		}
	}
}

// revEvents is a Messages stream at hand, ending with err (io.EOF if
// nil), that says whether its next event is buffered as told.
type revEvents struct {
	events [][]byte
	err    error
	ready  func() bool
}

func (e *revEvents) Next() ([]byte, error) {
	if len(e.events) == 0 {
		if e.err == nil {
			return nil, io.EOF
		}
		return nil, e.err
	}
	d := e.events[0]
	e.events = e.events[1:]
	return d, nil
}

func (e *revEvents) Close() error { return nil }

type revBuffered struct{ *revEvents }

func (b revBuffered) EventBuffered() bool { return b.ready() }

// revStreamOf is a Messages stream with the given blocks: each a type
// (text, thinking, tool_use, redacted_thinking, server_tool_use) and its
// deltas, pings where ping says, then stop.
func revStreamOf(blocks [][]string, stop string, ping func() bool) [][]byte {
	evs := []string{`{"type":"message_start","message":{"id":"msg_abc","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":10,"cache_read_input_tokens":5,"cache_creation_input_tokens":1,"output_tokens":1}}}`}
	add := func(e string) {
		evs = append(evs, e)
		if ping != nil && ping() {
			evs = append(evs, `{"type": "ping"}`)
		}
	}
	for i, b := range blocks {
		switch b[0] {
		case "text":
			add(fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"text","text":""}}`, i))
		case "thinking":
			add(fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"thinking","thinking":"","signature":""}}`, i))
		case "tool_use", "server_tool_use":
			add(fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":%q,"id":"toolu_%d","name":"f%d","input":{}}}`, i, b[0], i, i))
		case "redacted_thinking":
			add(fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"redacted_thinking","data":"xyz"}}`, i))
		}
		for _, d := range b[1:] {
			q, _ := json.Marshal(d)
			switch b[0] {
			case "text":
				add(fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%s}}`, i, q))
			case "thinking":
				add(fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"thinking_delta","thinking":%s}}`, i, q))
			case "tool_use", "server_tool_use":
				add(fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":%s}}`, i, q))
			}
		}
		if b[0] == "thinking" {
			add(fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"signature_delta","signature":"sig"}}`, i))
		}
		add(fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, i))
	}
	add(`{"type":"message_delta","delta":{"stop_reason":"` + stop + `","stop_sequence":null},"usage":{"output_tokens":12}}`)
	evs = append(evs, `{"type":"message_stop"}`)
	out := make([][]byte, len(evs))
	for i, e := range evs {
		out[i] = []byte(e)
	}
	return out
}

// revChecked is what a chunk stream carried.
type revChecked struct {
	text, reasoning string
	calls           []string // joined arguments, by index
	names           []string
	finish          string
	usage           map[string]any
}

// revCheck reads a chunk stream and fails t unless it is well formed:
// every chunk a chat.completion.chunk of one id and the client's model;
// the role in the first chunk only; tool call indexes from 0, each new
// one the next, id and name in a call's first fragment only; exactly one
// finish_reason chunk; with includeUsage a usage chunk with empty
// choices last, without it none.
func revCheck(t *testing.T, chunks [][]byte, ended bool, includeUsage bool) revChecked {
	t.Helper()
	var out revChecked
	var text, reasoning strings.Builder
	var args []string
	finishes, id := 0, ""
	for i, data := range chunks {
		var c struct {
			ID, Object, Model string
			Choices           []struct {
				Index int
				Delta struct {
					Role             *string
					Content          *string
					ReasoningContent *string `json:"reasoning_content"`
					ToolCalls        []struct {
						Index    *int
						ID       *string
						Type     *string
						Function struct{ Name, Arguments *string }
					} `json:"tool_calls"`
				}
				FinishReason *string `json:"finish_reason"`
			}
			Usage map[string]any
		}
		if err := json.Unmarshal(data, &c); err != nil || c.Object != "chat.completion.chunk" || c.Model != "claude-x" || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Fatalf("not a chunk: %s", data)
		}
		if id == "" {
			id = c.ID
		} else if c.ID != id {
			t.Fatalf("id %s after %s", c.ID, id)
		}
		if out.usage != nil {
			t.Fatalf("a chunk after the usage chunk: %s", data)
		}
		if c.Usage != nil {
			if len(c.Choices) != 0 || !includeUsage || finishes != 1 {
				t.Fatalf("a usage chunk where none belongs: %s", data)
			}
			out.usage = c.Usage
			continue
		}
		if len(c.Choices) != 1 || c.Choices[0].Index != 0 {
			t.Fatalf("not one choice: %s", data)
		}
		ch := c.Choices[0]
		if (i == 0) != (ch.Delta.Role != nil) || ch.Delta.Role != nil && *ch.Delta.Role != "assistant" {
			t.Fatalf("chunk %d and the role: %s", i, data)
		}
		if finishes > 0 {
			t.Fatalf("a chunk after the finish: %s", data)
		}
		if ch.Delta.Content != nil {
			text.WriteString(*ch.Delta.Content)
		}
		if ch.Delta.ReasoningContent != nil {
			reasoning.WriteString(*ch.Delta.ReasoningContent)
		}
		for _, tc := range ch.Delta.ToolCalls {
			if tc.Index == nil || *tc.Index > len(args) || *tc.Index < 0 {
				t.Fatalf("tool call index %v after %d calls: %s", tc.Index, len(args), data)
			}
			first := *tc.Index == len(args)
			if first {
				if tc.ID == nil || *tc.ID == "" || tc.Function.Name == nil || *tc.Function.Name == "" || tc.Type == nil || *tc.Type != "function" {
					t.Fatalf("a call's first fragment without id, type and name: %s", data)
				}
				args = append(args, "")
				out.names = append(out.names, *tc.Function.Name)
			} else if tc.ID != nil || tc.Function.Name != nil || tc.Type != nil {
				t.Fatalf("id, type or name again in a later fragment: %s", data)
			}
			if tc.Function.Arguments != nil {
				args[*tc.Index] += *tc.Function.Arguments
			}
		}
		if ch.FinishReason != nil {
			finishes++
			out.finish = *ch.FinishReason
		}
	}
	if ended && (finishes != 1 || includeUsage != (out.usage != nil)) {
		t.Fatalf("%d finish chunks, usage %v (include_usage %t)", finishes, out.usage, includeUsage)
	}
	for i, a := range args {
		if ended && !json.Valid([]byte(a)) {
			t.Fatalf("call %d's arguments do not parse: %q", i, a)
		}
	}
	out.calls = args
	out.text, out.reasoning = text.String(), reasoning.String()
	return out
}

// TestStreamToChatProperty: any sequence of blocks, pings anywhere, read
// plainly or with EventBuffered, becomes a well-formed chunk stream that
// carries the same text, reasoning and tool input.
func TestStreamToChatProperty(t *testing.T) {
	for seed := range uint64(500) {
		r := rand.New(rand.NewPCG(seed, 7))
		var blocks [][]string
		var wantText, wantThinking string
		var wantCalls, wantNames []string
		for i := range r.IntN(9) {
			switch r.IntN(5) {
			case 0:
				b := []string{"text"}
				for range r.IntN(4) {
					s := fmt.Sprintf("w%d \"<%d>\"\n", r.IntN(50), i)
					b, wantText = append(b, s), wantText+s
				}
				blocks = append(blocks, b)
			case 1:
				b := []string{"thinking"}
				var think string
				for range r.IntN(4) {
					s := fmt.Sprintf("t%d ", r.IntN(50))
					b, think = append(b, s), think+s
				}
				if think != "" && wantThinking != "" {
					wantThinking += "\n\n"
				}
				wantThinking += think
				blocks = append(blocks, b)
			case 2:
				args := fmt.Sprintf(`{"k":%d,"v":"%s"}`, r.IntN(100), strings.Repeat("z\\\"", r.IntN(4)))
				if r.IntN(4) == 0 {
					args = ""
				}
				b := []string{"tool_use", ""}
				for rest := args; rest != ""; {
					n := min(len(rest), 1+r.IntN(6))
					b, rest = append(b, rest[:n]), rest[n:]
				}
				if args == "" {
					args = "{}"
				}
				blocks, wantCalls = append(blocks, b), append(wantCalls, args)
				wantNames = append(wantNames, fmt.Sprintf("f%d", len(blocks)-1))
			case 3:
				blocks = append(blocks, []string{"server_tool_use", `{"query":`, `"x"}`})
			case 4:
				blocks = append(blocks, []string{"redacted_thinking"})
			}
		}
		stop := []string{"end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "pause_turn"}[r.IntN(6)]
		events := revStreamOf(blocks, stop, func() bool { return r.IntN(4) == 0 })
		includeUsage, buffered := r.IntN(2) == 0, r.IntN(2) == 0
		var src provider.EventReader = &revEvents{events: events}
		if buffered {
			src = revBuffered{&revEvents{events: events, ready: func() bool { return r.IntN(3) > 0 }}}
		}
		chunks, err := revDrain(t, StreamToChat(src, "claude-x", includeUsage), buffered)
		if err != io.EOF {
			t.Fatalf("seed %d: ended with %v", seed, err)
		}
		got := revCheck(t, chunks, true, includeUsage)
		if got.text != wantText || got.reasoning != wantThinking || !reflect.DeepEqual(got.calls, wantCalls) || !reflect.DeepEqual(got.names, wantNames) ||
			got.finish != revFinishReason(stop) {
			t.Fatalf("seed %d: %q %q %q %q %s, want %q %q %q %q", seed, got.text, got.reasoning, got.calls, got.names, got.finish, wantText, wantThinking, wantCalls, wantNames)
		}
		if includeUsage && (got.usage["prompt_tokens"] != 16.0 || got.usage["completion_tokens"] != 12.0 || got.usage["total_tokens"] != 28.0 ||
			got.usage["prompt_tokens_details"].(map[string]any)["cached_tokens"] != 5.0) {
			t.Fatalf("seed %d: usage %v", seed, got.usage)
		}
		// Cut anywhere before message_stop, the stream is broken, and
		// what came before is well formed.
		cut := r.IntN(len(events) - 1)
		chunks, err = revDrain(t, StreamToChat(&revEvents{events: events[:cut]}, "claude-x", includeUsage), false)
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Code != "upstream_stream_broken" {
			t.Fatalf("seed %d: cut at %d, ended with %v", seed, cut, err)
		}
		revCheck(t, chunks, false, includeUsage)
	}
}

// TestStreamToChatUpstreamError: a failure of the Messages stream is
// passed on as it is, after the chunks before it.
func TestStreamToChatUpstreamError(t *testing.T) {
	boom := &provider.Error{Status: 502, Code: "upstream_stream_error", Message: "overloaded", Kind: provider.KindTransient}
	events := revStreamOf([][]string{{"text", "a", "b"}}, "end_turn", nil)
	chunks, err := revDrain(t, StreamToChat(&revEvents{events: events[:4], err: boom}, "claude-x", true), false)
	if err != boom || len(chunks) != 3 {
		t.Errorf("%d chunks, then %v", len(chunks), err)
	}
	// An event that is not JSON is a broken upstream.
	chunks, err = revDrain(t, StreamToChat(&revEvents{events: [][]byte{events[0], []byte(`{"type":"content_block_delta",`)}}, "claude-x", true), false)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Code != "upstream_bad_reply" || pe.Status != http.StatusBadGateway || pe.Kind != provider.KindTransient || len(chunks) != 1 {
		t.Errorf("%d chunks, then %#v", len(chunks), err)
	}
}

// TestStreamToChatOddStreams: streams that bend Anthropic's order.
func TestStreamToChatOddStreams(t *testing.T) {
	evs := func(e ...string) *revEvents {
		out := &revEvents{}
		for _, s := range e {
			out.events = append(out.events, []byte(s))
		}
		return out
	}
	// Without message_start the first chunk still carries the role, and
	// without message_delta message_stop still finishes; what follows
	// message_stop is not read.
	src := evs(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}`,
		`{"type":"some_future_event","x":1}`, `{"type":"message_stop"}`, `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"late"}}`)
	chunks, err := revDrain(t, StreamToChat(src, "claude-x", true), false)
	got := revCheck(t, chunks, err == io.EOF, true)
	if err != io.EOF || got.text != "hi" || got.finish != "stop" || len(src.events) != 1 {
		t.Errorf("%+v %v, %d events left", got, err, len(src.events))
	}
	// A tool_use whose input came whole with its start (as some
	// compatible services send it), a second message_delta, block
	// indexes out of bounds.
	src = evs(`{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":3}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{"a": [1, 2]}}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_start","index":99999999999,"content_block":{"type":"tool_use","id":"","name":"g"}}`,
		`{"type":"content_block_delta","index":99999999999,"delta":{"type":"input_json_delta","partial_json":"{\"b\":1}"}}`,
		`{"type":"content_block_delta","index":-1,"delta":{"type":"input_json_delta","partial_json":"lost"}}`,
		`{"type":"content_block_stop","index":99999999999}`,
		`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":0,"output_tokens":5}}`,
		`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":6}}`,
		`{"type":"message_stop"}`)
	chunks, err = revDrain(t, StreamToChat(src, "claude-x", true), false)
	got = revCheck(t, chunks, err == io.EOF, true)
	if err != io.EOF || !reflect.DeepEqual(got.calls, []string{`{"a": [1, 2]}`, `{"b":1}`}) || got.finish != "tool_calls" ||
		got.usage["prompt_tokens"] != 3.0 || got.usage["completion_tokens"] != 6.0 {
		t.Errorf("%+v %v", got, err)
	}
}

// TestStreamToChatUnstoppedCall: a tool_use block never stopped still
// has arguments that parse when the message finishes.
func TestStreamToChatUnstoppedCall(t *testing.T) {
	src := &revEvents{events: [][]byte{
		[]byte(`{"type":"message_start","message":{"id":"msg_1"}}`),
		[]byte(`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{}}}`),
		[]byte(`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t2","name":"g","input":{"x":1}}}`),
		[]byte(`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}`),
		[]byte(`{"type":"message_stop"}`)}}
	chunks, err := revDrain(t, StreamToChat(src, "claude-x", false), false)
	got := revCheck(t, chunks, err == io.EOF, false)
	if err != io.EOF || !reflect.DeepEqual(got.calls, []string{"{}", `{"x":1}`}) || got.finish != "tool_calls" {
		t.Errorf("%+v %v", got, err)
	}
}

// TestStreamToChatBuffered: the result tells buffered events apart only
// if its source does, and reads ahead past events that make no chunk,
// so that a relay flushes before Next would wait on the network.
func TestStreamToChatBuffered(t *testing.T) {
	if _, ok := StreamToChat(&revEvents{}, "m", false).(provider.BufferedEvents); ok {
		t.Error("a stream over unbuffered events says it is buffered")
	}
	events := revStreamOf([][]string{{"text", "a"}}, "end_turn", nil)
	// message_start, block start, delta a, block stop, message_delta, message_stop
	arrived := 3
	src := &revEvents{events: events}
	src.ready = func() bool { return len(events)-len(src.events) < arrived }
	s := StreamToChat(revBuffered{src}, "m", false)
	b := s.(provider.BufferedEvents)
	for i, want := range []bool{true, true, false} {
		if got := b.EventBuffered(); got != want {
			t.Fatalf("before chunk %d: buffered %t, want %t", i, got, want)
		}
		if i < 2 {
			if _, err := s.Next(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// content_block_stop arrives alone: it makes no chunk, and is read
	// ahead, the answer still no.
	arrived = 4
	if b.EventBuffered() || len(src.events) != 2 {
		t.Fatalf("content_block_stop alone: buffered, or not read ahead (%d left)", len(src.events))
	}
	arrived = 6
	if !b.EventBuffered() {
		t.Fatal("the finish is not at hand")
	}
	chunks, err := revDrain(t, s, true)
	if err != io.EOF || len(chunks) != 1 || !strings.Contains(string(chunks[0]), `"finish_reason":"stop"`) {
		t.Errorf("%q %v", chunks, err)
	}
}

// TestStreamToChatChunkValid: a chunk stays as it was while the next
// events are read ahead by EventBuffered.
func TestStreamToChatChunkValid(t *testing.T) {
	events := revStreamOf([][]string{{"text", "first", "second", "third"}}, "end_turn", nil)
	src := &revEvents{events: events, ready: func() bool { return true }}
	s := StreamToChat(revBuffered{src}, "m", true)
	s.Next() // role
	c, _ := s.Next()
	kept := string(c)
	for range 3 {
		s.(provider.BufferedEvents).EventBuffered()
		if string(c) != kept {
			t.Fatalf("the chunk changed to %s", c)
		}
	}
	if !strings.Contains(kept, `"content":"first"`) {
		t.Errorf("chunk %s", kept)
	}
}

func BenchmarkStreamToChat(b *testing.B) {
	deltas := []string{"text"}
	for i := range 64 {
		deltas = append(deltas, fmt.Sprintf("token %d ", i))
	}
	evs := revStreamOf([][]string{deltas}, "end_turn", nil)
	b.ReportAllocs()
	for b.Loop() {
		s := StreamToChat(&provider.SliceEvents{Events: evs}, "claude-x", true)
		for {
			if _, err := s.Next(); err != nil {
				break
			}
		}
	}
}
