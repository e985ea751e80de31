package iflowtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	testKey     = "sk-test-0001"
	testSession = "session-3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
)

// signFor is the test's own HMAC, written apart from the fake's so that a
// mistake in one is not copied into the other.
func signFor(key, sid, ts string) string {
	m := hmac.New(sha256.New, []byte(key))
	fmt.Fprintf(m, "iFlow-Cli:%s:%s", sid, ts)
	return hex.EncodeToString(m.Sum(nil))
}

// chatReq builds a correctly signed chat request.
func chatReq(t *testing.T, s *Server, key string, body any) *http.Request {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, s.APIBase()+"/chat/completions", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("User-Agent", "iFlow-Cli")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("session-id", testSession)
	req.Header.Set("x-iflow-timestamp", ts)
	req.Header.Set("x-iflow-signature", signFor(key, testSession, ts))
	return req
}

func chatBody(stream bool) map[string]any {
	return map[string]any{
		"model":  "glm-4.6",
		"stream": stream,
		"messages": []any{
			map[string]any{"role": "system", "content": "be brief"},
			map[string]any{"role": "user", "content": "hello there, how are you today?"},
		},
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("reply is not a JSON object: %v: %s", err, b)
	}
	return m
}

// obj, str and choice dig into decoded JSON without panicking, so that a
// wrong reply fails its own test instead of the whole run.
func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// choice is choices[0] of a completion or chunk.
func choice(m map[string]any) map[string]any {
	cs, _ := m["choices"].([]any)
	if len(cs) == 0 {
		return nil
	}
	return obj(cs[0])
}

func newServer(t *testing.T) *Server {
	t.Helper()
	s := NewServer()
	t.Cleanup(s.Close)
	s.AddAPIKey(testKey)
	return s
}

// readSSE returns the "data:" payloads of a stream.
func readSSE(t *testing.T, b []byte) []string {
	t.Helper()
	var events []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("stream line without data prefix: %q", line)
		}
		events = append(events, data)
	}
	if len(events) == 0 {
		t.Fatalf("empty stream: %q", b)
	}
	return events
}

// joinDeltas joins the delta field of every chunk event and returns the
// finish reasons seen.
func joinDeltas(t *testing.T, events []string, field string) (text string, finishes []string, roles int) {
	t.Helper()
	for _, e := range events {
		if e == "[DONE]" {
			continue
		}
		m := decode(t, []byte(e))
		if m["object"] != "chat.completion.chunk" {
			t.Fatalf("object = %v", m["object"])
		}
		ch := choice(m)
		d := obj(ch["delta"])
		if s, ok := d[field].(string); ok {
			text += s
		}
		if d["role"] == "assistant" {
			roles++
		}
		if f, ok := ch["finish_reason"].(string); ok {
			finishes = append(finishes, f)
		}
	}
	return text, finishes, roles
}

func TestChatEcho(t *testing.T) {
	s := newServer(t)
	r := do(t, chatReq(t, s, testKey, chatBody(false)))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := decode(t, r.body)
	if m["object"] != "chat.completion" || m["model"] != "glm-4.6" || m["id"] == "" {
		t.Fatalf("bad completion %s", r.body)
	}
	ch := choice(m)
	msg := obj(ch["message"])
	if msg["role"] != "assistant" || msg["content"] != "echo: hello there, how are you today?" || ch["finish_reason"] != "stop" {
		t.Fatalf("bad choice %v", ch)
	}
	if u := obj(m["usage"]); u["total_tokens"] == nil || u["total_tokens"] == float64(0) {
		t.Fatalf("bad usage %v", u)
	}
}

func TestChatEchoNonStringContent(t *testing.T) {
	s := newServer(t)
	body := map[string]any{"model": "qwen3-max", "messages": []any{
		map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "hi"}}},
	}}
	r := do(t, chatReq(t, s, testKey, body))
	msg := obj(choice(decode(t, r.body))["message"])
	if msg["content"] != "echo: ok" {
		t.Fatalf("content = %v", msg["content"])
	}
}

func TestChatStream(t *testing.T) {
	s := newServer(t)
	r := do(t, chatReq(t, s, testKey, chatBody(true)))
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	events := readSSE(t, r.body)
	if len(events) < 5 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("want >= 3 content chunks, a stop chunk and [DONE], got %q", events)
	}
	first := obj(choice(decode(t, []byte(events[0])))["delta"])
	if first["role"] != "assistant" {
		t.Fatalf("first chunk has no role: %s", events[0])
	}
	text, finishes, _ := joinDeltas(t, events, "content")
	if text != "echo: hello there, how are you today?" {
		t.Fatalf("joined text %q", text)
	}
	if len(finishes) != 1 || finishes[0] != "stop" {
		t.Fatalf("finish reasons %q", finishes)
	}
	recs := s.ChatRequests()
	if len(recs) != 1 || !recs[0].Stream || recs[0].Outcome != "ok" || recs[0].Canceled {
		t.Fatalf("record %+v", recs)
	}
}

func TestChatStreamDelay(t *testing.T) {
	s := newServer(t)
	s.SetStreamDelay(30 * time.Millisecond)
	start := time.Now()
	r := do(t, chatReq(t, s, testKey, chatBody(true)))
	if took := time.Since(start); took < 90*time.Millisecond {
		t.Fatalf("stream with delay took only %s", took)
	}
	if ev := readSSE(t, r.body); ev[len(ev)-1] != "[DONE]" {
		t.Fatalf("events %q", ev)
	}
}

func TestChatRejections(t *testing.T) {
	const msg406 = `"status 406"`
	tests := []struct {
		name   string
		mutate func(*http.Request)
		status int
		want   string // substring of the body
	}{
		{"no authorization", func(r *http.Request) { r.Header.Del("Authorization") }, 400, "missing Authorization"},
		{"not bearer", func(r *http.Request) { r.Header.Set("Authorization", "Token "+testKey) }, 400, "Bearer"},
		{"wrong user agent", func(r *http.Request) { r.Header.Set("User-Agent", "iflow-cli") }, 400, "User-Agent"},
		{"no user agent", func(r *http.Request) { r.Header.Set("User-Agent", "") }, 400, "User-Agent"},
		{"wrong content type", func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, 400, "Content-Type"},
		{"no session", func(r *http.Request) { r.Header.Del("session-id") }, 400, "session-id"},
		{"session not uuid4", func(r *http.Request) {
			r.Header.Set("session-id", "session-3f2b8c1e-9a4d-1e6f-8b7a-1c2d3e4f5a6b")
		}, 400, "session-id"},
		{"session without prefix", func(r *http.Request) {
			r.Header.Set("session-id", "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b")
		}, 400, "session-id"},
		{"no signature headers", func(r *http.Request) {
			r.Header.Del("x-iflow-signature")
			r.Header.Del("x-iflow-timestamp")
		}, 406, msg406},
		{"no signature", func(r *http.Request) { r.Header.Del("x-iflow-signature") }, 406, msg406},
		{"no timestamp", func(r *http.Request) { r.Header.Del("x-iflow-timestamp") }, 406, msg406},
		{"wrong signature", func(r *http.Request) {
			r.Header.Set("x-iflow-signature", signFor("other", testSession, r.Header.Get("x-iflow-timestamp")))
		}, 406, msg406},
		{"uppercase signature", func(r *http.Request) {
			r.Header.Set("x-iflow-signature", strings.ToUpper(r.Header.Get("x-iflow-signature")))
		}, 406, msg406},
		{"signature over other session", func(r *http.Request) {
			r.Header.Set("session-id", "session-00000000-0000-4000-8000-000000000000")
		}, 406, msg406},
		{"stale timestamp", func(r *http.Request) {
			ts := strconv.FormatInt(time.Now().Add(-6*time.Minute).UnixMilli(), 10)
			r.Header.Set("x-iflow-timestamp", ts)
			r.Header.Set("x-iflow-signature", signFor(testKey, testSession, ts))
		}, 406, msg406},
		{"timestamp in seconds", func(r *http.Request) {
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			r.Header.Set("x-iflow-timestamp", ts)
			r.Header.Set("x-iflow-signature", signFor(testKey, testSession, ts))
		}, 406, msg406},
		{"get", func(r *http.Request) { r.Method = http.MethodGet }, 405, "POST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			req := chatReq(t, s, testKey, chatBody(false))
			tc.mutate(req)
			r := do(t, req)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("got %d %s, want %d with %q", r.status, r.body, tc.status, tc.want)
			}
			if r.header.Get(ReasonHeader) == "" {
				t.Fatal("rejection without reason header")
			}
			recs := s.ChatRequests()
			if len(recs) != 1 || !strings.HasPrefix(recs[0].Outcome, "rejected: ") || recs[0].Status != tc.status {
				t.Fatalf("record %+v", recs)
			}
		})
	}
}

func TestChatBodyChecks(t *testing.T) {
	tests := []struct {
		name string
		body any
		want string
	}{
		{"not json", "{model", "JSON object"},
		{"array", `[]`, "JSON object"},
		{"no model", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "x"}}}, "model"},
		{"model not string", map[string]any{"model": 5, "messages": []any{map[string]any{"role": "user", "content": "x"}}}, "model"},
		{"no messages", map[string]any{"model": "glm-4.6"}, "messages"},
		{"empty messages", map[string]any{"model": "glm-4.6", "messages": []any{}}, "messages"},
		{"message without role", map[string]any{"model": "glm-4.6", "messages": []any{map[string]any{"content": "x"}}}, "role"},
		{"stream not bool", map[string]any{"model": "glm-4.6", "stream": "yes", "messages": []any{map[string]any{"role": "user", "content": "x"}}}, "stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			r := do(t, chatReq(t, s, testKey, tc.body))
			if r.status != 400 || !strings.Contains(string(r.body), "fake iflow: ") || !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("got %d %s", r.status, r.body)
			}
		})
	}
}

func TestChatKeysAndModels(t *testing.T) {
	s := newServer(t)

	r := do(t, chatReq(t, s, "sk-unknown", chatBody(true)))
	m := decode(t, r.body)
	if r.status != 200 || m["status"] != "434" || m["msg"] != "Invalid apiKey" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("unknown key: %d %s", r.status, r.body)
	}

	body := chatBody(false)
	body["model"] = "gpt-4o"
	r = do(t, chatReq(t, s, testKey, body))
	m = decode(t, r.body)
	if r.status != 200 || m["error_code"] != float64(500) || m["msg"] != "Model not support" {
		t.Fatalf("unknown model: %d %s", r.status, r.body)
	}

	s.RemoveAPIKey(testKey)
	r = do(t, chatReq(t, s, testKey, chatBody(false)))
	if decode(t, r.body)["status"] != "434" {
		t.Fatalf("removed key: %s", r.body)
	}

	for _, model := range KnownModels() {
		s.AddAPIKey(testKey)
		body := chatBody(false)
		body["model"] = model
		if r := do(t, chatReq(t, s, testKey, body)); r.status != 200 || decode(t, r.body)["object"] != "chat.completion" {
			t.Fatalf("model %s: %d %s", model, r.status, r.body)
		}
	}
}

func TestChatRecordsUnknownFields(t *testing.T) {
	s := newServer(t)
	body := chatBody(false)
	body["chat_template_kwargs"] = map[string]any{"enable_thinking": true, "clear_thinking": false}
	body["reasoning_split"] = true
	r := do(t, chatReq(t, s, testKey, body))
	if r.status != 200 {
		t.Fatalf("unknown fields not tolerated: %d %s", r.status, r.body)
	}
	recs := s.ChatRequests()
	if s.ChatCount() != 1 || len(recs) != 1 {
		t.Fatalf("count %d, records %d", s.ChatCount(), len(recs))
	}
	rec := recs[0]
	kw, _ := rec.Body["chat_template_kwargs"].(map[string]any)
	if rec.APIKey != testKey || rec.Model != "glm-4.6" || rec.Stream || kw["enable_thinking"] != true || rec.Body["reasoning_split"] != true {
		t.Fatalf("record %+v", rec)
	}
	if rec.Header.Get("User-Agent") != "iFlow-Cli" || len(rec.RawBody) == 0 || rec.Status != 200 {
		t.Fatalf("record %+v", rec)
	}
	// Copies are independent.
	rec.Body["model"] = "changed"
	rec.Header.Set("User-Agent", "changed")
	if again := s.ChatRequests()[0]; again.Body["model"] != "glm-4.6" || again.Header.Get("User-Agent") != "iFlow-Cli" {
		t.Fatal("ChatRequests shares state with the fake")
	}
}

func TestAccessTokenAsBearer(t *testing.T) {
	s := newServer(t)
	a := s.AddAccount("a@example.com", "")
	access, _ := s.IssueTokens(a, time.Hour)
	r := do(t, chatReq(t, s, access, chatBody(false)))
	if decode(t, r.body)["status"] != "434" || !strings.Contains(r.header.Get(ReasonHeader), "access token") {
		t.Fatalf("access token as bearer: %s %v", r.body, r.header)
	}
}

func TestErrorBehaviors(t *testing.T) {
	tests := []struct {
		b      Behavior
		status int
		check  func(m map[string]any) bool
	}{
		{InvalidKey, 200, func(m map[string]any) bool {
			return m["status"] == "434" && strings.HasPrefix(str(m["msg"]), "Invalid apiKey")
		}},
		{BlockedKey, 200, func(m map[string]any) bool {
			return m["status"] == "434" && strings.HasPrefix(str(m["msg"]), "Access to the current AK has been blocked")
		}},
		{RateLimited, 200, func(m map[string]any) bool {
			return m["status"] == "449" && m["msg"] == "You exceeded your current rate limit"
		}},
		{TokenExpired, 200, func(m map[string]any) bool {
			return m["status"] == float64(439) && m["msg"] == "token has expired"
		}},
		{ModelNotSupported, 200, func(m map[string]any) bool {
			return m["error_code"] == float64(500) && m["msg"] == "Model not support"
		}},
		{HTTP500, 500, func(m map[string]any) bool { return m["error"] != nil }},
		{NotFoundModel, 404, func(m map[string]any) bool {
			return strings.HasPrefix(str(m["error"]), "当前 API 不支持所选模型")
		}},
		{HTTP406, 406, func(m map[string]any) bool {
			e, _ := m["error"].(map[string]any)
			return e["message"] == "status 406" && e["type"] == "invalid_request_error"
		}},
	}
	for _, tc := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%t", tc.b, stream), func(t *testing.T) {
				s := newServer(t)
				s.SetBehavior(testKey, tc.b)
				r := do(t, chatReq(t, s, testKey, chatBody(stream)))
				if r.status != tc.status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
					t.Fatalf("got %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
				}
				if !tc.check(decode(t, r.body)) {
					t.Fatalf("body %s", r.body)
				}
				if got := s.ChatRequests()[0].Outcome; got != "behavior "+tc.b.String() {
					t.Fatalf("outcome %q", got)
				}
				// Scripted answers still need a correct request.
				req := chatReq(t, s, testKey, chatBody(stream))
				req.Header.Del("x-iflow-signature")
				if r := do(t, req); r.status != 406 || !strings.Contains(r.header.Get(ReasonHeader), "signature") {
					t.Fatalf("unsigned request under %s: %d %s", tc.b, r.status, r.body)
				}
				// Normal restores the default.
				s.SetBehavior(testKey, Normal)
				if r := do(t, chatReq(t, s, testKey, chatBody(false))); r.status != 200 || decode(t, r.body)["object"] != "chat.completion" {
					t.Fatalf("after Normal: %d %s", r.status, r.body)
				}
			})
		}
	}
}

func TestStreamNoDone(t *testing.T) {
	s := newServer(t)
	s.SetBehavior(testKey, StreamNoDone)
	events := readSSE(t, do(t, chatReq(t, s, testKey, chatBody(true))).body)
	text, finishes, _ := joinDeltas(t, events, "content")
	if events[len(events)-1] == "[DONE]" || text != "echo: hello there, how are you today?" || len(finishes) != 1 || finishes[0] != "stop" {
		t.Fatalf("events %q", events)
	}
}

func TestStreamNetworkError(t *testing.T) {
	s := newServer(t)
	s.SetBehavior(testKey, StreamNetworkError)
	events := readSSE(t, do(t, chatReq(t, s, testKey, chatBody(true))).body)
	if len(events) != 2 {
		t.Fatalf("events %q", events)
	}
	text, finishes, _ := joinDeltas(t, events, "content")
	if text == "" || len(finishes) != 1 || finishes[0] != "network_error" {
		t.Fatalf("events %q", events)
	}
	last := obj(choice(decode(t, []byte(events[1])))["delta"])
	if len(last) != 0 {
		t.Fatalf("network_error delta not empty: %v", last)
	}
}

func TestStreamAsJSON(t *testing.T) {
	s := newServer(t)
	s.SetBehavior(testKey, StreamAsJSON)
	r := do(t, chatReq(t, s, testKey, chatBody(true)))
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || decode(t, r.body)["object"] != "chat.completion" {
		t.Fatalf("got %q %s", r.header.Get("Content-Type"), r.body)
	}
}

func TestReasoningOnly(t *testing.T) {
	s := newServer(t)
	s.SetBehavior(testKey, ReasoningOnly)
	r := do(t, chatReq(t, s, testKey, chatBody(false)))
	msg := obj(choice(decode(t, r.body))["message"])
	if msg["content"] != "" || msg["reasoning_content"] != "echo: hello there, how are you today?" {
		t.Fatalf("message %v", msg)
	}
	events := readSSE(t, do(t, chatReq(t, s, testKey, chatBody(true))).body)
	if text, _, _ := joinDeltas(t, events, "reasoning_content"); text != "echo: hello there, how are you today?" {
		t.Fatalf("reasoning %q", text)
	}
	if text, _, _ := joinDeltas(t, events, "content"); text != "" {
		t.Fatalf("content %q", text)
	}
}

func TestSlowStreamCancel(t *testing.T) {
	s := newServer(t)
	s.SetBehavior(testKey, SlowStream)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := chatReq(t, s, testKey, chatBody(true)).WithContext(ctx)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for range 3 { // two events with their blank lines … enough to be mid-stream
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	resp.Body.Close()
	if !s.WaitCanceledStreams(1, 5*time.Second) {
		t.Fatal("the fake did not notice the client going away")
	}
	if !s.ChatRequests()[0].Canceled {
		t.Fatal("record not marked canceled")
	}
}

func TestCloseEndsSlowStream(t *testing.T) {
	s := NewServer()
	t.Cleanup(s.Close) // in case the test fails before its own Close
	s.AddAPIKey(testKey)
	s.SetBehavior(testKey, SlowStream)
	resp, err := http.DefaultClient.Do(chatReq(t, s, testKey, chatBody(true)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the slow stream")
	}
	if s.CanceledStreams() != 0 {
		t.Fatal("a stream ended by Close counted as canceled by the client")
	}
}

// readEvent reads one SSE event ("data: …" and its blank line) and
// returns its payload.
func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading an event: %v", err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\n" {
		t.Fatalf("event %q not followed by a blank line: %q, %v", line, blank, err)
	}
	data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: ")
	if !ok {
		t.Fatalf("stream line without data prefix: %q", line)
	}
	return data
}

// TestStreamGate: a gated stream sends its first event at once and each
// further one only for a value received from the gate, so the fake must be
// found waiting at the gate once per event; closing the gate lets the rest
// run.
func TestStreamGate(t *testing.T) {
	s := newServer(t)
	gate := make(chan struct{})
	s.SetStreamGate(testKey, gate)
	resp, err := http.DefaultClient.Do(chatReq(t, s, testKey, chatBody(true)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	events := []string{readEvent(t, br)}
	for range 2 {
		// The gate is unbuffered: the send goes through only while the
		// stream waits for it, between two events.
		select {
		case gate <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatalf("the stream does not wait at the gate after %d events", len(events))
		}
		events = append(events, readEvent(t, br))
	}
	close(gate)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	events = append(events, readSSE(t, rest)...)
	if events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %q", events)
	}
	if text, _, _ := joinDeltas(t, events, "content"); text != "echo: hello there, how are you today?" {
		t.Fatalf("joined text %q", text)
	}

	// Without the gate, streams run on their own again.
	s.SetStreamGate(testKey, nil)
	if ev := readSSE(t, do(t, chatReq(t, s, testKey, chatBody(true))).body); ev[len(ev)-1] != "[DONE]" {
		t.Fatalf("ungated stream: %q", ev)
	}
}

// TestStreamGateCancel: a client that goes away while its stream waits at
// the gate is counted at once, and a stream held there by Close is not.
func TestStreamGateCancel(t *testing.T) {
	s := NewServer()
	t.Cleanup(s.Close)
	s.AddAPIKey(testKey)
	s.SetStreamGate(testKey, make(chan struct{}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := http.DefaultClient.Do(chatReq(t, s, testKey, chatBody(true)).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	readEvent(t, bufio.NewReader(resp.Body))
	cancel()
	resp.Body.Close()
	if !s.WaitCanceledStreams(1, 5*time.Second) {
		t.Fatal("the fake did not notice the client going away at the gate")
	}
	if !s.ChatRequests()[0].Canceled {
		t.Fatal("record not marked canceled")
	}

	held, err := http.DefaultClient.Do(chatReq(t, s, testKey, chatBody(true)))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Body.Close()
	readEvent(t, bufio.NewReader(held.Body))
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the gated stream")
	}
	if n := s.CanceledStreams(); n != 1 {
		t.Fatalf("CanceledStreams = %d after Close, want 1 (the client that left)", n)
	}
}

func TestUnknownPath(t *testing.T) {
	s := newServer(t)
	req, _ := http.NewRequest(http.MethodGet, s.APIBase()+"/models", nil)
	if r := do(t, req); r.status != 404 {
		t.Fatalf("GET /v1/models: %d", r.status)
	}
}

// --- OAuth ---

const redirectURI = "http://localhost:11451/oauth2callback"

func authorizeURL(s *Server, state string) string {
	q := url.Values{
		"loginMethod": {"phone"}, "type": {"phone"}, "redirect": {redirectURI},
		"state": {state}, "client_id": {ClientID},
	}
	return s.OAuthBase() + "/oauth?" + q.Encode()
}

// authorize runs the authorize page and returns the callback's query.
func authorize(t *testing.T, s *Server, rawURL string) (int, url.Values) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	r := do(t, req)
	if r.status != http.StatusFound {
		return r.status, nil
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirectURI {
		t.Fatalf("redirected to %s", got)
	}
	return r.status, loc.Query()
}

type tokenOpts struct {
	noBasic, noFormClient, wrongSecret bool
}

func tokenReq(t *testing.T, s *Server, form url.Values, o tokenOpts) reply {
	t.Helper()
	if !o.noFormClient {
		form.Set("client_id", ClientID)
		form.Set("client_secret", ClientSecret)
	}
	req, _ := http.NewRequest(http.MethodPost, s.OAuthBase()+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !o.noBasic {
		secret := ClientSecret
		if o.wrongSecret {
			secret = "nope"
		}
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(ClientID+":"+secret)))
	}
	return do(t, req)
}

func exchange(t *testing.T, s *Server, code string) reply {
	t.Helper()
	return tokenReq(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}, tokenOpts{})
}

func refreshWith(t *testing.T, s *Server, rt string) reply {
	t.Helper()
	return tokenReq(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, tokenOpts{})
}

func userInfo(t *testing.T, s *Server, access string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.OAuthBase()+"/api/oauth/getUserInfo?accessToken="+url.QueryEscape(access), nil)
	r := do(t, req)
	if r.status != 200 {
		t.Fatalf("getUserInfo: %d %s", r.status, r.body)
	}
	return decode(t, r.body)
}

func TestOAuthLoginFlow(t *testing.T) {
	s := newServer(t)
	a := s.AddAccount("user@example.com", "13800000000")

	status, q := authorize(t, s, authorizeURL(s, "st-1"))
	if status != 302 || q.Get("state") != "st-1" || q.Get("code") == "" {
		t.Fatalf("authorize: %d %v", status, q)
	}
	code := q.Get("code")

	r := exchange(t, s, code)
	if r.status != 200 {
		t.Fatalf("exchange: %d %s", r.status, r.body)
	}
	tok := decode(t, r.body)
	if tok["token_type"] != "bearer" || tok["scope"] != "read" || tok["expires_in"] != float64(48*3600) ||
		tok["access_token"] == "" || tok["refresh_token"] == "" {
		t.Fatalf("tokens %s", r.body)
	}

	// Codes are single-use.
	if r := exchange(t, s, code); r.status != 400 || decode(t, r.body)["error"] != "invalid_grant" {
		t.Fatalf("code reuse: %d %s", r.status, r.body)
	}

	info := userInfo(t, s, str(tok["access_token"]))
	data, _ := info["data"].(map[string]any)
	if info["success"] != true || data["apiKey"] != a.APIKey() || data["email"] != "user@example.com" || data["phone"] != "13800000000" {
		t.Fatalf("user info %v", info)
	}
	// The account's key works for chat.
	if r := do(t, chatReq(t, s, a.APIKey(), chatBody(false))); r.status != 200 || decode(t, r.body)["object"] != "chat.completion" {
		t.Fatalf("account key: %d %s", r.status, r.body)
	}

	if info := userInfo(t, s, "fake-at-nope"); info["success"] != false || info["data"] != nil {
		t.Fatalf("bad token user info %v", info)
	}
}

func TestOAuthCodeBoundToRedirect(t *testing.T) {
	s := newServer(t)
	s.AddAccount("user@example.com", "")
	_, q := authorize(t, s, authorizeURL(s, "st"))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {"http://localhost:9999/cb"}}
	if r := tokenReq(t, s, form, tokenOpts{}); r.status != 400 || decode(t, r.body)["error"] != "invalid_grant" {
		t.Fatalf("other redirect: %d %s", r.status, r.body)
	}
}

func TestOAuthAuthorizeChecks(t *testing.T) {
	s := newServer(t)
	s.AddAccount("user@example.com", "")
	base := url.Values{
		"loginMethod": {"phone"}, "type": {"phone"}, "redirect": {redirectURI},
		"state": {"s"}, "client_id": {ClientID},
	}
	tests := []struct {
		name   string
		change func(url.Values)
		want   string
	}{
		{"redirect_uri instead of redirect", func(q url.Values) { q.Del("redirect"); q.Set("redirect_uri", redirectURI) }, "redirect, not redirect_uri"},
		{"wrong client", func(q url.Values) { q.Set("client_id", "123") }, "client_id"},
		{"no client", func(q url.Values) { q.Del("client_id") }, "client_id"},
		{"no login method", func(q url.Values) { q.Del("loginMethod") }, "loginMethod"},
		{"no state", func(q url.Values) { q.Del("state") }, "state"},
		{"relative redirect", func(q url.Values) { q.Set("redirect", "/cb") }, "redirect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range base {
				q[k] = append([]string(nil), v...)
			}
			tc.change(q)
			req, _ := http.NewRequest(http.MethodGet, s.OAuthBase()+"/oauth?"+q.Encode(), nil)
			r := do(t, req)
			if r.status != 400 || !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("got %d %s", r.status, r.body)
			}
		})
	}

	s.SetAuthorizeError("access_denied")
	status, q := authorize(t, s, authorizeURL(s, "st-9"))
	if status != 302 || q.Get("error") != "access_denied" || q.Get("state") != "st-9" || q.Has("code") {
		t.Fatalf("authorize error: %d %v", status, q)
	}
}

func TestOAuthLoginAccountChoice(t *testing.T) {
	s := newServer(t)
	first := s.AddAccount("first@example.com", "")
	s.AddAccount("second@example.com", "")
	s.SetLoginAccount(first)
	_, q := authorize(t, s, authorizeURL(s, "st"))
	tok := decode(t, exchange(t, s, q.Get("code")).body)
	if info := userInfo(t, s, str(tok["access_token"])); obj(info["data"])["email"] != "first@example.com" {
		t.Fatalf("logged in %v", info)
	}
}

func TestTokenClientAuth(t *testing.T) {
	s := newServer(t)
	a := s.AddAccount("user@example.com", "")
	_, rt := s.IssueTokens(a, time.Hour)
	form := func() url.Values { return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}} }
	for name, o := range map[string]tokenOpts{
		"no basic":       {noBasic: true},
		"no form client": {noFormClient: true},
		"wrong secret":   {wrongSecret: true},
	} {
		r := tokenReq(t, s, form(), o)
		if r.status != 401 || decode(t, r.body)["error"] != "invalid_client" {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
	}
	// Not form-encoded.
	req, _ := http.NewRequest(http.MethodPost, s.OAuthBase()+"/oauth/token", strings.NewReader(`{"grant_type":"refresh_token"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(ClientID, ClientSecret)
	if r := do(t, req); r.status != 400 {
		t.Fatalf("json token request: %d %s", r.status, r.body)
	}
	// None of that used the refresh token up.
	if r := refreshWith(t, s, rt); r.status != 200 {
		t.Fatalf("refresh after rejected attempts: %d %s", r.status, r.body)
	}
	if r := tokenReq(t, s, url.Values{"grant_type": {"password"}}, tokenOpts{}); r.status != 400 || decode(t, r.body)["error"] != "unsupported_grant_type" {
		t.Fatalf("password grant: %d %s", r.status, r.body)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	s := newServer(t)
	a := s.AddAccount("user@example.com", "")
	_, rt1 := s.IssueTokens(a, time.Hour)

	r := refreshWith(t, s, rt1)
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	tok := decode(t, r.body)
	rt2, _ := tok["refresh_token"].(string)
	if rt2 == "" || rt2 == rt1 {
		t.Fatalf("refresh token not rotated: %s", r.body)
	}
	if info := userInfo(t, s, str(tok["access_token"])); info["success"] != true {
		t.Fatalf("new access token: %v", info)
	}

	r = refreshWith(t, s, rt1)
	if r.status != 400 || decode(t, r.body)["error"] != "invalid_grant" || s.ReusedRefreshTokens() != 1 {
		t.Fatalf("reuse: %d %s, reused=%d", r.status, r.body, s.ReusedRefreshTokens())
	}
	if r := refreshWith(t, s, rt2); r.status != 200 {
		t.Fatalf("rotated token: %d %s", r.status, r.body)
	}
	if s.RefreshCount() != 2 {
		t.Fatalf("refresh count %d", s.RefreshCount())
	}
	if r := refreshWith(t, s, "fake-rt-unknown"); r.status != 400 || decode(t, r.body)["error"] != "invalid_grant" || s.ReusedRefreshTokens() != 1 {
		t.Fatalf("unknown: %d %s", r.status, r.body)
	}
}

func TestRefreshRotatesAPIKey(t *testing.T) {
	s := newServer(t)
	s.SetRotateAPIKeyOnRefresh(true)
	a := s.AddAccount("user@example.com", "")
	old := a.APIKey()
	_, rt := s.IssueTokens(a, time.Hour)
	tok := decode(t, refreshWith(t, s, rt).body)
	newKey := obj(userInfo(t, s, str(tok["access_token"]))["data"])["apiKey"]
	if newKey == old || newKey != a.APIKey() {
		t.Fatalf("key not rotated: old %s new %v", old, newKey)
	}
	if m := decode(t, do(t, chatReq(t, s, old, chatBody(false))).body); m["status"] != "434" {
		t.Fatalf("old key still works: %v", m)
	}
	if r := do(t, chatReq(t, s, a.APIKey(), chatBody(false))); r.status != 200 || decode(t, r.body)["object"] != "chat.completion" {
		t.Fatalf("new key: %s", r.body)
	}
}

func TestTokenBehaviors(t *testing.T) {
	s := newServer(t)
	a := s.AddAccount("user@example.com", "")
	_, rt := s.IssueTokens(a, time.Hour)

	s.SetTokenBehavior(TokenOverloaded)
	r := refreshWith(t, s, rt)
	if m := decode(t, r.body); r.status != 200 || m["success"] != false || !strings.Contains(str(m["message"]), "太多") {
		t.Fatalf("overloaded: %d %s", r.status, r.body)
	}
	s.SetTokenBehavior(TokenDown)
	if r := refreshWith(t, s, rt); r.status != 503 {
		t.Fatalf("down: %d %s", r.status, r.body)
	}

	s.SetTokenBehavior(TokenOmitRefresh)
	r = refreshWith(t, s, rt)
	tok := decode(t, r.body)
	if _, has := tok["refresh_token"]; r.status != 200 || has || tok["access_token"] == "" {
		t.Fatalf("omit refresh: %d %s", r.status, r.body)
	}
	// The old token is still the valid one.
	if r := refreshWith(t, s, rt); r.status != 200 {
		t.Fatalf("old token after omitted refresh: %d %s", r.status, r.body)
	}

	s.SetTokenBehavior(TokenNormal)
	if r := refreshWith(t, s, rt); r.status != 200 || decode(t, r.body)["refresh_token"] == nil {
		t.Fatalf("normal again: %d %s", r.status, r.body)
	}
	if s.ReusedRefreshTokens() != 0 || s.RefreshCount() != 3 {
		t.Fatalf("reused %d refreshes %d", s.ReusedRefreshTokens(), s.RefreshCount())
	}
}

func TestRevokeAndExpiry(t *testing.T) {
	s := newServer(t)
	a := s.AddAccount("", "13800000000")
	access, rt := s.IssueTokens(a, time.Hour)
	expired, _ := s.IssueTokens(a, -time.Minute)
	if info := userInfo(t, s, expired); info["success"] != false {
		t.Fatalf("expired token: %v", info)
	}

	now := time.Now()
	s.SetNow(func() time.Time { return now.Add(2 * time.Hour) })
	if info := userInfo(t, s, access); info["success"] != false {
		t.Fatalf("token past its ttl: %v", info)
	}
	s.SetNow(nil)
	if info := userInfo(t, s, access); info["success"] != true || obj(info["data"])["phone"] != "13800000000" {
		t.Fatalf("token with real clock: %v", info)
	}

	s.RevokeAccount(a)
	if r := refreshWith(t, s, rt); r.status != 400 || decode(t, r.body)["error"] != "invalid_grant" {
		t.Fatalf("revoked: %d %s", r.status, r.body)
	}
	if info := userInfo(t, s, access); info["success"] != false {
		t.Fatalf("revoked access token: %v", info)
	}
	// A new login works again.
	_, q := authorize(t, s, authorizeURL(s, "st"))
	if r := exchange(t, s, q.Get("code")); r.status != 200 {
		t.Fatalf("login after revoke: %d %s", r.status, r.body)
	}

	s.SetAccessTokenTTL(time.Hour)
	_, q = authorize(t, s, authorizeURL(s, "st"))
	if tok := decode(t, exchange(t, s, q.Get("code")).body); tok["expires_in"] != float64(3600) {
		t.Fatalf("ttl: %v", tok)
	}
}

// --- cookie platform ---

const browserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"

func platformReq(t *testing.T, s *Server, method, cookie, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.PlatformBase()+"/api/openapi/apikey", rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", browserUA)
	req.Header.Set("Cookie", cookie)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "https://platform.iflow.cn")
		req.Header.Set("Referer", "https://platform.iflow.cn/")
	}
	return req
}

func TestCookieFlow(t *testing.T) {
	s := newServer(t)
	acct := s.AddCookieAccount("bx-secret-1")
	oldKey := acct.APIKey()
	cookie := "foo=bar; BXAuth=bx-secret-1; other=1"

	r := do(t, platformReq(t, s, http.MethodGet, cookie, ""))
	m := decode(t, r.body)
	data, _ := m["data"].(map[string]any)
	if r.status != 200 || m["success"] != true || data["name"] != "proxycast-key-1" || data["hasExpired"] != false ||
		data["apiKeyMask"] != "sk-****"+oldKey[len(oldKey)-4:] || data["apiKey"] != nil {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	if _, err := time.ParseInLocation(ExpireTimeLayout, str(data["expireTime"]), time.FixedZone("", 8*3600)); err != nil {
		t.Fatalf("expireTime %v: %v", data["expireTime"], err)
	}
	if r := do(t, chatReq(t, s, oldKey, chatBody(false))); r.status != 200 || decode(t, r.body)["object"] != "chat.completion" {
		t.Fatalf("cookie key before regeneration: %s", r.body)
	}

	r = do(t, platformReq(t, s, http.MethodPost, cookie, `{"name":"proxycast-key-1"}`))
	m = decode(t, r.body)
	data, _ = m["data"].(map[string]any)
	newKey, _ := data["apiKey"].(string)
	if r.status != 200 || m["success"] != true || newKey == "" || newKey == oldKey || newKey != acct.APIKey() || s.KeyRegenerations() != 1 {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	exp, err := time.ParseInLocation(ExpireTimeLayout, str(data["expireTime"]), time.FixedZone("", 8*3600))
	if err != nil {
		t.Fatal(err)
	}
	if d := exp.Sub(time.Now().Add(7 * 24 * time.Hour)); d > 2*time.Minute || d < -2*time.Minute {
		t.Fatalf("expireTime %v is not now+7d in UTC+8", data["expireTime"])
	}

	if m := decode(t, do(t, chatReq(t, s, oldKey, chatBody(false))).body); m["status"] != "434" {
		t.Fatalf("old key still valid: %v", m)
	}
	if r := do(t, chatReq(t, s, newKey, chatBody(false))); r.status != 200 || decode(t, r.body)["object"] != "chat.completion" {
		t.Fatalf("new key: %s", r.body)
	}

	s.ExpireCookie("bx-secret-1")
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		m := decode(t, do(t, platformReq(t, s, method, cookie, `{"name":"proxycast-key-1"}`)).body)
		if m["success"] != false || m["message"] != "未登录" || m["data"] != nil {
			t.Fatalf("%s expired cookie: %v", method, m)
		}
	}
	for _, c := range []string{"BXAuth=unknown", "foo=bar", ""} {
		if m := decode(t, do(t, platformReq(t, s, http.MethodGet, c, "")).body); m["success"] != false || m["message"] != "未登录" {
			t.Fatalf("cookie %q: %v", c, m)
		}
	}
}

func TestCookieKeyExpiry(t *testing.T) {
	s := newServer(t)
	s.SetCookieKeyLifetime(time.Hour)
	acct := s.AddCookieAccount("bx")
	now := time.Now()
	s.SetNow(func() time.Time { return now.Add(2 * time.Hour) })
	m := decode(t, do(t, platformReq(t, s, http.MethodGet, "BXAuth=bx", "")).body)
	if obj(m["data"])["hasExpired"] != true {
		t.Fatalf("GET after expiry %v", m)
	}
	s.SetNow(nil)
	req := chatReq(t, s, acct.APIKey(), chatBody(false))
	s.SetNow(func() time.Time { return now.Add(2 * time.Hour) })
	// The request's timestamp is now two hours old by the fake's clock,
	// so sign it afresh against that clock.
	ts := strconv.FormatInt(now.Add(2*time.Hour).UnixMilli(), 10)
	req.Header.Set("x-iflow-timestamp", ts)
	req.Header.Set("x-iflow-signature", signFor(acct.APIKey(), testSession, ts))
	r := do(t, req)
	if m := decode(t, r.body); m["status"] != "434" || !strings.Contains(r.header.Get(ReasonHeader), "expired") {
		t.Fatalf("expired key: %s", r.body)
	}
}

func TestCookieChecks(t *testing.T) {
	s := newServer(t)
	s.AddCookieAccount("bx")
	tests := []struct {
		name   string
		method string
		body   string
		change func(*http.Request)
		want   string
	}{
		{"GET without browser UA", http.MethodGet, "", func(r *http.Request) { r.Header.Set("User-Agent", "Go-http-client/1.1") }, "Mozilla"},
		{"POST without browser UA", http.MethodPost, `{"name":"proxycast-key-1"}`, func(r *http.Request) { r.Header.Set("User-Agent", "curl/8") }, "Mozilla"},
		{"no origin", http.MethodPost, `{"name":"proxycast-key-1"}`, func(r *http.Request) { r.Header.Del("Origin") }, "Origin"},
		{"fake origin", http.MethodPost, `{"name":"proxycast-key-1"}`, func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1") }, "Origin"},
		{"referer without slash", http.MethodPost, `{"name":"proxycast-key-1"}`, func(r *http.Request) { r.Header.Set("Referer", "https://platform.iflow.cn") }, "Referer"},
		{"not json", http.MethodPost, `name=proxycast-key-1`, func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, "Content-Type"},
		{"no name", http.MethodPost, `{}`, func(*http.Request) {}, "name"},
		{"wrong name", http.MethodPost, `{"name":"other"}`, func(*http.Request) {}, "name"},
		{"delete", http.MethodDelete, "", func(*http.Request) {}, "GET or POST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := platformReq(t, s, tc.method, "BXAuth=bx", tc.body)
			tc.change(req)
			r := do(t, req)
			if r.status == 200 || !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("got %d %s", r.status, r.body)
			}
		})
	}
	if s.KeyRegenerations() != 0 {
		t.Fatal("a rejected POST regenerated the key")
	}
}

func TestPlatformGzip(t *testing.T) {
	s := newServer(t)
	s.AddCookieAccount("bx")
	req := platformReq(t, s, http.MethodGet, "BXAuth=bx", "")
	// Set explicitly, so net/http leaves the body encoded for us to see.
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	r := do(t, req)
	if r.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", r.header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if decode(t, plain)["success"] != true {
		t.Fatalf("gunzipped %s", plain)
	}

	req = platformReq(t, s, http.MethodGet, "BXAuth=bx", "")
	req.Header.Set("Accept-Encoding", "identity")
	if r := do(t, req); r.header.Get("Content-Encoding") != "" || decode(t, r.body)["success"] != true {
		t.Fatalf("identity: %v %s", r.header, r.body)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newServer(t)
	done := make(chan struct{})
	for i := range 8 {
		req := chatReq(t, s, testKey, chatBody(i%2 == 0))
		go func() {
			defer func() { done <- struct{}{} }()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			_ = s.ChatRequests()
		}()
	}
	for range 8 {
		<-done
	}
	if s.ChatCount() != 8 {
		t.Fatalf("count %d", s.ChatCount())
	}
}

// TestOAuthAuthorizeWithoutAccount: a login on a fake with no account says
// how to give it one, also to a quickstart user who started fakeiflow
// without -oauth-email.
func TestOAuthAuthorizeWithoutAccount(t *testing.T) {
	s := newServer(t)
	req, _ := http.NewRequest(http.MethodGet, authorizeURL(s, "st"), nil)
	r := do(t, req)
	if r.status != 400 || !strings.Contains(string(r.body), "AddAccount") || !strings.Contains(string(r.body), "-oauth-email") {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}
