package openaitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Timing of SlowStream.
const (
	slowTick  = 50 * time.Millisecond
	slowLimit = 30 * time.Second
)

// chunk builds one chat.completion.chunk; with usage on it carries
// "usage":null as OpenAI's chunks do when include_usage is set.
func (c *call) chunk(delta map[string]any, finish any, usageOn bool) map[string]any {
	m := map[string]any{
		"id":                 c.id,
		"object":             "chat.completion.chunk",
		"created":            c.created,
		"model":              c.req.model,
		"system_fingerprint": systemFingerprint,
		"choices": []any{map[string]any{
			"index":         0,
			"delta":         delta,
			"logprobs":      nil,
			"finish_reason": finish,
		}},
	}
	if usageOn {
		m["usage"] = nil
	}
	return m
}

// events are the chunks of an answer up to and with its finish chunk.
func (c *call) events(ans answer, mode ToolIndexMode, usageOn bool) []map[string]any {
	var evs []map[string]any
	if ans.reasoning != "" {
		evs = append(evs, c.chunk(map[string]any{"role": "assistant", "content": nil, "reasoning_content": ""}, nil, usageOn))
		for _, p := range split(ans.reasoning, 2, 16) {
			evs = append(evs, c.chunk(map[string]any{"content": nil, "reasoning_content": p}, nil, usageOn))
		}
	}
	if len(ans.calls) == 0 {
		if len(evs) == 0 {
			evs = append(evs, c.chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil, usageOn))
		}
		for _, p := range split(ans.text, 3, 16) {
			evs = append(evs, c.chunk(map[string]any{"content": p}, nil, usageOn))
		}
		return append(evs, c.chunk(map[string]any{}, "stop", usageOn))
	}
	for i, tc := range ans.calls {
		head := map[string]any{
			"id":       tc.id,
			"type":     "function",
			"function": map[string]any{"name": tc.name, "arguments": ""},
		}
		setIndex(head, i, mode)
		delta := map[string]any{"tool_calls": []any{head}}
		if i == 0 && ans.reasoning == "" {
			delta["role"] = "assistant"
			delta["content"] = nil
			delta["refusal"] = nil
		}
		evs = append(evs, c.chunk(delta, nil, usageOn))
		for _, frag := range split(tc.args, 2, 8) {
			part := map[string]any{"function": map[string]any{"arguments": frag}}
			setIndex(part, i, mode)
			evs = append(evs, c.chunk(map[string]any{"tool_calls": []any{part}}, nil, usageOn))
		}
	}
	return append(evs, c.chunk(map[string]any{}, "tool_calls", usageOn))
}

// setIndex numbers a tool-call delta as mode says.
func setIndex(m map[string]any, i int, mode ToolIndexMode) {
	switch mode {
	case ToolIndexMissing:
	case ToolIndexOneBased:
		m["index"] = i + 1
	default:
		m["index"] = i
	}
}

// split cuts text into at least minParts parts (when it has that many
// runes) of at most maxSize runes, so that a client must join deltas.
func split(text string, minParts, maxSize int) []string {
	r := []rune(text)
	n := max(minParts, (len(r)+maxSize-1)/maxSize)
	size := max(1, (len(r)+n-1)/n)
	var out []string
	for len(r) > 0 {
		k := min(size, len(r))
		out = append(out, string(r[:k]))
		r = r[k:]
	}
	return out
}

// beginStream logs the call and sends the headers of an event stream
// that behavior b shapes.
func (c *call) beginStream(b Behavior) *http.ResponseController {
	outcome := "ok"
	if b != Normal {
		outcome = "behavior " + b.String()
	}
	c.finish(http.StatusOK, outcome)
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	c.w.WriteHeader(http.StatusOK)
	return http.NewResponseController(c.w)
}

// stream answers as server-sent events, shaped by b.
func (c *call) stream(b Behavior, ans answer) {
	rc := c.beginStream(b)

	s := c.s
	s.mu.Lock()
	prefix := "data: "
	if s.noSpace {
		prefix = "data:"
	}
	mode := s.toolIndex
	s.mu.Unlock()
	usageOn := c.req.includeUsage && !c.s.omitsUsage()

	ctx := c.r.Context()
	gone := c.gone
	send := func(v any) bool {
		if ctx.Err() != nil {
			gone()
			return false
		}
		var data []byte
		if str, ok := v.(string); ok {
			data = []byte(str)
		} else {
			data, _ = json.Marshal(v)
		}
		line := append(append([]byte(prefix), data...), "\n\n"...)
		if _, err := c.w.Write(line); err != nil {
			gone()
			return false
		}
		if err := rc.Flush(); err != nil {
			gone()
			return false
		}
		return true
	}

	switch b {
	case StreamBreak:
		evs := c.events(ans, mode, usageOn)
		if send(evs[0]) && send(evs[1]) {
			// Drop the connection: no finish chunk, no [DONE], and no
			// end of the chunked body either.
			panic(http.ErrAbortHandler)
		}
		return
	case SlowStream:
		ans = answer{}
		start := time.Now()
		for i := 0; time.Since(start) < slowLimit; i++ {
			delta := map[string]any{"content": fmt.Sprintf("tick %d ", i)}
			if i == 0 {
				delta["role"] = "assistant"
			}
			if !send(c.chunk(delta, nil, usageOn)) || !c.pause(slowTick) {
				return
			}
			ans.text += delta["content"].(string)
		}
		if !send(c.chunk(map[string]any{}, "stop", usageOn)) {
			return
		}
	default:
		for _, ev := range c.events(ans, mode, usageOn) {
			if !send(ev) {
				return
			}
		}
	}
	if usageOn {
		last := map[string]any{
			"id":                 c.id,
			"object":             "chat.completion.chunk",
			"created":            c.created,
			"model":              c.req.model,
			"system_fingerprint": systemFingerprint,
			"choices":            []any{},
			"usage":              c.usage(ans),
		}
		if !send(last) {
			return
		}
	}
	send("[DONE]")
}

// pause waits d, or reports false when the client or the fake goes away.
func (c *call) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.s.done:
		return false
	case <-c.r.Context().Done():
		c.gone()
		return false
	}
}

// gone notes a client that left a stream before its end; a stream cut
// short by Close is not the client's doing.
func (c *call) gone() {
	select {
	case <-c.s.done:
	default:
		c.s.noteCanceled(c.idx)
	}
}
