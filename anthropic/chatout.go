package anthropic

// Messages answers and streams as OpenAI chat completions and chunk
// streams, for chat clients whose model routes to a provider that speaks
// only Anthropic's Messages API.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// revAnswer is what the translation reads of a Messages answer.
type revAnswer struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	StopReason string `json:"stop_reason"`
	Content    []struct {
		Type      string          `json:"type"`
		Text      string          `json:"text"`
		Thinking  string          `json:"thinking"`
		Signature string          `json:"signature"`
		Data      string          `json:"data"`
		ID        string          `json:"id"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
	} `json:"content"`
	Usage revUsage `json:"usage"`
}

// revUsage is a Messages usage object; members a message_delta leaves
// out stay nil.
type revUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
}

// update takes the counts u reports: all of them from a message_start or
// an answer, and from a message_delta its output and whatever input
// counts it has (Anthropic repeats them there, some compatible services
// send zeros).
func (u *revUsage) update(n revUsage, final bool) {
	set := func(dst **int64, v *int64) {
		if v != nil && (!final || *v > 0 || *dst == nil) {
			*dst = v
		}
	}
	set(&u.InputTokens, n.InputTokens)
	set(&u.CacheCreationInputTokens, n.CacheCreationInputTokens)
	set(&u.CacheReadInputTokens, n.CacheReadInputTokens)
	if n.OutputTokens != nil {
		u.OutputTokens = n.OutputTokens
	}
}

// chat is OpenAI's usage object for u: prompt tokens count the cached
// and cache-written ones too, as OpenAI's do.
func (u revUsage) chat() revChatUsage {
	v := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	prompt := v(u.InputTokens) + v(u.CacheReadInputTokens) + v(u.CacheCreationInputTokens)
	out := v(u.OutputTokens)
	return revChatUsage{PromptTokens: prompt, CompletionTokens: out, TotalTokens: prompt + out,
		PromptTokensDetails: revCachedTokens{CachedTokens: v(u.CacheReadInputTokens)}}
}

type revChatUsage struct {
	PromptTokens        int64           `json:"prompt_tokens"`
	CompletionTokens    int64           `json:"completion_tokens"`
	TotalTokens         int64           `json:"total_tokens"`
	PromptTokensDetails revCachedTokens `json:"prompt_tokens_details"`
}

type revCachedTokens struct {
	CachedTokens int64 `json:"cached_tokens"`
}

type revCompletion struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []revAnswerChoice `json:"choices"`
	Usage   revChatUsage      `json:"usage"`
}

type revAnswerChoice struct {
	Index        int              `json:"index"`
	Message      revAnswerMessage `json:"message"`
	FinishReason string           `json:"finish_reason"`
}

type revAnswerMessage struct {
	Role string `json:"role"`
	// Content is null when the answer is tool calls alone.
	Content          *string      `json:"content"`
	ReasoningContent string       `json:"reasoning_content,omitempty"`
	ToolCalls        []revCallOut `json:"tool_calls,omitempty"`
	// ThinkingBlocks carry the thinking with its signatures (LiteLLM's
	// convention), for a client that sends the message back: Anthropic
	// takes back signed thinking only, which tool use with thinking
	// needs. MessagesRequest reads them.
	ThinkingBlocks []revThinkingBlockOut `json:"thinking_blocks,omitempty"`
}

type revCallOut struct {
	ID       string         `json:"id"`
	Type     string         `json:"type"`
	Function revFuncCallOut `json:"function"`
}

type revFuncCallOut struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type revThinkingBlockOut struct {
	Type      string  `json:"type"`
	Thinking  *string `json:"thinking,omitempty"`
	Signature string  `json:"signature,omitempty"`
	Data      string  `json:"data,omitempty"`
}

// revFinishReason is OpenAI's finish_reason for a Messages stop_reason.
// pause_turn (a server tool's long turn, which the client may resume)
// and stop reasons yet unknown end the answer as a stop.
func revFinishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

// revCompletionID is the chat id for a Messages id: its suffix, or a
// random one.
func revCompletionID(msgID string) string {
	if rest := strings.TrimPrefix(msgID, "msg_"); rest != "" {
		return "chatcmpl-" + rest
	}
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := []byte("chatcmpl-012345678901234567890123")
	r := b[len("chatcmpl-"):]
	_, _ = rand.Read(r)
	for i := range r {
		r[i] = alphabet[int(r[i])%len(alphabet)]
	}
	return string(b)
}

// ChatAnswer translates a Messages answer into an OpenAI chat completion
// for a client that asked for model: text blocks joined as the content,
// thinking blocks (joined by blank lines) as reasoning_content and, with
// their signatures, as thinking_blocks; tool_use blocks as tool_calls.
// Server tools' blocks have no chat form and are left out. An answer that
// cannot be translated is a *provider.Error 502 upstream_bad_reply, Kind
// provider.KindTransient.
func ChatAnswer(msg []byte, model string) ([]byte, error) {
	var m revAnswer
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, provider.BadReply("the upstream's answer is not a Messages answer: %v", err)
	}
	if m.Type != "message" {
		return nil, provider.BadReply("the upstream's answer is not a Messages answer (type %q)", m.Type)
	}
	var text, thinking strings.Builder
	out := revAnswerMessage{Role: "assistant"}
	for i, b := range m.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "thinking":
			if b.Thinking != "" {
				if thinking.Len() > 0 {
					thinking.WriteString("\n\n")
				}
				thinking.WriteString(b.Thinking)
			}
			out.ThinkingBlocks = append(out.ThinkingBlocks, revThinkingBlockOut{Type: "thinking", Thinking: &b.Thinking, Signature: b.Signature})
		case "redacted_thinking":
			out.ThinkingBlocks = append(out.ThinkingBlocks, revThinkingBlockOut{Type: "redacted_thinking", Data: b.Data})
		case "tool_use":
			args := []byte("{}")
			if in := bytes.TrimSpace(b.Input); len(in) > 0 && string(in) != "null" {
				var c bytes.Buffer
				if err := json.Compact(&c, in); err != nil {
					return nil, provider.BadReply("content[%d].input of the upstream's answer is not JSON", i)
				}
				args = c.Bytes()
			}
			out.ToolCalls = append(out.ToolCalls, revCallOut{ID: b.ID, Type: "function",
				Function: revFuncCallOut{Name: b.Name, Arguments: string(args)}})
		}
	}
	if text.Len() > 0 || len(out.ToolCalls) == 0 {
		out.Content = new(text.String())
	}
	out.ReasoningContent = thinking.String()
	c := revCompletion{
		ID:      revCompletionID(m.ID),
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   model,
		Choices: []revAnswerChoice{{Message: out, FinishReason: revFinishReason(m.StopReason)}},
		Usage:   m.Usage.chat(),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// StreamToChat turns a Messages event stream (each Next one event's
// data, whose "type" names it) into OpenAI chat.completion.chunk events
// for a client that asked for model. The first chunk carries the role;
// text and thinking deltas become content and reasoning_content (a
// thinking block after another's is set apart by a blank line, as
// ChatAnswer joins them); each tool_use block becomes a tool call, index
// counting calls from 0, whose first fragment alone has its id and name;
// message_delta becomes the one chunk with a finish_reason. With
// includeUsage a last chunk with empty choices carries the usage, as
// OpenAI sends it for stream_options.include_usage. Signatures,
// redacted thinking and server tools have no place in a chunk and are
// left out; events that translate to nothing (ping, content_block_stop)
// are skipped.
//
// Next returns io.EOF after message_stop; a stream that ends before it is
// a *provider.Error 502 upstream_stream_broken (Kind
// provider.KindTransient), and an error from events is passed on. Close
// closes events. If events implements provider.BufferedEvents, so does
// the result.
func StreamToChat(events provider.EventReader, model string, includeUsage bool) provider.EventReader {
	s := &revStream{events: events, model: model, includeUsage: includeUsage}
	if b, ok := events.(provider.BufferedEvents); ok {
		return &revBufferedStream{revStream: s, src: b}
	}
	return s
}

// revStream translates one Messages stream. Chunks are written into buf,
// which is reused once every chunk in it has been returned: a chunk is
// valid until the next call, as the EventReader contract allows.
type revStream struct {
	events       provider.EventReader
	model        string
	includeUsage bool

	prefix []byte    // every chunk's start, up to the choices' value
	buf    []byte    // the chunks of queue
	queue  []revSpan // chunks, queue[head:] not yet returned
	head   int
	blocks []revBlockS // the content blocks so far, by index
	beyond revBlockS   // the blocks past revMaxBlocks
	calls  int         // tool calls so far
	usage  revUsage

	role     bool  // the chunk with the role is out
	thought  bool  // some reasoning is out
	finished bool  // the chunk with the finish_reason is out
	stopped  bool  // message_stop was read
	err      error // what every later Next returns
}

type revSpan struct{ start, end int }

// revBlockS is what the translation keeps of a content block.
type revBlockS struct {
	kind    uint8
	call    int    // the tool call's index, for a tool_use block
	args    bool   // arguments went out for the call
	thought bool   // this thinking block's reasoning went out
	input   []byte // the input that came with the tool_use's start, if not {}
}

const (
	revKindOther uint8 = iota
	revKindText
	revKindThinking
	revKindTool
)

// revMaxBlocks bounds the block indexes kept: a stream claiming more is
// not Anthropic's, and its blocks beyond share one state.
const revMaxBlocks = 4096

// Next returns the next chunk.
func (s *revStream) Next() ([]byte, error) {
	if s.head == len(s.queue) {
		s.buf, s.queue, s.head = s.buf[:0], s.queue[:0], 0
		for len(s.queue) == 0 {
			if err := s.pull(); err != nil {
				return nil, err
			}
		}
	}
	sp := s.queue[s.head]
	s.head++
	return s.buf[sp.start:sp.end], nil
}

// Close closes the Messages stream.
func (s *revStream) Close() error { return s.events.Close() }

// revBufferedStream is a revStream over events that tell whether their
// next one has arrived.
type revBufferedStream struct {
	*revStream
	src provider.BufferedEvents
}

// EventBuffered reports whether Next has a chunk at hand. Arrived events
// that make no chunk (ping, content_block_stop) are read to tell:
// otherwise a relay would hold back what it wrote, waiting for a chunk
// that Next would wait for on the network.
func (b *revBufferedStream) EventBuffered() bool {
	for b.head == len(b.queue) && b.err == nil && !b.stopped && b.src.EventBuffered() {
		// Chunks are only appended to buf here: the last one returned
		// stays valid.
		_ = b.pull()
	}
	return b.head < len(b.queue) || b.err != nil || b.stopped
}

// pull reads one Messages event and queues its chunks.
func (s *revStream) pull() error {
	if s.err != nil {
		return s.err
	}
	if s.stopped {
		s.err = io.EOF
		return s.err
	}
	data, err := s.events.Next()
	if err == nil {
		err = s.event(data)
	} else if errors.Is(err, io.EOF) {
		err = &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_stream_broken",
			Message: "the upstream's Messages stream ended before message_stop", Kind: provider.KindTransient}
	}
	s.err = err
	return err
}

// event translates one Messages event. Its data is valid JSON, checked
// once, so that strings are copied into chunks as they came, escapes and
// all, without being decoded and encoded again.
func (s *revStream) event(data []byte) error {
	if !json.Valid(data) {
		return &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply",
			Message: "the upstream's Messages stream sent an event that is not JSON", Kind: provider.KindTransient}
	}
	typ, _ := provider.Field(data, "type")
	switch string(typ) {
	case `"message_start"`:
		msg, _ := provider.Field(data, "message")
		if s.prefix == nil {
			id, _ := provider.StringField(msg, "id")
			s.setPrefix(id)
		}
		if raw, ok := provider.Field(msg, "usage"); ok {
			var u revUsage
			if json.Unmarshal(raw, &u) == nil {
				s.usage.update(u, false)
			}
		}
		s.roleOnce()
	case `"content_block_start"`:
		s.blockStart(data)
	case `"content_block_delta"`:
		s.blockDelta(data)
	case `"content_block_stop"`:
		s.endCall(s.block(data))
	case `"message_delta"`:
		if raw, ok := provider.Field(data, "usage"); ok {
			var u revUsage
			if json.Unmarshal(raw, &u) == nil {
				s.usage.update(u, true)
			}
		}
		delta, _ := provider.Field(data, "delta")
		stop, _ := provider.StringField(delta, "stop_reason")
		s.finish(revFinishReason(stop))
	case `"message_stop"`:
		s.finish("stop")
		if s.includeUsage {
			s.usageChunk()
		}
		s.stopped = true
	case `"error"`:
		msg, etype := provider.ErrorText(data)
		code := "upstream_stream_error"
		if etype == "overloaded_error" {
			code = provider.CodeOverloaded
		}
		return &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: code, Kind: provider.KindTransient,
			Message: fmt.Sprintf("the upstream sent an error in the stream (%s): %s", etype, msg)}
	}
	// ping, and event types Anthropic may add, make no chunk.
	return nil
}

// block is the state of the block an event's index names. Indexes
// beyond revMaxBlocks share one state; an index that is no natural
// number names a block of no kind.
func (s *revStream) block(data []byte) *revBlockS {
	raw, _ := provider.Field(data, "index")
	i := 0
	for _, c := range raw {
		if c < '0' || c > '9' {
			return &revBlockS{}
		}
		if i = i*10 + int(c-'0'); i >= revMaxBlocks {
			return &s.beyond
		}
	}
	if len(raw) == 0 {
		return &revBlockS{}
	}
	for len(s.blocks) <= i {
		s.blocks = append(s.blocks, revBlockS{})
	}
	return &s.blocks[i]
}

func (s *revStream) blockStart(data []byte) {
	b := s.block(data)
	*b = revBlockS{}
	cb, _ := provider.Field(data, "content_block")
	typ, _ := provider.Field(cb, "type")
	switch string(typ) {
	case `"text"`:
		b.kind = revKindText
		if t, ok := provider.Field(cb, "text"); ok {
			s.text("content", t)
		}
	case `"thinking"`:
		b.kind = revKindThinking
		if t, ok := provider.Field(cb, "thinking"); ok {
			s.reasoning(b, t)
		}
	case `"tool_use"`:
		b.kind, b.call = revKindTool, s.calls
		s.calls++
		id, _ := provider.Field(cb, "id")
		if len(id) < 3 || id[0] != '"' {
			id, _ = json.Marshal("toolu_" + strings.TrimPrefix(revCompletionID(""), "chatcmpl-"))
		}
		name, _ := provider.Field(cb, "name")
		if len(name) < 2 || name[0] != '"' {
			name = []byte(`""`)
		}
		if in, ok := provider.Field(cb, "input"); ok && in[0] == '{' && len(bytes.TrimSpace(in[1:len(in)-1])) > 0 {
			b.input = append([]byte(nil), in...)
		}
		start := s.begin()
		s.buf = append(s.buf, `{"tool_calls":[{"index":`...)
		s.buf = strconv.AppendInt(s.buf, int64(b.call), 10)
		s.buf = append(s.buf, `,"id":`...)
		s.buf = append(s.buf, id...)
		s.buf = append(s.buf, `,"type":"function","function":{"name":`...)
		s.buf = append(s.buf, name...)
		s.buf = append(s.buf, `,"arguments":""}}]}`...)
		s.end(start, "")
	}
	// Redacted thinking and server tools' blocks have no chat form.
}

func (s *revStream) blockDelta(data []byte) {
	b := s.block(data)
	delta, _ := provider.Field(data, "delta")
	typ, _ := provider.Field(delta, "type")
	switch string(typ) {
	case `"text_delta"`:
		if t, ok := provider.Field(delta, "text"); ok {
			s.text("content", t)
		}
	case `"thinking_delta"`:
		if t, ok := provider.Field(delta, "thinking"); ok {
			s.reasoning(b, t)
		}
	case `"input_json_delta"`:
		if t, ok := provider.Field(delta, "partial_json"); ok && b.kind == revKindTool && len(t) > 2 && t[0] == '"' {
			s.toolArgs(b.call, t)
			b.args = true
		}
	}
	// signature_delta and citations_delta have no chat form.
}

// text queues a delta with member set to the JSON string raw, unless
// it is empty (or not a string).
func (s *revStream) text(member string, raw []byte) {
	if len(raw) <= 2 || raw[0] != '"' {
		return
	}
	start := s.begin()
	s.buf = append(s.buf, `{"`...)
	s.buf = append(s.buf, member...)
	s.buf = append(s.buf, `":`...)
	s.buf = append(s.buf, raw...)
	s.buf = append(s.buf, '}')
	s.end(start, "")
}

// reasoning queues thinking; a block's first after an earlier block's
// begins with a blank line.
func (s *revStream) reasoning(b *revBlockS, raw []byte) {
	if len(raw) <= 2 || raw[0] != '"' {
		return
	}
	if !b.thought && s.thought {
		raw = append([]byte(`"\n\n`), raw[1:]...)
	}
	b.thought, s.thought = true, true
	s.text("reasoning_content", raw)
}

// toolArgs queues a fragment (a JSON string) of call's arguments.
func (s *revStream) toolArgs(call int, frag []byte) {
	start := s.begin()
	s.buf = append(s.buf, `{"tool_calls":[{"index":`...)
	s.buf = strconv.AppendInt(s.buf, int64(call), 10)
	s.buf = append(s.buf, `,"function":{"arguments":`...)
	s.buf = append(s.buf, frag...)
	s.buf = append(s.buf, `}}]}`...)
	s.end(start, "")
}

// endCall gives a call that had no input fragment (its input came whole
// with its start, or it has none) its arguments, so that they parse.
func (s *revStream) endCall(b *revBlockS) {
	if b.kind != revKindTool || b.args {
		return
	}
	args := []byte(`"{}"`)
	if b.input != nil {
		args, _ = json.Marshal(string(b.input))
	}
	s.toolArgs(b.call, args)
	b.args = true
}

// finish queues the chunk with the finish_reason, once, after ending
// the calls of blocks that were never stopped.
func (s *revStream) finish(reason string) {
	if s.finished {
		return
	}
	s.finished = true
	for i := range s.blocks {
		s.endCall(&s.blocks[i])
	}
	s.endCall(&s.beyond)
	start := s.begin()
	s.buf = append(s.buf, `{}`...)
	s.end(start, reason)
}

func (s *revStream) usageChunk() {
	if s.prefix == nil {
		s.setPrefix("")
	}
	start := len(s.buf)
	s.buf = append(s.buf, s.prefix...)
	s.buf = append(s.buf, `[],"usage":`...)
	u := s.usage.chat()
	s.buf = append(s.buf, `{"prompt_tokens":`...)
	s.buf = strconv.AppendInt(s.buf, u.PromptTokens, 10)
	s.buf = append(s.buf, `,"completion_tokens":`...)
	s.buf = strconv.AppendInt(s.buf, u.CompletionTokens, 10)
	s.buf = append(s.buf, `,"total_tokens":`...)
	s.buf = strconv.AppendInt(s.buf, u.TotalTokens, 10)
	s.buf = append(s.buf, `,"prompt_tokens_details":{"cached_tokens":`...)
	s.buf = strconv.AppendInt(s.buf, u.PromptTokensDetails.CachedTokens, 10)
	s.buf = append(s.buf, "}}}"...)
	s.queue = append(s.queue, revSpan{start, len(s.buf)})
}

func (s *revStream) setPrefix(msgID string) {
	id, _ := json.Marshal(revCompletionID(msgID))
	model, _ := json.Marshal(s.model)
	p := append([]byte(`{"id":`), id...)
	p = append(p, `,"object":"chat.completion.chunk","created":`...)
	p = strconv.AppendInt(p, time.Now().Unix(), 10)
	p = append(p, `,"model":`...)
	p = append(p, model...)
	s.prefix = append(p, `,"choices":`...)
}

// roleOnce queues the first chunk of all, the one with the role.
func (s *revStream) roleOnce() {
	if s.role {
		return
	}
	s.role = true
	start := s.open()
	s.buf = append(s.buf, `{"role":"assistant","content":""}`...)
	s.end(start, "")
}

// begin starts a chunk with one choice, up to its delta's value, and
// returns where it starts.
func (s *revStream) begin() int {
	s.roleOnce()
	return s.open()
}

func (s *revStream) open() int {
	if s.prefix == nil {
		s.setPrefix("")
	}
	start := len(s.buf)
	s.buf = append(s.buf, s.prefix...)
	s.buf = append(s.buf, `[{"index":0,"delta":`...)
	return start
}

// end ends the chunk begun at start, with its finish_reason (none if
// empty), and queues it.
func (s *revStream) end(start int, finish string) {
	s.buf = append(s.buf, `,"finish_reason":`...)
	if finish == "" {
		s.buf = append(s.buf, "null"...)
	} else {
		s.buf = strconv.AppendQuote(s.buf, finish)
	}
	s.buf = append(s.buf, "}]}"...)
	s.queue = append(s.queue, revSpan{start, len(s.buf)})
}
