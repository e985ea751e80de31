// Package proxycast is a Caddy plugin that serves one OpenAI-compatible API
// from a pool of AI-provider accounts. Importing it (as xcaddy does)
// registers the http.handlers.proxycast handler, the admin.api.proxycast
// admin endpoints, the `caddy proxycast` commands, its provider modules and
// the proxycast Caddyfile directive.
package proxycast

import (
	_ "github.com/proxycast/caddy-proxycast/caddyfile"
	_ "github.com/proxycast/caddy-proxycast/caddymodule"
)
