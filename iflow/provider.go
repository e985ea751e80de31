// Package iflow speaks the iFlow (心流) platform's protocol: signed chat
// completions, and the OAuth and browser-cookie flows that yield an
// account's API key. It implements provider.Provider and knows nothing of
// Caddy or of how credentials are chosen.
package iflow

import (
	"errors"
	"fmt"
	"strings"

	"github.com/proxycast/caddy-proxycast/provider"
)

// Default bases of the three iFlow hosts.
const (
	DefaultAPIBase      = "https://apis.iflow.cn/v1"
	DefaultOAuthBase    = "https://iflow.cn"
	DefaultPlatformBase = "https://platform.iflow.cn"
)

// Provider is the iFlow service at a set of base URLs.
type Provider struct {
	// APIBase is the chat API base, DefaultAPIBase in production.
	APIBase string
	// OAuthBase serves OAuth and user info, DefaultOAuthBase in production.
	OAuthBase string
	// PlatformBase is the web platform for cookie credentials,
	// DefaultPlatformBase in production.
	PlatformBase string
}

// Models lists the models iFlow offers.
func (p *Provider) Models() []string { return Models }

// NewKeySource checks a credential's settings.
func (p *Provider) NewKeySource(spec provider.CredentialSpec) (provider.KeySource, error) {
	switch spec.AuthType {
	case provider.AuthAPIKey:
		if strings.TrimSpace(spec.APIKey) == "" {
			return nil, errors.New("auth_type api_key needs api_key")
		}
		return provider.StaticKey(strings.TrimSpace(spec.APIKey)), nil
	case provider.AuthOAuth:
		if strings.TrimSpace(spec.TokenFile) == "" {
			return nil, errors.New("auth_type oauth needs token_file")
		}
		return nil, fmt.Errorf("auth_type oauth: %w", provider.ErrAuthNotSupported)
	case provider.AuthCookie:
		if strings.TrimSpace(spec.Cookies) == "" {
			return nil, errors.New("auth_type cookie needs cookies")
		}
		if _, err := BXAuth(spec.Cookies); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("auth_type cookie: %w", provider.ErrAuthNotSupported)
	case "":
		return nil, errors.New("auth_type is required (oauth, cookie or api_key)")
	default:
		return nil, fmt.Errorf("unknown auth_type %q (want oauth, cookie or api_key)", spec.AuthType)
	}
}

// BXAuth returns the BXAuth value of a platform.iflow.cn cookie string;
// the other pairs do not matter to iFlow.
func BXAuth(cookies string) (string, error) {
	for pair := range strings.SplitSeq(cookies, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.TrimSpace(name) == "BXAuth" && strings.TrimSpace(value) != "" {
			return "BXAuth=" + strings.TrimSpace(value), nil
		}
	}
	return "", errors.New("cookies have no BXAuth value; copy the Cookie header from platform.iflow.cn again")
}

var _ provider.Provider = (*Provider)(nil)
