package openaitest

import (
	"net/http"
	"slices"
	"strconv"
)

// listModels serves GET /v1/models.
func (c *call) listModels() {
	r := c.r
	if r.Method != http.MethodGet {
		c.w.Header().Set("Allow", http.MethodGet)
		c.fail(http.StatusMethodNotAllowed, errBadMethod(r), "the model list needs GET, got "+r.Method)
		return
	}
	if !c.authorize() {
		return
	}
	s := c.s
	s.mu.Lock()
	b := s.behaviors[c.key]
	status := s.modelsStatus
	models := slices.Clone(s.models)
	s.mu.Unlock()

	switch b {
	case Unauthorized:
		c.scripted(b.String(), http.StatusUnauthorized, errIncorrectKey(c.key))
		return
	case Forbidden:
		c.scripted(b.String(), http.StatusForbidden, errForbidden(""))
		return
	}
	if status != 0 && status != http.StatusOK {
		c.scripted("SetModelsStatus("+strconv.Itoa(status)+")", status, c.errForStatus(status))
		return
	}

	data := make([]any, 0, len(models))
	for _, id := range models {
		data = append(data, map[string]any{
			"id":       id,
			"object":   "model",
			"created":  ModelCreated,
			"owned_by": ModelOwner,
		})
	}
	c.finish(http.StatusOK, "ok")
	writeJSON(c.w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// errForStatus is the error object a real service sends with status.
func (c *call) errForStatus(status int) apiError {
	switch {
	case status == http.StatusUnauthorized:
		return errIncorrectKey(c.key)
	case status == http.StatusPaymentRequired:
		return errPaymentRequired
	case status == http.StatusForbidden:
		return errForbidden("")
	case status == http.StatusTooManyRequests:
		return errRateLimited
	case status == http.StatusServiceUnavailable:
		return errOverloaded
	case status >= 500:
		return errServer
	}
	msg := http.StatusText(status)
	if msg == "" {
		msg = "status " + strconv.Itoa(status)
	}
	return apiError{Message: msg, Type: "invalid_request_error"}
}
