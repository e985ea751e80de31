// Package iflowtest is a strict stand-in for the iFlow chat, OAuth and
// platform endpoints, for tests and the offline quickstart.
//
// One Server answers all three roles of the iFlow service (chat API, OAuth,
// cookie platform) on distinct paths:
//
//	POST     /v1/chat/completions     chat API (APIBase() + "/chat/completions")
//	GET      /oauth                   OAuth authorize page (logs a user in at once)
//	POST     /oauth/token             OAuth token endpoint
//	GET      /api/oauth/getUserInfo   API key of an OAuth account
//	GET|POST /api/openapi/apikey      cookie platform (read / regenerate the key)
//
// The fake checks the protocol as strictly as the real service did, so a
// client that gets a header, a signature or a form field wrong fails its
// tests. Where the real service had an answer for a mistake (406 for a bad
// signature, a 434 envelope for a bad key, invalid_client, invalid_grant…)
// the fake gives that answer; for mistakes the real service would not have
// explained it answers HTTP 400 with
//
//	{"error":{"message":"fake iflow: <what was wrong>"}}
//
// Every rejection, real-looking or not, also carries the header
// X-Fake-Iflow-Reason (see ReasonHeader) saying what was wrong, so a failing
// test can print it.
//
// Everything is deterministic except generated secrets (codes, tokens, keys),
// which are random so that a client cannot get away with guessing them.
package iflowtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Public facts of the protocol that the fake checks against.
const (
	// ClientID is the public OAuth client id of the iFlow CLI.
	ClientID = "10009311001"
	// ClientSecret is the public OAuth client secret of the iFlow CLI.
	ClientSecret = "4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW"
	// UserAgent is the exact User-Agent the chat API requires.
	UserAgent = "iFlow-Cli"
	// PlatformOrigin is the Origin header a key regeneration must carry.
	PlatformOrigin = "https://platform.iflow.cn"
	// PlatformReferer is the Referer header a key regeneration must carry.
	PlatformReferer = "https://platform.iflow.cn/"
	// ReasonHeader names the response header in which the fake says why it
	// rejected a request. The real service never sends it.
	ReasonHeader = "X-Fake-Iflow-Reason"
)

// Defaults of the tunable lifetimes.
const (
	DefaultAccessTokenTTL    = 48 * time.Hour
	DefaultCookieKeyLifetime = 7 * 24 * time.Hour
	// TimestampTolerance is how far x-iflow-timestamp may be from the
	// fake's clock, either way.
	TimestampTolerance = 5 * time.Minute
)

// Server is the fake iFlow service. Create it with NewServer (listening on
// 127.0.0.1) or New (serve Handler yourself). All methods are safe for
// concurrent use.
type Server struct {
	ts      *httptest.Server
	handler http.Handler

	// done is closed by Close so that long streams end instead of keeping
	// Close waiting for them.
	done      chan struct{}
	closeOnce sync.Once

	mu  sync.Mutex
	now func() time.Time

	// chat
	keys        map[string]keyInfo
	behaviors   map[string]Behavior
	chats       []ChatRequest
	canceled    int
	streamDelay time.Duration
	gates       map[string]<-chan struct{}
	chatLog     func(ChatRequest)
	nextID      int

	// OAuth
	accounts        []*Account
	login           *Account
	authorizeErr    string
	codes           map[string]*authCode
	accessTokens    map[string]*accessToken
	refreshTokens   map[string]*refreshToken
	tokenBehavior   TokenBehavior
	accessTTL       time.Duration
	rotateOnRefresh bool
	refreshes       int
	reused          int

	// cookie platform
	cookies        map[string]*CookieAccount
	cookieLifetime time.Duration
	regenerations  int
}

// keyInfo is what the fake knows about a valid chat API key.
type keyInfo struct {
	expires time.Time // zero: never
}

// New returns a Server that is not listening. Serve s.Handler() yourself
// (cmd/fakeiflow does); URL and the Base methods then return "". Call Close
// when done so that running streams end.
func New() *Server {
	s := &Server{
		done:           make(chan struct{}),
		now:            time.Now,
		keys:           make(map[string]keyInfo),
		behaviors:      make(map[string]Behavior),
		gates:          make(map[string]<-chan struct{}),
		codes:          make(map[string]*authCode),
		accessTokens:   make(map[string]*accessToken),
		refreshTokens:  make(map[string]*refreshToken),
		accessTTL:      DefaultAccessTokenTTL,
		cookies:        make(map[string]*CookieAccount),
		cookieLifetime: DefaultCookieKeyLifetime,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/chat/completions", s.handleChat)
	mux.HandleFunc("/oauth", s.handleAuthorize)
	mux.HandleFunc("/oauth/token", s.handleToken)
	mux.HandleFunc("/api/oauth/getUserInfo", s.handleUserInfo)
	mux.HandleFunc("/api/openapi/apikey", s.handlePlatformKey)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// The real API has no /v1/models and so on; a client that calls
		// one should learn it here, not in production.
		reject(w, http.StatusNotFound, "no such endpoint "+r.Method+" "+r.URL.Path)
	})
	s.handler = mux
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

// APIBase is the chat API base: URL() + "/v1".
func (s *Server) APIBase() string {
	if s.ts == nil {
		return ""
	}
	return s.URL() + "/v1"
}

// OAuthBase is the base of the OAuth and getUserInfo endpoints: URL().
func (s *Server) OAuthBase() string { return s.URL() }

// PlatformBase is the base of the cookie platform: URL().
func (s *Server) PlatformBase() string { return s.URL() }

// SetNow replaces the fake's clock (token and key expiry, the timestamp
// window of signed chat requests, reply timestamps). nil restores
// time.Now. Useful to let tokens expire without waiting.
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

// randomHex returns n random bytes in hex, for secrets a client must not be
// able to guess.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("iflowtest: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// newAPIKey returns a fresh key shaped like iFlow's.
func newAPIKey() string { return "sk-" + randomHex(16) }

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("iflowtest: cannot encode reply: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// reject answers a mistake the real service would not have explained, with
// a message that makes the failing test clear.
func reject(w http.ResponseWriter, status int, reason string) {
	w.Header().Set(ReasonHeader, reason)
	writeJSON(w, status, map[string]any{
		"error": map[string]any{"message": "fake iflow: " + reason},
	})
}

// rejectLikeReal answers a mistake the way the real service did, adding the
// reason header only.
func rejectLikeReal(w http.ResponseWriter, status int, body any, reason string) {
	w.Header().Set(ReasonHeader, reason)
	writeJSON(w, status, body)
}
