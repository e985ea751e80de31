package chatstream

import (
	"encoding/json"

	"github.com/proxycast/caddy-proxycast/provider"
)

// Completion is what a translator reads of a plain chat completion: its
// first choice and the usage.
type Completion struct {
	// Reasoning is the thinking, from reasoning_content, reasoning or
	// thinking parts.
	Reasoning string
	// Text is the answer's content.
	Text string
	// Refusal is the model's refusal, when it refused.
	Refusal string
	// Calls are the tool calls, in order.
	Calls []CompletionCall
	// Finish is the finish_reason ("" when none).
	Finish string
	// Usage is what the completion reports, and HasUsage whether it
	// reports any.
	Usage    provider.Usage
	HasUsage bool
}

// CompletionCall is one tool call of a completion.
type CompletionCall struct {
	ID, Name, Arguments string
}

type completion struct {
	Choices []struct {
		Message struct {
			Content          json.RawMessage `json:"content"`
			ReasoningContent string          `json:"reasoning_content"`
			Reasoning        string          `json:"reasoning"`
			Refusal          *string         `json:"refusal"`
			ToolCalls        []struct {
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// ReadCompletion reads a chat completion. Its error, for a body that is
// no completion, is a *provider.Error.
func ReadCompletion(body []byte) (*Completion, error) {
	var c completion
	if err := json.Unmarshal(body, &c); err != nil || len(c.Choices) == 0 {
		return nil, provider.BadReply("the upstream's completion cannot be read as one (no choices)")
	}
	ch := c.Choices[0]
	out := &Completion{Reasoning: ch.Message.ReasoningContent}
	if out.Reasoning == "" {
		out.Reasoning = ch.Message.Reasoning
	}
	if raw := ch.Message.Content; len(raw) > 0 && raw[0] == '[' {
		thinking, text := ContentParts(raw)
		if out.Reasoning == "" {
			out.Reasoning = thinking
		}
		out.Text = text
	} else if len(raw) > 0 && string(raw) != "null" && json.Unmarshal(raw, &out.Text) != nil {
		return nil, provider.BadReply("the upstream's completion has content that is neither text nor parts")
	}
	if ch.Message.Refusal != nil {
		out.Refusal = *ch.Message.Refusal
	}
	for _, tc := range ch.Message.ToolCalls {
		out.Calls = append(out.Calls, CompletionCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
	}
	if ch.FinishReason != nil {
		out.Finish = *ch.FinishReason
	}
	out.Usage, out.HasUsage = provider.UsageOf(body)
	return out, nil
}
