package anthropic

import (
	"strconv"

	"github.com/proxycast/caddy-proxycast/chatstream"
	"github.com/proxycast/caddy-proxycast/provider"
)

// fromChat turns chat chunks into Messages events. Events are produced
// into a queue a chunk at a time; Next hands them out.
type fromChat struct {
	out     chatstream.Emitter
	model   string
	dec     chatstream.Decoder
	started bool
	index   int // the index of the open block, or of the next one
}

// StreamFromChat turns a stream of OpenAI chat.completion.chunk events
// into the Messages events a client expects, for a client that asked for
// model: one message_start, blocks with contiguous indexes (thinking,
// text, tool_use), each stopped before the next starts, tool input as
// input_json_delta fragments that join into each call's arguments, and
// at the end message_delta (stop reason, usage) and message_stop. A
// failure of chunks is returned as it is, for the caller's error event.
func StreamFromChat(chunks provider.EventReader, model string) provider.EventReader {
	f := &fromChat{model: model}
	f.dec.Sink = f
	return chatstream.Translate(chunks, f, &f.out)
}

var messageStop = []byte(`{"type":"message_stop"}`)

func (f *fromChat) start() {
	if f.started {
		return
	}
	f.started = true
	start, b := f.out.Append(`{"type":"message_start","message":{"id":"`)
	b = append(b, newMessageID()...)
	b = append(b, `","type":"message","role":"assistant","model":`...)
	b = appendString(b, f.model)
	b = append(b, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}`...)
	f.out.Emit(start, b)
}

// Chunk translates one chat chunk.
// Usage is the usage the chat stream reported.
func (f *fromChat) Usage() provider.Usage { return f.dec.Usage() }

func (f *fromChat) Chunk(data []byte) {
	f.start()
	f.dec.Chunk(data)
}

// StartBlock starts a content block.
func (f *fromChat) StartBlock(k chatstream.Kind, c *chatstream.Call) {
	start, b := f.out.Append(`{"type":"content_block_start","index":`)
	b = strconv.AppendInt(b, int64(f.index), 10)
	switch k {
	case chatstream.Text:
		b = append(b, `,"content_block":{"type":"text","text":""}}`...)
	case chatstream.Reasoning:
		b = append(b, `,"content_block":{"type":"thinking","thinking":"","signature":""}}`...)
	default:
		b = append(b, `,"content_block":{"type":"tool_use","id":`...)
		b = appendString(b, toolID(c.ID))
		b = append(b, `,"name":`...)
		b = appendString(b, c.Name)
		b = append(b, `,"input":{}}}`...)
	}
	f.out.Emit(start, b)
}

// BlockDelta adds to the open block.
func (f *fromChat) BlockDelta(k chatstream.Kind, data []byte) {
	if k == chatstream.Tool {
		f.inputDelta(string(data))
		return
	}
	start, b := f.out.Append(`{"type":"content_block_delta","index":`)
	b = strconv.AppendInt(b, int64(f.index), 10)
	if k == chatstream.Text {
		b = append(b, `,"delta":{"type":"text_delta","text":`...)
	} else {
		b = append(b, `,"delta":{"type":"thinking_delta","thinking":`...)
	}
	b = append(b, data...)
	f.out.Emit(start, append(b, "}}"...))
}

// StopBlock stops the open block; a tool block whose call sent no argument
// gets {} first, so that its input parses.
func (f *fromChat) StopBlock(k chatstream.Kind, c *chatstream.Call) {
	if k == chatstream.Tool && !c.HasArgs() {
		f.inputDelta("{}")
	}
	start, b := f.out.Append(`{"type":"content_block_stop","index":`)
	b = strconv.AppendInt(b, int64(f.index), 10)
	f.out.Emit(start, append(b, '}'))
	f.index++
}

func (f *fromChat) inputDelta(part string) {
	start, b := f.out.Append(`{"type":"content_block_delta","index":`)
	b = strconv.AppendInt(b, int64(f.index), 10)
	b = append(b, `,"delta":{"type":"input_json_delta","partial_json":`...)
	b = appendString(b, part)
	f.out.Emit(start, append(b, "}}"...))
}

// End closes the message: the blocks, the stop reason and usage.
func (f *fromChat) End() error {
	f.start()
	f.dec.End()
	u := usageOut(f.dec.Usage())
	start, b := f.out.Append(`{"type":"message_delta","delta":{"stop_reason":`)
	b = appendString(b, stopReason(f.dec.Finish(), len(f.dec.Calls()) > 0))
	b = append(b, `,"stop_sequence":null},"usage":{"input_tokens":`...)
	b = strconv.AppendInt(b, u.InputTokens, 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, u.OutputTokens, 10)
	b = append(b, `,"cache_read_input_tokens":`...)
	b = strconv.AppendInt(b, u.CacheReadInputTokens, 10)
	f.out.Emit(start, append(b, "}}"...))
	f.out.EmitStatic(messageStop)
	return nil
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte { return chatstream.AppendString(b, s) }
