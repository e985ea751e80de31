package caddymodule

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/net/http/httpguts"

	"github.com/proxycast/caddy-proxycast/openai"
	"github.com/proxycast/caddy-proxycast/provider"
)

func init() {
	caddy.RegisterModule(OpenAI{})
}

// OpenAI is an OpenAI-compatible chat API (OpenAI, DeepSeek, OpenRouter,
// Moonshot, Zhipu, DashScope, Groq, Together, a vLLM or Ollama server…):
// a client's chat body goes to {api_base}/chat/completions as it came,
// with the changes configured here, and the credential's key in the
// header auth_header names. Its credentials are api_key ones.
type OpenAI struct {
	// APIBase is the API's base URL, up to the /chat/completions that is
	// appended, such as https://api.deepseek.com/v1. Required. Redirects
	// are not followed.
	APIBase string `json:"api_base"`

	// ModelList is a fixed list of the instance's models, for
	// GET /v1/models.
	ModelList []string `json:"models,omitempty"`

	// ModelsFromUpstream fetches the model list from {api_base}/models
	// with a credential's key, at start and every ModelsRefresh; a failed
	// fetch keeps the last list. Default: off.
	ModelsFromUpstream bool `json:"models_from_upstream,omitempty"`

	// RefreshInterval is how often the fetched list is refreshed.
	// Default: 1h.
	RefreshInterval caddy.Duration `json:"models_refresh,omitempty"`

	// Headers are sent with every call (OpenRouter's X-Title, say);
	// values take {env.NAME} and {file.PATH}.
	Headers map[string]string `json:"headers,omitempty"`

	// AuthHeader says how the key is sent: the header's name, and its
	// value with {key} where the key goes. Default: Authorization:
	// Bearer {key} (Azure OpenAI: api-key: {key}).
	AuthHeader *AuthHeader `json:"auth_header,omitempty"`

	// DropParams are top-level members removed from every request body,
	// for upstreams that refuse them.
	DropParams []string `json:"drop_params,omitempty"`

	// RenameParams renames top-level members, old name to new, such as
	// max_tokens to max_completion_tokens.
	RenameParams map[string]string `json:"rename_params,omitempty"`

	// StreamUsage asks for usage in streams (stream_options.include_usage),
	// so that streamed answers are counted too; the extra chunk is not
	// shown to a client that did not ask for it. Default: on.
	StreamUsage *bool `json:"stream_usage,omitempty"`

	// Responses says how OpenAI Responses requests (POST /v1/responses,
	// what Codex sends) reach the upstream: "translate" turns them into
	// chat completions and the answers back, so that any chat API serves
	// them; "native" sends them to {api_base}/responses as they came, for
	// upstreams that speak the Responses API (OpenAI itself), built-in
	// tools included. Default: translate.
	Responses string `json:"responses,omitempty"`

	p openai.Provider
}

// AuthHeader is the header a key is sent in.
type AuthHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// CaddyModule returns the Caddy module information.
func (OpenAI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  providerNamespace + ".openai",
		New: func() caddy.Module { return new(OpenAI) },
	}
}

// Provision checks the settings and puts them in force.
func (m *OpenAI) Provision(caddy.Context) error {
	if m.APIBase == "" {
		return fmt.Errorf("api_base is required, such as https://api.openai.com/v1")
	}
	if err := checkBaseURL(m.APIBase); err != nil {
		return fmt.Errorf("api_base: %w", err)
	}
	p := openai.Provider{
		APIBase:      strings.TrimRight(m.APIBase, "/"),
		StaticModels: slices.Clone(m.ModelList),
		DropParams:   slices.Clone(m.DropParams),
		StreamUsage:  m.StreamUsage == nil || *m.StreamUsage,
	}
	switch m.Responses {
	case "", "translate":
	case "native":
		p.Responses = true
	default:
		return fmt.Errorf("responses: %q is neither native nor translate", m.Responses)
	}
	refresh, err := modelsRefresh(m.ModelsFromUpstream, m.RefreshInterval)
	if err != nil {
		return err
	}
	p.Refresh = refresh
	if p.Headers, err = resolveHeaders(m.Headers); err != nil {
		return err
	}
	if a := m.AuthHeader; a != nil {
		if !httpguts.ValidHeaderFieldName(a.Name) {
			return fmt.Errorf("auth_header: %q is not a valid header name", a.Name)
		}
		p.AuthHeader, p.AuthValue = a.Name, a.Value
	}
	for _, from := range sortedKeys(m.RenameParams) {
		p.RenameParams = append(p.RenameParams, [2]string{from, m.RenameParams[from]})
	}
	if err := p.Check(); err != nil {
		return err
	}
	m.p = p
	return nil
}

func (m *OpenAI) setName(name string) { m.p.Name = name }

// UnmarshalCaddyfile reads the block of `provider <name> { type openai … }`:
//
//	provider <name> {
//		type          openai
//		api_base      <url>
//		models        <model...>           # repeatable
//		models_from_upstream [<interval>]  # default 1h
//		header        <name> <value>       # repeatable
//		auth_header   <name> <value>       # default: Authorization "Bearer {key}"
//		drop_params   <member...>          # repeatable
//		rename_params <old> <new> [<old> <new>...]
//		stream_usage  on|off               # default on
//		responses     native|translate     # default translate
//	}
//
// The dispenser is positioned on the provider's name.
func (m *OpenAI) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // provider name
	start := d.Token()
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		option := d.Val()
		switch option {
		case "models", "header", "drop_params", "rename_params", "type":
		default:
			if seen[option] {
				return d.Errf("%s is set twice", option)
			}
		}
		seen[option] = true
		args := d.RemainingArgs()
		if ok, err := sharedOption(d, option, args, &m.ModelList, &m.ModelsFromUpstream, &m.RefreshInterval, &m.Headers); ok {
			if err != nil {
				return err
			}
			continue
		}
		switch option {
		case "type":
			// The directive has read it.
		case "api_base":
			if len(args) != 1 {
				return d.Err("api_base needs one URL")
			}
			if err := checkBaseURL(args[0]); err != nil {
				return d.Errf("api_base: %v", err)
			}
			m.APIBase = args[0]
		case "auth_header":
			if len(args) != 2 {
				return d.Err(`auth_header needs a header name and a value with {key}: auth_header Authorization "Bearer {key}"`)
			}
			if !strings.Contains(args[1], openai.KeyPlaceholder) {
				return d.Errf("auth_header: the value %q has no {key} where the key goes", args[1])
			}
			m.AuthHeader = &AuthHeader{Name: args[0], Value: args[1]}
		case "drop_params":
			if len(args) == 0 {
				return d.Err("drop_params needs at least one member name")
			}
			m.DropParams = append(m.DropParams, args...)
		case "rename_params":
			if len(args) == 0 || len(args)%2 != 0 {
				return d.Err("rename_params needs pairs of names: rename_params max_tokens max_completion_tokens")
			}
			if m.RenameParams == nil {
				m.RenameParams = map[string]string{}
			}
			for i := 0; i < len(args); i += 2 {
				if _, dup := m.RenameParams[args[i]]; dup {
					return d.Errf("rename_params: %s is renamed twice", args[i])
				}
				m.RenameParams[args[i]] = args[i+1]
			}
		case "stream_usage":
			if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
				return d.Err("stream_usage takes on or off")
			}
			on := args[0] == "on"
			m.StreamUsage = &on
		case "responses":
			if len(args) != 1 || (args[0] != "native" && args[0] != "translate") {
				return d.Err("responses takes native (the upstream speaks the Responses API) or translate (into chat, the default)")
			}
			m.Responses = args[0]
		default:
			return d.Errf("unrecognized openai provider option %q (want api_base, models, models_from_upstream, header, auth_header, drop_params, rename_params, stream_usage or responses)", option)
		}
	}
	if m.APIBase == "" {
		at := caddyfile.NewDispenser([]caddyfile.Token{start})
		at.Next()
		return at.Err("an openai provider needs api_base")
	}
	return nil
}

// Models lists the instance's fixed models.
func (m *OpenAI) Models() []string { return m.p.Models() }

// NewAuth checks one credential.
func (m *OpenAI) NewAuth(spec provider.CredentialSpec) (provider.Auth, error) {
	return m.p.NewAuth(spec)
}

// Speaks says whether the instance takes Responses requests as they
// are, besides chat.
func (m *OpenAI) Speaks() []provider.Format { return m.p.Speaks() }

// Chat sends a chat request, or a Responses request to an upstream that
// speaks the API.
func (m *OpenAI) Chat(ctx context.Context, call *provider.Call) (*provider.Response, error) {
	return m.p.Chat(ctx, call)
}

// ModelsRefresh is how often the model list is fetched from the upstream.
func (m *OpenAI) ModelsRefresh() time.Duration { return m.p.ModelsRefresh() }

// FetchModels fetches the model list from the upstream.
func (m *OpenAI) FetchModels(ctx context.Context, call *provider.Call) ([]string, error) {
	return m.p.FetchModels(ctx, call)
}

// Interface guards
var (
	_ caddy.Provisioner     = (*OpenAI)(nil)
	_ caddyfile.Unmarshaler = (*OpenAI)(nil)
	_ provider.Provider     = (*OpenAI)(nil)
	_ provider.ModelSource  = (*OpenAI)(nil)
	_ instance              = (*OpenAI)(nil)
)
