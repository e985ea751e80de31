package responses

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strconv"
	"time"

	"github.com/proxycast/caddy-proxycast/chatstream"
	"github.com/proxycast/caddy-proxycast/provider"
)

// Answer translates a chat completion into the Response object that
// answers r.
func (r *Request) Answer(chat []byte) ([]byte, error) {
	c, err := chatstream.ReadCompletion(chat)
	if err != nil {
		return nil, err
	}
	status, incomplete := outcome(c.Finish)
	b := r.head(make([]byte, 0, 512+len(chat)), newID("resp_"), time.Now().Unix(), status)
	b = append(b, `,"output":[`...)
	n := 0
	sep := func() {
		if n > 0 {
			b = append(b, ',')
		}
		n++
	}
	if c.Reasoning != "" {
		sep()
		b = appendReasoning(b, newID("rs_"), chatstream.AppendString(nil, c.Reasoning))
	}
	if c.Text != "" || c.Refusal != "" || len(c.Calls) == 0 {
		sep()
		part := outputText
		text := c.Text
		if text == "" && c.Refusal != "" {
			part, text = refusalPart, c.Refusal
		}
		b = appendMessage(b, newID("msg_"), itemStatus(status), part, chatstream.AppendString(nil, text))
	}
	for _, call := range c.Calls {
		sep()
		args := call.Arguments
		if len(bytes.TrimSpace([]byte(args))) == 0 {
			args = "{}"
		}
		b = r.appendCall(b, r.callItemID(call.Name), call.ID, call.Name, []byte(args))
	}
	b = append(b, ']')
	b = appendIncomplete(b, incomplete)
	b = append(b, `,"usage":`...)
	b = appendUsage(b, c.Usage)
	return append(b, '}'), nil
}

// outcome is a Response's status, and the reason it is incomplete, for
// a chat finish_reason.
func outcome(finish string) (status, reason string) {
	switch finish {
	case "length":
		return "incomplete", "max_output_tokens"
	case "content_filter":
		return "incomplete", "content_filter"
	}
	return "completed", ""
}

func itemStatus(responseStatus string) string {
	if responseStatus == "incomplete" {
		return "incomplete"
	}
	return "completed"
}

// head opens a Response object: everything before its output.
func (r *Request) head(b []byte, id string, created int64, status string) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","object":"response","created_at":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","error":null,"model":`...)
	b = chatstream.AppendString(b, r.model)
	return append(b, r.echo...)
}

func appendIncomplete(b []byte, reason string) []byte {
	if reason == "" {
		return append(b, `,"incomplete_details":null`...)
	}
	b = append(b, `,"incomplete_details":{"reason":"`...)
	b = append(b, reason...)
	return append(b, `"}`...)
}

// The kinds of a message's content part.
const (
	outputText  = `{"type":"output_text","annotations":[],"logprobs":[],"text":`
	refusalPart = `{"type":"refusal","refusal":`
)

// appendMessage appends a message item whose one part holds text, a
// JSON string.
func appendMessage(b []byte, id, status, part string, text []byte) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","type":"message","status":"`...)
	b = append(b, status...)
	b = append(b, `","role":"assistant","content":[`...)
	b = append(b, part...)
	b = append(b, text...)
	return append(b, "}]}"...)
}

// appendReasoning appends a reasoning item whose summary is text, a JSON
// string.
func appendReasoning(b []byte, id string, text []byte) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","type":"reasoning","summary":[{"type":"summary_text","text":`...)
	b = append(b, text...)
	return append(b, "}]}"...)
}

// callItemID is a new id for the item of a call of the tool name.
func (r *Request) callItemID(name string) string {
	if r.custom[name] {
		return newID("ctc_")
	}
	return newID("fc_")
}

// appendCall appends a done function_call item, or a custom_tool_call
// item for a custom tool.
func (r *Request) appendCall(b []byte, id, callID, name string, args []byte) []byte {
	if callID == "" {
		callID = newID("call_")
	}
	if input, ok := r.customInput(name, args); ok {
		b = append(b, `{"id":"`...)
		b = append(b, id...)
		b = append(b, `","type":"custom_tool_call","status":"completed","call_id":`...)
		b = chatstream.AppendString(b, callID)
		b = append(b, `,"name":`...)
		b = chatstream.AppendString(b, name)
		b = append(b, `,"input":`...)
		b = chatstream.AppendString(b, input)
		return append(b, '}')
	}
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","type":"function_call","status":"completed","call_id":`...)
	b = chatstream.AppendString(b, callID)
	b = append(b, `,"name":`...)
	b = chatstream.AppendString(b, name)
	b = append(b, `,"arguments":`...)
	b = chatstream.AppendString(b, string(args))
	return r.appendNamespace(b, name)
}

// appendNamespace closes a call's item with the namespace of its tool,
// where it came in one.
func (r *Request) appendNamespace(b []byte, name string) []byte {
	if ns := r.namespace[name]; ns != "" {
		b = append(b, `,"namespace":`...)
		b = chatstream.AppendString(b, ns)
	}
	return append(b, '}')
}

// customInput is the input of a call of a custom tool, which went to the
// upstream as a function of one string.
func (r *Request) customInput(name string, args []byte) (string, bool) {
	if !r.custom[name] {
		return "", false
	}
	var a struct {
		Input *string `json:"input"`
	}
	if json.Unmarshal(args, &a) != nil || a.Input == nil {
		return string(args), true
	}
	return *a.Input, true
}

func appendUsage(b []byte, u provider.Usage) []byte {
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, u.Prompt, 10)
	b = append(b, `,"input_tokens_details":{"cached_tokens":`...)
	b = strconv.AppendInt(b, u.Cached, 10)
	b = append(b, `},"output_tokens":`...)
	b = strconv.AppendInt(b, u.Completion, 10)
	b = append(b, `,"output_tokens_details":{"reasoning_tokens":`...)
	b = strconv.AppendInt(b, u.Reasoning, 10)
	b = append(b, `},"total_tokens":`...)
	b = strconv.AppendInt(b, u.Prompt+u.Completion, 10)
	return append(b, '}')
}

const idAlphabet = "0123456789abcdef"

// newID is a random id with prefix, in hex digits as OpenAI's are.
func newID(prefix string) string {
	// 128 random bits, as many as a UUID: an id goes out with every
	// delta of its item, so it is kept no longer than that.
	var r [16]byte
	_, _ = rand.Read(r[:])
	b := make([]byte, len(prefix), len(prefix)+2*len(r))
	copy(b, prefix)
	for _, c := range r {
		b = append(b, idAlphabet[c>>4], idAlphabet[c&0xf])
	}
	return string(b)
}

var usageKey = []byte(`"usage"`)

// UsageOf reads the usage of a native Response object, or of the
// response.completed, response.incomplete or response.failed event that
// ends a stream.
func UsageOf(data []byte) (provider.Usage, bool) {
	if !bytes.Contains(data, usageKey) {
		return provider.Usage{}, false
	}
	raw, ok := provider.FieldOrIn(data, "usage", "response")
	if !ok || len(raw) == 0 || raw[0] != '{' {
		return provider.Usage{}, false
	}
	var u struct {
		InputTokens  int64 `json:"input_tokens"`
		OutputTokens int64 `json:"output_tokens"`
		InputDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"input_tokens_details"`
		OutputDetails struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		} `json:"output_tokens_details"`
	}
	if json.Unmarshal(raw, &u) != nil {
		return provider.Usage{}, false
	}
	return provider.Usage{Prompt: u.InputTokens, Completion: u.OutputTokens, Cached: u.InputDetails.CachedTokens,
		Reasoning: u.OutputDetails.ReasoningTokens}, true
}

// NewID is a new response id, for a Response the gateway makes itself.
func NewID() string { return newID("resp_") }
