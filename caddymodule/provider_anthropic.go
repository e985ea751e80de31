package caddymodule

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/proxycast/caddy-proxycast/anthropic"
	"github.com/proxycast/caddy-proxycast/provider"
)

func init() {
	caddy.RegisterModule(Anthropic{})
}

// Anthropic is Anthropic's Messages API (api.anthropic.com, or a service
// that speaks it). Messages requests pass through as sent, with the
// model routed; OpenAI chat requests are translated into Messages and
// their answers back. Its credentials are api_key ones, sent as
// x-api-key.
type Anthropic struct {
	// APIBase is the API's base URL, before /v1/messages. Redirects are
	// not followed. Default: https://api.anthropic.com.
	APIBase string `json:"api_base,omitempty"`

	// Version is sent as anthropic-version. Default: 2023-06-01.
	Version string `json:"version,omitempty"`

	// Betas says what becomes of a client's anthropic-beta header:
	// "pass" sends it on, "drop" sends none, and a list of beta names
	// sends those of the client's that are in it. Default: pass.
	Betas []string `json:"betas,omitempty"`

	// ModelList is a fixed list of the instance's models, for
	// GET /v1/models.
	ModelList []string `json:"models,omitempty"`

	// ModelsFromUpstream fetches the model list from {api_base}/v1/models
	// with a credential's key, at start and every models_refresh; a
	// failed fetch keeps the last list. Default: off.
	ModelsFromUpstream bool `json:"models_from_upstream,omitempty"`

	// RefreshInterval is how often the fetched list is refreshed.
	// Default: 1h.
	RefreshInterval caddy.Duration `json:"models_refresh,omitempty"`

	// Headers are sent with every call; values take {env.NAME} and
	// {file.PATH}.
	Headers map[string]string `json:"headers,omitempty"`

	// MaxTokens is the max_tokens an OpenAI chat request that names none
	// is sent with, since the Messages API requires one. Default: 8192.
	MaxTokens int `json:"max_tokens,omitempty"`

	p anthropic.Provider
}

// DefaultAnthropicBase is where the anthropic type sends calls unless
// api_base says otherwise.
const DefaultAnthropicBase = "https://api.anthropic.com"

// CaddyModule returns the Caddy module information.
func (Anthropic) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  providerNamespace + ".anthropic",
		New: func() caddy.Module { return new(Anthropic) },
	}
}

// Provision checks the settings and puts them in force.
func (m *Anthropic) Provision(caddy.Context) error {
	base := m.APIBase
	if base == "" {
		base = DefaultAnthropicBase
	}
	if err := checkBaseURL(base); err != nil {
		return fmt.Errorf("api_base: %w", err)
	}
	if m.MaxTokens < 0 {
		return fmt.Errorf("max_tokens must be a positive number of tokens")
	}
	betas, err := betaPolicy(m.Betas)
	if err != nil {
		return err
	}
	p := anthropic.Provider{
		APIBase:      strings.TrimRight(base, "/"),
		Version:      m.Version,
		Betas:        betas,
		StaticModels: slices.Clone(m.ModelList),
	}
	if p.Refresh, err = modelsRefresh(m.ModelsFromUpstream, m.RefreshInterval); err != nil {
		return err
	}
	if p.Headers, err = resolveHeaders(m.Headers); err != nil {
		return err
	}
	if err := p.Check(); err != nil {
		return err
	}
	p.Name = m.p.Name
	m.p = p
	return nil
}

// betaPolicy reads the betas setting.
func betaPolicy(betas []string) (anthropic.BetaPolicy, error) {
	switch {
	case len(betas) == 0, len(betas) == 1 && betas[0] == "pass":
		return anthropic.BetaPolicy{}, nil
	case len(betas) == 1 && betas[0] == "drop":
		return anthropic.BetaPolicy{Drop: true}, nil
	case slices.Contains(betas, "pass") || slices.Contains(betas, "drop"):
		return anthropic.BetaPolicy{}, fmt.Errorf("betas: pass and drop stand alone; to pass some betas, list only their names")
	}
	return anthropic.BetaPolicy{Allow: slices.Clone(betas)}, nil
}

func (m *Anthropic) setName(name string) { m.p.Name = name }

// UnmarshalCaddyfile reads the block of `provider <name> { type anthropic … }`:
//
//	provider <name> {
//		type          anthropic
//		api_base      <url>                # default https://api.anthropic.com
//		version       <anthropic-version>  # default 2023-06-01
//		betas         pass|drop|<beta...>  # default pass
//		models        <model...>           # repeatable
//		models_from_upstream [<interval>]  # default 1h
//		header        <name> <value>       # repeatable
//		max_tokens    <n>                  # for chat requests naming none; default 8192
//	}
//
// The dispenser is positioned on the provider's name.
func (m *Anthropic) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // provider name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		option := d.Val()
		if option != "models" && option != "header" && option != "type" && seen[option] {
			return d.Errf("%s is set twice", option)
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
		case "version":
			if len(args) != 1 {
				return d.Err("version needs one anthropic-version value, such as 2023-06-01")
			}
			m.Version = args[0]
		case "betas":
			if len(args) == 0 {
				return d.Err("betas needs pass, drop, or the names of the betas to pass")
			}
			if _, err := betaPolicy(args); err != nil {
				return d.Err(err.Error())
			}
			m.Betas = args
		case "max_tokens":
			if len(args) != 1 {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n <= 0 {
				return d.Errf("max_tokens: %q is not a positive number of tokens", args[0])
			}
			m.MaxTokens = n
		default:
			return d.Errf("unrecognized anthropic provider option %q (want api_base, version, betas, models, models_from_upstream, header or max_tokens)", option)
		}
	}
	return nil
}

// Models lists the instance's fixed models.
func (m *Anthropic) Models() []string { return m.p.Models() }

// NewAuth checks one credential.
func (m *Anthropic) NewAuth(spec provider.CredentialSpec) (provider.Auth, error) {
	return m.p.NewAuth(spec)
}

// Speaks says that the instance takes Messages requests.
func (m *Anthropic) Speaks() []provider.Format { return m.p.Speaks() }

// Chat sends a Messages request.
func (m *Anthropic) Chat(ctx context.Context, call *provider.Call) (*provider.Response, error) {
	return m.p.Chat(ctx, call)
}

// CountTokens asks the API to count a request's tokens.
func (m *Anthropic) CountTokens(ctx context.Context, call *provider.Call) (int64, error) {
	return m.p.CountTokens(ctx, call)
}

// DefaultMaxTokens is the max_tokens of a translated chat request that
// names none.
func (m *Anthropic) DefaultMaxTokens() int { return m.MaxTokens }

// ModelsRefresh is how often the model list is fetched from the upstream.
func (m *Anthropic) ModelsRefresh() time.Duration { return m.p.ModelsRefresh() }

// FetchModels fetches the model list from the upstream.
func (m *Anthropic) FetchModels(ctx context.Context, call *provider.Call) ([]string, error) {
	return m.p.FetchModels(ctx, call)
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Anthropic)(nil)
	_ caddyfile.Unmarshaler = (*Anthropic)(nil)
	_ provider.Provider     = (*Anthropic)(nil)
	_ provider.Speaker      = (*Anthropic)(nil)
	_ provider.TokenCounter = (*Anthropic)(nil)
	_ provider.ModelSource  = (*Anthropic)(nil)
	_ instance              = (*Anthropic)(nil)
)
