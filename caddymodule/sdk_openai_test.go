package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
	"github.com/proxycast/caddy-proxycast/openai/openaitest"
)

// The official OpenAI Go SDK, a client nobody here wrote, against the
// gateway: a real Caddy in front of an openai instance ("up", the
// openaitest fake) and iFlow (the iflowtest fake).

// sdkUpKey and sdkIFlowKey are the upstream keys of the credentials.
const (
	sdkUpKey    = "sk-sdk-up-1"
	sdkIFlowKey = "sk-sdk-if-1"
)

// sdkUpModels are the models of the openai instance.
var sdkUpModels = []string{"gpt-4o-mini", "gpt-4o"}

// sdkRouting sends gpt-* to the openai instance, oa/<model> to it as
// <model>, and everything else to iFlow.
const sdkRouting = `		routing {
			rule gpt-* up
			rule oa/* up model $1
			default_provider iflow
		}`

// sdkCredentials numbers the credentials of every gateway started here:
// a credential's rest outlives a reload (and a -count run), so each
// subtest gets credentials of its own.
var sdkCredentials atomic.Int64

// sdkGateway is one subtest's gateway: its upstreams, the SDK client
// pointed at it, and the bodies that client sent.
type sdkGateway struct {
	up     *openaitest.Server
	ifl    *iflowtest.Server
	client openai.Client

	mu   sync.Mutex
	sent [][]byte // request bodies the SDK sent, oldest first
}

// startSDKGateway starts fresh fakes and a Caddy with routing, and an SDK
// client for it: no retries, so that failures show, and a bounded
// http.Client.
func startSDKGateway(t *testing.T, routing string) *sdkGateway {
	t.Helper()
	hermeticSDKEnv(t)
	g := &sdkGateway{
		up:  fakeOpenAI(t, sdkUpModels, sdkUpKey),
		ifl: fakeIFlow(t, sdkIFlowKey),
	}
	n := sdkCredentials.Add(1)
	startCaddy(t, fmt.Sprintf(`		api_keys %s
		provider up {
			type openai
			api_base %s
			models %s
		}
		provider iflow {
			api_base %s
		}
		credential_pool {
			up {
				credential sdk-up-%d {
					auth_type api_key
					api_key %s
				}
			}
			iflow {
				credential sdk-if-%d {
					auth_type api_key
					api_key %s
				}
			}
		}
%s`, clientKey, g.up.APIBase(), strings.Join(sdkUpModels, " "), g.ifl.APIBase(), n, sdkUpKey, n, sdkIFlowKey, routing))
	g.client = openai.NewClient(
		option.WithBaseURL(baseURL+"/v1"),
		option.WithAPIKey(clientKey),
		option.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
		option.WithMaxRetries(0),
		option.WithMiddleware(g.record),
	)
	return g
}

// hermeticSDKEnv hides the OPENAI_* variables the SDK reads, so that a
// developer's environment cannot change what the client sends.
func hermeticSDKEnv(t *testing.T) {
	t.Helper()
	for _, name := range []string{"OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_WEBHOOK_SECRET", "OPENAI_CUSTOM_HEADERS"} {
		if v, ok := os.LookupEnv(name); ok {
			os.Unsetenv(name)
			t.Cleanup(func() { os.Setenv(name, v) })
		}
	}
}

// record keeps the body of every request the SDK sends.
func (g *sdkGateway) record(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
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
func (g *sdkGateway) lastSent(t *testing.T) []byte {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.sent) == 0 {
		t.Fatal("the SDK sent nothing")
	}
	return g.sent[len(g.sent)-1]
}

// lastChat is the last chat request the openai upstream saw.
func (g *sdkGateway) lastChat(t *testing.T) openaitest.Request {
	t.Helper()
	reqs := chatsOf(g.up)
	if len(reqs) == 0 {
		t.Fatal("the openai upstream saw no chat request")
	}
	return reqs[len(reqs)-1]
}

// jsonObject decodes a JSON object.
func jsonObject(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, raw)
	}
	return m
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return reflect.DeepEqual(va, vb)
}

// sdkStream is what a stream gave the SDK: every chunk, the accumulation
// of them, and the tool calls the accumulator saw finish, in order.
type sdkStream struct {
	chunks   []openai.ChatCompletionChunk
	acc      openai.ChatCompletionAccumulator
	finished []openai.FinishedChatCompletionToolCall
	content  string // the content JustFinishedContent reported
}

// drain reads a stream to its end through the SDK's accumulator; any
// error of the stream, or a chunk the accumulator refuses, fails the
// test.
func drain(t *testing.T, stream *ssestream.Stream[openai.ChatCompletionChunk]) *sdkStream {
	t.Helper()
	defer stream.Close()
	out := &sdkStream{}
	for stream.Next() {
		chunk := stream.Current()
		out.chunks = append(out.chunks, chunk)
		if !out.acc.AddChunk(chunk) {
			t.Fatalf("the accumulator refused chunk %d: %s", len(out.chunks), chunk.RawJSON())
		}
		if tc, ok := out.acc.JustFinishedToolCall(); ok {
			out.finished = append(out.finished, tc)
		}
		if c, ok := out.acc.JustFinishedContent(); ok {
			out.content = c
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("the stream failed after %d chunks: %v", len(out.chunks), err)
	}
	if len(out.chunks) == 0 {
		t.Fatal("the stream had no chunk")
	}
	return out
}

// emptyChoiceChunks counts the chunks without choices (the usage chunk).
func (s *sdkStream) emptyChoiceChunks() int {
	n := 0
	for _, c := range s.chunks {
		if len(c.Choices) == 0 {
			n++
		}
	}
	return n
}

// contentChunks counts the chunks that carry a piece of content.
func (s *sdkStream) contentChunks() int {
	n := 0
	for _, c := range s.chunks {
		if len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			n++
		}
	}
	return n
}

// weatherTool is a function tool taking a city.
func weatherTool(name string) openai.ChatCompletionToolUnionParam {
	return openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name:        name,
		Description: openai.String("the weather in a city"),
		Parameters: openai.FunctionParameters{
			"type":       "object",
			"properties": map[string]any{"city": map[string]any{"type": "string"}},
		},
	})
}

// wantSDKError checks that err is the SDK's *openai.Error with status.
func wantSDKError(t *testing.T, err error, status int) *openai.Error {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want an *openai.Error with status %d, got %T: %v", status, err, err)
	}
	if apiErr.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", apiErr.StatusCode, status, apiErr.RawJSON())
	}
	if apiErr.Message == "" {
		t.Errorf("the SDK parsed no message from the error body: %s", apiErr.RawJSON())
	}
	return apiErr
}

// TestOpenAISDK: the official OpenAI Go SDK talks to the gateway as to
// OpenAI: chat completions plain and streamed (with and without usage),
// tool calls in both with the round trip of their results, the model
// list, and errors as the SDK's *openai.Error.
func TestOpenAISDK(t *testing.T) {
	t.Run("non-stream", func(t *testing.T) {
		g := startSDKGateway(t, sdkRouting)
		g.up.SetUsage(openaitest.Usage{Prompt: 11, Completion: 7, Cached: 3, Reasoning: 2})
		var raw *http.Response
		c, err := g.client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello there")},
		}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != "echo: hello there" || c.Choices[0].FinishReason != "stop" || c.Choices[0].Message.Role != "assistant" {
			t.Fatalf("choices: %s", c.RawJSON())
		}
		if c.Model != "gpt-4o-mini" || !strings.HasPrefix(c.ID, "chatcmpl-") || c.Object != "chat.completion" {
			t.Errorf("completion: model %q id %q object %q", c.Model, c.ID, c.Object)
		}
		u := c.Usage
		if u.PromptTokens != 11 || u.CompletionTokens != 7 || u.TotalTokens != 18 || u.PromptTokensDetails.CachedTokens != 3 || u.CompletionTokensDetails.ReasoningTokens != 2 {
			t.Errorf("usage: %s", u.RawJSON())
		}
		if got := raw.Header.Get("X-Proxycast-Credential"); !strings.HasPrefix(got, "sdk-up-") {
			t.Errorf("served by %q, want the openai instance's credential", got)
		}
		// The upstream got the SDK's body as it was sent, with its key.
		req := g.lastChat(t)
		if req.Key != sdkUpKey || !sameJSON(t, string(req.RawBody), string(g.lastSent(t))) {
			t.Errorf("the upstream saw key %q and\n%s\nthe SDK sent\n%s", req.Key, req.RawBody, g.lastSent(t))
		}
		if g.ifl.ChatCount() != 0 {
			t.Error("a gpt-* request went to iFlow")
		}
	})

	t.Run("stream with include_usage", func(t *testing.T) {
		g := startSDKGateway(t, sdkRouting)
		g.up.SetUsage(openaitest.Usage{Prompt: 13, Completion: 9, Cached: 5, Reasoning: 4})
		s := drain(t, g.client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
			Model:         "gpt-4o",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream me a few words please")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		}))
		const want = "echo: stream me a few words please"
		if len(s.acc.Choices) != 1 || s.acc.Choices[0].Message.Content != want || s.acc.Choices[0].FinishReason != "stop" {
			t.Fatalf("accumulated: %+v", s.acc.Choices)
		}
		if s.content != want {
			t.Errorf("JustFinishedContent: %q", s.content)
		}
		if n := s.contentChunks(); n < 3 {
			t.Errorf("the content came in %d chunks, want it streamed in pieces", n)
		}
		u := s.acc.Usage
		if u.PromptTokens != 13 || u.CompletionTokens != 9 || u.TotalTokens != 22 || u.PromptTokensDetails.CachedTokens != 5 || u.CompletionTokensDetails.ReasoningTokens != 4 {
			t.Errorf("accumulated usage: %+v", u)
		}
		// The usage came in its own chunk, the last, as OpenAI sends it.
		last := s.chunks[len(s.chunks)-1]
		if s.emptyChoiceChunks() != 1 || len(last.Choices) != 0 || last.Usage.TotalTokens != 22 {
			t.Errorf("the usage chunk: %d chunks without choices, last %s", s.emptyChoiceChunks(), last.RawJSON())
		}
		if s.acc.Model != "gpt-4o" || !strings.HasPrefix(s.acc.ID, "chatcmpl-") {
			t.Errorf("accumulated model %q id %q", s.acc.Model, s.acc.ID)
		}
		req := g.lastChat(t)
		body := jsonObject(t, req.RawBody)
		if !req.Stream || !reflect.DeepEqual(body["stream_options"], map[string]any{"include_usage": true}) {
			t.Errorf("the upstream saw %s", req.RawBody)
		}
		if !sameJSON(t, string(req.RawBody), string(g.lastSent(t))) {
			t.Errorf("the upstream saw\n%s\nthe SDK sent\n%s", req.RawBody, g.lastSent(t))
		}
	})

	t.Run("stream without include_usage", func(t *testing.T) {
		g := startSDKGateway(t, sdkRouting)
		g.up.SetUsage(openaitest.Usage{Prompt: 2, Completion: 3})
		s := drain(t, g.client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("no usage for me")},
		}))
		if len(s.acc.Choices) != 1 || s.acc.Choices[0].Message.Content != "echo: no usage for me" {
			t.Fatalf("accumulated: %+v", s.acc.Choices)
		}
		if n := s.emptyChoiceChunks(); n != 0 {
			t.Errorf("the SDK got %d chunks without choices", n)
		}
		for i, c := range s.chunks {
			if c.JSON.Usage.Valid() {
				t.Errorf("chunk %d carries usage the client did not ask for: %s", i, c.RawJSON())
			}
		}
		if s.acc.Usage.TotalTokens != 0 {
			t.Errorf("accumulated usage: %+v", s.acc.Usage)
		}
		// The SDK asked for no usage; the gateway asked the upstream.
		if sent := jsonObject(t, g.lastSent(t)); sent["stream_options"] != nil {
			t.Fatalf("the SDK sent stream_options: %s", g.lastSent(t))
		}
		if body := jsonObject(t, g.lastChat(t).RawBody); !reflect.DeepEqual(body["stream_options"], map[string]any{"include_usage": true}) {
			t.Errorf("the gateway did not ask the upstream for usage: %s", g.lastChat(t).RawBody)
		}
	})

	t.Run("tool call non-stream round trip", func(t *testing.T) {
		g := startSDKGateway(t, sdkRouting)
		params := openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Tools:    []openai.ChatCompletionToolUnionParam{weatherTool("get_weather")},
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(`call get_weather {"city":"Paris"}`)},
		}
		c, err := g.client.Chat.Completions.New(t.Context(), params)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].FinishReason != "tool_calls" || len(c.Choices[0].Message.ToolCalls) != 1 {
			t.Fatalf("choices: %s", c.RawJSON())
		}
		tc := c.Choices[0].Message.ToolCalls[0]
		fn, ok := tc.AsAny().(openai.ChatCompletionMessageFunctionToolCall)
		if !ok || fn.Function.Name != "get_weather" || !sameJSON(t, fn.Function.Arguments, `{"city":"Paris"}`) || !strings.HasPrefix(fn.ID, "call_") {
			t.Fatalf("tool call: %s", tc.RawJSON())
		}

		params.Messages = append(params.Messages, c.Choices[0].Message.ToParam(), openai.ToolMessage("sunny, 21C", fn.ID))
		c, err = g.client.Chat.Completions.New(t.Context(), params)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != "tool said: sunny, 21C" || c.Choices[0].FinishReason != "stop" {
			t.Fatalf("after the tool result: %s", c.RawJSON())
		}
		checkToolRoundTrip(t, g.lastChat(t).RawBody, []string{fn.ID}, []string{"get_weather"})
	})

	t.Run("tool call streamed round trip", func(t *testing.T) {
		g := startSDKGateway(t, sdkRouting)
		params := openai.ChatCompletionNewParams{
			Model:         "gpt-4o",
			Tools:         []openai.ChatCompletionToolUnionParam{weatherTool("get_weather")},
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage(`call get_weather {"city":"Paris","unit":"celsius"}`)},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		}
		s := drain(t, g.client.Chat.Completions.NewStreaming(t.Context(), params))
		if len(s.finished) != 1 {
			t.Fatalf("JustFinishedToolCall reported %d tool calls: %+v", len(s.finished), s.finished)
		}
		f := s.finished[0]
		if f.Name != "get_weather" || !sameJSON(t, f.Arguments, `{"city":"Paris","unit":"celsius"}`) || f.Index != 0 || !strings.HasPrefix(f.ID, "call_") {
			t.Errorf("finished tool call: %+v", f)
		}
		if len(s.acc.Choices) != 1 || s.acc.Choices[0].FinishReason != "tool_calls" {
			t.Fatalf("accumulated: %+v", s.acc.Choices)
		}
		msg := s.acc.Choices[0].Message
		if len(msg.ToolCalls) != 1 || msg.ToolCalls[0].ID != f.ID || msg.ToolCalls[0].Function.Name != "get_weather" || msg.ToolCalls[0].Function.Arguments != f.Arguments {
			t.Fatalf("accumulated tool calls: %+v", msg.ToolCalls)
		}
		if s.acc.Usage.TotalTokens == 0 {
			t.Errorf("no usage accumulated: %+v", s.acc.Usage)
		}

		params.Messages = append(params.Messages, msg.ToParam(), openai.ToolMessage("rain, 12C", f.ID))
		s = drain(t, g.client.Chat.Completions.NewStreaming(t.Context(), params))
		if len(s.finished) != 0 || len(s.acc.Choices) != 1 || s.acc.Choices[0].Message.Content != "tool said: rain, 12C" {
			t.Fatalf("after the tool result: %d tool calls, %+v", len(s.finished), s.acc.Choices)
		}
		checkToolRoundTrip(t, g.lastChat(t).RawBody, []string{f.ID}, []string{"get_weather"})
	})

	t.Run("two tool calls streamed", func(t *testing.T) {
		g := startSDKGateway(t, sdkRouting)
		params := openai.ChatCompletionNewParams{
			Model:             "gpt-4o-mini",
			Tools:             []openai.ChatCompletionToolUnionParam{weatherTool("a"), weatherTool("b")},
			ParallelToolCalls: openai.Bool(true),
			Messages:          []openai.ChatCompletionMessageParamUnion{openai.UserMessage(`call a {} and call b {"city":"Oslo"}`)},
		}
		s := drain(t, g.client.Chat.Completions.NewStreaming(t.Context(), params))
		if len(s.acc.Choices) != 1 || s.acc.Choices[0].FinishReason != "tool_calls" {
			t.Fatalf("accumulated: %+v", s.acc.Choices)
		}
		calls := s.acc.Choices[0].Message.ToolCalls
		if len(calls) != 2 {
			t.Fatalf("accumulated %d tool calls: %+v", len(calls), calls)
		}
		if calls[0].Function.Name != "a" || !sameJSON(t, calls[0].Function.Arguments, `{}`) ||
			calls[1].Function.Name != "b" || !sameJSON(t, calls[1].Function.Arguments, `{"city":"Oslo"}`) ||
			calls[0].ID == "" || calls[0].ID == calls[1].ID {
			t.Fatalf("accumulated tool calls: %+v", calls)
		}
		// The fake streams one call after the other, so each is reported
		// as it finishes.
		if len(s.finished) != 2 || s.finished[0].ID != calls[0].ID || s.finished[1].ID != calls[1].ID || s.finished[1].Index != 1 {
			t.Errorf("JustFinishedToolCall: %+v", s.finished)
		}

		params.Messages = append(params.Messages, s.acc.Choices[0].Message.ToParam(),
			openai.ToolMessage("done a", calls[0].ID), openai.ToolMessage("done b", calls[1].ID))
		c, err := g.client.Chat.Completions.New(t.Context(), params)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != "tool said: done b" {
			t.Fatalf("after the tool results: %s", c.RawJSON())
		}
		checkToolRoundTrip(t, g.lastChat(t).RawBody, []string{calls[0].ID, calls[1].ID}, []string{"a", "b"})
	})

	t.Run("iflow", func(t *testing.T) {
		g := startSDKGateway(t, sdkRouting)
		c, err := g.client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
			Model:    "qwen3-max",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi iflow")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != "echo: hi iflow" || c.Usage.TotalTokens == 0 {
			t.Fatalf("completion: %s", c.RawJSON())
		}
		s := drain(t, g.client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
			Model:         "glm-4.6",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream from iflow")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		}))
		if len(s.acc.Choices) != 1 || s.acc.Choices[0].Message.Content != "echo: stream from iflow" || s.acc.Usage.TotalTokens == 0 {
			t.Fatalf("accumulated: %+v, usage %+v", s.acc.Choices, s.acc.Usage)
		}
		reqs := g.ifl.ChatRequests()
		if len(reqs) != 2 || reqs[0].Model != "qwen3-max" || reqs[1].Model != "glm-4.6" || !reqs[1].Stream || reqs[0].APIKey != sdkIFlowKey {
			t.Errorf("iFlow saw %+v", reqs)
		}
		if g.up.ChatCount() != 0 {
			t.Error("an iFlow model went to the openai instance")
		}
	})

	t.Run("models", func(t *testing.T) {
		g := startSDKGateway(t, sdkRouting)
		page, err := g.client.Models.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		owner := map[string]string{}
		for _, m := range page.Data {
			if _, dup := owner[m.ID]; dup {
				t.Errorf("%s is listed twice", m.ID)
			}
			owner[m.ID] = m.OwnedBy
			if m.Object != "model" {
				t.Errorf("%s: object %q", m.ID, m.Object)
			}
		}
		want := map[string]string{}
		for _, m := range sdkUpModels {
			want[m], want["oa/"+m] = "up", "up"
		}
		for _, m := range iflow.Models {
			want[m] = "iflow"
		}
		if !reflect.DeepEqual(owner, want) {
			t.Errorf("listed (id: owner)\n%v\nwant\n%v", owner, want)
		}
		// The auto-pager sees the same single page, and ends.
		var auto []string
		for iter := g.client.Models.ListAutoPaging(t.Context()); iter.Next(); {
			auto = append(auto, iter.Current().ID)
		}
		if len(auto) != len(page.Data) {
			t.Errorf("ListAutoPaging gave %d models, List %d", len(auto), len(page.Data))
		}

		for id, by := range map[string]string{"gpt-4o": "up", "oa/gpt-4o-mini": "up", "qwen3-max": "iflow"} {
			m, err := g.client.Models.Get(t.Context(), id)
			if err != nil {
				t.Errorf("get %s: %v", id, err)
				continue
			}
			if m.ID != id || m.OwnedBy != by || m.Object != "model" {
				t.Errorf("get %s: %s", id, m.RawJSON())
			}
		}
		_, err = g.client.Models.Get(t.Context(), "no-such-model")
		wantSDKError(t, err, http.StatusNotFound)

		// A listed alias serves: oa/gpt-4o-mini goes up as gpt-4o-mini.
		c, err := g.client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
			Model:    "oa/gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("by alias")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.Choices[0].Message.Content != "echo: by alias" || g.lastChat(t).Model != "gpt-4o-mini" {
			t.Errorf("by alias: upstream model %q, %s", g.lastChat(t).Model, c.RawJSON())
		}
	})

	t.Run("rate limited", func(t *testing.T) {
		g := startSDKGateway(t, sdkRouting)
		g.up.SetBehavior(sdkUpKey, openaitest.RateLimited)
		params := openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		}
		_, err := g.client.Chat.Completions.New(t.Context(), params)
		e := wantSDKError(t, err, http.StatusTooManyRequests)
		if e.Response == nil {
			t.Fatal("the SDK's error has no response")
		}
		if e.Code != "upstream_rate_limited" || e.Type != "rate_limit_error" || e.Response.Header.Get("Retry-After") == "" || strings.Contains(e.RawJSON(), sdkUpKey) {
			t.Errorf("code %q type %q, Retry-After %q: %s", e.Code, e.Type, e.Response.Header.Get("Retry-After"), e.RawJSON())
		}
		if n := g.up.ChatCount(); n != 1 {
			t.Errorf("the upstream was asked %d times, want once", n)
		}
		// A stream gets the same error before its first chunk, and the
		// resting credential is not asked again.
		stream := g.client.Chat.Completions.NewStreaming(t.Context(), params)
		if stream.Next() {
			t.Fatalf("a chunk from a rate-limited stream: %s", stream.Current().RawJSON())
		}
		wantSDKError(t, stream.Err(), http.StatusTooManyRequests)
		stream.Close()
		if n := g.up.ChatCount(); n != 1 {
			t.Errorf("the resting credential was asked again: %d chats", n)
		}
	})

	t.Run("stream broken mid-way", func(t *testing.T) {
		// The upstream drops the connection after two chunks: the SDK
		// keeps what came and reports the gateway's error event.
		g := startSDKGateway(t, sdkRouting)
		g.up.SetBehavior(sdkUpKey, openaitest.StreamBreak)
		stream := g.client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("this stream will break")},
		})
		defer stream.Close()
		var acc openai.ChatCompletionAccumulator
		n := 0
		for stream.Next() {
			n++
			if !acc.AddChunk(stream.Current()) {
				t.Fatalf("the accumulator refused %s", stream.Current().RawJSON())
			}
		}
		var se *ssestream.StreamError
		if !errors.As(stream.Err(), &se) {
			t.Fatalf("after %d chunks: want the SDK's *ssestream.StreamError, got %T: %v", n, stream.Err(), stream.Err())
		}
		var ev apiError
		if err := json.Unmarshal(se.Event.Data, &ev); err != nil || ev.Error.Code != "upstream_stream_broken" || ev.Error.Message == "" {
			t.Errorf("the error event: %s", se.Event.Data)
		}
		if n != 2 || len(acc.Choices) != 1 || acc.Choices[0].Message.Content == "" || !strings.HasPrefix("echo: this stream will break", acc.Choices[0].Message.Content) {
			t.Errorf("before the error: %d chunks, %+v", n, acc.Choices)
		}
	})

	t.Run("model not found", func(t *testing.T) {
		// Without a default, a model that matches no rule routes nowhere.
		g := startSDKGateway(t, `		routing {
			rule gpt-* up
			rule qwen* iflow
		}`)
		for _, stream := range []bool{false, true} {
			params := openai.ChatCompletionNewParams{
				Model:    "claude-nowhere",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			}
			var err error
			if stream {
				s := g.client.Chat.Completions.NewStreaming(t.Context(), params)
				if s.Next() {
					t.Fatalf("a chunk for a model that routes nowhere: %s", s.Current().RawJSON())
				}
				err = s.Err()
				s.Close()
			} else {
				_, err = g.client.Chat.Completions.New(t.Context(), params)
			}
			e := wantSDKError(t, err, http.StatusNotFound)
			if e.Code != "model_not_found" || !strings.Contains(e.Message, "claude-nowhere") {
				t.Errorf("stream %t: code %q message %q", stream, e.Code, e.Message)
			}
		}
		if n := g.up.ChatCount() + g.ifl.ChatCount(); n != 0 {
			t.Errorf("a model that routes nowhere reached an upstream %d times", n)
		}
		// A model routed to the instance that its upstream does not have:
		// the upstream's 404 reaches the SDK.
		_, err := g.client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
			Model:    "gpt-nosuch",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		wantSDKError(t, err, http.StatusNotFound)
		if n := g.up.ChatCount(); n != 1 {
			t.Errorf("gpt-nosuch reached the upstream %d times, want once", n)
		}
		// The list has only what the rules route.
		page, err := g.client.Models.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Data {
			if !strings.HasPrefix(m.ID, "gpt-") && !strings.HasPrefix(m.ID, "qwen") {
				t.Errorf("%s is listed but routes nowhere", m.ID)
			}
		}
	})
}

// checkToolRoundTrip checks the body that carried tool results upstream:
// the assistant message with the tool calls (ids, names, arguments as
// strings), then one tool message for each, with its tool_call_id.
func checkToolRoundTrip(t *testing.T, raw []byte, ids, names []string) {
	t.Helper()
	var body struct {
		Messages []struct {
			Role       string          `json:"role"`
			Content    json.RawMessage `json:"content"`
			ToolCallID string          `json:"tool_call_id"`
			ToolCalls  []struct {
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments any    `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	msgs := body.Messages
	if len(msgs) != 2+len(ids) || msgs[0].Role != "user" || msgs[1].Role != "assistant" || len(msgs[1].ToolCalls) != len(ids) {
		t.Fatalf("the upstream saw messages %s", raw)
	}
	for i, tc := range msgs[1].ToolCalls {
		if _, isString := tc.Function.Arguments.(string); tc.ID != ids[i] || tc.Type != "function" || tc.Function.Name != names[i] || !isString {
			t.Errorf("tool call %d as sent upstream: %+v", i, tc)
		}
		if m := msgs[2+i]; m.Role != "tool" || m.ToolCallID != ids[i] {
			t.Errorf("tool message %d as sent upstream: %+v", i, m)
		}
	}
	if !slices.Contains([]string{"", "null"}, string(msgs[1].Content)) {
		t.Errorf("the assistant message with tool calls has content %s", msgs[1].Content)
	}
}
