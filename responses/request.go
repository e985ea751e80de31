package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/proxycast/caddy-proxycast/chatstream"
	"github.com/proxycast/caddy-proxycast/provider"
)

// Request is a Responses request translated for a chat upstream: the
// chat body, and what its answer must say of the request.
type Request struct {
	// Chat is the chat completions body.
	Chat []byte

	model  string          // the model the client asked for
	echo   []byte          // the request's settings, as members of a Response
	custom map[string]bool // the names of custom (free-form) tools
	// namespace names the namespace of each tool that came in one.
	namespace map[string]string
}

type request struct {
	Model              *string           `json:"model"`
	Instructions       json.RawMessage   `json:"instructions"`
	Input              json.RawMessage   `json:"input"`
	Tools              []json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	ParallelToolCalls  *bool             `json:"parallel_tool_calls"`
	MaxOutputTokens    *int64            `json:"max_output_tokens"`
	Temperature        *float64          `json:"temperature"`
	TopP               *float64          `json:"top_p"`
	Reasoning          *reasoningParam   `json:"reasoning"`
	Text               *textParam        `json:"text"`
	Stream             *bool             `json:"stream"`
	Store              *bool             `json:"store"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Conversation       json.RawMessage   `json:"conversation"`
	Background         *bool             `json:"background"`
	Prompt             json.RawMessage   `json:"prompt"`
	MaxToolCalls       json.RawMessage   `json:"max_tool_calls"`
	User               string            `json:"user"`
	SafetyIdentifier   string            `json:"safety_identifier"`
	Metadata           json.RawMessage   `json:"metadata"`
}

type reasoningParam struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

type textParam struct {
	Format json.RawMessage `json:"format"`
}

// item is any input item; which members count depends on its type.
type item struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	ID        string          `json:"id"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments *string         `json:"arguments"`
	Input     *string         `json:"input"`
	Output    json.RawMessage `json:"output"`
	Summary   []struct {
		Text string `json:"text"`
	} `json:"summary"`
}

// part is a content part of a message or of a tool's output.
type part struct {
	Type     string  `json:"type"`
	Text     string  `json:"text"`
	Refusal  string  `json:"refusal"`
	ImageURL *string `json:"image_url"`
	FileID   *string `json:"file_id"`
	Detail   string  `json:"detail"`
	FileData *string `json:"file_data"`
	FileURL  *string `json:"file_url"`
	Filename string  `json:"filename"`
}

// The chat body.
type (
	chatBody struct {
		Model             string          `json:"model"`
		Messages          []chatMessage   `json:"messages"`
		Tools             []chatTool      `json:"tools,omitempty"`
		ToolChoice        any             `json:"tool_choice,omitempty"`
		ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
		MaxTokens         *int64          `json:"max_tokens,omitempty"`
		Temperature       *float64        `json:"temperature,omitempty"`
		TopP              *float64        `json:"top_p,omitempty"`
		ReasoningEffort   string          `json:"reasoning_effort,omitempty"`
		ResponseFormat    json.RawMessage `json:"response_format,omitempty"`
		User              string          `json:"user,omitempty"`
		Stream            bool            `json:"stream,omitempty"`
	}
	chatMessage struct {
		Role             string     `json:"role"`
		Content          any        `json:"content"`
		ReasoningContent string     `json:"reasoning_content,omitempty"`
		ToolCalls        []chatCall `json:"tool_calls,omitempty"`
		ToolCallID       string     `json:"tool_call_id,omitempty"`
	}
	chatCall struct {
		ID       string       `json:"id"`
		Type     string       `json:"type"`
		Function chatFunction `json:"function"`
	}
	chatFunction struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	chatPart struct {
		Type     string     `json:"type"`
		Text     string     `json:"text,omitempty"`
		ImageURL *chatImage `json:"image_url,omitempty"`
		File     *chatFile  `json:"file,omitempty"`
	}
	chatImage struct {
		URL    string `json:"url"`
		Detail string `json:"detail,omitempty"`
	}
	chatFile struct {
		Filename string `json:"filename,omitempty"`
		FileData string `json:"file_data"`
	}
	chatTool struct {
		Type     string      `json:"type"`
		Function chatToolDef `json:"function"`
	}
	chatToolDef struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
		Strict      *bool           `json:"strict,omitempty"`
	}
)

// refuse is the refusal of a request for one member.
func refuse(param, format string, a ...any) *provider.Error {
	return &provider.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_request",
		Param: param, Message: param + ": " + fmt.Sprintf(format, a...), Kind: provider.KindClient}
}

// unsupported refuses what a chat upstream cannot do; the message says
// what to do instead.
func unsupported(param, format string, a ...any) *provider.Error {
	e := refuse(param, format, a...)
	e.Code = "unsupported_parameter"
	return e
}

// ChatRequest translates a Responses request body into a chat
// completions body for the upstream model; asked is the model the client
// named, which answers carry. A body that is not a valid Responses
// request, or asks for what a chat upstream cannot do, is a
// *provider.Error (400) naming the member. Settings that only tune
// OpenAI's own service (store, include, prompt_cache_key, service_tier,
// truncation, metadata) are not sent on: nothing is stored.
func ChatRequest(body []byte, model, asked string) (*Request, error) {
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, typeError(err)
	}
	if req.Model == nil || *req.Model == "" {
		return nil, refuse("model", "field required")
	}
	switch {
	case req.PreviousResponseID != nil && *req.PreviousResponseID != "":
		return nil, unsupported("previous_response_id", "this gateway does not store responses, so it cannot continue %q; send the whole conversation in input (with store: false, as Codex does)", *req.PreviousResponseID)
	case isSet(req.Conversation):
		return nil, unsupported("conversation", "this gateway does not store conversations; send the whole conversation in input")
	case req.Background != nil && *req.Background:
		return nil, unsupported("background", "this gateway does not store responses, so it cannot run one in the background; stream it instead")
	case isSet(req.Prompt):
		return nil, unsupported("prompt", "stored prompt templates live at OpenAI, which this provider is not; send instructions and input instead")
	case isSet(req.MaxToolCalls):
		return nil, unsupported("max_tool_calls", "a chat upstream has no bound on built-in tool calls to pass it to")
	}
	if req.MaxOutputTokens != nil && *req.MaxOutputTokens < 1 {
		return nil, refuse("max_output_tokens", "must be a positive integer")
	}

	out := chatBody{Model: model, MaxTokens: req.MaxOutputTokens, Temperature: req.Temperature, TopP: req.TopP,
		Stream: req.Stream != nil && *req.Stream, User: cmpOr(req.User, req.SafetyIdentifier)}
	r := &Request{model: asked}
	if err := out.setTools(req.Tools, req.ToolChoice, r); err != nil {
		return nil, err
	}
	if len(out.Tools) > 0 {
		out.ParallelToolCalls = req.ParallelToolCalls
	}
	if req.Reasoning != nil && req.Reasoning.Effort != nil {
		out.ReasoningEffort = *req.Reasoning.Effort
	}
	if req.Text != nil {
		f, err := responseFormat(req.Text.Format)
		if err != nil {
			return nil, err
		}
		out.ResponseFormat = f
	}

	var b builder
	b.custom = r.custom
	if isSet(req.Instructions) {
		var s string
		if json.Unmarshal(req.Instructions, &s) != nil {
			return nil, refuse("instructions", "must be a string")
		}
		if s != "" {
			b.msgs = append(b.msgs, chatMessage{Role: "system", Content: s})
		}
	}
	if err := b.input(req.Input); err != nil {
		return nil, err
	}
	if len(b.msgs) == 0 {
		return nil, refuse("input", "field required: a string or a non-empty array of items")
	}
	out.Messages = b.msgs

	chat, err := json.Marshal(out)
	if err != nil {
		return nil, refuse("input", "cannot be translated: %v", err)
	}
	r.Chat = chat
	r.echo = echo(&req)
	return r, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func isSet(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// typeError names the member of a body that has the wrong type.
func typeError(err error) *provider.Error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
		return refuse(te.Field, "must be %s, not %s", provider.JSONKind(te.Type), te.Value)
	}
	return refuse("body", "not a Responses request: %v", err)
}

// builtIn names the tools and items OpenAI runs itself.
func builtIn(typ string) string {
	return fmt.Sprintf("%q is one of OpenAI's built-in tools, which only an upstream that speaks the Responses API can run (an openai provider with `responses native`)", typ)
}

// setTools translates the function and custom tools and the tool
// choice.
func (out *chatBody) setTools(tools []json.RawMessage, choice json.RawMessage, r *Request) error {
	for i, raw := range tools {
		if err := out.addTool(raw, "tools["+strconv.Itoa(i)+"]", "", r); err != nil {
			return err
		}
	}
	if !isSet(choice) {
		return nil
	}
	var mode string
	if json.Unmarshal(choice, &mode) == nil {
		switch mode {
		case "none", "auto", "required":
		default:
			return refuse("tool_choice", "must be none, auto, required or an object, not %q", mode)
		}
		if len(out.Tools) > 0 {
			out.ToolChoice = mode
		}
		return nil
	}
	var c struct {
		Type  string `json:"type"`
		Name  string `json:"name"`
		Mode  string `json:"mode"`
		Tools []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"tools"`
	}
	if json.Unmarshal(choice, &c) != nil {
		return refuse("tool_choice", "must be a string or an object")
	}
	switch c.Type {
	case "function", "custom":
		if !slices.ContainsFunc(out.Tools, func(t chatTool) bool { return t.Function.Name == c.Name }) {
			return refuse("tool_choice.name", "no tool is named %q", c.Name)
		}
		out.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": c.Name}}
	case "allowed_tools":
		allowed := map[string]bool{}
		for i, t := range c.Tools {
			if t.Type != "function" && t.Type != "custom" {
				return unsupported("tool_choice.tools["+strconv.Itoa(i)+"].type", "%s", builtIn(t.Type))
			}
			allowed[t.Name] = true
		}
		out.Tools = slices.DeleteFunc(out.Tools, func(t chatTool) bool { return !allowed[t.Function.Name] })
		switch c.Mode {
		case "", "auto":
			out.ToolChoice = "auto"
		case "required":
			out.ToolChoice = "required"
		default:
			return refuse("tool_choice.mode", "must be auto or required, not %q", c.Mode)
		}
		if len(out.Tools) == 0 {
			out.ToolChoice = nil
		}
	default:
		return unsupported("tool_choice.type", "%s", builtIn(c.Type))
	}
	return nil
}

// addTool translates one function or custom tool, or the tools of a
// namespace; a chat upstream knows tools by their names alone, so every
// name must be unique.
func (out *chatBody) addTool(raw json.RawMessage, at, ns string, r *Request) error {
	var t struct {
		Type        string            `json:"type"`
		Name        string            `json:"name"`
		Description string            `json:"description"`
		Parameters  json.RawMessage   `json:"parameters"`
		Strict      *bool             `json:"strict"`
		Tools       []json.RawMessage `json:"tools"`
		Format      *struct {
			Type       string `json:"type"`
			Syntax     string `json:"syntax"`
			Definition string `json:"definition"`
		} `json:"format"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return refuse(at, "must be a tool object")
	}
	if t.Type == "function" || t.Type == "custom" {
		if slices.ContainsFunc(out.Tools, func(c chatTool) bool { return c.Function.Name == t.Name }) {
			return refuse(at+".name", "%q is the name of another tool too; a chat upstream tells tools apart by their names alone", t.Name)
		}
	}
	switch t.Type {
	case "function":
		if t.Name == "" {
			return refuse(at+".name", "field required")
		}
		def := chatToolDef{Name: t.Name, Description: t.Description, Strict: t.Strict}
		if isSet(t.Parameters) {
			def.Parameters = t.Parameters
		}
		out.Tools = append(out.Tools, chatTool{Type: "function", Function: def})
	case "custom":
		if t.Name == "" {
			return refuse(at+".name", "field required")
		}
		// A free-form tool becomes a function of one string; its
		// calls go back as custom_tool_call items.
		desc := t.Description
		if f := t.Format; f != nil && f.Type == "grammar" {
			desc = strings.TrimSpace(desc + "\n\nThe input must follow this " + f.Syntax + " grammar:\n" + f.Definition)
		}
		params, _ := json.Marshal(map[string]any{
			"type":                 "object",
			"properties":           map[string]any{"input": map[string]string{"type": "string", "description": "The tool's input, as free text."}},
			"required":             []string{"input"},
			"additionalProperties": false,
		})
		out.Tools = append(out.Tools, chatTool{Type: "function", Function: chatToolDef{Name: t.Name, Description: desc, Parameters: params}})
		if r.custom == nil {
			r.custom = map[string]bool{}
		}
		r.custom[t.Name] = true
	case "namespace":
		// A group of tools the model calls by name and namespace: a chat
		// upstream knows no namespaces, so its tools join the others,
		// and their calls go back with the namespace.
		if ns != "" || t.Name == "" {
			return refuse(at, "a namespace needs a name, and cannot hold another")
		}
		for j, inner := range t.Tools {
			if err := out.addTool(inner, at+".tools["+strconv.Itoa(j)+"]", t.Name, r); err != nil {
				return err
			}
		}
		return nil
	case "":
		return refuse(at+".type", "field required")
	default:
		return unsupported(at+".type", "%s", builtIn(t.Type))
	}
	if ns != "" {
		if r.namespace == nil {
			r.namespace = map[string]string{}
		}
		r.namespace[t.Name] = ns
	}
	return nil
}

// responseFormat translates text.format into chat's response_format.
func responseFormat(raw json.RawMessage) (json.RawMessage, error) {
	if !isSet(raw) {
		return nil, nil
	}
	var f struct {
		Type        string          `json:"type"`
		Name        string          `json:"name"`
		Schema      json.RawMessage `json:"schema"`
		Description string          `json:"description,omitempty"`
		Strict      *bool           `json:"strict,omitempty"`
	}
	if json.Unmarshal(raw, &f) != nil {
		return nil, refuse("text.format", "must be an object with a type")
	}
	switch f.Type {
	case "text":
		return nil, nil
	case "json_object":
		return json.RawMessage(`{"type":"json_object"}`), nil
	case "json_schema":
		if f.Name == "" {
			return nil, refuse("text.format.name", "field required")
		}
		if !isSet(f.Schema) {
			return nil, refuse("text.format.schema", "field required")
		}
		schema := struct {
			Name        string          `json:"name"`
			Schema      json.RawMessage `json:"schema"`
			Description string          `json:"description,omitempty"`
			Strict      *bool           `json:"strict,omitempty"`
		}{f.Name, f.Schema, f.Description, f.Strict}
		b, err := json.Marshal(map[string]any{"type": "json_schema", "json_schema": schema})
		if err != nil {
			return nil, refuse("text.format.schema", "must be a JSON object")
		}
		return b, nil
	}
	return nil, refuse("text.format.type", "must be text, json_object or json_schema, not %q", f.Type)
}

// builder turns input items into chat messages.
type builder struct {
	msgs []chatMessage
	// reasoning waits for the assistant message it goes with.
	reasoning []string
	// open is whether the last message is an assistant's turn that the
	// next call joins.
	open bool
	// images from tools' outputs follow the tool messages, in a user
	// message (chat's tool messages carry text only).
	images []chatPart
	custom map[string]bool
}

func (b *builder) input(raw json.RawMessage) error {
	if !isSet(raw) {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		b.msgs = append(b.msgs, chatMessage{Role: "user", Content: s})
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return refuse("input", "must be a string or an array of items")
	}
	for i, rawItem := range items {
		at := "input[" + strconv.Itoa(i) + "]"
		var it item
		if err := json.Unmarshal(rawItem, &it); err != nil {
			if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
				return refuse(at+"."+te.Field, "must be %s, not %s", provider.JSONKind(te.Type), te.Value)
			}
			return refuse(at, "must be an item object")
		}
		if it.Type != "function_call_output" && it.Type != "custom_tool_call_output" {
			b.flushImages()
		}
		if err := b.item(&it, at); err != nil {
			return err
		}
	}
	b.flushImages()
	return nil
}

func (b *builder) item(it *item, at string) error {
	switch it.Type {
	case "message", "":
		if it.Role == "" {
			return refuse(at+".role", "field required")
		}
		return b.message(it, at)
	case "reasoning":
		var texts []string
		for _, s := range it.Summary {
			texts = append(texts, s.Text)
		}
		// Open-weight models' reasoning comes as reasoning_text content.
		var content []part
		if isSet(it.Content) && json.Unmarshal(it.Content, &content) == nil {
			for _, p := range content {
				if p.Type == "reasoning_text" {
					texts = append(texts, p.Text)
				}
			}
		}
		if t := strings.Join(texts, "\n\n"); t != "" {
			b.reasoning = append(b.reasoning, t)
		}
	case "function_call", "custom_tool_call":
		if it.CallID == "" {
			return refuse(at+".call_id", "field required")
		}
		if it.Name == "" {
			return refuse(at+".name", "field required")
		}
		var args string
		if it.Type == "custom_tool_call" {
			if it.Input == nil {
				return refuse(at+".input", "field required")
			}
			a, _ := json.Marshal(map[string]string{"input": *it.Input})
			args = string(a)
		} else {
			if it.Arguments == nil {
				return refuse(at+".arguments", "field required")
			}
			args = *it.Arguments
		}
		m := b.assistant()
		m.ToolCalls = append(m.ToolCalls, chatCall{ID: it.CallID, Type: "function", Function: chatFunction{Name: it.Name, Arguments: args}})
	case "function_call_output", "custom_tool_call_output":
		if it.CallID == "" {
			return refuse(at+".call_id", "field required")
		}
		text, err := b.toolOutput(it.Output, at+".output")
		if err != nil {
			return err
		}
		b.msgs = append(b.msgs, chatMessage{Role: "tool", ToolCallID: it.CallID, Content: text})
		b.open = false
	case "item_reference":
		return unsupported(at, "an item_reference names a stored item, and this gateway stores none; send the item itself")
	default:
		return unsupported(at+".type", "items of type %q cannot be sent to a chat upstream (only messages, function and custom tool calls with their outputs, and reasoning can); the items of built-in tools need an upstream that speaks the Responses API (an openai provider with `responses native`)", it.Type)
	}
	return nil
}

// assistant is the assistant message the next output joins: the open
// one, else a new one, which takes the reasoning that came before it.
func (b *builder) assistant() *chatMessage {
	if !b.open || len(b.reasoning) > 0 {
		b.msgs = append(b.msgs, chatMessage{Role: "assistant"})
		b.open = true
	}
	m := &b.msgs[len(b.msgs)-1]
	if len(b.reasoning) > 0 {
		m.ReasoningContent = strings.Join(b.reasoning, "\n\n")
		b.reasoning = nil
	}
	return m
}

func (b *builder) message(it *item, at string) error {
	var text string
	isText := json.Unmarshal(it.Content, &text) == nil
	var parts []part
	if !isText {
		if err := json.Unmarshal(it.Content, &parts); err != nil {
			return refuse(at+".content", "must be a string or an array of content parts")
		}
	}
	switch it.Role {
	case "system", "developer":
		// Many chat upstreams know no developer role.
		if !isText {
			var err error
			if text, err = onlyText(parts, at+".content"); err != nil {
				return err
			}
		}
		b.msgs = append(b.msgs, chatMessage{Role: "system", Content: text})
		b.open = false
	case "assistant":
		if !isText {
			var texts []string
			for i, p := range parts {
				switch p.Type {
				case "output_text", "input_text", "text":
					texts = append(texts, p.Text)
				case "refusal":
					texts = append(texts, p.Refusal)
				default:
					return refuse(at+".content["+strconv.Itoa(i)+"].type", "an assistant message carries output_text and refusal parts, not %q", p.Type)
				}
			}
			text = strings.Join(texts, "")
		}
		m := b.assistant()
		if s, _ := m.Content.(string); s != "" {
			text = s + text
		}
		m.Content = text
	case "user":
		b.open = false
		if isText {
			b.msgs = append(b.msgs, chatMessage{Role: "user", Content: text})
			return nil
		}
		cp := make([]chatPart, 0, len(parts))
		for i, p := range parts {
			c, err := userPart(p, at+".content["+strconv.Itoa(i)+"]")
			if err != nil {
				return err
			}
			cp = append(cp, c)
		}
		if len(cp) == 1 && cp[0].Type == "text" {
			b.msgs = append(b.msgs, chatMessage{Role: "user", Content: cp[0].Text})
		} else {
			b.msgs = append(b.msgs, chatMessage{Role: "user", Content: cp})
		}
	default:
		return refuse(at+".role", "must be user, assistant, system or developer, not %q", it.Role)
	}
	return nil
}

func onlyText(parts []part, at string) (string, error) {
	texts := make([]string, 0, len(parts))
	for i, p := range parts {
		if p.Type != "input_text" && p.Type != "text" {
			return "", refuse(at+"["+strconv.Itoa(i)+"].type", "a system or developer message carries input_text parts only, not %q", p.Type)
		}
		texts = append(texts, p.Text)
	}
	return strings.Join(texts, "\n\n"), nil
}

// userPart translates one part of a user's message or of a tool's
// output.
func userPart(p part, at string) (chatPart, error) {
	switch p.Type {
	case "input_text", "text", "output_text":
		return chatPart{Type: "text", Text: p.Text}, nil
	case "input_image":
		if p.FileID != nil && *p.FileID != "" {
			return chatPart{}, unsupported(at+".file_id", "this gateway stores no files; send the image as image_url (an https or data: URL)")
		}
		if p.ImageURL == nil || *p.ImageURL == "" {
			return chatPart{}, refuse(at+".image_url", "field required")
		}
		detail := p.Detail
		if detail == "auto" {
			detail = ""
		}
		return chatPart{Type: "image_url", ImageURL: &chatImage{URL: *p.ImageURL, Detail: detail}}, nil
	case "input_file":
		if p.FileData == nil || *p.FileData == "" {
			return chatPart{}, unsupported(at, "this gateway stores no files and fetches none; send the file as file_data")
		}
		return chatPart{Type: "file", File: &chatFile{Filename: p.Filename, FileData: *p.FileData}}, nil
	}
	return chatPart{}, refuse(at+".type", "must be input_text, input_image or input_file, not %q", p.Type)
}

// toolOutput reads a tool's output: its text for the tool message, and
// its images for the user message after.
func (b *builder) toolOutput(raw json.RawMessage, at string) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []part
	if json.Unmarshal(raw, &parts) != nil {
		return "", refuse(at, "must be a string or an array of content parts")
	}
	var texts []string
	for i, p := range parts {
		c, err := userPart(p, at+"["+strconv.Itoa(i)+"]")
		if err != nil {
			return "", err
		}
		if c.Type == "text" {
			texts = append(texts, c.Text)
		} else {
			b.images = append(b.images, c)
		}
	}
	return strings.Join(texts, "\n"), nil
}

func (b *builder) flushImages() {
	if len(b.images) == 0 {
		return
	}
	parts := append([]chatPart{{Type: "text", Text: "The tool's output holds these:"}}, b.images...)
	b.msgs = append(b.msgs, chatMessage{Role: "user", Content: parts})
	b.images = nil
	b.open = false
}

// echo is what a Response says of the request's settings.
func echo(req *request) []byte {
	b := []byte(`,"parallel_tool_calls":`)
	b = strconv.AppendBool(b, req.ParallelToolCalls == nil || *req.ParallelToolCalls)
	b = append(b, `,"tool_choice":`...)
	if isSet(req.ToolChoice) {
		b = appendCompact(b, req.ToolChoice)
	} else {
		b = append(b, `"auto"`...)
	}
	b = append(b, `,"temperature":`...)
	b = appendFloat(b, req.Temperature)
	b = append(b, `,"top_p":`...)
	b = appendFloat(b, req.TopP)
	b = append(b, `,"max_output_tokens":`...)
	if req.MaxOutputTokens != nil {
		b = strconv.AppendInt(b, *req.MaxOutputTokens, 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"text":{"format":`...)
	if req.Text != nil && isSet(req.Text.Format) {
		b = appendCompact(b, req.Text.Format)
	} else {
		b = append(b, `{"type":"text"}`...)
	}
	b = append(b, `},"reasoning":{"effort":`...)
	b = appendOptString(b, req.Reasoning, func(r *reasoningParam) *string { return r.Effort })
	b = append(b, `,"summary":`...)
	b = appendOptString(b, req.Reasoning, func(r *reasoningParam) *string { return r.Summary })
	b = append(b, `},"store":false,"metadata":`...)
	if isSet(req.Metadata) && req.Metadata[0] == '{' {
		b = appendCompact(b, req.Metadata)
	} else {
		b = append(b, "{}"...)
	}
	return append(b, `,"previous_response_id":null,"truncation":"disabled"`...)
}

func appendCompact(b []byte, raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return append(b, "null"...)
	}
	return append(b, buf.Bytes()...)
}

func appendFloat(b []byte, f *float64) []byte {
	if f == nil {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, *f, 'g', -1, 64)
}

func appendOptString(b []byte, r *reasoningParam, get func(*reasoningParam) *string) []byte {
	if r == nil || get(r) == nil {
		return append(b, "null"...)
	}
	return chatstream.AppendString(b, *get(r))
}
