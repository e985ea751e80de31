package openai

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/proxycast/caddy-proxycast/provider"
)

// Speaks lists the formats of the instance: chat, and the Responses API
// where the upstream has it (Responses set).
func (p *Provider) Speaks() []provider.Format {
	if p.Responses {
		return []provider.Format{provider.FormatChat, provider.FormatResponses}
	}
	return []provider.Format{provider.FormatChat}
}

// respond sends one Responses request to {api_base}/responses as the
// client sent it, but for the instance's drop_params and rename_params.
func (p *Provider) respond(ctx context.Context, call *provider.Call) (*provider.Response, error) {
	resp, err := p.post(ctx, call, "/responses", p.prepare(call.Body, false))
	if err != nil {
		return nil, err
	}
	if call.Stream {
		if !provider.IsEventStream(resp.Header.Get("Content-Type")) {
			resp.Body.Close()
			return nil, provider.BadReply("%s answered a streamed Responses request with %q, not an event stream", p.label(), resp.Header.Get("Content-Type"))
		}
		return &provider.Response{
			ContentType: "text/event-stream",
			Events:      &responseStream{SSEBody: provider.NewSSEBody(resp.Body), label: p.label(), apiKey: call.APIKey, model: call.Model},
		}, nil
	}
	defer resp.Body.Close()
	raw, err := provider.ReadReply(resp.Body, resp.ContentLength)
	if err != nil {
		return nil, err
	}
	if obj, _ := provider.StringField(raw, "object"); obj != "response" {
		msg, _ := provider.ErrorText(raw)
		if msg = provider.Scrub(msg, call.APIKey); msg == "" {
			msg = `no "object": "response"`
		}
		return nil, provider.BadReply("%s answered with something other than a Response object (%s)", p.label(), msg)
	}
	return &provider.Response{ContentType: "application/json", Body: raw}, nil
}

// responseStream reads a Responses stream: an error event becomes an
// error, classified as an HTTP error of its code would be, and a stream
// that ends before its terminal event is broken.
type responseStream struct {
	provider.SSEBody
	label, apiKey, model string
	ended                bool // the terminal event came
}

var typePrefix = []byte(`{"type":"`)

func (s *responseStream) Next() ([]byte, error) {
	data, err := s.SSE.Next()
	if errors.Is(err, io.EOF) {
		if !s.ended {
			return nil, &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_stream_broken",
				Message: "the stream from " + s.label + " ended before response.completed", Kind: provider.KindTransient}
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_stream_broken",
			Message: "the stream from " + s.label + " broke: " + provider.Scrub(err.Error(), s.apiKey), Kind: provider.KindTransient}
	}
	typ, fast := eventType(data)
	if !fast {
		typ, _ = provider.StringField(data, "type")
	}
	switch typ {
	case "error":
		_, code := provider.ErrorText(data)
		status := http.StatusInternalServerError
		if code == "rate_limit_exceeded" || code == "insufficient_quota" {
			status = http.StatusTooManyRequests
		}
		e := provider.StatusError(s.label, status, nil, data, s.model, s.apiKey)
		e.Message = "in the stream: " + e.Message
		return nil, e
	case "response.completed", "response.incomplete", "response.failed":
		s.ended = true
	}
	return data, nil
}

// eventType reads the type of an event that names it first, as OpenAI's
// do.
func eventType(data []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(data, typePrefix)
	if !ok {
		return "", false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return "", false
	}
	return string(rest[:i]), true
}
