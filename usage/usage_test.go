package usage

import (
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/anthropic"
	"github.com/proxycast/caddy-proxycast/provider"
)

func TestMeter(t *testing.T) {
	m := NewMeter()
	m.Record("qwen3-max", provider.Usage{Prompt: 10, Completion: 5, Cached: 4, Reasoning: 2}, false, time.Time{})
	m.Record("qwen3-max", provider.Usage{Prompt: 1, Completion: 1}, false, time.Time{})
	m.Record("glm-4.6", provider.Usage{Prompt: 7, Completion: 3}, true, time.Time{})
	snap := m.Snapshot()
	if got := snap["qwen3-max"]; got != (ModelUsage{Requests: 2, Prompt: 11, Completion: 6, Cached: 4, Reasoning: 2}) {
		t.Errorf("qwen3-max: %+v", got)
	}
	if got := snap["glm-4.6"]; got != (ModelUsage{Requests: 1, Prompt: 7, Completion: 3, Estimated: 1, EstimatedTokens: 10}) {
		t.Errorf("glm-4.6: %+v", got)
	}
	if got := Total(snap); got != (ModelUsage{Requests: 3, Prompt: 18, Completion: 9, Cached: 4, Reasoning: 2, Estimated: 1, EstimatedTokens: 10}) {
		t.Errorf("total: %+v", got)
	}
	snap["qwen3-max"] = ModelUsage{}
	if m.Snapshot()["qwen3-max"].Requests != 2 {
		t.Error("a snapshot is not a copy")
	}
}

func TestMeterWindow(t *testing.T) {
	day := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	m := NewMeter()
	m.Record("a", provider.Usage{Prompt: 60, Completion: 30}, false, day)
	m.Record("a", provider.Usage{Prompt: 5}, true, day)
	if got := m.Spent(day); got != 95 {
		t.Errorf("spent %d, want 95 (estimates count)", got)
	}
	next := day.AddDate(0, 0, 1)
	m.Record("a", provider.Usage{Completion: 1}, false, next)
	if m.Spent(day) != 0 || m.Spent(next) != 1 {
		t.Errorf("a new window: %d then %d", m.Spent(day), m.Spent(next))
	}

	// Restored counts add up; the stored window's spend is kept only if it
	// is the window the meter is in.
	r := NewMeter()
	r.Record("a", provider.Usage{Prompt: 2}, false, next)
	r.Restore(m.Save())
	if got := r.Spent(next); got != 3 || r.Snapshot()["a"].Requests != 4 {
		t.Errorf("restored: spent %d, %+v", got, r.Snapshot())
	}
	old := NewMeter()
	old.Record("a", provider.Usage{Prompt: 2}, false, next)
	stale := m.Save()
	stale.Window = day
	old.Restore(stale)
	if got := old.Spent(next); got != 2 {
		t.Errorf("a stale window's spend was added: %d", got)
	}
}

func tokens(s string) int64 { return int64(anthropic.EstimateText(s)) }

func TestPrompt(t *testing.T) {
	text := "Write a haiku about the sea, with the waves in it."
	sys := "You are a poet."
	chat := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[` +
		`{"role":"system","content":"` + sys + `"},{"role":"user","content":[{"type":"text","text":"` + text + `"}]}]}`
	want := tokens(sys) + tokens(text) + 2*perMessage
	if got := Prompt(provider.FormatChat, []byte(chat)); got != want {
		t.Errorf("chat: %d, want %d", got, want)
	}

	resp := `{"model":"m","instructions":"` + sys + `","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"` + text + `"}]}]}`
	want = tokens(sys) + tokens(text) + perMessage
	if got := Prompt(provider.FormatResponses, []byte(resp)); got != want {
		t.Errorf("responses: %d, want %d", got, want)
	}

	// Tool definitions cost their whole JSON; an id costs nothing.
	tools := `{"model":"m","messages":[{"role":"tool","tool_call_id":"call_0123456789abcdef","content":"4"}],` +
		`"tools":[{"type":"function","function":{"name":"add","parameters":{"type":"object"}}}]}`
	schema := `[{"type":"function","function":{"name":"add","parameters":{"type":"object"}}}]`
	want = tokens("4") + tokens(schema) + perMessage
	if got := Prompt(provider.FormatChat, []byte(tools)); got != want {
		t.Errorf("tools: %d, want %d", got, want)
	}

	msgs := `{"model":"m","max_tokens":10,"system":"` + sys + `","messages":[{"role":"user","content":"` + text + `"}]}`
	want, _ = anthropic.EstimateTokens([]byte(msgs))
	if got := Prompt(provider.FormatMessages, []byte(msgs)); got != want || got == 0 {
		t.Errorf("messages: %d, want count_tokens' %d", got, want)
	}
	for _, bad := range []string{`not json`, `{"messages":[{"content":"unended`, `[]`, ``} {
		if got := Prompt(provider.FormatChat, []byte(bad)); got != 0 {
			t.Errorf("%q: %d", bad, got)
		}
	}
	// Escaped text is read as text.
	esc := `{"messages":[{"role":"user","content":"line one\nline two \u4f60\u597d"}]}`
	if got, want := Prompt(provider.FormatChat, []byte(esc)), tokens("line one\nline two 你好")+perMessage; got != want {
		t.Errorf("escaped: %d, want %d", got, want)
	}
}

func TestAnswer(t *testing.T) {
	text := "The sea rolls in, grey and slow; gulls ride the wind."
	for _, tt := range []struct {
		format provider.Format
		body   string
	}{
		{provider.FormatChat, `{"id":"chatcmpl-123","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"` + text + `"},"finish_reason":"stop"}]}`},
		{provider.FormatMessages, `{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"` + text + `"}],"stop_reason":"end_turn"}`},
		// The instructions and tools a Responses answer echoes are not output.
		{provider.FormatResponses, `{"id":"resp_1","object":"response","status":"completed","instructions":"a long system prompt that is not output","tools":[{"type":"function","name":"f"}],` +
			`"output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"` + text + `","annotations":[]}]}]}`},
	} {
		if got := Answer(tt.format, []byte(tt.body)); got != tokens(text) {
			t.Errorf("%v: %d, want %d", tt.format, got, tokens(text))
		}
	}
}

func TestOutput(t *testing.T) {
	words := []string{"The sea", " rolls in,", " grey and", " slow."}
	whole := tokensOf(words)
	for _, tt := range []struct {
		format provider.Format
		events []string
	}{
		{provider.FormatChat, chatEvents(words)},
		{provider.FormatMessages, append(append([]string{
			`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m"}}`,
			`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`},
			deltas(words, `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%s}}`)...),
			`{"type":"content_block_stop","index":0}`, `{"type":"message_stop"}`)},
		// The done and completed events repeat the text: counted once.
		{provider.FormatResponses, append(deltas(words, `{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":%s,"sequence_number":1}`),
			`{"type":"response.output_text.done","item_id":"msg_1","text":"The sea rolls in, grey and slow."}`,
			`{"type":"response.completed","response":{"output":[{"type":"message","content":[{"type":"output_text","text":"The sea rolls in, grey and slow."}]}]}}`)},
	} {
		var o Output
		o.Reset(tt.format)
		for _, e := range tt.events {
			o.Add([]byte(e))
		}
		o.Add([]byte("[DONE]"))
		if got := o.Tokens(); got != whole {
			t.Errorf("%v: %d, want %d", tt.format, got, whole)
		}
		o.Reset(tt.format)
		if o.Tokens() != 0 {
			t.Errorf("%v: a reset output still counts", tt.format)
		}
	}

	// Past maxKept, the rest is costed at the kept part's tokens per byte.
	var o Output
	o.Reset(provider.FormatChat)
	chunk := chatEvents([]string{strings.Repeat("word ", 100)})[1]
	n := 2*maxKept/len(chunk) + 1
	for range n {
		o.Add([]byte(chunk))
	}
	per := tokens(strings.Repeat("word ", 100))
	if got, want := o.Tokens(), per*int64(n); got < want*99/100 || got > want*101/100 {
		t.Errorf("a long stream: %d tokens, want about %d", got, want)
	}
}

func tokensOf(words []string) int64 {
	var n int64
	for _, w := range words {
		n += tokens(w)
	}
	return n
}

func chatEvents(words []string) []string {
	return append([]string{`{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`},
		deltas(words, `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%s},"finish_reason":null}]}`)...)
}

func deltas(words []string, format string) []string {
	var out []string
	for _, w := range words {
		out = append(out, strings.Replace(format, "%s", `"`+w+`"`, 1))
	}
	return out
}

// BenchmarkOutput: what keeping a 64-chunk stream costs (every stream
// pays it), and estimating it (only a stream without usage does).
func BenchmarkOutput(b *testing.B) {
	var words []string
	for range 64 {
		words = append(words, " token")
	}
	events := chatEvents(words)
	var o Output
	b.Run("keep", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			o.Reset(provider.FormatChat)
			for _, e := range events {
				o.Add([]byte(e))
			}
		}
	})
	b.Run("estimate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = o.Tokens()
		}
	})
}
