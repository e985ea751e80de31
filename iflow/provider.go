// Package iflow speaks the iFlow (心流) platform's protocol: signed chat
// completions, and the OAuth and browser-cookie flows that yield an
// account's API key. It implements provider.Provider and knows nothing of
// Caddy or of how credentials are chosen.
package iflow

import (
	"errors"
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

// Interface guards
var (
	_ provider.Provider      = (*Provider)(nil)
	_ provider.Login         = (*Provider)(nil)
	_ provider.TokenImporter = (*Provider)(nil)
)
