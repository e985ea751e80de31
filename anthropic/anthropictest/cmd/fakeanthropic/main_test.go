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
		t.Fatal("fakeanthropic did not start")
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

func call(t *testing.T, method, url, key, beta, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	if beta != "" {
		req.Header.Set("Anthropic-Beta", beta)
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
	const key = "sk-ant-demo"
	addr, logs, stop := start(t, "-key", "sk-ant-other,"+key, "-model", "claude-demo,claude-demo-thinker", "-beta", "prompt-caching-2024-07-31")
	base := "http://" + addr

	status, body := call(t, "POST", base+"/v1/messages", key, "prompt-caching-2024-07-31",
		`{"model":"claude-demo-thinker","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if status != 200 || !strings.Contains(body, "event: message_stop") || !strings.Contains(body, `"type":"text_delta"`) {
		t.Fatalf("messages: %d %s", status, body)
	}
	if status, body := call(t, "POST", base+"/v1/messages", key, "other-beta-2025-01-01",
		`{"model":"claude-demo","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`); status != 400 || !strings.Contains(body, "other-beta-2025-01-01") {
		t.Fatalf("unknown beta: %d %s", status, body)
	}
	if status, body := call(t, "POST", base+"/v1/messages/count_tokens", key, "",
		`{"model":"claude-demo","messages":[{"role":"user","content":"two words"}]}`); status != 200 || body != `{"input_tokens":5}` {
		t.Fatalf("count: %d %s", status, body)
	}
	if status, body := call(t, "GET", base+"/v1/models", key, "", ""); status != 200 || !strings.Contains(body, `"id":"claude-demo-thinker"`) {
		t.Fatalf("models: %d %s", status, body)
	}
	if status, _ := call(t, "POST", base+"/v1/messages", "sk-ant-wrong-secret-999", "", `{}`); status != 401 {
		t.Fatalf("wrong key: %d", status)
	}

	stop()
	out := logs.String()
	for _, want := range []string{
		`POST /v1/messages key=#`, `model="claude-demo-thinker" stream=true betas="prompt-caching-2024-07-31" status=200 ok`,
		`status=400 rejected: unknown beta(s) other-beta-2025-01-01`, `GET /v1/models key=#`,
		`status=401 rejected: unknown x-api-key`, "betas prompt-caching-2024-07-31", "shutting down",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{key, "sk-ant-other", "sk-ant-wrong-secret-999"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log reveals key %q:\n%s", secret, out)
		}
	}
}

func TestDefaults(t *testing.T) {
	addr, logs, stop := start(t, "-key", "k1")
	// No -model: the default models; no -beta: any beta.
	status, body := call(t, "POST", "http://"+addr+"/v1/messages", "k1", "anything-2099-01-01",
		`{"model":"claude-haiku-4-5-20251001","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	if status != 200 {
		t.Fatalf("got %d %s", status, body)
	}
	stop()
	if !strings.Contains(logs.String(), "any beta") {
		t.Fatalf("log:\n%s", logs.String())
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
