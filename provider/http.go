package provider

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Bounds on what is read of an upstream's reply.
const (
	// MaxReply bounds a non-streamed answer.
	MaxReply = 32 << 20
	// MaxErrorBody bounds what is read of an error answer.
	MaxErrorBody = 64 << 10
)

// ReadReply reads a whole reply of at most MaxReply bytes, or one byte
// more to show that it is larger. A Content-Length (size) up to 1 MiB
// sizes the buffer at once, where io.ReadAll would grow it step by step
// from 512 bytes; a larger one is not trusted before the bytes arrive.
func ReadReply(r io.Reader, size int64) ([]byte, error) {
	lr := io.LimitedReader{R: r, N: MaxReply + 1}
	if size < 0 || size > 1<<20 {
		size = 512
	}
	// One byte more, so that the read that finds the end needs no room.
	buf := make([]byte, 0, size+1)
	for {
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// ReadErrorBody reads an error answer's body, bounded by MaxErrorBody.
func ReadErrorBody(r io.Reader) []byte {
	raw, _ := io.ReadAll(io.LimitReader(r, MaxErrorBody))
	return raw
}

// IsEventStream reports whether a Content-Type is text/event-stream, as
// mime.ParseMediaType would read it, without the map of parameters that
// it allocates.
func IsEventStream(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return asciiLowerEqual(strings.TrimSpace(mt), "text/event-stream")
}

// asciiLowerEqual reports whether s folded to lower case is lower. Only
// ASCII letters fold: lower has no letter that another rune lower-cases to.
func asciiLowerEqual(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// RedirectTarget is a redirect's Location without the parts that may carry
// a secret: credentials, query and fragment, and secrets wherever they
// appear.
func RedirectTarget(loc string, secrets ...string) string {
	u, err := url.Parse(loc)
	if err != nil || loc == "" {
		return "(no valid Location)"
	}
	return Scrub((&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(), secrets...)
}

// errorBody is the union of the error shapes upstreams send.
type errorBody struct {
	Error   json.RawMessage `json:"error"`
	Message string          `json:"message"`
	Msg     string          `json:"msg"`
	Detail  json.RawMessage `json:"detail"`
	Code    json.RawMessage `json:"code"`
	Type    string          `json:"type"`
}

type errorObject struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
}

// ErrorText is the message and the code (or type) of an error body in the
// shapes upstreams use: {"error":{"message","code","type"}}, {"error":"…"},
// {"message"}, {"msg"}, {"detail"}. Both are the upstream's text,
// unscrubbed; body that is not JSON is its own message.
func ErrorText(body []byte) (message, code string) {
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil {
		text := strings.TrimSpace(string(body))
		if strings.HasPrefix(text, "<") {
			return "", "" // an HTML error page says nothing a status does not
		}
		return text, ""
	}
	code = rawText(eb.Code)
	if code == "" {
		code = eb.Type
	}
	if len(eb.Error) > 0 && string(eb.Error) != "null" {
		var s string
		if json.Unmarshal(eb.Error, &s) == nil {
			return firstNonEmpty(s, eb.Message, eb.Msg), code
		}
		var obj errorObject
		if json.Unmarshal(eb.Error, &obj) == nil {
			if c := rawText(obj.Code); c != "" {
				code = c
			} else if obj.Type != "" {
				code = obj.Type
			}
			return firstNonEmpty(obj.Message, eb.Message, eb.Msg), code
		}
	}
	return firstNonEmpty(eb.Message, eb.Msg, rawText(eb.Detail)), code
}

// rawText is a JSON string's value, or the JSON of any other value.
func rawText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// RetryAfter is how long an upstream asked to wait before the next call,
// zero when it did not say: the Retry-After header (seconds or an HTTP
// date), the rate-limit reset headers of OpenAI (x-ratelimit-reset-*, "6m0s")
// and Anthropic (anthropic-ratelimit-*-reset, a time), or a hint in the
// error body ("Please try again in 7.5s", "retry_after": 30,
// "retryDelay": "30s"). The longest of them counts.
func RetryAfter(h http.Header, body []byte, now time.Time) time.Duration {
	var d time.Duration
	longer := func(c time.Duration) {
		if c > d {
			d = c
		}
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
			longer(seconds(secs))
		} else if t, err := http.ParseTime(v); err == nil {
			longer(t.Sub(now))
		}
	}
	for name, vals := range h {
		lower := strings.ToLower(name)
		if len(vals) == 0 || !strings.HasSuffix(lower, "-reset") && !strings.HasPrefix(lower, "x-ratelimit-reset") {
			continue
		}
		switch {
		case strings.HasPrefix(lower, "x-ratelimit-reset"):
			if c, err := time.ParseDuration(vals[0]); err == nil {
				longer(c)
			}
		case strings.HasPrefix(lower, "anthropic-ratelimit-"):
			if t, err := time.Parse(time.RFC3339, vals[0]); err == nil {
				longer(t.Sub(now))
			}
		}
	}
	if len(body) > 0 {
		for _, m := range retryHints.FindAllSubmatch(body, 4) {
			switch {
			case len(m[1]) > 0:
				if c, err := time.ParseDuration(string(m[1])); err == nil {
					longer(c)
				}
			case len(m[2]) > 0:
				if secs, err := strconv.ParseFloat(string(m[2]), 64); err == nil && secs > 0 {
					longer(seconds(secs))
				}
			case len(m[3]) > 0:
				if c, err := time.ParseDuration(string(m[3])); err == nil {
					longer(c)
				}
			}
		}
	}
	return max(d, 0)
}

// maxRetryAfter bounds what an upstream's word on when to come back can
// mean; the pool caps rests far lower anyway.
const maxRetryAfter = 366 * 24 * time.Hour

// seconds converts a count of seconds an upstream sent, bounded so that
// no number it sends (1e300, +Inf) overflows into a negative wait.
func seconds(secs float64) time.Duration {
	if secs >= maxRetryAfter.Seconds() {
		return maxRetryAfter
	}
	return time.Duration(secs * float64(time.Second))
}

// retryHints are the ways error bodies say when to try again.
var retryHints = regexp.MustCompile(`(?i)(?:try again|retry) in ((?:[0-9.]+(?:ms|s|m|h))+)|"retry_?after(?:_seconds)?"\s*:\s*"?([0-9.]+)|"retryDelay"\s*:\s*"([0-9.]+s)"`)

// quotaHints are error texts that mean a drained balance or quota, not a
// rate limit: waiting seconds does not help.
var quotaHints = []string{"insufficient_quota", "insufficient balance", "insufficient credits",
	"insufficient_balance", "exceeded_current_quota", "exceeded your current quota", "billing", "余额不足", "quota exceeded"}

// QuotaExhausted reports whether an error's text or code says the
// account's balance or quota is used up.
func QuotaExhausted(message, code string) bool {
	text := strings.ToLower(message + " " + code)
	for _, h := range quotaHints {
		if strings.Contains(text, h) {
			return true
		}
	}
	return false
}

// NamesModel reports whether an error says the model is what is wrong:
// its code is model_not_found, or its message names the model (or a
// model) as unknown, missing or unsupported.
func NamesModel(message, code, model string) bool {
	if strings.Contains(strings.ToLower(code), "model_not_found") {
		return true
	}
	lower := strings.ToLower(message)
	if !strings.Contains(lower, "model") {
		return false
	}
	if model != "" && strings.Contains(lower, strings.ToLower(model)) {
		return true
	}
	for _, w := range []string{"not exist", "not found", "not support", "unknown model", "invalid model", "no such model", "unsupported model"} {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// StatusOverloaded is Anthropic's status for an API under too much load.
const StatusOverloaded = 529

// CodeOverloaded is the Code of an upstream that said it is overloaded
// (503, 529).
const CodeOverloaded = "upstream_overloaded"

// StatusError classifies an upstream's answer with a status other than
// 200 the way OpenAI-compatible services mean it. up names the upstream
// in messages ("iflow", `provider "deepseek"`); model is the model the
// call asked for; secrets are taken out of the upstream's text.
func StatusError(up string, status int, h http.Header, body []byte, model string, secrets ...string) *Error {
	msg, code := ErrorText(body)
	msg, code = Scrub(msg, secrets...), Scrub(code, secrets...)
	if msg == "" {
		msg = http.StatusText(status)
	}
	e := &Error{Status: status, Type: TypeForStatus(status), Message: msg}
	switch {
	case status >= 300 && status < 400:
		// Calls are not redirected: a signed POST must not turn into a GET
		// or go to another host. It is nearly always an api_base to fix
		// (http:// where the service wants https://).
		e.Status, e.Type, e.Code, e.Kind = http.StatusBadGateway, "api_error", "upstream_redirect", KindClient
		e.Message = fmt.Sprintf("%s answered with a redirect (HTTP %d) to %q, which is not followed; check the provider's api_base",
			up, status, RedirectTarget(h.Get("Location"), secrets...))
	case status == http.StatusProxyAuthRequired:
		return ProxyStatusError(fmt.Sprintf("%d %s", status, http.StatusText(status)))
	case status == http.StatusPaymentRequired || QuotaExhausted(msg, code):
		e.Status, e.Type, e.Code, e.Kind = http.StatusTooManyRequests, "insufficient_quota", "upstream_quota_exhausted", KindQuota
		e.RetryAfter = RetryAfter(h, body, time.Now())
		e.Message = fmt.Sprintf("%s says the credential's balance or quota is used up (HTTP %d): %s", up, status, msg)
	case status == http.StatusUnauthorized:
		e.Code, e.Kind = "upstream_key_invalid", KindAuth
		e.Message = fmt.Sprintf("%s rejected the credential: %s", up, msg)
	case status == http.StatusForbidden:
		e.Code, e.Kind = "upstream_forbidden", KindBlocked
		e.Message = fmt.Sprintf("%s refused the credential: %s", up, msg)
	case status == http.StatusTooManyRequests:
		e.Code, e.Kind = "upstream_rate_limited", KindRateLimit
		e.RetryAfter = RetryAfter(h, body, time.Now())
		e.Message = fmt.Sprintf("%s rate limit reached: %s", up, msg)
	case status == http.StatusNotFound && !NamesModel(msg, code, model):
		// Not the model: most likely an api_base without its /v1, which
		// every credential would meet alike.
		e.Status, e.Type, e.Code, e.Kind = http.StatusBadGateway, "api_error", "upstream_not_found", KindClient
		e.Message = fmt.Sprintf("%s answered HTTP 404 (%s); check the provider's api_base", up, msg)
	case (status == http.StatusNotFound || status == http.StatusBadRequest || status == http.StatusUnprocessableEntity) && NamesModel(msg, code, model):
		e.Status, e.Type, e.Code, e.Kind = http.StatusNotFound, "not_found_error", "model_not_found", KindModel
		e.Message = fmt.Sprintf("%s does not offer the model %q: %s", up, model, msg)
	case status == http.StatusServiceUnavailable || status == StatusOverloaded:
		// Said apart from other failures: Anthropic's clients are told
		// (529) that it is load, which they wait out.
		e.Status, e.Type, e.Code, e.Kind = http.StatusBadGateway, "api_error", CodeOverloaded, KindTransient
		e.Message = fmt.Sprintf("%s is overloaded (HTTP %d): %s", up, status, msg)
	case status == http.StatusRequestTimeout || status >= 500:
		e.Status, e.Type, e.Code, e.Kind = http.StatusBadGateway, "api_error", "upstream_error", KindTransient
		e.Message = fmt.Sprintf("%s failed (HTTP %d): %s", up, status, msg)
	default:
		e.Code, e.Kind = "upstream_rejected", KindClient
		e.Message = fmt.Sprintf("%s rejected the request (HTTP %d): %s", up, status, msg)
	}
	return e
}
