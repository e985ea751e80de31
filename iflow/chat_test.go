package iflow_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
	"github.com/proxycast/caddy-proxycast/provider"
)

const chatKey = "sk-chat-test-0123456789"

func newFake(t *testing.T) (*iflowtest.Server, *iflow.Provider) {
	t.Helper()
	srv, p := newOAuthFake(t)
	srv.AddAPIKey(chatKey)
	return srv, p
}

func chatBody(model string, stream bool, extra string) []byte {
	b := `{"model":"` + model + `","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello from the test"}],"stream":` +
		strconv.FormatBool(stream)
	if extra != "" {
		b += "," + extra
	}
	return []byte(b + "}")
}

func call(ctx context.Context, p *iflow.Provider, key, model string, stream bool, body []byte) (*provider.Response, error) {
	return p.Chat(ctx, &provider.Call{Model: model, Body: body, Stream: stream, APIKey: key, Transport: http.DefaultTransport})
}

// drain reads every event of a stream until it fails.
func drain(t *testing.T, ev provider.EventReader) ([][]byte, error) {
	t.Helper()
	var out [][]byte
	for range 10000 {
		data, err := ev.Next()
		if err != nil {
			return out, err
		}
		out = append(out, bytes.Clone(data))
	}
	t.Fatal("stream never ended")
	return nil, nil
}

type chunk struct {
	Object  string `json:"object"`
	Choices []struct {
		Delta struct {
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// joined decodes stream chunks and joins their content and reasoning.
func joined(t *testing.T, events [][]byte) (content, reasoning string) {
	t.Helper()
	for _, e := range events {
		var c chunk
		if err := json.Unmarshal(e, &c); err != nil {
			t.Fatalf("event %q: %v", e, err)
		}
		if c.Object != "chat.completion.chunk" {
			t.Errorf("event object = %q, want chat.completion.chunk", c.Object)
		}
		for _, ch := range c.Choices {
			content += ch.Delta.Content
			reasoning += ch.Delta.ReasoningContent
		}
	}
	return content, reasoning
}

type completion struct {
	Object  string `json:"object"`
	Choices []struct {
		Message struct {
			Role             string `json:"role"`
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
}

func TestChatNonStream(t *testing.T) {
	srv, p := newFake(t)
	body := chatBody("qwen3-max", false, `"x_unknown":{"keep":[1.50,"\u00e9"]},"temperature":0.70`)
	before := time.Now()
	resp, err := call(context.Background(), p, chatKey, "qwen3-max", false, body)
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if resp.Events != nil || resp.ContentType != "application/json" {
		t.Fatalf("response: content type %q, events %v; want a JSON body", resp.ContentType, resp.Events)
	}
	var c completion
	if err := json.Unmarshal(resp.Body, &c); err != nil {
		t.Fatalf("body %s: %v", resp.Body, err)
	}
	if c.Object != "chat.completion" || len(c.Choices) != 1 || c.Choices[0].Message.Content != "echo: hello from the test" {
		t.Errorf("completion = %s", resp.Body)
	}

	reqs := srv.ChatRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d chat requests reached the fake, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Status != http.StatusOK || r.Outcome != "ok" {
		t.Fatalf("fake answered %d %q", r.Status, r.Outcome)
	}
	// A body without reasoning_effort travels byte for byte.
	if !bytes.Equal(r.RawBody, body) {
		t.Errorf("upstream body\n%s\nwant\n%s", r.RawBody, body)
	}
	if got, ok := r.Body["x_unknown"].(map[string]any); !ok || !reflect.DeepEqual(got["keep"], []any{1.5, "é"}) {
		t.Errorf("unknown field did not reach upstream: %v", r.Body["x_unknown"])
	}
	checkHeaders(t, r.Header, chatKey, "application/json", before)
}

// checkHeaders checks the signed headers on our side too, with an HMAC of
// the test's own, so that a failure points at the header at fault.
func checkHeaders(t *testing.T, h http.Header, key, accept string, before time.Time) {
	t.Helper()
	want := map[string]string{
		"Authorization": "Bearer " + key,
		"User-Agent":    "iFlow-Cli",
		"Content-Type":  "application/json",
		"Accept":        accept,
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	sid := h.Get("session-id")
	if !regexp.MustCompile(`^session-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(sid) {
		t.Errorf("session-id = %q", sid)
	}
	ts := h.Get("x-iflow-timestamp")
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ms < before.UnixMilli() || ms > time.Now().UnixMilli() {
		t.Errorf("x-iflow-timestamp = %q, want Unix ms of the call", ts)
	}
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("iFlow-Cli:" + sid + ":" + ts))
	if got, want := h.Get("x-iflow-signature"), hex.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("x-iflow-signature = %q, want %q", got, want)
	}
}

func TestChatStream(t *testing.T) {
	srv, p := newFake(t)
	before := time.Now()
	resp, err := call(context.Background(), p, chatKey, "kimi-k2", true, chatBody("kimi-k2", true, ""))
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if resp.Events == nil || resp.Body != nil || resp.ContentType != "text/event-stream" {
		t.Fatalf("response: content type %q, body %q; want events", resp.ContentType, resp.Body)
	}
	events, err := drain(t, resp.Events)
	if err != io.EOF {
		t.Fatalf("stream ended with %v, want io.EOF", err)
	}
	if len(events) < 4 { // at least three content pieces and the final chunk
		t.Errorf("%d events, want the fake's pieces and the final chunk", len(events))
	}
	if content, _ := joined(t, events); content != "echo: hello from the test" {
		t.Errorf("content = %q", content)
	}
	if err := resp.Events.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := resp.Events.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	r := srv.ChatRequests()[0]
	if r.Outcome != "ok" || !r.Stream {
		t.Errorf("fake saw stream=%v, outcome %q", r.Stream, r.Outcome)
	}
	checkHeaders(t, r.Header, chatKey, "text/event-stream", before)
}

func TestChatThinkingReachesUpstream(t *testing.T) {
	srv, p := newFake(t)
	if _, err := call(context.Background(), p, chatKey, "glm-4.6", false, chatBody("glm-4.6", false, `"reasoning_effort":"high","x_keep":1`)); err != nil {
		t.Fatalf("Chat: %v", err)
	}
	b := srv.ChatRequests()[0].Body
	if _, ok := b["reasoning_effort"]; ok {
		t.Error("reasoning_effort reached upstream")
	}
	want := map[string]any{"enable_thinking": true, "clear_thinking": false}
	if !reflect.DeepEqual(b["chat_template_kwargs"], want) {
		t.Errorf("chat_template_kwargs = %v, want %v", b["chat_template_kwargs"], want)
	}
	if b["x_keep"] != 1.0 {
		t.Errorf("x_keep = %v", b["x_keep"])
	}
}

// TestChatBehaviors runs every scripted behavior of the fake, with and
// without stream.
func TestChatBehaviors(t *testing.T) {
	type errWant struct {
		status int
		code   string
		kind   provider.Kind
		msg    string
	}
	tests := []struct {
		b      iflowtest.Behavior
		stream bool
		// err is the error Chat must return; nil means Chat succeeds.
		err *errWant
		// check looks at a successful response.
		check func(t *testing.T, resp *provider.Response)
	}{
		{iflowtest.InvalidKey, false, &errWant{401, "upstream_key_invalid", provider.KindAuth, "Invalid apiKey"}, nil},
		{iflowtest.InvalidKey, true, &errWant{401, "upstream_key_invalid", provider.KindAuth, "Invalid apiKey"}, nil},
		{iflowtest.BlockedKey, false, &errWant{403, "upstream_key_blocked", provider.KindBlocked, "blocked"}, nil},
		{iflowtest.BlockedKey, true, &errWant{403, "upstream_key_blocked", provider.KindBlocked, "blocked"}, nil},
		{iflowtest.RateLimited, false, &errWant{429, "upstream_rate_limited", provider.KindRateLimit, "rate limit"}, nil},
		{iflowtest.RateLimited, true, &errWant{429, "upstream_rate_limited", provider.KindRateLimit, "rate limit"}, nil},
		{iflowtest.TokenExpired, false, &errWant{401, "upstream_token_expired", provider.KindAuth, "token has expired"}, nil},
		{iflowtest.TokenExpired, true, &errWant{401, "upstream_token_expired", provider.KindAuth, "token has expired"}, nil},
		{iflowtest.ModelNotSupported, false, &errWant{400, "model_not_supported", provider.KindModel, "Model not support"}, nil},
		{iflowtest.ModelNotSupported, true, &errWant{400, "model_not_supported", provider.KindModel, "Model not support"}, nil},
		{iflowtest.HTTP500, false, &errWant{502, "upstream_error", provider.KindTransient, "HTTP 500"}, nil},
		{iflowtest.HTTP500, true, &errWant{502, "upstream_error", provider.KindTransient, "HTTP 500"}, nil},
		{iflowtest.NotFoundModel, false, &errWant{404, "model_not_found", provider.KindModel, "当前 API 不支持所选模型 qwen3-max"}, nil},
		{iflowtest.NotFoundModel, true, &errWant{404, "model_not_found", provider.KindModel, "当前 API 不支持所选模型"}, nil},
		{iflowtest.HTTP406, false, &errWant{406, "upstream_not_acceptable", provider.KindModel, "406"}, nil},
		{iflowtest.HTTP406, true, &errWant{406, "upstream_not_acceptable", provider.KindModel, "406"}, nil},

		{iflowtest.StreamNoDone, true, nil, func(t *testing.T, resp *provider.Response) {
			events, err := drain(t, resp.Events)
			if err != io.EOF {
				t.Fatalf("stream ended with %v, want a clean io.EOF", err)
			}
			if content, _ := joined(t, events); content != "echo: hello from the test" {
				t.Errorf("content = %q", content)
			}
		}},
		{iflowtest.StreamNetworkError, true, nil, func(t *testing.T, resp *provider.Response) {
			events, err := drain(t, resp.Events)
			if len(events) != 1 {
				t.Fatalf("%d events before the failure, want the first chunk only", len(events))
			}
			if content, _ := joined(t, events); content == "" {
				t.Error("first chunk has no content")
			}
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Kind != provider.KindTransient || pe.Code != "upstream_network_error" || pe.Status != 502 {
				t.Fatalf("stream ended with %v (%#v), want a transient upstream_network_error", err, pe)
			}
		}},
		{iflowtest.StreamAsJSON, true, nil, func(t *testing.T, resp *provider.Response) {
			if resp.Events == nil || resp.ContentType != "text/event-stream" {
				t.Fatalf("a stream request answered with JSON must still give events; got %q", resp.ContentType)
			}
			events, err := drain(t, resp.Events)
			if err != io.EOF || len(events) != 1 {
				t.Fatalf("got %d events and %v, want one chunk and io.EOF", len(events), err)
			}
			if content, _ := joined(t, events); content != "echo: hello from the test" {
				t.Errorf("content = %q", content)
			}
			var c chunk
			_ = json.Unmarshal(events[0], &c)
			if len(c.Choices) != 1 || c.Choices[0].FinishReason == nil || *c.Choices[0].FinishReason != "stop" {
				t.Errorf("chunk %s does not carry finish_reason stop", events[0])
			}
		}},
		{iflowtest.ReasoningOnly, true, nil, func(t *testing.T, resp *provider.Response) {
			events, err := drain(t, resp.Events)
			if err != io.EOF {
				t.Fatalf("stream ended with %v", err)
			}
			content, reasoning := joined(t, events)
			if content != "" || reasoning != "echo: hello from the test" {
				t.Errorf("content %q, reasoning %q", content, reasoning)
			}
		}},
		{iflowtest.ReasoningOnly, false, nil, func(t *testing.T, resp *provider.Response) {
			var c completion
			if err := json.Unmarshal(resp.Body, &c); err != nil || len(c.Choices) != 1 {
				t.Fatalf("body %s: %v", resp.Body, err)
			}
			if m := c.Choices[0].Message; m.Content != "" || m.ReasoningContent != "echo: hello from the test" {
				t.Errorf("message = %+v", m)
			}
		}},
		// Stream-shaping behaviors leave a plain completion alone.
		{iflowtest.StreamNetworkError, false, nil, func(t *testing.T, resp *provider.Response) {
			if !bytes.Contains(resp.Body, []byte(`"echo: hello from the test"`)) {
				t.Errorf("body = %s", resp.Body)
			}
		}},
	}
	for _, tt := range tests {
		name := tt.b.String()
		if tt.stream {
			name += "/stream"
		}
		t.Run(name, func(t *testing.T) {
			srv, p := newFake(t)
			srv.SetBehavior(chatKey, tt.b)
			resp, err := call(context.Background(), p, chatKey, "qwen3-max", tt.stream, chatBody("qwen3-max", tt.stream, ""))
			// The fake records a plain completion as "ok" even when a
			// stream-shaping behavior is set.
			wantOutcome := "behavior " + tt.b.String()
			if !tt.stream && tt.err == nil {
				wantOutcome = "ok"
			}
			if reqs := srv.ChatRequests(); len(reqs) != 1 || reqs[0].Outcome != wantOutcome {
				t.Fatalf("fake outcome is not %q: %d requests %v", wantOutcome, len(reqs), outcomes(reqs))
			}
			if tt.err != nil {
				var pe *provider.Error
				if !errors.As(err, &pe) {
					t.Fatalf("Chat = %v, %v; want *provider.Error", resp, err)
				}
				if pe.Status != tt.err.status || pe.Code != tt.err.code || pe.Kind != tt.err.kind {
					t.Errorf("got %d %s %v, want %d %s %v", pe.Status, pe.Code, pe.Kind, tt.err.status, tt.err.code, tt.err.kind)
				}
				if pe.Type != provider.TypeForStatus(pe.Status) {
					t.Errorf("type %q does not go with status %d", pe.Type, pe.Status)
				}
				if !strings.Contains(pe.Message, tt.err.msg) {
					t.Errorf("message %q does not contain %q", pe.Message, tt.err.msg)
				}
				if strings.Contains(pe.Message, chatKey) {
					t.Errorf("message leaks the key: %q", pe.Message)
				}
				return
			}
			if err != nil {
				t.Fatalf("Chat: %v", err)
			}
			if resp.Events != nil {
				defer resp.Events.Close()
			}
			tt.check(t, resp)
		})
	}
}

func outcomes(reqs []iflowtest.ChatRequest) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Outcome)
	}
	return out
}

func TestChatRejections(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		model  string
		status int
		code   string
		kind   provider.Kind
	}{
		{"unknown key", "sk-not-registered", "qwen3-max", 401, "upstream_key_invalid", provider.KindAuth},
		{"unknown model", chatKey, "gpt-4o", 400, "model_not_supported", provider.KindModel},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(tt.name+"/stream="+strconv.FormatBool(stream), func(t *testing.T) {
				srv, p := newFake(t)
				_, err := call(context.Background(), p, tt.key, tt.model, stream, chatBody(tt.model, stream, ""))
				var pe *provider.Error
				if !errors.As(err, &pe) || pe.Status != tt.status || pe.Code != tt.code || pe.Kind != tt.kind {
					t.Fatalf("Chat error = %v, want %d %s", err, tt.status, tt.code)
				}
				// The fake rejected it for the reason we meant, not for a
				// protocol mistake.
				if r := srv.ChatRequests()[0]; !strings.HasPrefix(r.Outcome, "rejected: ") || strings.Contains(r.Outcome, "header") {
					t.Errorf("fake outcome %q", r.Outcome)
				}
			})
		}
	}
}

// TestChatRedirectNotFollowed: a redirect (an http:// api_base, say) is
// an error that names where it pointed, without the query, and the call
// goes nowhere else.
func TestChatRedirectNotFollowed(t *testing.T) {
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var elsewhere atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/chat/completions" {
					elsewhere.Add(1)
					return
				}
				http.Redirect(w, r, "/moved/"+strings.ToUpper(chatKey)+"/v1/chat/completions?token=sk-in-query", status)
			}))
			defer srv.Close()
			p := &iflow.Provider{APIBase: srv.URL + "/v1"}
			_, err := call(context.Background(), p, chatKey, "qwen3-max", false, chatBody("qwen3-max", false, ""))
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Status != http.StatusBadGateway || pe.Code != "upstream_redirect" || pe.Kind != provider.KindClient {
				t.Fatalf("Chat error = %#v, want 502 upstream_redirect", err)
			}
			if !strings.Contains(pe.Message, "/moved/[redacted]/v1/chat/completions") || strings.Contains(pe.Message, "sk-in-query") {
				t.Errorf("message %q: want the target without its query, and without the key in its path", pe.Message)
			}
			if n := elsewhere.Load(); n != 0 {
				t.Errorf("the redirect was followed %d times", n)
			}
		})
	}
}

// TestChatErrorHidesBasePassword: a transport failure names the URL, with
// a password in api_base masked.
func TestChatErrorHidesBasePassword(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close() // nothing listens there any more
	p := &iflow.Provider{APIBase: "http://gw:s3cret-pass@" + addr + "/v1"}
	_, err := call(context.Background(), p, chatKey, "qwen3-max", false, chatBody("qwen3-max", false, ""))
	if err == nil {
		t.Fatal("Chat to a closed port succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret-pass") || !strings.Contains(msg, addr) {
		t.Errorf("error %q: want the address without the password", msg)
	}
}

// TestChatCloseEndsUpstream checks that closing a stream early lets the
// upstream notice.
func TestChatCloseEndsUpstream(t *testing.T) {
	srv, p := newFake(t)
	srv.SetBehavior(chatKey, iflowtest.SlowStream)
	resp, err := call(context.Background(), p, chatKey, "qwen3-max", true, chatBody("qwen3-max", true, ""))
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if _, err := resp.Events.Next(); err != nil {
		t.Fatalf("first event: %v", err)
	}
	if err := resp.Events.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !srv.WaitCanceledStreams(1, 5*time.Second) {
		t.Error("the fake never saw the stream go away after Close")
	}
}

func TestChatContextCanceled(t *testing.T) {
	srv, p := newFake(t)
	srv.SetBehavior(chatKey, iflowtest.SlowStream)
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := call(ctx, p, chatKey, "qwen3-max", true, chatBody("qwen3-max", true, ""))
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	defer resp.Events.Close()
	if _, err := resp.Events.Next(); err != nil {
		t.Fatalf("first event: %v", err)
	}
	cancel()
	_, err = drain(t, resp.Events)
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v after cancel, want an error", err)
	}
}

// TestChatOddReplies covers replies the fake cannot be scripted to give.
func TestChatOddReplies(t *testing.T) {
	tests := []struct {
		name        string
		stream      bool
		contentType string
		reply       string
		// cut ends the connection in the middle of the reply.
		cut     bool
		code    string // error from Chat
		nextErr string // error code from the stream after the events
		events  int
	}{
		{"not JSON", false, "application/json", "<html>oops</html>", false, "upstream_bad_reply", "", 0},
		{"not JSON to a stream request", true, "text/html", "<html>oops</html>", false, "upstream_bad_reply", "", 0},
		{"envelope to a stream request", true, "application/json", `{"status":"449","msg":"rate limit"}`, false, "upstream_rate_limited", "", 0},
		{"envelope as first event", true, "text/event-stream", "data: {\"status\":\"434\",\"msg\":\"Invalid apiKey\"}\n\n", false, "", "upstream_key_invalid", 0},
		{"error event", true, "text/event-stream; charset=utf-8",
			"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"boom\"}}\n\n", false, "", "upstream_stream_error", 1},
		{"broken stream", true, "text/event-stream",
			"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choi", true, "", "upstream_stream_broken", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				if tt.cut {
					// Promise more than is sent, then hang up.
					w.Header().Set("Content-Length", strconv.Itoa(len(tt.reply)+100))
				}
				_, _ = io.WriteString(w, tt.reply)
			}))
			defer ts.Close()
			p := &iflow.Provider{APIBase: ts.URL}
			resp, err := call(context.Background(), p, chatKey, "qwen3-max", tt.stream, chatBody("qwen3-max", tt.stream, ""))
			var pe *provider.Error
			if tt.code != "" {
				if !errors.As(err, &pe) || pe.Code != tt.code {
					t.Fatalf("Chat error = %v, want %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("Chat: %v", err)
			}
			defer resp.Events.Close()
			events, err := drain(t, resp.Events)
			if len(events) != tt.events {
				t.Errorf("%d events, want %d", len(events), tt.events)
			}
			if !errors.As(err, &pe) || pe.Code != tt.nextErr {
				t.Fatalf("stream ended with %v, want %s", err, tt.nextErr)
			}
		})
	}
}
