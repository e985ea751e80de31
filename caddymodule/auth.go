package caddymodule

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authorized checks the client's key against every configured key in
// constant time: keys are compared as SHA-256 digests, so neither a key's
// content nor its length shows in the timing, and every key is compared.
// (Caddy logs a copy of the request made before any handler runs: keeping
// x-api-key out of its logs takes a log filter, as the README shows.)
func (h *Handler) authorized(r *http.Request) bool {
	apiKey := r.Header.Get("X-Api-Key")
	if h.Anonymous {
		return true
	}
	presented := ""
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
		presented = strings.TrimSpace(auth[7:])
	} else if apiKey != "" {
		presented = strings.TrimSpace(apiKey)
	}
	if presented == "" {
		return false
	}
	sum := sha256.Sum256([]byte(presented))
	match := 0
	for i := range h.keys {
		match |= subtle.ConstantTimeCompare(sum[:], h.keys[i][:])
	}
	return match == 1
}
