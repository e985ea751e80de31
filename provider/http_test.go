package provider

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStatusError: the failure classes of real OpenAI-compatible
// upstreams, from their own bodies.
func TestStatusError(t *testing.T) {
	const key = "sk-live-0123456789abcdef"
	tests := []struct {
		name    string
		status  int
		header  map[string]string
		body    string
		status2 int // for the client
		code    string
		kind    Kind
		retry   time.Duration
		says    string
	}{
		{"401 OpenAI", 401, nil, `{"error":{"message":"Incorrect API key provided: sk-li****cdef.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			401, "upstream_key_invalid", KindAuth, 0, "Incorrect API key"},
		{"403", 403, nil, `{"error":{"message":"Your account is suspended"}}`, 403, "upstream_forbidden", KindBlocked, 0, "suspended"},
		{"402 DeepSeek", 402, nil, `{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}`,
			429, "upstream_quota_exhausted", KindQuota, 0, "Insufficient Balance"},
		{"429 insufficient_quota", 429, nil, `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`,
			429, "upstream_quota_exhausted", KindQuota, 0, "current quota"},
		{"429 quota with a delay (Gemini)", 429, nil, `{"error":{"code":429,"message":"You exceeded your current quota. Please retry in 38.5s.","status":"RESOURCE_EXHAUSTED"}}`,
			429, "upstream_quota_exhausted", KindQuota, 38500 * time.Millisecond, "current quota"},
		{"429 Retry-After", 429, map[string]string{"Retry-After": "20"}, `{"error":{"message":"Rate limit reached"}}`,
			429, "upstream_rate_limited", KindRateLimit, 20 * time.Second, "Rate limit reached"},
		{"429 body hint (Groq)", 429, nil, `{"error":{"message":"Rate limit reached for model llama on tokens per minute. Please try again in 7.66s.","type":"tokens","code":"rate_limit_exceeded"}}`,
			429, "upstream_rate_limited", KindRateLimit, 7660 * time.Millisecond, "try again"},
		{"429 OpenAI reset header", 429, map[string]string{"X-Ratelimit-Reset-Requests": "6m0s"}, `{"error":{"message":"Rate limit reached"}}`,
			429, "upstream_rate_limited", KindRateLimit, 6 * time.Minute, "Rate limit"},
		{"404 naming the model", 404, nil, "{\"error\":{\"message\":\"The model `gpt-9` does not exist or you do not have access to it.\",\"code\":\"model_not_found\"}}",
			404, "model_not_found", KindModel, 0, "gpt-9"},
		{"400 naming the model (DeepSeek)", 400, nil, `{"error":{"message":"Model Not Exist","type":"invalid_request_error"}}`,
			404, "model_not_found", KindModel, 0, "Model Not Exist"},
		{"404 of a wrong api_base", 404, nil, `404 page not found`, 502, "upstream_not_found", KindClient, 0, "check the provider's api_base"},
		{"400 other", 400, nil, `{"error":{"message":"messages: field required"}}`, 400, "upstream_rejected", KindClient, 0, "field required"},
		{"500", 500, nil, `{"error":{"message":"internal"}}`, 502, "upstream_error", KindTransient, 0, "HTTP 500"},
		{"503 HTML page", 503, nil, `<html><body>down</body></html>`, 502, "upstream_overloaded", KindTransient, 0, "Service Unavailable"},
		{"529 overloaded", 529, nil, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, 502, "upstream_overloaded", KindTransient, 0, "Overloaded"},
		{"407", 407, nil, ``, 502, "upstream_proxy_failed", KindProxy, 0, "proxy"},
		{"redirect", 302, map[string]string{"Location": "https://x.example/" + key + "/v1?k=" + key}, ``, 502, "upstream_redirect", KindClient, 0, "https://x.example/[redacted]/v1"},
		{"key in the text", 401, nil, `{"error":{"message":"bad key ` + strings.ToUpper(key) + `"}}`, 401, "upstream_key_invalid", KindAuth, 0, "bad key [redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			e := StatusError(`provider "x"`, tt.status, h, []byte(tt.body), "gpt-9", key)
			if e.Status != tt.status2 || e.Code != tt.code || e.Kind != tt.kind {
				t.Errorf("got %d %s %v, want %d %s %v (%s)", e.Status, e.Code, e.Kind, tt.status2, tt.code, tt.kind, e.Message)
			}
			if d := e.RetryAfter - tt.retry; d < -time.Second || d > time.Second {
				t.Errorf("RetryAfter %v, want %v", e.RetryAfter, tt.retry)
			}
			// (A 407 is the proxy's, not the upstream's.)
			if !strings.Contains(e.Message, tt.says) || (tt.kind != KindProxy && !strings.Contains(e.Message, `provider "x"`)) {
				t.Errorf("message %q: want it to name the upstream and say %q", e.Message, tt.says)
			}
			if strings.Contains(strings.ToLower(e.Message), strings.ToLower(key)) {
				t.Errorf("message %q holds the key", e.Message)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		body   string
		want   time.Duration
	}{
		{"none", nil, `{}`, 0},
		{"seconds", map[string]string{"Retry-After": "3"}, ``, 3 * time.Second},
		{"fractional seconds", map[string]string{"Retry-After": "1.5"}, ``, 1500 * time.Millisecond},
		{"HTTP date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, ``, 90 * time.Second},
		{"date in the past", map[string]string{"Retry-After": now.Add(-time.Hour).Format(http.TimeFormat)}, ``, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, ``, 0},
		{"OpenAI tokens reset", map[string]string{"X-Ratelimit-Reset-Tokens": "1m30s"}, ``, 90 * time.Second},
		{"Anthropic reset", map[string]string{"Anthropic-Ratelimit-Requests-Reset": now.Add(42 * time.Second).Format(time.RFC3339)}, ``, 42 * time.Second},
		{"body: try again in", nil, `{"error":{"message":"Please try again in 20ms."}}`, 20 * time.Millisecond},
		{"body: minutes", nil, `{"error":{"message":"Please try again in 2m30s"}}`, 150 * time.Second},
		{"body: retry_after", nil, `{"error":{"retry_after": 12}}`, 12 * time.Second},
		{"body: retryDelay", nil, `{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"31s"}]}}`, 31 * time.Second},
		{"the longest counts", map[string]string{"Retry-After": "2"}, `{"error":{"message":"try again in 5s"}}`, 5 * time.Second},
		{"huge seconds", map[string]string{"Retry-After": "1e300"}, ``, 366 * 24 * time.Hour},
		{"infinite seconds", map[string]string{"Retry-After": "+Inf"}, ``, 366 * 24 * time.Hour},
		{"NaN", map[string]string{"Retry-After": "NaN"}, ``, 0},
		{"body: huge retry_after in range", nil, `{"error":{"retry_after": 99999999999}}`, 366 * 24 * time.Hour},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.header {
			h.Set(k, v)
		}
		if got := RetryAfter(h, []byte(tt.body), now); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct{ body, msg, code string }{
		{`{"error":{"message":"m","type":"t","code":"c"}}`, "m", "c"},
		{`{"error":{"message":"m","type":"t"}}`, "m", "t"},
		{`{"error":{"message":"m","code":1113}}`, "m", "1113"},
		{`{"error":"plain"}`, "plain", ""},
		{`{"message":"top","code":"x"}`, "top", "x"},
		{`{"msg":"iflow style"}`, "iflow style", ""},
		{`{"detail":"fastapi"}`, "fastapi", ""},
		{`{"detail":[{"loc":["body","stream_options"],"msg":"extra fields not permitted"}]}`, `[{"loc":["body","stream_options"],"msg":"extra fields not permitted"}]`, ""},
		{`upstream connect error`, "upstream connect error", ""},
		{`<html>502</html>`, "", ""},
	}
	for _, tt := range tests {
		msg, code := ErrorText([]byte(tt.body))
		if msg != tt.msg || code != tt.code {
			t.Errorf("%s: %q %q, want %q %q", tt.body, msg, code, tt.msg, tt.code)
		}
	}
}
