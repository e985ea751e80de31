// Package anthropic is Anthropic's Messages API as the gateway meets it:
// as a client dialect (Claude Code's requests translated for providers
// that speak OpenAI chat, their answers and streams translated back, in
// Anthropic's exact event order), as a provider type (Provider: requests
// passed to Anthropic's API as they are), the reverse translation for
// OpenAI chat clients routed to it, Anthropic's error objects, and a
// local estimate of a request's tokens for count_tokens.
package anthropic
