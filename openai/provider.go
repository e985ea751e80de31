// Package openai speaks the chat-completions API that OpenAI defined and
// most services copy (DeepSeek, OpenRouter, Moonshot, Zhipu, DashScope,
// Groq, Together, vLLM and Ollama servers…): a client's chat body goes to
// {api_base}/chat/completions as it came, but for the changes the
// instance is configured to make, with the credential's key in the header
// the instance names; answers and streams come back as they are. It
// implements provider.Provider and knows nothing of Caddy or of how
// credentials are chosen.
package openai

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// KeyPlaceholder stands for the credential's key in AuthValue.
const KeyPlaceholder = "{key}"

// Defaults of an instance.
const (
	DefaultAuthHeader    = "Authorization"
	DefaultAuthValue     = "Bearer " + KeyPlaceholder
	DefaultModelsRefresh = time.Hour
)

// Provider is one OpenAI-compatible service. Configure it by assignment;
// it must not change once it serves.
type Provider struct {
	// Name names the instance in messages, such as `provider "deepseek"`.
	Name string
	// APIBase is the API's base URL, such as https://api.deepseek.com/v1.
	APIBase string
	// StaticModels is a fixed model list for GET /v1/models.
	StaticModels []string
	// Refresh, if not zero, is how often to fetch the model list from
	// {api_base}/models.
	Refresh time.Duration
	// Headers are sent with every call.
	Headers http.Header
	// AuthHeader is the header the key goes in, and AuthValue its value
	// with KeyPlaceholder where the key goes. Defaults: Authorization,
	// "Bearer {key}".
	AuthHeader, AuthValue string
	// DropParams are top-level members removed from every body.
	DropParams []string
	// RenameParams are top-level members renamed, old name to new, in the
	// order given; a member that has its new name already is dropped.
	RenameParams [][2]string
	// StreamUsage asks for usage in streams (stream_options.include_usage)
	// when the client did not.
	StreamUsage bool
	// Responses is whether the upstream speaks OpenAI's Responses API
	// itself at {api_base}/responses: Responses requests then go there
	// as they came, instead of being translated into chat.
	Responses bool
}

// Check reports the first thing wrong with the settings.
func (p *Provider) Check() error {
	if p.APIBase == "" {
		return errors.New("api_base is required")
	}
	if p.AuthValue != "" && !strings.Contains(p.AuthValue, KeyPlaceholder) {
		return fmt.Errorf("auth_header: the value must hold %s where the key goes", KeyPlaceholder)
	}
	return nil
}

func (p *Provider) label() string {
	if p.Name == "" {
		return "the upstream"
	}
	return fmt.Sprintf("provider %q", p.Name)
}

// Models lists the fixed models of the instance; those fetched from the
// upstream come through FetchModels.
func (p *Provider) Models() []string { return p.StaticModels }

// ModelsRefresh is how often the model list is fetched; zero: never.
func (p *Provider) ModelsRefresh() time.Duration { return p.Refresh }

// NewAuth checks a credential: an OpenAI-compatible service takes API keys.
func (p *Provider) NewAuth(spec provider.CredentialSpec) (provider.Auth, error) {
	switch spec.AuthType {
	case provider.AuthAPIKey:
		return provider.KeyAuth(spec)
	case "":
		return provider.Auth{}, errors.New("auth_type is required (api_key)")
	default:
		return provider.Auth{}, fmt.Errorf("auth_type %s is not taken by %s, an OpenAI-compatible API: use api_key", spec.AuthType, p.label())
	}
}

// setAuth puts the key in the header the instance names.
func (p *Provider) setAuth(h http.Header, key string) {
	name, value := p.AuthHeader, p.AuthValue
	if name == "" {
		name = DefaultAuthHeader
	}
	if value == "" {
		value = DefaultAuthValue
	}
	h.Set(name, strings.Replace(value, KeyPlaceholder, key, 1))
}
