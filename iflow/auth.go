package iflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// How long before expiry keys are renewed by default. OAuth clients
// commonly refreshed a day early (access tokens live about 48 h); the
// platform's cookie keys are re-issued when less than 48 h remain.
const (
	OAuthRenewBefore  = 24 * time.Hour
	CookieRenewBefore = 48 * time.Hour
)

// AuthTypes are the auth types iFlow credentials take.
func (p *Provider) AuthTypes() []string {
	return []string{provider.AuthOAuth, provider.AuthCookie, provider.AuthAPIKey}
}

// NewAuth checks a credential's settings and says how its key is obtained.
func (p *Provider) NewAuth(spec provider.CredentialSpec) (provider.Auth, error) {
	switch spec.AuthType {
	case provider.AuthAPIKey:
		return provider.KeyAuth(spec)
	case provider.AuthOAuth:
		if strings.TrimSpace(spec.TokenFile) == "" {
			return provider.Auth{}, errors.New("auth_type oauth needs token_file")
		}
		return provider.Auth{
			Renewer:     oauthRenewer{p: p},
			StateKey:    strings.TrimSpace(spec.TokenFile),
			RenewBefore: OAuthRenewBefore,
		}, nil
	case provider.AuthCookie:
		bx, err := BXAuth(spec.Cookies)
		if err != nil {
			return provider.Auth{}, err
		}
		sum := sha256.Sum256([]byte(bx))
		return provider.Auth{
			Renewer:     cookieRenewer{p: p, bxauth: bx, fingerprint: hex.EncodeToString(sum[:])},
			RenewBefore: CookieRenewBefore,
			Account:     "cookie " + hex.EncodeToString(sum[:8]),
		}, nil
	case "":
		return provider.Auth{}, errors.New("auth_type is required (oauth, cookie or api_key)")
	default:
		return provider.Auth{}, fmt.Errorf("unknown auth_type %q (want oauth, cookie or api_key)", spec.AuthType)
	}
}

// oauthRenewer keeps an OAuth account's token file; the file is the state.
type oauthRenewer struct{ p *Provider }

func (o oauthRenewer) Key(state []byte) (provider.Key, error) {
	if state == nil {
		return provider.Key{}, fmt.Errorf("the token file does not exist: %w; create it with `caddy proxycast login iflow`", provider.ErrReauth)
	}
	t, err := ParseToken(state)
	if err != nil {
		return provider.Key{}, fmt.Errorf("%v: %w; replace the token file or log in again", err, provider.ErrReauth)
	}
	// Without an API key yet (a file with only tokens), the zero key makes
	// the caller renew, which fetches one.
	return provider.Key{APIKey: t.APIKey, ExpiresAt: t.ExpiresAt, Account: t.Account}, nil
}

func (o oauthRenewer) Renew(ctx context.Context, client *http.Client, state []byte) ([]byte, error) {
	if state == nil {
		return nil, fmt.Errorf("the token file does not exist: %w; create it with `caddy proxycast login iflow`", provider.ErrReauth)
	}
	t, err := ParseToken(state)
	if err != nil {
		return nil, fmt.Errorf("%v: %w; replace the token file or log in again", err, provider.ErrReauth)
	}
	next, err := o.p.Refresh(ctx, client, t.RefreshToken)
	if err != nil {
		if next.RefreshToken == "" {
			return nil, err
		}
		// The refresh went through but the API key could not be fetched.
		// The old refresh token may be used up: return the new tokens to
		// be stored, with the previous key and expiry, so that the
		// credential stays as usable as before and is renewed again.
		next.APIKey, next.Account, next.ExpiresAt = t.APIKey, t.Account, t.ExpiresAt
		return next.Marshal(), err
	}
	return next.Marshal(), nil
}

// cookieRenewer derives an API key from a platform cookie. Its state is
// the derived key, kept so that a restart does not regenerate the key
// (which would break the previous one) while it is still good.
type cookieRenewer struct {
	p           *Provider
	bxauth      string
	fingerprint string // of the BXAuth value: a state from another cookie is stale
}

// cookieState is what is stored for a cookie credential.
type cookieState struct {
	APIKey    string    `json:"api_key"`
	Name      string    `json:"name"`
	ExpiresAt time.Time `json:"expires_at"`
	Cookie    string    `json:"cookie_sha256"`
}

func (c cookieRenewer) Key(state []byte) (provider.Key, error) {
	if state == nil {
		return provider.Key{}, nil
	}
	var s cookieState
	if json.Unmarshal(state, &s) != nil || s.Cookie != c.fingerprint {
		return provider.Key{}, nil // unreadable or of another cookie: issue a new key
	}
	return provider.Key{APIKey: s.APIKey, ExpiresAt: s.ExpiresAt, Account: s.Name}, nil
}

func (c cookieRenewer) Renew(ctx context.Context, client *http.Client, _ []byte) ([]byte, error) {
	k, err := c.p.RegenerateCookieKey(ctx, client, c.bxauth)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(cookieState{APIKey: k.APIKey, Name: k.Name, ExpiresAt: k.ExpiresAt.UTC(), Cookie: c.fingerprint}, "", "  ")
}
