package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/provider"
)

// maxModelName bounds the model name a client may send; it keeps glob
// matching cheap.
const maxModelName = 256

var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// serveChat is the request path: read the body, route the model, pick a
// credential, call the provider and relay its answer.
func (h *Handler) serveChat(w http.ResponseWriter, r *http.Request) error {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			bodyBuffers.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.MaxBodySize)); err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
				fmt.Sprintf("request body is larger than %d bytes", h.MaxBodySize))
			return nil
		}
		writeError(w, http.StatusBadRequest, "invalid_request_error", "bad_request", "reading the request body failed")
		return nil
	}
	body := buf.Bytes()
	if !json.Valid(body) || bytes.TrimSpace(body)[0] != '{' {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json",
			"the request body must be a JSON object")
		return nil
	}
	model, ok := provider.StringField(body, "model")
	if !ok || model == "" {
		writeParamError(w, "model", "you must provide a model parameter (a string)")
		return nil
	}
	if len(model) > maxModelName {
		writeParamError(w, "model", fmt.Sprintf("model name is longer than %d bytes", maxModelName))
		return nil
	}
	stream := false
	if raw, ok := provider.Field(body, "stream"); ok {
		switch string(raw) {
		case "true":
			stream = true
		case "false", "null":
		default:
			writeParamError(w, "stream", "stream must be true or false")
			return nil
		}
	}

	provName, upstreamModel, ok := h.router.route(model)
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("no routing rule matches model %q and no default_provider is set", model))
		return nil
	}
	ps := h.providers[provName]
	entry, err := ps.pool.Pick()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "api_error", "no_credential",
			fmt.Sprintf("provider %q has no usable credential", provName))
		return nil
	}
	if upstreamModel != model {
		body = provider.SetStringField(body, "model", upstreamModel)
	}
	w.Header().Set(CredentialHeader, entry.ID)

	log := h.logger.With(zap.String("provider", provName), zap.String("credential", entry.ID),
		zap.String("model", upstreamModel))
	apiKey, err := entry.Value.keys.APIKey(r.Context())
	if err != nil {
		log.Error("credential has no usable key", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "api_error", "credential_unavailable",
			fmt.Sprintf("credential %q of provider %q has no usable key", entry.ID, provName))
		return nil
	}
	resp, err := ps.provider.Chat(r.Context(), &provider.Call{
		Model:  upstreamModel,
		Body:   body,
		Stream: stream,
		APIKey: apiKey,
		Client: entry.Value.client,
	})
	if err != nil {
		if pe, ok := errors.AsType[*provider.Error](err); ok && pe.Kind == provider.KindAuth && entry.Value.renewing != nil {
			entry.Value.renewing.Rejected(apiKey)
		}
		h.upstreamFailed(w, r, log, err, false)
		return nil
	}
	if resp.Events != nil {
		h.relayStream(w, r, log, resp.Events)
		return nil
	}
	w.Header().Set("Content-Type", resp.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp.Body)
	return nil
}

func writeParamError(w http.ResponseWriter, param, message string) {
	body, _ := json.Marshal(errorBody{Error: errorDetail{
		Message: message, Type: "invalid_request_error", Param: &param, Code: "invalid_" + param,
	}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write(body)
}

// upstreamFailed reports a failed upstream call: as an error response if
// nothing has been written yet, else as a final error event.
func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, log *zap.Logger, err error, streaming bool) {
	if r.Context().Err() != nil {
		log.Debug("client went away", zap.Error(err))
		return
	}
	pe, ok := errors.AsType[*provider.Error](err)
	if !ok {
		// Transport errors name hosts and addresses, never keys.
		pe = &provider.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_unreachable",
			Message: "the upstream request failed: " + err.Error(), Kind: provider.KindTransient}
		if errors.Is(err, context.DeadlineExceeded) {
			pe.Status, pe.Code = http.StatusGatewayTimeout, "upstream_timeout"
		}
	}
	log.Warn("upstream failed", zap.Int("status", pe.Status), zap.String("code", pe.Code),
		zap.Stringer("kind", pe.Kind), zap.String("message", pe.Message), zap.Bool("mid_stream", streaming))
	if streaming {
		writeEvent(w, errorEvent(pe))
		return
	}
	writeProviderError(w, pe)
}

// relayStream passes a stream on event by event, flushing each one. The
// status is sent with the first event, so a stream that fails before it
// still gets a proper error status. A stream is always ended with
// [DONE], also when the upstream forgot it.
func (h *Handler) relayStream(w http.ResponseWriter, r *http.Request, log *zap.Logger, events provider.EventReader) {
	defer events.Close()
	data, err := events.Next()
	if err != nil && !errors.Is(err, io.EOF) {
		h.upstreamFailed(w, r, log, err, false)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for err == nil {
		if !writeEvent(w, data) || rc.Flush() != nil {
			return // the client is gone; its context cancels the upstream call
		}
		data, err = events.Next()
	}
	if !errors.Is(err, io.EOF) {
		h.upstreamFailed(w, r, log, err, true)
		_ = rc.Flush()
		return
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	_ = rc.Flush()
}

var eventBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writeEvent writes one SSE event in a single Write.
func writeEvent(w io.Writer, data []byte) bool {
	bp := eventBuffers.Get().(*[]byte)
	b := append((*bp)[:0], "data: "...)
	b = append(b, data...)
	b = append(b, '\n', '\n')
	_, err := w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		eventBuffers.Put(bp)
	}
	return err == nil
}
