package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// chatRequestIn is what the translation reads of a chat request.
type chatRequestIn struct {
	Messages            []json.RawMessage `json:"messages"`
	MaxTokens           *int64            `json:"max_tokens"`
	MaxCompletionTokens *int64            `json:"max_completion_tokens"`
	Stop                json.RawMessage   `json:"stop"`
	Temperature         *float64          `json:"temperature"`
	TopP                json.RawMessage   `json:"top_p"`
	TopK                json.RawMessage   `json:"top_k"`
	Stream              json.RawMessage   `json:"stream"`
	Tools               []struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`
	User              string          `json:"user"`
	ReasoningEffort   string          `json:"reasoning_effort"`
	ResponseFormat    json.RawMessage `json:"response_format"`
	N                 *int            `json:"n"`
}

type chatMessageIn struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []chatCall      `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
	Refusal    string          `json:"refusal"`
	Name       string          `json:"name"`
	// The legacy function call of an assistant message.
	FunctionCall *chatFunction `json:"function_call"`
}

type chatPartIn struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
	File *struct {
		Filename string `json:"filename"`
		FileData string `json:"file_data"`
	} `json:"file"`
}

// mBlock is a content block of a Messages request.
type mBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *blockSource    `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   any             `json:"content,omitempty"`
}

type mMessage struct {
	Role    string   `json:"role"`
	Content []mBlock `json:"content"`
}

// Thinking budgets for OpenAI's efforts, as Claude Code's think, think
// hard and ultrathink ask for them.
var effortBudgets = map[string]int64{"low": 4000, "medium": 10000, "high": 31999, "xhigh": 31999}

// MessagesRequest translates an OpenAI chat completions body into a
// Messages request for the upstream model; defaultMaxTokens stands in
// for a max_tokens the body does not have. A body that cannot be
// translated is a *provider.Error (400) naming the member at fault.
func MessagesRequest(body []byte, model string, defaultMaxTokens int) ([]byte, error) {
	var req chatRequestIn
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, invalid("the body is not a chat completions request: %s", jsonProblem(err))
	}
	if req.N != nil && *req.N > 1 {
		return nil, invalid("n: the Anthropic provider this model routes to answers one choice (n 1)")
	}
	if len(req.ResponseFormat) > 0 && string(req.ResponseFormat) != "null" && !bytes.Contains(req.ResponseFormat, []byte(`"text"`)) {
		return nil, invalid("response_format: the Anthropic provider this model routes to has no structured output mode; describe the format in the prompt")
	}
	if len(req.Messages) == 0 {
		return nil, invalid("messages: at least one message is required")
	}
	out := map[string]any{"model": model}
	maxTokens := int64(defaultMaxTokens)
	switch {
	case req.MaxTokens != nil:
		maxTokens = *req.MaxTokens
	case req.MaxCompletionTokens != nil:
		maxTokens = *req.MaxCompletionTokens
	}
	if maxTokens < 1 {
		return nil, invalid("max_tokens: must be a positive integer")
	}
	var system []string
	var msgs []mMessage
	for i, raw := range req.Messages {
		var m chatMessageIn
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, invalid("messages[%d]: must be an object with a role", i)
		}
		at := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer":
			text, err := textContent(m.Content, at+".content", "")
			if err != nil {
				return nil, err
			}
			system = append(system, text)
			continue
		}
		role, blocks, err := messageBlocks(m, at)
		if err != nil {
			return nil, err
		}
		if len(blocks) == 0 {
			continue
		}
		// Messages alternate: one role's consecutive messages are one turn,
		// and a turn's tool results come first.
		if n := len(msgs); n > 0 && msgs[n-1].Role == role {
			msgs[n-1].Content = append(msgs[n-1].Content, blocks...)
		} else {
			msgs = append(msgs, mMessage{Role: role, Content: blocks})
		}
	}
	if len(msgs) == 0 {
		return nil, invalid("messages: no user or assistant message")
	}
	for i := range msgs {
		orderToolResults(msgs[i].Content)
	}
	if len(system) > 0 {
		out["system"] = strings.Join(system, "\n\n")
	}
	out["messages"] = msgs
	if stops, err := stopSequences(req.Stop); err != nil {
		return nil, err
	} else if len(stops) > 0 {
		out["stop_sequences"] = stops
	}
	if t := req.Temperature; t != nil {
		// OpenAI's scale goes to 2, Anthropic's to 1.
		out["temperature"] = min(*t, 1)
	}
	if len(req.TopP) > 0 && string(req.TopP) != "null" {
		out["top_p"] = req.TopP
	}
	if len(req.TopK) > 0 && string(req.TopK) != "null" {
		out["top_k"] = req.TopK
	}
	switch string(req.Stream) {
	case "", "null", "false":
	case "true":
		out["stream"] = true
	default:
		return nil, invalid("stream: must be a boolean")
	}
	if req.User != "" {
		out["metadata"] = map[string]string{"user_id": req.User}
	}
	if len(req.Tools) > 0 {
		var tools []map[string]any
		for i, t := range req.Tools {
			if t.Type != "function" && t.Type != "" {
				return nil, invalid("tools[%d].type: the Anthropic provider takes function tools, not %q", i, t.Type)
			}
			if t.Function.Name == "" {
				return nil, invalid("tools[%d].function.name: field required", i)
			}
			schema := t.Function.Parameters
			if len(schema) == 0 || string(schema) == "null" {
				schema = json.RawMessage(`{"type":"object"}`)
			}
			tool := map[string]any{"name": t.Function.Name, "input_schema": schema}
			if t.Function.Description != "" {
				tool["description"] = t.Function.Description
			}
			tools = append(tools, tool)
		}
		out["tools"] = tools
	}
	choice, err := messagesToolChoice(req.ToolChoice, req.ParallelToolCalls, len(req.Tools) > 0)
	if err != nil {
		return nil, err
	}
	if choice != nil {
		out["tool_choice"] = choice
	}
	if budget, ok := effortBudgets[req.ReasoningEffort]; ok {
		out["thinking"] = map[string]any{"type": "enabled", "budget_tokens": budget}
		if maxTokens <= budget {
			maxTokens = budget + int64(defaultMaxTokens)
		}
		delete(out, "temperature") // thinking takes none but the default
		delete(out, "top_k")
	}
	out["max_tokens"] = maxTokens
	return json.Marshal(out)
}

// orderToolResults puts a user turn's tool results before its other
// blocks, as the Messages API wants them, keeping each group's order.
func orderToolResults(blocks []mBlock) {
	results := make([]mBlock, 0, len(blocks))
	var rest []mBlock
	for _, b := range blocks {
		if b.Type == "tool_result" {
			results = append(results, b)
		} else {
			rest = append(rest, b)
		}
	}
	if len(results) == 0 || len(rest) == 0 {
		return
	}
	copy(blocks, append(results, rest...))
}

// messageBlocks is a user, assistant or tool message as Messages blocks,
// with the role of the turn it belongs to.
func messageBlocks(m chatMessageIn, at string) (string, []mBlock, error) {
	switch m.Role {
	case "user":
		blocks, err := userBlocks(m.Content, at)
		return "user", blocks, err
	case "tool", "function":
		text, err := textContent(m.Content, at+".content", "")
		if err != nil {
			return "", nil, err
		}
		id := m.ToolCallID
		if id == "" && m.Role == "function" {
			id = "call_" + m.Name
		}
		if id == "" {
			return "", nil, invalid("%s.tool_call_id: field required", at)
		}
		return "user", []mBlock{{Type: "tool_result", ToolUseID: id, Content: text}}, nil
	case "assistant":
		var blocks []mBlock
		if len(m.Content) > 0 && string(m.Content) != "null" {
			text, err := textContent(m.Content, at+".content", "")
			if err != nil {
				return "", nil, err
			}
			if text != "" {
				blocks = append(blocks, mBlock{Type: "text", Text: text})
			}
		}
		if m.Refusal != "" && len(blocks) == 0 {
			blocks = append(blocks, mBlock{Type: "text", Text: m.Refusal})
		}
		calls := m.ToolCalls
		if m.FunctionCall != nil {
			calls = append(calls, chatCall{ID: "call_" + m.FunctionCall.Name, Function: *m.FunctionCall})
		}
		for j, c := range calls {
			input := json.RawMessage("{}")
			if args := strings.TrimSpace(c.Function.Arguments); args != "" {
				if !json.Valid([]byte(args)) || args[0] != '{' {
					return "", nil, invalid("%s.tool_calls[%d].function.arguments: must be a JSON object", at, j)
				}
				input = json.RawMessage(args)
			}
			blocks = append(blocks, mBlock{Type: "tool_use", ID: c.ID, Name: c.Function.Name, Input: input})
		}
		return "assistant", blocks, nil
	}
	return "", nil, invalid("%s.role: must be system, developer, user, assistant or tool, not %q", at, m.Role)
}

func userBlocks(raw json.RawMessage, at string) ([]mBlock, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []mBlock{{Type: "text", Text: s}}, nil
	}
	var parts []chatPartIn
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, invalid("%s.content: must be a string or an array of parts", at)
	}
	var blocks []mBlock
	for j, p := range parts {
		pat := fmt.Sprintf("%s.content[%d]", at, j)
		switch p.Type {
		case "text":
			blocks = append(blocks, mBlock{Type: "text", Text: p.Text})
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, invalid("%s.image_url.url: field required", pat)
			}
			src, err := imageSource(p.ImageURL.URL, pat)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, mBlock{Type: "image", Source: src})
		case "file":
			if p.File == nil || !strings.HasPrefix(p.File.FileData, "data:") {
				return nil, invalid("%s.file: the Anthropic provider takes files as file_data (a data: URI)", pat)
			}
			src, err := imageSource(p.File.FileData, pat)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, mBlock{Type: "document", Source: src})
		default:
			return nil, invalid("%s: unknown part type %q for the Anthropic provider", pat, p.Type)
		}
	}
	return blocks, nil
}

// imageSource is a Messages source for an image or file URL: base64 for
// a data: URI, else the URL.
func imageSource(url, at string) (*blockSource, error) {
	rest, ok := strings.CutPrefix(url, "data:")
	if !ok {
		if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
			return nil, invalid("%s: the URL must be https:// or a data: URI", at)
		}
		return &blockSource{Type: "url", URL: url}, nil
	}
	media, data, ok := strings.Cut(rest, ";base64,")
	if !ok || media == "" {
		return nil, invalid("%s: a data: URI must be data:<media type>;base64,<data>", at)
	}
	return &blockSource{Type: "base64", MediaType: media, Data: data}, nil
}

func stopSequences(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, invalid("stop: must be a string or an array of strings")
	}
	return many, nil
}

func messagesToolChoice(raw json.RawMessage, parallel *bool, tools bool) (map[string]any, error) {
	var choice map[string]any
	if len(raw) > 0 && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			switch s {
			case "auto":
				choice = map[string]any{"type": "auto"}
			case "required":
				choice = map[string]any{"type": "any"}
			case "none":
				choice = map[string]any{"type": "none"}
			default:
				return nil, invalid("tool_choice: must be auto, required, none or a function, not %q", s)
			}
		} else {
			var f struct {
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if err := json.Unmarshal(raw, &f); err != nil || f.Function.Name == "" {
				return nil, invalid("tool_choice: must name a function: {\"type\":\"function\",\"function\":{\"name\":…}}")
			}
			choice = map[string]any{"type": "tool", "name": f.Function.Name}
		}
	}
	if parallel != nil && !*parallel && tools {
		if choice == nil {
			choice = map[string]any{"type": "auto"}
		}
		if choice["type"] != "none" {
			choice["disable_parallel_tool_use"] = true
		}
	}
	return choice, nil
}
