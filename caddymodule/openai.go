package caddymodule

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/proxycast/caddy-proxycast/clients"
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

// writeErrorBody answers with an OpenAI-style error. Clients of this API
// read error bodies, so errors are written here rather than handed to
// Caddy's handle_errors, which would replace the body.
func writeErrorBody(w http.ResponseWriter, status int, d errorDetail) {
	body, _ := json.Marshal(errorBody{Error: d})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
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

// models lists every client-side model name that routes somewhere, and
// that the named client c (if any) may use.
func (h *Handler) models(c *clients.Client) []modelObject {
	var out []modelObject
	for _, name := range sortedKeys(h.providers) {
		for _, m := range h.providers[name].instanceModels() {
			for _, alias := range h.router.aliases(name, m) {
				if c == nil || c.MayUse(alias) {
					out = append(out, modelObject{ID: alias, Object: "model", OwnedBy: name})
				}
			}
		}
	}
	return out
}

func (h *Handler) serveModels(w http.ResponseWriter, r *http.Request) {
	if isAnthropicClient(r) {
		writeJSON(w, anthropicModelList(h.models(clientOf(r))))
		return
	}
	writeJSON(w, struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{Object: "list", Data: h.models(clientOf(r))})
}

func (h *Handler) serveModel(w http.ResponseWriter, r *http.Request, id string) {
	for _, m := range h.models(clientOf(r)) {
		if m.ID == id {
			if isAnthropicClient(r) {
				writeJSON(w, anthropicModel(m))
			} else {
				writeJSON(w, m)
			}
			return
		}
	}
	dialectFor(r.URL.Path, r, nil).writeError(w, clientError(http.StatusNotFound, "invalid_request_error", "model_not_found",
		"the model "+strconv.Quote(id)+" does not exist"))
}

func writeJSON(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}
