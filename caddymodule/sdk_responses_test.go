package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/proxycast/caddy-proxycast/anthropic/anthropictest"
	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
	"github.com/proxycast/caddy-proxycast/openai/openaitest"
)

// The OpenAI Go SDK's Responses client against the gateway, over every
// kind of provider: an openai instance that takes chat only ("up", the
// request translated), one that speaks the Responses API ("native",
// passed through), iFlow and an anthropic instance (translated through
// chat into Messages).

// respGateway is one subtest's gateway and its upstreams.
type respGateway struct {
	up, native *openaitest.Server
	ifl        *iflowtest.Server
	claude     *anthropictest.Server
	client     openai.Client
}

// The routes of a respGateway: a model name for each provider.
const (
	viaUp     = "gpt-4o-mini"
	viaNative = "native/gpt-4o"
	viaIFlow  = "glm-4.6"
	viaClaude = "claude-sonnet-4-5"
)

func startRespGateway(t *testing.T) *respGateway {
	t.Helper()
	hermeticSDKEnv(t)
	g := &respGateway{
		up:     fakeOpenAI(t, sdkUpModels, sdkUpKey),
		native: fakeOpenAI(t, []string{"gpt-4o"}, "sk-native-1"),
		ifl:    fakeIFlow(t, sdkIFlowKey),
		claude: fakeAnthropic(t, []string{"claude-sonnet-4-5"}, "sk-ant-1"),
	}
	g.up.RefuseUnknownFields(true)
	g.native.SetResponses(true)
	n := sdkCredentials.Add(1)
	startCaddy(t, fmt.Sprintf(`		api_keys %[1]s
		provider up {
			type openai
			api_base %[2]s
			models %[3]s
		}
		provider native {
			type openai
			api_base %[4]s
			models gpt-4o
			responses native
		}
		provider claude {
			type anthropic
			api_base %[5]s
			models claude-sonnet-4-5
		}
		provider iflow {
			api_base %[6]s
		}
		credential_pool {
			up {
				credential r-up-%[7]d {
					auth_type api_key
					api_key %[8]s
				}
			}
			native {
				credential r-native-%[7]d {
					auth_type api_key
					api_key sk-native-1
				}
			}
			claude {
				credential r-claude-%[7]d {
					auth_type api_key
					api_key sk-ant-1
				}
			}
			iflow {
				credential r-if-%[7]d {
					auth_type api_key
					api_key %[9]s
				}
			}
		}
		routing {
			rule gpt-* up
			rule native/* native model $1
			rule claude-* claude
			default_provider iflow
		}
`, clientKey, g.up.APIBase(), strings.Join(sdkUpModels, " "), g.native.APIBase(), g.claude.URL(), g.ifl.APIBase(), n, sdkUpKey, sdkIFlowKey))
	g.client = openai.NewClient(
		option.WithBaseURL(baseURL+"/v1"),
		option.WithAPIKey(clientKey),
		option.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
		option.WithMaxRetries(0),
	)
	return g
}

func hello(model string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model:        model,
		Instructions: openai.String("be brief"),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("hello there")},
		Store:        openai.Bool(false),
	}
}

// respStream is what a stream gave the SDK.
type respStream struct {
	events []responses.ResponseStreamEventUnion
	text   string // the output_text deltas joined
	final  responses.Response
}

// drainResponses reads a stream to its end, checking its sequence
// numbers and that it ends with a terminal event.
func drainResponses(t *testing.T, s *ssestream.Stream[responses.ResponseStreamEventUnion]) *respStream {
	t.Helper()
	defer s.Close()
	out := &respStream{}
	for s.Next() {
		ev := s.Current()
		if ev.SequenceNumber != int64(len(out.events)) {
			t.Fatalf("event %d (%s) has sequence_number %d", len(out.events), ev.Type, ev.SequenceNumber)
		}
		out.events = append(out.events, ev)
		switch ev.Type {
		case "response.output_text.delta":
			out.text += ev.AsResponseOutputTextDelta().Delta
		case "response.completed", "response.incomplete", "response.failed":
			out.final = ev.Response
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(out.events) < 3 || out.events[0].Type != "response.created" || out.events[1].Type != "response.in_progress" {
		t.Fatalf("stream began with %v", respTypes(out.events))
	}
	return out
}

func respTypes(evs []responses.ResponseStreamEventUnion) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func weatherFunction() responses.ToolUnionParam {
	return responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{
		Name:        "weather",
		Description: openai.String("the weather in a city"),
		Parameters:  map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
		Strict:      openai.Bool(false),
	}}
}

// TestResponsesSDK: the SDK's Responses client gets Response objects
// and event streams it can read from every provider, round-trips a
// function call, asks for reasoning and structured output, and gets the
// gateway's refusals as *openai.Error.
func TestResponsesSDK(t *testing.T) {
	g := startRespGateway(t)
	routes := []string{viaUp, viaNative, viaIFlow, viaClaude}

	t.Run("plain", func(t *testing.T) {
		for _, model := range routes {
			var raw *http.Response
			r, err := g.client.Responses.New(t.Context(), hello(model), option.WithResponseInto(&raw))
			if err != nil {
				t.Fatalf("%s: %v", model, err)
			}
			if r.OutputText() != "echo: hello there" || r.Status != responses.ResponseStatusCompleted || !strings.HasPrefix(r.ID, "resp_") || r.Object != "response" {
				t.Errorf("%s: %s", model, r.RawJSON())
			}
			if model != viaNative && r.Model != model {
				t.Errorf("%s: answered as model %q", model, r.Model)
			}
			if r.Usage.InputTokens == 0 || r.Usage.OutputTokens == 0 || r.Usage.TotalTokens != r.Usage.InputTokens+r.Usage.OutputTokens {
				t.Errorf("%s: usage %s", model, r.Usage.RawJSON())
			}
			if raw.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: Content-Type %q", model, raw.Header.Get("Content-Type"))
			}
		}
		// The instructions reached each upstream as its format has them.
		if last := lastChatBody(t, g.up); !strings.Contains(last, `"role":"system","content":"be brief"`) {
			t.Errorf("up got %s", last)
		}
		if reqs := responsesOf(g.native); len(reqs) != 1 || !strings.Contains(string(reqs[0].RawBody), `"instructions":"be brief"`) || !strings.Contains(string(reqs[0].RawBody), `"model":"gpt-4o"`) {
			t.Errorf("native got %v", reqs)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		for _, model := range routes {
			s := drainResponses(t, g.client.Responses.NewStreaming(t.Context(), hello(model)))
			if s.text != "echo: hello there" || s.final.OutputText() != "echo: hello there" || s.final.Status != responses.ResponseStatusCompleted {
				t.Errorf("%s: text %q, final %s", model, s.text, s.final.RawJSON())
			}
			if s.events[len(s.events)-1].Type != "response.completed" {
				t.Errorf("%s: last event %s", model, s.events[len(s.events)-1].Type)
			}
			if s.final.Usage.OutputTokens == 0 {
				t.Errorf("%s: no usage in the stream: %s", model, s.final.RawJSON())
			}
		}
	})

	t.Run("function call round trip", func(t *testing.T) {
		for _, model := range []string{viaUp, viaNative} {
			params := responses.ResponseNewParams{
				Model: model,
				Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
					responses.ResponseInputItemParamOfMessage(`call weather {"city":"Paris"}`, responses.EasyInputMessageRoleUser),
				}},
				Tools: []responses.ToolUnionParam{weatherFunction()},
			}
			for _, stream := range []bool{false, true} {
				var output []responses.ResponseOutputItemUnion
				if stream {
					s := drainResponses(t, g.client.Responses.NewStreaming(t.Context(), params))
					output = s.final.Output
				} else {
					r, err := g.client.Responses.New(t.Context(), params)
					if err != nil {
						t.Fatalf("%s: %v", model, err)
					}
					output = r.Output
				}
				var call responses.ResponseFunctionToolCall
				for _, item := range output {
					if item.Type == "function_call" {
						call = item.AsFunctionCall()
					}
				}
				if call.Name != "weather" || call.CallID == "" || !sameJSON(t, call.Arguments, `{"city":"Paris"}`) {
					t.Fatalf("%s (stream %t): output %v", model, stream, output)
				}
				out := responses.ResponseInputItemParamOfFunctionCallOutput("sunny")
				out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
				next := params
				next.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: append(append(responses.ResponseInputParam{}, params.Input.OfInputItemList...),
					responses.ResponseInputItemParamOfFunctionCall(call.Arguments, call.CallID, call.Name), out)}
				r, err := g.client.Responses.New(t.Context(), next)
				if err != nil {
					t.Fatalf("%s: follow-up: %v", model, err)
				}
				if r.OutputText() != "tool said: sunny" {
					t.Errorf("%s: follow-up answered %s", model, r.RawJSON())
				}
			}
		}
		// The chat upstream got the call and its result as chat has them.
		var sent struct {
			Messages []struct {
				Role       string `json:"role"`
				ToolCallID string `json:"tool_call_id"`
				ToolCalls  []struct {
					ID string `json:"id"`
				} `json:"tool_calls"`
			} `json:"messages"`
		}
		if err := json.Unmarshal([]byte(lastChatBody(t, g.up)), &sent); err != nil || len(sent.Messages) != 3 ||
			sent.Messages[1].Role != "assistant" || len(sent.Messages[1].ToolCalls) != 1 ||
			sent.Messages[2].Role != "tool" || sent.Messages[2].ToolCallID != sent.Messages[1].ToolCalls[0].ID {
			t.Errorf("up got %s", lastChatBody(t, g.up))
		}
	})

	t.Run("reasoning effort", func(t *testing.T) {
		p := hello(viaIFlow)
		p.Reasoning = shared.ReasoningParam{Effort: shared.ReasoningEffortHigh}
		if _, err := g.client.Responses.New(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		reqs := g.ifl.ChatRequests()
		var body map[string]any
		if err := json.Unmarshal(reqs[len(reqs)-1].RawBody, &body); err != nil {
			t.Fatal(err)
		}
		if kwargs, _ := body["chat_template_kwargs"].(map[string]any); kwargs["enable_thinking"] != true || body["reasoning_effort"] != nil {
			t.Errorf("iFlow got %s", reqs[len(reqs)-1].RawBody)
		}

		// A provider that streams its reasoning: summary deltas before the
		// text, and the reasoning item in the output.
		g.up.SetReasoning("thinking it over")
		defer g.up.SetReasoning("")
		p = hello(viaUp)
		p.Reasoning = shared.ReasoningParam{Effort: shared.ReasoningEffortHigh}
		s := drainResponses(t, g.client.Responses.NewStreaming(t.Context(), p))
		summary := ""
		for _, ev := range s.events {
			if ev.Type == "response.reasoning_summary_text.delta" {
				summary += ev.Delta
			}
		}
		if summary != "thinking it over" || len(s.final.Output) != 2 || s.final.Output[0].Type != "reasoning" ||
			s.final.Output[0].AsReasoning().Summary[0].Text != "thinking it over" {
			t.Errorf("summary %q, output %s", summary, s.final.RawJSON())
		}
		if !strings.Contains(lastChatBody(t, g.up), `"reasoning_effort":"high"`) {
			t.Errorf("up got %s", lastChatBody(t, g.up))
		}
	})

	t.Run("json_schema", func(t *testing.T) {
		p := hello(viaUp)
		p.Text = responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{
			OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{
				Name:   "answer",
				Schema: map[string]any{"type": "object", "properties": map[string]any{"echo": map[string]any{"type": "string"}}},
				Strict: openai.Bool(true),
			}}}
		r, err := g.client.Responses.New(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		var sent struct {
			ResponseFormat struct {
				Type       string `json:"type"`
				JSONSchema struct {
					Name   string          `json:"name"`
					Strict bool            `json:"strict"`
					Schema json.RawMessage `json:"schema"`
				} `json:"json_schema"`
			} `json:"response_format"`
		}
		if err := json.Unmarshal([]byte(lastChatBody(t, g.up)), &sent); err != nil || sent.ResponseFormat.Type != "json_schema" ||
			sent.ResponseFormat.JSONSchema.Name != "answer" || !sent.ResponseFormat.JSONSchema.Strict {
			t.Errorf("up got %s", lastChatBody(t, g.up))
		}
		if r.Text.Format.Type != "json_schema" {
			t.Errorf("the answer's text.format: %s", r.Text.RawJSON())
		}
	})

	t.Run("refusals", func(t *testing.T) {
		p := hello(viaUp)
		p.Tools = []responses.ToolUnionParam{{OfWebSearch: &responses.WebSearchToolParam{Type: "web_search"}}}
		_, err := g.client.Responses.New(t.Context(), p)
		e := wantSDKError(t, err, 400)
		if e.Param != "tools[0].type" || !strings.Contains(e.Message, `provider "up" takes chat completions`) || !strings.Contains(e.Message, "responses native") {
			t.Errorf("built-in tool: %s", e.RawJSON())
		}
		p = hello(viaIFlow)
		p.PreviousResponseID = openai.String("resp_123")
		_, err = g.client.Responses.New(t.Context(), p)
		if e := wantSDKError(t, err, 400); e.Param != "previous_response_id" || !strings.Contains(e.Message, "does not store responses") {
			t.Errorf("previous_response_id: %s", e.RawJSON())
		}
		_, err = g.client.Responses.Get(t.Context(), "resp_123", responses.ResponseGetParams{})
		if e := wantSDKError(t, err, 404); !strings.Contains(e.Message, "does not store responses") {
			t.Errorf("GET a response: %s", e.RawJSON())
		}
		// An upstream that speaks the API runs its built-in tools.
		p = hello(viaNative)
		p.Tools = []responses.ToolUnionParam{{OfWebSearch: &responses.WebSearchToolParam{Type: "web_search"}}}
		if _, err := g.client.Responses.New(t.Context(), p); err != nil {
			t.Errorf("native built-in tool: %v", err)
		}
		reqs := responsesOf(g.native)
		if !strings.Contains(string(reqs[len(reqs)-1].RawBody), `"type":"web_search"`) {
			t.Errorf("native got %s", reqs[len(reqs)-1].RawBody)
		}
	})
}

// lastChatBody is the body of the last chat request up saw.
func lastChatBody(t *testing.T, up *openaitest.Server) string {
	t.Helper()
	reqs := chatsOf(up)
	if len(reqs) == 0 {
		t.Fatal("the upstream saw no chat request")
	}
	return string(reqs[len(reqs)-1].RawBody)
}

// responsesOf lists the Responses requests an upstream saw.
func responsesOf(up *openaitest.Server) []openaitest.Request {
	var out []openaitest.Request
	for _, r := range up.Requests() {
		if r.Path == "/v1/responses" {
			out = append(out, r)
		}
	}
	return out
}
