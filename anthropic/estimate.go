package anthropic

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	_ "image/gif" // image headers for EstimateTokens
	_ "image/jpeg"
	_ "image/png"
	"io"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The estimate's weights, fitted against OpenAI's o200k_base tokenizer
// (the tokenizer of OpenAI's current models; the BPEs of DeepSeek, Qwen
// and GLM cut text about as finely) on the corpus in testdata/tokens and
// Go's own sources: English prose and Markdown, Go and shell code, JSON,
// and Chinese. TestEstimateText checks every sample within 10%.
const (
	lettersPerToken = 6.5  // a run of ASCII letters: a token per this many
	digitsPerToken  = 2.5  // a run of digits
	tokensPerPunct  = 0.65 // an ASCII punctuation mark or symbol
	tokensPerBreak  = 0.5  // a run of line breaks and indentation
	tokensPerHan    = 0.7  // a Chinese (Han) character
	tokensPerOther  = 1.0  // any other character
)

// Overheads of a request's structure that its text does not show.
const (
	perMessage     = 3    // the role and the turn's framing
	perTool        = 8    // a tool definition's framing
	perImage       = 1600 // an image whose size cannot be read: the most Anthropic counts for one
	pixelsPerToken = 750  // Anthropic's rule for an image: width × height / 750
)

// EstimateText estimates the tokens of one text. It costs one pass over
// the text and allocates nothing.
func EstimateText(s string) int {
	var n float64
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isLetter(c):
			j := i + 1
			for j < len(s) && isLetter(s[j]) {
				j++
			}
			n += math.Ceil(float64(j-i) / lettersPerToken)
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			n += math.Ceil(float64(j-i) / digitsPerToken)
			i = j
		case c == ' ':
			i++ // a space goes with the word after it
		case c == '\n' || c == '\r' || c == '\t':
			j := i + 1
			for j < len(s) && (s[j] == '\n' || s[j] == '\r' || s[j] == '\t' || s[j] == ' ') {
				j++
			}
			n += tokensPerBreak
			i = j
		case c < utf8.RuneSelf:
			n += tokensPerPunct
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if unicode.Is(unicode.Han, r) {
				n += tokensPerHan
			} else {
				n += tokensPerOther
			}
			i += size
		}
	}
	return int(math.Ceil(n))
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// EstimateTokens estimates the input tokens of a Messages request or
// count_tokens body: the text of its system prompt, messages (text, tool
// calls and their input, tool results, thinking) and tool definitions,
// the framing of each message and tool, and images as Anthropic counts
// them (width × height / 750, at most 1600) where their size can be read
// from their data. It is an estimate: Claude's tokenizer is not public.
func EstimateTokens(body []byte) (int64, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return 0, errors.New("the body is not JSON: " + err.Error())
	}
	top, ok := v.(map[string]any)
	if !ok {
		return 0, errors.New("the body must be a JSON object")
	}
	var n int64
	for key, val := range top {
		switch key {
		case "system":
			n += estimateValue(val, false)
		case "messages":
			msgs, _ := val.([]any)
			for _, m := range msgs {
				n += perMessage + estimateValue(m, false)
			}
		case "tools":
			tools, _ := val.([]any)
			for _, t := range tools {
				n += perTool + estimateValue(t, true)
			}
		}
	}
	return n, nil
}

// Members whose names are the request's structure, not text the model
// reads.
var structural = map[string]bool{"type": true, "role": true, "content": true, "text": true, "source": true,
	"media_type": true, "cache_control": true, "id": true, "tool_use_id": true, "signature": true, "is_error": true,
	"citations": true, "name": true, "description": true, "input_schema": true, "input": true, "thinking": true}

// estimateValue counts the text of a value; schema is whether member
// names are text too (inside a tool's definition or input).
func estimateValue(v any, schema bool) int64 {
	switch v := v.(type) {
	case string:
		return int64(EstimateText(v))
	case json.Number:
		return int64(EstimateText(v.String()))
	case bool:
		return 1
	case []any:
		var n int64
		for _, e := range v {
			n += estimateValue(e, schema)
		}
		return n
	case map[string]any:
		if v["type"] == "image" {
			return imageTokens(v["source"])
		}
		if v["type"] == "redacted_thinking" || v["type"] == "document" && isBase64Source(v["source"]) {
			return perImage
		}
		var n int64
		for key, val := range v {
			if key == "signature" || key == "id" || key == "tool_use_id" || key == "cache_control" {
				continue
			}
			if schema || !structural[key] {
				n += int64(EstimateText(key))
			}
			n += estimateValue(val, schema || key == "input" || key == "input_schema")
		}
		return n
	}
	return 0
}

func isBase64Source(v any) bool {
	src, _ := v.(map[string]any)
	return src["type"] == "base64"
}

// imageTokens counts an image as Anthropic does, from the size its data
// says, or as the largest image when that cannot be read.
func imageTokens(v any) int64 {
	src, _ := v.(map[string]any)
	data, _ := src["data"].(string)
	if src["type"] != "base64" || data == "" {
		return perImage
	}
	// The header is at the start: no need to decode the whole image.
	head := data[:min(len(data), 64<<10)]
	head = head[:len(head)/4*4]
	r := base64.NewDecoder(base64.StdEncoding, strings.NewReader(head))
	cfg, _, err := image.DecodeConfig(io.LimitReader(r, 48<<10))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return perImage
	}
	return min(int64(cfg.Width)*int64(cfg.Height)/pixelsPerToken+1, perImage)
}
