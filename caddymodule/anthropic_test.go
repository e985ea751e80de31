package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/anthropic/anthropictest"
)

// fakeAnthropic is a strict fake of Anthropic's API serving models, with
// the given keys.
func fakeAnthropic(t *testing.T, models []string, keys ...string) *anthropictest.Server {
	t.Helper()
	srv := anthropictest.NewServer()
	t.Cleanup(srv.Close)
	srv.SetModels(models...)
	for _, k := range keys {
		srv.AddKey(k)
	}
	return srv
}

// claudeConfig has three anthropic instances on one fake: claude passes
// the client's betas, nobeta drops them, somebeta passes one.
func claudeConfig(up *anthropictest.Server, extra string) string {
	inst := ""
	for _, p := range []struct{ name, betas string }{{"claude", ""}, {"nobeta", "betas drop"}, {"somebeta", "betas prompt-caching-2024-07-31"}} {
		inst += fmt.Sprintf(`		provider %s {
			type anthropic
			api_base %s
			models claude-sonnet-4-5 claude-haiku-4-5
			%s
		}
		credential_pool {
			%s {
				credential %s-1 {
					auth_type api_key
					api_key sk-ant-1
				}
			}
		}
`, p.name, up.APIBase(), p.betas, p.name, p.name)
	}
	return fmt.Sprintf(`		api_keys %s
%s		routing {
			rule sonnet claude model claude-sonnet-4-5
			rule nobeta-* nobeta model claude-sonnet-4-5
			rule somebeta-* somebeta model claude-sonnet-4-5
			rule claude-* claude
		}
%s`, clientKey, inst, extra)
}

func messagesTo(up *anthropictest.Server) []anthropictest.Request {
	return up.RequestsTo("/v1/messages")
}

// TestAnthropicPassthrough: a Messages request routed to an anthropic
// instance reaches Anthropic as it was sent (the model aside), with the
// credential's key as x-api-key, anthropic-version, and the client's
// betas as the instance says; the answer and the stream come back as
// Anthropic sent them, and count_tokens is Anthropic's count.
func TestAnthropicPassthrough(t *testing.T) {
	up := fakeAnthropic(t, []string{"claude-sonnet-4-5", "claude-haiku-4-5"}, "sk-ant-1")
	startCaddy(t, claudeConfig(up, ""))

	body := `{"model":"claude-sonnet-4-5","max_tokens":1024,"metadata":{"user_id":"u-1"},` +
		`"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],` +
		`"messages":[{"role":"user","content":[{"type":"text","text":"hello there"}]}]}`
	betas := "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"
	resp, answer := messages(t, body, "Anthropic-Beta", betas)
	if resp.StatusCode != 200 || !strings.Contains(answer, `"echo: hello there"`) || resp.Header.Get("X-Proxycast-Credential") != "claude-1" {
		t.Fatalf("%d %s", resp.StatusCode, answer)
	}
	sent := messagesTo(up)[0]
	if string(sent.RawBody) != body || sent.Key != "sk-ant-1" || sent.Version != "2023-06-01" ||
		strings.Join(sent.Betas, ",") != betas {
		t.Errorf("Anthropic got %s with key %q, version %q, betas %v", sent.RawBody, sent.Key, sent.Version, sent.Betas)
	}
	if strings.Contains(sent.Header.Get("Authorization"), clientKey) || sent.Header.Get("X-Api-Key") == clientKey {
		t.Errorf("the client's key went upstream")
	}

	// A routed name: only the model changes.
	resp, answer = messages(t, strings.Replace(body, `"claude-sonnet-4-5"`, `"sonnet"`, 1))
	if sent := messagesTo(up)[1]; resp.StatusCode != 200 || string(sent.RawBody) != body {
		t.Errorf("%d %s; Anthropic got %s", resp.StatusCode, answer, sent.RawBody)
	}
	for _, tt := range []struct {
		model string
		want  []string
	}{{"nobeta-x", nil}, {"somebeta-x", []string{"prompt-caching-2024-07-31"}}} {
		resp, answer := messages(t, strings.Replace(body, `"claude-sonnet-4-5"`, `"`+tt.model+`"`, 1), "Anthropic-Beta", betas)
		reqs := messagesTo(up)
		if got := reqs[len(reqs)-1].Betas; resp.StatusCode != 200 || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %d %s; betas sent %v, want %v", tt.model, resp.StatusCode, answer, got, tt.want)
		}
	}

	// The stream passes through event by event, pings included.
	stream := strings.Replace(body, `"max_tokens":1024,`, `"max_tokens":1024,"stream":true,`, 1)
	resp, answer = messages(t, stream)
	evs := readSSE(t, answer)
	if resp.StatusCode != 200 || len(evs) < 6 || evs[0].name != "message_start" || evs[1].name != "ping" || evs[len(evs)-1].name != "message_stop" {
		t.Fatalf("%d %v", resp.StatusCode, names(evs))
	}
	if string(messagesTo(up)[4].RawBody) != stream {
		t.Errorf("the stream request was changed: %s", messagesTo(up)[4].RawBody)
	}

	// count_tokens is Anthropic's.
	count := `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hello there, how are you"}]}`
	cresp := messagesRequest(t, "/v1/messages/count_tokens", count)
	raw, _ := io.ReadAll(cresp.Body)
	cresp.Body.Close()
	want, _ := anthropictest.CountTokens([]byte(count), true)
	var n struct {
		InputTokens int `json:"input_tokens"`
	}
	if cresp.StatusCode != 200 || json.Unmarshal(raw, &n) != nil || n.InputTokens != want || cresp.Header.Get("X-Proxycast-Token-Count") != "" {
		t.Errorf("count_tokens: %d %q %s, want %d from Anthropic", cresp.StatusCode, cresp.Header.Get("X-Proxycast-Token-Count"), raw, want)
	}
}

// TestChatOverAnthropic: an OpenAI chat client routed to an anthropic
// instance: the request is translated into Messages (system at the top,
// max_tokens the instance's default), the answer and the stream come back
// as chat completions, and usage is counted.
func TestChatOverAnthropic(t *testing.T) {
	up := fakeAnthropic(t, []string{"claude-sonnet-4-5", "claude-haiku-4-5"}, "sk-ant-1")
	startCaddy(t, claudeConfig(up, ""))

	ask := `{"model":"claude-sonnet-4-5","stream":%t%s,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there"}]}`
	resp, body := chat(t, fmt.Sprintf(ask, false, ""))
	var c struct {
		Object  string
		Model   string
		Choices []struct {
			Message      struct{ Role, Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage map[string]any
	}
	if err := json.Unmarshal([]byte(body), &c); resp.StatusCode != 200 || err != nil || c.Object != "chat.completion" ||
		len(c.Choices) != 1 || c.Choices[0].Message.Content != "echo: hello there" || c.Choices[0].FinishReason != "stop" ||
		c.Model != "claude-sonnet-4-5" || c.Usage["prompt_tokens"] == nil {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var sent struct {
		System    any `json:"system"`
		MaxTokens int `json:"max_tokens"`
		Messages  []struct {
			Role string `json:"role"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(messagesTo(up)[0].RawBody, &sent); err != nil || sent.MaxTokens != 8192 ||
		!strings.Contains(fmt.Sprint(sent.System), "be brief") || len(sent.Messages) != 1 || sent.Messages[0].Role != "user" {
		t.Errorf("Anthropic got %s", messagesTo(up)[0].RawBody)
	}

	resp, body = chat(t, fmt.Sprintf(ask, true, `,"stream_options":{"include_usage":true}`))
	evs := events(body)
	if resp.StatusCode != 200 || len(evs) < 3 || evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var text strings.Builder
	var usage bool
	for _, e := range evs[:len(evs)-1] {
		var chunk struct {
			Object  string
			Choices []struct {
				Delta struct{ Content string }
			}
			Usage map[string]any
		}
		if err := json.Unmarshal([]byte(e), &chunk); err != nil || chunk.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %s", e)
		}
		for _, ch := range chunk.Choices {
			text.WriteString(ch.Delta.Content)
		}
		usage = usage || chunk.Usage != nil
	}
	if text.String() != "echo: hello there" || !usage {
		t.Errorf("streamed %q, usage %t: %s", text.String(), usage, body)
	}
	tokens, _ := credentialJSON(t, "claude", "claude-1")["tokens"].(map[string]any)
	if tokens["prompt"] == 0.0 || tokens["completion"] == 0.0 {
		t.Errorf("tokens counted: %v", tokens)
	}
}

// TestAnthropicErrors: Anthropic's failures reach both kinds of client
// in their own shapes: a rate limit as 429 with retry-after, an overload
// as 529 to a Messages client and 503 to a chat client, an error in the
// stream as the stream's error event.
func TestAnthropicErrors(t *testing.T) {
	up := fakeAnthropic(t, []string{"claude-sonnet-4-5", "claude-haiku-4-5"}, "sk-ant-1")
	startCaddy(t, claudeConfig(up, ""))
	hello := fmt.Sprintf(claudeHello, "")

	up.SetBehavior("sk-ant-1", anthropictest.Overloaded)
	resp, body := messages(t, hello)
	if typ, _ := anthropicError(t, body); resp.StatusCode != 529 || typ != "overloaded_error" {
		t.Errorf("overloaded, Messages: %d %s", resp.StatusCode, body)
	}
	resp, body = chat(t, chatFor("claude-sonnet-4-5", false))
	if resp.StatusCode != 503 || decodeError(t, body).Error.Type == "" {
		t.Errorf("overloaded, chat: %d %s", resp.StatusCode, body)
	}

	up.SetBehavior("sk-ant-1", anthropictest.StreamOverloaded)
	resp, body = messages(t, fmt.Sprintf(claudeHello, `,"stream":true`))
	evs := readSSE(t, body)
	if resp.StatusCode != 200 || evs[0].name != "message_start" || evs[len(evs)-1].name != "error" {
		t.Errorf("an error in the stream: %d %v", resp.StatusCode, names(evs))
	}

	up.SetBehavior("sk-ant-1", anthropictest.RateLimited)
	resp, body = messages(t, hello)
	if typ, _ := anthropicError(t, body); resp.StatusCode != 429 || typ != "rate_limit_error" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("rate limited: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if state := credentialJSON(t, "claude", "claude-1")["state"]; state != "cooling" {
		t.Errorf("a rate-limited credential is %v", state)
	}
}
