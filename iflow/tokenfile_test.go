package iflow_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow"
)

func TestParseTokenFormats(t *testing.T) {
	tests := []struct {
		name string
		file string
		want iflow.Token
	}{
		{
			name: "seed",
			file: `{"access_token":"at-1","refresh_token":"rt-1","expires_at":"2026-11-28T10:00:00Z"}`,
			want: iflow.Token{AccessToken: "at-1", RefreshToken: "rt-1", ExpiresAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)},
		},
		{
			name: "proxycast",
			file: `{"type":"iflow","access_token":"at-2","refresh_token":"rt-2","expires_at":"2026-11-28T10:00:00Z",
				"api_key":"sk-2","account":"me@example.com","last_refresh":"2026-11-26T10:00:00Z"}`,
			want: iflow.Token{AccessToken: "at-2", RefreshToken: "rt-2", ExpiresAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
				APIKey: "sk-2", Account: "me@example.com", LastRefresh: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)},
		},
		{
			name: "CLIProxyAPI",
			file: `{"access_token":"at-3","refresh_token":"rt-3","expired":"2026-11-28T18:00:00+08:00","api_key":"sk-3",
				"email":"cli@example.com","last_refresh":"2026-11-26T18:00:00+08:00","type":"iflow"}`,
			want: iflow.Token{AccessToken: "at-3", RefreshToken: "rt-3", ExpiresAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
				APIKey: "sk-3", Account: "cli@example.com", LastRefresh: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)},
		},
		{
			name: "iFlow CLI oauth_creds.json",
			file: `{"access_token":"at-4","refresh_token":"rt-4","expiry_date":1795860000123,"token_type":"Bearer",
				"scope":"read","apiKey":"sk-4","userName":"someone"}`,
			want: iflow.Token{AccessToken: "at-4", RefreshToken: "rt-4", ExpiresAt: time.UnixMilli(1795860000123), APIKey: "sk-4"},
		},
		{
			name: "iFlow CLI with expiry_date as a string",
			file: `{"access_token":"at-5","refresh_token":"rt-5","expiry_date":"1795860000000","apiKey":"sk-5"}`,
			want: iflow.Token{AccessToken: "at-5", RefreshToken: "rt-5", ExpiresAt: time.UnixMilli(1795860000000), APIKey: "sk-5"},
		},
		{
			name: "no expiry is unknown",
			file: `{"access_token":"at-6","refresh_token":"rt-6"}`,
			want: iflow.Token{AccessToken: "at-6", RefreshToken: "rt-6"},
		},
		{
			name: "null expiry_date is unknown",
			file: `{"refresh_token":"rt-7","expiry_date":null}`,
			want: iflow.Token{RefreshToken: "rt-7"},
		},
		{
			name: "values are trimmed",
			file: `{"access_token":" at-8\n","refresh_token":"\trt-8 ","api_key":" sk-8 "}`,
			want: iflow.Token{AccessToken: "at-8", RefreshToken: "rt-8", APIKey: "sk-8"},
		},
		{
			name: "expires_at wins over expired",
			file: `{"refresh_token":"rt-9","expires_at":"2026-01-01T00:00:00Z","expired":"2027-01-01T00:00:00Z"}`,
			want: iflow.Token{RefreshToken: "rt-9", ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		},
		{
			name: "unreadable last_refresh is dropped",
			file: `{"refresh_token":"rt-10","last_refresh":"yesterday"}`,
			want: iflow.Token{RefreshToken: "rt-10"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := iflow.ParseToken([]byte(tt.file))
			if err != nil {
				t.Fatalf("ParseToken: %v", err)
			}
			if !tokensEqual(got, tt.want) {
				t.Errorf("ParseToken() =\n%+v\nwant\n%+v", got, tt.want)
			}
			if tt.want.ExpiresAt.IsZero() != got.ExpiresAt.IsZero() {
				t.Errorf("ExpiresAt.IsZero() = %v, want %v", got.ExpiresAt.IsZero(), tt.want.ExpiresAt.IsZero())
			}
		})
	}
}

func TestParseTokenErrors(t *testing.T) {
	// Every secret-looking value contains "SECRET"; no error may quote it.
	tests := []struct {
		name  string
		file  string
		field string // the error must name it
	}{
		{"not JSON", `{"refresh_token":"SECRET-rt"`, "JSON"},
		{"garbage", `SECRET`, "JSON"},
		{"empty", ``, "JSON"},
		{"array", `["SECRET-rt"]`, "JSON"},
		{"string", `"SECRET-rt"`, "JSON"},
		{"no refresh_token", `{"access_token":"SECRET-at","expires_at":"2026-01-01T00:00:00Z"}`, "refresh_token"},
		{"blank refresh_token", `{"access_token":"SECRET-at","refresh_token":"  "}`, "refresh_token"},
		{"bad expires_at", `{"refresh_token":"SECRET-rt","expires_at":"SECRET tomorrow"}`, "expires_at"},
		{"expires_at not RFC 3339", `{"refresh_token":"SECRET-rt","expires_at":"2026-01-01 10:00:00"}`, "expires_at"},
		{"bad expired", `{"refresh_token":"SECRET-rt","expired":"SECRET-soon"}`, "expired"},
		{"expiry_date not a number", `{"refresh_token":"SECRET-rt","expiry_date":"SECRET"}`, "expiry_date"},
		{"expiry_date fractional", `{"refresh_token":"SECRET-rt","expiry_date":1.5}`, "expiry_date"},
		{"expiry_date object", `{"refresh_token":"SECRET-rt","expiry_date":{"SECRET":1}}`, "expiry_date"},
		{"other provider", `{"type":"claude","refresh_token":"SECRET-rt"}`, "type"},
		{"refresh_token of the wrong JSON type", `{"access_token":"SECRET-at","refresh_token":12345}`, "refresh_token"},
		{"access_token of the wrong JSON type", `{"access_token":["SECRET-at"],"refresh_token":"SECRET-rt"}`, "access_token"},
		{"api_key of the wrong JSON type", `{"refresh_token":"SECRET-rt","api_key":{"k":"SECRET"}}`, "api_key"},
		{"expires_at of the wrong JSON type", `{"refresh_token":"SECRET-rt","expires_at":1795860000}`, "expires_at"},
		{"api_key with a line break", `{"refresh_token":"SECRET-rt","api_key":"sk-SECRET\r\nX-Evil: 1"}`, "api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := iflow.ParseToken([]byte(tt.file))
			if err == nil {
				t.Fatalf("ParseToken accepted %s as %+v", tt.file, tok)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %q", err, tt.field)
			}
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "12345") {
				t.Errorf("error %q quotes a value of the file", err)
			}
		})
	}
}

func TestTokenMarshal(t *testing.T) {
	shanghai := time.FixedZone("UTC+8", 8*3600)
	tok := iflow.Token{
		AccessToken:  "at-m",
		RefreshToken: "rt-m",
		ExpiresAt:    time.Date(2026, 11, 28, 18, 0, 0, 0, shanghai),
		APIKey:       "sk-m",
		Account:      "13800000000",
		LastRefresh:  time.Date(2026, 11, 26, 18, 0, 0, 0, shanghai),
	}
	out := tok.Marshal()
	var raw map[string]any
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("Marshal wrote invalid JSON %s: %v", out, err)
	}
	want := map[string]any{
		"type":          "iflow",
		"access_token":  "at-m",
		"refresh_token": "rt-m",
		"expires_at":    "2026-11-28T10:00:00Z",
		"api_key":       "sk-m",
		"account":       "13800000000",
		"last_refresh":  "2026-11-26T10:00:00Z",
	}
	if len(raw) != len(want) {
		t.Errorf("Marshal wrote fields %v, want exactly %v", raw, want)
	}
	for k, v := range want {
		if raw[k] != v {
			t.Errorf("Marshal wrote %s = %v, want %v", k, raw[k], v)
		}
	}
	back, err := iflow.ParseToken(out)
	if err != nil {
		t.Fatalf("ParseToken(Marshal()): %v", err)
	}
	if !tokensEqual(back, tok) {
		t.Errorf("round trip gave %+v, want %+v", back, tok)
	}

	// Optional fields stay out when empty; the expiry is always written.
	minimal := iflow.Token{RefreshToken: "rt-only"}
	raw = nil
	if err := json.Unmarshal(minimal.Marshal(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"api_key", "account", "last_refresh"} {
		if _, ok := raw[k]; ok {
			t.Errorf("Marshal of a minimal token wrote %s: %s", k, minimal.Marshal())
		}
	}
	if raw["type"] != "iflow" {
		t.Errorf(`minimal token lacks "type":"iflow": %s`, minimal.Marshal())
	}
	back, err = iflow.ParseToken(minimal.Marshal())
	if err != nil || !tokensEqual(back, minimal) || !back.ExpiresAt.IsZero() {
		t.Errorf("minimal round trip gave %+v, %v", back, err)
	}
}

// tokensEqual compares tokens with time.Equal, so that zones do not matter.
func tokensEqual(a, b iflow.Token) bool {
	return a.AccessToken == b.AccessToken && a.RefreshToken == b.RefreshToken && a.APIKey == b.APIKey &&
		a.Account == b.Account && a.ExpiresAt.Equal(b.ExpiresAt) && a.LastRefresh.Equal(b.LastRefresh)
}

func FuzzParseToken(f *testing.F) {
	for _, seed := range []string{
		`{"access_token":"at","refresh_token":"rt","expires_at":"2026-11-28T10:00:00Z"}`,
		`{"access_token":"at","refresh_token":"rt","expired":"2026-11-28T18:00:00+08:00","api_key":"sk","email":"e@x","last_refresh":"2026-11-26T10:00:00Z","type":"iflow"}`,
		`{"access_token":"at","refresh_token":"rt","expiry_date":1795860000000,"apiKey":"sk"}`,
		`{"refresh_token":"rt","expiry_date":"1795860000000"}`,
		`{"refresh_token":"rt","expires_at":"0000-01-01T00:30:00+01:00"}`,
		`{"refresh_token":"rt","expires_at":"9999-12-31T23:30:00-01:00"}`,
		`{"refresh_token":"rt","expiry_date":253402300800000}`,
		`{"refresh_token":"rt","expiry_date":-62167219200001}`,
		`{"refresh_token":"rt","last_refresh":"0000-01-01T00:00:00+00:01"}`,
		`{"refresh_token":"rt","expires_at":"2026-01-01T00:00:00.123456789+05:45"}`,
		`{"type":"claude","refresh_token":"rt"}`,
		`{"refresh_token":" \u00a0rt\u2003","account":" a "}`,
		`{"refresh_token":"r\ud800t"}`,
		`{"refresh_token":1}`,
		`[]`,
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := iflow.ParseToken(data)
		if err != nil {
			return
		}
		if tok.RefreshToken == "" {
			t.Fatalf("accepted a token without refresh token: %q", data)
		}
		out := tok.Marshal()
		back, err := iflow.ParseToken(out)
		if err != nil {
			t.Fatalf("ParseToken(%q) = %+v, whose Marshal %q does not parse: %v", data, tok, out, err)
		}
		if !tokensEqual(back, tok) {
			t.Fatalf("ParseToken(%q) = %+v, re-parsed as %+v", data, tok, back)
		}
	})
}
