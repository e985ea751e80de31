package anthropictest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Reply is a scripted answer (SetReply, SetReplyFunc).
type Reply struct {
	// Content is the answer's blocks, in order.
	Content []Block
	// StopReason defaults to tool_use when Content has a tool_use block,
	// else end_turn.
	StopReason string
	// StopSequence is the stop_sequence, "" for null.
	StopSequence string
	// Usage, if not nil, is reported as it is; nil reports the computed
	// counts (see CountTokens) with nothing cached.
	Usage *Usage
}

// Block is one content block of a Reply.
type Block struct {
	// Type is text, tool_use, thinking or redacted_thinking.
	Type string
	// Text of a text block.
	Text string
	// ID, Name and Input (a JSON object; "" is {}) of a tool_use block;
	// an empty ID is generated (toolu_…).
	ID, Name, Input string
	// Thinking and Signature of a thinking block.
	Thinking, Signature string
	// Data of a redacted_thinking block.
	Data string
}

// Text is a text block.
func Text(text string) Block { return Block{Type: "text", Text: text} }

// ToolUse is a tool_use block calling name with input, a JSON object.
func ToolUse(name, input string) Block { return Block{Type: "tool_use", Name: name, Input: input} }

// Thinking is a thinking block.
func Thinking(thinking, signature string) Block {
	return Block{Type: "thinking", Thinking: thinking, Signature: signature}
}

// RedactedThinking is a redacted_thinking block.
func RedactedThinking(data string) Block { return Block{Type: "redacted_thinking", Data: data} }

// Usage is the token usage an answer reports.
type Usage struct {
	Input         int // input_tokens: those neither read from nor written to the cache
	Output        int // output_tokens
	CacheRead     int // cache_read_input_tokens
	CacheCreation int // cache_creation_input_tokens
}

// SetReply scripts the answer to every request for model. A Reply
// without Content removes the script.
func (s *Server) SetReply(model string, r Reply) {
	s.mu.Lock()
	if len(r.Content) == 0 {
		delete(s.replies, model)
	} else {
		s.replies[model] = r
	}
	s.mu.Unlock()
}

// SetReplyFunc scripts answers by a function of the request (checked
// already); it comes before SetReply, and a Reply without Content it
// returns falls back to them. nil removes it.
func (s *Server) SetReplyFunc(fn func(Request) Reply) {
	s.mu.Lock()
	s.replyFunc = fn
	s.mu.Unlock()
}

// messages serves POST /v1/messages: the checks in the order the API
// makes them, then the answer.
func (c *call) messages() {
	if !c.authorize() || !c.jsonBody() {
		return
	}
	req, p := checkBody(c.raw, false)
	if p != nil {
		c.fail(http.StatusBadRequest, errInvalid(p.msg), p.msg)
		return
	}
	s := c.s
	s.mu.Lock()
	known := slices.Contains(s.models, req.model)
	b := s.behaviors[c.key]
	fn := s.replyFunc
	script, scripted := s.replies[req.model]
	s.mu.Unlock()
	if !known {
		c.fail(http.StatusNotFound, apiError{Type: "not_found_error", Message: "model: " + req.model}, fmt.Sprintf("model %q is not one of SetModels", req.model))
		return
	}
	if c.scriptedError(b, req.model) {
		return
	}

	var r Reply
	if fn != nil {
		r = fn(c.rec)
	}
	if len(r.Content) == 0 && scripted {
		r = script
	}
	if len(r.Content) == 0 {
		r = req.answer()
	}
	msg, err := c.message(req, r)
	if err != nil {
		c.fail(http.StatusInternalServerError, errServer, "bad scripted reply: "+err.Error())
		return
	}
	outcome := "ok"
	if b != Normal {
		outcome = "behavior " + b.String()
	}
	switch {
	case req.stream && b != StreamAsJSON:
		c.stream(b, msg, outcome)
	case b == StreamBreak:
		body, _ := json.Marshal(msg.object())
		c.finish(http.StatusOK, outcome)
		c.w.Header().Set("Content-Type", "application/json")
		c.w.WriteHeader(http.StatusOK)
		_, _ = c.w.Write(body[:len(body)/2])
		_ = http.NewResponseController(c.w).Flush()
		panic(http.ErrAbortHandler)
	default:
		c.finish(http.StatusOK, outcome)
		writeJSON(c.w, http.StatusOK, msg.object())
	}
}

// answer is what the fake says without a script.
func (req *request) answer() Reply {
	if req.maxTokens == 0 {
		return Reply{StopReason: "max_tokens"}
	}
	text := req.lastUserText()
	var content []Block
	if req.thinking {
		t := "thinking about: " + text
		content = append(content, Thinking(t, signature(t)))
	}
	if calls := req.toolCalls(text); len(calls) > 0 {
		return Reply{Content: append(content, calls...)}
	}
	if results := req.lastToolResults(); results != "" {
		return Reply{Content: append(content, Text("tool said: "+results))}
	}
	return Reply{Content: append(content, Text("echo: "+text))}
}

// signature is the fake's signature of a thinking text.
func signature(thinking string) string {
	sum := sha256.Sum256([]byte(thinking))
	return "sig_" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// lastUserText is the text of the last user message; "ok" when it has no
// text.
func (req *request) lastUserText() string {
	for i := len(req.msgs) - 1; i >= 0; i-- {
		if req.msgs[i].role != "user" {
			continue
		}
		if t := blocksText(req.msgs[i].blocks); t != "" {
			return t
		}
		return "ok"
	}
	return "ok"
}

// lastToolResults is the text of the tool results of the last message.
func (req *request) lastToolResults() string {
	last := req.msgs[len(req.msgs)-1]
	if last.role != "user" {
		return ""
	}
	var texts []string
	for _, b := range last.blocks {
		if b["type"] == "tool_result" {
			texts = append(texts, resultText(b["content"]))
		}
	}
	return strings.Join(texts, " ")
}

// blocksText joins the text blocks' text with spaces.
func blocksText(blocks []block) string {
	var texts []string
	for _, b := range blocks {
		if b["type"] == "text" {
			texts = append(texts, b["text"].(string))
		}
	}
	return strings.Join(texts, " ")
}

// resultText is a tool_result's content as text.
func resultText(v any) string {
	switch c := v.(type) {
	case string:
		return c
	case []any:
		var bs []block
		for _, b := range c {
			if m, ok := b.(map[string]any); ok {
				bs = append(bs, m)
			}
		}
		return blocksText(bs)
	}
	return ""
}

// toolCalls are the tool_use blocks the fake answers with: those the last
// user text asks for (`call <name> <json>`, joined by "and"), or what
// tool_choice forces.
func (req *request) toolCalls(text string) []Block {
	if len(req.tools) == 0 || req.choice == "none" || req.msgs[len(req.msgs)-1].role != "user" {
		return nil
	}
	calls := parseCalls(text)
	calls = slices.DeleteFunc(calls, func(b Block) bool { return !slices.Contains(req.toolNames, b.Name) })
	switch {
	case req.forced != "":
		calls = slices.DeleteFunc(calls, func(b Block) bool { return b.Name != req.forced })
		if len(calls) == 0 {
			calls = []Block{ToolUse(req.forced, "{}")}
		}
	case req.choice == "any" && len(calls) == 0:
		calls = []Block{ToolUse(req.toolNames[0], "{}")}
	}
	if !req.parallel && len(calls) > 1 {
		calls = calls[:1]
	}
	return calls
}

// parseCalls reads "call <name> <json object>", repeated with "and", as
// the whole of text.
func parseCalls(text string) []Block {
	rest := strings.TrimSpace(text)
	var calls []Block
	for {
		after, ok := strings.CutPrefix(rest, "call ")
		if !ok {
			return nil
		}
		after = strings.TrimSpace(after)
		end := strings.IndexAny(after, " \t\r\n")
		if end <= 0 {
			return nil
		}
		name, tail := after[:end], after[end:]
		dec := json.NewDecoder(strings.NewReader(tail))
		var input json.RawMessage
		if dec.Decode(&input) != nil {
			return nil
		}
		var compact bytes.Buffer
		if json.Compact(&compact, input) != nil || compact.Len() == 0 || compact.Bytes()[0] != '{' {
			return nil
		}
		calls = append(calls, ToolUse(name, compact.String()))
		rest = strings.TrimSpace(tail[dec.InputOffset():])
		if rest == "" {
			return calls
		}
		if rest, ok = strings.CutPrefix(rest, "and "); !ok {
			return nil
		}
	}
}

// answerMessage is an answer ready to send.
type answerMessage struct {
	id, model    string
	blocks       []Block
	stopReason   string
	stopSequence string
	usage        Usage
}

// message completes a Reply: ids, stop reason and usage.
func (c *call) message(req *request, r Reply) (*answerMessage, error) {
	m := &answerMessage{id: newID("msg_01"), model: req.model, stopReason: r.StopReason, stopSequence: r.StopSequence}
	out := 0
	for _, b := range r.Content {
		switch b.Type {
		case "text":
			out += words(b.Text)
		case "tool_use":
			if b.Input == "" {
				b.Input = "{}"
			}
			var input map[string]any
			if json.Unmarshal([]byte(b.Input), &input) != nil || input == nil {
				return nil, fmt.Errorf("tool_use %s: input %q is not a JSON object", b.Name, b.Input)
			}
			b.Input = compactJSON(b.Input)
			if b.ID == "" {
				b.ID = newID("toolu_01")
			}
			out += words(b.Name) + words(b.Input)
			if m.stopReason == "" {
				m.stopReason = "tool_use"
			}
		case "thinking":
			out += words(b.Thinking)
		case "redacted_thinking":
			out++
		default:
			return nil, fmt.Errorf("unknown block type %q", b.Type)
		}
		m.blocks = append(m.blocks, b)
	}
	if m.stopReason == "" {
		m.stopReason = "end_turn"
	}
	if r.Usage != nil {
		m.usage = *r.Usage
	} else {
		m.usage = Usage{Input: req.inputTokens(), Output: out}
	}
	return m, nil
}

func (b Block) object() obj {
	switch b.Type {
	case "text":
		return obj{{"type", "text"}, {"text", b.Text}}
	case "tool_use":
		return obj{{"type", "tool_use"}, {"id", b.ID}, {"name", b.Name}, {"input", json.RawMessage(b.Input)}}
	case "thinking":
		return obj{{"type", "thinking"}, {"thinking", b.Thinking}, {"signature", b.Signature}}
	default:
		return obj{{"type", "redacted_thinking"}, {"data", b.Data}}
	}
}

func (m *answerMessage) stopSeq() any {
	if m.stopSequence == "" {
		return nil
	}
	return m.stopSequence
}

// object is the message object of a plain answer.
func (m *answerMessage) object() obj {
	content := make([]obj, 0, len(m.blocks))
	for _, b := range m.blocks {
		content = append(content, b.object())
	}
	return obj{
		{"id", m.id}, {"type", "message"}, {"role", "assistant"}, {"model", m.model},
		{"content", content}, {"stop_reason", m.stopReason}, {"stop_sequence", m.stopSeq()},
		{"usage", obj{
			{"input_tokens", m.usage.Input},
			{"cache_creation_input_tokens", m.usage.CacheCreation},
			{"cache_read_input_tokens", m.usage.CacheRead},
			{"output_tokens", m.usage.Output},
			{"service_tier", "standard"},
		}},
	}
}

// event is one server-sent event of a stream.
type event struct {
	name string
	data obj
}

// events are the stream of an answer, in the API's order.
func (m *answerMessage) events() []event {
	start := obj{
		{"id", m.id}, {"type", "message"}, {"role", "assistant"}, {"model", m.model},
		{"content", []any{}}, {"stop_reason", nil}, {"stop_sequence", nil},
		{"usage", obj{
			{"input_tokens", m.usage.Input},
			{"cache_creation_input_tokens", m.usage.CacheCreation},
			{"cache_read_input_tokens", m.usage.CacheRead},
			{"output_tokens", min(1, m.usage.Output)},
			{"service_tier", "standard"},
		}},
	}
	evs := []event{
		{"message_start", obj{{"type", "message_start"}, {"message", start}}},
		{"ping", obj{{"type", "ping"}}},
	}
	deltaEv := func(i int, d obj) event {
		return event{"content_block_delta", obj{{"type", "content_block_delta"}, {"index", i}, {"delta", d}}}
	}
	for i, b := range m.blocks {
		var begin obj
		var deltas []obj
		switch b.Type {
		case "text":
			begin = obj{{"type", "text"}, {"text", ""}}
			for _, part := range split(b.Text, 10) {
				deltas = append(deltas, obj{{"type", "text_delta"}, {"text", part}})
			}
		case "tool_use":
			begin = obj{{"type", "tool_use"}, {"id", b.ID}, {"name", b.Name}, {"input", obj{}}}
			for _, frag := range fragments(compactJSON(b.Input)) {
				deltas = append(deltas, obj{{"type", "input_json_delta"}, {"partial_json", frag}})
			}
		case "thinking":
			begin = obj{{"type", "thinking"}, {"thinking", ""}, {"signature", ""}}
			for _, part := range split(b.Thinking, 12) {
				deltas = append(deltas, obj{{"type", "thinking_delta"}, {"thinking", part}})
			}
			deltas = append(deltas, obj{{"type", "signature_delta"}, {"signature", b.Signature}})
		default:
			begin = b.object()
		}
		evs = append(evs, event{"content_block_start", obj{{"type", "content_block_start"}, {"index", i}, {"content_block", begin}}})
		for _, d := range deltas {
			evs = append(evs, deltaEv(i, d))
		}
		evs = append(evs, event{"content_block_stop", obj{{"type", "content_block_stop"}, {"index", i}}})
	}
	return append(evs,
		event{"message_delta", obj{
			{"type", "message_delta"},
			{"delta", obj{{"stop_reason", m.stopReason}, {"stop_sequence", m.stopSeq()}}},
			{"usage", obj{
				{"input_tokens", m.usage.Input},
				{"cache_creation_input_tokens", m.usage.CacheCreation},
				{"cache_read_input_tokens", m.usage.CacheRead},
				{"output_tokens", m.usage.Output},
			}},
		}},
		event{"message_stop", obj{{"type", "message_stop"}}},
	)
}

var overloadedEvent = event{"error", obj{{"type", "error"}, {"error", errOverloaded}}}

// split cuts text into parts of at most size runes, at least two when it
// has two runes, so that a client must join deltas.
func split(text string, size int) []string {
	r := []rune(text)
	if len(r) == 0 {
		return nil
	}
	size = max(1, min(size, (len(r)+1)/2))
	var out []string
	for len(r) > 0 {
		k := min(size, len(r))
		out = append(out, string(r[:k]))
		r = r[k:]
	}
	return out
}

// fragmentSizes are the rune counts input_json_delta fragments take in
// turn, so that cuts fall inside names, strings and numbers.
var fragmentSizes = []int{1, 4, 2, 7, 3, 5}

// fragments cuts a tool's input JSON as the API streams it: an empty
// fragment first, then pieces of odd sizes.
func fragments(input string) []string {
	out := []string{""}
	r := []rune(input)
	for i := 0; len(r) > 0; i++ {
		k := min(fragmentSizes[i%len(fragmentSizes)], len(r))
		out = append(out, string(r[:k]))
		r = r[k:]
	}
	return out
}

func compactJSON(s string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(s)) != nil {
		return s
	}
	return b.String()
}

// stream answers as server-sent events, shaped by b.
func (c *call) stream(b Behavior, m *answerMessage, outcome string) {
	evs := m.events()
	cut := len(evs)
	if b == StreamOverloaded || b == StreamBreak {
		cut = 1 // after message_start when there is no delta
		for i, ev := range evs {
			if ev.name == "content_block_delta" {
				cut = i + 1
				break
			}
		}
	}
	switch b {
	case StreamOverloaded:
		evs = append(evs[:cut:cut], overloadedEvent)
	case StreamOverloadedAtStart:
		evs = []event{overloadedEvent}
	case StreamBreak:
		evs = evs[:cut]
	}

	c.finish(http.StatusOK, outcome)
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	c.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(c.w)

	s := c.s
	s.mu.Lock()
	gate := s.gates[c.key]
	pause := s.streamDelay
	s.mu.Unlock()
	ctx := c.r.Context()
	gone := func() {
		select {
		case <-s.done:
		default:
			s.noteCanceled(c.idx)
		}
	}
	for i, ev := range evs {
		if i > 0 && !c.wait(gate, pause, gone) {
			return
		}
		if ctx.Err() != nil {
			gone()
			return
		}
		data, _ := json.Marshal(ev.data)
		frame := append(append(append([]byte("event: "+ev.name+"\ndata: "), data...), '\n'), '\n')
		if _, err := c.w.Write(frame); err != nil {
			gone()
			return
		}
		if err := rc.Flush(); err != nil {
			gone()
			return
		}
	}
	if b == StreamBreak {
		// Drop the connection: no message_stop, and no end of the
		// chunked body either.
		panic(http.ErrAbortHandler)
	}
}

// wait holds a stream between two events for the gate and the pause; it
// reports false when the stream must end.
func (c *call) wait(gate <-chan struct{}, pause time.Duration, gone func()) bool {
	ctx := c.r.Context()
	if pause > 0 {
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.s.done:
			return false
		case <-ctx.Done():
			gone()
			return false
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-c.s.done:
			return false
		case <-ctx.Done():
			gone()
			return false
		}
	}
	return true
}
