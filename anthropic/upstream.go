package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// overloadedStatus is the status Anthropic answers with when it is short
// of capacity for everyone (overloaded_error), which its clients retry.
const overloadedStatus = 529

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

// errorTypeStatus is the status Anthropic sends each error type with, for
// an error that comes as a stream's first event instead.
var errorTypeStatus = map[string]int{
	"invalid_request_error": http.StatusBadRequest,
	"authentication_error":  http.StatusUnauthorized,
	"billing_error":         http.StatusPaymentRequired,
	"permission_error":      http.StatusForbidden,
	"not_found_error":       http.StatusNotFound,
	"request_too_large":     http.StatusRequestEntityTooLarge,
	"rate_limit_error":      http.StatusTooManyRequests,
	"api_error":             http.StatusInternalServerError,
	"timeout_error":         http.StatusGatewayTimeout,
	"overloaded_error":      overloadedStatus,
}

// statusError classifies an answer with a status other than 200. Its body
// is Anthropic's {"type":"error","error":{"type","message"}}; what the
// generic classes of provider.StatusError say of it holds but for
// Anthropic's own statuses and words: 529 overloaded, billing errors that
// come as 400, 400s that name the model without being about it, and the
// rate-limit reset headers.
func (p *Provider) statusError(status int, h http.Header, body []byte, model, key string) *provider.Error {
	up := p.label()
	msg, typ := provider.ErrorText(body)
	msg, typ = provider.Scrub(msg, key), provider.Scrub(typ, key)
	if msg == "" {
		msg = http.StatusText(status)
	}
	if msg == "" {
		msg = "HTTP " + strconv.Itoa(status)
	}
	switch {
	case status >= 300 && status < 400, status == http.StatusProxyAuthRequired:
		return provider.StatusError(up, status, h, body, model, key)
	case typ == "billing_error" || status == http.StatusPaymentRequired || outOfCredit(msg, typ):
		return &provider.Error{Status: http.StatusTooManyRequests, Type: "insufficient_quota", Code: "upstream_quota_exhausted",
			Kind: provider.KindQuota, RetryAfter: regainAccess(msg, p.clock()),
			Message: fmt.Sprintf("%s says the credential's balance or quota is used up (HTTP %d): %s", up, status, msg)}
	case status == overloadedStatus || typ == "overloaded_error":
		// Status and type stay Anthropic's, so that an Anthropic client
		// sees the overload it knows to retry.
		return &provider.Error{Status: overloadedStatus, Type: "overloaded_error", Code: provider.CodeOverloaded,
			Kind: provider.KindTransient, RetryAfter: retryAfterHeader(h, p.clock()),
			Message: fmt.Sprintf("%s is overloaded (HTTP %d): %s", up, status, msg)}
	case status == http.StatusTooManyRequests:
		return &provider.Error{Status: status, Type: "rate_limit_error", Code: "upstream_rate_limited",
			Kind: provider.KindRateLimit, RetryAfter: rateLimitRest(h, p.clock()),
			Message: fmt.Sprintf("%s rate limit reached: %s", up, msg)}
	case status == http.StatusNotFound && strings.HasPrefix(msg, "model:"):
		// Anthropic's own words for a model it does not serve this key,
		// whatever name the call gave it.
		return &provider.Error{Status: status, Type: "not_found_error", Code: "model_not_found", Kind: provider.KindModel,
			Message: fmt.Sprintf("%s does not offer the model %q: %s", up, model, msg)}
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity:
		// Anthropic says an unknown model with 404; a 400 is about the
		// request, which any credential would meet alike.
		return &provider.Error{Status: status, Type: provider.TypeForStatus(status), Code: "upstream_rejected",
			Kind:    provider.KindClient,
			Message: fmt.Sprintf("%s rejected the request (HTTP %d): %s", up, status, msg)}
	}
	return provider.StatusError(up, status, h, body, model, key)
}

// outOfCredit reports whether an error says the account cannot pay:
// Anthropic's "Your credit balance is too low…" (a 400) and "You have
// reached your specified API usage limits" (a spend limit), besides the
// words provider.QuotaExhausted knows.
func outOfCredit(msg, typ string) bool {
	lower := strings.ToLower(msg)
	for _, hint := range []string{"credit balance", "api usage limits", "spend limit"} {
		if strings.Contains(lower, hint) {
			return true
		}
	}
	return provider.QuotaExhausted(msg, typ)
}

// regainPattern is how a spend limit's error says when it ends: "You will
// regain access on 2025-07-01 at 00:00 UTC."
var regainPattern = regexp.MustCompile(`regain access on (\d{4}-\d{2}-\d{2}) at (\d{2}:\d{2}) UTC`)

// regainAccess is how long until the time a quota error names, zero if it
// names none in the future.
func regainAccess(msg string, now time.Time) time.Duration {
	m := regainPattern.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	t, err := time.Parse("2006-01-02 15:04", m[1]+" "+m[2])
	if err != nil || !t.After(now) {
		return 0
	}
	return t.Sub(now)
}

// resetHeaders are the rate-limit reset times Anthropic sends, RFC 3339.
var resetHeaders = []string{
	"Anthropic-Ratelimit-Requests-Reset",
	"Anthropic-Ratelimit-Tokens-Reset",
	"Anthropic-Ratelimit-Input-Tokens-Reset",
	"Anthropic-Ratelimit-Output-Tokens-Reset",
}

// maxHeaderWait bounds a wait read from a header, so that absurd values
// (1e300, Inf) cannot overflow a Duration; the pool caps rests far below.
const maxHeaderWait = 365 * 24 * time.Hour

// rateLimitRest is how long a rate-limited key rests: Retry-After when the
// upstream sends it, or else the earliest of the reset times that is still
// ahead: the limit that resets first may be the one that was hit, and a
// later call can tell again.
func rateLimitRest(h http.Header, now time.Time) time.Duration {
	if d := retryAfterHeader(h, now); d > 0 {
		return d
	}
	var earliest time.Duration
	for _, name := range resetHeaders {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil || !t.After(now) {
			continue
		}
		if d := t.Sub(now); earliest == 0 || d < earliest {
			earliest = d
		}
	}
	return min(earliest, maxHeaderWait)
}

// retryAfterHeader reads Retry-After, seconds or an HTTP date; zero when
// it is absent, unreadable or past.
func retryAfterHeader(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 || math.IsNaN(secs) {
			return 0
		}
		return time.Duration(math.Min(secs, maxHeaderWait.Seconds()) * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxHeaderWait)
	}
	return 0
}

// checkMessage refuses a 200 answer that is not a message object.
func (p *Provider) checkMessage(raw []byte, key string) error {
	if len(raw) > provider.MaxReply {
		return &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply", Kind: provider.KindTransient,
			Message: fmt.Sprintf("%s answered with more than %d MiB", p.label(), provider.MaxReply>>20)}
	}
	if !json.Valid(raw) {
		return &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply",
			Message: p.label() + " answered with a body that is not JSON", Kind: provider.KindTransient}
	}
	if typ, _ := provider.StringField(raw, "type"); typ == "message" {
		return nil
	}
	return p.badReply(raw, key, "a message")
}

// badReply is the error for a 200 answer that is not what was asked for
// (want): an error object sent with 200 is named as such.
func (p *Provider) badReply(raw []byte, key, want string) *provider.Error {
	if typ, _ := provider.StringField(raw, "type"); typ == "error" {
		msg, etype := provider.ErrorText(raw)
		return &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_error", Kind: provider.KindTransient,
			Message: fmt.Sprintf("%s answered HTTP 200 with an error (%s): %s", p.label(), provider.Scrub(etype, key), provider.Scrub(msg, key))}
	}
	return &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply", Kind: provider.KindTransient,
		Message: fmt.Sprintf("%s answered with something other than %s", p.label(), want)}
}

// openStream hands out the events of a streamed answer. The first event
// is read at once: a stream that fails before it has begun (an error
// event, no event at all) is a failure the caller can still retry
// elsewhere and answer with its own status, as if the upstream had
// refused the call.
func (p *Provider) openStream(resp *http.Response, call *provider.Call) (*provider.Response, error) {
	st := &upstreamStream{SSEBody: provider.NewSSEBody(resp.Body), label: p.label(), key: call.APIKey}
	data, typ, err := st.read()
	if err != nil {
		st.Close()
		return nil, err
	}
	if typ == "error" {
		st.Close()
		_, etype := provider.ErrorText(data)
		status, ok := errorTypeStatus[etype]
		if !ok {
			status = http.StatusInternalServerError
		}
		return nil, p.statusError(status, resp.Header, data, call.Model, call.APIKey)
	}
	st.held = data
	return &provider.Response{ContentType: "text/event-stream", Events: st}, nil
}

// upstreamStream reads Anthropic's SSE: each event's data, whose "type" is
// the event's name. It ends at message_stop; an error event or an end
// before message_stop is an error.
type upstreamStream struct {
	provider.SSEBody
	label, key string
	held       []byte // the first event, read by openStream
	ended      bool   // message_stop or an error was read
}

// Next returns the data of the next event.
func (s *upstreamStream) Next() ([]byte, error) {
	if s.held != nil {
		data := s.held
		s.held = nil
		return data, nil
	}
	if s.ended {
		return nil, io.EOF
	}
	data, typ, err := s.read()
	if err != nil {
		return nil, err
	}
	if typ == "error" {
		msg, etype := provider.ErrorText(data)
		code := "upstream_stream_error"
		if etype == "overloaded_error" {
			code = provider.CodeOverloaded // for the client's error event
		}
		return nil, &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: code, Kind: provider.KindTransient,
			Message: fmt.Sprintf("%s sent an error in the stream (%s): %s", s.label, provider.Scrub(etype, s.key), provider.Scrub(msg, s.key))}
	}
	return data, nil
}

// EventBuffered reports whether the next event has arrived already.
func (s *upstreamStream) EventBuffered() bool {
	return s.held != nil || s.SSEBody.EventBuffered()
}

// read reads the next event that has data, and its type.
func (s *upstreamStream) read() ([]byte, string, error) {
	for {
		data, err := s.SSE.Next()
		if err != nil {
			s.ended = true
			if errors.Is(err, io.EOF) {
				return nil, "", s.broken("it ended before message_stop")
			}
			return nil, "", s.broken(provider.Scrub(err.Error(), s.key))
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		typ, ok := provider.StringField(data, "type")
		if !ok {
			s.ended = true
			return nil, "", s.broken("an event's data is not a JSON object with a type")
		}
		if typ == "message_stop" || typ == "error" {
			s.ended = true
		}
		return data, typ, nil
	}
}

func (s *upstreamStream) broken(why string) *provider.Error {
	return &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_stream_broken", Kind: provider.KindTransient,
		Message: "the stream from " + s.label + " broke: " + why}
}

// jsonAnswerEvents turns a message into the events a stream of it carries,
// for an upstream that answered a stream request with one message:
// message_start with no content, each block started, filled by deltas and
// stopped, message_delta with the stop reason and usage, message_stop.
func jsonAnswerEvents(raw []byte, up string) (provider.EventReader, error) {
	var m struct {
		Content      []json.RawMessage `json:"content"`
		StopReason   json.RawMessage   `json:"stop_reason"`
		StopSequence json.RawMessage   `json:"stop_sequence"`
		Usage        json.RawMessage   `json:"usage"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply", Kind: provider.KindTransient,
			Message: up + " answered a stream request with a malformed message"}
	}
	usage := m.Usage
	if len(usage) == 0 || usage[0] != '{' {
		usage = json.RawMessage(`{"input_tokens":0,"output_tokens":0}`)
	}
	start := provider.SetField(raw, "content", []byte("[]"))
	start = provider.SetField(start, "stop_reason", []byte("null"))
	start = provider.SetField(start, "stop_sequence", []byte("null"))
	start = provider.SetField(start, "usage", provider.SetField(usage, "output_tokens", []byte("0")))

	events := [][]byte{joinJSON(`{"type":"message_start","message":`, start, `}`)}
	for i, block := range m.Content {
		idx := strconv.Itoa(i)
		begin, deltas := streamedBlock(block)
		events = append(events, joinJSON(`{"type":"content_block_start","index":`+idx+`,"content_block":`, begin, `}`))
		for _, d := range deltas {
			events = append(events, joinJSON(`{"type":"content_block_delta","index":`+idx+`,"delta":`, d, `}`))
		}
		events = append(events, []byte(`{"type":"content_block_stop","index":`+idx+`}`))
	}
	stopReason, stopSeq := nullIfAbsent(m.StopReason), nullIfAbsent(m.StopSequence)
	events = append(events,
		joinJSON(`{"type":"message_delta","delta":{"stop_reason":`, stopReason, `,"stop_sequence":`, stopSeq, `},"usage":`, usage, `}`),
		[]byte(`{"type":"message_stop"}`))
	return &provider.SliceEvents{Events: events}, nil
}

// streamedBlock is a content block as a stream starts it, and the deltas
// that fill it.
func streamedBlock(block []byte) (begin []byte, deltas [][]byte) {
	typ, _ := provider.StringField(block, "type")
	switch typ {
	case "text":
		text, _ := provider.StringField(block, "text")
		begin = provider.SetField(provider.DeleteField(block, "citations"), "text", []byte(`""`))
		if text != "" {
			deltas = append(deltas, deltaOf("text_delta", "text", text))
		}
		if raw, ok := provider.Field(block, "citations"); ok {
			var cites []json.RawMessage
			if json.Unmarshal(raw, &cites) == nil {
				for _, c := range cites {
					deltas = append(deltas, joinJSON(`{"type":"citations_delta","citation":`, c, `}`))
				}
			}
		}
	case "thinking":
		thinking, _ := provider.StringField(block, "thinking")
		signature, hasSig := provider.StringField(block, "signature")
		begin = provider.SetField(provider.SetField(block, "thinking", []byte(`""`)), "signature", []byte(`""`))
		if thinking != "" {
			deltas = append(deltas, deltaOf("thinking_delta", "thinking", thinking))
		}
		if hasSig {
			deltas = append(deltas, deltaOf("signature_delta", "signature", signature))
		}
	case "tool_use", "server_tool_use", "mcp_tool_use":
		input := []byte("{}")
		if raw, ok := provider.Field(block, "input"); ok {
			var buf bytes.Buffer
			if json.Compact(&buf, raw) == nil {
				input = buf.Bytes()
			}
		}
		begin = provider.SetField(block, "input", []byte("{}"))
		deltas = append(deltas, deltaOf("input_json_delta", "partial_json", string(input)))
	default:
		// Blocks without deltas (redacted_thinking, server tool results)
		// come whole in their start.
		begin = block
	}
	return begin, deltas
}

// deltaOf is a delta object of type typ with one string member.
func deltaOf(typ, key, value string) []byte {
	q, _ := json.Marshal(value)
	return joinJSON(`{"type":"`+typ+`","`+key+`":`, q, `}`)
}

// joinJSON joins JSON text and raw values into a new slice.
func joinJSON(parts ...any) []byte {
	var out []byte
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			out = append(out, v...)
		case []byte:
			out = append(out, v...)
		case json.RawMessage:
			out = append(out, v...)
		}
	}
	return out
}

func nullIfAbsent(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}
