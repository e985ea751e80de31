package anthropic

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

// TestChatAnswer: Messages answers as OpenAI chat completions.
func TestChatAnswer(t *testing.T) {
	usage := `"usage":{"input_tokens":10,"cache_read_input_tokens":20,"cache_creation_input_tokens":2,"output_tokens":7}`
	for _, tt := range []struct {
		name, in string
		message  string
		finish   string
	}{
		{"text", `{"id":"msg_abc","type":"message","role":"assistant","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn",` + usage + `}`,
			`{"role":"assistant","content":"Hello"}`, "stop"},
		{"thinking, text, tools", `{"id":"msg_abc","type":"message","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}],"stop_reason":"tool_use",` + usage + `}`,
			`{"role":"assistant","content":"Checking.","reasoning_content":"hmm","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}`, "tool_calls"},
		{"tools only", `{"id":"msg_abc","type":"message","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}],"stop_reason":"tool_use",` + usage + `}`,
			`{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"f","arguments":"{}"}}]}`, "tool_calls"},
		{"max tokens", `{"id":"msg_abc","type":"message","content":[{"type":"text","text":"cut"}],"stop_reason":"max_tokens",` + usage + `}`,
			`{"role":"assistant","content":"cut"}`, "length"},
		{"refusal", `{"id":"msg_abc","type":"message","content":[],"stop_reason":"refusal",` + usage + `}`,
			`{"role":"assistant","content":""}`, "content_filter"},
	} {
		got, err := ChatAnswer([]byte(tt.in), "claude-x")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		m := decodeJSON(t, got)
		ch := m["choices"].([]any)[0].(map[string]any)
		if !reflect.DeepEqual(ch["message"], decodeJSON(t, []byte(tt.message))) || ch["finish_reason"] != tt.finish ||
			m["object"] != "chat.completion" || m["id"] != "chatcmpl-abc" || m["model"] != "claude-x" {
			t.Errorf("%s: %s", tt.name, got)
		}
		u := m["usage"].(map[string]any)
		if u["prompt_tokens"] != 32.0 || u["completion_tokens"] != 7.0 || u["total_tokens"] != 39.0 || u["prompt_tokens_details"].(map[string]any)["cached_tokens"] != 20.0 {
			t.Errorf("%s: usage %v", tt.name, u)
		}
	}
	if _, err := ChatAnswer([]byte(`{"type":"error"}`), "m"); err == nil {
		t.Error("an error object translated as an answer")
	}
}

// messagesStream is a Messages stream with the given blocks: each block
// a type and its deltas.
func messagesStream(blocks [][]string, stop string) [][]byte {
	evs := [][]byte{[]byte(`{"type":"message_start","message":{"id":"msg_abc","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}`),
		[]byte(`{"type":"ping"}`)}
	for i, b := range blocks {
		switch b[0] {
		case "text":
			evs = append(evs, []byte(fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"text","text":""}}`, i)))
		case "thinking":
			evs = append(evs, []byte(fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"thinking","thinking":"","signature":""}}`, i)))
		case "tool_use":
			evs = append(evs, []byte(fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"tool_use","id":"toolu_%d","name":"f%d","input":{}}}`, i, i, i)))
		}
		for _, d := range b[1:] {
			q, _ := json.Marshal(d)
			switch b[0] {
			case "text":
				evs = append(evs, []byte(fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%s}}`, i, q)))
			case "thinking":
				evs = append(evs, []byte(fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"thinking_delta","thinking":%s}}`, i, q)))
			case "tool_use":
				evs = append(evs, []byte(fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":%s}}`, i, q)))
			}
		}
		if b[0] == "thinking" {
			evs = append(evs, []byte(fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"signature_delta","signature":"sig"}}`, i)))
		}
		evs = append(evs, []byte(fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, i)))
	}
	return append(evs, []byte(`{"type":"message_delta","delta":{"stop_reason":"`+stop+`","stop_sequence":null},"usage":{"output_tokens":12}}`),
		[]byte(`{"type":"message_stop"}`))
}

// chatStream runs events through StreamToChat and checks the chunks are
// well formed: role first, tool-call indexes from 0 by first appearance,
// each call's id and name in its first fragment only, one finish_reason,
// usage last with empty choices when asked. It returns the text,
// reasoning, calls' joined arguments and the finish reason.
func chatStream(t *testing.T, events [][]byte, end error, includeUsage bool) (text, reasoning string, calls []string, finish string, err error) {
	t.Helper()
	var src provider.EventReader = &provider.SliceEvents{Events: events}
	if end != nil {
		src = &failingEvents{SliceEvents: provider.SliceEvents{Events: events}, err: end}
	}
	s := StreamToChat(src, "claude-x", includeUsage)
	defer s.Close()
	var tb, rb strings.Builder
	var args []strings.Builder
	first, finishes, sawUsage := true, 0, false
	for {
		data, nerr := s.Next()
		if nerr != nil {
			err = nerr
			break
		}
		if sawUsage {
			t.Fatalf("a chunk after the usage chunk: %s", data)
		}
		var c struct {
			ID, Object, Model string
			Choices           []struct {
				Delta struct {
					Role             string
					Content          *string
					ReasoningContent string `json:"reasoning_content"`
					ToolCalls        []struct {
						Index    *int
						ID       string
						Function struct{ Name, Arguments string }
					} `json:"tool_calls"`
				}
				FinishReason *string `json:"finish_reason"`
			}
			Usage map[string]any
		}
		if jerr := json.Unmarshal(data, &c); jerr != nil || c.Object != "chat.completion.chunk" || c.Model != "claude-x" || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Fatalf("not a chunk: %s", data)
		}
		if c.Usage != nil {
			if len(c.Choices) != 0 || !includeUsage {
				t.Fatalf("usage where it does not belong: %s", data)
			}
			sawUsage = true
			continue
		}
		if len(c.Choices) != 1 {
			t.Fatalf("chunk with %d choices: %s", len(c.Choices), data)
		}
		ch := c.Choices[0]
		if first != (ch.Delta.Role == "assistant") {
			t.Fatalf("the role in the wrong chunk: %s", data)
		}
		first = false
		if ch.Delta.Content != nil {
			tb.WriteString(*ch.Delta.Content)
		}
		rb.WriteString(ch.Delta.ReasoningContent)
		for _, tc := range ch.Delta.ToolCalls {
			if tc.Index == nil || *tc.Index > len(args) {
				t.Fatalf("tool call index %v after %d calls: %s", tc.Index, len(args), data)
			}
			if *tc.Index == len(args) {
				if tc.ID == "" || tc.Function.Name == "" {
					t.Fatalf("a call's first fragment without id and name: %s", data)
				}
				args = append(args, strings.Builder{})
			} else if tc.ID != "" || tc.Function.Name != "" {
				t.Fatalf("id or name again in a later fragment: %s", data)
			}
			args[*tc.Index].WriteString(tc.Function.Arguments)
		}
		if ch.FinishReason != nil {
			finishes++
			finish = *ch.FinishReason
		}
	}
	if err == io.EOF && (finishes != 1 || includeUsage != sawUsage) {
		t.Fatalf("%d finish chunks, usage %t", finishes, sawUsage)
	}
	for _, a := range args {
		calls = append(calls, a.String())
	}
	return tb.String(), rb.String(), calls, finish, err
}

// TestStreamToChat: Anthropic streams as OpenAI chunk streams.
func TestStreamToChat(t *testing.T) {
	text, reasoning, calls, finish, err := chatStream(t, messagesStream([][]string{{"thinking", "hm", "m"}, {"text", "Hel", "lo"},
		{"tool_use", "", `{"a":`, `1}`}, {"tool_use", `{}`}}, "tool_use"), nil, true)
	if err != io.EOF || text != "Hello" || reasoning != "hmm" || !reflect.DeepEqual(calls, []string{`{"a":1}`, `{}`}) || finish != "tool_calls" {
		t.Errorf("%q %q %q %q %v", text, reasoning, calls, finish, err)
	}
	// The usage chunk counts everything Anthropic reported.
	s := StreamToChat(&provider.SliceEvents{Events: messagesStream([][]string{{"text", "x"}}, "end_turn")}, "claude-x", true)
	var last []byte
	for {
		d, err := s.Next()
		if err != nil {
			break
		}
		last = append(last[:0], d...)
	}
	if u := decodeJSON(t, last)["usage"].(map[string]any); u["prompt_tokens"] != 15.0 || u["completion_tokens"] != 12.0 {
		t.Errorf("usage %v", u)
	}
	// Without message_stop the stream broke; an upstream error passes.
	evs := messagesStream([][]string{{"text", "x"}}, "end_turn")
	if _, _, _, _, err := chatStream(t, evs[:len(evs)-1], nil, false); err == nil || err == io.EOF {
		t.Errorf("a stream without message_stop ended with %v", err)
	}
	boom := &provider.Error{Status: 502, Code: "upstream_stream_error", Message: "overloaded"}
	if _, _, _, _, err := chatStream(t, evs[:4], boom, false); !errors.Is(err, boom) {
		t.Errorf("the upstream's error became %v", err)
	}
}

// TestStreamToChatProperty: any sequence of blocks becomes a well-formed
// chunk stream carrying the same text, reasoning and tool input.
func TestStreamToChatProperty(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 11))
		var blocks [][]string
		var wantText, wantThinking string
		var wantCalls []string
		for range r.IntN(8) {
			switch r.IntN(3) {
			case 0:
				b := []string{"text"}
				for range r.IntN(4) {
					s := fmt.Sprintf("w%d ", r.IntN(50))
					b, wantText = append(b, s), wantText+s
				}
				blocks = append(blocks, b)
			case 1:
				b := []string{"thinking"}
				for range r.IntN(4) {
					s := fmt.Sprintf("t%d ", r.IntN(50))
					b, wantThinking = append(b, s), wantThinking+s
				}
				blocks = append(blocks, b)
			case 2:
				args := fmt.Sprintf(`{"k":%d,"v":"%s"}`, r.IntN(100), strings.Repeat("z", r.IntN(10)))
				b := []string{"tool_use", ""}
				for rest := args; rest != ""; {
					n := min(len(rest), 1+r.IntN(6))
					b, rest = append(b, rest[:n]), rest[n:]
				}
				blocks, wantCalls = append(blocks, b), append(wantCalls, args)
			}
		}
		text, thinking, calls, _, err := chatStream(t, messagesStream(blocks, "end_turn"), nil, r.IntN(2) == 0)
		if err != io.EOF || text != wantText || thinking != wantThinking || !reflect.DeepEqual(calls, wantCalls) {
			t.Fatalf("seed %d: %q %q %q %v, want %q %q %q", seed, text, thinking, calls, err, wantText, wantThinking, wantCalls)
		}
		for i, c := range calls {
			if !json.Valid([]byte(c)) {
				t.Fatalf("seed %d: call %d's arguments do not parse: %q", seed, i, c)
			}
		}
	}
}

func BenchmarkStreamToChat(b *testing.B) {
	deltas := []string{"text"}
	for i := range 64 {
		deltas = append(deltas, fmt.Sprintf("token %d ", i))
	}
	evs := messagesStream([][]string{deltas}, "end_turn")
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
