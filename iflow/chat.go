package iflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// Chat sends one signed chat completion request.
func (p *Provider) Chat(ctx context.Context, call *provider.Call) (*provider.Response, error) {
	body := applyThinking(call.Model, call.Body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.chatURL(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("iflow: building request: %w", err)
	}
	accept := "application/json"
	if call.Stream {
		accept = "text/event-stream"
	}
	signRequest(req.Header, call.APIKey, time.Now().UnixMilli(), accept)

	rt := call.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		// Named as http.Client names it: the method and the URL, with any
		// password in api_base masked, then the cause.
		return nil, &url.Error{Op: "Post", URL: req.URL.Redacted(), Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, statusError(resp.StatusCode, resp.Header, provider.ReadErrorBody(resp.Body), call.Model, call.APIKey)
	}
	if call.Stream && provider.IsEventStream(resp.Header.Get("Content-Type")) {
		return &provider.Response{
			ContentType: "text/event-stream",
			Events:      &stream{SSEBody: provider.NewSSEBody(resp.Body), apiKey: call.APIKey, first: true},
		}, nil
	}

	// A JSON reply: a completion, an envelope in its place, or, for a
	// stream request, iFlow answering with one plain completion.
	defer resp.Body.Close()
	raw, err := provider.ReadReply(resp.Body, resp.ContentLength)
	if err != nil {
		return nil, err
	}
	if len(raw) > provider.MaxReply {
		return nil, &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply",
			Message: "iflow's reply is larger than 32 MiB", Kind: provider.KindTransient}
	}
	if !json.Valid(raw) {
		return nil, &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply",
			Message: "iflow answered with a body that is not JSON", Kind: provider.KindTransient}
	}
	if e := replyError(raw, call.APIKey); e != nil {
		return nil, e
	}
	if call.Stream {
		events, err := provider.CompletionEvents(raw, "iflow")
		if err != nil {
			return nil, err
		}
		return &provider.Response{ContentType: "text/event-stream", Events: events}, nil
	}
	return &provider.Response{ContentType: "application/json", Body: raw}, nil
}

// lastEndpoint is the chat URL of the API base used last (in practice
// the only one), kept so that requests do not build it each time. It is
// not a field of Provider, which is configured by assignment and copied.
var lastEndpoint atomic.Pointer[endpoint]

type endpoint struct{ base, url string }

func (p *Provider) chatURL() string {
	if e := lastEndpoint.Load(); e != nil && e.base == p.APIBase {
		return e.url
	}
	e := &endpoint{base: p.APIBase, url: p.APIBase + "/chat/completions"}
	lastEndpoint.Store(e)
	return e.url
}

// signRequest sets the headers iFlow checks on every chat request, with a
// fresh session id, and Accept. As it runs for every request, the values
// it makes share one string and the headers one slice.
func signRequest(h http.Header, apiKey string, ts int64, accept string) {
	var buf [256]byte
	b := append(buf[:0], "Bearer "...)
	b = append(b, apiKey...)
	sid := len(b)
	b = appendSessionID(b)
	stamp := len(b)
	b = strconv.AppendInt(b, ts, 10)
	sig := len(b)

	var msg [128]byte
	m := append(msg[:0], UserAgent...)
	m = append(m, ':')
	m = append(m, b[sid:stamp]...)
	m = append(m, ':')
	m = append(m, b[stamp:sig]...)
	b = appendSignature(b, apiKey, m)

	s := string(b)
	vals := [...]string{s[:sid], UserAgent, "application/json", s[sid:stamp], s[stamp:sig], s[sig:], accept}
	shared := vals[:]
	for i, key := range [...]string{"Authorization", "User-Agent", "Content-Type", "Session-Id",
		"X-Iflow-Timestamp", "X-Iflow-Signature", "Accept"} {
		h[key] = shared[i : i+1 : i+1]
	}
}

// stream reads iFlow's SSE and turns its in-band failures into errors.
type stream struct {
	provider.SSEBody
	apiKey string
	first  bool
}

func (s *stream) Next() ([]byte, error) {
	data, err := s.SSE.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_stream_broken",
			Message: "the stream from iflow broke: " + err.Error(), Kind: provider.KindTransient}
	}
	first := s.first
	s.first = false
	if e := streamChunkError(data, first, s.apiKey); e != nil {
		return nil, e
	}
	return data, nil
}
