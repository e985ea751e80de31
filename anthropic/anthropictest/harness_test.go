package anthropictest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

const testKey = "sk-ant-api03-test-key-0123456789"

func newServer(t *testing.T) *Server {
	t.Helper()
	s := NewServer()
	t.Cleanup(s.Close)
	s.AddKey(testKey)
	return s
}

// headers are the headers of a well-formed call; tests change them.
func headers() http.Header {
	return http.Header{
		"X-Api-Key":         {testKey},
		"Anthropic-Version": {"2023-06-01"},
		"Content-Type":      {"application/json"},
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, s *Server, method, path string, h http.Header, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func post(t *testing.T, s *Server, body string) reply {
	t.Helper()
	return do(t, s, http.MethodPost, "/v1/messages", headers(), body)
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	return m
}

// apiErr checks Anthropic's error shape and returns its error member.
func apiErr(t *testing.T, r reply) (typ, msg string) {
	t.Helper()
	m := decode(t, r.body)
	e, _ := m["error"].(map[string]any)
	if m["type"] != "error" || e == nil {
		t.Fatalf("not an error object: %s", r.body)
	}
	if id, _ := m["request_id"].(string); !strings.HasPrefix(id, "req_") || r.header.Get("Request-Id") != id {
		t.Fatalf("request_id %v, header %q", m["request_id"], r.header.Get("Request-Id"))
	}
	typ, _ = e["type"].(string)
	msg, _ = e["message"].(string)
	return typ, msg
}

// sse is one frame of a stream.
type sse struct {
	name string
	data map[string]any
}

// parseSSE reads frames, checking that each has an event line whose name
// is its data's type.
func parseSSE(t *testing.T, b []byte) []sse {
	t.Helper()
	var out []sse
	for _, frame := range strings.Split(strings.TrimRight(string(b), "\n"), "\n\n") {
		if frame == "" {
			continue
		}
		out = append(out, parseFrame(t, frame))
	}
	return out
}

func parseFrame(t *testing.T, frame string) sse {
	t.Helper()
	var ev sse
	for _, line := range strings.Split(frame, "\n") {
		switch {
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = decode(t, []byte(strings.TrimPrefix(line, "data: ")))
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
	if ev.name == "" || ev.data == nil || ev.data["type"] != ev.name {
		t.Fatalf("frame %q: event name and data type differ", frame)
	}
	return ev
}

// readFrame reads one frame off a stream being received.
func readFrame(t *testing.T, br *bufio.Reader) sse {
	t.Helper()
	var buf bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v (read %q)", err, buf.String())
		}
		if line == "\n" {
			return parseFrame(t, strings.TrimSuffix(buf.String(), "\n"))
		}
		buf.WriteString(line)
	}
}

func names(evs []sse) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.name
	}
	return out
}

func asObj(v any) map[string]any { m, _ := v.(map[string]any); return m }

func num(v any) int { f, _ := v.(float64); return int(f) }

const plainBody = `{"model":"claude-sonnet-4-5-20250929","max_tokens":1024,"messages":[{"role":"user","content":"hello there"}]}`

func streamBody(body string) string {
	return strings.Replace(body, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)
}

var weatherTool = `{"name":"get_weather","description":"Weather of a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}`

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
