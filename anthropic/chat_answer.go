package anthropic

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// messageIn is what the translation reads of a Messages answer.
type messageIn struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	StopReason string `json:"stop_reason"`
	Content    []struct {
		Type     string          `json:"type"`
		Text     string          `json:"text"`
		Thinking string          `json:"thinking"`
		ID       string          `json:"id"`
		Name     string          `json:"name"`
		Input    json.RawMessage `json:"input"`
	} `json:"content"`
}

// finishReason is OpenAI's finish_reason for an Anthropic stop_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

// chatUsage is OpenAI's usage object for an answer's usage.
func chatUsage(u provider.Usage) map[string]any {
	return map[string]any{
		"prompt_tokens":         u.Prompt,
		"completion_tokens":     u.Completion,
		"total_tokens":          u.Prompt + u.Completion,
		"prompt_tokens_details": map[string]int64{"cached_tokens": u.Cached},
	}
}

func chatID(msgID string) string {
	if rest, ok := strings.CutPrefix(msgID, "msg_"); ok && rest != "" {
		return "chatcmpl-" + rest
	}
	return "chatcmpl-" + randomID(24)
}

// ChatAnswer translates a Messages answer into an OpenAI chat completion
// for a client that asked for model.
func ChatAnswer(msg []byte, model string) ([]byte, error) {
	var m messageIn
	if err := json.Unmarshal(msg, &m); err != nil || m.Type != "message" {
		return nil, badReply("the upstream's answer cannot be read as a Messages answer")
	}
	message := map[string]any{"role": "assistant"}
	var text, thinking []string
	var calls []chatCall
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			text = append(text, b.Text)
		case "thinking":
			thinking = append(thinking, b.Thinking)
		case "tool_use":
			args := "{}"
			if len(b.Input) > 0 {
				args = string(b.Input)
			}
			calls = append(calls, chatCall{ID: b.ID, Type: "function", Function: chatFunction{Name: b.Name, Arguments: args}})
		}
	}
	if len(text) > 0 || len(calls) == 0 {
		message["content"] = strings.Join(text, "")
	} else {
		message["content"] = nil
	}
	if len(thinking) > 0 {
		message["reasoning_content"] = strings.Join(thinking, "\n\n")
	}
	if len(calls) > 0 {
		message["tool_calls"] = calls
	}
	u, _ := UsageOf(msg)
	return json.Marshal(map[string]any{
		"id":      chatID(m.ID),
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   model,
		"choices": []any{map[string]any{"index": 0, "message": message, "finish_reason": finishReason(m.StopReason)}},
		"usage":   chatUsage(u),
	})
}

// messagesEvent is what the translation reads of a Messages stream event.
type messagesEvent struct {
	Type    string `json:"type"`
	Message struct {
		ID string `json:"id"`
	} `json:"message"`
	ContentBlock struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"content_block"`
	Delta struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		Thinking    string `json:"thinking"`
		PartialJSON string `json:"partial_json"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
}

// toChat turns Messages events into chat chunks.
type toChat struct {
	events       provider.EventReader
	model        string
	includeUsage bool
	id           string
	created      int64
	queue        [][]byte
	calls        int // tool calls so far
	inTool       bool
	usage        provider.Usage
	stopped      bool // message_stop seen
}

// StreamToChat turns a Messages event stream into OpenAI
// chat.completion.chunk events for a client that asked for model; with
// includeUsage, a last chunk with empty choices carries the usage, as
// OpenAI sends it for stream_options.include_usage.
func StreamToChat(events provider.EventReader, model string, includeUsage bool) provider.EventReader {
	t := &toChat{events: events, model: model, includeUsage: includeUsage, created: time.Now().Unix()}
	if b, ok := events.(provider.BufferedEvents); ok {
		return bufferedToChat{t, b}
	}
	return t
}

type bufferedToChat struct {
	*toChat
	b provider.BufferedEvents
}

// EventBuffered reports whether the next chunk is at hand.
func (b bufferedToChat) EventBuffered() bool { return len(b.queue) > 0 || b.b.EventBuffered() }

func (t *toChat) Close() error { return t.events.Close() }

func (t *toChat) Next() ([]byte, error) {
	for len(t.queue) == 0 {
		if t.stopped {
			return nil, io.EOF
		}
		data, err := t.events.Next()
		if errors.Is(err, io.EOF) {
			return nil, &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_stream_broken",
				Message: "the upstream's Messages stream ended without message_stop", Kind: provider.KindTransient}
		}
		if err != nil {
			return nil, err
		}
		t.event(data)
	}
	c := t.queue[0]
	t.queue[0] = nil
	t.queue = t.queue[1:]
	return c, nil
}

func (t *toChat) event(data []byte) {
	if u, ok := UsageOf(data); ok {
		if u.Prompt > 0 {
			t.usage.Prompt, t.usage.Cached = u.Prompt, u.Cached
		}
		if u.Completion > 0 {
			t.usage.Completion = u.Completion
		}
	}
	var e messagesEvent
	if json.Unmarshal(data, &e) != nil {
		return
	}
	switch e.Type {
	case "message_start":
		t.id = chatID(e.Message.ID)
		t.chunk(`{"role":"assistant","content":""}`, "")
	case "content_block_start":
		t.inTool = e.ContentBlock.Type == "tool_use"
		if t.inTool {
			b := append([]byte(`{"tool_calls":[{"index":`), strconv.Itoa(t.calls)...)
			b = append(b, `,"id":`...)
			b = appendString(b, e.ContentBlock.ID)
			b = append(b, `,"type":"function","function":{"name":`...)
			b = appendString(b, e.ContentBlock.Name)
			b = append(b, `,"arguments":""}}]}`...)
			t.chunk(string(b), "")
			t.calls++
		}
	case "content_block_delta":
		switch e.Delta.Type {
		case "text_delta":
			if e.Delta.Text != "" {
				t.chunk(string(appendString([]byte(`{"content":`), e.Delta.Text))+"}", "")
			}
		case "thinking_delta":
			if e.Delta.Thinking != "" {
				t.chunk(string(appendString([]byte(`{"reasoning_content":`), e.Delta.Thinking))+"}", "")
			}
		case "input_json_delta":
			if e.Delta.PartialJSON != "" && t.calls > 0 {
				b := append([]byte(`{"tool_calls":[{"index":`), strconv.Itoa(t.calls-1)...)
				b = append(b, `,"function":{"arguments":`...)
				b = appendString(b, e.Delta.PartialJSON)
				t.chunk(string(append(b, "}}]}"...)), "")
			}
		}
	case "message_delta":
		t.chunk("{}", finishReason(e.Delta.StopReason))
		if t.includeUsage {
			u, _ := json.Marshal(chatUsage(t.usage))
			t.raw(`[]`, string(u))
		}
	case "message_stop":
		t.stopped = true
	}
}

// chunk queues a chunk with one choice.
func (t *toChat) chunk(delta, finish string) {
	fr := "null"
	if finish != "" {
		fr = strconv.Quote(finish)
	}
	t.raw(`[{"index":0,"delta":`+delta+`,"finish_reason":`+fr+`}]`, "")
}

func (t *toChat) raw(choices, usage string) {
	if t.id == "" {
		t.id = chatID("")
	}
	b := append([]byte(`{"id":"`), t.id...)
	b = append(b, `","object":"chat.completion.chunk","created":`...)
	b = strconv.AppendInt(b, t.created, 10)
	b = append(b, `,"model":`...)
	b = appendString(b, t.model)
	b = append(b, `,"choices":`...)
	b = append(b, choices...)
	if usage != "" {
		b = append(b, `,"usage":`...)
		b = append(b, usage...)
	}
	t.queue = append(t.queue, append(b, '}'))
}
