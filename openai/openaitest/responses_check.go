package openaitest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// StreamEvent is one SSE event of a Responses stream.
type StreamEvent struct {
	Event string
	Data  []byte
}

// ReadStream reads an SSE body into its events: event and data lines,
// data of several lines joined, comments skipped.
func ReadStream(r io.Reader) ([]StreamEvent, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var out []StreamEvent
	var cur StreamEvent
	var data [][]byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if cur.Event != "" || data != nil {
				if data == nil {
					return out, fmt.Errorf("event %d (%s) has no data", len(out), cur.Event)
				}
				cur.Data = bytes.Join(data, []byte("\n"))
				out = append(out, cur)
			}
			cur, data = StreamEvent{}, nil
		case line[0] == ':':
		default:
			name, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(name) {
			case "event":
				cur.Event = string(value)
			case "data":
				data = append(data, append([]byte(nil), value...))
			case "id", "retry":
			default:
				return out, fmt.Errorf("line %q is no SSE field", line)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	if cur.Event != "" || data != nil {
		return out, fmt.Errorf("the stream ends inside an event (%s) without its blank line", cur.Event)
	}
	return out, nil
}

// streamItem follows one output item through a stream.
type streamItem struct {
	id, typ string
	done    bool
	texts   map[int]*strings.Builder // by content or summary index
	parts   map[int]bool             // parts added and not done
	args    strings.Builder
	input   strings.Builder
	item    json.RawMessage // as done
}

// CheckStream reports the first way events break the Responses stream
// protocol, or nil: every event named after its data's type, with
// sequence numbers from 0 growing by one; response.created then
// response.in_progress first; exactly one terminal event
// (response.completed, response.incomplete, response.failed or error),
// last, for the same response; output items added with indexes 0, 1, 2…,
// each done once, after its deltas and parts; the texts and arguments of
// done events equal to their deltas, the arguments JSON; function calls
// with a call_id and a name; and the terminal response's output, when it
// completed, equal to the done items.
func CheckStream(events []StreamEvent) error {
	var items []*streamItem
	var responseID string
	for i, ev := range events {
		fail := func(format string, a ...any) error {
			return fmt.Errorf("event %d (%s): %s", i, ev.Event, fmt.Sprintf(format, a...))
		}
		var d struct {
			Type           string          `json:"type"`
			SequenceNumber *int            `json:"sequence_number"`
			OutputIndex    *int            `json:"output_index"`
			ItemID         string          `json:"item_id"`
			ContentIndex   *int            `json:"content_index"`
			SummaryIndex   *int            `json:"summary_index"`
			Delta          *string         `json:"delta"`
			Text           *string         `json:"text"`
			Arguments      *string         `json:"arguments"`
			Input          *string         `json:"input"`
			Item           json.RawMessage `json:"item"`
			Part           json.RawMessage `json:"part"`
			Response       *struct {
				ID     string            `json:"id"`
				Object string            `json:"object"`
				Status string            `json:"status"`
				Output []json.RawMessage `json:"output"`
				Usage  *struct {
					In    *int `json:"input_tokens"`
					Out   *int `json:"output_tokens"`
					Total *int `json:"total_tokens"`
				} `json:"usage"`
			} `json:"response"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return fail("data is not a JSON object: %v", err)
		}
		if d.Type != ev.Event {
			return fail("data has type %q", d.Type)
		}
		if d.SequenceNumber == nil || *d.SequenceNumber != i {
			return fail("sequence_number %v, want %d", d.SequenceNumber, i)
		}
		terminal := d.Type == "response.completed" || d.Type == "response.incomplete" || d.Type == "response.failed" || d.Type == "error"
		if terminal != (i == len(events)-1) {
			if terminal {
				return fail("a terminal event before the end")
			}
			return fail("the stream ends without response.completed, response.incomplete, response.failed or error")
		}
		switch {
		case i < 2:
			want := [...]string{"response.created", "response.in_progress"}[i]
			if d.Type != want || d.Response == nil || !strings.HasPrefix(d.Response.ID, "resp_") || d.Response.Object != "response" || d.Response.Status != "in_progress" {
				return fail("want %s with an in_progress response resp_…", want)
			}
			if i == 0 {
				responseID = d.Response.ID
			} else if d.Response.ID != responseID {
				return fail("response %s, but the stream began %s", d.Response.ID, responseID)
			}
			continue
		case d.Type == "error":
			return nil
		case terminal:
			r := d.Response
			if r == nil || r.ID != responseID || r.Status != strings.TrimPrefix(d.Type, "response.") {
				return fail("the response is not %s with the status the event names", responseID)
			}
			if d.Type == "response.failed" {
				return nil
			}
			if r.Usage == nil || r.Usage.In == nil || r.Usage.Out == nil || r.Usage.Total == nil || *r.Usage.Total != *r.Usage.In+*r.Usage.Out {
				return fail("usage is missing, or total_tokens is not input + output")
			}
			if len(r.Output) != len(items) {
				return fail("the response has %d output items, the stream %d", len(r.Output), len(items))
			}
			for k, it := range items {
				if !it.done {
					return fail("item %d (%s) was never done", k, it.id)
				}
				if !sameValue(r.Output[k], it.item) {
					return fail("output[%d] is %s, but the item was done as %s", k, r.Output[k], it.item)
				}
			}
			return nil
		}
		if d.Type == "response.output_item.added" {
			var it struct{ ID, Type string }
			if d.OutputIndex == nil || *d.OutputIndex != len(items) || json.Unmarshal(d.Item, &it) != nil || it.ID == "" || it.Type == "" {
				return fail("want output_index %d and an item with id and type", len(items))
			}
			items = append(items, &streamItem{id: it.ID, typ: it.Type, texts: map[int]*strings.Builder{}, parts: map[int]bool{}})
			continue
		}
		if d.OutputIndex == nil || *d.OutputIndex < 0 || *d.OutputIndex >= len(items) {
			return fail("output_index %v names no item added", d.OutputIndex)
		}
		it := items[*d.OutputIndex]
		if it.done {
			return fail("item %s is done already", it.id)
		}
		if d.Type != "response.output_item.done" && d.ItemID != it.id {
			return fail("item_id %q, but output %d is %s", d.ItemID, *d.OutputIndex, it.id)
		}
		index := 0
		if d.ContentIndex != nil {
			index = *d.ContentIndex
		} else if d.SummaryIndex != nil {
			index = *d.SummaryIndex
		}
		text := it.texts[index]
		if text == nil {
			text = &strings.Builder{}
			it.texts[index] = text
		}
		switch d.Type {
		case "response.content_part.added", "response.reasoning_summary_part.added":
			if it.parts[index] {
				return fail("part %d is added twice", index)
			}
			it.parts[index] = true
		case "response.output_text.delta", "response.reasoning_summary_text.delta", "response.refusal.delta":
			if !it.parts[index] || d.Delta == nil {
				return fail("a delta outside an open part %d", index)
			}
			text.WriteString(*d.Delta)
		case "response.output_text.done", "response.reasoning_summary_text.done":
			if d.Text == nil || *d.Text != text.String() {
				return fail("text %v, but the deltas make %q", d.Text, text.String())
			}
		case "response.content_part.done", "response.reasoning_summary_part.done":
			var p struct{ Text *string }
			if !it.parts[index] || json.Unmarshal(d.Part, &p) != nil || (p.Text != nil && *p.Text != text.String()) {
				return fail("part %d is not open, or its text is not its deltas'", index)
			}
			it.parts[index] = false
		case "response.function_call_arguments.delta":
			if d.Delta == nil {
				return fail("no delta")
			}
			it.args.WriteString(*d.Delta)
		case "response.function_call_arguments.done":
			if d.Arguments == nil || *d.Arguments != it.args.String() || !json.Valid([]byte(*d.Arguments)) {
				return fail("arguments %v are not the deltas' %q, or not JSON", d.Arguments, it.args.String())
			}
		case "response.custom_tool_call_input.delta":
			if d.Delta == nil {
				return fail("no delta")
			}
			it.input.WriteString(*d.Delta)
		case "response.custom_tool_call_input.done":
			if d.Input == nil || *d.Input != it.input.String() {
				return fail("input %v is not the deltas' %q", d.Input, it.input.String())
			}
		case "response.output_item.done":
			var done struct {
				ID, Type, Name, Arguments, Input string
				CallID                           string `json:"call_id"`
				Content                          []struct{ Text string }
				Summary                          []struct{ Text string }
			}
			if json.Unmarshal(d.Item, &done) != nil || done.ID != it.id || done.Type != it.typ {
				return fail("the item is not %s of type %s", it.id, it.typ)
			}
			for k, open := range it.parts {
				if open {
					return fail("part %d was never done", k)
				}
			}
			switch it.typ {
			case "message":
				for k, c := range done.Content {
					if t := it.texts[k]; t != nil && c.Text != t.String() {
						return fail("content %d text %q, but the deltas make %q", k, c.Text, t.String())
					}
				}
			case "reasoning":
				for k, s := range done.Summary {
					if t := it.texts[k]; t != nil && s.Text != t.String() {
						return fail("summary %d text %q, but the deltas make %q", k, s.Text, t.String())
					}
				}
			case "function_call":
				if done.CallID == "" || done.Name == "" || done.Arguments != it.args.String() || !json.Valid([]byte(done.Arguments)) {
					return fail("a function call needs call_id, name and the deltas' arguments as JSON")
				}
			case "custom_tool_call":
				if done.CallID == "" || done.Name == "" || done.Input != it.input.String() {
					return fail("a custom tool call needs call_id, name and the deltas' input")
				}
			}
			it.done, it.item = true, d.Item
		}
	}
	if len(events) == 0 {
		return fmt.Errorf("no events")
	}
	return nil
}

func sameValue(a, b json.RawMessage) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}
