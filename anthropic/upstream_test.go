package anthropic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/anthropic/anthropictest"
	"github.com/proxycast/caddy-proxycast/provider"
)

// checkNoKey fails if the key shows in any text of err.
func checkNoKey(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(strings.ToLower(err.Error()), strings.ToLower(testKey)) {
		t.Fatalf("the key is in the error: %v", err)
	}
}

func asError(t *testing.T, err error) *provider.Error {
	t.Helper()
	pe, ok := errors.AsType[*provider.Error](err)
	if !ok {
		t.Fatalf("not a *provider.Error: %v", err)
	}
	checkNoKey(t, err)
	return pe
}

// TestErrorClasses: each failure of the fake reaches the caller with the
// kind, status and rest it means, in plain and stream calls alike.
func TestErrorClasses(t *testing.T) {
	tests := []struct {
		name       string
		behavior   anthropictest.Behavior
		rl         *anthropictest.RateLimit
		body       string
		key        string
		status     int
		errType    string
		code       string
		kind       provider.Kind
		retryAfter time.Duration
		msg        string
	}{
		{name: "unknown key", key: "sk-ant-api03-not-added-0000000000", status: 401, errType: "authentication_error", code: "upstream_key_invalid", kind: provider.KindAuth, msg: "invalid x-api-key"},
		{name: "revoked key", behavior: anthropictest.Unauthorized, status: 401, errType: "authentication_error", code: "upstream_key_invalid", kind: provider.KindAuth, msg: "rejected the credential: invalid x-api-key"},
		{name: "forbidden", behavior: anthropictest.Forbidden, status: 403, errType: "permission_error", code: "upstream_forbidden", kind: provider.KindBlocked, msg: "does not have permission"},
		{name: "rate limited, retry-after and resets", behavior: anthropictest.RateLimited, status: 429, errType: "rate_limit_error", code: "upstream_rate_limited", kind: provider.KindRateLimit, retryAfter: 20 * time.Second, msg: "rate limit"},
		{name: "rate limited, retry-after wins over an earlier reset", behavior: anthropictest.RateLimited,
			rl:     &anthropictest.RateLimit{RetryAfter: 7 * time.Second, RequestsReset: 3 * time.Second, TokensReset: 60 * time.Second},
			status: 429, errType: "rate_limit_error", code: "upstream_rate_limited", kind: provider.KindRateLimit, retryAfter: 7 * time.Second},
		{name: "rate limited, resets only: the earliest", behavior: anthropictest.RateLimited,
			rl:     &anthropictest.RateLimit{RequestsReset: 40 * time.Second, TokensReset: 90 * time.Second, InputTokensReset: 15 * time.Second, OutputTokensReset: 25 * time.Second},
			status: 429, errType: "rate_limit_error", code: "upstream_rate_limited", kind: provider.KindRateLimit, retryAfter: 15 * time.Second},
		{name: "rate limited, one reset", behavior: anthropictest.RateLimited, rl: &anthropictest.RateLimit{OutputTokensReset: 61 * time.Second},
			status: 429, errType: "rate_limit_error", code: "upstream_rate_limited", kind: provider.KindRateLimit, retryAfter: 61 * time.Second},
		{name: "rate limited, no hint", behavior: anthropictest.RateLimited, rl: &anthropictest.RateLimit{},
			status: 429, errType: "rate_limit_error", code: "upstream_rate_limited", kind: provider.KindRateLimit},
		{name: "overloaded", behavior: anthropictest.Overloaded, status: 529, errType: "overloaded_error", code: "upstream_overloaded", kind: provider.KindTransient, msg: "is overloaded (HTTP 529): Overloaded"},
		{name: "server error", behavior: anthropictest.ServerError, status: 502, errType: "api_error", code: "upstream_error", kind: provider.KindTransient, msg: "Internal server error"},
		{name: "credit too low", behavior: anthropictest.CreditTooLow, status: 429, errType: "insufficient_quota", code: "upstream_quota_exhausted", kind: provider.KindQuota, msg: "credit balance is too low"},
		{name: "billing error", behavior: anthropictest.BillingError, status: 429, errType: "insufficient_quota", code: "upstream_quota_exhausted", kind: provider.KindQuota, msg: "HTTP 402"},
		{name: "model not found", behavior: anthropictest.ModelNotFound, status: 404, errType: "not_found_error", code: "model_not_found", kind: provider.KindModel, msg: "model: " + testModel},
		{name: "404 model: of another name than the call's", body: strings.Replace(plainBody, testModel, "claude-nope", 1), status: 404, errType: "not_found_error", code: "model_not_found", kind: provider.KindModel, msg: "claude-nope"},
		{name: "request too large", behavior: anthropictest.TooLarge, status: 413, errType: "invalid_request_error", code: "upstream_rejected", kind: provider.KindClient, msg: "HTTP 413"},
		{name: "invalid request", body: strings.Replace(plainBody, `"max_tokens"`, `"n":2,"max_tokens"`, 1), status: 400, errType: "invalid_request_error", code: "upstream_rejected", kind: provider.KindClient, msg: "n: Extra inputs are not permitted"},
		{name: "invalid request naming the model", body: strings.Replace(plainBody, `1024`, `-5`, 1), status: 400, errType: "invalid_request_error", code: "upstream_rejected", kind: provider.KindClient, msg: "max_tokens: Input should be greater than or equal to 0"},
		{name: "redirect", behavior: anthropictest.Redirect, status: 502, errType: "api_error", code: "upstream_redirect", kind: provider.KindClient, msg: `"https://api.anthropic.example/v1/messages"`},
	}
	for _, tc := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%t", tc.name, stream), func(t *testing.T) {
				s := newFake(t)
				key := testKey
				if tc.key != "" {
					key = tc.key
				}
				s.SetBehavior(key, tc.behavior)
				if tc.rl != nil {
					s.SetRateLimit(*tc.rl)
				}
				body := plainBody
				if tc.body != "" {
					body = tc.body
				}
				if stream {
					body = streamBody(body)
				}
				call := msgCall(body, stream)
				call.APIKey = key
				_, err := newProvider(s).Chat(context.Background(), call)
				pe := asError(t, err)
				if strings.Contains(err.Error(), key) {
					t.Fatalf("the key is in the error: %v", err)
				}
				if pe.Status != tc.status || pe.Type != tc.errType || pe.Code != tc.code || pe.Kind != tc.kind || pe.RetryAfter != tc.retryAfter {
					t.Fatalf("got %d %s %s %v %v, want %d %s %s %v %v", pe.Status, pe.Type, pe.Code, pe.Kind, pe.RetryAfter,
						tc.status, tc.errType, tc.code, tc.kind, tc.retryAfter)
				}
				if !strings.HasPrefix(pe.Message, `anthropic instance "claude"`) || !strings.Contains(pe.Message, tc.msg) {
					t.Fatalf("message %q, want it to name the instance and hold %q", pe.Message, tc.msg)
				}
				if n := len(s.Requests()); n != 1 {
					t.Fatalf("%d requests: a redirect was followed or the call repeated", n)
				}
			})
		}
	}
}

// TestStatusErrorBodies: Anthropic's words in bodies the fake does not
// script: spend limits, a billing error under another status, an
// overloaded_error under 500, an echoed key, a 404 that is not about the
// model.
func TestStatusErrorBodies(t *testing.T) {
	p := &Provider{Name: "claude", now: func() time.Time { return testNow }}
	body := func(typ, msg string) []byte {
		return []byte(`{"type":"error","error":{"type":"` + typ + `","message":"` + msg + `"},"request_id":"req_1"}`)
	}
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       []byte
		wantStatus int
		code       string
		kind       provider.Kind
		retryAfter time.Duration
		msg        string
	}{
		{"spend limit with a date", 400, nil, body("invalid_request_error", "You have reached your specified API usage limits. You will regain access on 2026-04-01 at 00:00 UTC."),
			429, "upstream_quota_exhausted", provider.KindQuota, 31*24*time.Hour - 12*time.Hour, "usage limits"},
		{"spend limit with a past date", 400, nil, body("invalid_request_error", "You have reached your specified API usage limits. You will regain access on 2026-01-01 at 00:00 UTC."),
			429, "upstream_quota_exhausted", provider.KindQuota, 0, "usage limits"},
		{"billing type under 403", 403, nil, body("billing_error", "Payment required"), 429, "upstream_quota_exhausted", provider.KindQuota, 0, "Payment required"},
		{"overloaded under 500", 500, nil, body("overloaded_error", "Overloaded"), 529, "upstream_overloaded", provider.KindTransient, 0, "Overloaded"},
		{"overloaded with retry-after", 529, http.Header{"Retry-After": {"3"}}, body("overloaded_error", "Overloaded"), 529, "upstream_overloaded", provider.KindTransient, 3 * time.Second, "Overloaded"},
		{"timeout", 504, nil, body("timeout_error", "Request timed out"), 502, "upstream_error", provider.KindTransient, 0, "Request timed out"},
		{"bad gateway page", 502, nil, []byte("<html>bad gateway</html>"), 502, "upstream_error", provider.KindTransient, 0, "Bad Gateway"},
		{"404 not about the model", 404, nil, body("not_found_error", "Not Found"), 502, "upstream_not_found", provider.KindClient, 0, "check the provider's api_base"},
		{"key echoed", 400, nil, body("invalid_request_error", "bad key "+testKey+" in request"), 400, "upstream_rejected", provider.KindClient, 0, "bad key [redacted] in request"},
		{"other key-shaped text", 400, nil, body("invalid_request_error", "try sk-ant-api03-abcdefghijklmnop instead"), 400, "upstream_rejected", provider.KindClient, 0, "try [redacted] instead"},
		{"proxy auth", 407, nil, nil, 502, "upstream_proxy_failed", provider.KindProxy, 0, "proxy"},
		{"empty body", 500, nil, nil, 502, "upstream_error", provider.KindTransient, 0, "Internal Server Error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			pe := p.statusError(tc.status, h, tc.body, testModel, testKey)
			checkNoKey(t, pe)
			if pe.Status != tc.wantStatus || pe.Code != tc.code || pe.Kind != tc.kind || pe.RetryAfter != tc.retryAfter || !strings.Contains(pe.Message, tc.msg) {
				t.Fatalf("got %d %s %v %v %q", pe.Status, pe.Code, pe.Kind, pe.RetryAfter, pe.Message)
			}
		})
	}
}

func TestRateLimitRest(t *testing.T) {
	at := func(d time.Duration) string { return testNow.Add(d).Format(time.RFC3339) }
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"nothing", http.Header{}, 0},
		{"retry-after seconds", http.Header{"Retry-After": {"12"}}, 12 * time.Second},
		{"retry-after fraction", http.Header{"Retry-After": {"1.5"}}, 1500 * time.Millisecond},
		{"retry-after date", http.Header{"Retry-After": {testNow.Add(time.Minute).Format(http.TimeFormat)}}, time.Minute},
		{"retry-after zero, reset ahead", http.Header{"Retry-After": {"0"}, "Anthropic-Ratelimit-Tokens-Reset": {at(9 * time.Second)}}, 9 * time.Second},
		{"retry-after garbage, reset ahead", http.Header{"Retry-After": {"soon"}, "Anthropic-Ratelimit-Tokens-Reset": {at(9 * time.Second)}}, 9 * time.Second},
		{"retry-after over resets", http.Header{"Retry-After": {"30"}, "Anthropic-Ratelimit-Requests-Reset": {at(5 * time.Second)}}, 30 * time.Second},
		{"earliest reset ahead", http.Header{
			"Anthropic-Ratelimit-Requests-Reset":      {at(-5 * time.Second)},
			"Anthropic-Ratelimit-Tokens-Reset":        {at(40 * time.Second)},
			"Anthropic-Ratelimit-Input-Tokens-Reset":  {at(12 * time.Second)},
			"Anthropic-Ratelimit-Output-Tokens-Reset": {"not a time"},
		}, 12 * time.Second},
		{"resets all past", http.Header{"Anthropic-Ratelimit-Requests-Reset": {at(-time.Second)}}, 0},
		{"reset with an offset", http.Header{"Anthropic-Ratelimit-Requests-Reset": {testNow.Add(20 * time.Second).In(time.FixedZone("x", 3600)).Format(time.RFC3339)}}, 20 * time.Second},
		{"other reset headers are not Anthropic's", http.Header{"X-Ratelimit-Reset-Requests": {"6m0s"}}, 0},
		{"absurd retry-after", http.Header{"Retry-After": {"1e300"}}, maxHeaderWait},
		{"infinite retry-after", http.Header{"Retry-After": {"+Inf"}}, maxHeaderWait},
		{"NaN retry-after", http.Header{"Retry-After": {"NaN"}}, 0},
	}
	for _, tc := range tests {
		if got := rateLimitRest(tc.h, testNow); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMidStreamError: an error event after the stream began ends it with
// a transient *provider.Error; at its start, it fails the call with the
// error's own class.
func TestMidStreamError(t *testing.T) {
	s := newFake(t)
	s.SetBehavior(testKey, anthropictest.StreamOverloaded)
	resp, err := newProvider(s).Chat(context.Background(), msgCall(streamBody(plainBody), true))
	if err != nil {
		t.Fatalf("the stream began well: %v", err)
	}
	events, err := drain(t, resp.Events)
	pe := asError(t, err)
	if len(events) != 4 || pe.Status != 502 || pe.Type != "api_error" || pe.Code != provider.CodeOverloaded || pe.Kind != provider.KindTransient ||
		pe.Message != `anthropic instance "claude" sent an error in the stream (overloaded_error): Overloaded` {
		t.Fatalf("%d events, error %+v", len(events), pe)
	}
	if _, err := resp.Events.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the error: %v", err)
	}

	s.SetBehavior(testKey, anthropictest.StreamOverloadedAtStart)
	_, err = newProvider(s).Chat(context.Background(), msgCall(streamBody(plainBody), true))
	if pe := asError(t, err); pe.Status != 529 || pe.Type != "overloaded_error" || pe.Kind != provider.KindTransient {
		t.Fatalf("error at the start: %+v", pe)
	}
}

func TestStreamBreak(t *testing.T) {
	s := newFake(t)
	s.SetBehavior(testKey, anthropictest.StreamBreak)
	resp, err := newProvider(s).Chat(context.Background(), msgCall(streamBody(plainBody), true))
	if err != nil {
		t.Fatal(err)
	}
	_, err = drain(t, resp.Events)
	if pe := asError(t, err); pe.Code != "upstream_stream_broken" || pe.Kind != provider.KindTransient || pe.Status != 502 {
		t.Fatalf("broken stream: %+v", pe)
	}
	// A plain answer cut in the middle is no answer.
	_, err = newProvider(s).Chat(context.Background(), msgCall(plainBody, false))
	if err == nil {
		t.Fatal("half a message accepted")
	}
	checkNoKey(t, err)
}

// rawUpstream serves fn as the whole upstream.
func rawUpstream(t *testing.T, fn http.HandlerFunc) *Provider {
	t.Helper()
	ts := httptest.NewServer(fn)
	t.Cleanup(ts.Close)
	return &Provider{Name: "claude", APIBase: ts.URL, now: func() time.Time { return testNow }}
}

func sseHandler(frames string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, frames)
	}
}

// TestStreamShapes: streams that end early, carry garbage, or send
// nothing are failures; blank and comment-only events are skipped; the
// stream ends at message_stop even if the connection stays open.
func TestStreamShapes(t *testing.T) {
	start := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"type\":\"message\",\"content\":[]}}\n\n"
	stop := "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	tests := []struct {
		name   string
		frames string
		events int
		code   string // "" for a clean end
	}{
		{"complete", start + ": keep-alive\n\n" + "event: ping\ndata: {\"type\": \"ping\"}\n\n" + stop, 3, ""},
		{"no space after data:", "data:{\"type\":\"message_start\"}\n\ndata:{\"type\":\"message_stop\"}\n\n", 2, ""},
		{"ends before message_stop", start, 1, "upstream_stream_broken"},
		{"data that is not an object", start + "data: hello\n\n", 1, "upstream_stream_broken"},
		{"an error event", start + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom " + testKey + "\"}}\n\n", 1, "upstream_stream_error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := rawUpstream(t, sseHandler(tc.frames))
			resp, err := p.Chat(context.Background(), msgCall(streamBody(plainBody), true))
			if err != nil {
				t.Fatal(err)
			}
			events, err := drain(t, resp.Events)
			if len(events) != tc.events {
				t.Fatalf("%d events %q", len(events), types(events))
			}
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if pe := asError(t, err); pe.Code != tc.code || pe.Kind != provider.KindTransient {
				t.Fatalf("error %+v", pe)
			}
		})
	}

	// An empty stream, or one whose first event is garbage, fails the
	// call itself.
	for _, frames := range []string{"", ": nothing\n\n", "data: [1]\n\n"} {
		p := rawUpstream(t, sseHandler(frames))
		_, err := p.Chat(context.Background(), msgCall(streamBody(plainBody), true))
		if pe := asError(t, err); pe.Code != "upstream_stream_broken" {
			t.Fatalf("%q: %+v", frames, pe)
		}
	}

	// message_stop ends the stream without waiting for the connection.
	release := make(chan struct{})
	defer close(release)
	p := rawUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, start+stop)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	resp, err := p.Chat(context.Background(), msgCall(streamBody(plainBody), true))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := drain(t, resp.Events); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream waited for the connection to close after message_stop")
	}
}

// TestBadReplies: a 200 that is not what was asked for is a transient
// upstream failure that names what came.
func TestBadReplies(t *testing.T) {
	tests := []struct {
		name, ctype, body string
		code, msg         string
	}{
		{"not JSON", "application/json", "<html>hi</html>", "upstream_bad_reply", "not JSON"},
		{"not a message", "application/json", `{"type":"completion","completion":"x"}`, "upstream_bad_reply", "something other than a message"},
		{"a JSON array", "application/json", `[{"type":"message"}]`, "upstream_bad_reply", "something other than a message"},
		{"an error with 200", "application/json", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded for ` + testKey + `"}}`, "upstream_error", "HTTP 200 with an error (overloaded_error): Overloaded for [redacted]"},
	}
	for _, tc := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%t", tc.name, stream), func(t *testing.T) {
				p := rawUpstream(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", tc.ctype)
					_, _ = io.WriteString(w, tc.body)
				})
				body := plainBody
				if stream {
					body = streamBody(body)
				}
				_, err := p.Chat(context.Background(), msgCall(body, stream))
				if pe := asError(t, err); pe.Status != 502 || pe.Code != tc.code || pe.Kind != provider.KindTransient || !strings.Contains(pe.Message, tc.msg) {
					t.Fatalf("%+v", pe)
				}
			})
		}
	}

	huge := rawUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"type":"message","content":[{"type":"text","text":"`)
		chunk := strings.Repeat("x", 1<<20)
		for range provider.MaxReply>>20 + 1 {
			_, _ = io.WriteString(w, chunk)
		}
		_, _ = io.WriteString(w, `"}]}`)
	})
	if _, err := huge.Chat(context.Background(), msgCall(plainBody, false)); err == nil || !strings.Contains(err.Error(), "more than 32 MiB") {
		t.Fatalf("huge answer: %v", err)
	}

	for _, body := range []string{`{"tokens":3}`, `{"input_tokens":-1}`, `{"input_tokens":"3"}`, `nope`} {
		p := rawUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) })
		_, err := p.CountTokens(context.Background(), msgCall(`{}`, false))
		if pe := asError(t, err); pe.Code != "upstream_bad_reply" || !strings.Contains(pe.Message, `{"input_tokens": N}`) {
			t.Fatalf("count %s: %+v", body, pe)
		}
	}
}

// TestFetchModelsBounded: a list whose has_more never ends stops after
// maxModelPages; one that repeats its cursor stops at once; garbage is an
// error.
func TestFetchModelsBounded(t *testing.T) {
	pages := 0
	p := rawUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		pages++
		id := fmt.Sprintf("m%d", pages)
		fmt.Fprintf(w, `{"data":[{"type":"model","id":%q}],"has_more":true,"first_id":%q,"last_id":%q}`, id, id, id)
	})
	_, err := p.FetchModels(context.Background(), &provider.Call{APIKey: testKey})
	if err == nil || !strings.Contains(err.Error(), "more than 50 pages") || pages != maxModelPages {
		t.Fatalf("endless: %v after %d pages", err, pages)
	}

	calls := 0
	p = rawUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		_, _ = io.WriteString(w, `{"data":[{"type":"model","id":"m1"}],"has_more":true,"last_id":"m1"}`)
	})
	ids, err := p.FetchModels(context.Background(), &provider.Call{APIKey: testKey})
	if err != nil || len(ids) != 1 || calls != 2 {
		t.Fatalf("repeated cursor: %q %v after %d calls", ids, err, calls)
	}

	p = rawUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `[1,2]`) })
	if _, err := p.FetchModels(context.Background(), &provider.Call{APIKey: testKey}); err == nil || !strings.Contains(err.Error(), "model list is not") {
		t.Fatalf("garbage: %v", err)
	}
}

// TestTransportFailure: a call that gets no answer is a transport error
// naming the host, never the key.
func TestTransportFailure(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	base := ts.URL
	ts.Close()
	p := &Provider{Name: "claude", APIBase: base}
	_, err := p.Chat(context.Background(), msgCall(plainBody, false))
	if err == nil || errors.As(err, new(*provider.Error)) {
		t.Fatalf("want a transport error, got %v", err)
	}
	checkNoKey(t, err)
	if pe := provider.TransportError(err, testKey); pe.Kind != provider.KindTransient {
		t.Fatalf("transport error %+v", pe)
	}
}
