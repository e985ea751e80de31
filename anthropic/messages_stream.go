package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/proxycast/caddy-proxycast/provider"
)

type chunkToolCall struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string  `json:"name"`
		Arguments *string `json:"arguments"`
	} `json:"function"`
}

// Kinds of open block.
const (
	blockNone = iota
	blockText
	blockThinking
	blockTool
)

// streamCall is one tool call of a stream.
type streamCall struct {
	index   *int // the upstream's index, when it sends one
	id      string
	name    string
	args    []byte // every fragment so far
	json    jsonProgress
	sent    int // len(args) already sent in the call's block
	opened  bool
	closed  bool
	emitted bool // a non-empty fragment went out
}

// fromChat turns chat chunks into Messages events. Events are produced
// into a queue a chunk at a time; Next hands them out.
type fromChat struct {
	chunks   provider.EventReader
	buffered provider.BufferedEvents
	model    string
	// held are text and thinking that came while a tool call's input
	// was unfinished; they follow its block.
	held    []heldDelta
	queue   [][]byte // events ready, in buf, from head on
	head    int
	buf     []byte
	started bool
	ended   bool
	open    int
	index   int // the index of the open block, or of the next one
	calls   []*streamCall
	live    *streamCall
	finish  string
	usage   provider.Usage
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

var (
	messageStop  = []byte(`{"type":"message_stop"}`)
	usageKey     = []byte(`"usage"`)
	reasoningKey = []byte(`"reasoning"`)
	toolCallsKey = []byte(`"tool_calls"`)
	finishKey    = []byte(`"finish_reason"`)
)

// namesFinish reports whether a choice may have a finish_reason that is a
// string; most chunks' is null, and need not be read.
func namesFinish(choice []byte) bool {
	i := bytes.Index(choice, finishKey)
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(choice[i+len(finishKey):], " \t\r\n")
	rest, ok := bytes.CutPrefix(rest, []byte{':'})
	return !ok || !bytes.HasPrefix(bytes.TrimLeft(rest, " \t\r\n"), []byte("null"))
}

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

// chunk translates one chat chunk. Most chunks carry a little text: it
// is found by scanning and its JSON string copied as it came, and only
// chunks with tool calls are decoded.
func (f *fromChat) chunk(data []byte) {
	f.start()
	// One pass finds both members, where the chunk mentions usage at all.
	var choices []byte
	if bytes.Contains(data, usageKey) {
		var usage []byte
		choices, usage = provider.Fields2(data, "choices", "usage")
		if u, ok := provider.ParseUsage(usage); ok {
			f.usage = u
		}
	} else {
		choices, _ = provider.Field(data, "choices")
	}
	choice := provider.FirstElement(choices)
	if len(choice) == 0 || choice[0] != '{' {
		return
	}
	d, _ := provider.Field(choice, "delta")
	// Scans that find nothing in most chunks are ruled out first.
	c, r := provider.Fields2(d, "content", "reasoning_content")
	if nonEmptyString(r) {
		f.delta(blockThinking, r)
	} else if bytes.Contains(d, reasoningKey) {
		if r, ok := provider.Field(d, "reasoning"); ok && nonEmptyString(r) {
			f.delta(blockThinking, r)
		}
	}
	if ok := c != nil; ok && nonEmptyString(c) {
		f.delta(blockText, c)
	} else if ok && len(c) > 0 && c[0] == '[' {
		thinking, text := contentParts(c)
		if thinking != "" {
			f.delta(blockThinking, appendString(nil, thinking))
		}
		if text != "" {
			f.delta(blockText, appendString(nil, text))
		}
	}
	if !bytes.Contains(d, toolCallsKey) {
		// no tool calls
	} else if tc, ok := provider.Field(d, "tool_calls"); ok && len(tc) > 0 && tc[0] == '[' {
		var calls []chunkToolCall
		if json.Unmarshal(tc, &calls) == nil {
			for i := range calls {
				f.toolFragment(&calls[i])
			}
		}
	}
	if !namesFinish(choice) {
		return
	}
	if fr, ok := provider.StringField(choice, "finish_reason"); ok && fr != "" {
		f.finish = fr
	}
}

// contentParts reads content given as parts, as Mistral's reasoning
// models send it: text parts, and thinking parts holding text parts.
func contentParts(raw []byte) (thinking, text string) {
	var parts []struct {
		Type     string          `json:"type"`
		Text     string          `json:"text"`
		Thinking json.RawMessage `json:"thinking"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return "", ""
	}
	var th, tx strings.Builder
	for _, p := range parts {
		switch p.Type {
		case "text":
			tx.WriteString(p.Text)
		case "thinking":
			var s string
			if json.Unmarshal(p.Thinking, &s) == nil {
				th.WriteString(s)
				continue
			}
			var inner []struct{ Type, Text string }
			if json.Unmarshal(p.Thinking, &inner) == nil {
				for _, in := range inner {
					th.WriteString(in.Text)
				}
			}
		}
	}
	return th.String(), tx.String()
}

func nonEmptyString(raw []byte) bool { return len(raw) > 2 && raw[0] == '"' }

// delta sends text or thinking, given as a JSON string, in a block of
// that kind.
func (f *fromChat) delta(kind int, raw []byte) {
	if !plainJSONString(raw) {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return
		}
		raw = appendString(nil, s)
	}
	if f.open == blockTool && !f.live.json.complete() {
		f.held = append(f.held, heldDelta{kind, append([]byte(nil), raw...)})
		return
	}
	if f.open != kind {
		f.closeAll()
		start, b := len(f.buf), append(f.buf, `{"type":"content_block_start","index":`...)
		b = strconv.AppendInt(b, int64(f.index), 10)
		if kind == blockText {
			b = append(b, `,"content_block":{"type":"text","text":""}}`...)
		} else {
			b = append(b, `,"content_block":{"type":"thinking","thinking":"","signature":""}}`...)
		}
		f.emitFrom(start, b)
		f.open = kind
	}
	start, b := len(f.buf), append(f.buf, `{"type":"content_block_delta","index":`...)
	b = strconv.AppendInt(b, int64(f.index), 10)
	if kind == blockText {
		b = append(b, `,"delta":{"type":"text_delta","text":`...)
	} else {
		b = append(b, `,"delta":{"type":"thinking_delta","thinking":`...)
	}
	b = append(b, raw...)
	f.emitFrom(start, append(b, "}}"...))
}

// plainJSONString reports whether raw is a JSON string that can be
// copied as it is: no control characters, only JSON's escapes.
func plainJSONString(raw []byte) bool {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	for i := 1; i < len(raw)-1; i++ {
		switch c := raw[i]; {
		case c < 0x20 || c == '"':
			return false
		case c == '\\':
			i++
			if i >= len(raw)-1 || !strings.ContainsRune(`"\/bfnrtu`, rune(raw[i])) {
				return false
			}
		}
	}
	return true
}

// stopBlock stops the open block; a tool block whose call sent no
// argument gets {} first, so that its input parses.
func (f *fromChat) stopBlock() {
	if f.open == blockNone {
		return
	}
	wasTool := f.open == blockTool
	if wasTool {
		c := f.live
		f.flushCall(c)
		if !c.json.started {
			f.inputDelta("{}") // nothing, or only spaces: input must parse
		}
		c.closed = true
		f.live = nil
	}
	start, b := len(f.buf), append(f.buf, `{"type":"content_block_stop","index":`...)
	b = strconv.AppendInt(b, int64(f.index), 10)
	f.emitFrom(start, append(b, '}'))
	f.open = blockNone
	f.index++
	if wasTool && len(f.held) > 0 {
		held := f.held
		f.held = nil
		for _, h := range held {
			f.delta(h.kind, h.raw)
		}
	}
}

// closeAll stops the open block and any that the deltas held for it
// open in turn.
func (f *fromChat) closeAll() {
	for f.open != blockNone {
		f.stopBlock()
	}
}

// heldDelta is a text or thinking delta waiting for a tool block.
type heldDelta struct {
	kind int
	raw  []byte
}

// jsonProgress follows a tool call's arguments as they arrive, to tell
// when they make a whole JSON value, without parsing them again for each
// fragment.
type jsonProgress struct {
	depth            int
	started          bool // a non-space byte came
	inString, escape bool
}

func (p *jsonProgress) feed(frag string) {
	for i := 0; i < len(frag); i++ {
		c := frag[i]
		switch {
		case p.inString:
			switch {
			case p.escape:
				p.escape = false
			case c == '\\':
				p.escape = true
			case c == '"':
				p.inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case c == '"':
			p.started, p.inString = true, true
		case c == '{' || c == '[':
			p.started = true
			p.depth++
		case c == '}' || c == ']':
			p.depth--
		default:
			p.started = true
		}
	}
}

// complete reports whether the arguments so far close every object,
// array and string they open.
func (p *jsonProgress) complete() bool { return p.started && p.depth <= 0 && !p.inString }

// callFor finds the call a fragment belongs to: by its index, else by a
// new id, else the last call.
func (f *fromChat) callFor(tc *chunkToolCall) *streamCall {
	if tc.Index != nil {
		for i := len(f.calls) - 1; i >= 0; i-- {
			c := f.calls[i]
			if c.index != nil && *c.index == *tc.Index {
				if tc.ID != "" && c.id != "" && tc.ID != c.id {
					break // the index reused for a new call
				}
				return c
			}
		}
	} else if tc.ID == "" && len(f.calls) > 0 {
		return f.calls[len(f.calls)-1]
	} else {
		for _, c := range f.calls {
			if c.id == tc.ID {
				return c
			}
		}
	}
	c := &streamCall{index: tc.Index, id: tc.ID}
	f.calls = append(f.calls, c)
	return c
}

func (f *fromChat) toolFragment(tc *chunkToolCall) {
	c := f.callFor(tc)
	if c.id == "" {
		c.id = tc.ID
	}
	if c.name == "" {
		c.name = tc.Function.Name
	}
	if a := tc.Function.Arguments; a != nil {
		c.args = append(c.args, *a...)
		c.json.feed(*a)
	}
	switch {
	case c == f.live:
		f.flushCall(c)
	case c.closed:
		// A fragment for a call whose block has ended: only an upstream
		// that interleaves calls after one looked complete sends it.
	case f.live == nil || f.live.json.complete():
		// The live call looks complete: the next one begins.
		f.openNext()
	}
}

// openNext stops the open block and opens the first call not yet
// opened, with what it has so far.
func (f *fromChat) openNext() {
	for _, c := range f.calls {
		if c.opened {
			continue
		}
		f.closeAll()
		c.opened = true
		start, b := len(f.buf), append(f.buf, `{"type":"content_block_start","index":`...)
		b = strconv.AppendInt(b, int64(f.index), 10)
		b = append(b, `,"content_block":{"type":"tool_use","id":`...)
		b = appendString(b, toolID(c.id))
		b = append(b, `,"name":`...)
		b = appendString(b, c.name)
		f.emitFrom(start, append(b, `,"input":{}}}`...))
		f.open, f.live = blockTool, c
		f.flushCall(c)
		return
	}
}

// flushCall sends what the live call has that its block lacks.
func (f *fromChat) flushCall(c *streamCall) {
	if c.sent < len(c.args) {
		f.inputDelta(string(c.args[c.sent:]))
		c.sent = len(c.args)
		c.emitted = true
	}
}

func (f *fromChat) inputDelta(part string) {
	start, b := len(f.buf), append(f.buf, `{"type":"content_block_delta","index":`...)
	b = strconv.AppendInt(b, int64(f.index), 10)
	b = append(b, `,"delta":{"type":"input_json_delta","partial_json":`...)
	b = appendString(b, part)
	f.emitFrom(start, append(b, "}}"...))
}

// end closes the message: the open block, the calls not yet opened, the
// stop reason and usage.
func (f *fromChat) end() {
	f.start()
	for {
		pending := false
		for _, c := range f.calls {
			if !c.opened {
				pending = true
			}
		}
		if !pending {
			break
		}
		f.openNext()
	}
	f.closeAll()
	u := usageOut(f.usage)
	start, b := len(f.buf), append(f.buf, `{"type":"message_delta","delta":{"stop_reason":`...)
	b = appendString(b, stopReason(f.finish, len(f.calls) > 0))
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

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
