package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/proxycast/caddy-proxycast/anthropic"
	"github.com/proxycast/caddy-proxycast/provider"
)

// DefaultMaxTokens is the max_tokens an OpenAI chat request that names
// none is sent to an Anthropic-format provider with, which requires one.
const DefaultMaxTokens = 8192

// translate chooses the provider's format for the request and turns the
// client's body into it: as it came (with the model rewritten) where the
// provider speaks the client's format, else translated.
func (cr *chatRequest) translate(body []byte) ([]byte, *provider.Error) {
	client := cr.dialect.format()
	speaks := cr.ps.formats
	if slices.Contains(speaks, client) {
		cr.format = client
		if cr.model != cr.asked {
			body = provider.SetStringField(body, "model", cr.model)
		}
		return body, nil
	}
	var out []byte
	var err error
	switch {
	case client == provider.FormatMessages && slices.Contains(speaks, provider.FormatChat):
		cr.format = provider.FormatChat
		out, err = anthropic.ChatRequest(body, cr.model)
	case client == provider.FormatChat && slices.Contains(speaks, provider.FormatMessages):
		cr.format = provider.FormatMessages
		out, err = anthropic.MessagesRequest(body, cr.model, maxTokensOf(cr.ps.provider))
	default:
		return nil, clientError(http.StatusBadRequest, "invalid_request_error", "unsupported_format",
			fmt.Sprintf("provider %q speaks none of the formats a %s request can be translated into", cr.ps.name, client))
	}
	if err != nil {
		return nil, asClientError(err)
	}
	return out, nil
}

// maxTokensOf is the max_tokens a provider that needs one gets for a
// request that names none.
func maxTokensOf(p provider.Provider) int {
	if m, ok := p.(interface{ DefaultMaxTokens() int }); ok && m.DefaultMaxTokens() > 0 {
		return m.DefaultMaxTokens()
	}
	return DefaultMaxTokens
}

// asClientError is a translator's refusal of a request.
func asClientError(err error) *provider.Error {
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe
	}
	return clientError(http.StatusBadRequest, "invalid_request_error", "invalid_request", err.Error())
}

// translateAnswer turns a provider's plain answer into the client's
// format.
func (cr *chatRequest) translateAnswer(body []byte) ([]byte, error) {
	switch client := cr.dialect.format(); {
	case client == cr.format:
		return body, nil
	case client == provider.FormatMessages && cr.format == provider.FormatChat:
		return anthropic.Answer(body, cr.asked)
	case client == provider.FormatChat && cr.format == provider.FormatMessages:
		return anthropic.ChatAnswer(body, cr.asked)
	}
	return nil, fmt.Errorf("no translation of %s answers into %s", cr.format, cr.dialect.format())
}

// translateStream turns a provider's stream into the client's format.
func (cr *chatRequest) translateStream(events provider.EventReader) provider.EventReader {
	switch client := cr.dialect.format(); {
	case client == provider.FormatMessages && cr.format == provider.FormatChat:
		return anthropic.StreamFromChat(events, cr.asked)
	case client == provider.FormatChat && cr.format == provider.FormatMessages:
		return anthropic.StreamToChat(events, cr.asked, cr.wantsUsage)
	}
	return events
}

// usageOf reads the usage an answer or stream event in format reports.
func usageOf(format provider.Format, data []byte) (provider.Usage, bool) {
	if format == provider.FormatMessages {
		return anthropic.UsageOf(data)
	}
	return provider.UsageOf(data)
}
