package usage

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"

	"github.com/proxycast/caddy-proxycast/anthropic"
	"github.com/proxycast/caddy-proxycast/provider"
)

// Estimates stand in for the usage an upstream does not report, so that
// what such an answer cost is counted (and marked as estimated) rather
// than lost, and a token budget cannot be spent for free through an
// upstream that never reports. The text of the prompt and of the answer
// is costed with the tokenizer estimate behind count_tokens
// (anthropic.EstimateText): the prompt's messages, instructions and tool
// definitions; the answer's text, reasoning and tool calls. Ids, roles,
// types and other bookkeeping are left out; images and files in chat and
// Responses bodies are not counted (in Messages bodies they are, as
// count_tokens counts them).

// perMessage is the tokens a chat message costs beyond its text: the
// role and the separators around it, in OpenAI's counting rule.
const perMessage = 3

// skipped are members whose strings are bookkeeping, not text the model
// reads or writes.
var skipped = map[string]bool{
	"model": true, "role": true, "type": true, "id": true, "object": true, "status": true,
	"finish_reason": true, "stop_reason": true, "call_id": true, "tool_call_id": true,
	"tool_use_id": true, "item_id": true, "response_id": true, "previous_response_id": true,
	"signature": true, "encrypted_content": true, "logprobs": true, "system_fingerprint": true,
	"service_tier": true, "user": true, "metadata": true, "prompt_cache_key": true,
	"safety_identifier": true, "media_type": true, "url": true, "image_url": true,
	"file_data": true, "file_id": true, "detail": true, "format": true, "stream_options": true,
	"reasoning_effort": true, "verbosity": true, "truncation": true, "include": true,
	"tool_choice": true, "response_format": true,
}

// schemas are members that hold tool definitions, whose whole JSON the
// model reads.
var schemas = map[string]bool{"tools": true, "functions": true}

// Prompt estimates the input tokens of a request body in format.
func Prompt(format provider.Format, body []byte) int64 {
	if format == provider.FormatMessages {
		if n, err := anthropic.EstimateTokens(body); err == nil {
			return n
		}
	}
	var n float64
	i := skipSpace(body, 0)
	end := provider.ScanObject(body, i, func(_ int, key []byte, vs int) int {
		k := string(key)
		switch {
		case skipped[k]:
			return provider.SkipValue(body, vs)
		case schemas[k]:
			e := provider.SkipValue(body, vs)
			if e > vs {
				n += float64(anthropic.EstimateText(string(body[vs:e])))
			}
			return e
		case k == "messages" || k == "input":
			if body[vs] == '[' {
				return provider.ScanArray(body, vs, func(_, es int) int {
					n += perMessage
					t, e := texts(body, es)
					n += t
					return e
				})
			}
		}
		t, e := texts(body, vs)
		n += t
		return e
	})
	if end < 0 {
		return 0
	}
	return round(n)
}

// Answer estimates the output tokens of a plain answer in format: the
// choices of a chat completion, the content of a Messages answer, the
// output of a Responses answer (whose instructions and tools are echoes
// of the request).
func Answer(format provider.Format, body []byte) int64 {
	member := "choices"
	switch format {
	case provider.FormatMessages:
		member = "content"
	case provider.FormatResponses:
		member = "output"
	}
	return round(fieldTexts(body, member))
}

// member_ is the estimated tokens of the strings in the top-level member
// key of doc.
func fieldTexts(doc []byte, key string) float64 {
	v, ok := provider.Field(doc, key)
	if !ok {
		return 0
	}
	n, _ := texts(v, 0)
	return n
}

// event is the output text of one stream event in format. Responses and
// Messages streams repeat their output in the events that end an item
// or the answer; only the deltas are counted.
func event(format provider.Format, data []byte) float64 {
	switch format {
	case provider.FormatMessages:
		switch typ, _ := provider.StringField(data, "type"); typ {
		case "content_block_delta":
			return fieldTexts(data, "delta")
		case "content_block_start":
			return fieldTexts(data, "content_block")
		}
		return 0
	case provider.FormatResponses:
		if typ, _ := provider.StringField(data, "type"); strings.HasSuffix(typ, ".delta") {
			return fieldTexts(data, "delta")
		}
		return 0
	}
	return fieldTexts(data, "choices")
}

// texts is the estimated tokens of the strings in the JSON value at b[i]
// (but those of bookkeeping members), and where the value ends (-1 for
// JSON that is not well formed).
func texts(b []byte, i int) (float64, int) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return 0, -1
	}
	var n float64
	switch b[i] {
	case '"':
		e := provider.SkipValue(b, i)
		if e < 0 {
			return 0, -1
		}
		raw := b[i+1 : e-1]
		if bytes.IndexByte(raw, '\\') < 0 {
			return float64(anthropic.EstimateText(string(raw))), e
		}
		var s string
		if json.Unmarshal(b[i:e], &s) != nil {
			return 0, e
		}
		return float64(anthropic.EstimateText(s)), e
	case '{':
		e := provider.ScanObject(b, i, func(_ int, key []byte, vs int) int {
			if skipped[string(key)] {
				return provider.SkipValue(b, vs)
			}
			t, e := texts(b, vs)
			n += t
			return e
		})
		return n, e
	case '[':
		e := provider.ScanArray(b, i, func(_, vs int) int {
			t, e := texts(b, vs)
			n += t
			return e
		})
		return n, e
	}
	return 0, provider.SkipValue(b, i)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func round(f float64) int64 { return int64(f + 0.5) }

// maxKept bounds the events an Output keeps of one stream; the rest is
// estimated from the kept part's tokens per byte.
const maxKept = 1 << 20

// An Output keeps a stream's events, to estimate what it cost should it
// end without reporting its usage. Keeping is a copy; estimating, the
// costly part, happens only then.
type Output struct {
	format provider.Format
	kept   []byte
	ends   []int // where each kept event ends in kept
	seen   int64 // bytes of every event, kept or not
}

// Reset readies o for a stream in format, keeping its buffers.
func (o *Output) Reset(format provider.Format) {
	o.format, o.kept, o.ends, o.seen = format, o.kept[:0], o.ends[:0], 0
}

// Add keeps one event's data.
func (o *Output) Add(data []byte) {
	o.seen += int64(len(data))
	if len(o.kept)+len(data) <= maxKept {
		o.kept = append(o.kept, data...)
		o.ends = append(o.ends, len(o.kept))
	}
}

// Tokens estimates the output tokens of the events added.
func (o *Output) Tokens() int64 {
	var n float64
	start := 0
	for _, end := range o.ends {
		if data := bytes.TrimSpace(o.kept[start:end]); len(data) > 0 && data[0] == '{' {
			n += event(o.format, data)
		}
		start = end
	}
	if kept := int64(len(o.kept)); kept > 0 && o.seen > kept {
		n *= float64(o.seen) / float64(kept)
	}
	return round(n)
}

var outputs = sync.Pool{New: func() any { return new(Output) }}

// NewOutput is an Output for a stream in format, from a pool: give it back
// with Release once the stream is done.
func NewOutput(format provider.Format) *Output {
	o := outputs.Get().(*Output)
	o.Reset(format)
	return o
}

// Release gives o back to the pool; it must not be used after. A buffer
// grown large is left to the collector.
func (o *Output) Release() {
	if cap(o.kept) <= maxKept {
		outputs.Put(o)
	}
}
