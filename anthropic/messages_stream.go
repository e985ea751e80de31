package anthropic

import (
	"errors"
	"io"
	"strconv"

	"github.com/proxycast/caddy-proxycast/chatstream"
	"github.com/proxycast/caddy-proxycast/provider"
)

// fromChat turns chat chunks into Messages events. Events are produced
// into a queue a chunk at a time; Next hands them out.
type fromChat struct {
	chunks   provider.EventReader
	buffered provider.BufferedEvents
	model    string
	dec      chatstream.Decoder
	queue    [][]byte // events ready, in buf, from head on
	head     int
	buf      []byte
	started  bool
	ended    bool
	index    int // the index of the open block, or of the next one
}

// StreamFromChat turns a stream of OpenAI chat.completion.chunk events
// into the Messages events a client expects, for a client that asked for
// model: one message_start, blocks with contiguous indexes (thinking,
// text, tool_use), each stopped before the next starts, tool input as
// input_json_delta fragments that join into each call's arguments, and
// at the end message_delta (stop reason, usage) and message_stop. A
// failure of chunks is returned as it is, for the caller's error event.
func StreamFromChat(chunks provider.EventReader, model string) provider.EventReader {
	f := &fromChat{chunks: chunks, model: model}
	f.dec.Sink = f
	if b, ok := chunks.(provider.BufferedEvents); ok {
		f.buffered = b
		return bufferedFromChat{f}
	}
	return f
}

type bufferedFromChat struct{ *fromChat }

// EventBuffered reports whether the next event is at hand.
func (b bufferedFromChat) EventBuffered() bool {
	return b.head < len(b.queue) || b.ended || b.buffered.EventBuffered()
}

func (f *fromChat) Close() error { return f.chunks.Close() }

func (f *fromChat) Next() ([]byte, error) {
	for f.head == len(f.queue) {
		if f.ended {
			return nil, io.EOF
		}
		f.buf, f.queue, f.head = f.buf[:0], f.queue[:0], 0
		data, err := f.chunks.Next()
		if errors.Is(err, io.EOF) {
			f.end()
			continue
		}
		if err != nil {
			return nil, err
		}
		f.chunk(data)
	}
	ev := f.queue[f.head]
	f.head++
	return ev, nil
}

// emitFrom queues the event that b holds from start: events are written
// one after another into buf, which is reused once they have all been
// read (an event need only stay valid until the next call of Next).
func (f *fromChat) emitFrom(start int, b []byte) {
	f.buf = b
	f.queue = append(f.queue, b[start:len(b):len(b)])
}

var messageStop = []byte(`{"type":"message_stop"}`)

func (f *fromChat) start() {
	if f.started {
		return
	}
	f.started = true
	start, b := len(f.buf), append(f.buf, `{"type":"message_start","message":{"id":"`...)
	b = append(b, newMessageID()...)
	b = append(b, `","type":"message","role":"assistant","model":`...)
	b = appendString(b, f.model)
	b = append(b, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}`...)
	f.emitFrom(start, b)
}

func (f *fromChat) chunk(data []byte) {
	f.start()
	f.dec.Chunk(data)
}

// StartBlock starts a content block.
func (f *fromChat) StartBlock(k chatstream.Kind, c *chatstream.Call) {
	start, b := len(f.buf), append(f.buf, `{"type":"content_block_start","index":`...)
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
	f.emitFrom(start, b)
}

// BlockDelta adds to the open block.
func (f *fromChat) BlockDelta(k chatstream.Kind, data []byte) {
	if k == chatstream.Tool {
		f.inputDelta(string(data))
		return
	}
	start, b := len(f.buf), append(f.buf, `{"type":"content_block_delta","index":`...)
	b = strconv.AppendInt(b, int64(f.index), 10)
	if k == chatstream.Text {
		b = append(b, `,"delta":{"type":"text_delta","text":`...)
	} else {
		b = append(b, `,"delta":{"type":"thinking_delta","thinking":`...)
	}
	b = append(b, data...)
	f.emitFrom(start, append(b, "}}"...))
}

// StopBlock stops the open block; a tool block whose call sent no argument
// gets {} first, so that its input parses.
func (f *fromChat) StopBlock(k chatstream.Kind, c *chatstream.Call) {
	if k == chatstream.Tool && !c.HasArgs() {
		f.inputDelta("{}")
	}
	start, b := len(f.buf), append(f.buf, `{"type":"content_block_stop","index":`...)
	b = strconv.AppendInt(b, int64(f.index), 10)
	f.emitFrom(start, append(b, '}'))
	f.index++
}

func (f *fromChat) inputDelta(part string) {
	start, b := len(f.buf), append(f.buf, `{"type":"content_block_delta","index":`...)
	b = strconv.AppendInt(b, int64(f.index), 10)
	b = append(b, `,"delta":{"type":"input_json_delta","partial_json":`...)
	b = appendString(b, part)
	f.emitFrom(start, append(b, "}}"...))
}

// end closes the message: the blocks, the stop reason and usage.
func (f *fromChat) end() {
	f.start()
	f.dec.End()
	u := usageOut(f.dec.Usage())
	start, b := len(f.buf), append(f.buf, `{"type":"message_delta","delta":{"stop_reason":`...)
	b = appendString(b, stopReason(f.dec.Finish(), len(f.dec.Calls()) > 0))
	b = append(b, `,"stop_sequence":null},"usage":{"input_tokens":`...)
	b = strconv.AppendInt(b, u.InputTokens, 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, u.OutputTokens, 10)
	b = append(b, `,"cache_read_input_tokens":`...)
	b = strconv.AppendInt(b, u.CacheReadInputTokens, 10)
	f.emitFrom(start, append(b, "}}"...))
	f.queue = append(f.queue, messageStop)
	f.ended = true
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte { return chatstream.AppendString(b, s) }
