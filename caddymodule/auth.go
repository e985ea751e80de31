package caddymodule

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/proxycast/caddy-proxycast/clients"
)

// authorized checks the client's key against every configured key in
// constant time: keys are compared as SHA-256 digests, so neither a key's
// content nor its length shows in the timing, and every key is compared.
// (Caddy logs a copy of the request made before any handler runs: keeping
// x-api-key out of its logs takes a log filter, as the README shows.)
//
// It returns the named client the key belongs to, or nil for a key of
// api_keys and for anonymous requests; ok is false for a request to turn
// away. A named client's key is found by its digest (see clients.Lookup).
func (h *Handler) authorized(r *http.Request) (c *clients.Client, ok bool) {
	apiKey := r.Header.Get("X-Api-Key")
	if h.Anonymous {
		return nil, true
	}
	presented := ""
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
		presented = strings.TrimSpace(auth[7:])
	} else if apiKey != "" {
		presented = strings.TrimSpace(apiKey)
	}
	if presented == "" {
		return nil, false
	}
	if c := h.clientSet().Lookup(presented); c != nil {
		return c, true
	}
	sum := sha256.Sum256([]byte(presented))
	match := 0
	for i := range h.keys {
		match |= subtle.ConstantTimeCompare(sum[:], h.keys[i][:])
	}
	return nil, match == 1
}
