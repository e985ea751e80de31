package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/anthropic"
	"github.com/proxycast/caddy-proxycast/provider"
)

// EstimateHeader is set on a count_tokens answer that comes from the
// local estimate rather than from the provider.
const EstimateHeader = "X-Proxycast-Token-Count"

// countTimeout bounds a provider's count_tokens call; the estimate
// answers instead when it takes longer.
const countTimeout = 10 * time.Second

// serveCountTokens answers POST /v1/messages/count_tokens: from the
// provider the model routes to where it counts tokens itself (Anthropic),
// else, or when it cannot answer, from the local estimate.
func (h *Handler) serveCountTokens(w http.ResponseWriter, r *http.Request, d dialect) error {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			bodyBuffers.Put(buf)
		}
	}()
	body, e := h.readBody(w, r, buf)
	if e == nil {
		var model string
		model, _, e = requestModel(body)
		if e == nil {
			e = mayUse(clientOf(r), model)
		}
		if e == nil {
			e = h.countTokens(w, r, body, model)
		}
	}
	if e != nil {
		d.writeError(w, e)
	}
	return nil
}

func (h *Handler) countTokens(w http.ResponseWriter, r *http.Request, body []byte, model string) *provider.Error {
	provName, upstreamModel, ok := h.router.route(model)
	if !ok {
		return clientError(http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("no routing rule matches model %q and no default_provider is set", model))
	}
	ps := h.providers[provName]
	if _, counts := ps.provider.(provider.TokenCounter); counts && slices.Contains(ps.formats, provider.FormatMessages) {
		if upstreamModel != model {
			body = provider.SetStringField(body, "model", upstreamModel)
		}
		n, pe := h.countUpstream(r, ps, upstreamModel, body)
		if pe == nil {
			writeJSON(w, struct {
				InputTokens int64 `json:"input_tokens"`
			}{n})
			return nil
		}
		if pe.Kind == provider.KindClient {
			return pe
		}
		h.logger.Warn("count_tokens: the provider could not count; answering with the estimate",
			zap.String("provider", ps.name), zap.String("model", upstreamModel), zap.String("message", pe.Message))
	}
	n, err := anthropic.EstimateTokens(body)
	if err != nil {
		return clientError(http.StatusBadRequest, "invalid_request_error", "invalid_request", err.Error())
	}
	w.Header().Set(EstimateHeader, "estimate")
	writeJSON(w, struct {
		InputTokens int64 `json:"input_tokens"`
	}{n})
	return nil
}

// countUpstream asks the provider with one usable credential. A failure
// here rests no credential: the estimate stands in, and the requests
// that follow meet the credential's trouble themselves.
func (h *Handler) countUpstream(r *http.Request, ps *providerState, model string, body []byte) (int64, *provider.Error) {
	entry, err := ps.pool().Pick(model, "", nil)
	if err != nil {
		return 0, unavailable(ps, model, err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), countTimeout)
	defer cancel()
	key, err := entry.Value.keys.APIKey(ctx)
	if err != nil {
		return 0, noKeyError(entry.ID)
	}
	n, err := ps.provider.(provider.TokenCounter).CountTokens(ctx, &provider.Call{
		Model: model, Format: provider.FormatMessages, Body: body, APIKey: key,
		Transport: entry.Value.client.Transport, Header: r.Header,
	})
	if err != nil {
		pe := provider.TransportError(err)
		pe.Message = provider.Scrub(pe.Message, key, entry.Value.proxySecret)
		return 0, pe
	}
	return n, nil
}

// anthropicModelObject is a model as Anthropic's API lists it.
type anthropicModelObject struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

// modelEpoch stands in for a creation time the gateway does not know.
const modelEpoch = "1970-01-01T00:00:00Z"

func anthropicModel(m modelObject) anthropicModelObject {
	return anthropicModelObject{Type: "model", ID: m.ID, DisplayName: m.ID, CreatedAt: modelEpoch}
}

// anthropicModelList is the whole list on one page, as Anthropic's
// clients page through it.
func anthropicModelList(models []modelObject) any {
	data := make([]anthropicModelObject, len(models))
	for i, m := range models {
		data[i] = anthropicModel(m)
	}
	var first, last *string
	if len(data) > 0 {
		first, last = &data[0].ID, &data[len(data)-1].ID
	}
	return struct {
		Data    []anthropicModelObject `json:"data"`
		HasMore bool                   `json:"has_more"`
		FirstID *string                `json:"first_id"`
		LastID  *string                `json:"last_id"`
	}{Data: data, FirstID: first, LastID: last}
}
