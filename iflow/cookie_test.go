package iflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/provider"
)

func TestParseExpireTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time // zero: an error
	}{
		{"2026-03-04 15:54", time.Date(2026, 3, 4, 7, 54, 0, 0, time.UTC)},
		{"2026-03-04 15:54:30", time.Date(2026, 3, 4, 7, 54, 30, 0, time.UTC)},
		{" 2026-03-04 15:54\n", time.Date(2026, 3, 4, 7, 54, 0, 0, time.UTC)},
		{"2026-03-04 00:30", time.Date(2026, 3, 3, 16, 30, 0, 0, time.UTC)},
		{"2026-01-01 07:59", time.Date(2025, 12, 31, 23, 59, 0, 0, time.UTC)},
		{"", time.Time{}},
		{"tomorrow", time.Time{}},
		{"2026-03-04", time.Time{}},
		{"2026/03/04 15:54", time.Time{}},
		{"2026-03-04T15:54:00Z", time.Time{}},
		{"2026-13-04 15:54", time.Time{}},
		{"2026-03-04 25:54", time.Time{}},
	}
	for _, tt := range tests {
		got, err := iflow.ParseExpireTime(tt.in)
		if tt.want.IsZero() {
			if err == nil {
				t.Errorf("ParseExpireTime(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseExpireTime(%q) = %v, %v; want %v", tt.in, got.UTC(), err, tt.want)
		}
	}
}

// gzipSeen records whether replies came gzip-encoded (and were decoded).
type gzipSeen struct {
	mu  sync.Mutex
	any bool
}

func (g *gzipSeen) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.Uncompressed {
		g.mu.Lock()
		g.any = true
		g.mu.Unlock()
	}
	return resp, err
}

// chatErr sends one small chat request signed with key.
func chatErr(p *iflow.Provider, key string) error {
	body := []byte(`{"model":"qwen3-max","messages":[{"role":"user","content":"hi"}]}`)
	resp, err := p.Chat(context.Background(), &provider.Call{Model: "qwen3-max", Body: body, APIKey: key, Transport: http.DefaultTransport})
	if err == nil && resp.Events != nil {
		resp.Events.Close()
	}
	return err
}

func TestRegenerateCookieKey(t *testing.T) {
	srv, p := newOAuthFake(t)
	acct := srv.AddCookieAccount("bx-SECRET-1")
	srv.AddCookieAccount("bx-other")
	old := acct.APIKey()
	if err := chatErr(p, old); err != nil {
		t.Fatalf("the account's first key does not work: %v", err)
	}

	seen := &gzipSeen{}
	key, err := p.RegenerateCookieKey(context.Background(), &http.Client{Transport: seen},
		"_ga=GA1.2.3; BXAuth=bx-SECRET-1; lang=zh-CN")
	if err != nil {
		t.Fatalf("RegenerateCookieKey: %v", err)
	}
	if key.APIKey == "" || key.APIKey == old || key.APIKey != acct.APIKey() {
		t.Errorf("APIKey = %q; old %q, the account's now %q", key.APIKey, old, acct.APIKey())
	}
	if key.Name != acct.Name() {
		t.Errorf("Name = %q, want %q", key.Name, acct.Name())
	}
	// expireTime is written to the minute, in Beijing time.
	if want := acct.ExpireTime().Truncate(time.Minute); !key.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v, want %v", key.ExpiresAt, want)
	}
	if n := srv.KeyRegenerations(); n != 1 {
		t.Errorf("KeyRegenerations = %d, want 1", n)
	}
	if !seen.any {
		t.Error("no reply came gzip-encoded: the client did not ask for gzip")
	}
	if err := chatErr(p, key.APIKey); err != nil {
		t.Errorf("the new key does not work for chat: %v", err)
	}
	if err := chatErr(p, old); err == nil {
		t.Error("the previous key still works after a regeneration")
	}
}

// TestRegenerateCookieKeyOddExpireTime: the POST has replaced the
// account's key, so the new one is kept even when its expireTime cannot
// be read; it then counts as good for a week.
func TestRegenerateCookieKeyOddExpireTime(t *testing.T) {
	for _, exp := range []string{"", "2026-03-04T15:54:00+08:00", "2026/03/04 15:54", "soon"} {
		t.Run(exp, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				data := map[string]any{"name": "k", "apiKeyMask": "sk-****abcd", "expireTime": exp, "hasExpired": false}
				if r.Method == http.MethodPost {
					data["apiKey"] = "sk-issued"
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "data": data})
			}))
			defer srv.Close()
			p := &iflow.Provider{PlatformBase: srv.URL}
			auth, err := p.NewAuth(provider.CredentialSpec{ID: "c", AuthType: provider.AuthCookie, Cookies: "BXAuth=bx"})
			if err != nil {
				t.Fatal(err)
			}
			state, err := auth.Renewer.Renew(context.Background(), srv.Client(), nil)
			if err != nil {
				t.Fatalf("Renew: %v (the issued key is lost)", err)
			}
			k, err := auth.Renewer.Key(state)
			if err != nil || k.APIKey != "sk-issued" {
				t.Fatalf("Key = %+v, %v; want the issued key", k, err)
			}
			if left := time.Until(k.ExpiresAt); left < 6*24*time.Hour || left > 8*24*time.Hour {
				t.Errorf("ExpiresAt in %v, want about a week", left)
			}
		})
	}
}

// TestRegenerateCookieKeyRefusalHidesCookie: a refusal that quotes the
// cookie does not carry it into the error.
func TestRegenerateCookieKeyRefusalHidesCookie(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "message": "未登录: bx-SECRET-9 expired"})
	}))
	defer srv.Close()
	p := &iflow.Provider{PlatformBase: srv.URL}
	_, err := p.RegenerateCookieKey(context.Background(), srv.Client(), "BXAuth=bx-SECRET-9")
	if !errors.Is(err, provider.ErrReauth) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error %v: want a refusal without the cookie", err)
	}
}

func TestRegenerateCookieKeyRefused(t *testing.T) {
	tests := []struct {
		name    string
		cookies string
		expire  bool
	}{
		{"expired cookie", "BXAuth=bx-SECRET-2", true},
		{"unknown cookie", "a=1; BXAuth=bx-SECRET-unknown", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, p := newOAuthFake(t)
			acct := srv.AddCookieAccount("bx-SECRET-2")
			key := acct.APIKey()
			if tt.expire {
				srv.ExpireCookie("bx-SECRET-2")
			}
			_, err := p.RegenerateCookieKey(context.Background(), nil, tt.cookies)
			if !errors.Is(err, provider.ErrReauth) {
				t.Fatalf("RegenerateCookieKey: %v, want ErrReauth", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "fresh") || !strings.Contains(msg, "platform.iflow.cn") {
				t.Errorf("error %q does not tell to copy a fresh cookie from platform.iflow.cn", msg)
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("error %q quotes the cookie", msg)
			}
			if srv.KeyRegenerations() != 0 || acct.APIKey() != key {
				t.Error("a refused cookie changed the account's key")
			}
		})
	}
}

func TestRegenerateCookieKeyWithoutBXAuth(t *testing.T) {
	srv, p := newOAuthFake(t)
	srv.AddCookieAccount("bx")
	for _, cookies := range []string{"", "a=1; b=2", "BXAuth=; a=1", "bxauth=bx"} {
		_, err := p.RegenerateCookieKey(context.Background(), nil, cookies)
		if err == nil || !strings.Contains(err.Error(), "BXAuth") {
			t.Errorf("RegenerateCookieKey(%q): %v, want an error naming BXAuth", cookies, err)
		}
	}
	if srv.KeyRegenerations() != 0 {
		t.Error("a cookie without BXAuth regenerated a key")
	}
}
