package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
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

func TestRun(t *testing.T) {
	const key = "sk-demo-secret"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-listen", "127.0.0.1:0", "-api-key", "sk-other," + key}, &logs, func(a string) { addrc <- a })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatal(err)
	}

	const sid = "session-3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("iFlow-Cli:" + sid + ":" + ts))
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/chat/completions",
		strings.NewReader(`{"model":"qwen3-max","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("User-Agent", "iFlow-Cli")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("session-id", sid)
	req.Header.Set("x-iflow-timestamp", ts)
	req.Header.Set("x-iflow-signature", hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"echo: hi"`) {
		t.Fatalf("chat: %d %s", resp.StatusCode, body)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
	out := logs.String()
	if !strings.Contains(out, `model="qwen3-max"`) || !strings.Contains(out, "status=200") {
		t.Fatalf("no chat log line:\n%s", out)
	}
	if strings.Contains(out, key) {
		t.Fatalf("log reveals the key:\n%s", out)
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

// TestDemoAccounts: -oauth-email gives the login page an account to log
// in, and -cookie a platform account, as the quickstart needs.
func TestDemoAccounts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-listen", "127.0.0.1:0", "-oauth-email", "demo@example.com", "-cookie", "demo-cookie"}, &logs, func(a string) { addrc <- a })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("fakeiflow did not start")
	}
	noRedirect := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	q := url.Values{
		"loginMethod": {"phone"}, "type": {"phone"}, "redirect": {"http://localhost:11451/oauth2callback"},
		"state": {"st"}, "client_id": {iflowtest.ClientID},
	}
	resp, err := noRedirect.Get("http://" + addr + "/oauth?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != "st" {
		t.Fatalf("login page: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/openapi/apikey", nil)
	req.Header.Set("Cookie", "BXAuth=demo-cookie")
	req.Header.Set("User-Agent", "Mozilla/5.0")
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"success":true`) {
		t.Fatalf("platform: %d %s", resp.StatusCode, body)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
	if out := logs.String(); !strings.Contains(out, "logs in demo@example.com") || strings.Contains(out, "demo-cookie") {
		t.Fatalf("log does not name the login account, or shows the cookie:\n%s", out)
	}
}
