package iflowtest

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cst is Beijing time, in which the platform writes expireTime. A fixed
// zone, so the fake works without tzdata.
var cst = time.FixedZone("CST", 8*3600)

// ExpireTimeLayout is the layout of the platform's expireTime.
const ExpireTimeLayout = "2006-01-02 15:04"

// CookieAccount is an account of the web platform, reached with its BXAuth
// cookie. Its current API key is valid for chat until its expire time.
type CookieAccount struct {
	s         *Server
	bxauth    string
	name      string
	apiKey    string    // guarded by s.mu
	expires   time.Time // guarded by s.mu
	loggedOut bool      // guarded by s.mu
}

// Name is the name of the account's key, which a regeneration must send.
func (c *CookieAccount) Name() string { return c.name }

// APIKey is the account's current full API key.
func (c *CookieAccount) APIKey() string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.apiKey
}

// ExpireTime is when the current API key expires.
func (c *CookieAccount) ExpireTime() time.Time {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.expires
}

// AddCookieAccount creates a platform account reached with Cookie
// BXAuth=<bxauth>, whose key is named "proxycast-key-<n>" (the n-th
// account: each has its own name, so a client must read it with GET) and
// is valid for chat for the cookie key lifetime.
func (s *Server) AddCookieAccount(bxauth string) *CookieAccount {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &CookieAccount{s: s, bxauth: bxauth, name: "proxycast-key-" + strconv.Itoa(len(s.cookies)+1)}
	s.newCookieKeyLocked(c)
	s.cookies[bxauth] = c
	return c
}

// newCookieKeyLocked gives c a new key and invalidates the old one.
func (s *Server) newCookieKeyLocked(c *CookieAccount) {
	if c.apiKey != "" {
		delete(s.keys, c.apiKey)
	}
	c.apiKey = newAPIKey()
	c.expires = s.now().Add(s.cookieLifetime)
	s.keys[c.apiKey] = keyInfo{expires: c.expires}
}

// ExpireCookie logs the cookie out: the platform then answers "未登录".
// The account's key stays valid for chat until it expires.
func (s *Server) ExpireCookie(bxauth string) {
	s.mu.Lock()
	if c := s.cookies[bxauth]; c != nil {
		c.loggedOut = true
	}
	s.mu.Unlock()
}

// SetCookieKeyLifetime sets the lifetime of cookie keys created from now on
// (default 7 days).
func (s *Server) SetCookieKeyLifetime(d time.Duration) {
	s.mu.Lock()
	s.cookieLifetime = d
	s.mu.Unlock()
}

// KeyRegenerations is the number of successful POST /api/openapi/apikey.
func (s *Server) KeyRegenerations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.regenerations
}

// bxauthFrom finds BXAuth among the pairs of the Cookie headers, ignoring
// the others (parsed by hand because net/http drops values it finds odd).
func bxauthFrom(r *http.Request) string {
	for _, line := range r.Header.Values("Cookie") {
		for pair := range strings.SplitSeq(line, ";") {
			name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if ok && name == "BXAuth" {
				return value
			}
		}
	}
	return ""
}

func (s *Server) handlePlatformKey(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		reject(w, http.StatusMethodNotAllowed, "/api/openapi/apikey takes GET or POST, got "+r.Method)
		return
	}
	if ua := r.Header.Get("User-Agent"); !strings.Contains(ua, "Mozilla") {
		reject(w, http.StatusBadRequest, "the platform wants browser-like headers: a User-Agent containing Mozilla, got "+ua)
		return
	}
	var name string
	if r.Method == http.MethodPost {
		if got := r.Header.Get("Origin"); got != PlatformOrigin {
			reject(w, http.StatusBadRequest, "Origin must be "+PlatformOrigin+", got "+got)
			return
		}
		if got := r.Header.Get("Referer"); got != PlatformReferer {
			reject(w, http.StatusBadRequest, "Referer must be "+PlatformReferer+", got "+got)
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			reject(w, http.StatusBadRequest, "Content-Type must be application/json, got "+r.Header.Get("Content-Type"))
			return
		}
		var body struct {
			Name *string `json:"name"`
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || json.Unmarshal(raw, &body) != nil || body.Name == nil {
			reject(w, http.StatusBadRequest, `body must be JSON {"name": <data.name from GET>}`)
			return
		}
		name = *body.Name
	}

	bx := bxauthFrom(r)
	s.mu.Lock()
	c := s.cookies[bx]
	if bx == "" || c == nil || c.loggedOut {
		s.mu.Unlock()
		var reason string
		switch {
		case bx == "":
			reason = "no BXAuth in the Cookie header"
		case c == nil:
			reason = "unknown BXAuth cookie"
		default:
			reason = "BXAuth cookie has expired"
		}
		w.Header().Set(ReasonHeader, reason)
		writePlatformJSON(w, r, map[string]any{"success": false, "message": "未登录", "data": nil})
		return
	}
	if r.Method == http.MethodPost {
		if name != c.name {
			s.mu.Unlock()
			reject(w, http.StatusBadRequest, "name "+name+" is not the account's key name "+c.name+" (take it from GET data.name)")
			return
		}
		s.newCookieKeyLocked(c)
		s.regenerations++
	}
	data := map[string]any{
		"name":       c.name,
		"apiKeyMask": mask(c.apiKey),
		"expireTime": c.expires.In(cst).Format(ExpireTimeLayout),
		"hasExpired": !s.now().Before(c.expires),
	}
	if r.Method == http.MethodPost {
		data["apiKey"] = c.apiKey
	}
	s.mu.Unlock()
	writePlatformJSON(w, r, map[string]any{"success": true, "data": data})
}

// mask hides a key the way the platform does: sk-****abcd.
func mask(key string) string {
	if len(key) < 4 {
		return "sk-****"
	}
	return "sk-****" + key[len(key)-4:]
}

// writePlatformJSON answers HTTP 200 with v, gzip-encoded when the client
// accepts it, as the real platform may.
func writePlatformJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("iflowtest: cannot encode reply: " + err.Error())
	}
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r) {
		_, _ = w.Write(b)
		return
	}
	h.Set("Content-Encoding", "gzip")
	gz := gzip.NewWriter(w)
	_, _ = gz.Write(b)
	_ = gz.Close()
}

// acceptsGzip reports whether Accept-Encoding lists gzip without q=0.
func acceptsGzip(r *http.Request) bool {
	for _, line := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(line, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
