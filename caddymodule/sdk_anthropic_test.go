package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/anthropics/anthropic-sdk-go/v2/packages/ssestream"

	"github.com/proxycast/caddy-proxycast/anthropic/anthropictest"
	"github.com/proxycast/caddy-proxycast/caddymodule"
	"github.com/proxycast/caddy-proxycast/openai/openaitest"
)

// The official Anthropic Go SDK, a client nobody here wrote, against the
// gateway: a real Caddy in front of an openai instance ("deepseek", the
// openaitest fake), which serves one Claude model name by translation, and
// an anthropic instance ("claude", the anthropictest fake), which serves
// the other Claude names as they were sent.

// antDSKey and antClaudeKey are the upstream keys of the credentials.
const (
	antDSKey     = "sk-antsdk-ds-1"
	antClaudeKey = "sk-ant-antsdk-1"
)

// antClaudeModels are the models of the anthropic instance and its fake.
var antClaudeModels = []string{"claude-sonnet-4-5", "claude-opus-4-1"}

// antUpstream is one way through the gateway: the model a client asks for
// and the instance that serves it.
type antUpstream struct {
	name  string // the subtest's name
	model string // the client's model
	cred  string // the prefix of the instance's credentials
}

// antUpstreams are the two ways: claude-haiku-4-5 goes to DeepSeek as
// deepseek-chat, other Claude models to Anthropic.
var antUpstreams = []antUpstream{
	{name: "openai", model: "claude-haiku-4-5", cred: "antsdk-ds-"},
	{name: "anthropic", model: "claude-sonnet-4-5", cred: "antsdk-claude-"},
}

func (u antUpstream) translated() bool { return u.name == "openai" }

// antCredentials numbers the credentials of every gateway started here:
// a credential's rest outlives a reload (and a -count run), so each
// gateway gets credentials of its own.
var antCredentials atomic.Int64

// antGateway is one gateway: its upstreams, an SDK client pointed at it,
// and the bodies that client sent.
type antGateway struct {
	ds     *openaitest.Server
	claude *anthropictest.Server
	client anthropic.Client

	mu   sync.Mutex
	sent [][]byte // request bodies the SDK sent, oldest first
}

// startAntGateway starts fresh fakes and a Caddy that routes to them, and
// an SDK client for it.
func startAntGateway(t *testing.T) *antGateway {
	t.Helper()
	g := &antGateway{
		ds:     fakeOpenAI(t, []string{"deepseek-chat"}, antDSKey),
		claude: anthropictest.NewServer(),
	}
	t.Cleanup(g.claude.Close)
	g.claude.AddKey(antClaudeKey)
	g.claude.SetModels(antClaudeModels...)
	n := antCredentials.Add(1)
	startCaddy(t, fmt.Sprintf(`		api_keys %s
		provider deepseek {
			type openai
			api_base %s
			models deepseek-chat
		}
		provider claude {
			type anthropic
			api_base %s
			models %s
		}
		credential_pool {
			deepseek {
				credential antsdk-ds-%d {
					auth_type api_key
					api_key %s
				}
			}
			claude {
				credential antsdk-claude-%d {
					auth_type api_key
					api_key %s
				}
			}
		}
		routing {
			rule claude-haiku-4-5 deepseek model deepseek-chat
			rule deepseek-* deepseek
			rule claude-* claude
		}
`, clientKey, g.ds.APIBase(), g.claude.APIBase(), strings.Join(antClaudeModels, " "), n, antDSKey, n, antClaudeKey))
	g.client = g.newClient(option.WithAPIKey(clientKey))
	return g
}

// newClient is an SDK client of the gateway with the credential option
// cred: no retries, so that failures show (and tests stay fast), and a
// bounded http.Client.
func (g *antGateway) newClient(cred option.RequestOption) anthropic.Client {
	return anthropic.NewClient(
		// Nothing from the developer's environment (ANTHROPIC_BASE_URL,
		// ANTHROPIC_CUSTOM_HEADERS, profiles) changes what is sent.
		option.WithoutEnvironmentDefaults(),
		// The SDK's paths are "v1/messages", "v1/models"…: its base is
		// the host without /v1, as https://api.anthropic.com is.
		option.WithBaseURL(baseURL),
		cred,
		option.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
		option.WithMaxRetries(0),
		option.WithMiddleware(g.record),
	)
}

// record keeps the body of every request the SDK sends.
func (g *antGateway) record(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	g.mu.Lock()
	g.sent = append(g.sent, body)
	g.mu.Unlock()
	return next(req)
}

// lastSent is the body of the SDK's last request.
func (g *antGateway) lastSent(t *testing.T) []byte {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.sent) == 0 {
		t.Fatal("the SDK sent nothing")
	}
	return g.sent[len(g.sent)-1]
}

// lastChat is the last chat request the openai upstream saw.
func (g *antGateway) lastChat(t *testing.T) openaitest.Request {
	t.Helper()
	reqs := chatsOf(g.ds)
	if len(reqs) == 0 {
		t.Fatal("the openai upstream saw no chat request")
	}
	return reqs[len(reqs)-1]
}

// lastClaude is the last request to path that the anthropic upstream saw.
func (g *antGateway) lastClaude(t *testing.T, path string) anthropictest.Request {
	t.Helper()
	reqs := g.claude.RequestsTo(path)
	if len(reqs) == 0 {
		t.Fatalf("the anthropic upstream saw no request to %s", path)
	}
	return reqs[len(reqs)-1]
}

// upstreamCalls counts the requests that reached either upstream.
func (g *antGateway) upstreamCalls() int {
	return len(g.ds.Requests()) + len(g.claude.Requests())
}

// checkUpstream checks what the last Messages request became upstream:
// for the openai instance a chat request for deepseek-chat, for the
// anthropic one the SDK's body as it was sent; both with the instance's
// key, never the client's.
func (g *antGateway) checkUpstream(t *testing.T, up antUpstream) {
	t.Helper()
	if up.translated() {
		req := g.lastChat(t)
		if req.Key != antDSKey || req.Model != "deepseek-chat" {
			t.Errorf("the openai upstream saw key %q, model %q", req.Key, req.Model)
		}
		return
	}
	req := g.lastClaude(t, "/v1/messages")
	if req.Key != antClaudeKey || req.Outcome != "ok" {
		t.Errorf("the anthropic upstream saw key %q: %s", req.Key, req.Outcome)
	}
	if !sameJSON(t, string(req.RawBody), string(g.lastSent(t))) {
		t.Errorf("the anthropic upstream saw\n%s\nthe SDK sent\n%s", req.RawBody, g.lastSent(t))
	}
}

// antStream is what a Messages stream gave the SDK: every event, the
// message accumulated from them, and how many deltas of each type came.
type antStream struct {
	events []anthropic.MessageStreamEventUnion
	msg    anthropic.Message
	deltas map[string]int
}

// drainMessages reads a stream to its end, accumulating every event into
// a message as the SDK's documentation has it; an error of the stream, an
// event that Accumulate refuses, or an event order other than Anthropic's
// fails the test.
func drainMessages(t *testing.T, stream *ssestream.Stream[anthropic.MessageStreamEventUnion]) *antStream {
	t.Helper()
	defer stream.Close()
	s := &antStream{deltas: map[string]int{}}
	for stream.Next() {
		ev := stream.Current()
		s.events = append(s.events, ev)
		if err := s.msg.Accumulate(ev); err != nil {
			t.Fatalf("Accumulate refused event %d: %v: %s", len(s.events), err, ev.RawJSON())
		}
		if d, ok := ev.AsAny().(anthropic.ContentBlockDeltaEvent); ok {
			s.deltas[d.Delta.Type]++
			if d.Delta.AsAny() == nil {
				t.Errorf("a delta of unknown type: %s", ev.RawJSON())
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("the stream failed after %d events: %v", len(s.events), err)
	}
	var types []string
	for _, ev := range s.events {
		types = append(types, ev.Type)
	}
	if len(types) < 2 || types[0] != "message_start" || types[len(types)-1] != "message_stop" ||
		slices.Index(types, "message_delta") != len(types)-2 {
		t.Fatalf("event order: %v", types)
	}
	return s
}

// send sends params plainly or as a stream and returns the message: the
// answer, or the accumulation of the stream (then with the stream).
func (g *antGateway) send(t *testing.T, params anthropic.MessageNewParams, stream bool) (*anthropic.Message, *antStream) {
	t.Helper()
	if stream {
		s := drainMessages(t, g.client.Messages.NewStreaming(t.Context(), params))
		return &s.msg, s
	}
	msg, err := g.client.Messages.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	return msg, nil
}

// antBlock is what a content block says, without its generated id.
type antBlock struct {
	Type, Text, Thinking, Signature, Name, Input string
}

// antContent is what a message says, without its generated ids: what two
// answers to one request have in common.
type antContent struct {
	Model, Role, Type, StopReason string
	Blocks                        []antBlock
	Usage                         [4]int64 // input, output, cache read, cache creation
}

func contentOf(t *testing.T, m *anthropic.Message) antContent {
	t.Helper()
	c := antContent{
		Model: string(m.Model), Role: string(m.Role), Type: string(m.Type), StopReason: string(m.StopReason),
		Usage: [4]int64{m.Usage.InputTokens, m.Usage.OutputTokens, m.Usage.CacheReadInputTokens, m.Usage.CacheCreationInputTokens},
	}
	for _, b := range m.Content {
		ab := antBlock{Type: b.Type, Text: b.Text, Thinking: b.Thinking, Signature: b.Signature, Name: b.Name}
		if len(b.Input) > 0 {
			var v any
			if err := json.Unmarshal(b.Input, &v); err != nil {
				t.Fatalf("the %s block's input is not JSON: %v: %s", b.Type, err, b.Input)
			}
			canon, _ := json.Marshal(v)
			ab.Input = string(canon)
		}
		c.Blocks = append(c.Blocks, ab)
	}
	return c
}

// onlyBlock is the message's one block of type typ.
func onlyBlock(t *testing.T, m *anthropic.Message, typ string) anthropic.ContentBlockUnion {
	t.Helper()
	var found []anthropic.ContentBlockUnion
	for _, b := range m.Content {
		if b.Type == typ {
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s blocks in %s", len(found), typ, m.RawJSON())
	}
	return found[0]
}

// userText is a user turn of one text block.
func userText(text string) anthropic.MessageParam {
	return anthropic.NewUserMessage(anthropic.NewTextBlock(text))
}

// weatherToolParam is a tool taking a city, with an input schema.
func weatherToolParam() anthropic.ToolParam {
	return anthropic.ToolParam{
		Name:        "get_weather",
		Description: anthropic.String("the weather in a city"),
		InputSchema: anthropic.ToolInputSchemaParam{
			Properties: map[string]any{
				"city": map[string]any{"type": "string"},
				"unit": map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
			},
			Required: []string{"city"},
		},
	}
}

// wantAPIError checks that err is the SDK's *anthropic.Error with status
// and error type.
func wantAPIError(t *testing.T, err error, status int, typ string) *anthropic.Error {
	t.Helper()
	var e *anthropic.Error
	if !errors.As(err, &e) {
		t.Fatalf("want an *anthropic.Error %d %s, got %T: %v", status, typ, err, err)
	}
	if e.StatusCode != status || string(e.Type()) != typ {
		t.Fatalf("status %d type %q, want %d %q: %s", e.StatusCode, e.Type(), status, typ, e.RawJSON())
	}
	if e.Message == "" {
		t.Errorf("the SDK parsed no message from the error body: %s", e.RawJSON())
	}
	return e
}

// streamError is the error of a stream that yields no event.
func streamError(t *testing.T, stream *ssestream.Stream[anthropic.MessageStreamEventUnion]) error {
	t.Helper()
	defer stream.Close()
	if stream.Next() {
		t.Fatalf("an event from a stream that should have failed: %s", stream.Current().RawJSON())
	}
	return stream.Err()
}

// TestAnthropicSDK: the official Anthropic Go SDK talks to the gateway as
// to Anthropic, over an OpenAI-compatible upstream (translated) and over
// Anthropic's own API (passed through): messages plain and streamed (the
// SDK's accumulation of the stream equal to the plain answer), a tool-use
// round trip, thinking, count_tokens, errors as the SDK's *anthropic.Error
// before and during a stream, and the model list.
func TestAnthropicSDK(t *testing.T) {
	t.Run("message", func(t *testing.T) {
		g := startAntGateway(t)
		g.ds.SetUsage(openaitest.Usage{Prompt: 10, Completion: 5, Cached: 4})
		for _, up := range antUpstreams {
			t.Run(up.name, func(t *testing.T) {
				params := anthropic.MessageNewParams{
					Model:     anthropic.Model(up.model),
					MaxTokens: 1024,
					System:    []anthropic.TextBlockParam{{Text: "be brief"}},
					Messages:  []anthropic.MessageParam{userText("hello there")},
				}
				var raw *http.Response
				msg, err := g.client.Messages.New(t.Context(), params, option.WithResponseInto(&raw))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(msg.ID, "msg_") || msg.Type != "message" || msg.Role != "assistant" ||
					string(msg.Model) != up.model || msg.StopReason != anthropic.StopReasonEndTurn {
					t.Errorf("answer: %s", msg.RawJSON())
				}
				if len(msg.Content) != 1 || msg.Content[0].Type != "text" || msg.Content[0].AsText().Text != "echo: hello there" {
					t.Fatalf("content: %s", msg.RawJSON())
				}
				u := msg.Usage
				if up.translated() {
					// input_tokens leaves out what was read from the cache.
					if u.InputTokens != 6 || u.CacheReadInputTokens != 4 || u.OutputTokens != 5 {
						t.Errorf("usage: %s", u.RawJSON())
					}
				} else if want, _ := anthropictest.CountTokens(g.lastClaude(t, "/v1/messages").RawBody, false); u.InputTokens != int64(want) || u.OutputTokens <= 0 {
					t.Errorf("usage: %s, want %d input tokens", u.RawJSON(), want)
				}
				if got := raw.Header.Get("X-Proxycast-Credential"); !strings.HasPrefix(got, up.cred) {
					t.Errorf("served by %q, want a credential %s…", got, up.cred)
				}
				g.checkUpstream(t, up)

				s := drainMessages(t, g.client.Messages.NewStreaming(t.Context(), params))
				if got, want := contentOf(t, &s.msg), contentOf(t, msg); !reflect.DeepEqual(got, want) {
					t.Errorf("the stream accumulated\n%+v\nthe plain answer is\n%+v", got, want)
				}
				if !strings.HasPrefix(s.msg.ID, "msg_") {
					t.Errorf("accumulated id %q", s.msg.ID)
				}
				// The text came as text deltas, in pieces.
				var text strings.Builder
				for _, ev := range s.events {
					if d, ok := ev.AsAny().(anthropic.ContentBlockDeltaEvent); ok {
						td, isText := d.Delta.AsAny().(anthropic.TextDelta)
						if !isText || d.Index != 0 {
							t.Errorf("a delta other than text in block 0: %s", ev.RawJSON())
						}
						text.WriteString(td.Text)
					}
				}
				if text.String() != "echo: hello there" || s.deltas["text_delta"] < 2 {
					t.Errorf("%d text deltas made %q", s.deltas["text_delta"], text.String())
				}
				g.checkUpstream(t, up)
			})
		}
	})

	t.Run("tool use round trip", func(t *testing.T) {
		g := startAntGateway(t)
		const args = `{"city":"Paris","unit":"celsius"}`
		for _, up := range antUpstreams {
			for _, stream := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s stream %t", up.name, stream), func(t *testing.T) {
					params := anthropic.MessageNewParams{
						Model:     anthropic.Model(up.model),
						MaxTokens: 512,
						Tools:     []anthropic.ToolUnionParam{{OfTool: new(weatherToolParam())}},
						Messages:  []anthropic.MessageParam{userText("call get_weather " + args)},
					}
					msg, s := g.send(t, params, stream)
					if msg.StopReason != anthropic.StopReasonToolUse || string(msg.Model) != up.model {
						t.Errorf("answer: %s", msg.RawJSON())
					}
					tu := onlyBlock(t, msg, "tool_use").AsToolUse()
					if tu.Name != "get_weather" || tu.ID == "" || !sameJSON(t, string(tu.Input), args) {
						t.Fatalf("tool_use: id %q name %q input %s", tu.ID, tu.Name, tu.Input)
					}
					if s != nil && s.deltas["input_json_delta"] == 0 {
						t.Errorf("the input came in no input_json_delta: %v", s.deltas)
					}

					params.Messages = append(params.Messages, msg.ToParam(),
						anthropic.NewUserMessage(anthropic.NewToolResultBlock(tu.ID, "sunny, 21C", false)))
					final, _ := g.send(t, params, stream)
					if final.StopReason != anthropic.StopReasonEndTurn || onlyBlock(t, final, "text").Text != "tool said: sunny, 21C" {
						t.Fatalf("after the tool result: %s", final.RawJSON())
					}
					if up.translated() {
						checkToolRoundTrip(t, g.lastChat(t).RawBody, []string{tu.ID}, []string{"get_weather"})
					}
					g.checkUpstream(t, up)
				})
			}
		}
	})

	t.Run("thinking", func(t *testing.T) {
		g := startAntGateway(t)
		g.ds.SetReasoning("let me think about this")
		thought := map[string]string{"openai": "let me think about this", "anthropic": "thinking about: hello"}
		for _, up := range antUpstreams {
			t.Run(up.name, func(t *testing.T) {
				params := anthropic.MessageNewParams{
					Model:     anthropic.Model(up.model),
					MaxTokens: 16000,
					Thinking:  anthropic.ThinkingConfigParamOfEnabled(10000),
					Messages:  []anthropic.MessageParam{userText("hello")},
				}
				plain, _ := g.send(t, params, false)
				if len(plain.Content) != 2 || plain.Content[0].Type != "thinking" || plain.Content[0].Thinking != thought[up.name] ||
					plain.Content[1].Type != "text" || plain.Content[1].Text != "echo: hello" {
					t.Fatalf("thinking answer: %s", plain.RawJSON())
				}
				if !up.translated() && plain.Content[0].Signature == "" {
					t.Errorf("a thinking block without its signature: %s", plain.RawJSON())
				}
				streamed, s := g.send(t, params, true)
				if got, want := contentOf(t, streamed), contentOf(t, plain); !reflect.DeepEqual(got.Blocks, want.Blocks) {
					t.Errorf("the stream accumulated\n%+v\nthe plain answer is\n%+v", got.Blocks, want.Blocks)
				}
				if s.deltas["thinking_delta"] == 0 || s.deltas["text_delta"] == 0 || (!up.translated() && s.deltas["signature_delta"] != 1) {
					t.Errorf("deltas: %v", s.deltas)
				}

				// The next turn carries the thinking back, as the SDK's
				// ToParam makes it.
				params.Messages = append(params.Messages, streamed.ToParam(), userText("and now"))
				next, _ := g.send(t, params, false)
				if onlyBlock(t, next, "text").Text != "echo: and now" {
					t.Errorf("the next turn: %s", next.RawJSON())
				}
				g.checkUpstream(t, up)
			})
		}
	})

	t.Run("count tokens", func(t *testing.T) {
		g := startAntGateway(t)
		for _, up := range antUpstreams {
			t.Run(up.name, func(t *testing.T) {
				params := anthropic.MessageCountTokensParams{
					Model:    anthropic.Model(up.model),
					System:   anthropic.MessageCountTokensParamsSystemUnion{OfString: anthropic.String("You are a careful assistant.")},
					Messages: []anthropic.MessageParam{userText("hello there, what is the weather in Paris?")},
					Tools:    []anthropic.MessageCountTokensToolUnionParam{{OfTool: new(weatherToolParam())}},
				}
				var raw *http.Response
				n, err := g.client.Messages.CountTokens(t.Context(), params, option.WithResponseInto(&raw))
				if err != nil {
					t.Fatal(err)
				}
				estimate := raw.Header.Get(caddymodule.EstimateHeader)
				if up.translated() {
					if n.InputTokens <= 0 || estimate != "estimate" {
						t.Errorf("%d tokens, %s %q", n.InputTokens, caddymodule.EstimateHeader, estimate)
					}
					if len(g.ds.Requests()) != 0 {
						t.Errorf("count_tokens reached the openai upstream")
					}
					return
				}
				req := g.lastClaude(t, "/v1/messages/count_tokens")
				if estimate != "" || req.Key != antClaudeKey || req.Outcome != "ok" || !sameJSON(t, string(req.RawBody), string(g.lastSent(t))) {
					t.Errorf("%s %q; the upstream saw key %q (%s) and\n%s\nthe SDK sent\n%s",
						caddymodule.EstimateHeader, estimate, req.Key, req.Outcome, req.RawBody, g.lastSent(t))
				}
				if want, ok := anthropictest.CountTokens(req.RawBody, true); !ok || n.InputTokens != int64(want) {
					t.Errorf("%d tokens, the upstream counts %d (ok %t)", n.InputTokens, want, ok)
				}
			})
		}
	})

	t.Run("error mid-stream", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			up     antUpstream
			script func(*antGateway)
			typ    string // the error's type
			says   string // what its message mentions
		}{
			{"openai broken", antUpstreams[0], func(g *antGateway) { g.ds.SetBehavior(antDSKey, openaitest.StreamBreak) }, "api_error", "broke"},
			{"anthropic broken", antUpstreams[1], func(g *antGateway) { g.claude.SetBehavior(antClaudeKey, anthropictest.StreamBreak) }, "api_error", "broke"},
			{"anthropic overloaded", antUpstreams[1], func(g *antGateway) { g.claude.SetBehavior(antClaudeKey, anthropictest.StreamOverloaded) }, "overloaded_error", "Overloaded"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				g := startAntGateway(t)
				tc.script(g)
				stream := g.client.Messages.NewStreaming(t.Context(), anthropic.MessageNewParams{
					Model:     anthropic.Model(tc.up.model),
					MaxTokens: 256,
					Messages:  []anthropic.MessageParam{userText("this stream will break")},
				})
				defer stream.Close()
				var acc anthropic.Message
				n := 0
				for stream.Next() {
					n++
					if err := acc.Accumulate(stream.Current()); err != nil {
						t.Fatalf("Accumulate refused %s: %v", stream.Current().RawJSON(), err)
					}
				}
				err := stream.Err()
				if err == nil {
					t.Fatalf("a broken stream ended without an error after %d events", n)
				}
				e := wantAPIError(t, err, http.StatusOK, tc.typ)
				if !strings.Contains(e.Message, tc.says) || !strings.Contains(err.Error(), tc.says) {
					t.Errorf("the error (message %q) does not mention %q: %v", e.Message, tc.says, err)
				}
				// What came before the failure was kept.
				if !strings.HasPrefix(acc.ID, "msg_") || len(acc.Content) != 1 || acc.Content[0].Text == "" ||
					!strings.HasPrefix("echo: this stream will break", acc.Content[0].Text) {
					t.Errorf("before the error (%d events): %s", n, acc.RawJSON())
				}
			})
		}
	})

	t.Run("errors before the stream", func(t *testing.T) {
		hello := func(model string) anthropic.MessageNewParams {
			return anthropic.MessageNewParams{Model: anthropic.Model(model), MaxTokens: 64, Messages: []anthropic.MessageParam{userText("hi")}}
		}
		// both checks a request plainly and as a stream.
		both := func(t *testing.T, c anthropic.Client, params anthropic.MessageNewParams, status int, typ string) {
			t.Helper()
			_, err := c.Messages.New(t.Context(), params)
			wantAPIError(t, err, status, typ)
			wantAPIError(t, streamError(t, c.Messages.NewStreaming(t.Context(), params)), status, typ)
		}

		t.Run("client key", func(t *testing.T) {
			g := startAntGateway(t)
			for _, cred := range []option.RequestOption{option.WithAPIKey("wrong-key"), option.WithAuthToken("wrong-key")} {
				for _, up := range antUpstreams {
					both(t, g.newClient(cred), hello(up.model), http.StatusUnauthorized, "authentication_error")
				}
			}
			if n := g.upstreamCalls(); n != 0 {
				t.Errorf("requests with a wrong key reached the upstreams %d times", n)
			}
			// The right key as a bearer token (ANTHROPIC_AUTH_TOKEN) serves.
			bearer := g.newClient(option.WithAuthToken(clientKey))
			for _, up := range antUpstreams {
				if msg, err := bearer.Messages.New(t.Context(), hello(up.model)); err != nil || onlyBlock(t, msg, "text").Text != "echo: hi" {
					t.Errorf("%s with a bearer token: %v", up.name, err)
				}
			}
		})

		t.Run("model not found", func(t *testing.T) {
			g := startAntGateway(t)
			both(t, g.client, hello("gpt-4o"), http.StatusNotFound, "not_found_error")
			if n := g.upstreamCalls(); n != 0 {
				t.Errorf("a model that routes nowhere reached the upstreams %d times", n)
			}
			// A model routed to the anthropic instance that its upstream
			// does not have: the upstream's 404.
			_, err := g.client.Messages.New(t.Context(), hello("claude-nosuch-1"))
			wantAPIError(t, err, http.StatusNotFound, "not_found_error")
			if reqs := g.claude.RequestsTo("/v1/messages"); len(reqs) != 1 || reqs[0].Status != http.StatusNotFound {
				t.Errorf("the anthropic upstream saw %+v", reqs)
			}
		})

		for _, tc := range []struct {
			name   string
			ds     openaitest.Behavior
			claude anthropictest.Behavior
			status int
			typ    string
		}{
			{"rate limited", openaitest.RateLimited, anthropictest.RateLimited, http.StatusTooManyRequests, "rate_limit_error"},
			{"overloaded", openaitest.Overloaded, anthropictest.Overloaded, 529, "overloaded_error"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				g := startAntGateway(t)
				g.ds.SetBehavior(antDSKey, tc.ds)
				g.claude.SetBehavior(antClaudeKey, tc.claude)
				for _, up := range antUpstreams {
					_, err := g.client.Messages.New(t.Context(), hello(up.model))
					e := wantAPIError(t, err, tc.status, tc.typ)
					if e.Response == nil || strings.Contains(e.RawJSON(), antDSKey) || strings.Contains(e.RawJSON(), antClaudeKey) {
						t.Errorf("%s: %s", up.name, e.RawJSON())
					}
					if tc.status == http.StatusTooManyRequests && e.Response.Header.Get("Retry-After") == "" {
						t.Errorf("%s: 429 without Retry-After", up.name)
					}
				}
				if n := g.upstreamCalls(); n != 2 {
					t.Errorf("the upstreams were asked %d times, want once each", n)
				}
				// A stream gets the same error before its first event.
				for _, up := range antUpstreams {
					wantAPIError(t, streamError(t, g.client.Messages.NewStreaming(t.Context(), hello(up.model))), tc.status, tc.typ)
				}
				// A rate-limited credential rests: it is not asked again.
				if n := g.upstreamCalls(); tc.status == http.StatusTooManyRequests && n != 2 {
					t.Errorf("resting credentials were asked again: %d requests upstream", n)
				}
			})
		}
	})

	t.Run("beta", func(t *testing.T) {
		// Claude Code speaks through the SDK's beta service, which sends
		// anthropic-beta: the anthropic instance passes it on (betas pass,
		// the default); an OpenAI upstream never sees it.
		g := startAntGateway(t)
		const beta = anthropic.AnthropicBetaInterleavedThinking2025_05_14
		for _, up := range antUpstreams {
			t.Run(up.name, func(t *testing.T) {
				params := anthropic.BetaMessageNewParams{
					Model:     anthropic.Model(up.model),
					MaxTokens: 256,
					Messages:  []anthropic.BetaMessageParam{anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock("hello beta"))},
					Betas:     []anthropic.AnthropicBeta{beta},
				}
				msg, err := g.client.Beta.Messages.New(t.Context(), params)
				if err != nil {
					t.Fatal(err)
				}
				stream := g.client.Beta.Messages.NewStreaming(t.Context(), params)
				defer stream.Close()
				var acc anthropic.BetaMessage
				for stream.Next() {
					if err := acc.Accumulate(stream.Current()); err != nil {
						t.Fatalf("Accumulate refused %s: %v", stream.Current().RawJSON(), err)
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				for _, m := range []*anthropic.BetaMessage{msg, &acc} {
					if len(m.Content) != 1 || m.Content[0].Text != "echo: hello beta" || string(m.Model) != up.model || m.StopReason != "end_turn" {
						t.Errorf("answer: %+v", m.Content)
					}
				}
				if up.translated() {
					if h := g.lastChat(t).Header.Get("Anthropic-Beta"); h != "" {
						t.Errorf("the openai upstream got anthropic-beta %q", h)
					}
					return
				}
				reqs := g.claude.RequestsTo("/v1/messages")
				if len(reqs) != 2 {
					t.Fatalf("the anthropic upstream saw %d requests, want 2", len(reqs))
				}
				for _, req := range reqs {
					if !slices.Equal(req.Betas, []string{string(beta)}) {
						t.Errorf("the anthropic upstream got betas %q", req.Betas)
					}
				}
			})
		}
	})

	t.Run("models", func(t *testing.T) {
		g := startAntGateway(t)
		page, err := g.client.Models.List(t.Context(), anthropic.ModelListParams{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
			if m.Type != "model" || m.DisplayName == "" || m.CreatedAt.IsZero() {
				t.Errorf("%s: %s", m.ID, m.RawJSON())
			}
		}
		slices.Sort(ids)
		// What the rules route: the openai instance's model by its own name
		// and by the Claude name routed to it, and the anthropic instance's.
		want := []string{"claude-haiku-4-5", "claude-opus-4-1", "claude-sonnet-4-5", "deepseek-chat"}
		if !slices.Equal(ids, want) || page.HasMore {
			t.Errorf("listed %v (has_more %t), want %v", ids, page.HasMore, want)
		}
		// The auto-pager sees the same single page, and ends.
		var auto []string
		for iter := g.client.Models.ListAutoPaging(t.Context(), anthropic.ModelListParams{}); iter.Next(); {
			auto = append(auto, iter.Current().ID)
		}
		if len(auto) != len(page.Data) {
			t.Errorf("ListAutoPaging gave %v, List %v", auto, ids)
		}
		for _, id := range want {
			if m, err := g.client.Models.Get(t.Context(), id, anthropic.ModelGetParams{}); err != nil || m.ID != id || m.Type != "model" {
				t.Errorf("get %s: %v", id, err)
			}
		}
		_, err = g.client.Models.Get(t.Context(), "gpt-4o", anthropic.ModelGetParams{})
		wantAPIError(t, err, http.StatusNotFound, "not_found_error")
	})
}
