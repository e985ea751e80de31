package iflowtest

import (
	"mime"
	"net/http"
	"net/url"
	"time"
)

// TokenBehavior scripts the token endpoint (see SetTokenBehavior).
type TokenBehavior int

const (
	// TokenNormal answers as the protocol says.
	TokenNormal TokenBehavior = iota
	// TokenOverloaded answers HTTP 200 {"success":false,"message":"请求太多，请稍后再试"}
	// to every request; no token is used up.
	TokenOverloaded
	// TokenDown answers HTTP 503 to every request; no token is used up.
	TokenDown
	// TokenOmitRefresh answers refresh grants without refresh_token; the
	// refresh token used stays valid (it is not rotated).
	TokenOmitRefresh
)

// Account is an OAuth user of the fake. Its current API key is valid for
// chat.
type Account struct {
	s      *Server
	email  string
	phone  string
	apiKey string // guarded by s.mu
}

// APIKey is the account's current API key, as getUserInfo reports it.
func (a *Account) APIKey() string {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	return a.apiKey
}

type authCode struct {
	account  *Account
	redirect string
	expires  time.Time
}

type accessToken struct {
	account *Account
	expires time.Time
}

type refreshToken struct {
	account *Account
	used    bool
}

// codeTTL is how long an authorization code may wait for its exchange.
const codeTTL = 10 * time.Minute

// AddAccount creates an OAuth account with a fresh API key and makes it the
// one the authorize page logs in (until another is added or SetLoginAccount
// chooses one).
func (s *Server) AddAccount(email, phone string) *Account {
	a := &Account{s: s, email: email, phone: phone, apiKey: newAPIKey()}
	s.mu.Lock()
	s.accounts = append(s.accounts, a)
	s.login = a
	s.keys[a.apiKey] = keyInfo{}
	s.mu.Unlock()
	return a
}

// SetLoginAccount chooses the account the authorize page logs in.
func (s *Server) SetLoginAccount(a *Account) {
	s.mu.Lock()
	s.login = a
	s.mu.Unlock()
}

// SetAuthorizeError makes the authorize page redirect with
// ?error=<errString>&state=<state> instead of a code; "" restores logins.
func (s *Server) SetAuthorizeError(errString string) {
	s.mu.Lock()
	s.authorizeErr = errString
	s.mu.Unlock()
}

// SetTokenBehavior scripts the token endpoint.
func (s *Server) SetTokenBehavior(b TokenBehavior) {
	s.mu.Lock()
	s.tokenBehavior = b
	s.mu.Unlock()
}

// SetAccessTokenTTL sets the lifetime of access tokens issued from now on
// (default 48h). It is also the expires_in of token replies.
func (s *Server) SetAccessTokenTTL(d time.Duration) {
	s.mu.Lock()
	s.accessTTL = d
	s.mu.Unlock()
}

// SetRotateAPIKeyOnRefresh makes every successful refresh give the account
// a new API key; the old key then answers 434 "Invalid apiKey".
func (s *Server) SetRotateAPIKeyOnRefresh(on bool) {
	s.mu.Lock()
	s.rotateOnRefresh = on
	s.mu.Unlock()
}

// IssueTokens issues a token pair for a as a login would, with an access
// token valid for expiresIn (zero or negative: already expired), to seed a
// token file in tests.
func (s *Server) IssueTokens(a *Account, expiresIn time.Duration) (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(a, expiresIn)
}

// issueLocked makes a new access and refresh token for a.
func (s *Server) issueLocked(a *Account, ttl time.Duration) (access, refresh string) {
	access = "fake-at-" + randomHex(16)
	refresh = "fake-rt-" + randomHex(16)
	s.accessTokens[access] = &accessToken{account: a, expires: s.now().Add(ttl)}
	s.refreshTokens[refresh] = &refreshToken{account: a}
	return access, refresh
}

// RevokeAccount invalidates every code and token issued to a so far
// (refreshing then answers invalid_grant); a new login works again. The
// account's API key stays valid.
func (s *Server) RevokeAccount(a *Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.codes {
		if v.account == a {
			delete(s.codes, k)
		}
	}
	for k, v := range s.accessTokens {
		if v.account == a {
			delete(s.accessTokens, k)
		}
	}
	for k, v := range s.refreshTokens {
		if v.account == a {
			delete(s.refreshTokens, k)
		}
	}
}

// RefreshCount is the number of successful refresh grants.
func (s *Server) RefreshCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// ReusedRefreshTokens is the number of refresh grants that presented a
// refresh token already used: the sign of two refreshes of one credential.
func (s *Server) ReusedRefreshTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reused
}

// handleAuthorize plays the browser page: it checks the parameters, then
// logs the chosen account in at once by redirecting to the client. A
// person who opens it in a browser (the quickstart's login) lands on the
// client's callback page straight away, as after a real login; curl -L
// does the same.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		reject(w, http.StatusMethodNotAllowed, "the authorize page needs GET, got "+r.Method)
		return
	}
	q := r.URL.Query()
	redirect := q.Get("redirect")
	switch {
	case q.Has("redirect_uri") && redirect == "":
		reject(w, http.StatusBadRequest, "the authorize parameter is redirect, not redirect_uri")
		return
	case q.Get("client_id") != ClientID:
		reject(w, http.StatusBadRequest, "client_id must be "+ClientID+", got "+q.Get("client_id"))
		return
	case q.Get("loginMethod") != "phone" || q.Get("type") != "phone":
		reject(w, http.StatusBadRequest, "authorize needs loginMethod=phone and type=phone")
		return
	case q.Get("state") == "":
		reject(w, http.StatusBadRequest, "authorize needs a non-empty state")
		return
	}
	target, err := url.Parse(redirect)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		reject(w, http.StatusBadRequest, "redirect must be an absolute http(s) URL, got "+redirect)
		return
	}

	s.mu.Lock()
	a, failure := s.login, s.authorizeErr
	var code string
	if failure == "" && a != nil {
		code = "fake-code-" + randomHex(16)
		s.codes[code] = &authCode{account: a, redirect: redirect, expires: s.now().Add(codeTTL)}
	}
	s.mu.Unlock()

	if failure == "" && a == nil {
		reject(w, http.StatusBadRequest, "no account to log in: call AddAccount first (fakeiflow: start it with -oauth-email <email>)")
		return
	}
	params := target.Query()
	if failure != "" {
		params.Set("error", failure)
	} else {
		params.Set("code", code)
	}
	params.Set("state", q.Get("state"))
	target.RawQuery = params.Encode()
	http.Redirect(w, r, target.String(), http.StatusFound)
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		reject(w, http.StatusMethodNotAllowed, "the token endpoint needs POST, got "+r.Method)
		return
	}
	s.mu.Lock()
	behavior := s.tokenBehavior
	s.mu.Unlock()
	switch behavior {
	case TokenDown:
		w.Header().Set(ReasonHeader, "scripted token behavior TokenDown")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "service unavailable"})
		return
	case TokenOverloaded:
		w.Header().Set(ReasonHeader, "scripted token behavior TokenOverloaded")
		writeJSON(w, http.StatusOK, map[string]any{"success": false, "message": "请求太多，请稍后再试"})
		return
	}

	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		reject(w, http.StatusBadRequest, "token request must be form-encoded (application/x-www-form-urlencoded), got "+r.Header.Get("Content-Type"))
		return
	}
	if err := r.ParseForm(); err != nil {
		reject(w, http.StatusBadRequest, "cannot parse form: "+err.Error())
		return
	}
	// PostForm only: credentials in the query string do not count.
	form := r.PostForm
	invalidClient := map[string]any{"error": "invalid_client"}
	if user, pass, ok := r.BasicAuth(); !ok || user != ClientID || pass != ClientSecret {
		rejectLikeReal(w, http.StatusUnauthorized, invalidClient, "missing or wrong Authorization: Basic base64(client_id:client_secret)")
		return
	}
	if form.Get("client_id") != ClientID || form.Get("client_secret") != ClientSecret {
		rejectLikeReal(w, http.StatusUnauthorized, invalidClient, "client_id and client_secret must also be in the form")
		return
	}

	switch grant := form.Get("grant_type"); grant {
	case "authorization_code":
		s.exchangeCode(w, form)
	case "refresh_token":
		s.refresh(w, form)
	default:
		rejectLikeReal(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"},
			"grant_type must be authorization_code or refresh_token, got "+grant)
	}
}

var invalidGrant = map[string]any{"error": "invalid_grant"}

func (s *Server) exchangeCode(w http.ResponseWriter, form url.Values) {
	code, redirect := form.Get("code"), form.Get("redirect_uri")
	if code == "" || redirect == "" {
		rejectLikeReal(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"},
			"authorization_code grant needs code and redirect_uri")
		return
	}
	s.mu.Lock()
	c, ok := s.codes[code]
	// A code is single-use: any attempt spends it.
	delete(s.codes, code)
	var reason string
	switch {
	case !ok:
		reason = "unknown, used or revoked authorization code"
	case !s.now().Before(c.expires):
		reason = "authorization code has expired"
	case c.redirect != redirect:
		reason = "redirect_uri " + redirect + " differs from the authorize redirect " + c.redirect
	}
	var access, refresh string
	ttl := s.accessTTL
	if reason == "" {
		access, refresh = s.issueLocked(c.account, ttl)
	}
	s.mu.Unlock()
	if reason != "" {
		rejectLikeReal(w, http.StatusBadRequest, invalidGrant, reason)
		return
	}
	writeTokens(w, access, refresh, ttl)
}

func (s *Server) refresh(w http.ResponseWriter, form url.Values) {
	token := form.Get("refresh_token")
	if token == "" {
		rejectLikeReal(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"},
			"refresh_token grant needs refresh_token")
		return
	}
	s.mu.Lock()
	rt, ok := s.refreshTokens[token]
	var reason string
	switch {
	case !ok:
		reason = "unknown or revoked refresh token"
	case rt.used:
		reason = "refresh token already used (refresh tokens rotate and are single-use)"
		s.reused++
	}
	var access, refresh string
	ttl := s.accessTTL
	if reason == "" {
		s.refreshes++
		access, refresh = s.issueLocked(rt.account, ttl)
		if s.tokenBehavior == TokenOmitRefresh {
			// The old token stays the valid one.
			delete(s.refreshTokens, refresh)
			refresh = ""
		} else {
			rt.used = true
		}
		if s.rotateOnRefresh {
			delete(s.keys, rt.account.apiKey)
			rt.account.apiKey = newAPIKey()
			s.keys[rt.account.apiKey] = keyInfo{}
		}
	}
	s.mu.Unlock()
	if reason != "" {
		rejectLikeReal(w, http.StatusBadRequest, invalidGrant, reason)
		return
	}
	writeTokens(w, access, refresh, ttl)
}

// writeTokens answers a token grant; refresh "" leaves refresh_token out.
func writeTokens(w http.ResponseWriter, access, refresh string, ttl time.Duration) {
	reply := map[string]any{
		"access_token": access,
		"expires_in":   int64(ttl / time.Second),
		"token_type":   "bearer",
		"scope":        "read",
	}
	if refresh != "" {
		reply["refresh_token"] = refresh
	}
	writeJSON(w, http.StatusOK, reply)
}

func (s *Server) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		reject(w, http.StatusMethodNotAllowed, "getUserInfo needs GET, got "+r.Method)
		return
	}
	token := r.URL.Query().Get("accessToken")
	s.mu.Lock()
	at, ok := s.accessTokens[token]
	var reason string
	switch {
	case token == "":
		reason = "missing accessToken query parameter"
	case !ok:
		reason = "unknown or revoked access token"
	case !s.now().Before(at.expires):
		reason = "access token has expired"
	}
	var data map[string]any
	if reason == "" {
		data = map[string]any{"apiKey": at.account.apiKey, "email": at.account.email, "phone": at.account.phone}
	}
	s.mu.Unlock()
	if reason != "" {
		rejectLikeReal(w, http.StatusOK, map[string]any{"success": false, "message": "登录已过期，请重新登录", "data": nil}, reason)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "data": data})
}
