package anthropic

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/proxycast/caddy-proxycast/chatstream"
	"github.com/proxycast/caddy-proxycast/provider"
)

// outBlock is a content block of an answer.
type outBlock struct {
	Type      string          `json:"type"`
	Text      *string         `json:"text,omitempty"`
	Thinking  *string         `json:"thinking,omitempty"`
	Signature *string         `json:"signature,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
}

type outUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

type outMessage struct {
	Type         string     `json:"type"`
	ID           string     `json:"id"`
	Role         string     `json:"role"`
	Model        string     `json:"model"`
	Content      []outBlock `json:"content"`
	StopReason   *string    `json:"stop_reason"`
	StopSequence *string    `json:"stop_sequence"`
	Usage        outUsage   `json:"usage"`
}

// Answer translates an OpenAI chat completion into a Messages answer for
// a client that asked for model.
func Answer(chat []byte, model string) ([]byte, error) {
	c, err := chatstream.ReadCompletion(chat)
	if err != nil {
		return nil, err
	}
	var blocks []outBlock
	if r := c.Reasoning; r != "" {
		blocks = append(blocks, outBlock{Type: "thinking", Thinking: &r, Signature: new(string)})
	}
	text := c.Text
	if text == "" {
		text = c.Refusal
	}
	if text != "" {
		blocks = append(blocks, outBlock{Type: "text", Text: &text})
	}
	for _, tc := range c.Calls {
		input := json.RawMessage("{}")
		if args := bytes.TrimSpace([]byte(tc.Arguments)); len(args) > 0 {
			if !json.Valid(args) || args[0] != '{' {
				return nil, provider.BadReply("the upstream called tool %q with arguments that are not a JSON object", tc.Name)
			}
			input = args
		}
		blocks = append(blocks, outBlock{Type: "tool_use", ID: toolID(tc.ID), Name: tc.Name, Input: input})
	}
	if blocks == nil {
		empty := ""
		blocks = []outBlock{{Type: "text", Text: &empty}}
	}
	stop := stopReason(c.Finish, len(c.Calls) > 0)
	return json.Marshal(outMessage{Type: "message", ID: newMessageID(), Role: "assistant", Model: model, Content: blocks,
		StopReason: &stop, Usage: usageOut(c.Usage)})
}

func usageOut(u provider.Usage) outUsage {
	return outUsage{InputTokens: max(u.Prompt-u.Cached, 0), OutputTokens: u.Completion, CacheReadInputTokens: u.Cached}
}

// stopReason is Anthropic's stop_reason for an OpenAI finish_reason.
func stopReason(finish string, calledTools bool) string {
	switch {
	case finish == "length":
		return "max_tokens"
	case finish == "tool_calls" || finish == "function_call" || calledTools:
		return "tool_use"
	case finish == "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// toolID keeps a call's id, making one where an upstream sent none.
func toolID(id string) string {
	if id != "" {
		return id
	}
	return "toolu_" + randomID(24)
}

func newMessageID() string { return "msg_" + randomID(24) }

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// ErrorType is Anthropic's error type for an HTTP status.
func ErrorType(status int) string {
	switch status {
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case provider.StatusOverloaded:
		return "overloaded_error"
	}
	return provider.TypeForStatus(status)
}

// ErrorBody is Anthropic's error object.
func ErrorBody(typ, message string) []byte {
	b := append([]byte(`{"type":"error","error":{"type":`), strconv.Quote(typ)...)
	b = append(b, `,"message":`...)
	msg, _ := json.Marshal(message)
	b = append(b, msg...)
	return append(b, "}}"...)
}

// UsageOf reads the usage of a Messages answer, or of a message_start or
// message_delta event; Prompt counts every input token, cached or not.
func UsageOf(data []byte) (provider.Usage, bool) {
	if !bytes.Contains(data, []byte(`"usage"`)) {
		return provider.Usage{}, false
	}
	raw, ok := provider.FieldOrIn(data, "usage", "message")
	if !ok || len(raw) == 0 || raw[0] != '{' {
		return provider.Usage{}, false
	}
	var u outUsage
	if json.Unmarshal(raw, &u) != nil {
		return provider.Usage{}, false
	}
	return provider.Usage{Prompt: u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens,
		Completion: u.OutputTokens, Cached: u.CacheReadInputTokens}, true
}
