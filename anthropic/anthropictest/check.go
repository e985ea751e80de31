package anthropictest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// messageFields are the top-level members POST /v1/messages takes; any
// other is "Extra inputs are not permitted".
var messageFields = []string{
	"cache_control", "container", "context_management", "diagnostics", "inference_geo",
	"max_tokens", "mcp_servers", "messages", "metadata", "model", "output_config",
	"output_format", "service_tier", "speed", "stop_sequences", "stream", "system",
	"temperature", "thinking", "tool_choice", "tools", "top_k", "top_p",
}

// countFields are the top-level members POST /v1/messages/count_tokens
// takes: no max_tokens, stream or sampling settings.
var countFields = []string{
	"cache_control", "context_management", "mcp_servers", "messages", "model",
	"output_config", "output_format", "speed", "system", "thinking", "tool_choice", "tools",
}

// MessageFields returns the top-level members POST /v1/messages takes.
func MessageFields() []string { return slices.Clone(messageFields) }

// blockTypes are the content block types each role may send; tool_result
// is what a tool_result's content may hold.
var blockTypes = map[string][]string{
	"user": {"text", "image", "document", "search_result", "tool_result", "container_upload"},
	"assistant": {"text", "thinking", "redacted_thinking", "tool_use", "server_tool_use",
		"web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
		"bash_code_execution_tool_result", "text_editor_code_execution_tool_result",
		"tool_search_tool_result", "mcp_tool_use", "mcp_tool_result"},
	"system":      {"text"},
	"tool_result": {"text", "image", "document", "search_result"},
}

// blockKeys are the members a block of each type may have; types not
// listed are not checked member by member.
var blockKeys = map[string][]string{
	"text":              {"type", "text", "cache_control", "citations"},
	"image":             {"type", "source", "cache_control"},
	"document":          {"type", "source", "cache_control", "citations", "context", "title"},
	"search_result":     {"type", "source", "title", "content", "cache_control", "citations"},
	"tool_result":       {"type", "tool_use_id", "content", "is_error", "cache_control"},
	"tool_use":          {"type", "id", "name", "input", "cache_control"},
	"thinking":          {"type", "thinking", "signature"},
	"redacted_thinking": {"type", "data"},
}

var imageTypes = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}

// toolName is the API's rule for custom tool names.
var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

// serverToolType matches the versioned types of Anthropic's own tools
// (web_search_20250305, bash_20250124…).
var serverToolType = regexp.MustCompile(`^[a-z_]+_[0-9]{8}$`)

// toolUseID is the API's rule for tool_use ids.
var toolUseID = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// problem is what is wrong with a body, as the API words it: always 400
// invalid_request_error.
type problem struct{ msg string }

func bad(format string, a ...any) *problem { return &problem{msg: fmt.Sprintf(format, a...)} }

func extra(path string) *problem { return bad("%s: Extra inputs are not permitted", path) }

// block is one content block of a message, as sent.
type block = map[string]any

// message is one checked message; string content is one text block.
type message struct {
	role   string
	blocks []block
}

// request is a checked Messages or count_tokens body.
type request struct {
	model      string
	maxTokens  int64
	stream     bool
	system     []block
	msgs       []message
	tools      []map[string]any
	toolNames  []string
	choice     string // tool_choice.type, "" for none given
	forced     string // tool_choice.name with type tool
	parallel   bool
	thinking   bool // enabled or adaptive: the answer thinks
	manual     bool // enabled with a budget: the API's rules on thinking blocks apply
	stopSeqs   []string
	rawByField map[string]any
}

// checkBody checks a Messages body (count: a count_tokens body) as the API
// does, in the order it reports problems.
func checkBody(raw []byte, count bool) (*request, *problem) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, bad("There was an error parsing the body of your request: %s", err.Error())
	}
	if dec.More() {
		return nil, bad("There was an error parsing the body of your request: more than one JSON value")
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, bad("Input should be a valid dictionary or object to extract fields from")
	}
	fields := messageFields
	if count {
		fields = countFields
	}
	for _, k := range sortedKeys(top) {
		if !slices.Contains(fields, k) {
			return nil, extra(k)
		}
	}
	req := &request{rawByField: top, parallel: true}

	switch m, ok := top["model"]; {
	case !ok:
		return nil, bad("model: Field required")
	case !isString(m):
		return nil, bad("model: Input should be a valid string")
	case m.(string) == "":
		return nil, bad("model: String should have at least 1 character")
	default:
		req.model = m.(string)
	}

	if !count {
		mt, ok := top["max_tokens"]
		if !ok {
			return nil, bad("max_tokens: Field required")
		}
		n, isInt := intOf(mt)
		if !isInt {
			return nil, bad("max_tokens: Input should be a valid integer")
		}
		if n < 0 {
			return nil, bad("max_tokens: Input should be greater than or equal to 0")
		}
		req.maxTokens = n
	}

	if p := req.checkMessages(top["messages"], top); p != nil {
		return nil, p
	}
	if p := req.checkSystem(top["system"]); p != nil {
		return nil, p
	}
	if !count {
		if p := req.checkSampling(top); p != nil {
			return nil, p
		}
	}
	if p := req.checkTools(top["tools"], top["tool_choice"]); p != nil {
		return nil, p
	}
	if p := req.checkThinking(top["thinking"], count); p != nil {
		return nil, p
	}
	if p := req.checkPairs(); p != nil {
		return nil, p
	}
	return req, nil
}

func (req *request) checkMessages(v any, top map[string]any) *problem {
	if _, ok := top["messages"]; !ok {
		return bad("messages: Field required")
	}
	list, ok := v.([]any)
	if !ok {
		return bad("messages: Input should be a valid list")
	}
	if len(list) == 0 {
		return bad("messages: at least one message is required")
	}
	for i, mv := range list {
		path := "messages." + strconv.Itoa(i)
		m, ok := mv.(map[string]any)
		if !ok {
			return bad("%s: Input should be a valid dictionary", path)
		}
		for _, k := range sortedKeys(m) {
			if k != "role" && k != "content" {
				return extra(path + "." + k)
			}
		}
		rv, ok := m["role"]
		if !ok {
			return bad("%s.role: Field required", path)
		}
		role, _ := rv.(string)
		if role != "user" && role != "assistant" && role != "system" {
			return bad("%s.role: Input should be 'user', 'assistant' or 'system'", path)
		}
		cv, ok := m["content"]
		if !ok {
			return bad("%s.content: Field required", path)
		}
		msg := message{role: role}
		switch c := cv.(type) {
		case string:
			if c != "" {
				msg.blocks = []block{{"type": "text", "text": c}}
			}
		case []any:
			for j, bv := range c {
				b, p := checkBlock(bv, role, fmt.Sprintf("%s.content.%d", path, j))
				if p != nil {
					return p
				}
				msg.blocks = append(msg.blocks, b)
			}
		default:
			return bad("%s.content: Input should be a valid string or a valid list", path)
		}
		last := i == len(list)-1
		if len(msg.blocks) == 0 && !(last && role == "assistant") {
			return bad("%s: all messages must have non-empty content except for the optional final assistant message", path)
		}
		req.msgs = append(req.msgs, msg)
	}
	return nil
}

// checkBlock checks one content block that a message of role (or a
// tool_result, for role "tool_result") holds.
func checkBlock(v any, role, path string) (block, *problem) {
	b, ok := v.(map[string]any)
	if !ok {
		return nil, bad("%s: Input should be a valid dictionary", path)
	}
	tv, ok := b["type"]
	if !ok {
		return nil, bad("%s.type: Field required", path)
	}
	typ, _ := tv.(string)
	allowed := blockTypes[role]
	if !slices.Contains(allowed, typ) {
		for r, types := range blockTypes {
			if r != "tool_result" && slices.Contains(types, typ) {
				return nil, bad("%s: `%s` blocks are not permitted in `%s` content", path, typ, role)
			}
		}
		return nil, bad("%s: Input tag '%v' found using 'type' does not match any of the expected tags: '%s'", path, tv, strings.Join(allowed, "', '"))
	}
	if keys, ok := blockKeys[typ]; ok {
		for _, k := range sortedKeys(b) {
			if !slices.Contains(keys, k) {
				return nil, extra(path + "." + typ + "." + k)
			}
		}
	}
	if p := checkCacheControl(b["cache_control"], path+"."+typ+".cache_control"); p != nil {
		return nil, p
	}
	switch typ {
	case "text":
		t, ok := b["text"].(string)
		if !ok {
			return nil, fieldProblem(b, "text", path+".text", "a valid string")
		}
		if t == "" {
			return nil, bad("messages: text content blocks must be non-empty")
		}
	case "image":
		if p := checkSource(b["source"], path+".image.source", "image"); p != nil {
			return nil, p
		}
	case "document":
		if p := checkSource(b["source"], path+".document.source", "document"); p != nil {
			return nil, p
		}
	case "tool_use":
		id, ok := b["id"].(string)
		if !ok {
			return nil, fieldProblem(b, "id", path+".tool_use.id", "a valid string")
		}
		if !toolUseID.MatchString(id) {
			return nil, bad("%s.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'", path)
		}
		if _, ok := b["name"].(string); !ok {
			return nil, fieldProblem(b, "name", path+".tool_use.name", "a valid string")
		}
		if _, ok := b["input"].(map[string]any); !ok {
			return nil, fieldProblem(b, "input", path+".tool_use.input", "a valid dictionary")
		}
	case "tool_result":
		if _, ok := b["tool_use_id"].(string); !ok {
			return nil, fieldProblem(b, "tool_use_id", path+".tool_result.tool_use_id", "a valid string")
		}
		if e, ok := b["is_error"]; ok && e != nil && !isBool(e) {
			return nil, bad("%s.tool_result.is_error: Input should be a valid boolean", path)
		}
		switch c := b["content"].(type) {
		case nil, string:
		case []any:
			for j, inner := range c {
				if _, p := checkBlock(inner, "tool_result", fmt.Sprintf("%s.tool_result.content.%d", path, j)); p != nil {
					return nil, p
				}
			}
		default:
			return nil, bad("%s.tool_result.content: Input should be a valid string or a valid list", path)
		}
	case "thinking":
		if _, ok := b["thinking"].(string); !ok {
			return nil, fieldProblem(b, "thinking", path+".thinking.thinking", "a valid string")
		}
		if _, ok := b["signature"].(string); !ok {
			return nil, fieldProblem(b, "signature", path+".thinking.signature", "a valid string")
		}
	case "redacted_thinking":
		if _, ok := b["data"].(string); !ok {
			return nil, fieldProblem(b, "data", path+".redacted_thinking.data", "a valid string")
		}
	}
	return b, nil
}

// fieldProblem is "Field required" for a missing member, else "Input
// should be <want>".
func fieldProblem(m map[string]any, key, path, want string) *problem {
	if _, ok := m[key]; !ok {
		return bad("%s: Field required", path)
	}
	return bad("%s: Input should be %s", path, want)
}

func checkCacheControl(v any, path string) *problem {
	if v == nil {
		return nil
	}
	cc, ok := v.(map[string]any)
	if !ok {
		return bad("%s: Input should be a valid dictionary", path)
	}
	if cc["type"] != "ephemeral" {
		return bad("%s.type: Input should be 'ephemeral'", path)
	}
	if ttl, ok := cc["ttl"]; ok && ttl != "5m" && ttl != "1h" {
		return bad("%s.ttl: Input should be '5m' or '1h'", path)
	}
	for _, k := range sortedKeys(cc) {
		if k != "type" && k != "ttl" {
			return extra(path + "." + k)
		}
	}
	return nil
}

// checkSource checks the source of an image or document block.
func checkSource(v any, path, kind string) *problem {
	src, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return bad("%s: Field required", path)
		}
		return bad("%s: Input should be a valid dictionary", path)
	}
	typ, _ := src["type"].(string)
	switch {
	case typ == "base64":
		mt, _ := src["media_type"].(string)
		if kind == "image" && !slices.Contains(imageTypes, mt) {
			return bad("%s.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'", path)
		}
		if kind == "document" && mt != "application/pdf" {
			return bad("%s.base64.media_type: Input should be 'application/pdf'", path)
		}
		if d, ok := src["data"].(string); !ok || d == "" {
			return bad("%s.base64.data: Field required", path)
		}
	case typ == "url":
		if u, ok := src["url"].(string); !ok || u == "" {
			return bad("%s.url.url: Field required", path)
		}
	case typ == "file":
		if _, ok := src["file_id"].(string); !ok {
			return bad("%s.file.file_id: Field required", path)
		}
	case kind == "document" && typ == "text":
		if src["media_type"] != "text/plain" {
			return bad("%s.text.media_type: Input should be 'text/plain'", path)
		}
		if _, ok := src["data"].(string); !ok {
			return bad("%s.text.data: Field required", path)
		}
	case kind == "document" && typ == "content":
		if _, ok := src["content"]; !ok {
			return bad("%s.content.content: Field required", path)
		}
	default:
		return bad("%s: Input tag '%v' found using 'type' does not match any of the expected tags", path, src["type"])
	}
	return nil
}

func (req *request) checkSystem(v any) *problem {
	switch s := v.(type) {
	case nil:
	case string:
		if s != "" {
			req.system = []block{{"type": "text", "text": s}}
		}
	case []any:
		for i, bv := range s {
			path := "system." + strconv.Itoa(i)
			b, ok := bv.(map[string]any)
			if !ok || b["type"] != "text" {
				return bad("%s.type: Input should be 'text'", path)
			}
			if _, p := checkBlock(b, "system", path); p != nil {
				return p
			}
			req.system = append(req.system, b)
		}
	default:
		return bad("system: Input should be a valid string or a valid list")
	}
	return nil
}

func (req *request) checkSampling(top map[string]any) *problem {
	if v, ok := top["stream"]; ok && v != nil {
		b, isB := v.(bool)
		if !isB {
			return bad("stream: Input should be a valid boolean")
		}
		req.stream = b
	}
	for _, name := range []string{"temperature", "top_p"} {
		v, ok := top[name]
		if !ok || v == nil {
			continue
		}
		f, isNum := floatOf(v)
		switch {
		case !isNum:
			return bad("%s: Input should be a valid number", name)
		case f < 0:
			return bad("%s: Input should be greater than or equal to 0", name)
		case f > 1:
			return bad("%s: Input should be less than or equal to 1", name)
		}
	}
	if v, ok := top["top_k"]; ok && v != nil {
		n, isInt := intOf(v)
		if !isInt {
			return bad("top_k: Input should be a valid integer")
		}
		if n < 0 {
			return bad("top_k: Input should be greater than or equal to 0")
		}
	}
	if v, ok := top["stop_sequences"]; ok && v != nil {
		list, isList := v.([]any)
		if !isList {
			return bad("stop_sequences: Input should be a valid list")
		}
		for i, s := range list {
			str, isStr := s.(string)
			if !isStr {
				return bad("stop_sequences.%d: Input should be a valid string", i)
			}
			req.stopSeqs = append(req.stopSeqs, str)
		}
	}
	if v, ok := top["metadata"]; ok && v != nil {
		md, isObj := v.(map[string]any)
		if !isObj {
			return bad("metadata: Input should be a valid dictionary")
		}
		for _, k := range sortedKeys(md) {
			if k != "user_id" {
				return extra("metadata." + k)
			}
		}
		if u, ok := md["user_id"]; ok && u != nil && !isString(u) {
			return bad("metadata.user_id: Input should be a valid string")
		}
	}
	if v, ok := top["service_tier"]; ok && v != nil && v != "auto" && v != "standard_only" {
		return bad("service_tier: Input should be 'auto' or 'standard_only'")
	}
	return nil
}

func (req *request) checkTools(v, choice any) *problem {
	if v != nil {
		list, ok := v.([]any)
		if !ok {
			return bad("tools: Input should be a valid list")
		}
		for i, tv := range list {
			path := "tools." + strconv.Itoa(i)
			t, ok := tv.(map[string]any)
			if !ok {
				return bad("%s: Input should be a valid dictionary", path)
			}
			typ, hasType := t["type"]
			switch {
			case !hasType || typ == nil || typ == "custom":
				name, _ := t["name"].(string)
				if _, ok := t["name"]; !ok {
					return bad("%s.custom.name: Field required", path)
				}
				if !toolName.MatchString(name) {
					return bad("%s.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'", path)
				}
				if d, ok := t["description"]; ok && d != nil && !isString(d) {
					return bad("%s.custom.description: Input should be a valid string", path)
				}
				schema, ok := t["input_schema"].(map[string]any)
				if !ok {
					return fieldProblem(t, "input_schema", path+".custom.input_schema", "a valid dictionary")
				}
				if schema["type"] != "object" {
					return bad("%s.custom.input_schema.type: Input should be 'object'", path)
				}
				if p := checkCacheControl(t["cache_control"], path+".custom.cache_control"); p != nil {
					return p
				}
			case isString(typ) && serverToolType.MatchString(typ.(string)):
				if _, ok := t["name"].(string); !ok {
					return fieldProblem(t, "name", path+"."+typ.(string)+".name", "a valid string")
				}
			default:
				return bad("%s: Input tag '%v' found using 'type' does not match any of the expected tags", path, typ)
			}
			name := t["name"].(string)
			if slices.Contains(req.toolNames, name) {
				return bad("tools: Tool names must be unique.")
			}
			req.toolNames = append(req.toolNames, name)
			req.tools = append(req.tools, t)
		}
	}
	if choice == nil {
		return nil
	}
	tc, ok := choice.(map[string]any)
	if !ok {
		return bad("tool_choice: Input should be a valid dictionary")
	}
	typ, _ := tc["type"].(string)
	allowed := []string{"type", "disable_parallel_tool_use"}
	switch typ {
	case "auto", "any", "none":
	case "tool":
		name, ok := tc["name"].(string)
		if !ok {
			return fieldProblem(tc, "name", "tool_choice.tool.name", "a valid string")
		}
		if !slices.Contains(req.toolNames, name) {
			return bad("tool_choice.tool.name: the tool %q is not one of the request's tools", name)
		}
		req.forced = name
		allowed = append(allowed, "name")
	default:
		return bad("tool_choice: Input tag '%v' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'", tc["type"])
	}
	for _, k := range sortedKeys(tc) {
		if !slices.Contains(allowed, k) {
			return extra("tool_choice." + typ + "." + k)
		}
	}
	if d, ok := tc["disable_parallel_tool_use"]; ok && d != nil {
		b, isB := d.(bool)
		if !isB {
			return bad("tool_choice.%s.disable_parallel_tool_use: Input should be a valid boolean", typ)
		}
		req.parallel = !b
	}
	req.choice = typ
	return nil
}

func (req *request) checkThinking(v any, count bool) *problem {
	if v == nil {
		return nil
	}
	th, ok := v.(map[string]any)
	if !ok {
		return bad("thinking: Input should be a valid dictionary")
	}
	typ, _ := th["type"].(string)
	switch typ {
	case "enabled":
		for _, k := range sortedKeys(th) {
			if k != "type" && k != "budget_tokens" && k != "display" {
				return extra("thinking.enabled." + k)
			}
		}
		bv, ok := th["budget_tokens"]
		if !ok {
			return bad("thinking.enabled.budget_tokens: Field required")
		}
		budget, isInt := intOf(bv)
		if !isInt {
			return bad("thinking.enabled.budget_tokens: Input should be a valid integer")
		}
		if budget < 1024 {
			return bad("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
		}
		if d, ok := th["display"]; ok && d != "summarized" && d != "omitted" {
			return bad("thinking.enabled.display: Input should be 'summarized' or 'omitted'")
		}
		if !count && budget >= req.maxTokens {
			return bad("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")
		}
		if t, ok := req.rawByField["temperature"]; ok && t != nil {
			if f, _ := floatOf(t); f != 1 {
				return bad("`temperature` may only be set to 1 when thinking is enabled or in extended thinking mode. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#important-considerations-when-using-extended-thinking")
			}
		}
		req.thinking, req.manual = true, true
	case "disabled", "adaptive":
		for _, k := range sortedKeys(th) {
			if k != "type" {
				return extra("thinking." + typ + "." + k)
			}
		}
		req.thinking = typ == "adaptive"
	default:
		return bad("thinking: Input tag '%v' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'", th["type"])
	}
	return nil
}

// turn is a run of messages of one role, which the API joins into one.
type turn struct {
	role  string
	first int // index of its first message
	uses  []string
	// results are the tool_use_ids answered, with where each is.
	results []string
	paths   []string
}

// checkPairs checks that tool calls and results come in pairs: each
// tool_use answered in the next turn, each tool_result answering a
// tool_use of the turn before, and, with thinking on, the assistant turn
// of an unfinished tool loop beginning with its thinking.
func (req *request) checkPairs() *problem {
	var turns []turn
	for i, m := range req.msgs {
		if m.role == "system" {
			continue
		}
		if len(turns) == 0 || turns[len(turns)-1].role != m.role {
			turns = append(turns, turn{role: m.role, first: i})
		}
		t := &turns[len(turns)-1]
		for j, b := range m.blocks {
			switch b["type"] {
			case "tool_use":
				t.uses = append(t.uses, b["id"].(string))
			case "tool_result":
				t.results = append(t.results, b["tool_use_id"].(string))
				t.paths = append(t.paths, fmt.Sprintf("messages.%d.content.%d", i, j))
			}
		}
	}
	for k, t := range turns {
		if len(t.uses) > 0 && k+1 < len(turns) {
			next := turns[k+1]
			var missing []string
			for _, id := range t.uses {
				if !slices.Contains(next.results, id) {
					missing = append(missing, id)
				}
			}
			if len(missing) > 0 {
				return bad("messages.%d: `tool_use` ids were found without `tool_result` blocks immediately after: %s. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", next.first, strings.Join(missing, ", "))
			}
		}
		for r, id := range t.results {
			if k == 0 || !slices.Contains(turns[k-1].uses, id) {
				return bad("%s: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.", t.paths[r], id)
			}
		}
	}
	if !req.manual || len(turns) < 2 {
		return nil
	}
	// An unfinished tool loop: the last turn answers the tools of the
	// assistant turn before it, and holds nothing else.
	last, prev := turns[len(turns)-1], turns[len(turns)-2]
	if last.role != "user" || len(prev.uses) == 0 {
		return nil
	}
	for _, m := range req.msgs[last.first:] {
		for _, b := range m.blocks {
			if b["type"] != "tool_result" {
				return nil
			}
		}
	}
	firstBlock := req.msgs[prev.first].blocks[0]
	if t := firstBlock["type"]; t != "thinking" && t != "redacted_thinking" {
		return bad("messages.%d.content.0.type: Expected `thinking` or `redacted_thinking`, but found `%v`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking", prev.first, t)
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func isString(v any) bool { _, ok := v.(string); return ok }

func isBool(v any) bool { _, ok := v.(bool); return ok }

// intOf reads an integer: a JSON number without a fractional part.
func intOf(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

func floatOf(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}
