package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/proxycast/caddy-proxycast/anthropic"
	"github.com/proxycast/caddy-proxycast/provider"
	"github.com/proxycast/caddy-proxycast/responses"
)

// DefaultMaxTokens is the max_tokens an OpenAI chat request that names
// none is sent to an Anthropic-format provider with, which requires one.
const DefaultMaxTokens = 8192

// translate chooses the provider's format for the request and turns the
// client's body into it: as it came (with the model rewritten) where the
// provider speaks the client's format, else translated. Chat is the hub
// of every translation: a request goes into chat, then on into the
// provider's format where that is not chat; answers come back the same
// way.
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
	switch {
	case slices.Contains(speaks, provider.FormatChat):
		cr.format = provider.FormatChat
	case slices.Contains(speaks, provider.FormatMessages):
		cr.format = provider.FormatMessages
	default:
		return nil, clientError(http.StatusBadRequest, "invalid_request_error", "unsupported_format",
			fmt.Sprintf("provider %q speaks none of the formats a %s request can be translated into", cr.ps.name, client))
	}
	chat, err := body, error(nil)
	switch client {
	case provider.FormatMessages:
		chat, err = anthropic.ChatRequest(body, cr.model)
	case provider.FormatResponses:
		if cr.responses, err = responses.ChatRequest(body, cr.model, cr.asked); err == nil {
			chat = cr.responses.Chat
		}
	}
	if err != nil {
		e := asClientError(err)
		if client == provider.FormatResponses && e.Code == "unsupported_parameter" {
			e.Message = fmt.Sprintf("provider %q takes chat completions, not the Responses API: %s", cr.ps.name, e.Message)
		}
		return nil, e
	}
	if cr.format == provider.FormatChat {
		return chat, nil
	}
	out, err := anthropic.MessagesRequest(chat, cr.model, maxTokensOf(cr.ps.provider))
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
// format, through chat.
func (cr *chatRequest) translateAnswer(body []byte) ([]byte, error) {
	client := cr.dialect.format()
	if client == cr.format {
		return body, nil
	}
	if cr.format == provider.FormatMessages {
		chat, err := anthropic.ChatAnswer(body, cr.asked)
		if err != nil {
			return nil, err
		}
		body = chat
	}
	switch client {
	case provider.FormatMessages:
		return anthropic.Answer(body, cr.asked)
	case provider.FormatResponses:
		return cr.responses.Answer(body)
	}
	return body, nil
}

// translateStream turns a provider's stream into the client's format,
// through chat, with the counter that learns what the stream cost: a
// translation from chat reads the usage from each chunk already, and the
// others are counted on the way.
func (cr *chatRequest) translateStream(events provider.EventReader) (provider.EventReader, *usageCounter) {
	client := cr.dialect.format()
	counted := newUsageCounter(events, cr.format)
	out := cr.translateCounted(counted, client)
	if r, ok := out.(interface{ Usage() provider.Usage }); ok && cr.format == provider.FormatChat && client != cr.format {
		counted.reported = r.Usage
	}
	return out, counted
}

func (cr *chatRequest) translateCounted(events provider.EventReader, client provider.Format) provider.EventReader {
	if client == cr.format {
		return events
	}
	if cr.format == provider.FormatMessages {
		// A Responses stream ends with the usage, whether asked or not.
		events = anthropic.StreamToChat(events, cr.asked, cr.wantsUsage || client == provider.FormatResponses)
	}
	switch client {
	case provider.FormatMessages:
		return anthropic.StreamFromChat(events, cr.asked)
	case provider.FormatResponses:
		return cr.responses.Stream(events)
	}
	return events
}

// usageOf reads the usage an answer or stream event in format reports.
func usageOf(format provider.Format, data []byte) (provider.Usage, bool) {
	switch format {
	case provider.FormatMessages:
		return anthropic.UsageOf(data)
	case provider.FormatResponses:
		return responses.UsageOf(data)
	}
	return provider.UsageOf(data)
}
