// Package anthropictest is a strict stand-in for Anthropic's API, for
// tests and the offline quickstart.
//
// One Server answers the three endpoints a Messages proxy uses:
//
//	POST /v1/messages               the Messages API
//	POST /v1/messages/count_tokens  token counting
//	GET  /v1/models                 the model list, paginated
//
// Query strings of the Messages endpoints are ignored (Claude Code adds
// ?beta=true). Any other path answers 404 not_found_error, and another
// method on one of these paths 405.
//
// The fake checks what the real API checks, so that a client that gets a
// header, a field or a block wrong fails its tests. Every request needs a
// key added with AddKey in x-api-key (none: 401 "x-api-key header is
// required"; an unknown one: 401 "invalid x-api-key"; a key sent as
// Authorization: Bearer instead: 401, as the API answers OAuth-style
// credentials it does not take), an anthropic-version of SetVersions (400
// otherwise), and, with RefuseUnknownBetas, only known anthropic-beta
// values. Message bodies are checked as the API checks them: a JSON
// object of known members only ("<field>: Extra inputs are not
// permitted"; MessageFields), model a model of SetModels (404
// not_found_error "model: x" otherwise), max_tokens a non-negative
// integer (0 warms the cache and answers nothing), messages non-empty
// with roles user, assistant or system and content a string or known
// blocks fit for the role, every tool_use answered by a tool_result in
// the next turn and every tool_result answering one,
// thinking.budget_tokens at least 1024 and below max_tokens, and more:
// the table of TestBodyRefused lists them. count_tokens bodies are
// checked alike, but take no max_tokens, stream or sampling members.
//
// Every failure is answered with Anthropic's error object,
//
//	{"type":"error","error":{"type":"invalid_request_error","message":"…"},"request_id":"req_…"}
//
// and the request-id header. Rejections also carry the header
// X-Fake-Anthropic-Reason (ReasonHeader) saying what was wrong, and every
// scripted failure (SetBehavior) says "scripted behavior <Name>" there.
//
// Answers are scripted per model (SetReply) or by a function
// (SetReplyFunc); without a script the fake echoes ("echo: <last user
// text>"), calls a tool when the request has tools and the last user text
// reads `call <name> <json object>` (or tool_choice forces one), answers a
// tool result with "tool said: <its text>", and thinks first ("thinking
// about: <text>", with a signature) when thinking is enabled. Streams
// follow the API's event order: message_start, ping, per block
// content_block_start, its deltas (text_delta; input_json_delta fragments
// cut at odd places, the first one empty; thinking_delta then
// signature_delta), content_block_stop, then message_delta with the stop
// reason and usage, and message_stop; each frame is "event: <type>" and
// "data: <json>" whose type is the same.
//
// Usage and count_tokens follow one rule, the fake's and not a real
// tokenizer's (see CountTokens), so that input_tokens of an answer equals
// what count_tokens says of the same body.
//
// Everything is deterministic except generated ids (msg_…, toolu_…,
// req_…).
package anthropictest

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// Facts of the fake that tests may check against.
const (
	// ReasonHeader names the response header in which the fake says why
	// it rejected a request. The real API never sends it.
	ReasonHeader = "X-Fake-Anthropic-Reason"
	// ModelCreatedAt is the created_at of every model of GET /v1/models.
	ModelCreatedAt = "2025-02-19T00:00:00Z"
	// DefaultModelsPageMax is the largest page of GET /v1/models, as the
	// API's limit allows, until SetModelsPageMax.
	DefaultModelsPageMax = 1000
)

// Paths of the endpoints.
const (
	messagesPath = "/v1/messages"
	countPath    = "/v1/messages/count_tokens"
	modelsPath   = "/v1/models"
)

var defaultModels = []string{"claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-haiku-4-5-20251001"}

// DefaultModels returns the models a new Server lists and accepts.
func DefaultModels() []string { return slices.Clone(defaultModels) }

// defaultVersions are the anthropic-version values the API takes:
// 2023-06-01, the one every client sends, its predecessor, and the one
// the official Go SDK v2 sends.
var defaultVersions = []string{"2023-01-01", "2023-06-01", "2026-10-21"}

// DefaultVersions returns the anthropic-version values a new Server takes.
func DefaultVersions() []string { return slices.Clone(defaultVersions) }

// Server is the fake Anthropic API. Create it with NewServer (listening
// on 127.0.0.1) or New (serve Handler yourself). All methods are safe for
// concurrent use.
type Server struct {
	ts      *httptest.Server
	handler http.Handler

	// done is closed by Close so that held streams end instead of
	// keeping Close waiting for them.
	done      chan struct{}
	closeOnce sync.Once

	mu  sync.Mutex
	now func() time.Time

	keys       map[string]bool
	versions   []string
	knownBetas []string // with refuseBetas, the betas taken
	refuseBeta bool

	models      []string
	pageMax     int
	replies     map[string]Reply
	replyFunc   func(Request) Reply
	behaviors   map[string]Behavior
	rateLimit   RateLimit
	gates       map[string]<-chan struct{}
	streamDelay time.Duration
	requests    []Request
	canceled    int
	canceledCh  chan struct{} // closed and replaced when canceled grows
	requestLog  func(Request)
}

// New returns a Server that is not listening. Serve s.Handler() yourself
// (cmd/fakeanthropic does); URL and APIBase then return "". Call Close
// when done so that held streams end.
func New() *Server {
	s := &Server{
		done:       make(chan struct{}),
		now:        time.Now,
		keys:       make(map[string]bool),
		versions:   slices.Clone(defaultVersions),
		models:     slices.Clone(defaultModels),
		pageMax:    DefaultModelsPageMax,
		replies:    make(map[string]Reply),
		behaviors:  make(map[string]Behavior),
		rateLimit:  DefaultRateLimit,
		gates:      make(map[string]<-chan struct{}),
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

// Close ends held streams and, for a Server from NewServer, stops
// listening and waits for outstanding requests. It may be called more
// than once.
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

// APIBase is the API base a client is configured with. Anthropic's has
// no /v1 (https://api.anthropic.com), so it is URL().
func (s *Server) APIBase() string { return s.URL() }

// SetNow replaces the fake's clock (rate-limit reset times, request
// times). nil restores time.Now.
func (s *Server) SetNow(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

// AddKey makes key valid on every endpoint.
func (s *Server) AddKey(key string) {
	s.mu.Lock()
	s.keys[key] = true
	s.mu.Unlock()
}

// RemoveKey makes key invalid: requests with it get 401 (unless
// SetBehavior scripts it).
func (s *Server) RemoveKey(key string) {
	s.mu.Lock()
	delete(s.keys, key)
	s.mu.Unlock()
}

// SetVersions replaces the anthropic-version values taken
// (DefaultVersions until then).
func (s *Server) SetVersions(versions ...string) {
	s.mu.Lock()
	s.versions = slices.Clone(versions)
	s.mu.Unlock()
}

// RefuseUnknownBetas makes every endpoint refuse an anthropic-beta value
// that is not one of known, as the API refuses betas it does not have:
//
//	400 invalid_request_error "Unexpected value(s) `x` for the `anthropic-beta` header. …"
//
// No names refuses every beta. AcceptAnyBeta undoes it.
func (s *Server) RefuseUnknownBetas(known ...string) {
	s.mu.Lock()
	s.knownBetas = slices.Clone(known)
	s.refuseBeta = true
	s.mu.Unlock()
}

// AcceptAnyBeta takes every anthropic-beta value again (the default).
func (s *Server) AcceptAnyBeta() {
	s.mu.Lock()
	s.knownBetas, s.refuseBeta = nil, false
	s.mu.Unlock()
}

// SetModels replaces the models GET /v1/models lists, in that order, and
// the Messages endpoints accept (DefaultModels until then).
func (s *Server) SetModels(ids ...string) {
	s.mu.Lock()
	s.models = slices.Clone(ids)
	s.mu.Unlock()
}

// SetModelsPageMax caps the pages of GET /v1/models at n models whatever
// limit asks, so that a client's pagination can be tested with a few
// models. n < 1 restores DefaultModelsPageMax.
func (s *Server) SetModelsPageMax(n int) {
	if n < 1 {
		n = DefaultModelsPageMax
	}
	s.mu.Lock()
	s.pageMax = n
	s.mu.Unlock()
}

// SetStreamGate holds the streams of requests made with key between
// events: every event after the first is sent only once the fake has
// received a value from gate, so that a test decides when the next event
// leaves and can check what its client has seen meanwhile. Close gate to
// let the rest of every stream run. A client that goes away while its
// stream waits is noticed at once (CanceledStreams). nil removes it.
func (s *Server) SetStreamGate(key string, gate <-chan struct{}) {
	s.mu.Lock()
	if gate == nil {
		delete(s.gates, key)
	} else {
		s.gates[key] = gate
	}
	s.mu.Unlock()
}

// SetStreamDelay sets a pause between the events of every stream
// (default 0).
func (s *Server) SetStreamDelay(d time.Duration) {
	s.mu.Lock()
	s.streamDelay = d
	s.mu.Unlock()
}

// Request is one request that reached the fake, accepted or not.
type Request struct {
	// Time is when it arrived, by the fake's clock.
	Time time.Time
	// Method and Path are the request's; Query is its raw query.
	Method, Path, Query string
	// Key is the x-api-key value ("" if absent).
	Key string
	// Version is the anthropic-version value.
	Version string
	// Betas are the anthropic-beta values, from every header line, in
	// order.
	Betas []string
	// Header is a copy of the request headers.
	Header http.Header
	// Model is body.model when it is a string.
	Model string
	// Stream is body.stream when it is true.
	Stream bool
	// RawBody is the body as sent.
	RawBody []byte
	// Status is the HTTP status answered.
	Status int
	// Outcome says what the fake made of it: "ok", "behavior <Name>", or
	// "rejected: <reason>" (the text of the ReasonHeader).
	Outcome string
	// Canceled is true for a stream whose client went away before it
	// ended.
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

// RequestsTo returns copies of the requests to path (such as
// "/v1/messages"), oldest first.
func (s *Server) RequestsTo(path string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// CanceledStreams is the number of streams whose client went away before
// the stream ended. The fake notices a departure only while it writes or
// waits between events (SetStreamGate, SetStreamDelay); streams ended by
// Close do not count.
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

func copyRequest(r Request) Request {
	r.Header = r.Header.Clone()
	r.RawBody = slices.Clone(r.RawBody)
	r.Betas = slices.Clone(r.Betas)
	return r
}

// maxBody is the API's limit on a Messages request (32 MB).
const maxBody = 32 << 20

// serveHTTP records the request and hands it to its endpoint.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	raw, readErr := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	rec := Request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Key: r.Header.Get("X-Api-Key"), Version: r.Header.Get("Anthropic-Version"),
		Betas:  splitBetas(r.Header.Values("Anthropic-Beta")),
		Header: r.Header.Clone(), RawBody: raw,
	}
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
	s.requests = append(s.requests, rec)
	idx := len(s.requests) - 1
	s.mu.Unlock()

	c := &call{s: s, w: w, r: r, idx: idx, raw: raw, rec: copyRequest(rec), requestID: newID("req_011C")}
	w.Header().Set("Request-Id", c.requestID)
	// Deferred so that the log also sees a stream that StreamBreak ends by
	// aborting the handler.
	defer s.logDone(idx)
	switch {
	case readErr != nil:
		c.fail(http.StatusBadRequest, errInvalid("cannot read the request body: "+readErr.Error()), "cannot read the request body")
	case len(raw) > maxBody:
		c.fail(http.StatusRequestEntityTooLarge, apiError{Type: "request_too_large", Message: "Request exceeds the maximum allowed number of bytes."}, "request body larger than 32 MB")
	case r.URL.Path == messagesPath:
		if c.allow(http.MethodPost) {
			c.messages()
		}
	case r.URL.Path == countPath:
		if c.allow(http.MethodPost) {
			c.countTokens()
		}
	case r.URL.Path == modelsPath:
		if c.allow(http.MethodGet) {
			c.listModels()
		}
	default:
		c.fail(http.StatusNotFound, apiError{Type: "not_found_error", Message: "Not Found"},
			"no such endpoint "+r.Method+" "+r.URL.Path+"; the fake serves POST "+messagesPath+", POST "+countPath+" and GET "+modelsPath)
	}
}

func (s *Server) logDone(idx int) {
	s.mu.Lock()
	logf := s.requestLog
	done := copyRequest(s.requests[idx])
	s.mu.Unlock()
	if logf != nil {
		logf(done)
	}
}

func (s *Server) noteCanceled(idx int) {
	s.mu.Lock()
	s.canceled++
	s.requests[idx].Canceled = true
	close(s.canceledCh)
	s.canceledCh = make(chan struct{})
	s.mu.Unlock()
}

// splitBetas reads anthropic-beta header lines, each a comma list.
func splitBetas(lines []string) []string {
	var out []string
	for _, line := range lines {
		for b := range strings.SplitSeq(line, ",") {
			if b = strings.TrimSpace(b); b != "" {
				out = append(out, b)
			}
		}
	}
	return out
}

// apiError is the error member of Anthropic's error object.
type apiError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func errInvalid(msg string) apiError { return apiError{Type: "invalid_request_error", Message: msg} }

// call is one request being answered.
type call struct {
	s         *Server
	w         http.ResponseWriter
	r         *http.Request
	idx       int // index in s.requests
	raw       []byte
	rec       Request
	requestID string
	key       string
}

// finish records how the request was answered.
func (c *call) finish(status int, outcome string) {
	c.s.mu.Lock()
	c.s.requests[c.idx].Status = status
	c.s.requests[c.idx].Outcome = outcome
	c.s.mu.Unlock()
}

// fail answers a client's mistake with Anthropic's error object and the
// fake's reason.
func (c *call) fail(status int, e apiError, reason string) {
	reason = oneLine(reason)
	c.finish(status, "rejected: "+reason)
	c.w.Header().Set(ReasonHeader, reason)
	c.writeError(status, e)
}

// scripted answers as a Behavior says.
func (c *call) scripted(b Behavior, status int, e apiError) {
	c.finish(status, "behavior "+b.String())
	c.w.Header().Set(ReasonHeader, "scripted behavior "+b.String())
	c.writeError(status, e)
}

func (c *call) writeError(status int, e apiError) {
	writeJSON(c.w, status, obj{{"type", "error"}, {"error", e}, {"request_id", c.requestID}})
}

// allow answers 405 to another method than m.
func (c *call) allow(m string) bool {
	if c.r.Method == m {
		return true
	}
	c.w.Header().Set("Allow", m)
	c.fail(http.StatusMethodNotAllowed, errInvalid("Method Not Allowed"), c.r.URL.Path+" takes "+m+", got "+c.r.Method)
	return false
}

// authorize checks the headers every endpoint needs: the key, the version
// and the betas.
func (c *call) authorize() bool {
	s := c.s
	key := c.r.Header.Get("X-Api-Key")
	if key == "" {
		if auth := c.r.Header.Get("Authorization"); auth != "" {
			c.fail(http.StatusUnauthorized, apiError{Type: "authentication_error", Message: "OAuth authentication is currently not supported."},
				"the key came in Authorization; API keys go in x-api-key")
			return false
		}
		c.fail(http.StatusUnauthorized, apiError{Type: "authentication_error", Message: "x-api-key header is required"}, "no x-api-key header")
		return false
	}
	s.mu.Lock()
	_, scripted := s.behaviors[key]
	valid := s.keys[key] || scripted
	versions := slices.Clone(s.versions)
	refuse, known := s.refuseBeta, slices.Clone(s.knownBetas)
	s.mu.Unlock()
	if !valid {
		c.fail(http.StatusUnauthorized, apiError{Type: "authentication_error", Message: "invalid x-api-key"}, "unknown x-api-key (not added with AddKey, or removed)")
		return false
	}
	c.key = key

	version := c.r.Header.Get("Anthropic-Version")
	switch {
	case version == "":
		c.fail(http.StatusBadRequest, errInvalid("anthropic-version: header is required"), "no anthropic-version header")
		return false
	case len(c.r.Header.Values("Anthropic-Version")) > 1 || !slices.Contains(versions, version):
		c.fail(http.StatusBadRequest, errInvalid("anthropic-version: invalid version '"+version+"'"),
			"anthropic-version "+version+" is not one of "+strings.Join(versions, ", "))
		return false
	}
	if refuse {
		var unknown []string
		for _, b := range c.rec.Betas {
			if !slices.Contains(known, b) && !slices.Contains(unknown, b) {
				unknown = append(unknown, b)
			}
		}
		if len(unknown) > 0 {
			list := strings.Join(unknown, ", ")
			c.fail(http.StatusBadRequest,
				errInvalid("Unexpected value(s) `"+list+"` for the `anthropic-beta` header. Please consult our documentation at docs.anthropic.com or try again without the header."),
				"unknown beta(s) "+list)
			return false
		}
	}
	return true
}

// jsonBody checks that a POST says its body is JSON.
func (c *call) jsonBody() bool {
	ct := c.r.Header.Get("Content-Type")
	mt, _, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		c.fail(http.StatusBadRequest, errInvalid("Content-Type must be application/json"), "Content-Type is "+ct+", not application/json")
		return false
	}
	return true
}

// obj is a JSON object whose members keep their order, as the API's do
// ("type" first).
type obj []member

type member struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	out := []byte{'{'}
	for i, m := range o {
		if i > 0 {
			out = append(out, ',')
		}
		k, _ := json.Marshal(m.k)
		v, err := json.Marshal(m.v)
		if err != nil {
			return nil, err
		}
		out = append(append(append(out, k...), ':'), v...)
	}
	return append(out, '}'), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("anthropictest: cannot encode reply: " + err.Error())
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

// newID returns prefix and 20 random letters and digits, like the API's
// msg_01…, toolu_01… and req_011C… ids.
func newID(prefix string) string {
	b := make([]byte, 20)
	limit := big.NewInt(int64(len(idAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			panic("anthropictest: crypto/rand failed: " + err.Error())
		}
		b[i] = idAlphabet[n.Int64()]
	}
	return prefix + string(b)
}
