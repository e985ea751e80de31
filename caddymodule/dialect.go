package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/proxycast/caddy-proxycast/anthropic"
	"github.com/proxycast/caddy-proxycast/provider"
	"github.com/proxycast/caddy-proxycast/responses"
)

// A dialect is an API as clients speak it: OpenAI chat completions,
// Anthropic Messages or OpenAI Responses. The pipeline (auth, route, pick, call, relay,
// failover, metrics) is the same for all; a dialect supplies the format
// of its bodies, its error objects and the framing of its streams.
type dialect interface {
	// format is the wire format of the dialect's requests and answers.
	format() provider.Format
	// writeError answers with e in the dialect's error shape, with
	// Retry-After from e.RetryAfter.
	writeError(w http.ResponseWriter, e *provider.Error)
	// framer frames a stream's events for the client; wantsUsage is
	// whether a chat client asked for the usage chunk.
	framer(wantsUsage bool) framer
	// keepalive is how long a stream may stay silent before the dialect's
	// ping goes out, and the ping's frame; zero when it has none.
	keepalive() (time.Duration, []byte)
}

// A framer writes a stream's events as the client's dialect frames them.
// Each method appends to dst and returns it; the relay writes the result
// in one Write.
type framer interface {
	// event frames one event's data (in the client's format); it may
	// leave dst as it is to pass nothing on.
	event(dst, data []byte) []byte
	// end closes a stream that ended as it should.
	end(dst []byte) []byte
	// fail reports a failure after the stream began.
	fail(dst []byte, e *provider.Error) []byte
}

// dialectFor is the dialect of a request to a path under /v1/: the
// Responses and Messages APIs' paths, and the model list when an Anthropic client
// (which always sends anthropic-version) asks for it. h may be nil where
// no stream is served.
func dialectFor(path string, r *http.Request, h *Handler) dialect {
	if path == "/v1/responses" || strings.HasPrefix(path, "/v1/responses/") {
		return responsesDialect{}
	}
	if path == "/v1/messages" || strings.HasPrefix(path, "/v1/messages/") ||
		(strings.HasPrefix(path, "/v1/models") && isAnthropicClient(r)) {
		d := messagesDialect{}
		if h != nil {
			d.ping = time.Duration(h.PingInterval)
		}
		return d
	}
	return chatDialect{}
}

// isAnthropicClient reports whether a request comes from an Anthropic
// SDK, which sends anthropic-version with every request.
func isAnthropicClient(r *http.Request) bool { return r.Header.Get("Anthropic-Version") != "" }

// clientError is a request refused before any upstream was asked.
func clientError(status int, typ, code, message string) *provider.Error {
	return &provider.Error{Status: status, Type: typ, Code: code, Message: message, Kind: provider.KindClient}
}

// paramError refuses one member of the request body.
func paramError(param, message string) *provider.Error {
	return &provider.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_" + param,
		Message: message, Param: param, Kind: provider.KindClient}
}

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	if d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	}
}

// chatDialect is OpenAI's chat completions API.
type chatDialect struct{}

func (chatDialect) format() provider.Format { return provider.FormatChat }

// OpenAI's statuses: Anthropic's 529 (overloaded) is the 503 OpenAI
// clients know.
func (chatDialect) writeError(w http.ResponseWriter, e *provider.Error) {
	setRetryAfter(w, e.RetryAfter)
	d := errorDetail{Message: e.Message, Type: e.Type, Code: e.Code}
	if e.Param != "" {
		d.Param = &e.Param
	}
	status := e.Status
	if status == statusOverloaded {
		status, d.Type = http.StatusServiceUnavailable, "api_error"
	}
	writeErrorBody(w, status, d)
}

func (chatDialect) framer(wantsUsage bool) framer { return chatFramer{hideUsage: !wantsUsage} }

func (chatDialect) keepalive() (time.Duration, []byte) { return 0, nil }

// chatFramer writes OpenAI's stream: data lines, then [DONE]. With
// hideUsage, a chunk that carries nothing but usage (asked for by the
// provider, not by the client) is not passed on.
type chatFramer struct{ hideUsage bool }

func (f chatFramer) event(dst, data []byte) []byte {
	if f.hideUsage && provider.UsageOnly(data) {
		return dst
	}
	return appendData(dst, data)
}

func (chatFramer) end(dst []byte) []byte { return append(dst, "data: [DONE]\n\n"...) }

func (chatFramer) fail(dst []byte, e *provider.Error) []byte { return appendData(dst, errorEvent(e)) }

// appendData frames one SSE event; data that spans lines is sent as as
// many data lines, as SSE joins them back.
func appendData(b, data []byte) []byte {
	b = append(b, "data: "...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		b = append(b, data[:i]...)
		b = append(b, "\ndata: "...)
		data = data[i+1:]
	}
	b = append(b, data...)
	return append(b, '\n', '\n')
}

const statusOverloaded = provider.StatusOverloaded

// messagesDialect is Anthropic's Messages API, as Claude Code speaks it.
type messagesDialect struct{ ping time.Duration }

func (messagesDialect) format() provider.Format { return provider.FormatMessages }

// Anthropic's statuses: an overloaded upstream, or a pool with no
// credential to serve (503 to others), is its 529, which its SDKs and
// Claude Code wait out and retry.
func (messagesDialect) writeError(w http.ResponseWriter, e *provider.Error) {
	setRetryAfter(w, e.RetryAfter)
	status := e.Status
	if status == http.StatusServiceUnavailable || e.Code == provider.CodeOverloaded {
		status = statusOverloaded
	}
	body := anthropic.ErrorBody(anthropic.ErrorType(status), e.Message)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (messagesDialect) framer(bool) framer { return messagesFramer{} }

var pingFrame = []byte("event: ping\ndata: {\"type\": \"ping\"}\n\n")

func (d messagesDialect) keepalive() (time.Duration, []byte) { return d.ping, pingFrame }

// messagesFramer writes Anthropic's stream: every event named after its
// data's type.
type messagesFramer struct{}

func (messagesFramer) event(dst, data []byte) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, eventType(data)...)
	dst = append(dst, '\n')
	return appendData(dst, data)
}

func (messagesFramer) end(dst []byte) []byte { return dst }

func (messagesFramer) fail(dst []byte, e *provider.Error) []byte {
	typ := anthropic.ErrorType(e.Status)
	if e.Code == provider.CodeOverloaded {
		typ = "overloaded_error"
	}
	dst = append(dst, "event: error\n"...)
	return appendData(dst, anthropic.ErrorBody(typ, e.Message))
}

var typePrefix = []byte(`{"type":"`)

// eventType reads the "type" member that names a Messages event; the
// translators and Anthropic write it first.
func eventType(data []byte) []byte {
	if rest, ok := bytes.CutPrefix(data, typePrefix); ok {
		if i := bytes.IndexByte(rest, '"'); i >= 0 {
			return rest[:i]
		}
	}
	if t, ok := provider.StringField(data, "type"); ok && t != "" && !strings.ContainsAny(t, "\r\n") {
		return []byte(t)
	}
	return []byte("message")
}

// responsesDialect is OpenAI's Responses API, as Codex speaks it. Its
// errors are OpenAI's, as chat's are.
type responsesDialect struct{ chatDialect }

func (responsesDialect) format() provider.Format { return provider.FormatResponses }

func (responsesDialect) framer(bool) framer { return &responsesFramer{} }

// responsesFramer writes a Responses stream: every event named after its
// data's type. It follows the sequence numbers and the response's id, so
// that a failure can end the stream with the response.failed event that
// would come next.
type responsesFramer struct {
	next               int64
	id, created, model []byte
}

var sequenceKey = []byte(`,"sequence_number":`)

func (f *responsesFramer) event(dst, data []byte) []byte {
	typ := eventType(data)
	f.follow(data, typ)
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, '\n')
	return appendData(dst, data)
}

// follow notes an event's sequence number, and the response of
// response.created. The translators write the number right after the
// type, as OpenAI does; other places are looked for.
func (f *responsesFramer) follow(data, typ []byte) {
	n := int64(-1)
	if rest, ok := bytes.CutPrefix(data[min(len(data), len(typePrefix)+len(typ)+1):], sequenceKey); ok {
		n = leadingInt(rest)
	}
	if n < 0 {
		if raw, ok := provider.Field(data, "sequence_number"); ok {
			n = leadingInt(raw)
		}
	}
	if n >= f.next {
		f.next = n + 1
	}
	if f.id == nil && string(typ) == "response.created" {
		if resp, ok := provider.Field(data, "response"); ok {
			id, _ := provider.StringField(resp, "id")
			model, _ := provider.Field(resp, "model")
			created, _ := provider.Field(resp, "created_at")
			f.id, f.model, f.created = []byte(id), bytes.Clone(model), bytes.Clone(created)
		}
	}
}

// leadingInt reads the non-negative integer b starts with, or -1.
func leadingInt(b []byte) int64 {
	n, digits := int64(0), 0
	for _, c := range b {
		if c < '0' || c > '9' || digits > 15 {
			break
		}
		n, digits = n*10+int64(c-'0'), digits+1
	}
	if digits == 0 {
		return -1
	}
	return n
}

func (*responsesFramer) end(dst []byte) []byte { return dst }

// fail ends the stream with response.failed. Its error code is one of
// the Responses API's, which clients act on: Codex waits out
// rate_limit_exceeded for the time the message names, stops at
// insufficient_quota, and retries server errors.
func (f *responsesFramer) fail(dst []byte, e *provider.Error) []byte {
	code, msg := "server_error", e.Message
	switch {
	case e.Kind == provider.KindQuota:
		code = "insufficient_quota"
	case e.Kind == provider.KindRateLimit || e.Status == http.StatusTooManyRequests:
		code = "rate_limit_exceeded"
		if e.RetryAfter > 0 {
			msg += fmt.Sprintf(" Please try again in %.0fs.", math.Ceil(e.RetryAfter.Seconds()))
		}
	case e.Code == provider.CodeOverloaded || e.Status == http.StatusServiceUnavailable:
		code = "server_is_overloaded"
	}
	if f.id == nil {
		f.id = []byte(responses.NewID())
	}
	dst = append(dst, "event: response.failed\ndata: "...)
	dst = append(dst, `{"type":"response.failed","sequence_number":`...)
	dst = strconv.AppendInt(dst, f.next, 10)
	dst = append(dst, `,"response":{"id":`...)
	dst = strconv.AppendQuote(dst, string(f.id))
	dst = append(dst, `,"object":"response","created_at":`...)
	if len(f.created) > 0 {
		dst = append(dst, f.created...)
	} else {
		dst = strconv.AppendInt(dst, time.Now().Unix(), 10)
	}
	dst = append(dst, `,"status":"failed","error":{"code":"`...)
	dst = append(dst, code...)
	dst = append(dst, `","message":`...)
	m, _ := json.Marshal(msg)
	dst = append(dst, m...)
	dst = append(dst, `},"incomplete_details":null,"model":`...)
	if len(f.model) > 0 {
		dst = append(dst, f.model...)
	} else {
		dst = append(dst, `null`...)
	}
	f.next++
	return append(dst, `,"output":[],"usage":null}}`+"\n\n"...)
}
