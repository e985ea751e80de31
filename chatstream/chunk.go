package chatstream

import "github.com/proxycast/caddy-proxycast/provider"

// chunk is what a Decoder reads of one chat.completion.chunk: raw JSON
// values, nil where the member is missing.
type chunk struct {
	usage                     []byte
	choice                    bool // the first choice is an object
	content, reasoningContent []byte
	reasoning, toolCalls      []byte
	finishReason              []byte
}

// readChunk reads a chunk in one pass over its bytes, descending into the
// first choice and its delta in place: a stream's chunks are most of what
// a translator reads, and skipping each member to look inside it again
// cost more than the rest of the translation. As with provider.Field, the
// last of duplicate members wins.
func readChunk(data []byte) (c chunk) {
	i := 0
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	provider.ScanObject(data, i, func(_ int, key []byte, vs int) int {
		switch {
		case provider.KeyIs(key, "choices"):
			return c.readChoices(data, vs)
		case provider.KeyIs(key, "usage"):
			ve := provider.SkipValue(data, vs)
			if ve >= 0 {
				c.usage = data[vs:ve]
			}
			return ve
		}
		return provider.SkipValue(data, vs)
	})
	return c
}

func (c *chunk) readChoices(data []byte, vs int) int {
	// A later "choices" member replaces an earlier one.
	*c = chunk{usage: c.usage}
	if vs >= len(data) || data[vs] != '[' {
		return provider.SkipValue(data, vs)
	}
	return provider.ScanArray(data, vs, func(n, es int) int {
		if n > 0 || data[es] != '{' {
			return provider.SkipValue(data, es)
		}
		c.choice = true
		return provider.ScanObject(data, es, func(_ int, key []byte, vs int) int {
			switch {
			case provider.KeyIs(key, "delta"):
				return c.readDelta(data, vs)
			case provider.KeyIs(key, "finish_reason"):
				return span(data, vs, &c.finishReason)
			}
			return provider.SkipValue(data, vs)
		})
	})
}

func (c *chunk) readDelta(data []byte, vs int) int {
	c.content, c.reasoningContent, c.reasoning, c.toolCalls = nil, nil, nil, nil
	if vs >= len(data) || data[vs] != '{' {
		return provider.SkipValue(data, vs)
	}
	return provider.ScanObject(data, vs, func(_ int, key []byte, vs int) int {
		switch {
		case provider.KeyIs(key, "content"):
			return span(data, vs, &c.content)
		case provider.KeyIs(key, "reasoning_content"):
			return span(data, vs, &c.reasoningContent)
		case provider.KeyIs(key, "reasoning"):
			return span(data, vs, &c.reasoning)
		case provider.KeyIs(key, "tool_calls"):
			return span(data, vs, &c.toolCalls)
		}
		return provider.SkipValue(data, vs)
	})
}

// span sets *dst to the value at data[vs] and returns its end.
func span(data []byte, vs int, dst *[]byte) int {
	ve := provider.SkipValue(data, vs)
	if ve >= 0 {
		*dst = data[vs:ve]
	}
	return ve
}
