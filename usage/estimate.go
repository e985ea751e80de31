package usage

import (
	"bytes"
	"encoding/json"
	"strings"

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
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return 0
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return 0
	}
	var n float64
	for _, k := range [...]string{"messages", "input"} {
		if msgs, ok := top[k].([]any); ok {
			n += float64(perMessage * len(msgs))
		}
	}
	return round(n + texts(doc, ""))
}

// Answer estimates the output tokens of a plain answer in format: the
// choices of a chat completion, the content of a Messages answer, the
// output of a Responses answer (whose instructions and tools are echoes
// of the request).
func Answer(format provider.Format, body []byte) int64 {
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil {
		return 0
	}
	switch format {
	case provider.FormatMessages:
		return round(texts(doc["content"], ""))
	case provider.FormatResponses:
		return round(texts(doc["output"], ""))
	}
	return round(texts(doc["choices"], ""))
}

// event is the output text of one stream event in format. Responses and
// Messages streams repeat their output in the events that end an item
// or the answer; only the deltas are counted.
func event(format provider.Format, data []byte) float64 {
	var doc map[string]any
	if json.Unmarshal(data, &doc) != nil {
		return 0
	}
	switch format {
	case provider.FormatMessages:
		switch doc["type"] {
		case "content_block_delta":
			return texts(doc["delta"], "")
		case "content_block_start":
			return texts(doc["content_block"], "")
		}
		return 0
	case provider.FormatResponses:
		if t, _ := doc["type"].(string); strings.HasSuffix(t, ".delta") {
			return texts(doc["delta"], "")
		}
		return 0
	}
	return texts(doc["choices"], "")
}

// texts is the estimated tokens of the strings in v, the value of member
// key.
func texts(v any, key string) float64 {
	switch v := v.(type) {
	case string:
		return float64(anthropic.EstimateText(v))
	case []any:
		var n float64
		for _, e := range v {
			n += texts(e, key)
		}
		return n
	case map[string]any:
		var n float64
		for k, e := range v {
			switch {
			case skipped[k]:
			case schemas[k]:
				raw, _ := json.Marshal(e)
				n += float64(anthropic.EstimateText(string(raw)))
			default:
				n += texts(e, k)
			}
		}
		return n
	}
	return 0
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

// Kept is the events' data kept, to tell how large its buffer has grown.
func (o *Output) Kept() []byte { return o.kept }
