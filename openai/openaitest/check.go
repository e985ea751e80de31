package openaitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// chatFields are the top-level fields of OpenAI's chat-completions request
// body, sorted; RefuseUnknownFields refuses every other.
var chatFields = []string{
	"audio", "frequency_penalty", "function_call", "functions", "logit_bias",
	"logprobs", "max_completion_tokens", "max_tokens", "messages", "metadata",
	"modalities", "model", "n", "parallel_tool_calls", "prediction",
	"presence_penalty", "prompt_cache_key", "prompt_cache_retention",
	"reasoning_effort", "response_format", "safety_identifier", "seed",
	"service_tier", "stop", "store", "stream", "stream_options", "temperature",
	"tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
	"web_search_options",
}

// ChatFields returns the documented top-level fields of a chat-completions
// request, the set RefuseUnknownFields lets through.
func ChatFields() []string { return slices.Clone(chatFields) }

// roles are the message roles the chat endpoint takes.
var roles = []string{"system", "developer", "user", "assistant", "tool"}

// partTypes are the content part types each role may send.
var partTypes = map[string][]string{
	"system":    {"text"},
	"developer": {"text"},
	"user":      {"text", "image_url", "input_audio", "file"},
	"assistant": {"text", "refusal"},
	"tool":      {"text"},
}

var toolChoices = []string{"none", "auto", "required"}

// functionName is OpenAI's rule for function names.
var functionName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// problem is what is wrong with a chat body, worded as OpenAI words it:
// the message, the param it names (nil: none) and the code (nil: none).
type problem struct {
	msg   string
	param any
	code  any
}

func (p *problem) apiError() apiError {
	return apiError{Message: p.msg, Type: "invalid_request_error", Param: p.param, Code: p.code}
}

func missing(param string) *problem {
	return &problem{fmt.Sprintf("Missing required parameter: '%s'.", param), param, "missing_required_parameter"}
}

func wrongType(param, want string, v any) *problem {
	return &problem{fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.", param, want, kind(v)), param, "invalid_type"}
}

func badValue(param, v string, supported []string) *problem {
	quoted := make([]string, len(supported))
	for i, s := range supported {
		quoted[i] = "'" + s + "'"
	}
	list := strings.Join(quoted, ", ")
	switch n := len(quoted); {
	case n == 2:
		list = quoted[0] + " and " + quoted[1]
	case n > 2:
		list = strings.Join(quoted[:n-1], ", ") + ", and " + quoted[n-1]
	}
	return &problem{fmt.Sprintf("Invalid value: '%s'. Supported values are: %s.", v, list), param, "invalid_value"}
}

func emptyArray(param string) *problem {
	return &problem{fmt.Sprintf("Invalid '%s': empty array. Expected an array with minimum length 1, but got an empty array instead.", param), param, "empty_array"}
}

func emptyString(param string) *problem {
	return &problem{fmt.Sprintf("Invalid '%s': empty string. Expected a string with minimum length 1, but got an empty string instead.", param), param, "empty_string"}
}

// kind names the JSON type of a value decoded with UseNumber, as OpenAI's
// messages do.
func kind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			return "a decimal number"
		}
		return "an integer"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// notJSON is OpenAI's answer to a body it cannot parse.
const notJSON = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"

// parseBody decodes a chat body (numbers as json.Number). On failure it
// returns the problem and the fake's own reason.
func parseBody(raw []byte) (map[string]any, *problem, string) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &problem{msg: notJSON}, "body is not valid JSON: " + err.Error()
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &problem{msg: notJSON}, "body has data after its JSON value"
	}
	body, ok := v.(map[string]any)
	if !ok {
		return nil, &problem{msg: fmt.Sprintf("Invalid type for request body: expected an object, but got %s instead.", kind(v))},
			"body must be a JSON object, got " + kind(v)
	}
	return body, nil, ""
}

// refusedFields returns, sorted, the top-level fields of body that refused
// names or that, with unknown on, are not chat fields.
func refusedFields(body map[string]any, refused map[string]bool, unknown bool) []string {
	var out []string
	for name := range body {
		if refused[name] || unknown && !slices.Contains(chatFields, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// unrecognized is how compatible servers refuse fields they do not know.
func unrecognized(names []string) *problem {
	msg := "Unrecognized request argument supplied: " + names[0]
	if len(names) > 1 {
		msg = "Unrecognized request arguments supplied: " + strings.Join(names, ", ")
	}
	return &problem{msg: msg}
}

// chatRequest is what the fake needs of a checked chat body.
type chatRequest struct {
	model        string
	msgs         []map[string]any
	stream       bool
	includeUsage bool
	tools        []string // function names, in order
	toolChoice   string   // "", "none", "auto", "required" or "function"
	forced       string   // the function tool_choice forces
	parallel     bool
}

// checkChat checks a decoded chat body and returns what the fake needs of
// it, or the first problem in the order OpenAI reports them.
func checkChat(body map[string]any) (*chatRequest, *problem) {
	req := &chatRequest{parallel: true}

	mv := body["model"]
	if mv == nil {
		return nil, missing("model")
	}
	model, ok := mv.(string)
	if !ok {
		return nil, wrongType("model", "a string", mv)
	}
	if model == "" {
		return nil, emptyString("model")
	}
	req.model = model

	if p := checkMessages(body["messages"], req); p != nil {
		return nil, p
	}

	if v := body["stream"]; v != nil {
		b, ok := v.(bool)
		if !ok {
			return nil, wrongType("stream", "a boolean", v)
		}
		req.stream = b
	}
	if v := body["stream_options"]; v != nil {
		o, ok := v.(map[string]any)
		if !ok {
			return nil, wrongType("stream_options", "an object", v)
		}
		if !req.stream {
			return nil, &problem{"The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", nil}
		}
		if iu := o["include_usage"]; iu != nil {
			b, ok := iu.(bool)
			if !ok {
				return nil, wrongType("stream_options.include_usage", "a boolean", iu)
			}
			req.includeUsage = b
		}
	}

	if p := checkTools(body, req); p != nil {
		return nil, p
	}

	for _, f := range []string{"max_tokens", "max_completion_tokens"} {
		if p := checkPositiveInt(f, body[f]); p != nil {
			return nil, p
		}
	}
	return req, nil
}

// checkMessages checks body.messages into req.msgs.
func checkMessages(v any, req *chatRequest) *problem {
	if v == nil {
		return missing("messages")
	}
	arr, ok := v.([]any)
	if !ok {
		return wrongType("messages", "an array", v)
	}
	if len(arr) == 0 {
		return emptyArray("messages")
	}
	// The tool calls of the last assistant message that tool messages
	// have not answered yet; open while tool messages may follow it.
	var pending []string
	open, opener := false, 0
	unanswered := func() *problem {
		return &problem{
			"An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: " + strings.Join(pending, ", "),
			fmt.Sprintf("messages[%d].tool_calls", opener), nil,
		}
	}
	for i, m := range arr {
		p := fmt.Sprintf("messages[%d]", i)
		msg, ok := m.(map[string]any)
		if !ok {
			return wrongType(p, "an object", m)
		}
		rv := msg["role"]
		if rv == nil {
			return missing(p + ".role")
		}
		role, ok := rv.(string)
		if !ok {
			return wrongType(p+".role", "a string", rv)
		}
		if !slices.Contains(roles, role) {
			return badValue(p+".role", role, roles)
		}

		var callIDs []string
		if role == "assistant" {
			if tc := msg["tool_calls"]; tc != nil {
				ids, pr := checkToolCalls(p+".tool_calls", tc)
				if pr != nil {
					return pr
				}
				callIDs = ids
			}
		}
		content := msg["content"]
		switch {
		case content != nil:
			if pr := checkContent(p+".content", role, content); pr != nil {
				return pr
			}
		case role == "assistant" && len(callIDs) > 0:
			// Content may be null or absent beside tool calls.
		case role == "assistant":
			return &problem{fmt.Sprintf("Invalid value for '%s.content': expected a string or an array of content parts, got null. An assistant message needs content unless it has tool_calls.", p), p + ".content", "invalid_value"}
		default:
			if _, present := msg["content"]; present {
				return &problem{fmt.Sprintf("Invalid value for '%s.content': expected a string or an array of content parts, got null.", p), p + ".content", "invalid_value"}
			}
			return missing(p + ".content")
		}

		if role == "tool" {
			iv := msg["tool_call_id"]
			if iv == nil {
				return missing(p + ".tool_call_id")
			}
			id, ok := iv.(string)
			if !ok {
				return wrongType(p+".tool_call_id", "a string", iv)
			}
			if id == "" {
				return emptyString(p + ".tool_call_id")
			}
			if !open {
				return &problem{"Invalid parameter: messages with role 'tool' must be a response to a preceding message with 'tool_calls'.", p + ".role", nil}
			}
			k := slices.Index(pending, id)
			if k < 0 {
				return &problem{fmt.Sprintf("Invalid parameter: '%s.tool_call_id' is '%s', which names no unanswered tool call of the preceding assistant message.", p, id), p + ".tool_call_id", nil}
			}
			pending = slices.Delete(pending, k, k+1)
			req.msgs = append(req.msgs, msg)
			continue
		}
		if open && len(pending) > 0 {
			return unanswered()
		}
		open, opener, pending = len(callIDs) > 0, i, callIDs
		req.msgs = append(req.msgs, msg)
	}
	if open && len(pending) > 0 {
		return unanswered()
	}
	return nil
}

// checkContent checks the non-null content of a message of role.
func checkContent(param, role string, v any) *problem {
	switch c := v.(type) {
	case string:
		return nil
	case []any:
		if len(c) == 0 {
			return emptyArray(param)
		}
		for j, part := range c {
			pp := fmt.Sprintf("%s[%d]", param, j)
			po, ok := part.(map[string]any)
			if !ok {
				return wrongType(pp, "an object", part)
			}
			t, pr := needString(po, "type", pp)
			if pr != nil {
				return pr
			}
			if !slices.Contains(partTypes[role], t) {
				return badValue(pp+".type", t, partTypes[role])
			}
			switch t {
			case "text", "refusal":
				_, pr = needString(po, t, pp)
			case "image_url":
				var img map[string]any
				if img, pr = needObject(po, "image_url", pp); pr == nil {
					var url string
					if url, pr = needString(img, "url", pp+".image_url"); pr == nil && url == "" {
						pr = emptyString(pp + ".image_url.url")
					}
				}
			case "input_audio":
				var audio map[string]any
				if audio, pr = needObject(po, "input_audio", pp); pr == nil {
					if _, pr = needString(audio, "data", pp+".input_audio"); pr == nil {
						_, pr = needString(audio, "format", pp+".input_audio")
					}
				}
			case "file":
				_, pr = needObject(po, "file", pp)
			}
			if pr != nil {
				return pr
			}
		}
		return nil
	}
	return wrongType(param, "one of a string or an array of content parts", v)
}

// checkToolCalls checks the tool_calls of an assistant message and returns
// their ids.
func checkToolCalls(param string, v any) ([]string, *problem) {
	arr, ok := v.([]any)
	if !ok {
		return nil, wrongType(param, "an array", v)
	}
	if len(arr) == 0 {
		return nil, emptyArray(param)
	}
	var ids []string
	for j, c := range arr {
		pp := fmt.Sprintf("%s[%d]", param, j)
		call, ok := c.(map[string]any)
		if !ok {
			return nil, wrongType(pp, "an object", c)
		}
		id, pr := needString(call, "id", pp)
		if pr == nil && id == "" {
			pr = emptyString(pp + ".id")
		}
		if pr != nil {
			return nil, pr
		}
		t, pr := needString(call, "type", pp)
		if pr != nil {
			return nil, pr
		}
		if t != "function" {
			return nil, badValue(pp+".type", t, []string{"function"})
		}
		fn, pr := needObject(call, "function", pp)
		if pr != nil {
			return nil, pr
		}
		name, pr := needString(fn, "name", pp+".function")
		if pr == nil && name == "" {
			pr = emptyString(pp + ".function.name")
		}
		if pr != nil {
			return nil, pr
		}
		// arguments is a string of JSON, never the JSON itself.
		if _, pr := needString(fn, "arguments", pp+".function"); pr != nil {
			return nil, pr
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// checkTools checks tools, tool_choice and parallel_tool_calls into req.
func checkTools(body map[string]any, req *chatRequest) *problem {
	if v := body["tools"]; v != nil {
		arr, ok := v.([]any)
		if !ok {
			return wrongType("tools", "an array", v)
		}
		if len(arr) == 0 {
			return emptyArray("tools")
		}
		for j, t := range arr {
			pp := fmt.Sprintf("tools[%d]", j)
			tool, ok := t.(map[string]any)
			if !ok {
				return wrongType(pp, "an object", t)
			}
			typ, pr := needString(tool, "type", pp)
			if pr != nil {
				return pr
			}
			if typ != "function" {
				return badValue(pp+".type", typ, []string{"function"})
			}
			fn, pr := needObject(tool, "function", pp)
			if pr != nil {
				return pr
			}
			name, pr := needString(fn, "name", pp+".function")
			if pr != nil {
				return pr
			}
			if !functionName.MatchString(name) {
				return &problem{fmt.Sprintf("Invalid '%s.function.name': string does not match pattern. Expected a string that matches the pattern '%s'.", pp, functionName), pp + ".function.name", "invalid_value"}
			}
			if d := fn["description"]; d != nil {
				if _, ok := d.(string); !ok {
					return wrongType(pp+".function.description", "a string", d)
				}
			}
			if ps := fn["parameters"]; ps != nil {
				if _, ok := ps.(map[string]any); !ok {
					return wrongType(pp+".function.parameters", "an object", ps)
				}
			}
			if st := fn["strict"]; st != nil {
				if _, ok := st.(bool); !ok {
					return wrongType(pp+".function.strict", "a boolean", st)
				}
			}
			req.tools = append(req.tools, name)
		}
	}

	if v := body["tool_choice"]; v != nil {
		if len(req.tools) == 0 {
			return &problem{"Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice", nil}
		}
		switch c := v.(type) {
		case string:
			if !slices.Contains(toolChoices, c) {
				return badValue("tool_choice", c, toolChoices)
			}
			req.toolChoice = c
		case map[string]any:
			typ, pr := needString(c, "type", "tool_choice")
			if pr != nil {
				return pr
			}
			if typ != "function" {
				return badValue("tool_choice.type", typ, []string{"function"})
			}
			fn, pr := needObject(c, "function", "tool_choice")
			if pr != nil {
				return pr
			}
			name, pr := needString(fn, "name", "tool_choice.function")
			if pr != nil {
				return pr
			}
			if !slices.Contains(req.tools, name) {
				return &problem{fmt.Sprintf("Invalid value for 'tool_choice': function '%s' is not one of the functions in 'tools'.", name), "tool_choice", "invalid_value"}
			}
			req.toolChoice, req.forced = "function", name
		default:
			return wrongType("tool_choice", "one of a string or an object", v)
		}
	}

	if v := body["parallel_tool_calls"]; v != nil {
		b, ok := v.(bool)
		if !ok {
			return wrongType("parallel_tool_calls", "a boolean", v)
		}
		if len(req.tools) == 0 {
			return &problem{"Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.", "parallel_tool_calls", nil}
		}
		req.parallel = b
	}
	return nil
}

// checkPositiveInt checks an optional field that must be an integer >= 1.
func checkPositiveInt(field string, v any) *problem {
	if v == nil {
		return nil
	}
	n, ok := v.(json.Number)
	if !ok || strings.ContainsAny(string(n), ".eE") {
		return wrongType(field, "an integer", v)
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return &problem{fmt.Sprintf("Invalid '%s': integer above maximum value.", field), field, "integer_above_max_value"}
	}
	if i < 1 {
		return &problem{fmt.Sprintf("Invalid '%s': integer below minimum value. Expected a value >= 1, but got %d instead.", field, i), field, "integer_below_min_value"}
	}
	return nil
}

// needString returns obj[field] when it is a string; parent names obj in
// the problem.
func needString(obj map[string]any, field, parent string) (string, *problem) {
	v := obj[field]
	if v == nil {
		return "", missing(parent + "." + field)
	}
	s, ok := v.(string)
	if !ok {
		return "", wrongType(parent+"."+field, "a string", v)
	}
	return s, nil
}

// needObject returns obj[field] when it is an object.
func needObject(obj map[string]any, field, parent string) (map[string]any, *problem) {
	v := obj[field]
	if v == nil {
		return nil, missing(parent + "." + field)
	}
	o, ok := v.(map[string]any)
	if !ok {
		return nil, wrongType(parent+"."+field, "an object", v)
	}
	return o, nil
}
