package iflow_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
	"github.com/proxycast/caddy-proxycast/provider"
)

const oauthRedirect = "http://localhost:11451/oauth2callback"

// newOAuthFake starts the fake and a Provider pointed at all its roles.
func newOAuthFake(t *testing.T) (*iflowtest.Server, *iflow.Provider) {
	t.Helper()
	srv := iflowtest.NewServer()
	t.Cleanup(srv.Close)
	return srv, &iflow.Provider{APIBase: srv.APIBase(), OAuthBase: srv.OAuthBase(), PlatformBase: srv.PlatformBase()}
}

// login plays the browser: it opens the authorize URL and returns the
// code and state the fake redirects back with.
func login(t *testing.T, p *iflow.Provider, redirect, state string) (code, gotState string) {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(p.AuthorizeURL(redirect, state))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize answered %s (%s), want a redirect", resp.Status, resp.Header.Get(iflowtest.ReasonHeader))
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect {
		t.Fatalf("redirected to %s, want %s", got, redirect)
	}
	return loc.Query().Get("code"), loc.Query().Get("state")
}

func TestAuthorizeURL(t *testing.T) {
	p := &iflow.Provider{OAuthBase: "https://oauth.example"}
	const redirect, state = "http://localhost:11451/oauth2callback?x=1&y=2", "st a&te/?"
	u, err := url.Parse(p.AuthorizeURL(redirect, state))
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "https" || u.Host != "oauth.example" || u.Path != "/oauth" {
		t.Errorf("AuthorizeURL goes to %s://%s%s, want https://oauth.example/oauth", u.Scheme, u.Host, u.Path)
	}
	q := u.Query()
	want := map[string]string{
		"loginMethod": "phone",
		"type":        "phone",
		"redirect":    redirect,
		"state":       state,
		"client_id":   iflow.ClientID,
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	})
	wantKeys := []string{"client_id", "loginMethod", "redirect", "state", "type"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("AuthorizeURL has parameters %v, want exactly %v", keys, wantKeys)
	}
	for k, v := range want {
		if got := q[k]; len(got) != 1 || got[0] != v {
			t.Errorf("parameter %s = %q, want [%q]", k, got, v)
		}
	}
}

func TestExchange(t *testing.T) {
	tests := []struct {
		name, email, phone, account string
	}{
		{"email", "me@example.com", "13800000001", "me@example.com"},
		{"phone when no email", "", "13800000002", "13800000002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, p := newOAuthFake(t)
			acct := srv.AddAccount(tt.email, tt.phone)
			code, state := login(t, p, oauthRedirect, "state-42")
			if code == "" || state != "state-42" {
				t.Fatalf("callback got code %q, state %q", code, state)
			}
			before := time.Now()
			// The fake requires Basic auth and the client credentials in the
			// form: success shows both are sent.
			tok, err := p.Exchange(context.Background(), nil, code, oauthRedirect)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if tok.APIKey == "" || tok.APIKey != acct.APIKey() {
				t.Errorf("APIKey = %q, want the account's %q", tok.APIKey, acct.APIKey())
			}
			if tok.Account != tt.account {
				t.Errorf("Account = %q, want %q", tok.Account, tt.account)
			}
			if tok.AccessToken == "" || tok.RefreshToken == "" {
				t.Errorf("Exchange gave empty tokens: %+v", tok)
			}
			want := before.Add(iflowtest.DefaultAccessTokenTTL)
			if d := tok.ExpiresAt.Sub(want); d < -2*time.Second || d > time.Minute {
				t.Errorf("ExpiresAt = %v, want about %v", tok.ExpiresAt, want)
			}
			if tok.LastRefresh.Before(before.Add(-time.Second)) || tok.LastRefresh.After(time.Now()) {
				t.Errorf("LastRefresh = %v, want about now", tok.LastRefresh)
			}
			// The token's refresh token is the live one.
			if _, err := p.Refresh(context.Background(), nil, tok.RefreshToken); err != nil {
				t.Errorf("refreshing the exchanged token: %v", err)
			}
			// Codes are single-use.
			_, err = p.Exchange(context.Background(), nil, code, oauthRedirect)
			if !errors.Is(err, provider.ErrReauth) {
				t.Errorf("a second exchange of the code: %v, want ErrReauth", err)
			}
		})
	}
}

func TestExchangeWrongRedirect(t *testing.T) {
	srv, p := newOAuthFake(t)
	srv.AddAccount("me@example.com", "")
	code, _ := login(t, p, oauthRedirect, "s")
	_, err := p.Exchange(context.Background(), nil, code, "http://localhost:9999/other")
	if !errors.Is(err, provider.ErrReauth) || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("Exchange with another redirect: %v, want invalid_grant (ErrReauth)", err)
	}
	if !strings.Contains(err.Error(), "authorization code") || strings.Contains(err.Error(), "refresh token") {
		t.Errorf("error %q: want it to name the authorization code, not a refresh token", err)
	}
}

// replayProbe records the body a transport would send again (from
// GetBody) next to the one it sends first, and answers nothing.
type replayProbe struct{ first, again string }

func (p *replayProbe) RoundTrip(req *http.Request) (*http.Response, error) {
	raw, _ := io.ReadAll(req.Body)
	p.first = string(raw)
	if req.GetBody != nil {
		rc, _ := req.GetBody()
		raw, _ = io.ReadAll(rc)
		p.again = string(raw)
	}
	return nil, errors.New("probe: no answer")
}

// TestTokenRequestReplay: a token request sent again by the transport
// (HTTP/2 does after a GOAWAY) carries the client credentials too.
func TestTokenRequestReplay(t *testing.T) {
	probe := &replayProbe{}
	p := &iflow.Provider{OAuthBase: "http://127.0.0.1:1"}
	if _, err := p.Refresh(context.Background(), &http.Client{Transport: probe}, "rt-1"); err == nil {
		t.Fatal("Refresh through a transport that answers nothing succeeded")
	}
	form, err := url.ParseQuery(probe.again)
	if err != nil || probe.again != probe.first || form.Get("client_id") != iflow.ClientID || form.Get("client_secret") == "" {
		t.Errorf("sent %q, then would send again %q", probe.first, probe.again)
	}
}

func TestRefreshRotates(t *testing.T) {
	srv, p := newOAuthFake(t)
	acct := srv.AddAccount("me@example.com", "")
	_, rt := srv.IssueTokens(acct, time.Hour)
	ctx := context.Background()

	tok, err := p.Refresh(ctx, nil, rt)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if tok.RefreshToken == "" || tok.RefreshToken == rt {
		t.Errorf("the refresh token did not rotate: %q", tok.RefreshToken)
	}
	if tok.APIKey != acct.APIKey() || tok.Account != "me@example.com" {
		t.Errorf("Refresh gave key %q account %q, want %q me@example.com", tok.APIKey, tok.Account, acct.APIKey())
	}
	if n := srv.RefreshCount(); n != 1 {
		t.Errorf("RefreshCount = %d, want 1", n)
	}

	_, err = p.Refresh(ctx, nil, rt)
	if !errors.Is(err, provider.ErrReauth) {
		t.Fatalf("reusing the old refresh token: %v, want ErrReauth", err)
	}
	if !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("error %q does not mention invalid_grant", err)
	}
	if strings.Contains(err.Error(), rt) {
		t.Errorf("error %q quotes the refresh token", err)
	}
	var temp *iflow.TemporaryError
	if errors.As(err, &temp) {
		t.Errorf("invalid_grant is a TemporaryError: %v", err)
	}
	if n := srv.ReusedRefreshTokens(); n != 1 {
		t.Errorf("ReusedRefreshTokens = %d, want 1", n)
	}

	if _, err := p.Refresh(ctx, nil, tok.RefreshToken); err != nil {
		t.Errorf("the rotated refresh token does not work: %v", err)
	}
}

func TestRefreshRevoked(t *testing.T) {
	srv, p := newOAuthFake(t)
	acct := srv.AddAccount("", "13800000000")
	_, rt := srv.IssueTokens(acct, time.Hour)
	srv.RevokeAccount(acct)
	_, err := p.Refresh(context.Background(), nil, rt)
	if !errors.Is(err, provider.ErrReauth) {
		t.Fatalf("Refresh of a revoked account: %v, want ErrReauth", err)
	}
	if !strings.Contains(err.Error(), "log in again") || strings.Contains(err.Error(), rt) {
		t.Errorf("error %q should say to log in again and not quote the token", err)
	}
}

// TestRefreshTemporary checks that failures that may pass leave the
// refresh token unspent and are not mistaken for a lost login.
// TestRefreshErrorHidesToken: a token endpoint that echoes the refresh
// token in its error does not put it in the error the admin API and the
// log show.
func TestRefreshErrorHidesToken(t *testing.T) {
	const rt = "rt-SECRET-0123456789"
	for _, body := range []string{
		`{"message":"bad refresh_token=` + rt + `"}`,
		`{"success":false,"message":"overloaded for ` + rt + `"}`,
		`{"error":"` + rt + `","error_description":"no such token ` + strings.ToUpper(rt) + `"}`,
		`{"error":"invalid_request","error_description":"refresh_token ` + rt + ` is malformed"}`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if strings.Contains(body, "success") {
				w.WriteHeader(http.StatusOK) // the 200 envelope, turned into a 503
			} else {
				w.WriteHeader(http.StatusBadGateway)
			}
			_, _ = io.WriteString(w, body)
		}))
		p := &iflow.Provider{OAuthBase: srv.URL}
		_, err := p.Refresh(context.Background(), nil, rt)
		srv.Close()
		if err == nil || strings.Contains(strings.ToLower(err.Error()), strings.ToLower(rt)) {
			t.Errorf("error %v: want one without the refresh token", err)
		}
	}
}

func TestRefreshTemporary(t *testing.T) {
	tests := []struct {
		name     string
		behavior iflowtest.TokenBehavior
		errHas   string
	}{
		{"overloaded", iflowtest.TokenOverloaded, "overload"},
		{"down", iflowtest.TokenDown, "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, p := newOAuthFake(t)
			acct := srv.AddAccount("me@example.com", "")
			_, rt := srv.IssueTokens(acct, time.Hour)
			srv.SetTokenBehavior(tt.behavior)
			_, err := p.Refresh(context.Background(), nil, rt)
			var temp *iflow.TemporaryError
			if !errors.As(err, &temp) {
				t.Fatalf("Refresh: %v, want a TemporaryError", err)
			}
			if errors.Is(err, provider.ErrReauth) {
				t.Errorf("a temporary failure wraps ErrReauth: %v", err)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q does not mention %q", err, tt.errHas)
			}
			if n := srv.RefreshCount(); n != 0 {
				t.Errorf("RefreshCount = %d after a failed refresh, want 0", n)
			}
			srv.SetTokenBehavior(iflowtest.TokenNormal)
			if _, err := p.Refresh(context.Background(), nil, rt); err != nil {
				t.Errorf("the refresh token no longer works after the failure: %v", err)
			}
		})
	}
}

func TestRefreshOmitsRefreshToken(t *testing.T) {
	srv, p := newOAuthFake(t)
	acct := srv.AddAccount("me@example.com", "")
	_, rt := srv.IssueTokens(acct, time.Hour)
	srv.SetTokenBehavior(iflowtest.TokenOmitRefresh)
	tok, err := p.Refresh(context.Background(), nil, rt)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if tok.RefreshToken != rt {
		t.Errorf("RefreshToken = %q, want the old %q kept", tok.RefreshToken, rt)
	}
	if tok.AccessToken == "" || tok.APIKey != acct.APIKey() {
		t.Errorf("Refresh gave %+v", tok)
	}
	srv.SetTokenBehavior(iflowtest.TokenNormal)
	if _, err := p.Refresh(context.Background(), nil, tok.RefreshToken); err != nil {
		t.Errorf("the kept refresh token does not work: %v", err)
	}
}

func TestRefreshRotatesAPIKey(t *testing.T) {
	srv, p := newOAuthFake(t)
	acct := srv.AddAccount("me@example.com", "")
	_, rt := srv.IssueTokens(acct, time.Hour)
	old := acct.APIKey()
	srv.SetRotateAPIKeyOnRefresh(true)
	tok, err := p.Refresh(context.Background(), nil, rt)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if tok.APIKey == old || tok.APIKey != acct.APIKey() {
		t.Errorf("APIKey = %q; old key %q, the account's key now %q", tok.APIKey, old, acct.APIKey())
	}
}

// closedAddr returns the address of a listener that is closed again, so
// that dialing it fails at once.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// userInfoBreaker sends getUserInfo to a dead address and everything else
// on to the fake.
type userInfoBreaker struct{ dead string }

func (b userInfoBreaker) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/api/oauth/getUserInfo" {
		r = r.Clone(r.Context())
		r.URL.Host = b.dead
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestUserInfoErrorsHideAccessToken(t *testing.T) {
	const secret = "at-SECRET-0123456789"
	p := &iflow.Provider{OAuthBase: "http://" + closedAddr(t)}
	_, _, err := p.UserInfo(context.Background(), nil, secret)
	var temp *iflow.TemporaryError
	if !errors.As(err, &temp) {
		t.Fatalf("UserInfo on a dead host: %v, want a TemporaryError", err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "accessToken=") {
		t.Errorf("error %q shows the access token", err)
	}

	// A token the fake does not know: success:false, still temporary.
	srv, p := newOAuthFake(t)
	_, _, err = p.UserInfo(context.Background(), nil, secret)
	if !errors.As(err, &temp) || strings.Contains(err.Error(), secret) {
		t.Errorf("UserInfo with an unknown token: %v", err)
	}
	_ = srv

	// A base URL that does not parse: the parse error would quote the URL.
	p = &iflow.Provider{OAuthBase: "http://bad host"}
	_, _, err = p.UserInfo(context.Background(), nil, secret)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("UserInfo with a bad base URL: %v", err)
	}
}

func TestRefreshUserInfoUnreachable(t *testing.T) {
	srv, p := newOAuthFake(t)
	acct := srv.AddAccount("me@example.com", "")
	_, rt := srv.IssueTokens(acct, time.Hour)
	client := &http.Client{Transport: userInfoBreaker{dead: closedAddr(t)}}
	tok, err := p.Refresh(context.Background(), client, rt)
	var temp *iflow.TemporaryError
	if !errors.As(err, &temp) {
		t.Fatalf("Refresh with getUserInfo unreachable: %v, want a TemporaryError", err)
	}
	if strings.Contains(err.Error(), "fake-at-") || strings.Contains(err.Error(), "accessToken=") ||
		strings.Contains(err.Error(), rt) {
		t.Errorf("error %q shows a token", err)
	}
	if tok.AccessToken != "" && strings.Contains(err.Error(), tok.AccessToken) {
		t.Errorf("error %q shows the access token", err)
	}
	// The grant went through and used up rt: the new tokens come back
	// with the error, so that the caller can keep them.
	if tok.RefreshToken == "" || tok.RefreshToken == rt || tok.APIKey != "" {
		t.Fatalf("Refresh returned %+v with its error, want the new tokens without key", tok)
	}
	again, err := p.Refresh(context.Background(), nil, tok.RefreshToken)
	if err != nil || again.APIKey != acct.APIKey() {
		t.Errorf("refreshing with the tokens returned alongside the error: %+v, %v", again, err)
	}
}
