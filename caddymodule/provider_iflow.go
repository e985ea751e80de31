package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/provider"
)

func init() {
	caddy.RegisterModule(IFlow{})
}

// IFlow is the iFlow (心流) provider. Every base URL is configurable so a
// deployment can point at a mirror, and tests at a local fake.
type IFlow struct {
	// APIBase is the chat API base. Default: https://apis.iflow.cn/v1
	APIBase string `json:"api_base,omitempty"`
	// OAuthBase serves OAuth and user info. Default: https://iflow.cn
	OAuthBase string `json:"oauth_base,omitempty"`
	// PlatformBase is the web platform used by cookie credentials.
	// Default: https://platform.iflow.cn
	PlatformBase string `json:"platform_base,omitempty"`

	p iflow.Provider
}

// CaddyModule returns the Caddy module information.
func (IFlow) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  providerNamespace + ".iflow",
		New: func() caddy.Module { return new(IFlow) },
	}
}

// Provision applies defaults and checks the base URLs.
func (m *IFlow) Provision(caddy.Context) error {
	bases := []struct {
		name string
		val  *string
		def  string
	}{
		{"api_base", &m.APIBase, iflow.DefaultAPIBase},
		{"oauth_base", &m.OAuthBase, iflow.DefaultOAuthBase},
		{"platform_base", &m.PlatformBase, iflow.DefaultPlatformBase},
	}
	for _, b := range bases {
		if *b.val == "" {
			*b.val = b.def
		}
		if err := checkBaseURL(*b.val); err != nil {
			return fmt.Errorf("provider iflow: %s: %w", b.name, err)
		}
		*b.val = strings.TrimRight(*b.val, "/")
	}
	m.p = iflow.Provider{APIBase: m.APIBase, OAuthBase: m.OAuthBase, PlatformBase: m.PlatformBase}
	return nil
}

// UnmarshalCaddyfile reads the block of `provider <name> { type iflow … }`:
//
//	provider iflow {
//		type          iflow  # the default for an instance named iflow
//		api_base      <url>
//		oauth_base    <url>
//		platform_base <url>
//	}
//
// The dispenser is positioned on the provider's name.
func (m *IFlow) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // provider name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var target *string
		option := d.Val()
		switch option {
		case "type":
			d.RemainingArgs() // the directive has read it
			continue
		case "api_base":
			target = &m.APIBase
		case "oauth_base":
			target = &m.OAuthBase
		case "platform_base":
			target = &m.PlatformBase
		default:
			return d.Errf("unrecognized iflow provider option %q (want api_base, oauth_base or platform_base)", d.Val())
		}
		if *target != "" {
			return d.Errf("%s is set twice", option)
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		if err := checkBaseURL(d.Val()); err != nil {
			return d.Errf("%s: %v", option, err)
		}
		*target = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// Models lists iFlow's models.
func (m *IFlow) Models() []string { return m.p.Models() }

// AuthTypes are the auth types iFlow credentials take.
func (m *IFlow) AuthTypes() []string { return m.p.AuthTypes() }

// NewAuth checks one iFlow credential.
func (m *IFlow) NewAuth(spec provider.CredentialSpec) (provider.Auth, error) {
	return m.p.NewAuth(spec)
}

// Chat sends a signed chat request to iFlow.
func (m *IFlow) Chat(ctx context.Context, call *provider.Call) (*provider.Response, error) {
	return m.p.Chat(ctx, call)
}

// AuthorizeURL is iFlow's login page.
func (m *IFlow) AuthorizeURL(redirectURL, state string) string {
	return m.p.AuthorizeURL(redirectURL, state)
}

// CompleteLogin exchanges a login's code for a token file.
func (m *IFlow) CompleteLogin(ctx context.Context, client *http.Client, code, redirectURL string) ([]byte, string, error) {
	return m.p.CompleteLogin(ctx, client, code, redirectURL)
}

// ImportToken checks a token given through the admin API.
func (m *IFlow) ImportToken(raw []byte) ([]byte, error) { return m.p.ImportToken(raw) }

// Interface guards
var (
	_ caddy.Provisioner      = (*IFlow)(nil)
	_ caddyfile.Unmarshaler  = (*IFlow)(nil)
	_ provider.Provider      = (*IFlow)(nil)
	_ provider.Login         = (*IFlow)(nil)
	_ provider.TokenImporter = (*IFlow)(nil)
)
