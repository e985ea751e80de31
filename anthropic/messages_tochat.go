package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/proxycast/caddy-proxycast/provider"
)

// messagesRequest is what the translation reads of a Messages request.
type messagesRequest struct {
	Model         *string           `json:"model"`
	MaxTokens     json.RawMessage   `json:"max_tokens"`
	System        json.RawMessage   `json:"system"`
	Messages      []json.RawMessage `json:"messages"`
	StopSequences []string          `json:"stop_sequences"`
	Temperature   json.RawMessage   `json:"temperature"`
	TopP          json.RawMessage   `json:"top_p"`
	TopK          json.RawMessage   `json:"top_k"`
	Stream        json.RawMessage   `json:"stream"`
	Tools         []json.RawMessage `json:"tools"`
	ToolChoice    json.RawMessage   `json:"tool_choice"`
	Thinking      json.RawMessage   `json:"thinking"`
	Metadata      *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
}

type inMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// inBlock is a content block of a request, any type.
type inBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	Source    *blockSource    `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
	Thinking  string          `json:"thinking"`
	Title     string          `json:"title"`
}

type blockSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type inTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
}

// Chat shapes written by the translation.
type chatMessage struct {
	Role             string     `json:"role"`
	Content          any        `json:"content"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	ToolCalls        []chatCall `json:"tool_calls,omitempty"`
	ToolCallID       string     `json:"tool_call_id,omitempty"`
}

type chatCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type chatPart struct {
	Type     string        `json:"type"`
	Text     string        `json:"text,omitempty"`
	ImageURL *chatImageURL `json:"image_url,omitempty"`
	File     *chatFilePart `json:"file,omitempty"`
}

type chatImageURL struct {
	URL string `json:"url"`
}

type chatFilePart struct {
	Filename string `json:"filename,omitempty"`
	FileData string `json:"file_data"`
}

func invalid(format string, a ...any) error {
	return &provider.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_request",
		Message: fmt.Sprintf(format, a...), Kind: provider.KindClient}
}

// ChatRequest translates a Messages request body into an OpenAI chat
// completions body for the upstream model. A body that is not a valid
// Messages request is a *provider.Error (400) naming the member at
// fault; members OpenAI-compatible upstreams would refuse, such as
// cache_control, are left out.
func ChatRequest(body []byte, model string) ([]byte, error) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, invalid("the body is not a Messages request: %s", jsonProblem(err))
	}
	if req.Model == nil {
		return nil, invalid("model: field required")
	}
	var maxTokens int64
	if err := json.Unmarshal(req.MaxTokens, &maxTokens); len(req.MaxTokens) == 0 || err != nil || maxTokens < 1 {
		return nil, invalid("max_tokens: field required, a positive integer")
	}
	if len(req.Messages) == 0 {
		return nil, invalid("messages: at least one message is required")
	}
	out := map[string]any{"model": model, "max_tokens": maxTokens}
	var msgs []chatMessage
	if sys, err := textContent(req.System, "system", "\n\n"); err != nil {
		return nil, err
	} else if sys != "" {
		msgs = append(msgs, chatMessage{Role: "system", Content: sys})
	}
	for i, raw := range req.Messages {
		converted, err := chatMessages(raw, fmt.Sprintf("messages.%d", i))
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, converted...)
	}
	out["messages"] = msgs
	if len(req.StopSequences) > 0 {
		out["stop"] = req.StopSequences
	}
	for key, raw := range map[string]json.RawMessage{"temperature": req.Temperature, "top_p": req.TopP, "top_k": req.TopK} {
		if len(raw) > 0 && string(raw) != "null" {
			out[key] = raw
		}
	}
	switch string(req.Stream) {
	case "", "null", "false":
	case "true":
		out["stream"] = true
	default:
		return nil, invalid("stream: must be a boolean")
	}
	if req.Metadata != nil && req.Metadata.UserID != "" {
		out["user"] = req.Metadata.UserID
	}
	if len(req.Tools) > 0 {
		tools, err := chatTools(req.Tools)
		if err != nil {
			return nil, err
		}
		out["tools"] = tools
	}
	if len(req.ToolChoice) > 0 && string(req.ToolChoice) != "null" {
		if err := setToolChoice(out, req.ToolChoice); err != nil {
			return nil, err
		}
	}
	if effort, err := reasoningEffort(req.Thinking); err != nil {
		return nil, err
	} else if effort != "" {
		out["reasoning_effort"] = effort
	}
	return json.Marshal(out)
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s: must be %s, not %s", te.Field, provider.JSONKind(te.Type), te.Value)
	}
	return err.Error()
}

// textContent reads a content that must be text: a string, or an array
// of items of type text (Messages blocks, chat parts), joined with sep.
func textContent(raw json.RawMessage, at, sep string) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var items []struct{ Type, Text string }
	if err := json.Unmarshal(raw, &items); err != nil {
		return "", invalid("%s: must be a string or an array of text items", at)
	}
	texts := make([]string, 0, len(items))
	for i, it := range items {
		if it.Type != "text" {
			return "", invalid("%s: item %d is of type %q; only text is taken here", at, i, it.Type)
		}
		texts = append(texts, it.Text)
	}
	return strings.Join(texts, sep), nil
}

// chatMessages translates one Messages message into the chat messages it
// becomes: tool results become tool messages of their own, ahead of the
// rest of the user's turn.
func chatMessages(raw json.RawMessage, path string) ([]chatMessage, error) {
	var m inMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid("%s: must be an object with role and content", path)
	}
	switch m.Role {
	case "user", "assistant", "system":
	default:
		return nil, invalid("%s.role: must be user, assistant or system, not %q", path, m.Role)
	}
	var text string
	if json.Unmarshal(m.Content, &text) == nil {
		return []chatMessage{{Role: m.Role, Content: text}}, nil
	}
	var blocks []inBlock
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return nil, invalid("%s.content: must be a string or an array of content blocks", path)
	}
	switch m.Role {
	case "assistant":
		return assistantMessage(blocks, path)
	case "system":
		text, err := textContent(m.Content, path+".content", "\n\n")
		return []chatMessage{{Role: "system", Content: text}}, err
	}
	return userMessages(blocks, path)
}

func assistantMessage(blocks []inBlock, path string) ([]chatMessage, error) {
	msg := chatMessage{Role: "assistant"}
	var text []string
	var thinking []string
	for i, b := range blocks {
		at := fmt.Sprintf("%s.content.%d", path, i)
		switch b.Type {
		case "text":
			text = append(text, b.Text)
		case "tool_use":
			if b.ID == "" || b.Name == "" {
				return nil, invalid("%s: a tool_use block needs id and name", at)
			}
			args := "{}"
			if len(b.Input) > 0 && string(b.Input) != "null" {
				var buf bytes.Buffer
				if err := json.Compact(&buf, b.Input); err != nil {
					return nil, invalid("%s.input: must be a JSON object", at)
				}
				args = buf.String()
			}
			msg.ToolCalls = append(msg.ToolCalls, chatCall{ID: b.ID, Type: "function", Function: chatFunction{Name: b.Name, Arguments: args}})
		case "thinking":
			thinking = append(thinking, b.Thinking)
		case "redacted_thinking":
		default:
			return nil, invalid("%s: an assistant message cannot carry a %q block to this provider", at, b.Type)
		}
	}
	msg.ReasoningContent = strings.Join(thinking, "\n\n")
	if len(text) > 0 {
		msg.Content = strings.Join(text, "")
	} else if len(msg.ToolCalls) == 0 {
		msg.Content = ""
	}
	return []chatMessage{msg}, nil
}

func userMessages(blocks []inBlock, path string) ([]chatMessage, error) {
	var tools []chatMessage
	var parts []chatPart
	for i, b := range blocks {
		at := fmt.Sprintf("%s.content.%d", path, i)
		switch b.Type {
		case "tool_result":
			if b.ToolUseID == "" {
				return nil, invalid("%s.tool_use_id: field required", at)
			}
			text, images, err := toolResult(b, at)
			if err != nil {
				return nil, err
			}
			tools = append(tools, chatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: text})
			parts = append(parts, images...)
		default:
			p, err := userPart(b, at)
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		}
	}
	out := tools
	if len(parts) > 0 {
		if len(parts) == 1 && parts[0].Type == "text" {
			out = append(out, chatMessage{Role: "user", Content: parts[0].Text})
		} else {
			out = append(out, chatMessage{Role: "user", Content: parts})
		}
	}
	return out, nil
}

// userPart is one block of a user's turn as a chat content part.
func userPart(b inBlock, at string) (chatPart, error) {
	switch b.Type {
	case "text":
		return chatPart{Type: "text", Text: b.Text}, nil
	case "image":
		url, err := sourceURL(b.Source, at)
		if err != nil {
			return chatPart{}, err
		}
		return chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: url}}, nil
	case "document":
		if b.Source == nil {
			return chatPart{}, invalid("%s.source: field required", at)
		}
		switch b.Source.Type {
		case "text":
			return chatPart{Type: "text", Text: b.Source.Data}, nil
		case "base64":
			name := b.Title
			if name == "" {
				name = "document.pdf"
			}
			return chatPart{Type: "file", File: &chatFilePart{Filename: name,
				FileData: "data:" + b.Source.MediaType + ";base64," + b.Source.Data}}, nil
		}
		return chatPart{}, invalid("%s.source.type: this provider takes text and base64 documents, not %q", at, b.Source.Type)
	}
	return chatPart{}, invalid("%s: unknown block type %q for a user message", at, b.Type)
}

func sourceURL(src *blockSource, at string) (string, error) {
	if src == nil {
		return "", invalid("%s.source: field required", at)
	}
	switch src.Type {
	case "base64":
		if src.MediaType == "" || src.Data == "" {
			return "", invalid("%s.source: a base64 source needs media_type and data", at)
		}
		return "data:" + src.MediaType + ";base64," + src.Data, nil
	case "url":
		if src.URL == "" {
			return "", invalid("%s.source.url: field required", at)
		}
		return src.URL, nil
	}
	return "", invalid("%s.source.type: must be base64 or url, not %q", at, src.Type)
}

// toolResult is a tool_result's text, and its images as parts that go
// into the user message after the tool messages (tool messages take text
// only).
func toolResult(b inBlock, at string) (string, []chatPart, error) {
	text := ""
	var images []chatPart
	if len(b.Content) > 0 && string(b.Content) != "null" {
		if json.Unmarshal(b.Content, &text) != nil {
			var blocks []inBlock
			if err := json.Unmarshal(b.Content, &blocks); err != nil {
				return "", nil, invalid("%s.content: must be a string or an array of blocks", at)
			}
			var parts []string
			for i, c := range blocks {
				switch c.Type {
				case "text":
					parts = append(parts, c.Text)
				case "image":
					url, err := sourceURL(c.Source, fmt.Sprintf("%s.content.%d", at, i))
					if err != nil {
						return "", nil, err
					}
					images = append(images, chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: url}})
				default:
					return "", nil, invalid("%s.content.%d: a tool result takes text and image blocks, not %q", at, i, c.Type)
				}
			}
			text = strings.Join(parts, "\n")
		}
	}
	if b.IsError {
		text = "Error: " + text
	}
	return text, images, nil
}

// chatTools translates tool definitions; Anthropic's own server tools
// cannot run anywhere else.
func chatTools(raws []json.RawMessage) ([]any, error) {
	out := make([]any, 0, len(raws))
	for i, raw := range raws {
		var t inTool
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, invalid("tools.%d: must be an object", i)
		}
		if t.Type != "" && t.Type != "custom" {
			return nil, invalid("tools.%d: %q is one of Anthropic's server tools (type %s), which the provider this model routes to cannot run", i, t.Name, t.Type)
		}
		if t.Name == "" {
			return nil, invalid("tools.%d.name: field required", i)
		}
		params := t.InputSchema
		if len(params) == 0 || string(params) == "null" {
			params = json.RawMessage(`{"type":"object"}`)
		}
		fn := map[string]any{"name": t.Name, "parameters": params}
		if t.Description != "" {
			fn["description"] = t.Description
		}
		out = append(out, map[string]any{"type": "function", "function": fn})
	}
	return out, nil
}

func setToolChoice(out map[string]any, raw json.RawMessage) error {
	var c struct {
		Type                   string `json:"type"`
		Name                   string `json:"name"`
		DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return invalid("tool_choice: must be an object with a type")
	}
	switch c.Type {
	case "auto":
		out["tool_choice"] = "auto"
	case "any":
		out["tool_choice"] = "required"
	case "none":
		out["tool_choice"] = "none"
	case "tool":
		if c.Name == "" {
			return invalid("tool_choice.name: field required for type tool")
		}
		out["tool_choice"] = map[string]any{"type": "function", "function": map[string]string{"name": c.Name}}
	default:
		return invalid("tool_choice.type: must be auto, any, tool or none, not %q", c.Type)
	}
	if c.DisableParallelToolUse && c.Type != "none" {
		out["parallel_tool_calls"] = false
	}
	return nil
}

// reasoningEffort is the OpenAI effort for a thinking budget. Claude
// Code's think, think hard and ultrathink ask for 4000, 10000 and 31999
// tokens.
func reasoningEffort(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var t struct {
		Type         string `json:"type"`
		BudgetTokens int64  `json:"budget_tokens"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return "", invalid("thinking: must be an object with a type")
	}
	switch t.Type {
	case "disabled":
		return "", nil
	case "adaptive":
		return "medium", nil
	case "enabled":
		switch {
		case t.BudgetTokens < 1:
			return "", invalid("thinking.budget_tokens: field required with type enabled")
		case t.BudgetTokens < 8000:
			return "low", nil
		case t.BudgetTokens < 20000:
			return "medium", nil
		}
		return "high", nil
	}
	return "", invalid("thinking.type: must be enabled or disabled, not %q", t.Type)
}
