package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer lets the test read the log while run writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var client = &http.Client{Timeout: 10 * time.Second}

// start runs the command on port 0 and returns its address and a stop
// function that waits for it to end.
func start(t *testing.T, args ...string) (addr string, logs *syncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), logs, func(a string) { addrc <- a })
	}()
	select {
	case addr = <-addrc:
	case err := <-errc:
		cancel()
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("fakeopenai did not start")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("run did not stop")
		}
	}
	t.Cleanup(stop)
	return addr, logs, stop
}

func post(t *testing.T, url string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRun(t *testing.T) {
	const key = "sk-demo-openai"
	addr, logs, stop := start(t, "-key", "sk-other,"+key, "-model", "demo-chat,demo-reasoner")

	status, body := post(t, "http://"+addr+"/v1/chat/completions", map[string]string{"Authorization": "Bearer " + key},
		`{"model":"demo-reasoner","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	if status != 200 || !strings.Contains(body, "data: [DONE]") || !strings.Contains(body, `"prompt_tokens":1`) {
		t.Fatalf("chat: %d %s", status, body)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"id":"demo-chat"`) || !strings.Contains(string(b), `"id":"demo-reasoner"`) {
		t.Fatalf("models: %d %s", resp.StatusCode, b)
	}

	if status, body := post(t, "http://"+addr+"/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-wrong-secret-999"},
		`{"model":"demo-chat","messages":[{"role":"user","content":"hi"}]}`); status != 401 {
		t.Fatalf("wrong key: %d %s", status, body)
	}

	stop()
	out := logs.String()
	for _, want := range []string{
		`POST /v1/chat/completions key=#`, `model="demo-reasoner" stream=true status=200 ok`,
		`GET /v1/models key=#`, `status=401 rejected: unknown API key`, "shutting down",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{key, "sk-other", "sk-wrong-secret-999"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log reveals key %q:\n%s", secret, out)
		}
	}
}

func TestAuthHeaderFlags(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		header map[string]string
		status int
	}{
		{"azure style", []string{"-auth-header", "api-key"}, map[string]string{"api-key": "k1"}, 200},
		{"azure style refuses bearer", []string{"-auth-header", "api-key"}, map[string]string{"Authorization": "Bearer k1"}, 401},
		{"own prefix", []string{"-auth-header", "X-Key", "-auth-prefix", "Token "}, map[string]string{"X-Key": "Token k1"}, 200},
		{"bearer by default", nil, map[string]string{"Authorization": "Bearer k1"}, 200},
		{"no prefix on authorization", []string{"-auth-prefix", ""}, map[string]string{"Authorization": "k1"}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, _, _ := start(t, append([]string{"-key", "k1"}, tc.args...)...)
			// No -model: the default models are served.
			status, body := post(t, "http://"+addr+"/v1/chat/completions", tc.header,
				`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
			if status != tc.status {
				t.Fatalf("got %d %s", status, body)
			}
		})
	}
}

func TestNoKeyWarns(t *testing.T) {
	_, logs, stop := start(t)
	stop()
	if !strings.Contains(logs.String(), "no -key given") {
		t.Fatalf("no warning:\n%s", logs.String())
	}
}

func TestBadArgs(t *testing.T) {
	var logs syncBuffer
	if err := run(context.Background(), []string{"extra"}, &logs, nil); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Fatalf("got %v", err)
	}
	if err := run(context.Background(), []string{"-no-such-flag"}, &logs, nil); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

func TestListFlag(t *testing.T) {
	var l listFlag
	_ = l.Set("a, b,,c")
	_ = l.Set("d")
	if got := l.String(); got != "a,b,c,d" {
		t.Fatalf("got %q", got)
	}
}
