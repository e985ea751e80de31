package openaitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// SetResponses turns the Responses API (POST /v1/responses) on or off.
// Off, the default, it is an unknown path, as at most OpenAI-compatible
// services.
func (s *Server) SetResponses(on bool) {
	s.mu.Lock()
	s.speaksResponses = on
	s.mu.Unlock()
}

func (s *Server) responsesOn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.speaksResponses
}

// ResponsesCount is the number of requests to /v1/responses, answered or
// not.
func (s *Server) ResponsesCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.responseCalls
}

// respFields are the top-level members the Responses endpoint takes;
// OpenAI refuses others.
var respFields = []string{
	"background", "client_metadata", "conversation", "include", "input", "instructions", "max_output_tokens", "max_tool_calls",
	"metadata", "model", "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key",
	"prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "stream", "stream_options",
	"temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
}

// builtInTools are the tool types OpenAI runs itself; the fake takes them
// and runs none.
var builtInTools = []string{"web_search", "web_search_preview", "web_search_2025_08_26", "file_search", "computer_use_preview",
	"computer", "code_interpreter", "image_generation", "mcp", "local_shell", "shell", "apply_patch"}

// respRequest is what the fake reads of a checked Responses request.
type respRequest struct {
	model     string
	stream    bool
	maxTokens int64
	lastUser  string
	output    string // the last input item's output when it is a function_call_output
	lastIsOut bool
	functions []string
	forced    string
	summary   bool
	jsonOut   bool
	body      map[string]any
}

// responses serves POST /v1/responses.
func (c *call) responses() {
	body, ok := c.jsonBody("responses")
	if !ok {
		return
	}
	req, pr := checkResponses(body)
	if pr != nil {
		c.fail(http.StatusBadRequest, pr.apiError(), pr.msg)
		return
	}
	c.resp = req
	b, now, done := c.modelAndBehavior(req.model)
	if done {
		return
	}
	c.s.mu.Lock()
	reasoning := c.s.reasoning
	c.s.mu.Unlock()
	c.id, c.created = "resp_"+newID(""), now.Unix()
	out := c.respOutput(req, reasoning)
	if req.stream {
		c.respStream(b, req, out)
		return
	}
	if b == StreamBreak {
		c.finish(http.StatusOK, "behavior "+b.String())
		c.w.Header().Set("Content-Type", "application/json")
		c.w.WriteHeader(http.StatusOK)
		_, _ = c.w.Write([]byte(`{"id":"` + c.id + `","object":"resp`))
		panic(http.ErrAbortHandler)
	}
	c.finish(http.StatusOK, "ok")
	writeJSON(c.w, http.StatusOK, c.respObject(req, "completed", out))
}

// checkResponses checks a Responses body as OpenAI does.
func checkResponses(body map[string]any) (*respRequest, *problem) {
	for k := range body {
		if !slices.Contains(respFields, k) {
			return nil, &problem{fmt.Sprintf("Unrecognized request argument supplied: %s", k), nil, nil}
		}
	}
	req := &respRequest{body: body}
	model, ok := body["model"].(string)
	if !ok {
		if body["model"] == nil {
			return nil, missing("model")
		}
		return nil, wrongType("model", "a string", body["model"])
	}
	req.model = model
	if id, ok := body["previous_response_id"].(string); ok && id != "" {
		return nil, &problem{fmt.Sprintf("Previous response with id '%s' not found.", id), "previous_response_id", "previous_response_not_found"}
	}
	if v, ok := body["stream"]; ok && v != nil {
		st, isBool := v.(bool)
		if !isBool {
			return nil, wrongType("stream", "a boolean", v)
		}
		req.stream = st
	}
	if v, ok := body["max_output_tokens"]; ok && v != nil {
		n, isNum := v.(json.Number)
		i, err := n.Int64()
		if !isNum || err != nil {
			return nil, wrongType("max_output_tokens", "an integer", v)
		}
		if i < 16 {
			return nil, &problem{fmt.Sprintf("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got %d instead.", i), "max_output_tokens", "integer_below_min_value"}
		}
		req.maxTokens = i
	}
	if v, ok := body["instructions"]; ok && v != nil {
		if _, isStr := v.(string); !isStr {
			return nil, wrongType("instructions", "a string", v)
		}
	}
	if pr := checkRespTools(body, req); pr != nil {
		return nil, pr
	}
	if rs, ok := body["reasoning"].(map[string]any); ok {
		if e, ok := rs["effort"].(string); ok && !slices.Contains([]string{"none", "minimal", "low", "medium", "high", "xhigh"}, e) {
			return nil, badValue("reasoning.effort", e, []string{"none", "minimal", "low", "medium", "high", "xhigh"})
		}
		req.summary = rs["summary"] != nil
	}
	if tx, ok := body["text"].(map[string]any); ok {
		if f, ok := tx["format"].(map[string]any); ok {
			switch f["type"] {
			case "text":
			case "json_object":
				req.jsonOut = true
			case "json_schema":
				if _, ok := f["name"].(string); !ok {
					return nil, missing("text.format.name")
				}
				if _, ok := f["schema"].(map[string]any); !ok {
					return nil, missing("text.format.schema")
				}
				req.jsonOut = true
			default:
				return nil, badValue("text.format.type", fmt.Sprint(f["type"]), []string{"text", "json_object", "json_schema"})
			}
		}
	}
	return req, checkInput(body["input"], req)
}

func checkRespTools(body map[string]any, req *respRequest) *problem {
	if v, ok := body["tools"]; ok && v != nil {
		tools, isArr := v.([]any)
		if !isArr {
			return wrongType("tools", "an array", v)
		}
		for i, raw := range tools {
			at := fmt.Sprintf("tools[%d]", i)
			t, ok := raw.(map[string]any)
			if !ok {
				return wrongType(at, "an object", raw)
			}
			typ, _ := t["type"].(string)
			switch {
			case typ == "function" || typ == "custom":
				name, _ := t["name"].(string)
				if !functionName.MatchString(name) {
					return &problem{fmt.Sprintf("Invalid '%s.name': string does not match pattern.", at), at + ".name", "invalid_value"}
				}
				if p, ok := t["parameters"]; ok && p != nil {
					if _, isObj := p.(map[string]any); !isObj {
						return wrongType(at+".parameters", "an object", p)
					}
				}
				if typ == "function" {
					req.functions = append(req.functions, name)
				}
			case slices.Contains(builtInTools, typ):
			default:
				return badValue(at+".type", typ, append([]string{"function", "custom"}, builtInTools...))
			}
		}
	}
	switch tc := body["tool_choice"].(type) {
	case nil:
	case string:
		if !slices.Contains(toolChoices, tc) {
			return badValue("tool_choice", tc, toolChoices)
		}
		if tc == "required" && len(req.functions) > 0 {
			req.forced = req.functions[0]
		}
	case map[string]any:
		if tc["type"] == "function" {
			name, _ := tc["name"].(string)
			if !slices.Contains(req.functions, name) {
				return &problem{fmt.Sprintf("Tool choice '%s' not found in 'tools' parameter.", name), "tool_choice", nil}
			}
			req.forced = name
		}
	default:
		return wrongType("tool_choice", "a string or an object", tc)
	}
	return nil
}

// checkInput checks the input items: messages of the four roles with the
// parts each may carry, calls and their outputs (each output answering a
// call before it), reasoning; item references name stored items, of
// which the fake has none.
func checkInput(v any, req *respRequest) *problem {
	switch in := v.(type) {
	case nil:
		return missing("input")
	case string:
		req.lastUser = in
		return nil
	case []any:
		if len(in) == 0 {
			return emptyArray("input")
		}
		calls := map[string]bool{}
		for i, raw := range in {
			at := fmt.Sprintf("input[%d]", i)
			it, ok := raw.(map[string]any)
			if !ok {
				return wrongType(at, "an object", raw)
			}
			typ, _ := it["type"].(string)
			req.lastIsOut = false
			switch typ {
			case "", "message":
				role, _ := it["role"].(string)
				if !slices.Contains([]string{"user", "assistant", "system", "developer"}, role) {
					return badValue(at+".role", role, []string{"user", "assistant", "system", "developer"})
				}
				text, pr := respContent(it["content"], role, at+".content")
				if pr != nil {
					return pr
				}
				if role == "user" {
					req.lastUser = text
				}
			case "function_call", "custom_tool_call":
				id, _ := it["call_id"].(string)
				if id == "" {
					return missing(at + ".call_id")
				}
				if name, _ := it["name"].(string); name == "" {
					return missing(at + ".name")
				}
				field := "arguments"
				if typ == "custom_tool_call" {
					field = "input"
				}
				if _, ok := it[field].(string); !ok {
					return wrongType(at+"."+field, "a string", it[field])
				}
				calls[id] = true
			case "function_call_output", "custom_tool_call_output":
				id, _ := it["call_id"].(string)
				if !calls[id] {
					return &problem{fmt.Sprintf("No tool call found for function call output with call_id %s.", id), "input", nil}
				}
				switch o := it["output"].(type) {
				case string:
					req.output = o
				case []any:
					req.output = contentText(o)
				default:
					return wrongType(at+".output", "a string or an array", o)
				}
				req.lastIsOut = true
			case "reasoning":
				if s, ok := it["summary"]; ok {
					if _, isArr := s.([]any); !isArr {
						return wrongType(at+".summary", "an array", s)
					}
				}
			case "item_reference":
				id, _ := it["id"].(string)
				return &problem{fmt.Sprintf("Item with id '%s' not found.", id), "input", nil}
			default:
				if !strings.HasSuffix(typ, "_call") && !strings.HasSuffix(typ, "_call_output") {
					return badValue(at+".type", typ, []string{"message", "function_call", "function_call_output", "reasoning", "item_reference"})
				}
			}
		}
		return nil
	}
	return wrongType("input", "a string or an array", v)
}

// respContent checks a message's content and returns its text.
func respContent(v any, role, at string) (string, *problem) {
	switch c := v.(type) {
	case string:
		return c, nil
	case []any:
		allowed := []string{"input_text", "input_image", "input_file"}
		if role == "assistant" {
			allowed = []string{"output_text", "refusal", "input_text"}
		}
		var text strings.Builder
		for i, raw := range c {
			p, _ := raw.(map[string]any)
			typ, _ := p["type"].(string)
			if !slices.Contains(allowed, typ) {
				return "", badValue(fmt.Sprintf("%s[%d].type", at, i), typ, allowed)
			}
			if s, ok := p["text"].(string); ok {
				text.WriteString(s)
			}
		}
		return text.String(), nil
	}
	return "", wrongType(at, "a string or an array", v)
}

// respItem is one output item, with what its stream events need.
type respItem struct {
	id, typ string
	text    string // a message's text, a reasoning summary
	call    toolCall
}

// respOutput decides the output, as the chat endpoint decides its answer.
func (c *call) respOutput(req *respRequest, reasoning string) []respItem {
	var out []respItem
	if reasoning != "" {
		it := respItem{id: "rs_" + newID(""), typ: "reasoning"}
		if req.summary {
			it.text = reasoning
		}
		out = append(out, it)
	}
	if len(req.functions) > 0 && !req.lastIsOut {
		calls, _ := parseCalls(req.lastUser)
		calls = slices.DeleteFunc(calls, func(tc toolCall) bool { return !slices.Contains(req.functions, tc.name) })
		if req.forced != "" && len(calls) == 0 {
			calls = []toolCall{{name: req.forced, args: "{}"}}
		}
		for _, tc := range calls {
			tc.id = newID("call_")
			out = append(out, respItem{id: "fc_" + newID(""), typ: "function_call", call: tc})
		}
		if len(calls) > 0 {
			return out
		}
	}
	text := "echo: " + req.lastUser
	if req.lastIsOut {
		text = "tool said: " + req.output
	}
	if req.jsonOut {
		b, _ := json.Marshal(map[string]string{"echo": text})
		text = string(b)
	}
	return append(out, respItem{id: "msg_" + newID(""), typ: "message", text: text})
}

// tokens counts a text as the chat endpoint does: one token a word.
func tokens(s string) int64 { return int64(len(strings.Fields(s))) }

// itemJSON is an output item as output_item.done and the Response carry
// it.
func (it respItem) itemJSON(status string) map[string]any {
	switch it.typ {
	case "reasoning":
		summary := []any{}
		if it.text != "" {
			summary = append(summary, map[string]any{"type": "summary_text", "text": it.text})
		}
		return map[string]any{"id": it.id, "type": "reasoning", "summary": summary}
	case "function_call":
		return map[string]any{"id": it.id, "type": "function_call", "status": "completed", "call_id": it.call.id, "name": it.call.name, "arguments": it.call.args}
	}
	return map[string]any{"id": it.id, "type": "message", "status": status, "role": "assistant",
		"content": []any{map[string]any{"type": "output_text", "text": it.text, "annotations": []any{}, "logprobs": []any{}}}}
}

// cut shortens the output to max_output_tokens; it reports whether it
// did.
func (req *respRequest) cut(out []respItem) bool {
	if req.maxTokens == 0 {
		return false
	}
	for i := range out {
		if out[i].typ == "message" && tokens(out[i].text) > req.maxTokens {
			out[i].text = strings.Join(strings.Fields(out[i].text)[:req.maxTokens], " ")
			return true
		}
	}
	return false
}

// respObject is the Response for out, with the request's settings as
// OpenAI echoes them.
func (c *call) respObject(req *respRequest, status string, out []respItem) map[string]any {
	incomplete := req.cut(out)
	if incomplete && status == "completed" {
		status = "incomplete"
	}
	items := make([]any, 0, len(out))
	var in, outTok, reasoning int64
	in = tokens(req.lastUser) + 1
	for _, it := range out {
		itemStatus := "completed"
		if incomplete {
			itemStatus = "incomplete"
		}
		items = append(items, it.itemJSON(itemStatus))
		outTok += tokens(it.text) + tokens(it.call.args)
		if it.typ == "reasoning" {
			reasoning += max(tokens(it.text), 1)
		}
	}
	outTok += reasoning
	cached := int64(0)
	c.s.mu.Lock()
	if u := c.s.usage; u != (Usage{}) {
		in, outTok, cached, reasoning = int64(u.Prompt), int64(u.Completion), int64(u.Cached), int64(u.Reasoning)
	}
	c.s.mu.Unlock()
	r := map[string]any{
		"id": c.id, "object": "response", "created_at": c.created, "status": status, "model": req.model,
		"output": items, "error": nil, "incomplete_details": nil, "previous_response_id": nil,
		"instructions": req.body["instructions"], "tools": orEmpty(req.body["tools"]), "tool_choice": orDefault(req.body["tool_choice"], "auto"),
		"parallel_tool_calls": orDefault(req.body["parallel_tool_calls"], true), "temperature": req.body["temperature"],
		"top_p": req.body["top_p"], "max_output_tokens": req.body["max_output_tokens"], "store": orDefault(req.body["store"], true),
		"metadata": orDefault(req.body["metadata"], map[string]any{}), "reasoning": orDefault(req.body["reasoning"], map[string]any{"effort": nil, "summary": nil}),
		"text": orDefault(req.body["text"], map[string]any{"format": map[string]any{"type": "text"}}),
		"usage": map[string]any{"input_tokens": in, "input_tokens_details": map[string]any{"cached_tokens": cached},
			"output_tokens": outTok, "output_tokens_details": map[string]any{"reasoning_tokens": reasoning}, "total_tokens": in + outTok},
	}
	if status == "incomplete" {
		r["incomplete_details"] = map[string]any{"reason": "max_output_tokens"}
	}
	if status == "in_progress" {
		r["output"], r["usage"] = []any{}, nil
	}
	return r
}

func orEmpty(v any) any { return orDefault(v, []any{}) }

func orDefault(v, d any) any {
	if v == nil {
		return d
	}
	return v
}

// respStream answers with the Responses event stream.
func (c *call) respStream(b Behavior, req *respRequest, out []respItem) {
	rc := c.beginStream(b)
	ctx := c.r.Context()
	seq := 0
	send := func(typ string, fields map[string]any) bool {
		if ctx.Err() != nil {
			c.gone()
			return false
		}
		// type first and sequence_number second, as OpenAI writes them.
		rest, _ := json.Marshal(fields)
		data := fmt.Sprintf(`{"type":%q,"sequence_number":%d`, typ, seq)
		if len(rest) > 2 {
			data += "," + string(rest[1:])
		} else {
			data += "}"
		}
		seq++
		if _, err := fmt.Fprintf(c.w, "event: %s\ndata: %s\n\n", typ, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("response.created", map[string]any{"response": c.respObject(req, "in_progress", nil)}) ||
		!send("response.in_progress", map[string]any{"response": c.respObject(req, "in_progress", nil)}) {
		return
	}
	if b == StreamFailed {
		r := c.respObject(req, "failed", nil)
		r["output"], r["usage"] = []any{}, nil
		r["error"] = map[string]any{"code": "server_error", "message": "The server had an error while processing your request."}
		send("response.failed", map[string]any{"response": r})
		return
	}
	final := c.respObject(req, "completed", out)
	status := final["status"].(string)
	for i, it := range out {
		done := it.itemJSON(map[bool]string{true: "incomplete", false: "completed"}[status == "incomplete"])
		added := it.itemJSON("in_progress")
		switch it.typ {
		case "message":
			added["content"] = []any{}
		case "reasoning":
			added["summary"] = []any{}
		case "function_call":
			added["arguments"], added["status"] = "", "in_progress"
		}
		if !send("response.output_item.added", map[string]any{"output_index": i, "item": added}) {
			return
		}
		with := func(extra map[string]any) map[string]any {
			m := map[string]any{"item_id": it.id, "output_index": i}
			for k, v := range extra {
				m[k] = v
			}
			return m
		}
		switch it.typ {
		case "reasoning":
			if it.text == "" {
				break
			}
			part := map[string]any{"type": "summary_text", "text": ""}
			if !send("response.reasoning_summary_part.added", with(map[string]any{"summary_index": 0, "part": part})) {
				return
			}
			for _, piece := range split(it.text, 2, 8) {
				if !send("response.reasoning_summary_text.delta", with(map[string]any{"summary_index": 0, "delta": piece})) {
					return
				}
			}
			send("response.reasoning_summary_text.done", with(map[string]any{"summary_index": 0, "text": it.text}))
			send("response.reasoning_summary_part.done", with(map[string]any{"summary_index": 0, "part": map[string]any{"type": "summary_text", "text": it.text}}))
		case "message":
			text := done["content"].([]any)[0].(map[string]any)["text"].(string)
			send("response.content_part.added", with(map[string]any{"content_index": 0, "part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}, "logprobs": []any{}}}))
			for k, piece := range split(text, 2, 8) {
				if !send("response.output_text.delta", with(map[string]any{"content_index": 0, "delta": piece, "logprobs": []any{}})) {
					return
				}
				if b == StreamBreak && k == 0 {
					panic(http.ErrAbortHandler)
				}
				if b == SlowStream && !c.pause(slowTick) {
					return
				}
			}
			send("response.output_text.done", with(map[string]any{"content_index": 0, "text": text, "logprobs": []any{}}))
			send("response.content_part.done", with(map[string]any{"content_index": 0, "part": done["content"].([]any)[0]}))
		case "function_call":
			for _, piece := range split(it.call.args, 1, 6) {
				if !send("response.function_call_arguments.delta", with(map[string]any{"delta": piece})) {
					return
				}
			}
			send("response.function_call_arguments.done", with(map[string]any{"name": it.call.name, "arguments": it.call.args}))
		}
		if !send("response.output_item.done", map[string]any{"output_index": i, "item": done}) {
			return
		}
	}
	send("response."+status, map[string]any{"response": final})
}
