package anthropictest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// CountTokens is the fake's token rule, which both count_tokens and the
// input_tokens of answers follow, for a body the fake would take (count:
// a count_tokens body); ok is false for one it would refuse. It is no
// real tokenizer:
//
//   - every word (a run of non-space characters) of the text the model
//     reads counts one: system text, text blocks, tool_result content,
//     a tool_use's name and its input as compact JSON, thinking text;
//   - each message counts 3 more, each image or document 100;
//   - each tool counts 4 more and one a word of its name and description.
func CountTokens(body []byte, count bool) (n int, ok bool) {
	req, p := checkBody(body, count)
	if p != nil {
		return 0, false
	}
	return req.inputTokens(), true
}

// inputTokens applies the rule of CountTokens.
func (req *request) inputTokens() int {
	n := blocksTokens(req.system)
	for _, m := range req.msgs {
		n += 3 + blocksTokens(m.blocks)
	}
	for _, t := range req.tools {
		name, _ := t["name"].(string)
		desc, _ := t["description"].(string)
		n += 4 + words(name) + words(desc)
	}
	return n
}

func blocksTokens(blocks []block) int {
	n := 0
	for _, b := range blocks {
		switch b["type"] {
		case "text":
			n += words(b["text"].(string))
		case "thinking":
			n += words(b["thinking"].(string))
		case "tool_use":
			input, _ := json.Marshal(b["input"])
			n += words(b["name"].(string)) + words(string(input))
		case "tool_result":
			switch c := b["content"].(type) {
			case string:
				n += words(c)
			case []any:
				var inner []block
				for _, x := range c {
					if m, ok := x.(map[string]any); ok {
						inner = append(inner, m)
					}
				}
				n += blocksTokens(inner)
			}
		case "image", "document":
			n += 100
		}
	}
	return n
}

func words(s string) int { return len(strings.Fields(s)) }

// countTokens serves POST /v1/messages/count_tokens.
func (c *call) countTokens() {
	if !c.authorize() || !c.jsonBody() {
		return
	}
	req, p := checkBody(c.raw, true)
	if p != nil {
		c.fail(http.StatusBadRequest, errInvalid(p.msg), p.msg)
		return
	}
	s := c.s
	s.mu.Lock()
	known := slices.Contains(s.models, req.model)
	b := s.behaviors[c.key]
	s.mu.Unlock()
	if !known {
		c.fail(http.StatusNotFound, apiError{Type: "not_found_error", Message: "model: " + req.model}, fmt.Sprintf("model %q is not one of SetModels", req.model))
		return
	}
	if c.scriptedError(b, req.model) {
		return
	}
	c.finish(http.StatusOK, "ok")
	writeJSON(c.w, http.StatusOK, obj{{"input_tokens", req.inputTokens()}})
}
