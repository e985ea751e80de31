package anthropic

// OpenAI chat requests as Messages requests, for chat clients whose model
// routes to a provider that speaks only Anthropic's Messages API.
//
// What has no Messages counterpart is dropped, because Anthropic refuses
// members it does not know: logprobs, top_logprobs, frequency_penalty,
// presence_penalty, seed, logit_bias, service_tier, store, metadata (OpenAI's
// stored-completion tags, not Anthropic's metadata), modalities, audio,
// prediction, stream_options, verbosity, web_search_options,
// prompt_cache_key, prompt_cache_retention, a message's name, an
// assistant's audio, unsigned reasoning_content, and any member this file
// does not read. What would change the answer's meaning if dropped is
// refused with a 400 instead: n above 1, response_format json_object,
// audio and other parts Messages cannot carry, non-function tools.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/proxycast/caddy-proxycast/provider"
)

// revRequest is what the translation reads of a chat request.
type revRequest struct {
	Messages            []json.RawMessage `json:"messages"`
	MaxTokens           *int64            `json:"max_tokens"`
	MaxCompletionTokens *int64            `json:"max_completion_tokens"`
	Stop                json.RawMessage   `json:"stop"`
	Temperature         *float64          `json:"temperature"`
	TopP                *float64          `json:"top_p"`
	TopK                *int64            `json:"top_k"`
	Stream              *bool             `json:"stream"`
	Tools               []json.RawMessage `json:"tools"`
	ToolChoice          json.RawMessage   `json:"tool_choice"`
	ParallelToolCalls   *bool             `json:"parallel_tool_calls"`
	// The legacy names of tools and tool_choice.
	Functions        []json.RawMessage `json:"functions"`
	FunctionCall     json.RawMessage   `json:"function_call"`
	User             string            `json:"user"`
	SafetyIdentifier string            `json:"safety_identifier"`
	ReasoningEffort  *string           `json:"reasoning_effort"`
	// Anthropic's own thinking member, as Anthropic's OpenAI-compatible
	// endpoint takes it (extra_body in OpenAI's SDKs).
	Thinking       json.RawMessage `json:"thinking"`
	ResponseFormat json.RawMessage `json:"response_format"`
	N              *int64          `json:"n"`
}

type revMessage struct {
	Role         string          `json:"role"`
	Content      json.RawMessage `json:"content"`
	Name         string          `json:"name"`
	Refusal      *string         `json:"refusal"`
	ToolCalls    []revToolCall   `json:"tool_calls"`
	FunctionCall *revFunction    `json:"function_call"`
	ToolCallID   string          `json:"tool_call_id"`
	// ThinkingBlocks are an assistant's signed thinking, as ChatAnswer
	// sends them (LiteLLM's convention): the only reasoning that can go
	// back to Anthropic, which refuses thinking without its signature.
	ThinkingBlocks []revThinkingBlock `json:"thinking_blocks"`
}

type revToolCall struct {
	ID       string      `json:"id"`
	Type     string      `json:"type"`
	Function revFunction `json:"function"`
}

type revFunction struct {
	Name string `json:"name"`
	// Arguments is a JSON string holding an object; some clients send
	// the object itself.
	Arguments json.RawMessage `json:"arguments"`
}

type revThinkingBlock struct {
	Type      string `json:"type"`
	Thinking  string `json:"thinking"`
	Signature string `json:"signature"`
	Data      string `json:"data"`
}

type revPart struct {
	Type    string  `json:"type"`
	Text    *string `json:"text"`
	Refusal string  `json:"refusal"`
	// ImageURL is {"url": …} as OpenAI defines it, or the URL alone as
	// some clients send it.
	ImageURL json.RawMessage `json:"image_url"`
	File     *struct {
		FileData string `json:"file_data"`
		FileID   string `json:"file_id"`
		Filename string `json:"filename"`
	} `json:"file"`
	// CacheControl is Anthropic's cache breakpoint, which clients that
	// know they talk to Claude put on parts; it is carried over.
	CacheControl json.RawMessage `json:"cache_control"`
}

type revTool struct {
	Type     string       `json:"type"`
	Function *revToolFunc `json:"function"`
	// CacheControl, as on parts.
	CacheControl json.RawMessage `json:"cache_control"`
}

type revToolFunc struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict"`
}

// revOut is the Messages request made of a chat request.
type revOut struct {
	Model         string           `json:"model"`
	MaxTokens     int64            `json:"max_tokens"`
	System        any              `json:"system,omitempty"`
	Messages      []revTurn        `json:"messages"`
	Tools         []revOutTool     `json:"tools,omitempty"`
	ToolChoice    *revToolChoice   `json:"tool_choice,omitempty"`
	Thinking      json.RawMessage  `json:"thinking,omitempty"`
	OutputConfig  *revOutputConfig `json:"output_config,omitempty"`
	StopSequences []string         `json:"stop_sequences,omitempty"`
	Temperature   *float64         `json:"temperature,omitempty"`
	TopP          *float64         `json:"top_p,omitempty"`
	TopK          *int64           `json:"top_k,omitempty"`
	Metadata      *revMetadata     `json:"metadata,omitempty"`
	Stream        bool             `json:"stream,omitempty"`
}

type revTurn struct {
	Role    string     `json:"role"`
	Content []revBlock `json:"content"`
}

// revBlock is a content block of any type; each type sets its members.
type revBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *revSource      `json:"source,omitempty"`
	Title     string          `json:"title,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	// Content of a tool_result: a string or blocks.
	Content any `json:"content,omitempty"`
	// Thinking is a pointer because a thinking block whose text was
	// omitted (display "omitted") still has the member.
	Thinking     *string         `json:"thinking,omitempty"`
	Signature    string          `json:"signature,omitempty"`
	Data         string          `json:"data,omitempty"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

type revSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type revOutTool struct {
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema"`
	Strict       bool            `json:"strict,omitempty"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

type revToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

type revOutputConfig struct {
	Format revFormat `json:"format"`
}

type revFormat struct {
	Type   string          `json:"type"`
	Schema json.RawMessage `json:"schema"`
}

type revMetadata struct {
	UserID string `json:"user_id"`
}

// revEffortBudgets are the thinking budgets for OpenAI's reasoning
// efforts, as Claude Code asks for them (think, think hard, ultrathink).
// "none" and "minimal" think not at all.
var revEffortBudgets = map[string]int64{"none": 0, "minimal": 0, "low": 4000, "medium": 10000, "high": 31999, "xhigh": 31999}

// revThinkingMaxTokens bounds the max_tokens raised to make room for a
// thinking budget: the smallest output limit among Claude's thinking
// models (Opus 4 and 4.1), so that the raise itself is never refused.
const revThinkingMaxTokens = 32000

// MessagesRequest translates an OpenAI chat completions body into a
// Messages request body for the upstream model. defaultMaxTokens is used
// when the body has neither max_tokens nor max_completion_tokens
// (Messages requires max_tokens). A body that cannot be translated is a
// *provider.Error, Status 400, Type "invalid_request_error", Kind
// provider.KindClient, whose Message begins with the member at fault
// (also its Param).
//
// Choices where the APIs differ: temperature, 0 to 2 at OpenAI and 0 to 1
// at Anthropic, is clamped to 1, not scaled, since a client's 0.7 means
// the same moderate randomness on both. reasoning_effort low, medium and
// high (and xhigh) become a thinking budget of 4000, 10000 and 31999
// tokens; max_tokens at or below the budget is raised to budget plus
// max_tokens, at most 32000 (and at least budget+1). With thinking,
// temperature and top_k are dropped and a top_p under 0.95 too, which
// Anthropic refuses then; thinking itself is left out when tool_choice
// forces a tool, or when the conversation's last assistant turn called
// tools without signed thinking before them (Anthropic refuses both).
// response_format json_schema becomes output_config.format (structured
// outputs; a model without them refuses it); json_object is refused, as
// Messages has no JSON mode without a schema. Anthropic's own thinking
// member, which its OpenAI-compatible endpoint takes, wins over
// reasoning_effort. An assistant's reasoning goes back only as the
// signed thinking_blocks that ChatAnswer gives; reasoning_content alone
// is dropped. Tool call ids with characters Anthropic refuses have them
// replaced by '_', alike in the call and in its result.
func MessagesRequest(body []byte, model string, defaultMaxTokens int) ([]byte, error) {
	var req revRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, revDecodeError("", err)
	}
	if req.N != nil && *req.N > 1 {
		return nil, revInvalid("n", "the Anthropic provider this model routes to answers with one choice; send n 1 or leave it out")
	}
	out := revOut{Model: model, MaxTokens: int64(defaultMaxTokens)}
	if out.MaxTokens < 1 {
		out.MaxTokens = 8192
	}
	for _, m := range []struct {
		name string
		v    *int64
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if m.v != nil {
			if *m.v < 1 {
				return nil, revInvalid(m.name, "must be a positive integer, not %d", *m.v)
			}
			out.MaxTokens = *m.v
			break
		}
	}
	var err error
	if err = revMessages(&out, req.Messages); err != nil {
		return nil, err
	}
	if out.Tools, err = revTools(req.Tools, req.Functions); err != nil {
		return nil, err
	}
	if out.ToolChoice, err = revChoice(req.ToolChoice, req.FunctionCall, req.ParallelToolCalls, len(out.Tools) > 0); err != nil {
		return nil, err
	}
	if out.StopSequences, err = revStops(req.Stop); err != nil {
		return nil, err
	}
	if t := req.Temperature; t != nil {
		out.Temperature = new(min(*t, 1))
	}
	out.TopP, out.TopK = req.TopP, req.TopK
	out.Stream = req.Stream != nil && *req.Stream
	if user := revOr(req.User, req.SafetyIdentifier); user != "" {
		out.Metadata = &revMetadata{UserID: user}
	}
	if out.OutputConfig, err = revResponseFormat(req.ResponseFormat); err != nil {
		return nil, err
	}
	if err = revThinking(&out, req.ReasoningEffort, req.Thinking); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(body) + 256)
	enc := json.NewEncoder(&buf)
	// The client's text goes on as it came, not with <, > and & escaped.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&out); err != nil {
		return nil, revInvalid("body", "cannot be encoded as a Messages request: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func revOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// revInvalid is the refusal of a chat request, naming the member at
// fault first.
func revInvalid(param, format string, a ...any) *provider.Error {
	return &provider.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_request",
		Message: param + ": " + fmt.Sprintf(format, a...), Param: param, Kind: provider.KindClient}
}

// revDecodeError is the refusal of a member (at, "" for the body) that
// encoding/json could not read, naming the member inside it at fault.
func revDecodeError(at string, err error) *provider.Error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return revInvalid(revOr(at, "body"), "not valid JSON: %v", err)
	}
	param := revOr(at, "body")
	if te.Field != "" {
		param = strings.TrimPrefix(at+"."+te.Field, ".")
	}
	return revInvalid(param, "must be %s, not %s", provider.JSONKind(te.Type), te.Value)
}

// revMessages fills the system prompt and the turns of out from the chat
// messages. Messages alternate between user and assistant turns, so a
// role's consecutive messages (a run of tool results and the user's next
// words among them) merge into one turn.
func revMessages(out *revOut, raws []json.RawMessage) error {
	if len(raws) == 0 {
		return revInvalid("messages", "at least one message is required")
	}
	var system []revBlock
	pending := map[string][]string{} // legacy function calls awaiting their result, by name
	for i, raw := range raws {
		at := fmt.Sprintf("messages[%d]", i)
		var m revMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return revDecodeError(at, err)
		}
		var role string
		var blocks []revBlock
		var err error
		switch m.Role {
		case "system", "developer":
			parts, err := revTexts(m.Content, at+".content")
			if err != nil {
				return err
			}
			system = append(system, parts...)
			continue
		case "user":
			role = "user"
			blocks, err = revUserBlocks(m.Content, at+".content")
		case "assistant":
			role = "assistant"
			blocks, err = revAssistantBlocks(m, i, pending)
		case "tool":
			role = "user"
			if m.ToolCallID == "" {
				return revInvalid(at+".tool_call_id", "field required")
			}
			blocks, err = revToolResult(revToolID(m.ToolCallID), m.Content, at+".content")
		case "function":
			role = "user"
			ids := pending[m.Name]
			if len(ids) == 0 {
				return revInvalid(at+".name", "no earlier function_call of %q awaits this result", m.Name)
			}
			pending[m.Name] = ids[1:]
			blocks, err = revToolResult(ids[0], m.Content, at+".content")
		default:
			return revInvalid(at+".role", "must be system, developer, user, assistant, tool or function, not %q", m.Role)
		}
		if err != nil {
			return err
		}
		if len(blocks) == 0 {
			continue
		}
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == role {
			out.Messages[n-1].Content = append(out.Messages[n-1].Content, blocks...)
		} else {
			out.Messages = append(out.Messages, revTurn{Role: role, Content: blocks})
		}
	}
	for _, t := range out.Messages {
		if t.Role == "user" {
			revResultsFirst(t.Content)
		}
	}
	// A last assistant turn is a prefill, which Anthropic refuses with
	// trailing white space.
	if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == "assistant" {
		t := &out.Messages[n-1]
		if b := &t.Content[len(t.Content)-1]; b.Type == "text" {
			if b.Text = strings.TrimRight(b.Text, " \t\r\n"); b.Text == "" {
				t.Content = t.Content[:len(t.Content)-1]
			}
		}
		if len(t.Content) == 0 {
			out.Messages = out.Messages[:n-1]
		}
	}
	if len(out.Messages) == 0 {
		return revInvalid("messages", "no user or assistant message has content")
	}
	out.System = revSystem(system)
	return nil
}

// revSystem is the system prompt: one string, or text blocks where a
// part carries a cache breakpoint.
func revSystem(blocks []revBlock) any {
	if len(blocks) == 0 {
		return nil
	}
	texts := make([]string, len(blocks))
	for i, b := range blocks {
		if len(b.CacheControl) > 0 {
			return blocks
		}
		texts[i] = b.Text
	}
	return strings.Join(texts, "\n\n")
}

// revResultsFirst puts a user turn's tool results before its other
// blocks, as Messages wants them, keeping the order within each group.
func revResultsFirst(blocks []revBlock) {
	sorted := true
	for i := 1; i < len(blocks); i++ {
		if blocks[i].Type == "tool_result" && blocks[i-1].Type != "tool_result" {
			sorted = false
			break
		}
	}
	if sorted {
		return
	}
	out := make([]revBlock, 0, len(blocks))
	for _, b := range blocks {
		if b.Type == "tool_result" {
			out = append(out, b)
		}
	}
	for _, b := range blocks {
		if b.Type != "tool_result" {
			out = append(out, b)
		}
	}
	copy(blocks, out)
}

// revContent reads content that is a string or an array of parts; a
// string comes back as one text part. null or no content is no part.
func revContent(raw json.RawMessage, at string) ([]revPart, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, revDecodeError(at, err)
		}
		return []revPart{{Type: "text", Text: &s}}, nil
	}
	var parts []revPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return nil, revInvalid(at, "must be a string or an array of parts, not %s", te.Value)
		}
		return nil, revDecodeError(at, err)
	}
	return parts, nil
}

// revText is a text part as a text block; empty text is no block, since
// Anthropic refuses empty text blocks.
func revText(p revPart, at string) ([]revBlock, error) {
	if p.Text == nil {
		return nil, revInvalid(at+".text", "field required")
	}
	if *p.Text == "" {
		return nil, nil
	}
	return []revBlock{{Type: "text", Text: *p.Text, CacheControl: p.CacheControl}}, nil
}

// revTexts is content that may hold only text (a system prompt).
func revTexts(raw json.RawMessage, at string) ([]revBlock, error) {
	parts, err := revContent(raw, at)
	if err != nil {
		return nil, err
	}
	var blocks []revBlock
	for j, p := range parts {
		pat := fmt.Sprintf("%s[%d]", at, j)
		if p.Type != "text" {
			return nil, revInvalid(pat, "a system or developer message holds text parts only, not %q", p.Type)
		}
		b, err := revText(p, pat)
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b...)
	}
	return blocks, nil
}

func revUserBlocks(raw json.RawMessage, at string) ([]revBlock, error) {
	parts, err := revContent(raw, at)
	if err != nil {
		return nil, err
	}
	blocks := make([]revBlock, 0, len(parts))
	for j, p := range parts {
		b, err := revUserPart(p, fmt.Sprintf("%s[%d]", at, j))
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b...)
	}
	return blocks, nil
}

func revUserPart(p revPart, at string) ([]revBlock, error) {
	switch p.Type {
	case "text":
		return revText(p, at)
	case "image_url":
		url, err := revImageURL(p.ImageURL, at+".image_url")
		if err != nil {
			return nil, err
		}
		src, err := revImageSource(url, at+".image_url.url")
		if err != nil {
			return nil, err
		}
		return []revBlock{{Type: "image", Source: src, CacheControl: p.CacheControl}}, nil
	case "file":
		if p.File == nil {
			return nil, revInvalid(at+".file", "field required")
		}
		if p.File.FileData == "" {
			if p.File.FileID != "" {
				return nil, revInvalid(at+".file.file_id", "OpenAI file ids mean nothing to the Anthropic provider this model routes to; send the file as file_data")
			}
			return nil, revInvalid(at+".file.file_data", "field required")
		}
		src, err := revDocumentSource(p.File.FileData, at+".file.file_data")
		if err != nil {
			return nil, err
		}
		return []revBlock{{Type: "document", Source: src, Title: p.File.Filename, CacheControl: p.CacheControl}}, nil
	}
	return nil, revInvalid(at, "unknown part type %q for the Anthropic provider this model routes to", p.Type)
}

func revImageURL(raw json.RawMessage, at string) (string, error) {
	var url string
	if len(raw) > 0 && raw[0] == '"' {
		_ = json.Unmarshal(raw, &url)
	} else if len(raw) > 0 && raw[0] == '{' {
		var o struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return "", revDecodeError(at, err)
		}
		url = o.URL
	}
	if url == "" {
		return "", revInvalid(at+".url", "field required")
	}
	return url, nil
}

// The image types Anthropic takes.
var revImageTypes = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}

// revImageSource is an image URL as a Messages source: base64 for a data:
// URI, else the URL, which Anthropic fetches itself.
func revImageSource(url, at string) (*revSource, error) {
	if !strings.HasPrefix(url, "data:") {
		if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
			return nil, revInvalid(at, "must be an http(s) URL or a data: URI")
		}
		return &revSource{Type: "url", URL: url}, nil
	}
	media, data, err := revDataURI(url, at)
	if err != nil {
		return nil, err
	}
	if media == "image/jpg" {
		media = "image/jpeg"
	}
	for _, t := range revImageTypes {
		if media == t {
			return &revSource{Type: "base64", MediaType: media, Data: data}, nil
		}
	}
	return nil, revInvalid(at, "the Anthropic provider takes images of type %s, not %q", strings.Join(revImageTypes, ", "), media)
}

// revDocumentSource is a file's data: URI as a document source: a PDF as
// base64, plain text as text.
func revDocumentSource(uri, at string) (*revSource, error) {
	media, data, err := revDataURI(uri, at)
	if err != nil {
		return nil, err
	}
	switch media {
	case "application/pdf":
		return &revSource{Type: "base64", MediaType: media, Data: data}, nil
	case "text/plain":
		text, err := revBase64(data)
		if err != nil {
			return nil, revInvalid(at, "the text is not base64: %v", err)
		}
		return &revSource{Type: "text", MediaType: media, Data: text}, nil
	}
	return nil, revInvalid(at, "the Anthropic provider takes files of type application/pdf or text/plain, not %q", media)
}

// revDataURI splits data:<media type>[;params];base64,<data>.
func revDataURI(uri, at string) (media, data string, err error) {
	rest, ok := strings.CutPrefix(uri, "data:")
	head, data, found := strings.Cut(rest, ",")
	if !ok || !found {
		return "", "", revInvalid(at, "must be a data: URI, data:<media type>;base64,<data>")
	}
	params := strings.Split(head, ";")
	if params[len(params)-1] != "base64" || len(params) < 2 || params[0] == "" {
		return "", "", revInvalid(at, "must be a base64 data: URI, data:<media type>;base64,<data>")
	}
	return strings.ToLower(params[0]), data, nil
}

// revAssistantBlocks is an assistant message as blocks: its signed
// thinking, its text and refusal, its tool calls.
func revAssistantBlocks(m revMessage, i int, pending map[string][]string) ([]revBlock, error) {
	at := fmt.Sprintf("messages[%d]", i)
	var blocks []revBlock
	for j, tb := range m.ThinkingBlocks {
		switch {
		case tb.Type == "thinking" && tb.Signature != "":
			blocks = append(blocks, revBlock{Type: "thinking", Thinking: &tb.Thinking, Signature: tb.Signature})
		case tb.Type == "redacted_thinking" && tb.Data != "":
			blocks = append(blocks, revBlock{Type: "redacted_thinking", Data: tb.Data})
		case tb.Type != "thinking" && tb.Type != "redacted_thinking":
			return nil, revInvalid(fmt.Sprintf("%s.thinking_blocks[%d].type", at, j), "must be thinking or redacted_thinking, not %q", tb.Type)
		}
		// Unsigned thinking cannot go back; it is dropped, as
		// reasoning_content is.
	}
	parts, err := revContent(m.Content, at+".content")
	if err != nil {
		return nil, err
	}
	for j, p := range parts {
		pat := fmt.Sprintf("%s.content[%d]", at, j)
		switch p.Type {
		case "text":
			b, err := revText(p, pat)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, b...)
		case "refusal":
			if p.Refusal != "" {
				blocks = append(blocks, revBlock{Type: "text", Text: p.Refusal})
			}
		default:
			return nil, revInvalid(pat, "an assistant message holds text or refusal parts, not %q", p.Type)
		}
	}
	if m.Refusal != nil && *m.Refusal != "" {
		blocks = append(blocks, revBlock{Type: "text", Text: *m.Refusal})
	}
	for j, c := range m.ToolCalls {
		cat := fmt.Sprintf("%s.tool_calls[%d]", at, j)
		if c.Type != "function" && c.Type != "" {
			return nil, revInvalid(cat+".type", "the Anthropic provider takes function calls, not %q", c.Type)
		}
		if c.ID == "" {
			return nil, revInvalid(cat+".id", "field required")
		}
		b, err := revToolUse(revToolID(c.ID), c.Function, cat+".function")
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
	}
	if f := m.FunctionCall; f != nil {
		// A legacy call has no id: it gets one, and the function message
		// that answers it (by name) the same.
		id := revToolID(fmt.Sprintf("call_%d_%s", i, f.Name))
		b, err := revToolUse(id, *f, at+".function_call")
		if err != nil {
			return nil, err
		}
		pending[f.Name] = append(pending[f.Name], id)
		blocks = append(blocks, b)
	}
	return blocks, nil
}

func revToolUse(id string, f revFunction, at string) (revBlock, error) {
	if f.Name == "" {
		return revBlock{}, revInvalid(at+".name", "field required")
	}
	input, err := revArguments(f.Arguments, at+".arguments")
	if err != nil {
		return revBlock{}, err
	}
	return revBlock{Type: "tool_use", ID: id, Name: f.Name, Input: input}, nil
}

// revArguments is a call's arguments as the tool_use input, which must
// be an object; no arguments are an empty one.
func revArguments(raw json.RawMessage, at string) (json.RawMessage, error) {
	args := bytes.TrimSpace(raw)
	if len(args) > 0 && args[0] == '"' {
		var s string
		if err := json.Unmarshal(args, &s); err != nil {
			return nil, revDecodeError(at, err)
		}
		args = bytes.TrimSpace([]byte(s))
		if len(args) > 0 && !json.Valid(args) {
			return nil, revInvalid(at, "not valid JSON: %.40q", s)
		}
	}
	if len(args) == 0 || string(args) == "null" {
		return json.RawMessage("{}"), nil
	}
	if args[0] != '{' {
		return nil, revInvalid(at, "must be a JSON object, not %.40s", args)
	}
	return args, nil
}

// revToolID is a tool call's id as Anthropic takes ids, which match
// ^[a-zA-Z0-9_-]+$: other characters (some upstreams make ids such as
// "functions.get_weather:0") become '_', alike in the call and its result.
func revToolID(id string) string {
	clean := true
	for i := 0; i < len(id); i++ {
		if !revIDByte(id[i]) {
			clean = false
			break
		}
	}
	if clean {
		return id
	}
	b := []byte(id)
	for i, c := range b {
		if !revIDByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func revIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// revToolResult is a tool's answer as a tool_result block: text as a
// string, parts as text and image blocks.
func revToolResult(id string, raw json.RawMessage, at string) ([]revBlock, error) {
	b := revBlock{Type: "tool_result", ToolUseID: id}
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, revDecodeError(at, err)
		}
		if s != "" {
			b.Content = s
		}
		return []revBlock{b}, nil
	}
	parts, err := revContent(raw, at)
	if err != nil {
		return nil, err
	}
	var content []revBlock
	for j, p := range parts {
		pat := fmt.Sprintf("%s[%d]", at, j)
		if p.Type != "text" && p.Type != "image_url" {
			return nil, revInvalid(pat, "a tool result holds text or image_url parts, not %q", p.Type)
		}
		blocks, err := revUserPart(p, pat)
		if err != nil {
			return nil, err
		}
		content = append(content, blocks...)
	}
	if len(content) > 0 {
		b.Content = content
	}
	return []revBlock{b}, nil
}

// revTools is the tools (and legacy functions) as Messages tools.
func revTools(tools, functions []json.RawMessage) ([]revOutTool, error) {
	var out []revOutTool
	for i, raw := range tools {
		at := fmt.Sprintf("tools[%d]", i)
		var t revTool
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, revDecodeError(at, err)
		}
		if t.Type != "function" {
			return nil, revInvalid(at+".type", "the Anthropic provider this model routes to takes function tools, not %q", t.Type)
		}
		if t.Function == nil {
			return nil, revInvalid(at+".function", "field required")
		}
		tool, err := revTool1(*t.Function, at+".function")
		if err != nil {
			return nil, err
		}
		tool.CacheControl = t.CacheControl
		out = append(out, tool)
	}
	for i, raw := range functions {
		at := fmt.Sprintf("functions[%d]", i)
		var f revToolFunc
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, revDecodeError(at, err)
		}
		tool, err := revTool1(f, at)
		if err != nil {
			return nil, err
		}
		out = append(out, tool)
	}
	return out, nil
}

func revTool1(f revToolFunc, at string) (revOutTool, error) {
	if f.Name == "" {
		return revOutTool{}, revInvalid(at+".name", "field required")
	}
	schema := bytes.TrimSpace(f.Parameters)
	switch {
	case len(schema) == 0 || string(schema) == "null":
		schema = []byte(`{"type":"object"}`)
	case schema[0] != '{':
		return revOutTool{}, revInvalid(at+".parameters", "must be a JSON schema object")
	default:
		// Anthropic wants the schema of an object said so.
		if _, ok := provider.Field(schema, "type"); !ok {
			schema = provider.SetStringField(schema, "type", "object")
		}
	}
	return revOutTool{Name: f.Name, Description: f.Description, InputSchema: schema, Strict: f.Strict != nil && *f.Strict}, nil
}

// revChoice is tool_choice (or the legacy function_call) with
// parallel_tool_calls as a Messages tool_choice. Without tools there is
// none: Anthropic refuses a tool_choice without tools.
func revChoice(raw, legacy json.RawMessage, parallel *bool, tools bool) (*revToolChoice, error) {
	at := "tool_choice"
	if len(raw) == 0 || string(raw) == "null" {
		raw, at = legacy, "function_call"
	}
	var choice *revToolChoice
	if len(raw) > 0 && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			switch s {
			case "auto":
				choice = &revToolChoice{Type: "auto"}
			case "required":
				choice = &revToolChoice{Type: "any"}
			case "none":
				choice = &revToolChoice{Type: "none"}
			default:
				return nil, revInvalid(at, "must be auto, required, none or a function, not %q", s)
			}
		} else {
			var f struct {
				Type     string `json:"type"`
				Name     string `json:"name"`
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if err := json.Unmarshal(raw, &f); err != nil {
				return nil, revDecodeError(at, err)
			}
			name := revOr(f.Function.Name, f.Name) // function_call is {"name": …}
			if f.Type != "" && f.Type != "function" || name == "" {
				return nil, revInvalid(at, `must be auto, required, none or {"type":"function","function":{"name":…}}`)
			}
			choice = &revToolChoice{Type: "tool", Name: name}
		}
	}
	if !tools {
		return nil, nil
	}
	if parallel != nil && !*parallel {
		if choice == nil {
			choice = &revToolChoice{Type: "auto"}
		}
		// A choice of none calls no tool, in parallel or not.
		choice.DisableParallelToolUse = choice.Type != "none"
	}
	return choice, nil
}

func revStops(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var stops []string
	if raw[0] == '"' {
		stops = []string{""}
		if err := json.Unmarshal(raw, &stops[0]); err != nil {
			return nil, revDecodeError("stop", err)
		}
	} else if err := json.Unmarshal(raw, &stops); err != nil {
		return nil, revInvalid("stop", "must be a string or an array of strings")
	}
	// OpenAI ignores an empty stop sequence; Anthropic would refuse it.
	kept := stops[:0]
	for _, s := range stops {
		if s != "" {
			kept = append(kept, s)
		}
	}
	return kept, nil
}

func revResponseFormat(raw json.RawMessage) (*revOutputConfig, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var rf struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	}
	if err := json.Unmarshal(raw, &rf); err != nil {
		return nil, revDecodeError("response_format", err)
	}
	switch rf.Type {
	case "text":
		return nil, nil
	case "json_schema":
		if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 || rf.JSONSchema.Schema[0] != '{' {
			return nil, revInvalid("response_format.json_schema.schema", "field required, a JSON schema object")
		}
		return &revOutputConfig{Format: revFormat{Type: "json_schema", Schema: rf.JSONSchema.Schema}}, nil
	case "json_object":
		return nil, revInvalid("response_format", "the Anthropic provider this model routes to has no JSON mode without a schema; send a json_schema, or ask for JSON in the prompt")
	}
	return nil, revInvalid("response_format.type", "must be text, json_schema or json_object, not %q", rf.Type)
}

// revThinking sets out's thinking from reasoning_effort, or from
// Anthropic's own thinking member where the client sent one, and makes
// the rest of the request fit it.
func revThinking(out *revOut, effort *string, thinking json.RawMessage) error {
	var budget int64
	switch {
	case len(thinking) > 0 && string(thinking) != "null":
		var t struct {
			Type         string `json:"type"`
			BudgetTokens *int64 `json:"budget_tokens"`
		}
		if err := json.Unmarshal(thinking, &t); err != nil {
			return revDecodeError("thinking", err)
		}
		switch t.Type {
		case "disabled":
			return nil
		case "adaptive":
			out.Thinking = thinking
		case "enabled":
			if t.BudgetTokens == nil || *t.BudgetTokens < 1024 {
				return revInvalid("thinking.budget_tokens", "field required, at least 1024")
			}
			budget = *t.BudgetTokens
			out.Thinking = thinking
		default:
			return revInvalid("thinking.type", "must be enabled, adaptive or disabled, not %q", t.Type)
		}
	case effort != nil:
		b, ok := revEffortBudgets[*effort]
		if !ok {
			return revInvalid("reasoning_effort", "must be none, minimal, low, medium, high or xhigh, not %q", *effort)
		}
		if b == 0 {
			return nil
		}
		budget = b
		out.Thinking = json.RawMessage(fmt.Sprintf(`{"type":"enabled","budget_tokens":%d}`, b))
	default:
		return nil
	}
	if !revCanThink(out) {
		out.Thinking = nil
		return nil
	}
	if budget > 0 && out.MaxTokens <= budget {
		out.MaxTokens = max(budget+1, min(budget+out.MaxTokens, revThinkingMaxTokens))
	}
	out.Temperature, out.TopK = nil, nil
	if out.TopP != nil && *out.TopP < 0.95 {
		out.TopP = nil
	}
	return nil
}

// revCanThink reports whether Anthropic would take thinking with this
// request: not with a forced tool, nor when the last assistant turn
// called tools without thinking first (thinking that a chat client did
// not send back signed).
func revCanThink(out *revOut) bool {
	if c := out.ToolChoice; c != nil && (c.Type == "any" || c.Type == "tool") {
		return false
	}
	for i := len(out.Messages) - 1; i >= 0; i-- {
		t := out.Messages[i]
		if t.Role != "assistant" {
			continue
		}
		for _, b := range t.Content {
			if b.Type == "tool_use" {
				first := t.Content[0].Type
				return first == "thinking" || first == "redacted_thinking"
			}
		}
		return true
	}
	return true
}

// revBase64 decodes standard base64, padded or not.
func revBase64(s string) (string, error) {
	dec, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return "", err
	}
	return string(dec), nil
}
