package iflow_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/provider"
)

func renewerOf(t *testing.T, p *iflow.Provider, spec provider.CredentialSpec) provider.Renewer {
	t.Helper()
	auth, err := p.NewAuth(spec)
	if err != nil {
		t.Fatalf("NewAuth: %v", err)
	}
	if auth.Renewer == nil {
		t.Fatalf("NewAuth(%+v) gave no renewer", spec)
	}
	return auth.Renewer
}

func TestOAuthRenewerKey(t *testing.T) {
	_, p := newOAuthFake(t)
	r := renewerOf(t, p, provider.CredentialSpec{ID: "o", AuthType: "oauth", TokenFile: "iflow/o.json"})
	exp := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

	tests := []struct {
		name   string
		state  []byte
		want   provider.Key
		reauth bool
	}{
		{"no token file", nil, provider.Key{}, true},
		{"garbage", []byte("not a token"), provider.Key{}, true},
		{"no refresh token", []byte(`{"access_token":"SECRET-at"}`), provider.Key{}, true},
		{"no api key yet", iflow.Token{AccessToken: "at", RefreshToken: "rt", ExpiresAt: exp}.Marshal(),
			provider.Key{ExpiresAt: exp}, false},
		{"full", iflow.Token{AccessToken: "at", RefreshToken: "rt", ExpiresAt: exp, APIKey: "sk-1", Account: "me@example.com"}.Marshal(),
			provider.Key{APIKey: "sk-1", ExpiresAt: exp, Account: "me@example.com"}, false},
		{"iFlow CLI file", []byte(`{"access_token":"at","refresh_token":"rt","expiry_date":1795860000000,"apiKey":"sk-cli"}`),
			provider.Key{APIKey: "sk-cli", ExpiresAt: time.UnixMilli(1795860000000)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := r.Key(tt.state)
			if tt.reauth {
				if !errors.Is(err, provider.ErrReauth) {
					t.Fatalf("Key: %v, want ErrReauth", err)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Errorf("error %q quotes the file", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Key: %v", err)
			}
			if k.APIKey != tt.want.APIKey || k.Account != tt.want.Account || !k.ExpiresAt.Equal(tt.want.ExpiresAt) {
				t.Errorf("Key = %+v, want %+v", k, tt.want)
			}
		})
	}
}

func TestOAuthRenewerRenew(t *testing.T) {
	srv, p := newOAuthFake(t)
	acct := srv.AddAccount("me@example.com", "")
	at, rt := srv.IssueTokens(acct, 0)
	r := renewerOf(t, p, provider.CredentialSpec{ID: "o", AuthType: "oauth", TokenFile: "/tmp/o.json"})
	ctx := context.Background()

	for _, bad := range [][]byte{nil, []byte("{")} {
		if _, err := r.Renew(ctx, nil, bad); !errors.Is(err, provider.ErrReauth) {
			t.Errorf("Renew(%q): %v, want ErrReauth", bad, err)
		}
	}
	if n := srv.RefreshCount(); n != 0 {
		t.Fatalf("an unusable state reached the token endpoint (%d refreshes)", n)
	}

	// A seed-format file, as written before any API key was known.
	state := []byte(`{"access_token":"` + at + `","refresh_token":"` + rt + `","expires_at":"2020-01-01T00:00:00Z"}`)
	next, err := r.Renew(ctx, nil, state)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	tok, err := iflow.ParseToken(next)
	if err != nil {
		t.Fatalf("the renewed state does not parse: %v\n%s", err, next)
	}
	if tok.RefreshToken == rt || tok.APIKey != acct.APIKey() || tok.Account != "me@example.com" {
		t.Errorf("renewed token %+v", tok)
	}
	k, err := r.Key(next)
	if err != nil || k.APIKey != acct.APIKey() || !k.ExpiresAt.After(time.Now().Add(47*time.Hour)) {
		t.Errorf("Key(renewed) = %+v, %v", k, err)
	}

	// The renewed state renews again (its refresh token is the live one).
	if _, err := r.Renew(ctx, nil, next); err != nil {
		t.Errorf("renewing the renewed state: %v", err)
	}
	if n := srv.ReusedRefreshTokens(); n != 0 {
		t.Errorf("ReusedRefreshTokens = %d", n)
	}

	srv.RevokeAccount(acct)
	if _, err := r.Renew(ctx, nil, next); !errors.Is(err, provider.ErrReauth) {
		t.Errorf("Renew after revocation: %v, want ErrReauth", err)
	}
}

// TestOAuthRenewerKeepsRotatedToken: when the refresh succeeds but the
// API key cannot be fetched, the renewer hands back a state with the new
// refresh token (the old one is used up) and the previous key.
func TestOAuthRenewerKeepsRotatedToken(t *testing.T) {
	srv, p := newOAuthFake(t)
	acct := srv.AddAccount("me@example.com", "")
	at, rt := srv.IssueTokens(acct, time.Hour)
	r := renewerOf(t, p, provider.CredentialSpec{ID: "o", AuthType: "oauth", TokenFile: "o.json"})
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	state := iflow.Token{AccessToken: at, RefreshToken: rt, ExpiresAt: exp, APIKey: "sk-previous", Account: "me@example.com"}.Marshal()

	broken := &http.Client{Transport: userInfoBreaker{dead: closedAddr(t)}}
	kept, err := r.Renew(context.Background(), broken, state)
	var temp *iflow.TemporaryError
	if !errors.As(err, &temp) {
		t.Fatalf("Renew with getUserInfo unreachable: %v, want a TemporaryError", err)
	}
	if kept == nil {
		t.Fatal("Renew lost the rotated refresh token: no state returned with the error")
	}
	k, err := r.Key(kept)
	if err != nil || k.APIKey != "sk-previous" || !k.ExpiresAt.Equal(exp) {
		t.Errorf("Key(kept) = %+v, %v; want the previous key and expiry", k, err)
	}
	next, err := r.Renew(context.Background(), nil, kept)
	if err != nil {
		t.Fatalf("renewing the kept state: %v", err)
	}
	if k, _ := r.Key(next); k.APIKey != acct.APIKey() {
		t.Errorf("Key = %q, want %q", k.APIKey, acct.APIKey())
	}
	if n := srv.ReusedRefreshTokens(); n != 0 {
		t.Errorf("ReusedRefreshTokens = %d", n)
	}
}

func TestCookieRenewer(t *testing.T) {
	srv, p := newOAuthFake(t)
	acct := srv.AddCookieAccount("bx-1")
	srv.AddCookieAccount("bx-2")
	r := renewerOf(t, p, provider.CredentialSpec{ID: "c", AuthType: "cookie", Cookies: "x=1; BXAuth=bx-1"})
	ctx := context.Background()

	if k, err := r.Key(nil); err != nil || k != (provider.Key{}) {
		t.Errorf("Key(nil) = %+v, %v; want a zero key (renew first)", k, err)
	}
	state, err := r.Renew(ctx, nil, nil)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if strings.Contains(string(state), "bx-1") {
		t.Errorf("the state holds the cookie itself: %s", state)
	}
	k, err := r.Key(state)
	if err != nil {
		t.Fatalf("Key: %v", err)
	}
	if k.APIKey == "" || k.APIKey != acct.APIKey() || k.Account != acct.Name() ||
		!k.ExpiresAt.Equal(acct.ExpireTime().Truncate(time.Minute)) {
		t.Errorf("Key = %+v; account key %q name %q expires %v", k, acct.APIKey(), acct.Name(), acct.ExpireTime())
	}
	if err := chatErr(p, k.APIKey); err != nil {
		t.Errorf("the renewed key does not work: %v", err)
	}

	// The same BXAuth among other pairs reads the state; another BXAuth
	// finds it stale.
	same := renewerOf(t, p, provider.CredentialSpec{ID: "c", AuthType: "cookie", Cookies: "BXAuth=bx-1; y=2"})
	if k2, err := same.Key(state); err != nil || k2.APIKey != k.APIKey {
		t.Errorf("the same cookie reads %+v, %v", k2, err)
	}
	other := renewerOf(t, p, provider.CredentialSpec{ID: "c", AuthType: "cookie", Cookies: "BXAuth=bx-2"})
	if k2, err := other.Key(state); err != nil || k2 != (provider.Key{}) {
		t.Errorf("another cookie reads %+v, %v; want a zero key (stale)", k2, err)
	}
	if k2, err := r.Key([]byte("garbage")); err != nil || k2 != (provider.Key{}) {
		t.Errorf("Key(garbage) = %+v, %v; want a zero key", k2, err)
	}

	srv.ExpireCookie("bx-1")
	if _, err := r.Renew(ctx, nil, state); !errors.Is(err, provider.ErrReauth) {
		t.Errorf("Renew with an expired cookie: %v, want ErrReauth", err)
	}
}
