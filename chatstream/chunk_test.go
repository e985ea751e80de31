package chatstream

import (
	"bytes"
	"encoding/json"
	"testing"
)

// referenceChunk reads a chunk with encoding/json, member names matched
// exactly and the last of duplicates winning, as readChunk should.
func referenceChunk(data []byte) (c chunk) {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return c
	}
	c.usage = top["usage"]
	var choices []json.RawMessage
	if json.Unmarshal(top["choices"], &choices) != nil || len(choices) == 0 {
		return c
	}
	var choice map[string]json.RawMessage
	if json.Unmarshal(choices[0], &choice) != nil || choice == nil {
		return c
	}
	c.choice = true
	c.finishReason = choice["finish_reason"]
	var delta map[string]json.RawMessage
	if json.Unmarshal(choice["delta"], &delta) == nil {
		c.content, c.reasoningContent = delta["content"], delta["reasoning_content"]
		c.reasoning, c.toolCalls = delta["reasoning"], delta["tool_calls"]
	}
	return c
}

func sameChunk(a, b chunk) bool {
	return a.choice == b.choice && bytes.Equal(a.usage, b.usage) &&
		bytes.Equal(a.content, b.content) && bytes.Equal(a.reasoningContent, b.reasoningContent) &&
		bytes.Equal(a.reasoning, b.reasoning) && bytes.Equal(a.toolCalls, b.toolCalls) &&
		bytes.Equal(a.finishReason, b.finishReason)
}

var chunkSeeds = []string{
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}`,
	`{"choices":[{"delta":{"role":"assistant","content":""}}]}`,
	`{"choices":[{"delta":{"reasoning_content":"th\"ink\\"}}]}`,
	`{"choices":[{"delta":{"reasoning":"r"}}]}`,
	`{"choices":[{"delta":{"content":[{"type":"text","text":"a"}]}}]}`,
	`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"f","arguments":"{\"a\":"}}]}}]}`,
	`{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`,
	`{"choices":[],"usage":{"prompt_tokens":1}}`,
	` { "choices" : [ { "delta" : { "content" : "sp" } , "finish_reason" : "length" } , {"delta":{"content":"second"}} ] } `,
	`{"choices":[{"delta":{"content":"a"}}],"choices":[{"delta":{"content":"b"}}]}`,
	`{"choices":[{"delta":{"content":"a"}}],"choices":null}`,
	`{"choices":[{"delta":{"content":"a"},"delta":{"reasoning":"b"}}]}`,
	`{"choices":[{"delta":{"content":"a"},"delta":7}]}`,
	`{"ch\u006fices":[{"d\u0065lta":{"c\u006fntent":"esc"}}]}`,
	`{"choices":["x",{"delta":{"content":"not first"}}]}`,
	`{"choices":[{"delta":{"content":"\u2028\\\"}"}}],"model":"]}"}`,
	`{"a":{"choices":[{"delta":{"content":"nested"}}]},"b":[{"choices":1}]}`,
	`[{"choices":[{"delta":{"content":"array"}}]}]`,
	`{}`,
}

func TestReadChunk(t *testing.T) {
	for _, s := range chunkSeeds {
		if got, want := readChunk([]byte(s)), referenceChunk([]byte(s)); !sameChunk(got, want) {
			t.Errorf("readChunk(%s) = %+v, want %+v", s, got, want)
		}
	}
	if c := readChunk([]byte(chunkSeeds[0])); string(c.content) != `"hi"` || string(c.finishReason) != "null" || string(c.usage) != "null" {
		t.Errorf("readChunk of a text chunk = %+v", c)
	}
}

func FuzzReadChunk(f *testing.F) {
	for _, s := range chunkSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		if got, want := readChunk(data), referenceChunk(data); !sameChunk(got, want) {
			t.Fatalf("readChunk(%s) = %+v, want %+v", data, got, want)
		}
	})
}

func BenchmarkReadChunk(b *testing.B) {
	data := []byte(chunkSeeds[0])
	for b.Loop() {
		readChunk(data)
	}
}
