package iflow

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/proxycast/caddy-proxycast/provider"
)

// envelope is iFlow's business reply, which it sends with HTTP 200 in
// place of a completion for bad keys, rate limits and unknown models.
type envelope struct {
	Status    json.RawMessage `json:"status"` // a string or a number
	Msg       string          `json:"msg"`
	Message   string          `json:"message"`
	ErrorCode json.RawMessage `json:"error_code"`
	Error     json.RawMessage `json:"error"`
}

// replyError returns the error that an HTTP 200 JSON reply stands for, or
// nil when it is a chat completion. Anything without "choices" is an
// error: a client asked for a completion and must not get something else
// with a 200.
func replyError(body []byte, apiKey string) *provider.Error {
	if _, ok := provider.Field(body, "choices"); ok {
		return nil
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return &provider.Error{
			Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply",
			Message: "iflow answered with a body that is not JSON", Kind: provider.KindTransient,
		}
	}
	msg := provider.Scrub(firstNonEmpty(env.Msg, env.Message, errorText(env.Error)), apiKey)
	// The status goes into the message too: it is upstream text like msg.
	code := provider.Scrub(strings.Trim(string(env.Status), `"`), apiKey)
	switch {
	case (len(env.ErrorCode) > 0 && string(env.ErrorCode) != "null") || strings.Contains(strings.ToLower(msg), "model not support"):
		return &provider.Error{
			Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "model_not_supported",
			Message: "iflow does not support this model: " + msg, Kind: provider.KindModel,
		}
	case code == "434" && strings.Contains(strings.ToLower(msg), "blocked"):
		return &provider.Error{
			Status: http.StatusForbidden, Type: "permission_error", Code: "upstream_key_blocked",
			Message: "iflow has blocked the credential's API key: " + msg, Kind: provider.KindBlocked,
		}
	case code == "434":
		return &provider.Error{
			Status: http.StatusUnauthorized, Type: "authentication_error", Code: "upstream_key_invalid",
			Message: "iflow rejected the credential's API key: " + msg, Kind: provider.KindAuth,
		}
	case code == "439":
		return &provider.Error{
			Status: http.StatusUnauthorized, Type: "authentication_error", Code: "upstream_token_expired",
			Message: "iflow says the credential's token has expired: " + msg, Kind: provider.KindAuth,
		}
	case code == "449":
		return &provider.Error{
			Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "upstream_rate_limited",
			Message: "iflow rate limit reached: " + msg, Kind: provider.KindRateLimit,
		}
	}
	if msg == "" {
		msg = "no choices and no error message"
	}
	detail := msg
	if code != "" {
		detail = "status " + code + ": " + msg
	}
	return &provider.Error{
		Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_error",
		Message: "iflow answered with an error instead of a completion (" + detail + ")",
		Kind:    provider.KindTransient,
	}
}

// statusError maps an iFlow reply with a non-200 status as any
// OpenAI-compatible service's, but for two answers of iFlow's own: a 406
// for a model closed to API use (or an unsigned request), and a 404 for
// a model it does not offer, whatever the text.
func statusError(status int, header http.Header, body []byte, model, apiKey string) *provider.Error {
	msg, _ := provider.ErrorText(body)
	if msg = provider.Scrub(msg, apiKey); msg == "" {
		msg = http.StatusText(status)
	}
	switch status {
	case http.StatusNotAcceptable:
		return &provider.Error{Status: status, Type: provider.TypeForStatus(status), Code: "upstream_not_acceptable", Kind: provider.KindModel,
			Message: "iflow refused the request (HTTP 406); the model may be closed to API use: " + msg}
	case http.StatusNotFound:
		return &provider.Error{Status: status, Type: provider.TypeForStatus(status), Code: "model_not_found", Kind: provider.KindModel,
			Message: "iflow does not offer the model: " + msg}
	}
	return provider.StatusError("iflow", status, header, body, model, apiKey)
}

// streamChunkError returns the error a stream chunk stands for: an error
// object, an envelope in place of a chunk, or iFlow's
// finish_reason "network_error", which marks an upstream failure rather
// than a normal end.
func streamChunkError(data []byte, first bool, apiKey string) *provider.Error {
	// Most chunks have no "error" at all: one scan rules that out.
	if bytes.Contains(data, []byte(`"error"`)) {
		if raw, ok := provider.Field(data, "error"); ok && string(raw) != "null" {
			return &provider.Error{
				Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_stream_error",
				Message: "iflow sent an error in the stream: " + provider.Scrub(errorText(raw), apiKey),
				Kind:    provider.KindTransient,
			}
		}
	}
	// A chunk always has choices; anything else (iFlow's envelopes can
	// arrive in place of any chunk) is an error.
	if first || !bytes.Contains(data, []byte(`"choices"`)) {
		if e := replyError(data, apiKey); e != nil {
			return e
		}
	}
	if bytes.Contains(data, []byte(`"network_error"`)) {
		var chunk struct {
			Choices []struct {
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if json.Unmarshal(data, &chunk) == nil {
			for _, c := range chunk.Choices {
				if c.FinishReason == "network_error" {
					return &provider.Error{
						Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_network_error",
						Message: "iflow reported a network error in the middle of the stream",
						Kind:    provider.KindTransient,
					}
				}
			}
		}
	}
	return nil
}

// errorText reads an "error" member that is either a string or an object
// with a message.
func errorText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	msg, _ := provider.ErrorText(append(append([]byte(`{"error":`), raw...), '}'))
	return msg
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
