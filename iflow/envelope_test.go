package iflow

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

const testKey = "sk-secret0123456789"

// wantErr describes an expected *provider.Error; a nil *wantErr means no
// error.
type wantErr struct {
	status int
	typ    string
	code   string
	kind   provider.Kind
	retry  time.Duration
	// msg must be part of the message.
	msg string
}

func checkErr(t *testing.T, got *provider.Error, want *wantErr) {
	t.Helper()
	if want == nil {
		if got != nil {
			t.Fatalf("got error %+v, want none", got)
		}
		return
	}
	if got == nil {
		t.Fatalf("got no error, want %d %s", want.status, want.code)
	}
	if got.Status != want.status || got.Code != want.code || got.Kind != want.kind || got.RetryAfter != want.retry {
		t.Errorf("got %d %s kind %v retry %v, want %d %s kind %v retry %v",
			got.Status, got.Code, got.Kind, got.RetryAfter, want.status, want.code, want.kind, want.retry)
	}
	typ := want.typ
	if typ == "" {
		typ = provider.TypeForStatus(want.status)
	}
	if got.Type != typ {
		t.Errorf("type = %q, want %q", got.Type, typ)
	}
	if !strings.Contains(got.Message, want.msg) {
		t.Errorf("message %q does not contain %q", got.Message, want.msg)
	}
	if strings.Contains(got.Message, testKey) {
		t.Errorf("message leaks the API key: %q", got.Message)
	}
}

func TestReplyError(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *wantErr
	}{
		// The rows of the protocol's error table.
		{"434 invalid", `{"status":"434","msg":"Invalid apiKey","body":null}`,
			&wantErr{401, "authentication_error", "upstream_key_invalid", provider.KindAuth, 0, "Invalid apiKey"}},
		{"434 blocked", `{"status":"434","msg":"Access to the current AK has been blocked due to abnormal usage"}`,
			&wantErr{403, "permission_error", "upstream_key_blocked", provider.KindBlocked, 0, "blocked due to abnormal usage"}},
		{"434 blocked upper case", `{"status":434,"msg":"BLOCKED"}`,
			&wantErr{403, "permission_error", "upstream_key_blocked", provider.KindBlocked, 0, "BLOCKED"}},
		{"449 string status", `{"status":"449","msg":"You exceeded your current rate limit","body":null}`,
			&wantErr{429, "rate_limit_error", "upstream_rate_limited", provider.KindRateLimit, 0, "exceeded your current rate limit"}},
		{"449 numeric status", `{"status":449,"msg":"You exceeded your current rate limit"}`,
			&wantErr{429, "rate_limit_error", "upstream_rate_limited", provider.KindRateLimit, 0, "rate limit"}},
		{"439 numeric status", `{"status":439,"msg":"token has expired"}`,
			&wantErr{401, "authentication_error", "upstream_token_expired", provider.KindAuth, 0, "token has expired"}},
		{"439 string status", `{"status":"439","msg":"token has expired"}`,
			&wantErr{401, "authentication_error", "upstream_token_expired", provider.KindAuth, 0, "token has expired"}},
		{"model not support", `{"error_code":500,"msg":"Model not support","body":null}`,
			&wantErr{400, "invalid_request_error", "model_not_supported", provider.KindModel, 0, "Model not support"}},
		{"model not support without code", `{"msg":"Model not supported"}`,
			&wantErr{400, "invalid_request_error", "model_not_supported", provider.KindModel, 0, "Model not supported"}},
		{"model not support in message", `{"success":false,"message":"model not support"}`,
			&wantErr{400, "invalid_request_error", "model_not_supported", provider.KindModel, 0, "model not support"}},

		// A null member is an absent one.
		{"434 with null error_code", `{"status":"434","msg":"Invalid apiKey","error_code":null}`,
			&wantErr{401, "authentication_error", "upstream_key_invalid", provider.KindAuth, 0, "Invalid apiKey"}},
		{"449 with null error", `{"status":"449","msg":"rate limit","error":null}`,
			&wantErr{429, "rate_limit_error", "upstream_rate_limited", provider.KindRateLimit, 0, "rate limit"}},

		// Anything else without choices is an upstream failure.
		{"other status", `{"status":"500","msg":"system busy"}`,
			&wantErr{502, "api_error", "upstream_error", provider.KindTransient, 0, "status 500: system busy"}},
		{"empty object", `{}`,
			&wantErr{502, "api_error", "upstream_error", provider.KindTransient, 0, "no choices"}},
		{"error object", `{"error":{"message":"oops","type":"server_error"}}`,
			&wantErr{502, "api_error", "upstream_error", provider.KindTransient, 0, "oops"}},
		{"error string", `{"error":"plain oops"}`,
			&wantErr{502, "api_error", "upstream_error", provider.KindTransient, 0, "plain oops"}},
		{"not an object", `[1,2]`,
			&wantErr{502, "api_error", "upstream_bad_reply", provider.KindTransient, 0, "not JSON"}},

		// The API key never shows.
		{"key scrubbed", `{"status":"434","msg":"Invalid apiKey ` + testKey + `"}`,
			&wantErr{401, "authentication_error", "upstream_key_invalid", provider.KindAuth, 0, "Invalid apiKey [redacted]"}},
		{"key scrubbed in other error", `{"error":{"message":"bad ` + testKey + ` here"}}`,
			&wantErr{502, "api_error", "upstream_error", provider.KindTransient, 0, "bad [redacted] here"}},
		{"upper-cased key scrubbed", `{"status":"434","msg":"Invalid apiKey ` + strings.ToUpper(testKey) + `"}`,
			&wantErr{401, "authentication_error", "upstream_key_invalid", provider.KindAuth, 0, "Invalid apiKey [redacted]"}},

		// Completions are not errors.
		{"completion", `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`, nil},
		{"completion with empty choices", `{"choices":[]}`, nil},
		{"completion with a status field", `{"status":"434","choices":[{"index":0}]}`, nil},
		{"reasoning only", `{"choices":[{"index":0,"message":{"role":"assistant","content":"","reasoning_content":"thought"}}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, replyError([]byte(tt.body), testKey), tt.want)
		})
	}
}

func TestReplyErrorTruncates(t *testing.T) {
	long := strings.Repeat("心", 400) // 1200 bytes
	e := replyError([]byte(`{"status":"449","msg":"`+long+`"}`), testKey)
	if e == nil || e.Status != 429 {
		t.Fatalf("got %+v, want a 429", e)
	}
	if len(e.Message) > 400 {
		t.Errorf("message is %d bytes long; upstream text should be cut to about 300", len(e.Message))
	}
	if !strings.HasSuffix(e.Message, "…") || !strings.Contains(e.Message, "心心") {
		t.Errorf("message %q is not a cut of the upstream text", e.Message)
	}
	if strings.ToValidUTF8(e.Message, "?") != e.Message {
		t.Errorf("message is not valid UTF-8 after the cut")
	}
}

func TestStatusError(t *testing.T) {
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   *wantErr
	}{
		{"406 unsigned or closed model", 406, nil, `{"error":{"message":"status 406","type":"invalid_request_error"}}`,
			&wantErr{406, "invalid_request_error", "upstream_not_acceptable", provider.KindModel, 0, "status 406"}},
		{"404 chinese message", 404, nil, `{"error":"当前 API 不支持所选模型 glm-9"}`,
			&wantErr{404, "not_found_error", "model_not_found", provider.KindModel, 0, "当前 API 不支持所选模型 glm-9"}},
		{"401", 401, nil, `{"error":{"message":"bad key ` + testKey + `"}}`,
			&wantErr{401, "authentication_error", "upstream_key_invalid", provider.KindAuth, 0, "bad key [redacted]"}},
		{"403", 403, nil, `{"msg":"forbidden"}`,
			&wantErr{403, "permission_error", "upstream_forbidden", provider.KindBlocked, 0, "forbidden"}},
		{"429 retry-after seconds", 429, map[string]string{"Retry-After": "7"}, `{"error":{"message":"slow down"}}`,
			&wantErr{429, "rate_limit_error", "upstream_rate_limited", provider.KindRateLimit, 7 * time.Second, "slow down"}},
		{"429 without retry-after", 429, nil, `{}`,
			&wantErr{429, "rate_limit_error", "upstream_rate_limited", provider.KindRateLimit, 0, "Too Many Requests"}},
		{"429 retry-after garbage", 429, map[string]string{"Retry-After": "soon"}, ``,
			&wantErr{429, "rate_limit_error", "upstream_rate_limited", provider.KindRateLimit, 0, "Too Many Requests"}},
		{"429 retry-after zero", 429, map[string]string{"Retry-After": "0"}, ``,
			&wantErr{429, "rate_limit_error", "upstream_rate_limited", provider.KindRateLimit, 0, "rate limit"}},
		{"500", 500, nil, `{"error":{"message":"internal server error","type":"server_error"}}`,
			&wantErr{502, "api_error", "upstream_error", provider.KindTransient, 0, "HTTP 500"}},
		{"503 not json", 503, nil, `<html>down</html>`,
			&wantErr{502, "api_error", "upstream_overloaded", provider.KindTransient, 0, "HTTP 503): Service Unavailable"}},
		{"400", 400, nil, `{"error":{"message":"messages required"}}`,
			&wantErr{400, "invalid_request_error", "upstream_rejected", provider.KindClient, 0, "messages required"}},
		{"407 from the credential's proxy", 407, map[string]string{"Proxy-Authenticate": "Basic"}, ``,
			&wantErr{502, "api_error", "upstream_proxy_failed", provider.KindProxy, 0, "proxy refused the request (HTTP 407 Proxy Authentication Required)"}},
		{"413 empty body", 413, nil, ``,
			&wantErr{413, "invalid_request_error", "upstream_rejected", provider.KindClient, 0, "Request Entity Too Large"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			checkErr(t, statusError(tt.status, h, []byte(tt.body), "qwen3-max", testKey), tt.want)
		})
	}

	t.Run("429 retry-after date", func(t *testing.T) {
		h := http.Header{"Retry-After": {future}}
		e := statusError(429, h, nil, "qwen3-max", testKey)
		if e.RetryAfter < 80*time.Second || e.RetryAfter > 91*time.Second {
			t.Errorf("RetryAfter = %v, want about 90s", e.RetryAfter)
		}
	})
	t.Run("429 retry-after date in the past", func(t *testing.T) {
		h := http.Header{"Retry-After": {time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}}
		if e := statusError(429, h, nil, "qwen3-max", testKey); e.RetryAfter != 0 {
			t.Errorf("RetryAfter = %v, want 0", e.RetryAfter)
		}
	})
}

func TestStreamChunkError(t *testing.T) {
	const chunk = `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`
	tests := []struct {
		name  string
		data  string
		first bool
		want  *wantErr
	}{
		{"first chunk", chunk, true, nil},
		{"later chunk", chunk, false, nil},
		{"stop", `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, false, nil},
		{"error null", `{"error":null,"choices":[{"index":0,"delta":{"content":"x"}}]}`, true, nil},
		{"text mentioning network_error", `{"choices":[{"index":0,"delta":{"content":"\"network_error\""},"finish_reason":null}]}`, false, nil},
		{"network_error", `{"choices":[{"index":0,"delta":{},"finish_reason":"network_error"}]}`, false,
			&wantErr{502, "api_error", "upstream_network_error", provider.KindTransient, 0, "network error"}},
		{"network_error first", `{"choices":[{"index":0,"delta":{},"finish_reason":"network_error"}]}`, true,
			&wantErr{502, "api_error", "upstream_network_error", provider.KindTransient, 0, "network error"}},
		{"network_error second choice", `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"},{"index":1,"delta":{},"finish_reason":"network_error"}]}`, false,
			&wantErr{502, "api_error", "upstream_network_error", provider.KindTransient, 0, "network error"}},
		{"error object", `{"error":{"message":"upstream exploded near ` + testKey + `"}}`, false,
			&wantErr{502, "api_error", "upstream_stream_error", provider.KindTransient, 0, "upstream exploded near [redacted]"}},
		{"error string", `{"error":"boom"}`, true,
			&wantErr{502, "api_error", "upstream_stream_error", provider.KindTransient, 0, "boom"}},
		{"envelope as first chunk", `{"status":"449","msg":"You exceeded your current rate limit"}`, true,
			&wantErr{429, "rate_limit_error", "upstream_rate_limited", provider.KindRateLimit, 0, "rate limit"}},
		{"invalid key as first chunk", `{"status":"434","msg":"Invalid apiKey"}`, true,
			&wantErr{401, "authentication_error", "upstream_key_invalid", provider.KindAuth, 0, "Invalid apiKey"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, streamChunkError([]byte(tt.data), tt.first, testKey), tt.want)
		})
	}
}
