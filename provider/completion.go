package provider

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// CompletionEvents turns a plain completion into the chunk a stream would
// have carried, for an upstream (named up) that answered a stream request
// with one, so that the client that asked for a stream gets one.
func CompletionEvents(raw []byte, up string) (EventReader, error) {
	var c struct {
		ID      string          `json:"id"`
		Created int64           `json:"created"`
		Model   string          `json:"model"`
		Usage   json.RawMessage `json:"usage,omitempty"`
		Choices []struct {
			Index        int             `json:"index"`
			Message      json.RawMessage `json:"message"`
			FinishReason json.RawMessage `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, &Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply",
			Message: up + " answered a stream request with a malformed completion", Kind: KindTransient}
	}
	type choice struct {
		Index        int             `json:"index"`
		Delta        json.RawMessage `json:"delta"`
		FinishReason json.RawMessage `json:"finish_reason"`
	}
	chunk := struct {
		ID      string          `json:"id"`
		Object  string          `json:"object"`
		Created int64           `json:"created"`
		Model   string          `json:"model"`
		Choices []choice        `json:"choices"`
		Usage   json.RawMessage `json:"usage,omitempty"`
	}{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: c.Model, Usage: c.Usage}
	for _, ch := range c.Choices {
		delta := ch.Message
		if len(delta) == 0 {
			delta = json.RawMessage("{}")
		}
		delta = indexToolCalls(delta)
		fr := ch.FinishReason
		if len(fr) == 0 {
			fr = json.RawMessage("null")
		}
		chunk.Choices = append(chunk.Choices, choice{Index: ch.Index, Delta: delta, FinishReason: fr})
	}
	data, err := json.Marshal(chunk)
	if err != nil {
		return nil, err
	}
	return &SliceEvents{Events: [][]byte{data}}, nil
}

// indexToolCalls adds the "index" that stream deltas carry on tool calls
// and that completion messages leave out.
func indexToolCalls(msg json.RawMessage) json.RawMessage {
	raw, ok := Field(msg, "tool_calls")
	if !ok {
		return msg
	}
	var calls []map[string]json.RawMessage
	if json.Unmarshal(raw, &calls) != nil {
		return msg
	}
	for i, c := range calls {
		if _, has := c["index"]; !has {
			c["index"] = json.RawMessage(strconv.Itoa(i))
		}
	}
	fixed, err := json.Marshal(calls)
	if err != nil {
		return msg
	}
	return SetField(msg, "tool_calls", fixed)
}

// SliceEvents is an EventReader of events at hand.
type SliceEvents struct{ Events [][]byte }

// Next returns the next event, or io.EOF.
func (s *SliceEvents) Next() ([]byte, error) {
	if len(s.Events) == 0 {
		return nil, io.EOF
	}
	e := s.Events[0]
	s.Events = s.Events[1:]
	return e, nil
}

// Close does nothing.
func (s *SliceEvents) Close() error { return nil }
