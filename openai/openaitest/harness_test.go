package openaitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The harness of this package's tests: requests, replies, and an SSE
// reader written apart from the fake's writer.

const (
	testKey   = "sk-test-abcdefgh-0001"
	testModel = "demo-chat"
)

func newServer(t *testing.T) *Server {
	t.Helper()
	s := NewServer()
	t.Cleanup(s.Close)
	s.AddKey(testKey)
	s.SetModels(testModel, "demo-reasoner")
	return s
}

// client gives every request a bound, so that no test can hang.
var client = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// rawBody turns a string or a value into a request body.
func rawBody(t *testing.T, body any) []byte {
	t.Helper()
	if s, ok := body.(string); ok {
		return []byte(s)
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chatReq builds a correct chat request for key.
func chatReq(t *testing.T, s *Server, key string, body any) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.APIBase()+"/chat/completions", bytes.NewReader(rawBody(t, body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	return req
}

func modelsReq(t *testing.T, s *Server, key string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.APIBase()+"/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	return req
}

func userMsg(text string) map[string]any { return map[string]any{"role": "user", "content": text} }

func chatBody(stream bool) map[string]any {
	return map[string]any{
		"model":  testModel,
		"stream": stream,
		"messages": []any{
			map[string]any{"role": "system", "content": "be brief"},
			userMsg("hello there"),
		},
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
	err    error // from reading the body
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b, err}
}

// ok fails the test unless r is a fully read 200.
func (r reply) ok(t *testing.T) reply {
	t.Helper()
	if r.status != http.StatusOK || r.err != nil {
		t.Fatalf("status %d, read error %v, reason %q: %s", r.status, r.err, r.header.Get(ReasonHeader), r.body)
	}
	return r
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	return m
}

// obj, str, num and choice dig into decoded JSON without panicking, so
// that a wrong reply fails its own test instead of the whole run.
func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

func choice(m map[string]any) map[string]any {
	cs, _ := m["choices"].([]any)
	if len(cs) == 0 {
		return nil
	}
	return obj(cs[0])
}

// apiErr checks that b is OpenAI's error object, with all four members,
// and returns it.
func apiErr(t *testing.T, b []byte) map[string]any {
	t.Helper()
	e := obj(decode(t, b)["error"])
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e[k]; !ok {
			t.Fatalf("error object without %q: %s", k, b)
		}
	}
	if str(e["message"]) == "" {
		t.Fatalf("error without message: %s", b)
	}
	return e
}

// parseSSE reads a stream as the SSE spec says: lines end in \n, an empty
// line ends an event, "data:" lines (one optional space after the colon)
// carry the payload, ":" lines are comments. Any other field fails the
// test: the fake sends none. It returns the payloads and whether the
// stream ended on an event boundary.
func parseSSE(t *testing.T, b []byte) (events []string, complete bool) {
	t.Helper()
	var data []string
	lines := strings.Split(string(b), "\n")
	// A stream that ends with "\n" splits into a last empty element.
	for i, line := range lines {
		last := i == len(lines)-1
		switch {
		case last:
			return events, line == "" && len(data) == 0
		case line == "":
			if data != nil {
				events = append(events, strings.Join(data, "\n"))
				data = nil
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "data:"):
			v := strings.TrimPrefix(line, "data:")
			data = append(data, strings.TrimPrefix(v, " "))
		default:
			t.Fatalf("stream line that is no data field: %q", line)
		}
	}
	return events, false
}

// chunks decodes every payload before [DONE], checking the object type;
// it fails unless [DONE] ends the stream (when done is true).
func chunks(t *testing.T, events []string, done bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, e := range events {
		if e == "[DONE]" {
			if i != len(events)-1 {
				t.Fatalf("[DONE] is not last: %q", events)
			}
			return out
		}
		m := decode(t, []byte(e))
		if m["object"] != "chat.completion.chunk" || !strings.HasPrefix(str(m["id"]), "chatcmpl-") {
			t.Fatalf("not a chunk: %s", e)
		}
		out = append(out, m)
	}
	if done {
		t.Fatalf("stream without [DONE]: %q", events)
	}
	return out
}

// joinText joins the content deltas and returns the finish reasons seen
// and how many deltas named the role.
func joinText(chs []map[string]any) (text string, finishes []string, roles int) {
	for _, m := range chs {
		ch := choice(m)
		if ch == nil {
			continue
		}
		d := obj(ch["delta"])
		text += str(d["content"])
		if d["role"] == "assistant" {
			roles++
		}
		if f, ok := ch["finish_reason"].(string); ok {
			finishes = append(finishes, f)
		}
	}
	return text, finishes, roles
}

// joinedCall is a tool call put together from stream deltas.
type joinedCall struct {
	id, name, args string
}

// joinToolCalls puts streamed tool calls together the way a careful
// client must: by index, counted from base, or, when the upstream sends no
// index, by a new id starting a new call.
func joinToolCalls(t *testing.T, chs []map[string]any, mode ToolIndexMode) []joinedCall {
	t.Helper()
	var calls []joinedCall
	for _, m := range chs {
		ch := choice(m)
		tcs, _ := obj(ch["delta"])["tool_calls"].([]any)
		for _, raw := range tcs {
			tc := obj(raw)
			iv, hasIndex := tc["index"]
			cur := -1
			switch mode {
			case ToolIndexMissing:
				if hasIndex {
					t.Fatalf("index sent in mode %v: %v", mode, tc)
				}
				if tc["id"] != nil {
					calls = append(calls, joinedCall{})
				}
				cur = len(calls) - 1
			default:
				base := 0
				if mode == ToolIndexOneBased {
					base = 1
				}
				if !hasIndex {
					t.Fatalf("no index in mode %v: %v", mode, tc)
				}
				cur = num(iv) - base
				if cur == len(calls) {
					calls = append(calls, joinedCall{})
				}
			}
			if cur < 0 || cur >= len(calls) {
				t.Fatalf("delta for no known call: %v", tc)
			}
			fn := obj(tc["function"])
			if id := str(tc["id"]); id != "" {
				if calls[cur].id != "" {
					t.Fatalf("second id for call %d: %v", cur, tc)
				}
				if tc["type"] != "function" || fn["arguments"] != "" || str(fn["name"]) == "" {
					t.Fatalf("first delta of a call must carry id, type, name and empty arguments: %v", tc)
				}
				calls[cur].id = id
			}
			calls[cur].name += str(fn["name"])
			calls[cur].args += str(fn["arguments"])
		}
	}
	return calls
}

// weatherTools is a tools array with two functions.
func weatherTools() []any {
	fn := func(name string) any {
		return map[string]any{"type": "function", "function": map[string]any{
			"name":        name,
			"description": "tool " + name,
			"parameters": map[string]any{
				"type":       "object",
				"properties": map[string]any{"city": map[string]any{"type": "string"}},
			},
		}}
	}
	return []any{fn("get_weather"), fn("get_time")}
}

func toolBody(stream bool, text string) map[string]any {
	return map[string]any{
		"model":    testModel,
		"stream":   stream,
		"tools":    weatherTools(),
		"messages": []any{userMsg(text)},
	}
}
