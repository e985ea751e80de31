// Package responses serves OpenAI's Responses API (what Codex CLI speaks)
// over providers that speak OpenAI chat completions: requests are
// translated into chat bodies, and chat answers and streams back into
// Response objects and the Responses event stream, with growing sequence
// numbers and every item added, filled and done in order. What a chat
// upstream cannot do (built-in tools, stored responses and files) is
// refused with an error that says so, not ignored. It also reads the
// usage of native Responses answers and events, for upstreams that speak
// the API themselves. It knows nothing of Caddy.
package responses
