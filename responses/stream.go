package responses

import (
	"strconv"
	"time"

	"github.com/proxycast/caddy-proxycast/chatstream"
	"github.com/proxycast/caddy-proxycast/provider"
)

// Stream turns a stream of chat.completion.chunk events into the
// Responses events that answer r: response.created and
// response.in_progress, then each output item (reasoning with its summary
// text, the message with its output_text, function and custom tool
// calls) added, filled by deltas and done before the next begins, with
// output indexes from 0, and at the end response.completed (or
// response.incomplete) holding the whole output and the usage. Every
// event carries "type" first and "sequence_number" second, growing by
// one from 0. A failure of chunks, or a stream that ends before its
// finish_reason, is returned for the caller's response.failed.
func (r *Request) Stream(chunks provider.EventReader) provider.EventReader {
	s := &stream{r: r, id: newID("resp_"), created: time.Now().Unix()}
	s.dec.Sink = s
	return chatstream.Translate(chunks, s, &s.out)
}

type stream struct {
	out     chatstream.Emitter
	r       *Request
	dec     chatstream.Decoder
	started bool

	id      string
	created int64
	seq     int64
	index   int    // the output index of the open item, or of the next
	itemID  string // the open item's
	callID  string // the open call's
	custom  bool   // whether the open call is of a custom tool
	// text is the open block's text so far, as the inside of a JSON
	// string.
	text []byte
	// output is the done items, comma-separated, for the terminal
	// event's response.
	output []byte
}

// errCut is the failure of a chat stream that ended before it said how
// it finished: the answer may be cut anywhere.
func errCut() error {
	return provider.BadReply("the upstream's stream ended before its finish_reason: the answer may be cut short")
}

// Usage is the usage the chat stream reported.
func (s *stream) Usage() provider.Usage { return s.dec.Usage() }

// Chunk translates one chat chunk.
func (s *stream) Chunk(data []byte) {
	s.start()
	s.dec.Chunk(data)
}

// event begins an event of typ.
func (s *stream) event(typ string) (int, []byte) {
	start, b := s.out.Append(`{"type":"`)
	b = append(b, typ...)
	b = append(b, `","sequence_number":`...)
	b = strconv.AppendInt(b, s.seq, 10)
	s.seq++
	return start, b
}

// item appends the open item's id and output index.
func (s *stream) item(b []byte) []byte {
	b = append(b, `,"item_id":"`...)
	b = append(b, s.itemID...)
	b = append(b, `","output_index":`...)
	return strconv.AppendInt(b, int64(s.index), 10)
}

func (s *stream) outputIndex(b []byte) []byte {
	b = append(b, `,"output_index":`...)
	return strconv.AppendInt(b, int64(s.index), 10)
}

func (s *stream) start() {
	if s.started {
		return
	}
	s.started = true
	for _, typ := range [...]string{"response.created", "response.in_progress"} {
		start, b := s.event(typ)
		b = append(b, `,"response":`...)
		b = s.r.head(b, s.id, s.created, "in_progress")
		s.out.Emit(start, append(b, `,"output":[],"incomplete_details":null,"usage":null}}`...))
	}
}

// StartBlock adds an output item.
func (s *stream) StartBlock(k chatstream.Kind, c *chatstream.Call) {
	s.text = s.text[:0]
	start, b := s.event("response.output_item.added")
	b = s.outputIndex(b)
	switch k {
	case chatstream.Reasoning:
		s.itemID = newID("rs_")
		b = append(b, `,"item":{"id":"`...)
		b = append(b, s.itemID...)
		s.out.Emit(start, append(b, `","type":"reasoning","summary":[]}}`...))
		start, b = s.event("response.reasoning_summary_part.added")
		b = s.item(b)
		s.out.Emit(start, append(b, `,"summary_index":0,"part":{"type":"summary_text","text":""}}`...))
	case chatstream.Text:
		s.itemID = newID("msg_")
		b = append(b, `,"item":{"id":"`...)
		b = append(b, s.itemID...)
		s.out.Emit(start, append(b, `","type":"message","status":"in_progress","role":"assistant","content":[]}}`...))
		start, b = s.event("response.content_part.added")
		b = s.item(b)
		s.out.Emit(start, append(b, `,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}}`...))
	default:
		s.itemID, s.callID, s.custom = s.r.callItemID(c.Name), c.ID, s.r.custom[c.Name]
		if s.callID == "" {
			s.callID = newID("call_")
		}
		b = append(b, `,"item":{"id":"`...)
		b = append(b, s.itemID...)
		if s.custom {
			b = append(b, `","type":"custom_tool_call","status":"in_progress","call_id":`...)
			b = chatstream.AppendString(b, s.callID)
			b = append(b, `,"name":`...)
			b = chatstream.AppendString(b, c.Name)
			s.out.Emit(start, append(b, `,"input":""}}`...))
			return
		}
		b = append(b, `","type":"function_call","status":"in_progress","arguments":"","call_id":`...)
		b = chatstream.AppendString(b, s.callID)
		b = append(b, `,"name":`...)
		b = chatstream.AppendString(b, c.Name)
		b = s.r.appendNamespace(b, c.Name)
		s.out.Emit(start, append(b, '}'))
	}
}

// BlockDelta fills the open item.
func (s *stream) BlockDelta(k chatstream.Kind, data []byte) {
	var start int
	var b []byte
	switch k {
	case chatstream.Reasoning:
		s.text = append(s.text, data[1:len(data)-1]...)
		start, b = s.event("response.reasoning_summary_text.delta")
		b = s.item(b)
		b = append(b, `,"summary_index":0,"delta":`...)
		b = append(b, data...)
		b = append(b, '}')
	case chatstream.Text:
		s.text = append(s.text, data[1:len(data)-1]...)
		start, b = s.event("response.output_text.delta")
		b = s.item(b)
		b = append(b, `,"content_index":0,"delta":`...)
		b = append(b, data...)
		b = append(b, `,"logprobs":[]}`...)
	default:
		if s.custom {
			return // a custom tool's input is whole only once its arguments are
		}
		start, b = s.event("response.function_call_arguments.delta")
		b = s.item(b)
		b = append(b, `,"delta":`...)
		b = chatstream.AppendString(b, string(data))
		b = append(b, '}')
	}
	s.out.Emit(start, b)
}

// StopBlock ends the open item.
func (s *stream) StopBlock(k chatstream.Kind, c *chatstream.Call) {
	status, _ := outcome(s.dec.Finish())
	var start, mark int
	var b []byte
	switch k {
	case chatstream.Reasoning:
		start, b = s.event("response.reasoning_summary_text.done")
		b = s.item(b)
		b = append(b, `,"summary_index":0,"text":"`...)
		b = append(b, s.text...)
		s.out.Emit(start, append(b, `"}`...))
		start, b = s.event("response.reasoning_summary_part.done")
		b = s.item(b)
		b = append(b, `,"summary_index":0,"part":{"type":"summary_text","text":"`...)
		b = append(b, s.text...)
		s.out.Emit(start, append(b, `"}}`...))
		start, b = s.event("response.output_item.done")
		b = s.outputIndex(b)
		b = append(b, `,"item":`...)
		mark = len(b)
		b = appendReasoning(b, s.itemID, s.quoted())
	case chatstream.Text:
		start, b = s.event("response.output_text.done")
		b = s.item(b)
		b = append(b, `,"content_index":0,"text":"`...)
		b = append(b, s.text...)
		s.out.Emit(start, append(b, `","logprobs":[]}`...))
		start, b = s.event("response.content_part.done")
		b = s.item(b)
		b = append(b, `,"content_index":0,"part":`...)
		b = append(b, outputText...)
		b = append(b, '"')
		b = append(b, s.text...)
		s.out.Emit(start, append(b, `"}}`...))
		start, b = s.event("response.output_item.done")
		b = s.outputIndex(b)
		b = append(b, `,"item":`...)
		mark = len(b)
		b = appendMessage(b, s.itemID, itemStatus(status), outputText, s.quoted())
	default:
		args := c.Args
		if !c.HasArgs() {
			args = []byte("{}")
			if !s.r.custom[c.Name] {
				start, b = s.event("response.function_call_arguments.delta")
				b = s.item(b)
				s.out.Emit(start, append(b, `,"delta":"{}"}`...))
			}
		}
		if input, ok := s.r.customInput(c.Name, args); ok {
			for _, typ := range [...]string{"response.custom_tool_call_input.delta", "response.custom_tool_call_input.done"} {
				start, b = s.event(typ)
				b = s.item(b)
				if typ == "response.custom_tool_call_input.delta" {
					b = append(b, `,"delta":`...)
				} else {
					b = append(b, `,"input":`...)
				}
				b = chatstream.AppendString(b, input)
				s.out.Emit(start, append(b, '}'))
			}
		} else {
			start, b = s.event("response.function_call_arguments.done")
			b = s.item(b)
			b = append(b, `,"name":`...)
			b = chatstream.AppendString(b, c.Name)
			b = append(b, `,"arguments":`...)
			b = chatstream.AppendString(b, string(args))
			s.out.Emit(start, append(b, '}'))
		}
		start, b = s.event("response.output_item.done")
		b = s.outputIndex(b)
		b = append(b, `,"item":`...)
		mark = len(b)
		b = s.r.appendCall(b, s.itemID, s.callID, c.Name, args)
	}
	if len(s.output) > 0 {
		s.output = append(s.output, ',')
	}
	s.output = append(s.output, b[mark:]...)
	s.out.Emit(start, append(b, '}'))
	s.index++
}

// quoted is the open block's text as a JSON string.
func (s *stream) quoted() []byte {
	q := make([]byte, 0, len(s.text)+2)
	q = append(q, '"')
	q = append(q, s.text...)
	return append(q, '"')
}

// End closes the open item and sends the terminal event; a stream
// without its finish_reason may have been cut anywhere, and fails.
func (s *stream) End() error {
	if s.dec.Finish() == "" {
		return errCut()
	}
	s.start()
	s.dec.End()
	status, reason := outcome(s.dec.Finish())
	start, b := s.event("response." + status)
	b = append(b, `,"response":`...)
	b = s.r.head(b, s.id, s.created, status)
	b = append(b, `,"output":[`...)
	b = append(b, s.output...)
	b = append(b, ']')
	b = appendIncomplete(b, reason)
	b = append(b, `,"usage":`...)
	b = appendUsage(b, s.dec.Usage())
	s.out.Emit(start, append(b, "}}"...))
	return nil
}
