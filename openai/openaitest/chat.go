package openaitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Behavior scripts how the fake answers requests made with one key (see
// SetBehavior). A key with a Behavior other than Normal is accepted even if
// AddKey never named it. The error behaviors answer a chat request once it
// has passed every check (headers, body, model), as a real service answers
// quota and load only for requests it would serve; on GET /v1/models only
// Unauthorized and Forbidden apply. The stream-shaping behaviors
// (StreamBreak, SlowStream) shape a successful answer.
type Behavior int

const (
	// Normal answers as documented on the package.
	Normal Behavior = iota
	// Unauthorized answers 401 invalid_api_key, as for a revoked key.
	Unauthorized
	// Forbidden answers 403 permission_denied.
	Forbidden
	// PaymentRequired answers 402 as DeepSeek does for an empty balance:
	// {"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}.
	PaymentRequired
	// InsufficientQuota answers 429 insufficient_quota, "You exceeded your
	// current quota, please check your plan and billing details.", without
	// Retry-After: an exhausted balance, not a rate limit.
	InsufficientQuota
	// RateLimited answers 429 rate_limit_exceeded with Retry-After in
	// seconds (SetRetryAfter).
	RateLimited
	// RateLimitedDate answers 429 rate_limit_exceeded with Retry-After as
	// an HTTP date SetRetryAfter ahead of the fake's clock.
	RateLimitedDate
	// RateLimitedBodyHint answers 429 rate_limit_exceeded without
	// Retry-After; the wait is only in the message: "Rate limit reached
	// for model `m` … Please try again in 7.5s." (SetRetryHint).
	RateLimitedBodyHint
	// ServerError answers 500 server_error.
	ServerError
	// Overloaded answers 503 server_is_overloaded.
	Overloaded
	// BadRequest answers 400 invalid_request_error "messages: field
	// required" to a request the fake would otherwise take.
	BadRequest
	// StreamBreak sends the role chunk and one content (or tool-call)
	// chunk, then drops the connection without finish_reason or [DONE]. A
	// non-stream answer is cut in the middle of its JSON. The fake aborts
	// the handler with http.ErrAbortHandler to do so.
	StreamBreak
	// SlowStream streams a content chunk every 50ms for up to 30s, so that
	// a test can go away mid-stream; the fake notices and counts it
	// (CanceledStreams). A non-stream request is answered at once.
	SlowStream
	// StreamFailed answers a Responses stream with response.created,
	// response.in_progress and then response.failed with a server_error,
	// as OpenAI ends a response that failed after it began. A plain
	// Responses request, and any chat request, gets ServerError's answer.
	StreamFailed
)

var behaviorNames = [...]string{
	Normal:              "Normal",
	Unauthorized:        "Unauthorized",
	Forbidden:           "Forbidden",
	PaymentRequired:     "PaymentRequired",
	InsufficientQuota:   "InsufficientQuota",
	RateLimited:         "RateLimited",
	RateLimitedDate:     "RateLimitedDate",
	RateLimitedBodyHint: "RateLimitedBodyHint",
	ServerError:         "ServerError",
	Overloaded:          "Overloaded",
	BadRequest:          "BadRequest",
	StreamBreak:         "StreamBreak",
	SlowStream:          "SlowStream",
	StreamFailed:        "StreamFailed",
}

func (b Behavior) String() string {
	if b >= 0 && int(b) < len(behaviorNames) {
		return behaviorNames[b]
	}
	return "Behavior(" + strconv.Itoa(int(b)) + ")"
}

// SetBehavior scripts the answers to requests made with key. Normal
// restores the default.
func (s *Server) SetBehavior(key string, b Behavior) {
	s.mu.Lock()
	if b == Normal {
		delete(s.behaviors, key)
	} else {
		s.behaviors[key] = b
	}
	s.mu.Unlock()
}

// Scripted error bodies, worded as the real services word them.
var (
	errPaymentRequired = apiError{Message: "Insufficient Balance", Type: "unknown_error", Code: "invalid_request_error"}
	errQuota           = apiError{Message: "You exceeded your current quota, please check your plan and billing details.", Type: "insufficient_quota", Code: "insufficient_quota"}
	errRateLimited     = apiError{Message: "Rate limit reached for requests. Please slow down.", Type: "requests", Code: "rate_limit_exceeded"}
	errServer          = apiError{Message: "The server had an error while processing your request. Sorry about that!", Type: "server_error"}
	errOverloaded      = apiError{Message: "The server is overloaded or not ready yet.", Type: "service_unavailable_error", Code: "server_is_overloaded"}
	errBadRequest      = apiError{Message: "messages: field required", Type: "invalid_request_error", Param: "messages"}
)

func errForbidden(model string) apiError {
	msg := "You have insufficient permissions for this operation."
	if model != "" {
		msg = "Your API key does not have permission to use model `" + model + "`."
	}
	return apiError{Message: msg, Type: "permission_error", Code: "permission_denied"}
}

func errIncorrectKey(key string) apiError {
	return apiError{
		Message: "Incorrect API key provided: " + maskKey(key) + ". You can find your API key at https://platform.openai.com/account/api-keys.",
		Type:    "invalid_request_error",
		Code:    "invalid_api_key",
	}
}

// errNoKey is OpenAI's answer to a request without a key, told in terms
// of the header the fake expects.
func errNoKey(header, prefix string) apiError {
	how := fmt.Sprintf("in an %s header (i.e. %s: %sYOUR_KEY)", header, header, prefix)
	if header == "Authorization" && prefix == "Bearer " {
		how = "in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)"
	}
	return apiError{
		Message: "You didn't provide an API key. You need to provide your API key " + how + ". You can obtain an API key from https://platform.openai.com/account/api-keys.",
		Type:    "invalid_request_error",
	}
}

func errNoModel(model string) apiError {
	return apiError{
		Message: "The model `" + model + "` does not exist or you do not have access to it.",
		Type:    "invalid_request_error",
		Code:    "model_not_found",
	}
}

func errBadMethod(r *http.Request) apiError {
	return apiError{Message: "Invalid method for URL (" + r.Method + " " + r.URL.Path + ")", Type: "invalid_request_error"}
}

// maskKey shows a key the way OpenAI does in its 401 message, never
// whole.
func maskKey(key string) string {
	r := []rune(key)
	if len(r) < 12 {
		return "****"
	}
	return string(r[:5]) + "****" + string(r[len(r)-2:])
}

// keyHeaders are where clients put keys, to tell a client that used the
// wrong one.
var keyHeaders = []string{"Authorization", "Api-Key", "X-Api-Key"}

// call is one request being answered.
type call struct {
	s   *Server
	w   http.ResponseWriter
	r   *http.Request
	idx int // index in s.requests
	raw []byte

	key     string
	req     *chatRequest
	resp    *respRequest
	id      string
	created int64
}

// finish records how the request was answered.
func (c *call) finish(status int, outcome string) {
	c.s.mu.Lock()
	c.s.requests[c.idx].Status = status
	c.s.requests[c.idx].Outcome = outcome
	c.s.mu.Unlock()
}

// fail answers a mistake of the client with OpenAI's error object and the
// fake's reason.
func (c *call) fail(status int, e apiError, reason string) {
	reason = oneLine(reason)
	c.finish(status, "rejected: "+reason)
	c.w.Header().Set(ReasonHeader, reason)
	writeJSON(c.w, status, map[string]any{"error": e})
}

// scripted answers as a Behavior (or SetModelsStatus) says; the reason
// header tells a test that the answer was scripted, not a mistake of the
// client.
func (c *call) scripted(name string, status int, e apiError) {
	c.finish(status, "behavior "+name)
	c.w.Header().Set(ReasonHeader, "scripted behavior "+name)
	writeJSON(c.w, status, map[string]any{"error": e})
}

// authorize checks the key header and the required headers.
func (c *call) authorize() bool {
	s := c.s
	s.mu.Lock()
	header, prefix := s.authHeader, s.authPrefix
	required := make(map[string]string, len(s.required))
	for k, v := range s.required {
		required[k] = v
	}
	s.mu.Unlock()

	v := c.r.Header.Get(header)
	if v == "" {
		reason := "no API key: the request has no " + header + " header"
		for _, h := range keyHeaders {
			if h != header && c.r.Header.Get(h) != "" {
				reason = "API key sent in the " + h + " header, but this server takes it in " + header
				break
			}
		}
		c.fail(http.StatusUnauthorized, errNoKey(header, prefix), reason)
		return false
	}
	key, ok := strings.CutPrefix(v, prefix)
	if !ok || key == "" {
		c.fail(http.StatusUnauthorized, errNoKey(header, prefix), fmt.Sprintf("the %s header must be %q followed by the API key", header, prefix))
		return false
	}
	c.key = key
	s.mu.Lock()
	_, scripted := s.behaviors[key]
	valid := s.keys[key] || scripted
	s.mu.Unlock()
	if !valid {
		c.fail(http.StatusUnauthorized, errIncorrectKey(key), "unknown API key (not added with AddKey, or removed)")
		return false
	}

	names := make([]string, 0, len(required))
	for n := range required {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		want, got := required[n], c.r.Header.Get(n)
		if got == want {
			continue
		}
		reason := "missing required header " + n
		if got != "" {
			reason = fmt.Sprintf("header %s is %q, want %q", n, got, want)
		}
		c.fail(http.StatusBadRequest, apiError{Message: "fake openai: " + reason, Type: "invalid_request_error", Code: "missing_required_header"}, reason)
		return false
	}
	return true
}

// jsonBody makes the checks every POST endpoint makes first, in a real
// service's order (method, key, Content-Type, JSON object), and answers
// a request that fails one; what names the endpoint in the method error.
func (c *call) jsonBody(what string) (map[string]any, bool) {
	r := c.r
	if r.Method != http.MethodPost {
		c.w.Header().Set("Allow", http.MethodPost)
		c.fail(http.StatusMethodNotAllowed, errBadMethod(r), what+" needs POST, got "+r.Method)
		return nil, false
	}
	if !c.authorize() {
		return nil, false
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		reason := fmt.Sprintf("Content-Type must be application/json, got %q", ct)
		c.fail(http.StatusBadRequest, apiError{Message: "fake openai: " + reason, Type: "invalid_request_error"}, reason)
		return nil, false
	}
	body, pr, reason := parseBody(c.raw)
	if pr != nil {
		c.fail(http.StatusBadRequest, pr.apiError(), reason)
		return nil, false
	}
	return body, true
}

// modelAndBehavior refuses a model the fake does not serve, and plays the
// key's behavior where it answers instead of the model (done: answered).
func (c *call) modelAndBehavior(model string) (b Behavior, now time.Time, done bool) {
	s := c.s
	s.mu.Lock()
	known := slices.Contains(s.models, model)
	b = s.behaviors[c.key]
	wait, hint := s.retryAfter, s.retryHint
	now = s.now()
	s.mu.Unlock()
	if !known {
		c.fail(http.StatusNotFound, errNoModel(model), fmt.Sprintf("model %q is not one of SetModels", model))
		return b, now, true
	}
	return b, now, c.behave(b, model, wait, hint, now)
}

// chat serves POST /v1/chat/completions: the checks in the order a real
// service makes them, then the answer.
func (c *call) chat() {
	body, ok := c.jsonBody("chat completions")
	if !ok {
		return
	}

	s := c.s
	s.mu.Lock()
	refused := refusedFields(body, s.refused, s.refuseUnknown)
	s.mu.Unlock()
	if len(refused) > 0 {
		c.fail(http.StatusBadRequest, unrecognized(refused).apiError(), "refused field(s) "+strings.Join(refused, ", "))
		return
	}
	req, pr := checkChat(body)
	if pr != nil {
		c.fail(http.StatusBadRequest, pr.apiError(), pr.msg)
		return
	}
	c.req = req

	b, now, done := c.modelAndBehavior(req.model)
	if done {
		return
	}

	c.id = newID("chatcmpl-")
	c.created = now.Unix()
	ans := req.answer()
	c.s.mu.Lock()
	ans.reasoning = c.s.reasoning
	c.s.mu.Unlock()
	switch {
	case req.stream:
		c.stream(b, ans)
	case b == StreamBreak:
		c.brokenCompletion(ans)
	default:
		c.completion(ans)
	}
}

// behave answers as an error Behavior says, after every check has
// passed; it reports whether it answered.
func (c *call) behave(b Behavior, model string, wait, hint time.Duration, now time.Time) bool {
	name := b.String()
	switch b {
	case Unauthorized:
		c.scripted(name, http.StatusUnauthorized, errIncorrectKey(c.key))
		return true
	case Forbidden:
		c.scripted(name, http.StatusForbidden, errForbidden(model))
		return true
	case PaymentRequired:
		c.scripted(name, http.StatusPaymentRequired, errPaymentRequired)
		return true
	case InsufficientQuota:
		c.scripted(name, http.StatusTooManyRequests, errQuota)
		return true
	case RateLimited:
		c.w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10))
		c.scripted(name, http.StatusTooManyRequests, errRateLimited)
		return true
	case RateLimitedDate:
		c.w.Header().Set("Retry-After", now.Add(wait).UTC().Format(http.TimeFormat))
		c.scripted(name, http.StatusTooManyRequests, errRateLimited)
		return true
	case RateLimitedBodyHint:
		c.scripted(name, http.StatusTooManyRequests, apiError{
			Message: fmt.Sprintf("Rate limit reached for model `%s` in organization `org-openaitest` on tokens per minute (TPM): Limit 30000, Used 29000, Requested 1500. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.", model, hint.Round(time.Millisecond)),
			Type:    "tokens",
			Code:    "rate_limit_exceeded",
		})
		return true
	case ServerError:
		c.scripted(name, http.StatusInternalServerError, errServer)
		return true
	case StreamFailed:
		if c.r.URL.Path == responsesPath && c.resp != nil && c.resp.stream {
			return false
		}
		c.scripted(name, http.StatusInternalServerError, errServer)
		return true
	case Overloaded:
		c.scripted(name, http.StatusServiceUnavailable, errOverloaded)
		return true
	case BadRequest:
		c.scripted(name, http.StatusBadRequest, errBadRequest)
		return true
	}
	return false
}

// toolCall is one function call of an answer.
type toolCall struct {
	id, name, args string
}

// answer is what the fake says: text, or tool calls.
type answer struct {
	// reasoning is the model's thinking (SetReasoning), sent before the
	// rest as DeepSeek sends it: reasoning_content.
	reasoning string
	text      string
	calls     []toolCall
}

// answer decides the reply to a checked request.
func (r *chatRequest) answer() answer {
	last := r.msgs[len(r.msgs)-1]
	lastRole, _ := last["role"].(string)
	if len(r.tools) > 0 && r.toolChoice != "none" {
		var calls []toolCall
		if lastRole == "user" {
			if cs, ok := parseCalls(contentText(last["content"])); ok && allKnown(cs, r.tools) {
				calls = cs
			}
		}
		switch {
		case r.forced != "":
			calls = slices.DeleteFunc(calls, func(c toolCall) bool { return c.name != r.forced })
			if len(calls) == 0 {
				calls = []toolCall{{name: r.forced, args: "{}"}}
			}
		case r.toolChoice == "required" && len(calls) == 0:
			calls = []toolCall{{name: r.tools[0], args: "{}"}}
		}
		if !r.parallel && len(calls) > 1 {
			calls = calls[:1]
		}
		if len(calls) > 0 {
			for i := range calls {
				calls[i].id = newID("call_")
			}
			return answer{calls: calls}
		}
	}
	if lastRole == "tool" {
		return answer{text: "tool said: " + contentText(last["content"])}
	}
	return answer{text: "echo: " + r.lastUserText()}
}

// lastUserText is the text of the last user message; "ok" when it has
// only non-text parts.
func (r *chatRequest) lastUserText() string {
	for i := len(r.msgs) - 1; i >= 0; i-- {
		m := r.msgs[i]
		if m["role"] != "user" {
			continue
		}
		if s, ok := m["content"].(string); ok {
			return s
		}
		if t := contentText(m["content"]); t != "" {
			return t
		}
		return "ok"
	}
	return "ok"
}

// contentText is a string content, or the text parts of an array joined
// by spaces.
func contentText(v any) string {
	switch c := v.(type) {
	case string:
		return c
	case []any:
		var texts []string
		for _, p := range c {
			po, _ := p.(map[string]any)
			if po["type"] == "text" {
				if t, ok := po["text"].(string); ok {
					texts = append(texts, t)
				}
			}
		}
		return strings.Join(texts, " ")
	}
	return ""
}

// parseCalls reads "call <name> <json object>", repeated with "and", as
// the whole of text.
func parseCalls(text string) ([]toolCall, bool) {
	rest := strings.TrimSpace(text)
	var calls []toolCall
	for {
		after, ok := strings.CutPrefix(rest, "call ")
		if !ok {
			return nil, false
		}
		after = strings.TrimSpace(after)
		end := strings.IndexAny(after, " \t\r\n")
		if end <= 0 {
			return nil, false
		}
		name, tail := after[:end], after[end:]
		dec := json.NewDecoder(strings.NewReader(tail))
		var args json.RawMessage
		if err := dec.Decode(&args); err != nil {
			return nil, false
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, args); err != nil || compact.Len() == 0 || compact.Bytes()[0] != '{' {
			return nil, false
		}
		calls = append(calls, toolCall{name: name, args: compact.String()})
		rest = strings.TrimSpace(tail[dec.InputOffset():])
		if rest == "" {
			return calls, true
		}
		if rest, ok = strings.CutPrefix(rest, "and "); !ok {
			return nil, false
		}
		rest = strings.TrimSpace(rest)
	}
}

func allKnown(calls []toolCall, tools []string) bool {
	for _, c := range calls {
		if !slices.Contains(tools, c.name) {
			return false
		}
	}
	return true
}

// usage is the usage object of an answer: as SetUsage says, or one token
// a word.
func (c *call) usage(ans answer) map[string]any {
	c.s.mu.Lock()
	u := c.s.usage
	c.s.mu.Unlock()
	if u == (Usage{}) {
		for _, m := range c.req.msgs {
			u.Prompt += len(strings.Fields(contentText(m["content"])))
		}
		u.Completion = len(strings.Fields(ans.text))
		for _, tc := range ans.calls {
			u.Completion += len(strings.Fields(tc.name + " " + tc.args))
		}
	}
	return map[string]any{
		"prompt_tokens":             u.Prompt,
		"completion_tokens":         u.Completion,
		"total_tokens":              u.Prompt + u.Completion,
		"prompt_tokens_details":     map[string]any{"cached_tokens": u.Cached},
		"completion_tokens_details": map[string]any{"reasoning_tokens": u.Reasoning},
	}
}

// systemFingerprint is sent as OpenAI sends one.
const systemFingerprint = "fp_openaitest"

// completionBody is the chat.completion object of an answer.
func (c *call) completionBody(ans answer) map[string]any {
	msg := map[string]any{"role": "assistant", "content": ans.text, "refusal": nil}
	if ans.reasoning != "" {
		msg["reasoning_content"] = ans.reasoning
	}
	finish := "stop"
	if len(ans.calls) > 0 {
		var calls []any
		for _, tc := range ans.calls {
			calls = append(calls, map[string]any{
				"id":       tc.id,
				"type":     "function",
				"function": map[string]any{"name": tc.name, "arguments": tc.args},
			})
		}
		msg["content"] = nil
		msg["tool_calls"] = calls
		finish = "tool_calls"
	}
	obj := map[string]any{
		"id":      c.id,
		"object":  "chat.completion",
		"created": c.created,
		"model":   c.req.model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       msg,
			"logprobs":      nil,
			"finish_reason": finish,
		}},
		"usage":              c.usage(ans),
		"system_fingerprint": systemFingerprint,
	}
	if c.s.omitsUsage() {
		delete(obj, "usage")
	}
	return obj
}

// completion answers one chat.completion object.
func (c *call) completion(ans answer) {
	c.finish(http.StatusOK, "ok")
	writeJSON(c.w, http.StatusOK, c.completionBody(ans))
}

// brokenCompletion sends half of a chat.completion, then drops the
// connection.
func (c *call) brokenCompletion(ans answer) {
	b, _ := json.Marshal(c.completionBody(ans))
	c.finish(http.StatusOK, "behavior "+StreamBreak.String())
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(b[:len(b)/2])
	_ = http.NewResponseController(c.w).Flush()
	panic(http.ErrAbortHandler)
}
