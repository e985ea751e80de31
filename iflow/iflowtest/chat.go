package iflowtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Behavior scripts how the chat endpoint answers requests made with one API
// key (see SetBehavior). The error behaviors answer as soon as the request
// has passed the header, signature and body checks, whether or not the key
// is registered; the stream-shaping behaviors (StreamNoDone,
// StreamNetworkError, StreamAsJSON, SlowStream, ReasoningOnly) only shape a
// successful reply, so the key must be valid and the model known.
type Behavior int

const (
	// Normal answers "echo: <last user message>".
	Normal Behavior = iota
	// InvalidKey answers HTTP 200 {"status":"434","msg":"Invalid apiKey","body":null},
	// as application/json even to a stream request.
	InvalidKey
	// BlockedKey answers HTTP 200 {"status":"434","msg":"Access to the current AK has been blocked…"}.
	BlockedKey
	// RateLimited answers HTTP 200 {"status":"449","msg":"You exceeded your current rate limit","body":null}
	// (status is a string).
	RateLimited
	// TokenExpired answers HTTP 200 {"status":439,"msg":"token has expired"}
	// (status is a number).
	TokenExpired
	// ModelNotSupported answers HTTP 200 {"error_code":500,"msg":"Model not support","body":null}
	// whatever the model.
	ModelNotSupported
	// StreamNoDone streams normally but ends without "data: [DONE]".
	StreamNoDone
	// StreamNetworkError sends one content chunk, then a chunk with empty
	// delta and finish_reason "network_error", then ends (no [DONE]).
	StreamNetworkError
	// StreamAsJSON answers a stream request with one plain JSON
	// chat.completion (Content-Type application/json).
	StreamAsJSON
	// SlowStream sends a content chunk every 50ms for up to 30s, so that a
	// test can go away mid-stream; the fake notices and counts it
	// (CanceledStreams).
	SlowStream
	// HTTP500 answers HTTP 500.
	HTTP500
	// NotFoundModel answers HTTP 404 {"error":"当前 API 不支持所选模型 <model>"}.
	NotFoundModel
	// HTTP406 answers HTTP 406 {"error":{"message":"status 406",…}} even to a
	// correctly signed request (a model closed to API use).
	HTTP406
	// ReasoningOnly answers like GLM could: the text in reasoning_content
	// and an empty content (in the message, or in every stream delta).
	ReasoningOnly
)

var behaviorNames = [...]string{
	Normal:             "Normal",
	InvalidKey:         "InvalidKey",
	BlockedKey:         "BlockedKey",
	RateLimited:        "RateLimited",
	TokenExpired:       "TokenExpired",
	ModelNotSupported:  "ModelNotSupported",
	StreamNoDone:       "StreamNoDone",
	StreamNetworkError: "StreamNetworkError",
	StreamAsJSON:       "StreamAsJSON",
	SlowStream:         "SlowStream",
	HTTP500:            "HTTP500",
	NotFoundModel:      "NotFoundModel",
	HTTP406:            "HTTP406",
	ReasoningOnly:      "ReasoningOnly",
}

func (b Behavior) String() string {
	if b >= 0 && int(b) < len(behaviorNames) {
		return behaviorNames[b]
	}
	return "Behavior(" + strconv.Itoa(int(b)) + ")"
}

// knownModels are the model names of the protocol doc; any other model is
// answered with "Model not support".
var knownModels = []string{
	"qwen3-coder-plus", "qwen3-max", "qwen3-vl-plus", "qwen3-max-preview",
	"qwen3-32b", "qwen3-235b", "qwen3-235b-a22b-instruct",
	"qwen3-235b-a22b-thinking-2507", "kimi-k2", "kimi-k2-0905",
	"kimi-k2-thinking", "kimi-k2.5", "glm-4.6", "glm-4.7", "glm-5",
	"deepseek-v3", "deepseek-v3.1", "deepseek-v3.2", "deepseek-r1",
	"minimax-m2", "minimax-m2.1", "minimax-m2.5", "tstars2.0",
	"iflow-rome-30ba3b",
}

// KnownModels returns the models the fake chat endpoint accepts.
func KnownModels() []string { return slices.Clone(knownModels) }

// ChatRequest is one request that reached the chat endpoint, accepted or
// not.
type ChatRequest struct {
	// Time is when it arrived, by the fake's clock.
	Time time.Time
	// APIKey is the key after "Bearer " in Authorization ("" if none).
	APIKey string
	// Header is a copy of the request headers.
	Header http.Header
	// Body is the decoded JSON body (numbers as float64), nil if the body
	// was not a JSON object. Fields the fake does not know are kept.
	Body map[string]any
	// RawBody is the body as sent.
	RawBody []byte
	// Model is body.model when it is a string.
	Model string
	// Stream is body.stream when it is a bool.
	Stream bool
	// Status is the HTTP status answered.
	Status int
	// Outcome says what the fake made of it: "ok", "behavior <Name>", or
	// "rejected: <reason>" (the same text as the ReasonHeader).
	Outcome string
	// Canceled is true when this was a stream whose client went away
	// before it ended.
	Canceled bool
}

// AddAPIKey registers key as valid for chat. It never expires.
func (s *Server) AddAPIKey(key string) {
	s.mu.Lock()
	s.keys[key] = keyInfo{}
	s.mu.Unlock()
}

// RemoveAPIKey makes key invalid for chat (answered with 434 "Invalid apiKey").
func (s *Server) RemoveAPIKey(key string) {
	s.mu.Lock()
	delete(s.keys, key)
	s.mu.Unlock()
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

// SetStreamDelay sets a pause between the chunks of Normal streams
// (default 0).
func (s *Server) SetStreamDelay(d time.Duration) {
	s.mu.Lock()
	s.streamDelay = d
	s.mu.Unlock()
}

// SetStreamGate holds the streams of requests made with key between
// events: every event after the first (the stop chunk and [DONE]
// included) is sent only once the fake has received a value from gate, so
// a test decides when the next event leaves and can check what its client
// has seen meanwhile. Close gate to let the rest of every stream run. A
// client that goes away while its stream waits at the gate is noticed at
// once (CanceledStreams). The gate applies to streams that start after the
// call, whatever their Behavior, on top of any stream delay; nil removes
// it.
func (s *Server) SetStreamGate(key string, gate <-chan struct{}) {
	s.mu.Lock()
	if gate == nil {
		delete(s.gates, key)
	} else {
		s.gates[key] = gate
	}
	s.mu.Unlock()
}

// SetChatLog calls fn with each chat request once it has been answered
// (after the stream has ended). fn must not call back into s for long.
func (s *Server) SetChatLog(fn func(ChatRequest)) {
	s.mu.Lock()
	s.chatLog = fn
	s.mu.Unlock()
}

// ChatRequests returns copies of every request that reached the chat
// endpoint, oldest first.
func (s *Server) ChatRequests() []ChatRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ChatRequest, len(s.chats))
	for i, c := range s.chats {
		out[i] = copyChat(c)
	}
	return out
}

// ChatCount is the number of requests that reached the chat endpoint.
func (s *Server) ChatCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.chats)
}

// CanceledStreams is the number of streams whose client went away before
// the stream ended. The fake notices a departure only while it is waiting
// between chunks, so use a SlowStream, a stream delay or a stream gate to
// test it, and WaitCanceledStreams to wait for the count.
func (s *Server) CanceledStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.canceled
}

// WaitCanceledStreams waits up to timeout for CanceledStreams to reach n
// and reports whether it did. The fake only notices a client going away
// after the client has closed its connection.
func (s *Server) WaitCanceledStreams(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if s.CanceledStreams() >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// copyChat deep-copies a record so that callers cannot race with the fake
// or with each other.
func copyChat(c ChatRequest) ChatRequest {
	c.Header = c.Header.Clone()
	c.RawBody = slices.Clone(c.RawBody)
	if c.Body != nil {
		var body map[string]any
		_ = json.Unmarshal(c.RawBody, &body)
		c.Body = body
	}
	return c
}

// maxChatBody bounds what the fake reads; real requests are far smaller.
const maxChatBody = 32 << 20

var sessionIDPattern = regexp.MustCompile(`^session-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// Envelopes of the real service, answered with HTTP 200.
var (
	envInvalidKey = map[string]any{"status": "434", "msg": "Invalid apiKey", "body": nil}
	envBlocked    = map[string]any{"status": "434", "msg": "Access to the current AK has been blocked due to abnormal usage"}
	envRateLimit  = map[string]any{"status": "449", "msg": "You exceeded your current rate limit", "body": nil}
	envTokenExp   = map[string]any{"status": 439, "msg": "token has expired"}
	envNoModel    = map[string]any{"error_code": 500, "msg": "Model not support", "body": nil}
	body406       = map[string]any{"error": map[string]any{"message": "status 406", "type": "invalid_request_error"}}
)

// chatCall is one request to the chat endpoint being answered.
type chatCall struct {
	s     *Server
	w     http.ResponseWriter
	r     *http.Request
	idx   int // index in s.chats
	key   string
	body  map[string]any
	model string
	id    string
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxChatBody+1))
	if err != nil {
		reject(w, http.StatusBadRequest, "cannot read request body: "+err.Error())
		return
	}
	auth := r.Header.Get("Authorization")
	key, hasBearer := strings.CutPrefix(auth, "Bearer ")
	rec := ChatRequest{APIKey: key, Header: r.Header.Clone(), RawBody: raw}
	var body map[string]any
	if json.Unmarshal(raw, &body) == nil && body != nil {
		rec.Body = body
		rec.Model, _ = body["model"].(string)
		rec.Stream, _ = body["stream"].(bool)
	}

	s.mu.Lock()
	rec.Time = s.now()
	s.nextID++
	id := fmt.Sprintf("chatcmpl-fake-%d", s.nextID)
	s.chats = append(s.chats, rec)
	idx := len(s.chats) - 1
	s.mu.Unlock()

	c := &chatCall{s: s, w: w, r: r, idx: idx, key: key, body: body, model: rec.Model, id: id}
	c.serve(len(raw) > maxChatBody, auth, hasBearer)

	s.mu.Lock()
	logf := s.chatLog
	done := copyChat(s.chats[idx])
	s.mu.Unlock()
	if logf != nil {
		logf(done)
	}
}

// serve runs the checks in the order a careful real service would and
// answers.
func (c *chatCall) serve(tooBig bool, auth string, hasBearer bool) {
	r := c.r
	if r.Method != http.MethodPost {
		c.reject(http.StatusMethodNotAllowed, "chat completions needs POST, got "+r.Method)
		return
	}
	if tooBig {
		c.reject(http.StatusRequestEntityTooLarge, "request body larger than 32 MiB")
		return
	}
	switch {
	case auth == "":
		c.reject(http.StatusBadRequest, "missing Authorization header; send Authorization: Bearer <apiKey>")
		return
	case !hasBearer || c.key == "":
		c.reject(http.StatusBadRequest, "Authorization must be \"Bearer <apiKey>\"")
		return
	}
	if ua := r.Header.Get("User-Agent"); ua != UserAgent {
		c.reject(http.StatusBadRequest, fmt.Sprintf("User-Agent must be exactly %q, got %q", UserAgent, ua))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		c.reject(http.StatusBadRequest, fmt.Sprintf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type")))
		return
	}
	sid := r.Header.Get("session-id")
	if !sessionIDPattern.MatchString(sid) {
		c.reject(http.StatusBadRequest, fmt.Sprintf("session-id must be session-<lowercase uuid v4>, got %q", sid))
		return
	}
	if reason := c.s.checkSignature(r, c.key, sid); reason != "" {
		c.rejectLikeReal(http.StatusNotAcceptable, body406, reason)
		return
	}
	if reason := checkChatBody(c.body); reason != "" {
		c.reject(http.StatusBadRequest, reason)
		return
	}
	stream, _ := c.body["stream"].(bool)

	c.s.mu.Lock()
	b := c.s.behaviors[c.key]
	info, valid := c.s.keys[c.key]
	expired := valid && !info.expires.IsZero() && !c.s.now().Before(info.expires)
	_, isAccessToken := c.s.accessTokens[c.key]
	c.s.mu.Unlock()

	switch b {
	case InvalidKey:
		c.scripted(b, http.StatusOK, envInvalidKey)
		return
	case BlockedKey:
		c.scripted(b, http.StatusOK, envBlocked)
		return
	case RateLimited:
		c.scripted(b, http.StatusOK, envRateLimit)
		return
	case TokenExpired:
		c.scripted(b, http.StatusOK, envTokenExp)
		return
	case ModelNotSupported:
		c.scripted(b, http.StatusOK, envNoModel)
		return
	case HTTP500:
		c.scripted(b, http.StatusInternalServerError, map[string]any{
			"error": map[string]any{"message": "internal server error", "type": "server_error"},
		})
		return
	case NotFoundModel:
		c.scripted(b, http.StatusNotFound, map[string]any{"error": "当前 API 不支持所选模型 " + c.model})
		return
	case HTTP406:
		c.scripted(b, http.StatusNotAcceptable, body406)
		return
	}

	switch {
	case isAccessToken:
		c.rejectLikeReal(http.StatusOK, envInvalidKey, "the bearer is an OAuth access token; chat needs the API key from getUserInfo")
		return
	case !valid:
		c.rejectLikeReal(http.StatusOK, envInvalidKey, "unknown or invalidated API key")
		return
	case expired:
		c.rejectLikeReal(http.StatusOK, envInvalidKey, "API key has expired")
		return
	}
	if !slices.Contains(knownModels, c.model) {
		c.rejectLikeReal(http.StatusOK, envNoModel, fmt.Sprintf("model %q is not one iFlow serves", c.model))
		return
	}

	text := "echo: " + lastUserText(c.body)
	switch {
	case !stream:
		c.completion(b, text, "ok")
	case b == StreamAsJSON:
		c.completion(b, text, "behavior "+b.String())
	default:
		c.stream(b, text)
	}
}

// checkSignature returns why the timestamp or signature headers are wrong,
// or "".
func (s *Server) checkSignature(r *http.Request, key, sid string) string {
	ts := r.Header.Get("x-iflow-timestamp")
	sig := r.Header.Get("x-iflow-signature")
	switch {
	case ts == "" && sig == "":
		return "missing x-iflow-timestamp and x-iflow-signature headers"
	case ts == "":
		return "missing x-iflow-timestamp header"
	case sig == "":
		return "missing x-iflow-signature header"
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Sprintf("x-iflow-timestamp must be Unix milliseconds, got %q", ts)
	}
	now := s.clock()
	at := time.UnixMilli(ms)
	if d := at.Sub(now); d > TimestampTolerance || d < -TimestampTolerance {
		if secs := time.Unix(ms, 0).Sub(now); secs < TimestampTolerance && secs > -TimestampTolerance {
			return fmt.Sprintf("x-iflow-timestamp %s is in seconds; send Unix milliseconds", ts)
		}
		return fmt.Sprintf("x-iflow-timestamp %s is %s away from now (more than %s)", ts, d.Round(time.Second), TimestampTolerance)
	}
	want := sign(key, sid, ts)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		if strings.EqualFold(sig, want) {
			return "x-iflow-signature must be lowercase hex"
		}
		return "x-iflow-signature is not hex(HMAC-SHA256(apiKey, \"iFlow-Cli:<session-id>:<timestamp>\"))"
	}
	return ""
}

// sign is the signature the real service expected.
func sign(key, sid, ts string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(UserAgent + ":" + sid + ":" + ts))
	return hex.EncodeToString(m.Sum(nil))
}

// checkChatBody returns what is wrong with the decoded body, or "".
// Fields it does not know are fine: iFlow models take extra switches.
func checkChatBody(body map[string]any) string {
	if body == nil {
		return "request body must be a JSON object"
	}
	model, ok := body["model"].(string)
	if !ok || model == "" {
		return "body.model must be a non-empty string"
	}
	msgs, ok := body["messages"].([]any)
	if !ok || len(msgs) == 0 {
		return "body.messages must be a non-empty array"
	}
	for i, m := range msgs {
		obj, ok := m.(map[string]any)
		if !ok {
			return fmt.Sprintf("body.messages[%d] must be an object", i)
		}
		if role, ok := obj["role"].(string); !ok || role == "" {
			return fmt.Sprintf("body.messages[%d].role must be a non-empty string", i)
		}
	}
	if v, ok := body["stream"]; ok {
		if _, isBool := v.(bool); !isBool {
			return "body.stream must be a boolean"
		}
	}
	return ""
}

// lastUserText is the content of the last user message when it is a
// string, else "ok".
func lastUserText(body map[string]any) string {
	msgs, _ := body["messages"].([]any)
	for i := len(msgs) - 1; i >= 0; i-- {
		m, _ := msgs[i].(map[string]any)
		if m["role"] != "user" {
			continue
		}
		if s, ok := m["content"].(string); ok {
			return s
		}
		return "ok"
	}
	return "ok"
}

// finish records how the request was answered.
func (c *chatCall) finish(status int, outcome string) {
	c.s.mu.Lock()
	c.s.chats[c.idx].Status = status
	c.s.chats[c.idx].Outcome = outcome
	c.s.mu.Unlock()
}

func (c *chatCall) reject(status int, reason string) {
	c.finish(status, "rejected: "+reason)
	reject(c.w, status, reason)
}

func (c *chatCall) rejectLikeReal(status int, body any, reason string) {
	c.finish(status, "rejected: "+reason)
	rejectLikeReal(c.w, status, body, reason)
}

// scripted answers as a Behavior says; the reason header tells a test that
// the answer was scripted, not a mistake of the client.
func (c *chatCall) scripted(b Behavior, status int, body any) {
	c.finish(status, "behavior "+b.String())
	c.w.Header().Set(ReasonHeader, "scripted behavior "+b.String())
	writeJSON(c.w, status, body)
}

// usage makes deterministic token counts: one token a word.
func usage(body map[string]any, text string) map[string]any {
	prompt := 0
	msgs, _ := body["messages"].([]any)
	for _, m := range msgs {
		obj, _ := m.(map[string]any)
		if s, ok := obj["content"].(string); ok {
			prompt += len(strings.Fields(s))
		}
	}
	completion := len(strings.Fields(text))
	return map[string]any{
		"prompt_tokens":     prompt,
		"completion_tokens": completion,
		"total_tokens":      prompt + completion,
	}
}

// completion answers one chat.completion object.
func (c *chatCall) completion(b Behavior, text, outcome string) {
	msg := map[string]any{"role": "assistant", "content": text}
	if b == ReasoningOnly {
		msg = map[string]any{"role": "assistant", "content": "", "reasoning_content": text}
	}
	c.finish(http.StatusOK, outcome)
	writeJSON(c.w, http.StatusOK, map[string]any{
		"id":      c.id,
		"object":  "chat.completion",
		"created": c.s.clock().Unix(),
		"model":   c.model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       msg,
			"finish_reason": "stop",
		}},
		"usage": usage(c.body, text),
	})
}

// chunk builds one chat.completion.chunk.
func (c *chatCall) chunk(delta map[string]any, finish any) map[string]any {
	return map[string]any{
		"id":      c.id,
		"object":  "chat.completion.chunk",
		"created": c.s.clock().Unix(),
		"model":   c.model,
		"choices": []any{map[string]any{
			"index":         0,
			"delta":         delta,
			"finish_reason": finish,
		}},
	}
}

// pieces splits text into at least three parts of at most 16 runes, so
// that a client must join deltas.
func pieces(text string) []string {
	r := []rune(text)
	n := max(3, (len(r)+15)/16)
	size := (len(r) + n - 1) / n
	var out []string
	for len(r) > 0 {
		k := min(size, len(r))
		out = append(out, string(r[:k]))
		r = r[k:]
	}
	return out
}

// stream answers text as SSE, shaped by b.
func (c *chatCall) stream(b Behavior, text string) {
	outcome := "ok"
	if b != Normal {
		outcome = "behavior " + b.String()
	}
	c.finish(http.StatusOK, outcome)
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	c.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(c.w)

	ctx := c.r.Context()
	// gone notes a client that left before the end; a stream cut short by
	// Close is not the client's doing.
	gone := func() {
		select {
		case <-c.s.done:
			return
		default:
		}
		c.s.mu.Lock()
		c.s.canceled++
		c.s.chats[c.idx].Canceled = true
		c.s.mu.Unlock()
	}
	c.s.mu.Lock()
	pause := c.s.streamDelay
	gate := c.s.gates[c.key]
	c.s.mu.Unlock()

	sent := 0
	send := func(v any) bool {
		if gate != nil && sent > 0 {
			select {
			case <-gate:
			case <-c.s.done:
				return false
			case <-ctx.Done():
				gone()
				return false
			}
		}
		if ctx.Err() != nil {
			gone()
			return false
		}
		var line []byte
		if s, ok := v.(string); ok {
			line = []byte("data: " + s + "\n\n")
		} else {
			j, _ := json.Marshal(v)
			line = append(append([]byte("data: "), j...), "\n\n"...)
		}
		if _, err := c.w.Write(line); err != nil {
			gone()
			return false
		}
		if err := rc.Flush(); err != nil {
			gone()
			return false
		}
		sent++
		return true
	}
	wait := func(d time.Duration) bool {
		if d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-c.s.done:
			return false
		case <-ctx.Done():
			gone()
			return false
		}
	}
	field := "content"
	if b == ReasoningOnly {
		field = "reasoning_content"
	}
	delta := func(first bool, piece string) map[string]any {
		d := map[string]any{field: piece}
		if field != "content" {
			d["content"] = ""
		}
		if first {
			d["role"] = "assistant"
		}
		return d
	}

	switch b {
	case StreamNetworkError:
		parts := pieces(text)
		if !send(c.chunk(delta(true, parts[0]), nil)) {
			return
		}
		send(c.chunk(map[string]any{}, "network_error"))
		return
	case SlowStream:
		start := time.Now()
		for i := 0; time.Since(start) < 30*time.Second; i++ {
			if !send(c.chunk(delta(i == 0, fmt.Sprintf("tick %d ", i)), nil)) {
				return
			}
			if !wait(50 * time.Millisecond) {
				return
			}
		}
	default:
		for i, p := range pieces(text) {
			if i > 0 && !wait(pause) {
				return
			}
			if !send(c.chunk(delta(i == 0, p), nil)) {
				return
			}
		}
	}
	last := c.chunk(map[string]any{}, "stop")
	last["usage"] = usage(c.body, text)
	if !wait(pause) || !send(last) {
		return
	}
	if b != StreamNoDone {
		send("[DONE]")
	}
}
