package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/proxycast/caddy-proxycast/provider"
)

// Chat sends one chat completion request, or a Responses request to an
// upstream that speaks the API.
func (p *Provider) Chat(ctx context.Context, call *provider.Call) (*provider.Response, error) {
	if call.Format == provider.FormatResponses {
		return p.respond(ctx, call)
	}
	resp, err := p.post(ctx, call, "/chat/completions", p.prepare(call.Body, call.Stream))
	if err != nil {
		return nil, err
	}
	if call.Stream && provider.IsEventStream(resp.Header.Get("Content-Type")) {
		return &provider.Response{
			ContentType: "text/event-stream",
			Events:      &stream{SSEBody: provider.NewSSEBody(resp.Body), label: p.label(), apiKey: call.APIKey},
		}, nil
	}
	defer resp.Body.Close()
	raw, err := provider.ReadReply(resp.Body, resp.ContentLength)
	if err != nil {
		return nil, err
	}
	if err := p.checkReply(raw, call.APIKey); err != nil {
		return nil, err
	}
	if call.Stream {
		// An upstream that answers a stream request with one completion.
		events, err := provider.CompletionEvents(raw, p.label())
		if err != nil {
			return nil, err
		}
		return &provider.Response{ContentType: "text/event-stream", Events: events}, nil
	}
	return &provider.Response{ContentType: "application/json", Body: raw}, nil
}

// post sends body to {api_base}{path} and returns the upstream's 200
// answer; any other status is the upstream's error, with a hint where the
// instance could leave out the member refused.
func (p *Provider) post(ctx context.Context, call *provider.Call, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.APIBase+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: building the request: %w", p.label(), err)
	}
	req.Header = p.header(call.APIKey)
	req.Header.Set("Content-Type", "application/json")
	if call.Stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := p.send(req, call.Transport)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		raw := provider.ReadErrorBody(resp.Body)
		e := provider.StatusError(p.label(), resp.StatusCode, resp.Header, raw, call.Model, call.APIKey)
		if e.Kind == provider.KindClient {
			e.Message += p.fixFor(e.Message, body)
		}
		return nil, e
	}
	return resp, nil
}

// FetchModels reads the model list from {api_base}/models.
func (p *Provider) FetchModels(ctx context.Context, call *provider.Call) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.APIBase+"/models", nil)
	if err != nil {
		return nil, fmt.Errorf("%s: building the request: %w", p.label(), err)
	}
	req.Header = p.header(call.APIKey)
	req.Header.Set("Accept", "application/json")
	resp, err := p.send(req, call.Transport)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, provider.StatusError(p.label(), resp.StatusCode, resp.Header, provider.ReadErrorBody(resp.Body), "", call.APIKey)
	}
	raw, err := provider.ReadReply(resp.Body, resp.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the model list: %w", p.label(), err)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s: the model list is not {\"data\":[{\"id\":…}]}", p.label())
	}
	var ids []string
	for _, m := range list.Data {
		if m.ID != "" && !slices.Contains(ids, m.ID) {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

// header is a call's headers: the instance's own, and the key.
func (p *Provider) header(key string) http.Header {
	h := make(http.Header, len(p.Headers)+4)
	for k, v := range p.Headers {
		h[k] = v
	}
	p.setAuth(h, key)
	return h
}

// send sends req with the credential's transport. Redirects are not
// followed (see provider.StatusError), and the URL in errors has any
// password in api_base masked.
func (p *Provider) send(req *http.Request, rt http.RoundTripper) (*http.Response, error) {
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, &url.Error{Op: req.Method, URL: req.URL.Redacted(), Err: err}
	}
	return resp, nil
}

// prepare makes the instance's changes to a client's body: members
// dropped and renamed, and usage asked for in streams.
func (p *Provider) prepare(body []byte, stream bool) []byte {
	for _, name := range p.DropParams {
		body = provider.DeleteField(body, name)
	}
	for _, r := range p.RenameParams {
		if _, ok := provider.Field(body, r[0]); !ok {
			continue
		}
		if _, taken := provider.Field(body, r[1]); taken {
			body = provider.DeleteField(body, r[0])
			continue
		}
		body = provider.RenameField(body, r[0], r[1])
	}
	if stream && p.StreamUsage && !slices.Contains(p.DropParams, "stream_options") {
		body = askUsage(body)
	}
	return body
}

// askUsage sets stream_options.include_usage, keeping the client's other
// stream options.
func askUsage(body []byte) []byte {
	opts, ok := provider.Field(body, "stream_options")
	if !ok || len(opts) == 0 || opts[0] != '{' {
		return provider.SetField(body, "stream_options", []byte(`{"include_usage":true}`))
	}
	if provider.BoolField(opts, "include_usage") {
		return body
	}
	return provider.SetField(body, "stream_options", provider.SetField(opts, "include_usage", []byte("true")))
}

// fixes name the setting that lets an upstream take a request it refused
// for one of its members.
var fixes = map[string]string{
	"stream_options":        "stream_usage off (or drop_params stream_options)",
	"max_completion_tokens": "rename_params max_completion_tokens max_tokens",
	"max_tokens":            "rename_params max_tokens max_completion_tokens",
}

// fixFor is a hint for an upstream's refusal that names a member of the
// body sent: the setting of this instance that would leave it out.
func (p *Provider) fixFor(message string, body []byte) string {
	lower := strings.ToLower(message)
	var named string
	provider.EachMember(body, func(key string) {
		if named != "" || key == "model" || key == "messages" || key == "stream" {
			return
		}
		if strings.Contains(lower, strings.ToLower(key)) {
			named = key
		}
	})
	if named == "" {
		return ""
	}
	fix, ok := fixes[named]
	if !ok {
		fix = "drop_params " + named
	}
	return fmt.Sprintf(" (the upstream refused %q: `%s` in %s sends it no more)", named, fix, p.label())
}

// checkReply refuses a 200 answer that is not a completion.
func (p *Provider) checkReply(raw []byte, apiKey string) error {
	if !json.Valid(raw) {
		return &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply",
			Message: p.label() + " answered with a body that is not JSON", Kind: provider.KindTransient}
	}
	if _, ok := provider.Field(raw, "choices"); ok {
		return nil
	}
	msg, _ := provider.ErrorText(raw)
	if msg = provider.Scrub(msg, apiKey); msg == "" {
		msg = "no choices"
	}
	return &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_error",
		Message: fmt.Sprintf("%s answered with something other than a completion (%s)", p.label(), msg), Kind: provider.KindTransient}
}

// stream reads an upstream's SSE, turning an error sent in place of a
// chunk into an error.
type stream struct {
	provider.SSEBody
	label  string
	apiKey string
}

var errorKey = []byte(`"error"`)

func (s *stream) Next() ([]byte, error) {
	data, err := s.SSE.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_stream_broken",
			Message: "the stream from " + s.label + " broke: " + provider.Scrub(err.Error(), s.apiKey), Kind: provider.KindTransient}
	}
	// Most chunks have no "error" at all: one scan rules that out.
	if bytes.Contains(data, errorKey) {
		if raw, ok := provider.Field(data, "error"); ok && string(raw) != "null" {
			msg, _ := provider.ErrorText(data)
			return nil, &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_stream_error",
				Message: s.label + " sent an error in the stream: " + provider.Scrub(msg, s.apiKey), Kind: provider.KindTransient}
		}
	}
	return data, nil
}
