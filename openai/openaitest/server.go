// Package openaitest is a strict stand-in for an OpenAI-compatible chat API
// (OpenAI, DeepSeek, OpenRouter, Groq, Moonshot…), for tests and the
// offline quickstart.
//
// One Server answers the two endpoints a chat proxy uses:
//
//	POST /v1/chat/completions   chat API (APIBase() + "/chat/completions")
//	GET  /v1/models             model list (APIBase() + "/models")
//	POST /v1/responses          Responses API, with SetResponses (most
//	                            OpenAI-compatible services have none)
//
// Any other path answers 404 with OpenAI's "Invalid URL (POST /x)" error,
// and another method on either path 405 "Invalid method for URL", so that
// a client with a wrong API base learns it here.
//
// The fake checks the protocol as strictly as real services do, so that a
// client that gets a header, a field or the SSE framing wrong fails its
// tests. Every request must carry its key in the configured header
// (SetAuthHeader; Authorization: Bearer <key> by default) and every header
// of RequireHeader. A chat request must be a POST of Content-Type
// application/json whose body is one JSON object with a non-empty string
// model that SetModels lists; a non-empty messages array of objects with a
// role of system, developer, user, assistant or tool and content of a
// string or an array of parts the role may carry (null or absent only for
// an assistant message with tool_calls, whose arguments must be strings);
// tool messages that answer, with tool_call_id, each tool call of the
// assistant message just before them; stream a boolean; stream_options
// only with stream true; tools of type function with a valid name and
// object parameters; tool_choice and parallel_tool_calls only with tools;
// max_tokens and max_completion_tokens positive integers; and none of the
// fields refused by RefuseFields or RefuseUnknownFields. Null stands for
// an absent optional field, as it does at OpenAI.
//
// Every failure is answered with OpenAI's error object,
//
//	{"error":{"message":"…","type":"invalid_request_error","param":…,"code":…}}
//
// worded as the real services word it where they have an answer (a masked
// key in "Incorrect API key provided", model_not_found, "Unrecognized
// request argument supplied"…). Every rejection also carries the header
// X-Fake-Openai-Reason (see ReasonHeader) saying what was wrong, and every
// scripted failure (SetBehavior) says "scripted behavior <Name>" there, so
// a failing test can tell a client's mistake from a script.
//
// Answers echo: "echo: <last user message>", "tool said: <content>" after
// a tool result, and tool calls when the request has tools and the last
// user message reads `call <name> <json>` (joined by "and" for parallel
// calls) or tool_choice forces one. Streams are OpenAI's: a role chunk,
// content in several chunks, a finish chunk, with
// stream_options.include_usage a usage chunk with empty choices, then
// "data: [DONE]". The quirks of some upstreams are switches: SetNoSpaceData
// and SetToolCallIndex; SetReasoning has answers think first, as
// DeepSeek's reasoning_content.
//
// Everything is deterministic except generated ids (chatcmpl-…, call_…).
package openaitest

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Facts of the fake that tests may check against.
const (
	// ReasonHeader names the response header in which the fake says why it
	// rejected a request. Real services never send it.
	ReasonHeader = "X-Fake-Openai-Reason"
	// ModelCreated is the created time of every model of GET /v1/models.
	ModelCreated = 1700000000
	// ModelOwner is the owned_by of every model of GET /v1/models.
	ModelOwner = "openaitest"
	// DefaultRetryAfter is the Retry-After of RateLimited and
	// RateLimitedDate until SetRetryAfter.
	DefaultRetryAfter = 20 * time.Second
	// DefaultRetryHint is the "Please try again in" of
	// RateLimitedBodyHint until SetRetryHint.
	DefaultRetryHint = 7500 * time.Millisecond
)

// defaultModels are served until SetModels.
var defaultModels = []string{"gpt-4o-mini", "gpt-4o"}

// DefaultModels returns the models a new Server lists and accepts.
func DefaultModels() []string { return slices.Clone(defaultModels) }

// Paths of the endpoints.
const (
	chatPath      = "/v1/chat/completions"
	modelsPath    = "/v1/models"
	responsesPath = "/v1/responses"
)

// Server is the fake OpenAI-compatible service. Create it with NewServer
// (listening on 127.0.0.1) or New (serve Handler yourself). All methods
// are safe for concurrent use.
type Server struct {
	ts      *httptest.Server
	handler http.Handler

	// done is closed by Close so that long streams end instead of keeping
	// Close waiting for them.
	done      chan struct{}
	closeOnce sync.Once

	mu  sync.Mutex
	now func() time.Time

	// who may call
	keys       map[string]bool
	authHeader string
	authPrefix string
	required   map[string]string // canonical header name → value

	// what the chat endpoint takes and answers
	models          []string
	modelsStatus    int
	behaviors       map[string]Behavior
	retryAfter      time.Duration
	retryHint       time.Duration
	usage           Usage
	omitUsage       bool
	refused         map[string]bool
	refuseUnknown   bool
	noSpace         bool
	toolIndex       ToolIndexMode
	reasoning       string
	speaksResponses bool

	// records
	requests      []Request
	chats         int
	responseCalls int
	modelsCalls   int
	canceled      int
	canceledCh    chan struct{} // closed and replaced when canceled grows
	requestLog    func(Request)
}

// New returns a Server that is not listening. Serve s.Handler() yourself
// (cmd/fakeopenai does); URL and APIBase then return "". Call Close when
// done so that running streams end.
func New() *Server {
	s := &Server{
		done:       make(chan struct{}),
		now:        time.Now,
		keys:       make(map[string]bool),
		authHeader: "Authorization",
		authPrefix: "Bearer ",
		required:   make(map[string]string),
		models:     slices.Clone(defaultModels),
		behaviors:  make(map[string]Behavior),
		retryAfter: DefaultRetryAfter,
		retryHint:  DefaultRetryHint,
		refused:    make(map[string]bool),
		canceledCh: make(chan struct{}),
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

// NewServer returns a Server listening on 127.0.0.1 at a random port. The
// caller must Close it.
func NewServer() *Server {
	s := New()
	s.ts = httptest.NewServer(s.handler)
	return s
}

// Handler serves every endpoint of the fake.
func (s *Server) Handler() http.Handler { return s.handler }

// Close ends running streams and, for a Server from NewServer, stops
// listening and waits for outstanding requests. It may be called more than
// once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.ts != nil {
			s.ts.Close()
		}
	})
}

// URL is the base URL, e.g. http://127.0.0.1:41234, or "" for a Server
// from New.
func (s *Server) URL() string {
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// APIBase is the API base a client is configured with: URL() + "/v1", or
// "" for a Server from New.
func (s *Server) APIBase() string {
	if s.ts == nil {
		return ""
	}
	return s.URL() + "/v1"
}

// SetNow replaces the fake's clock (created times, the date of
// RateLimitedDate). nil restores time.Now.
func (s *Server) SetNow(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

// clock reads the current time of the fake.
func (s *Server) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

// AddKey makes key valid on every endpoint.
func (s *Server) AddKey(key string) {
	s.mu.Lock()
	s.keys[key] = true
	s.mu.Unlock()
}

// RemoveKey makes key invalid: requests with it get 401 invalid_api_key
// (unless SetBehavior scripts it).
func (s *Server) RemoveKey(key string) {
	s.mu.Lock()
	delete(s.keys, key)
	s.mu.Unlock()
}

// SetAuthHeader sets the request header that carries the key and the text
// before the key in it. The default is "Authorization" with "Bearer ";
// Azure style is "api-key" with "". The prefix is matched exactly. A key
// sent in another header is refused as no key at all (401), with the
// reason header naming where it was found.
func (s *Server) SetAuthHeader(name, valuePrefix string) {
	s.mu.Lock()
	s.authHeader = http.CanonicalHeaderKey(name)
	s.authPrefix = valuePrefix
	s.mu.Unlock()
}

// RequireHeader makes every request (chat and models) carry header name
// with exactly value, as a provider's configured extra headers must;
// others get 400 naming the header. An empty value removes the
// requirement.
func (s *Server) RequireHeader(name, value string) {
	name = http.CanonicalHeaderKey(name)
	s.mu.Lock()
	if value == "" {
		delete(s.required, name)
	} else {
		s.required[name] = value
	}
	s.mu.Unlock()
}

// SetModels replaces the models that GET /v1/models lists and the chat
// endpoint accepts (DefaultModels until then). A chat request for another
// model gets 404 model_not_found.
func (s *Server) SetModels(ids ...string) {
	s.mu.Lock()
	s.models = slices.Clone(ids)
	s.mu.Unlock()
}

// SetModelsStatus makes GET /v1/models fail with status code (after the
// key and header checks), to test a failed model refresh. 0 or 200
// restores the list.
func (s *Server) SetModelsStatus(code int) {
	s.mu.Lock()
	s.modelsStatus = code
	s.mu.Unlock()
}

// ModelsRequests is the number of requests to /v1/models, answered or
// refused.
func (s *Server) ModelsRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.modelsCalls
}

// RefuseFields makes the chat endpoint refuse the named top-level body
// fields as unknown, the way many compatible servers refuse
// stream_options or max_completion_tokens:
//
//	400 {"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error","param":null,"code":null}}
//
// Each call replaces the previous set; no names refuses none.
func (s *Server) RefuseFields(names ...string) {
	s.mu.Lock()
	s.refused = make(map[string]bool, len(names))
	for _, n := range names {
		s.refused[n] = true
	}
	s.mu.Unlock()
}

// RefuseUnknownFields, when on, refuses every top-level body field outside
// the documented chat-completions set (ChatFields) as RefuseFields does.
func (s *Server) RefuseUnknownFields(on bool) {
	s.mu.Lock()
	s.refuseUnknown = on
	s.mu.Unlock()
}

// SetRetryAfter sets the wait that RateLimited sends in Retry-After as
// whole seconds (rounded up) and RateLimitedDate as an HTTP date. Default
// DefaultRetryAfter.
func (s *Server) SetRetryAfter(d time.Duration) {
	s.mu.Lock()
	s.retryAfter = d
	s.mu.Unlock()
}

// SetRetryHint sets the wait that RateLimitedBodyHint names in its message
// ("Please try again in 7.5s."), written as Go writes a time.Duration, as
// OpenAI and Groq do. Default DefaultRetryHint.
func (s *Server) SetRetryHint(d time.Duration) {
	s.mu.Lock()
	s.retryHint = d
	s.mu.Unlock()
}

// Usage is the token usage the fake reports.
type Usage struct {
	Prompt     int // prompt_tokens
	Completion int // completion_tokens
	Cached     int // prompt_tokens_details.cached_tokens
	Reasoning  int // completion_tokens_details.reasoning_tokens
}

// SetUsage makes every answer report u (total_tokens is Prompt +
// Completion). The zero Usage restores the computed counts: one prompt
// token a word of the messages' text, one completion token a word of the
// answer (a tool call counts its name and arguments), nothing cached, no
// reasoning.
func (s *Server) SetUsage(u Usage) {
	s.mu.Lock()
	s.usage = u
	s.mu.Unlock()
}

// SetOmitUsage, when on, leaves the usage out of every answer, and out of
// streams even when stream_options.include_usage asks for it, as some
// OpenAI-compatible upstreams do.
func (s *Server) SetOmitUsage(on bool) {
	s.mu.Lock()
	s.omitUsage = on
	s.mu.Unlock()
}

func (s *Server) omitsUsage() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.omitUsage
}

// SetNoSpaceData, when on, writes stream events as "data:{…}" without the
// space after the colon, as some upstreams do (legal SSE).
func (s *Server) SetNoSpaceData(on bool) {
	s.mu.Lock()
	s.noSpace = on
	s.mu.Unlock()
}

// ToolIndexMode says how streamed tool-call deltas carry their index.
type ToolIndexMode int

const (
	// ToolIndexNormal numbers tool calls from 0, as OpenAI does.
	ToolIndexNormal ToolIndexMode = iota
	// ToolIndexMissing leaves index out of every tool-call delta; a client
	// must tell calls apart by id.
	ToolIndexMissing
	// ToolIndexOneBased numbers tool calls from 1.
	ToolIndexOneBased
)

func (m ToolIndexMode) String() string {
	switch m {
	case ToolIndexNormal:
		return "ToolIndexNormal"
	case ToolIndexMissing:
		return "ToolIndexMissing"
	case ToolIndexOneBased:
		return "ToolIndexOneBased"
	}
	return "ToolIndexMode(" + strconv.Itoa(int(m)) + ")"
}

// SetToolCallIndex sets how streamed tool-call deltas carry their index.
// Non-streamed tool calls have no index at OpenAI, nor here.
func (s *Server) SetToolCallIndex(mode ToolIndexMode) {
	s.mu.Lock()
	s.toolIndex = mode
	s.mu.Unlock()
}

// SetReasoning makes every answer think first: text comes as DeepSeek's
// reasoning_content before the content or tool calls, in several chunks
// when streamed. Empty turns it off.
func (s *Server) SetReasoning(text string) {
	s.mu.Lock()
	s.reasoning = text
	s.mu.Unlock()
}

// Request is one request that reached the fake, accepted or not.
type Request struct {
	// Time is when it arrived, by the fake's clock.
	Time time.Time
	// Method and Path are the request's.
	Method, Path string
	// Key is the value of the configured auth header without its prefix
	// ("" if the header is absent).
	Key string
	// Header is a copy of the request headers.
	Header http.Header
	// Model is body.model when it is a string.
	Model string
	// Stream is body.stream when it is a boolean.
	Stream bool
	// RawBody is the body as sent.
	RawBody []byte
	// Status is the HTTP status answered.
	Status int
	// Outcome says what the fake made of it: "ok", "behavior <Name>", or
	// "rejected: <reason>" (the same text as the ReasonHeader).
	Outcome string
	// Canceled is true when this was a stream whose client went away
	// before it ended.
	Canceled bool
}

// Requests returns copies of every request that reached the fake, oldest
// first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = copyRequest(r)
	}
	return out
}

// ChatCount is the number of requests to /v1/chat/completions, answered
// or refused.
func (s *Server) ChatCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chats
}

// CanceledStreams is the number of streams whose client went away before
// the stream ended. The fake notices a departure only while it is writing
// or waiting between chunks, so use SlowStream to test it, and
// WaitCanceledStreams to wait for the count. Streams ended by Close do not
// count.
func (s *Server) CanceledStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.canceled
}

// WaitCanceledStreams waits up to timeout for CanceledStreams to reach n
// and reports whether it did.
func (s *Server) WaitCanceledStreams(n int, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		got, changed := s.canceled, s.canceledCh
		s.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-changed:
		case <-t.C:
			return s.CanceledStreams() >= n
		}
	}
}

// SetRequestLog calls fn with each request once it has been answered
// (after its stream has ended). fn must not call back into s for long.
func (s *Server) SetRequestLog(fn func(Request)) {
	s.mu.Lock()
	s.requestLog = fn
	s.mu.Unlock()
}

// copyRequest deep-copies a record so that callers cannot race with the
// fake or with each other.
func copyRequest(r Request) Request {
	r.Header = r.Header.Clone()
	r.RawBody = slices.Clone(r.RawBody)
	return r
}

// maxBody bounds what the fake reads; real requests are far smaller.
const maxBody = 32 << 20

// serveHTTP records the request and hands it to its endpoint.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	raw, readErr := readBody(r)
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), RawBody: raw}
	var peek struct {
		Model  any `json:"model"`
		Stream any `json:"stream"`
	}
	if json.Unmarshal(raw, &peek) == nil {
		rec.Model, _ = peek.Model.(string)
		rec.Stream, _ = peek.Stream.(bool)
	}

	s.mu.Lock()
	rec.Time = s.now()
	if v := r.Header.Get(s.authHeader); v != "" {
		rec.Key, _ = strings.CutPrefix(v, s.authPrefix)
	}
	switch r.URL.Path {
	case chatPath:
		s.chats++
	case responsesPath:
		s.responseCalls++
	case modelsPath:
		s.modelsCalls++
	}
	s.requests = append(s.requests, rec)
	idx := len(s.requests) - 1
	s.mu.Unlock()

	c := &call{s: s, w: w, r: r, idx: idx, raw: raw}
	// Deferred so that the log also sees a stream that StreamBreak ends
	// by aborting the handler.
	defer s.logDone(idx)
	switch {
	case readErr != "":
		c.fail(http.StatusBadRequest, apiError{Message: "fake openai: " + readErr, Type: "invalid_request_error"}, readErr)
	case len(raw) > maxBody:
		c.fail(http.StatusRequestEntityTooLarge, apiError{Message: "fake openai: request body larger than 32 MiB", Type: "invalid_request_error"}, "request body larger than 32 MiB")
	case r.URL.Path == chatPath:
		c.chat()
	case r.URL.Path == modelsPath:
		c.listModels()
	case r.URL.Path == responsesPath && s.responsesOn():
		c.responses()
	default:
		c.fail(http.StatusNotFound, apiError{
			Message: "Invalid URL (" + r.Method + " " + r.URL.Path + ")",
			Type:    "invalid_request_error",
		}, "no such endpoint "+r.Method+" "+r.URL.Path+"; the fake serves POST "+chatPath+" and GET "+modelsPath)
	}
}

// readBody reads a body of at most maxBody+1 bytes; it returns what went
// wrong, or "".
func readBody(r *http.Request) ([]byte, string) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return b, "cannot read request body: " + err.Error()
	}
	return b, ""
}

// logDone hands a finished record to the request log.
func (s *Server) logDone(idx int) {
	s.mu.Lock()
	logf := s.requestLog
	done := copyRequest(s.requests[idx])
	s.mu.Unlock()
	if logf != nil {
		logf(done)
	}
}

// noteCanceled counts a stream whose client left.
func (s *Server) noteCanceled(idx int) {
	s.mu.Lock()
	s.canceled++
	s.requests[idx].Canceled = true
	close(s.canceledCh)
	s.canceledCh = make(chan struct{})
	s.mu.Unlock()
}

// apiError is OpenAI's error object; nil Param and Code are sent as null.
type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   any    `json:"param"`
	Code    any    `json:"code"`
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("openaitest: cannot encode reply: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// oneLine keeps a reason fit for a header.
func oneLine(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newID returns prefix and 24 random letters and digits, like OpenAI's
// chatcmpl-… and call_… ids.
func newID(prefix string) string {
	b := make([]byte, 24)
	limit := big.NewInt(int64(len(idAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			panic("openaitest: crypto/rand failed: " + err.Error())
		}
		b[i] = idAlphabet[n.Int64()]
	}
	return prefix + string(b)
}
