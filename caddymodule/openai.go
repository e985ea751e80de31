package caddymodule

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// errorBody is the OpenAI error object.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code,omitempty"`
}

// writeError answers with an OpenAI-style error. Clients of this API read
// error bodies, so errors are written here rather than handed to Caddy's
// handle_errors, which would replace the body.
func writeError(w http.ResponseWriter, status int, typ, code, message string) {
	writeErrorBody(w, status, errorDetail{Message: message, Type: typ, Code: code})
}

// writeParamError answers 400 for one bad request parameter.
func writeParamError(w http.ResponseWriter, param, message string) {
	writeErrorBody(w, http.StatusBadRequest, errorDetail{
		Message: message, Type: "invalid_request_error", Param: &param, Code: "invalid_" + param,
	})
}

func writeErrorBody(w http.ResponseWriter, status int, d errorDetail) {
	body, _ := json.Marshal(errorBody{Error: d})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeProviderError(w http.ResponseWriter, e *provider.Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	writeError(w, e.Status, e.Type, e.Code, e.Message)
}

// errorEvent is the data of the SSE event that reports a failure after a
// stream has begun, when the status can no longer change. OpenAI's Go SDK
// ends the stream with an error carrying this message (ssestream's
// StreamError); its Python and Node SDKs raise it as an API error.
func errorEvent(e *provider.Error) []byte {
	body, _ := json.Marshal(errorBody{Error: errorDetail{Message: e.Message, Type: e.Type, Code: e.Code}})
	return body
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// models lists every client-side model name that routes somewhere.
func (h *Handler) models() []modelObject {
	var out []modelObject
	for _, name := range sortedKeys(h.providers) {
		for _, m := range h.providers[name].instanceModels() {
			for _, alias := range h.router.aliases(name, m) {
				out = append(out, modelObject{ID: alias, Object: "model", OwnedBy: name})
			}
		}
	}
	return out
}

func (h *Handler) serveModels(w http.ResponseWriter) {
	writeJSON(w, struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{Object: "list", Data: h.models()})
}

func (h *Handler) serveModel(w http.ResponseWriter, id string) {
	for _, m := range h.models() {
		if m.ID == id {
			writeJSON(w, m)
			return
		}
	}
	writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
		"the model "+strconv.Quote(id)+" does not exist")
}

func writeJSON(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}
