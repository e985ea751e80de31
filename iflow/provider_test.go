package iflow_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
	"github.com/proxycast/caddy-proxycast/provider"
)

func TestNewAuth(t *testing.T) {
	p := &iflow.Provider{APIBase: "http://127.0.0.1:1/v1", OAuthBase: "http://127.0.0.1:1", PlatformBase: "http://127.0.0.1:1"}
	tests := []struct {
		name string
		spec provider.CredentialSpec
		// key is the API key an accepted credential yields.
		key string
		// errHas are words the error must contain; nil means no error.
		errHas []string
	}{
		{"api_key", provider.CredentialSpec{ID: "a", AuthType: "api_key", APIKey: "sk-abc"}, "sk-abc", nil},
		{"api_key trimmed", provider.CredentialSpec{ID: "a", AuthType: "api_key", APIKey: "  sk-abc\n"}, "sk-abc", nil},
		{"api_key empty", provider.CredentialSpec{ID: "a", AuthType: "api_key"}, "", []string{"api_key"}},
		{"api_key blank", provider.CredentialSpec{ID: "a", AuthType: "api_key", APIKey: " \t"}, "", []string{"api_key"}},
		{"oauth without token_file", provider.CredentialSpec{ID: "o", AuthType: "oauth"}, "", []string{"token_file"}},
		{"oauth blank token_file", provider.CredentialSpec{ID: "o", AuthType: "oauth", TokenFile: "  "}, "", []string{"token_file"}},
		{"cookie empty", provider.CredentialSpec{ID: "c", AuthType: "cookie"}, "", []string{"cookie"}},
		{"cookie without BXAuth", provider.CredentialSpec{ID: "c", AuthType: "cookie", Cookies: "a=1; other=2"}, "", []string{"BXAuth", "platform.iflow.cn"}},
		{"cookie with empty BXAuth", provider.CredentialSpec{ID: "c", AuthType: "cookie", Cookies: "a=1; BXAuth=; b=2"}, "", []string{"BXAuth"}},
		{"no auth_type", provider.CredentialSpec{ID: "x", APIKey: "sk-abc"}, "", []string{"auth_type", "api_key"}},
		{"unknown auth_type", provider.CredentialSpec{ID: "x", AuthType: "password"}, "", []string{"auth_type", `"password"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth, err := p.NewAuth(tt.spec)
			if tt.errHas != nil {
				if err == nil {
					t.Fatalf("NewAuth(%+v) accepted the settings", tt.spec)
				}
				for _, w := range tt.errHas {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("NewAuth: %v", err)
			}
			if auth.APIKey != tt.key || auth.Renewer != nil {
				t.Errorf("NewAuth() = key %q, renewer %v; want the static key %q", auth.APIKey, auth.Renewer, tt.key)
			}
		})
	}
}

// TestNewAuthRenewable checks that oauth and cookie settings yield a
// renewer with the state location and lead the protocol calls for.
func TestNewAuthRenewable(t *testing.T) {
	p := &iflow.Provider{APIBase: "http://127.0.0.1:1/v1", OAuthBase: "http://127.0.0.1:1", PlatformBase: "http://127.0.0.1:1"}
	oauth, err := p.NewAuth(provider.CredentialSpec{ID: "o", AuthType: "oauth", TokenFile: " iflow/oauth.json "})
	if err != nil || oauth.Renewer == nil || oauth.StateKey != "iflow/oauth.json" || oauth.RenewBefore != 24*time.Hour || oauth.APIKey != "" {
		t.Errorf("oauth: %+v, %v", oauth, err)
	}
	cookie, err := p.NewAuth(provider.CredentialSpec{ID: "c", AuthType: "cookie", Cookies: "a=1; BXAuth=xyz; b=2"})
	if err != nil || cookie.Renewer == nil || cookie.StateKey != "" || cookie.RenewBefore != 48*time.Hour {
		t.Errorf("cookie: %+v, %v", cookie, err)
	}
}

func TestBXAuth(t *testing.T) {
	tests := []struct {
		cookies string
		want    string // "" means an error
	}{
		{"BXAuth=abc", "BXAuth=abc"},
		{"a=1; BXAuth=abc; b=2", "BXAuth=abc"},
		{"a=1;BXAuth=abc;b=2", "BXAuth=abc"},
		{"  BXAuth = abc ;", "BXAuth=abc"},
		{"a=1; BXAuth=abc", "BXAuth=abc"},
		{"BXAuth=a=b==", "BXAuth=a=b=="},
		{"BXAuth=; BXAuth=second", "BXAuth=second"},
		{"BXAuth=first; BXAuth=second", "BXAuth=first"},
		{"Cookie: x=1; BXAuth=abc", "BXAuth=abc"},
		{"", ""},
		{"a=1; b=2", ""},
		{"BXAuth", ""},
		{"BXAuth=", ""},
		{"BXAuth=   ", ""},
		{"bxauth=abc", ""},
		{"XBXAuth=abc", ""},
		{"BXAuthX=abc", ""},
		{"a=BXAuth=abc", ""},
	}
	for _, tt := range tests {
		got, err := iflow.BXAuth(tt.cookies)
		if tt.want == "" {
			if err == nil {
				t.Errorf("BXAuth(%q) = %q, want an error", tt.cookies, got)
			} else if !strings.Contains(err.Error(), "BXAuth") {
				t.Errorf("BXAuth(%q) error %q does not name BXAuth", tt.cookies, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("BXAuth(%q) = %q, %v; want %q", tt.cookies, got, err, tt.want)
		}
	}
}

// TestModelsServedByFake keeps our model list and the fake's (both from
// the protocol doc) in step, so that every listed model can be called.
func TestModelsServedByFake(t *testing.T) {
	got := (&iflow.Provider{}).Models()
	want := iflowtest.KnownModels()
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("Models() = %v\nfake serves %v", got, want)
	}
}
