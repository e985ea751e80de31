package responses

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/openai/openaitest"
	"github.com/proxycast/caddy-proxycast/provider"
)

// chatCase is a generated chat stream and what its translation must say.
type chatCase struct {
	chunks    [][]byte
	reasoning string
	text      string
	calls     []genCall
	cut       bool // the finish_reason chunk is missing
}

type genCall struct {
	id, name, args string
}

var pieces = []string{"a", "é", "中文", " ", "\n", `"`, `\`, "<b>", "\u2028", "😀", "tab\t", "x y", "0"}

func genText(rng *rand.Rand) string {
	var b strings.Builder
	for range 1 + rng.IntN(6) {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

// genCase builds a chat stream the way upstreams send them: reasoning,
// then text, then tool calls, each in pieces; tool-call indexes 0-based,
// 1-based or missing; the fragments of calls interleaved when they carry
// indexes; sometimes text after the calls; a finish_reason chunk (unless
// cut) and sometimes a usage chunk.
func genCase(rng *rand.Rand) chatCase {
	var c chatCase
	chunk := func(delta map[string]any, finish any) {
		b, _ := json.Marshal(map[string]any{"object": "chat.completion.chunk", "choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		c.chunks = append(c.chunks, b)
	}
	chunk(map[string]any{"role": "assistant", "content": ""}, nil)
	if rng.IntN(2) == 0 {
		for range 1 + rng.IntN(4) {
			s := genText(rng)
			c.reasoning += s
			chunk(map[string]any{"reasoning_content": s}, nil)
		}
	}
	if rng.IntN(3) > 0 {
		for range 1 + rng.IntN(5) {
			s := genText(rng)
			c.text += s
			chunk(map[string]any{"content": s}, nil)
		}
	}
	mode := rng.IntN(3) // 0: 0-based, 1: 1-based, 2: no index
	names := []string{"f", "g", "apply_patch"}
	type frag struct {
		call int
		args string
	}
	var frags [][]frag
	for i := range rng.IntN(4) {
		name := names[rng.IntN(len(names))]
		var args string
		if name == "apply_patch" {
			a, _ := json.Marshal(map[string]string{"input": genText(rng)})
			args = string(a)
		} else if rng.IntN(4) > 0 {
			a, _ := json.Marshal(map[string]any{"s": genText(rng), "n": rng.IntN(100), "l": []int{1, 2}})
			args = string(a)
		}
		call := genCall{id: fmt.Sprintf("call_%d", i), name: name, args: args}
		c.calls = append(c.calls, call)
		var fs []frag
		// Cut between runes: a chunk's JSON string holds whole ones.
		rest := []rune(args)
		for len(rest) > 0 {
			n := 1 + rng.IntN(len(rest))
			fs = append(fs, frag{i, string(rest[:n])})
			rest = rest[n:]
		}
		frags = append(frags, fs)
	}
	toolChunk := func(i int, first bool, args string) {
		tc := map[string]any{"function": map[string]any{"arguments": args}}
		switch mode {
		case 0:
			tc["index"] = i
		case 1:
			tc["index"] = i + 1
		}
		if first {
			tc["id"], tc["type"] = c.calls[i].id, "function"
			tc["function"].(map[string]any)["name"] = c.calls[i].name
		}
		chunk(map[string]any{"tool_calls": []any{tc}}, nil)
	}
	// Each call's first chunk names it, in order; without indexes the
	// fragments must follow their call's first chunk; with them, the
	// rest may interleave.
	var pending []frag
	for i, fs := range frags {
		first := ""
		if len(fs) > 0 {
			first, fs = fs[0].args, fs[1:]
		}
		toolChunk(i, true, first)
		if mode == 2 {
			for _, f := range fs {
				toolChunk(f.call, false, f.args)
			}
			continue
		}
		pending = append(pending, fs...)
		for len(pending) > 0 && rng.IntN(2) == 0 {
			toolChunk(pending[0].call, false, pending[0].args)
			pending = pending[1:]
		}
	}
	for _, f := range pending {
		toolChunk(f.call, false, f.args)
	}
	finish := "stop"
	if len(c.calls) > 0 {
		finish = "tool_calls"
	}
	if rng.IntN(5) == 0 {
		finish = "length"
	}
	if c.cut = rng.IntN(8) == 0; !c.cut {
		chunk(map[string]any{}, finish)
		if rng.IntN(2) == 0 {
			c.chunks = append(c.chunks, []byte(`{"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}`))
		}
	}
	return c
}

// TestStreamProperty: whatever the chat stream, its translation is a
// well-formed Responses stream (openaitest.CheckStream: sequence numbers
// from 0 by one, every item added is done, output indexes contiguous,
// texts and arguments equal to their deltas, the terminal event last and
// holding the done items), says what the upstream said (the reasoning,
// the text, every call with its name, id and arguments), and a stream
// cut before its finish_reason ends in an error, never in a completed
// response.
func TestStreamProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 2026))
	r := translated(t, `{"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"function","name":"g"},{"type":"custom","name":"apply_patch"}]}`)
	for n := range 3000 {
		c := genCase(rng)
		s := r.Stream(&provider.SliceEvents{Events: c.chunks})
		var evs []openaitest.StreamEvent
		var end error
		for {
			data, err := s.Next()
			if err != nil {
				end = err
				break
			}
			var head struct{ Type string }
			_ = json.Unmarshal(data, &head)
			evs = append(evs, openaitest.StreamEvent{Event: head.Type, Data: append([]byte(nil), data...)})
		}
		dump := func() string {
			var b strings.Builder
			for _, ch := range c.chunks {
				b.Write(ch)
				b.WriteByte('\n')
			}
			return b.String()
		}
		if c.cut {
			if errors.Is(end, io.EOF) {
				t.Fatalf("case %d: a cut stream ended as complete\n%s", n, dump())
			}
			continue
		}
		if !errors.Is(end, io.EOF) {
			t.Fatalf("case %d: %v\n%s", n, end, dump())
		}
		if err := openaitest.CheckStream(evs); err != nil {
			t.Fatalf("case %d: %v\nchunks:\n%s", n, err, dump())
		}
		var final struct {
			Response struct {
				Output []struct {
					Type, Name, Arguments, Input string
					CallID                       string `json:"call_id"`
					Summary                      []struct{ Text string }
					Content                      []struct{ Text string }
				}
			}
		}
		if err := json.Unmarshal(evs[len(evs)-1].Data, &final); err != nil {
			t.Fatal(err)
		}
		var reasoning, text string
		var calls []genCall
		for _, it := range final.Response.Output {
			switch it.Type {
			case "reasoning":
				reasoning += it.Summary[0].Text
			case "message":
				text += it.Content[0].Text
			case "function_call":
				calls = append(calls, genCall{it.CallID, it.Name, it.Arguments})
			case "custom_tool_call":
				a, _ := json.Marshal(map[string]string{"input": it.Input})
				calls = append(calls, genCall{it.CallID, it.Name, string(a)})
			}
		}
		if reasoning != c.reasoning || text != c.text {
			t.Fatalf("case %d: reasoning %q text %q, want %q %q\n%s", n, reasoning, text, c.reasoning, c.text, dump())
		}
		if len(calls) != len(c.calls) {
			t.Fatalf("case %d: %d calls, want %d\n%s", n, len(calls), len(c.calls), dump())
		}
		for i, want := range c.calls {
			got := calls[i]
			if want.args == "" {
				want.args = "{}"
			}
			var g, w any
			if got.id != want.id || got.name != want.name || json.Unmarshal([]byte(got.args), &g) != nil ||
				json.Unmarshal([]byte(want.args), &w) != nil || fmt.Sprint(g) != fmt.Sprint(w) {
				t.Fatalf("case %d: call %d is %+v, want %+v\n%s", n, i, got, want, dump())
			}
		}
	}
}
