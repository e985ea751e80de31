package provider

import (
	"bytes"
	"encoding/json"
)

// Usage is what an answer cost in tokens, as the upstream reported it.
type Usage struct {
	// Prompt counts the input tokens, cached ones included.
	Prompt int64
	// Completion counts the output tokens, reasoning included.
	Completion int64
	// Cached counts the input tokens served from the upstream's cache.
	Cached int64
	// Reasoning counts the output tokens spent thinking.
	Reasoning int64
}

// IsZero reports whether nothing was counted.
func (u Usage) IsZero() bool { return u == Usage{} }

type usageJSON struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	// DeepSeek's names for the cache.
	PromptCacheHitTokens int64 `json:"prompt_cache_hit_tokens"`
}

var usageKey = []byte(`"usage"`)

// UsageOf reads the "usage" member of an OpenAI completion or stream
// chunk; ok is false when it has none (or it is null).
func UsageOf(body []byte) (u Usage, ok bool) {
	// Most chunks have no usage at all: one scan rules that out.
	if !bytes.Contains(body, usageKey) {
		return Usage{}, false
	}
	raw, _ := Field(body, "usage")
	return ParseUsage(raw)
}

// ParseUsage reads an OpenAI usage object (the raw "usage" member); ok is
// false for anything else, null included.
func ParseUsage(raw []byte) (u Usage, ok bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return Usage{}, false
	}
	var j usageJSON
	if json.Unmarshal(raw, &j) != nil {
		return Usage{}, false
	}
	u = Usage{Prompt: j.PromptTokens, Completion: j.CompletionTokens, Cached: j.PromptCacheHitTokens}
	if j.PromptTokensDetails != nil && j.PromptTokensDetails.CachedTokens > 0 {
		u.Cached = j.PromptTokensDetails.CachedTokens
	}
	if j.CompletionTokensDetails != nil {
		u.Reasoning = j.CompletionTokensDetails.ReasoningTokens
	}
	return u, true
}

var emptyChoices = []byte(`"choices":[]`)

// UsageOnly reports whether a stream chunk carries nothing but usage: the
// extra chunk an upstream sends when asked for usage
// (stream_options.include_usage), with empty choices.
func UsageOnly(chunk []byte) bool {
	if !bytes.Contains(chunk, usageKey) {
		return false
	}
	if !bytes.Contains(chunk, emptyChoices) {
		raw, ok := Field(chunk, "choices")
		if ok && (len(raw) < 2 || raw[0] != '[' || len(bytes.TrimSpace(raw[1:len(raw)-1])) > 0) {
			return false
		}
	}
	_, ok := UsageOf(chunk)
	return ok
}
