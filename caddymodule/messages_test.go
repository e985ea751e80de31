package caddymodule_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/openai/openaitest"
)

// sseEvent is one server-sent event of an Anthropic stream.
type sseEvent struct {
	name string
	data map[string]any
	raw  string
}

// messagesRequest is a POST to the Messages API as Claude Code sends it.
func messagesRequest(t *testing.T, path, body string, header ...string) *http.Response {
	t.Helper()
	return post(t, path, body, append([]string{"X-Api-Key", clientKey, "Anthropic-Version", "2023-06-01"}, header...)...)
}

// messages sends a Messages request and reads the whole answer.
func messages(t *testing.T, body string, header ...string) (*http.Response, string) {
	t.Helper()
	resp := messagesRequest(t, "/v1/messages?beta=true", body, header...)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(raw)
}

// readSSE splits an Anthropic stream into its events, checking that
// every event's name is its data's type.
func readSSE(t *testing.T, body string) []sseEvent {
	t.Helper()
	var out []sseEvent
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var name string
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "event: "); ok {
			name = n
			continue
		}
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var data map[string]any
		if err := json.Unmarshal([]byte(d), &data); err != nil {
			t.Fatalf("event %q: data is not JSON: %s", name, d)
		}
		if data["type"] != name {
			t.Fatalf("event %q carries data of type %v", name, data["type"])
		}
		out = append(out, sseEvent{name: name, data: data, raw: d})
		name = ""
	}
	return out
}

// names lists the events' names, pings left out.
func names(evs []sseEvent) []string {
	var out []string
	for _, e := range evs {
		if e.name != "ping" {
			out = append(out, e.name)
		}
	}
	return out
}

// anthropicError reads an Anthropic error object.
func anthropicError(t *testing.T, body string) (typ, message string) {
	t.Helper()
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" {
		t.Fatalf("not an Anthropic error object: %q", body)
	}
	return e.Error.Type, e.Error.Message
}

// claudeOverDeepSeek routes Claude's model names to an openai instance.
func claudeOverDeepSeek(up *openaitest.Server, extra string) string {
	return fmt.Sprintf(`		api_keys %s
		provider deepseek {
			type openai
			api_base %s
			models deepseek-chat
		}
		credential_pool {
			deepseek {
				credential ds-1 {
					auth_type api_key
					api_key sk-ds-1
				}
			}
		}
		routing {
			rule claude-* deepseek model deepseek-chat
			rule deepseek-* deepseek
		}
%s`, clientKey, up.APIBase(), extra)
}

const claudeHello = `{"model":"claude-sonnet-4-5","max_tokens":1024,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hello there"}]%s}`

// TestMessagesOverOpenAI: Claude Code's Messages API served by an
// OpenAI-compatible instance: the request is translated (routed model,
// system, max_tokens; nothing the upstream would refuse), and the answer
// and the stream come back in Anthropic's form and event order, with the
// model the client asked for and the usage counted.
func TestMessagesOverOpenAI(t *testing.T) {
	up := fakeOpenAI(t, []string{"deepseek-chat"}, "sk-ds-1")
	up.RefuseUnknownFields(true)
	up.SetUsage(openaitest.Usage{Prompt: 10, Completion: 5, Cached: 4})
	startCaddy(t, claudeOverDeepSeek(up, ""))

	resp, body := messages(t, fmt.Sprintf(claudeHello, ""))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var msg struct {
		ID, Type, Role, Model, StopReason string
		Content                           []struct{ Type, Text string }
		Usage                             map[string]float64
	}
	if err := json.Unmarshal([]byte(body), &msg); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(msg.ID, "msg_") || msg.Type != "message" || msg.Role != "assistant" || msg.Model != "claude-sonnet-4-5" ||
		len(msg.Content) != 1 || msg.Content[0].Type != "text" || msg.Content[0].Text != "echo: hello there" {
		t.Errorf("answer: %s", body)
	}
	if msg.Usage["input_tokens"] != 6 || msg.Usage["cache_read_input_tokens"] != 4 || msg.Usage["output_tokens"] != 5 {
		t.Errorf("usage: %v", msg.Usage)
	}
	sent := chatsOf(up)[0]
	var chatBody struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
		Messages  []struct {
			Role    string `json:"role"`
			Content any    `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(sent.RawBody, &chatBody); err != nil {
		t.Fatal(err)
	}
	if chatBody.Model != "deepseek-chat" || chatBody.MaxTokens != 1024 || len(chatBody.Messages) != 2 ||
		chatBody.Messages[0].Role != "system" || !strings.Contains(fmt.Sprint(chatBody.Messages[0].Content), "be brief") ||
		strings.Contains(string(sent.RawBody), "cache_control") {
		t.Errorf("the upstream got %s", sent.RawBody)
	}

	resp, body = messages(t, fmt.Sprintf(claudeHello, `,"stream":true`))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	evs := readSSE(t, body)
	got := names(evs)
	if len(got) < 6 || got[0] != "message_start" || got[1] != "content_block_start" || got[len(got)-3] != "content_block_stop" ||
		got[len(got)-2] != "message_delta" || got[len(got)-1] != "message_stop" {
		t.Fatalf("event order: %v", got)
	}
	var text strings.Builder
	for _, e := range evs {
		if e.name == "content_block_delta" {
			d := e.data["delta"].(map[string]any)
			if d["type"] != "text_delta" || e.data["index"] != 0.0 {
				t.Errorf("delta: %s", e.raw)
			}
			text.WriteString(d["text"].(string))
		}
	}
	if text.String() != "echo: hello there" {
		t.Errorf("streamed text %q", text.String())
	}
	delta := evs[len(evs)-2].data
	if delta["delta"].(map[string]any)["stop_reason"] != "end_turn" || delta["usage"].(map[string]any)["output_tokens"] != 5.0 {
		t.Errorf("message_delta: %s", evs[len(evs)-2].raw)
	}
	if m := evs[0].data["message"].(map[string]any); m["model"] != "claude-sonnet-4-5" {
		t.Errorf("message_start: %s", evs[0].raw)
	}

	tokens, _ := credentialJSON(t, "deepseek", "ds-1")["tokens"].(map[string]any)
	if tokens["prompt"] != 20.0 || tokens["completion"] != 10.0 || tokens["cached"] != 8.0 {
		t.Errorf("tokens counted: %v", tokens)
	}
}

// TestMessagesToolsAndThinking: a tool-use round trip and thinking,
// through an OpenAI-compatible upstream: tools and tool_choice go as
// functions, the call comes back as a tool_use block (streamed as
// input_json_delta fragments that join into its input), the tool_result
// goes back as a tool message, and reasoning comes back as a thinking
// block before the text.
func TestMessagesToolsAndThinking(t *testing.T) {
	up := fakeOpenAI(t, []string{"deepseek-chat"}, "sk-ds-1")
	up.RefuseUnknownFields(true)
	up.SetToolCallIndex(openaitest.ToolIndexOneBased)
	startCaddy(t, claudeOverDeepSeek(up, ""))

	tools := `"tools":[{"name":"get_weather","description":"weather of a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]`
	ask := `{"model":"claude-opus-4-1","max_tokens":512,"stream":%t,` + tools + `,"messages":[{"role":"user","content":"call get_weather {\"city\":\"Paris\"}"}]}`
	for _, stream := range []bool{false, true} {
		resp, body := messages(t, fmt.Sprintf(ask, stream))
		if resp.StatusCode != 200 {
			t.Fatalf("stream %t: %d %s", stream, resp.StatusCode, body)
		}
		var input, id string
		if !stream {
			var msg struct {
				StopReason string `json:"stop_reason"`
				Content    []struct {
					Type, ID, Name string
					Input          json.RawMessage
				}
			}
			if err := json.Unmarshal([]byte(body), &msg); err != nil || len(msg.Content) != 1 || msg.StopReason != "tool_use" {
				t.Fatalf("answer: %s", body)
			}
			c := msg.Content[0]
			if c.Type != "tool_use" || c.Name != "get_weather" {
				t.Fatalf("answer: %s", body)
			}
			input, id = string(c.Input), c.ID
		} else {
			evs := readSSE(t, body)
			var parts strings.Builder
			for _, e := range evs {
				switch e.name {
				case "content_block_start":
					cb := e.data["content_block"].(map[string]any)
					if cb["type"] != "tool_use" || cb["name"] != "get_weather" || e.data["index"] != 0.0 {
						t.Fatalf("block: %s", e.raw)
					}
					id = cb["id"].(string)
				case "content_block_delta":
					d := e.data["delta"].(map[string]any)
					if d["type"] != "input_json_delta" {
						t.Fatalf("delta: %s", e.raw)
					}
					parts.WriteString(d["partial_json"].(string))
				case "message_delta":
					if e.data["delta"].(map[string]any)["stop_reason"] != "tool_use" {
						t.Errorf("message_delta: %s", e.raw)
					}
				}
			}
			input = parts.String()
		}
		var in map[string]any
		if err := json.Unmarshal([]byte(input), &in); err != nil || in["city"] != "Paris" || id == "" {
			t.Fatalf("stream %t: tool input %q (id %q)", stream, input, id)
		}
		// The result goes back as Claude Code sends it.
		turn := fmt.Sprintf(`{"model":"claude-opus-4-1","max_tokens":512,"stream":%t,%s,"messages":[`+
			`{"role":"user","content":"call get_weather {\"city\":\"Paris\"}"},`+
			`{"role":"assistant","content":[{"type":"tool_use","id":%q,"name":"get_weather","input":{"city":"Paris"}}]},`+
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":%q,"content":"sunny, 21C"}]}]}`, stream, tools, id, id)
		resp, body = messages(t, turn)
		if stream {
			body = streamedText(t, body)
		}
		if resp.StatusCode != 200 || !strings.Contains(body, "tool said: sunny, 21C") {
			t.Fatalf("stream %t: the tool result round trip: %d %s", stream, resp.StatusCode, body)
		}
	}

	up.SetReasoning("let me think about this")
	think := `{"model":"claude-opus-4-1","max_tokens":16000,"thinking":{"type":"enabled","budget_tokens":10000},"stream":%t,"messages":[{"role":"user","content":"hello"}]}`
	resp, body := messages(t, fmt.Sprintf(think, false))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var msg struct {
		Content []struct{ Type, Thinking, Text string }
	}
	if err := json.Unmarshal([]byte(body), &msg); err != nil || len(msg.Content) != 2 || msg.Content[0].Type != "thinking" ||
		msg.Content[0].Thinking != "let me think about this" || msg.Content[1].Text != "echo: hello" {
		t.Errorf("thinking answer: %s", body)
	}
	last := chatsOf(up)[len(chatsOf(up))-1]
	if effort := fmt.Sprint(jsonField(t, last.RawBody, "reasoning_effort")); effort != "medium" {
		t.Errorf("a 10000-token budget was sent as reasoning_effort %q: %s", effort, last.RawBody)
	}
	resp, body = messages(t, fmt.Sprintf(think, true))
	evs := readSSE(t, body)
	var blocks []string
	for _, e := range evs {
		if e.name == "content_block_start" {
			blocks = append(blocks, e.data["content_block"].(map[string]any)["type"].(string))
		}
	}
	if resp.StatusCode != 200 || fmt.Sprint(blocks) != "[thinking text]" {
		t.Errorf("streamed blocks %v: %s", blocks, body)
	}
}

// streamedText joins the text deltas of an Anthropic stream.
func streamedText(t *testing.T, body string) string {
	t.Helper()
	var text strings.Builder
	for _, e := range readSSE(t, body) {
		if e.name == "content_block_delta" {
			if d := e.data["delta"].(map[string]any); d["type"] == "text_delta" {
				text.WriteString(d["text"].(string))
			}
		}
	}
	return text.String()
}

func jsonField(t *testing.T, raw []byte, key string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}

// TestMessagesErrors: every refusal a Messages client meets is an
// Anthropic error object with Anthropic's status: a wrong key, an
// unrouted model, a bad body, a rate limit (with retry-after), an
// overloaded upstream (529), a wrong method; a failure after the stream
// began is an error event.
func TestMessagesErrors(t *testing.T) {
	up := fakeOpenAI(t, []string{"deepseek-chat"}, "sk-ds-1")
	startCaddy(t, claudeOverDeepSeek(up, ""))

	check := func(what string, resp *http.Response, body string, status int, typ string) {
		t.Helper()
		if resp.StatusCode != status {
			t.Errorf("%s: status %d, want %d: %s", what, resp.StatusCode, status, body)
			return
		}
		if got, _ := anthropicError(t, body); got != typ {
			t.Errorf("%s: error type %q, want %q: %s", what, got, typ, body)
		}
	}
	resp, body := messages(t, fmt.Sprintf(claudeHello, ""), "X-Api-Key", "wrong")
	check("wrong key", resp, body, 401, "authentication_error")
	resp, body = messages(t, `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	check("unrouted model", resp, body, 404, "not_found_error")
	resp, body = messages(t, `{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}`)
	check("no max_tokens", resp, body, 400, "invalid_request_error")
	if _, msg := anthropicError(t, body); !strings.Contains(msg, "max_tokens") {
		t.Errorf("the refusal does not name max_tokens: %s", body)
	}
	resp, body = messages(t, `{"model":"claude-x","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"stream":"yes"}`)
	check("bad stream", resp, body, 400, "invalid_request_error")

	req, _ := http.NewRequest(http.MethodGet, baseURL+"/v1/messages", nil)
	req.Header.Set("X-Api-Key", clientKey)
	r, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(r.Body)
	r.Body.Close()
	check("GET", r, string(raw), 405, "invalid_request_error")

	up.SetBehavior("sk-ds-1", openaitest.Overloaded)
	resp, body = messages(t, fmt.Sprintf(claudeHello, ""))
	check("overloaded", resp, body, 529, "overloaded_error")

	up.SetBehavior("sk-ds-1", openaitest.StreamBreak)
	waitFor(t, "the credential to be back", func() bool {
		return credentialJSON(t, "deepseek", "ds-1")["state"] == "active"
	})
	resp, body = messages(t, fmt.Sprintf(claudeHello, `,"stream":true`))
	evs := readSSE(t, body)
	if resp.StatusCode != 200 || len(evs) == 0 || evs[0].name != "message_start" || evs[len(evs)-1].name != "error" {
		t.Fatalf("a stream that broke: %d %v", resp.StatusCode, names(evs))
	}
	if e := evs[len(evs)-1].data["error"].(map[string]any); e["type"] != "api_error" || !strings.Contains(e["message"].(string), "broke") {
		t.Errorf("error event: %s", evs[len(evs)-1].raw)
	}

	up.SetBehavior("sk-ds-1", openaitest.RateLimited)
	up.SetRetryAfter(40 * time.Second)
	resp, body = messages(t, fmt.Sprintf(claudeHello, ""))
	check("rate limited", resp, body, 429, "rate_limit_error")
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Errorf("429 without retry-after")
	}
}

// TestMessagesPing: while the upstream is silent, a Messages stream gets
// ping events, so that Claude Code and the proxies on the way keep it.
func TestMessagesPing(t *testing.T) {
	up := fakeOpenAI(t, []string{"deepseek-chat"}, "sk-ds-1")
	up.SetBehavior("sk-ds-1", openaitest.SlowStream)
	startCaddy(t, claudeOverDeepSeek(up, "\t\tping_interval 10ms\n"))

	resp := messagesRequest(t, "/v1/messages", fmt.Sprintf(claudeHello, `,"stream":true`))
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var seen []string
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			seen = append(seen, name)
			// A ping between two deltas: the upstream's 50 ms silences.
			if name == "ping" && len(seen) > 2 && seen[len(seen)-2] == "content_block_delta" {
				return
			}
			if len(seen) > 200 {
				break
			}
		}
	}
	t.Fatalf("no ping while the upstream was silent: %v", seen)
}

// TestMessagesModels: an Anthropic client (anthropic-version) gets the
// model list in Anthropic's form; others keep OpenAI's.
func TestMessagesModels(t *testing.T) {
	up := fakeOpenAI(t, []string{"deepseek-chat"}, "sk-ds-1")
	startCaddy(t, claudeOverDeepSeek(up, ""))
	get := func(path string, anthropicClient bool) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, baseURL+path, nil)
		req.Header.Set("X-Api-Key", clientKey)
		if anthropicClient {
			req.Header.Set("Anthropic-Version", "2023-06-01")
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	code, body := get("/v1/models", true)
	var list struct {
		Data []struct {
			Type, ID, DisplayName string
			CreatedAt             string `json:"created_at"`
		}
		HasMore bool    `json:"has_more"`
		FirstID *string `json:"first_id"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Data) == 0 || list.Data[0].Type != "model" ||
		list.Data[0].CreatedAt == "" || list.FirstID == nil || list.HasMore {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := get("/v1/models", false); code != 200 || !strings.Contains(body, `"object":"list"`) {
		t.Errorf("OpenAI's list: %d %s", code, body)
	}
	if code, body := get("/v1/models/deepseek-chat", true); code != 200 || !strings.Contains(body, `"type":"model"`) {
		t.Errorf("one model: %d %s", code, body)
	}
	if code, body := get("/v1/models/nope", true); code != 404 {
		t.Errorf("unknown model: %d %s", code, body)
	} else if typ, _ := anthropicError(t, body); typ != "not_found_error" {
		t.Errorf("unknown model: %s", body)
	}
}

// TestCountTokensEstimate: count_tokens for a provider that cannot count
// answers from the local estimate, says so, and counts more for more.
func TestCountTokensEstimate(t *testing.T) {
	up := fakeOpenAI(t, []string{"deepseek-chat"}, "sk-ds-1")
	startCaddy(t, claudeOverDeepSeek(up, ""))
	count := func(body string) int {
		t.Helper()
		resp := messagesRequest(t, "/v1/messages/count_tokens?beta=true", body)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var n struct {
			InputTokens int `json:"input_tokens"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(raw, &n) != nil || resp.Header.Get("X-Proxycast-Token-Count") != "estimate" {
			t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("X-Proxycast-Token-Count"), raw)
		}
		return n.InputTokens
	}
	short := count(`{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hello there"}]}`)
	long := count(`{"model":"claude-sonnet-4-5","system":"You are a careful assistant who answers in full sentences.","messages":[{"role":"user","content":"hello there, please tell me everything you know about the history of the city of Paris"}],"tools":[{"name":"get_weather","description":"weather of a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}]}`)
	if short <= 0 || long <= short*3 {
		t.Errorf("estimates: %d for a short request, %d for a long one", short, long)
	}
	if len(chatsOf(up)) != 0 {
		t.Errorf("count_tokens reached the upstream")
	}
	resp := messagesRequest(t, "/v1/messages/count_tokens", `{"model":"gpt-4o","messages":[]}`)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("unrouted model: %d %s", resp.StatusCode, raw)
	}
}

// TestMessagesOverIFlow: Claude Code's requests reach iFlow signed as
// iFlow wants them, its thinking budget as the model's own thinking
// switch, and the answer comes back in Anthropic's form.
func TestMessagesOverIFlow(t *testing.T) {
	srv := fakeIFlow(t, "sk-one")
	startCaddy(t, poolConfig(srv, "\t\trouting {\n\t\t\trule claude-* iflow model glm-4.6\n\t\t}\n", "sk-one"))

	body := `{"model":"claude-sonnet-4-5","max_tokens":20000,"thinking":{"type":"enabled","budget_tokens":10000},"stream":%t,"messages":[{"role":"user","content":"hello there"}]}`
	resp, answer := messages(t, fmt.Sprintf(body, false))
	if resp.StatusCode != 200 || !strings.Contains(answer, `"type":"message"`) || !strings.Contains(answer, "echo: hello there") {
		t.Fatalf("%d %s", resp.StatusCode, answer)
	}
	sent := srv.ChatRequests()[0]
	var chatBody map[string]any
	if err := json.Unmarshal(sent.RawBody, &chatBody); err != nil {
		t.Fatal(err)
	}
	kwargs, _ := chatBody["chat_template_kwargs"].(map[string]any)
	if chatBody["model"] != "glm-4.6" || kwargs["enable_thinking"] != true || chatBody["reasoning_effort"] != nil {
		t.Errorf("iFlow got %s", sent.RawBody)
	}
	resp, answer = messages(t, fmt.Sprintf(body, true))
	if got := names(readSSE(t, answer)); resp.StatusCode != 200 || got[0] != "message_start" || got[len(got)-1] != "message_stop" ||
		streamedText(t, answer) != "echo: hello there" {
		t.Errorf("%d %v", resp.StatusCode, got)
	}
}
