package chatstream

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/proxycast/caddy-proxycast/provider"
)

// Kind is the kind of a block.
type Kind uint8

const (
	// None is no block.
	None Kind = iota
	// Reasoning is the model's thinking (reasoning_content, reasoning,
	// or thinking parts).
	Reasoning
	// Text is the answer's text.
	Text
	// Tool is one tool call.
	Tool
)

// Call is one tool call of a stream.
type Call struct {
	// ID and Name are the call's, as far as the upstream has sent them
	// (both come with a call's first fragment at every upstream known).
	ID, Name string
	// Args holds every argument fragment so far.
	Args []byte

	index  *int // the upstream's index, when it sends one
	json   progress
	sent   int // len(Args) already given to the sink
	opened bool
	closed bool
}

// HasArgs reports whether the call's arguments have anything but
// spaces: a call that sent none needs "{}" to parse.
func (c *Call) HasArgs() bool { return c.json.started }

// A Sink receives a stream's blocks.
type Sink interface {
	// StartBlock begins a block; c is the call of a Tool block, else
	// nil.
	StartBlock(k Kind, c *Call)
	// BlockDelta adds to the open block: for Text and Reasoning, data is
	// a JSON string that may be copied as it is; for Tool, the next
	// fragment of the call's arguments.
	BlockDelta(k Kind, data []byte)
	// StopBlock ends the open block.
	StopBlock(k Kind, c *Call)
}

// A Decoder reads chat.completion.chunk events (Chunk) into a Sink, one
// block at a time. Text and reasoning that arrive while a tool call's
// arguments are unfinished are held, and follow its block. The zero
// Decoder is not usable; set Sink.
type Decoder struct {
	Sink Sink

	held   []heldDelta
	open   Kind
	calls  []*Call
	live   *Call
	finish string
	usage  provider.Usage
}

// heldDelta is a text or reasoning delta waiting for a tool block.
type heldDelta struct {
	kind Kind
	raw  []byte
}

type chunkToolCall struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string  `json:"name"`
		Arguments *string `json:"arguments"`
	} `json:"function"`
}

// Finish is the finish_reason the stream has given ("" while none).
func (d *Decoder) Finish() string { return d.finish }

// Usage is the last usage the stream reported.
func (d *Decoder) Usage() provider.Usage { return d.usage }

// Calls are the stream's tool calls so far, in the order they began.
func (d *Decoder) Calls() []*Call { return d.calls }

// Chunk reads one chat.completion.chunk. Most chunks carry a little
// text: it is found in one pass and its JSON string passed on as it came;
// only tool calls are decoded.
func (d *Decoder) Chunk(data []byte) {
	ch := readChunk(data)
	if ch.usage != nil {
		if u, ok := provider.ParseUsage(ch.usage); ok {
			d.usage = u
		}
	}
	if !ch.choice {
		return
	}
	if r := ch.reasoningContent; nonEmptyString(r) {
		d.delta(Reasoning, r)
	} else if r := ch.reasoning; nonEmptyString(r) {
		d.delta(Reasoning, r)
	}
	if c := ch.content; nonEmptyString(c) {
		d.delta(Text, c)
	} else if len(c) > 0 && c[0] == '[' {
		thinking, text := ContentParts(c)
		if thinking != "" {
			d.delta(Reasoning, AppendString(nil, thinking))
		}
		if text != "" {
			d.delta(Text, AppendString(nil, text))
		}
	}
	if tc := ch.toolCalls; len(tc) > 0 && tc[0] == '[' {
		var calls []chunkToolCall
		if json.Unmarshal(tc, &calls) == nil {
			for i := range calls {
				d.toolFragment(&calls[i])
			}
		}
	}
	if fr := ch.finishReason; nonEmptyString(fr) {
		if bytes.IndexByte(fr, '\\') < 0 {
			d.finish = string(fr[1 : len(fr)-1])
		} else {
			var s string
			if json.Unmarshal(fr, &s) == nil && s != "" {
				d.finish = s
			}
		}
	}
}

// End closes the stream's blocks: the open one, and the calls not yet
// opened.
func (d *Decoder) End() {
	for {
		pending := false
		for _, c := range d.calls {
			if !c.opened {
				pending = true
			}
		}
		if !pending {
			break
		}
		d.openNext()
	}
	d.closeAll()
}

// ContentParts reads content given as parts, as Mistral's reasoning
// models send it: text parts, and thinking parts holding text parts.
func ContentParts(raw []byte) (thinking, text string) {
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

// delta passes text or reasoning, given as a JSON string, to a block of
// that kind.
func (d *Decoder) delta(kind Kind, raw []byte) {
	if !PlainString(raw) {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return
		}
		raw = AppendString(nil, s)
	}
	if d.open == Tool && !d.live.json.complete() {
		d.held = append(d.held, heldDelta{kind, append([]byte(nil), raw...)})
		return
	}
	if d.open != kind {
		d.closeAll()
		d.Sink.StartBlock(kind, nil)
		d.open = kind
	}
	d.Sink.BlockDelta(kind, raw)
}

// closeBlock ends the open block, then passes on what was held for it.
func (d *Decoder) closeBlock() {
	if d.open == None {
		return
	}
	kind, c := d.open, d.live
	if kind == Tool {
		d.flushCall(c)
		c.closed = true
		d.live = nil
	}
	d.open = None
	d.Sink.StopBlock(kind, c)
	if kind == Tool && len(d.held) > 0 {
		held := d.held
		d.held = nil
		for _, h := range held {
			d.delta(h.kind, h.raw)
		}
	}
}

// closeAll ends the open block and any that the deltas held for it open
// in turn.
func (d *Decoder) closeAll() {
	for d.open != None {
		d.closeBlock()
	}
}

// callFor finds the call a fragment belongs to: by its index, else by a
// new id, else the last call.
func (d *Decoder) callFor(tc *chunkToolCall) *Call {
	if tc.Index != nil {
		for i := len(d.calls) - 1; i >= 0; i-- {
			c := d.calls[i]
			if c.index != nil && *c.index == *tc.Index {
				if tc.ID != "" && c.ID != "" && tc.ID != c.ID {
					break // the index reused for a new call
				}
				return c
			}
		}
	} else if tc.ID == "" && len(d.calls) > 0 {
		return d.calls[len(d.calls)-1]
	} else {
		for _, c := range d.calls {
			if c.ID == tc.ID {
				return c
			}
		}
	}
	c := &Call{index: tc.Index, ID: tc.ID}
	d.calls = append(d.calls, c)
	return c
}

func (d *Decoder) toolFragment(tc *chunkToolCall) {
	c := d.callFor(tc)
	if c.ID == "" {
		c.ID = tc.ID
	}
	if c.Name == "" {
		c.Name = tc.Function.Name
	}
	if a := tc.Function.Arguments; a != nil {
		c.Args = append(c.Args, *a...)
		c.json.feed(*a)
	}
	switch {
	case c == d.live:
		d.flushCall(c)
	case c.closed:
		// A fragment for a call whose block has ended: only an upstream
		// that interleaves calls after one looked complete sends it.
	case d.live == nil || d.live.json.complete():
		// The live call looks complete: the next one begins.
		d.openNext()
	}
}

// openNext ends the open block and opens the first call not yet opened,
// with what it has so far.
func (d *Decoder) openNext() {
	for _, c := range d.calls {
		if c.opened {
			continue
		}
		d.closeAll()
		c.opened = true
		d.Sink.StartBlock(Tool, c)
		d.open, d.live = Tool, c
		d.flushCall(c)
		return
	}
}

// flushCall passes on what the live call has that its block lacks.
func (d *Decoder) flushCall(c *Call) {
	if c.sent < len(c.Args) {
		d.Sink.BlockDelta(Tool, c.Args[c.sent:])
		c.sent = len(c.Args)
	}
}
