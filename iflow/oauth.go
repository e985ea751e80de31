package iflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/proxycast/caddy-proxycast/provider"
)

// The public OAuth client of the iFlow CLI.
const (
	ClientID     = "10009311001"
	ClientSecret = "4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW"
)

// DefaultRedirectPort is the callback port the iFlow CLI used.
const DefaultRedirectPort = 11451

// AuthorizeURL is the browser page where a user logs in. iFlow takes the
// callback as "redirect", not "redirect_uri", and wants no PKCE or scope,
// so the URL is built here rather than by oauth2.Config.AuthCodeURL.
func (p *Provider) AuthorizeURL(redirectURL, state string) string {
	q := url.Values{}
	q.Set("loginMethod", "phone")
	q.Set("type", "phone")
	q.Set("redirect", redirectURL)
	q.Set("state", state)
	q.Set("client_id", ClientID)
	return p.OAuthBase + "/oauth?" + q.Encode()
}

func (p *Provider) oauthConfig(redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     ClientID,
		ClientSecret: ClientSecret,
		RedirectURL:  redirectURL,
		Endpoint: oauth2.Endpoint{
			AuthURL:   p.OAuthBase + "/oauth",
			TokenURL:  p.OAuthBase + "/oauth/token",
			AuthStyle: oauth2.AuthStyleInHeader,
		},
	}
}

// oauthContext gives oauth2 an HTTP client that talks iFlow's dialect of
// the token endpoint: oauth2 sends the client credentials as Basic auth,
// and iFlow wants them in the form as well; and iFlow reports overload as
// HTTP 200 {"success":false}, which oauth2 would read as a token without
// access_token, so it becomes a 503 that oauth2 reports with its body.
func oauthContext(ctx context.Context, client *http.Client) context.Context {
	if client == nil {
		client = http.DefaultClient
	}
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c := *client
	c.Transport = tokenTransport{base: base}
	return context.WithValue(ctx, oauth2.HTTPClient, &c)
}

type tokenTransport struct{ base http.RoundTripper }

func (t tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.Body != nil {
		raw, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, err
		}
		form.Set("client_id", ClientID)
		form.Set("client_secret", ClientSecret)
		body := form.Encode()
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
		// A transport that sends the request again (HTTP/2 after GOAWAY)
		// takes the body from GetBody: it must be this one too.
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var probe struct {
		Success *bool `json:"success"`
	}
	if json.Unmarshal(raw, &probe) == nil && probe.Success != nil && !*probe.Success {
		resp.StatusCode, resp.Status = http.StatusServiceUnavailable, "503 Service Unavailable"
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	resp.ContentLength = int64(len(raw))
	return resp, nil
}

// Exchange trades an authorization code for tokens and fetches the
// account's API key.
func (p *Provider) Exchange(ctx context.Context, client *http.Client, code, redirectURL string) (Token, error) {
	tok, err := p.oauthConfig(redirectURL).Exchange(oauthContext(ctx, client), code)
	if err != nil {
		return Token{}, classifyTokenError("code exchange", err, code)
	}
	return p.completeToken(ctx, client, tok)
}

// Refresh uses a refresh token once and fetches the API key that goes
// with the new access token. The refresh token may rotate: the caller must
// store the result before anything else uses the old one. When the grant
// succeeds but the API key cannot be fetched, Refresh returns the new
// tokens (without APIKey) along with the error: the old refresh token may
// be used up, so they must be kept.
func (p *Provider) Refresh(ctx context.Context, client *http.Client, refreshToken string) (Token, error) {
	src := p.oauthConfig("").TokenSource(oauthContext(ctx, client), &oauth2.Token{RefreshToken: refreshToken})
	tok, err := src.Token()
	if err != nil {
		return Token{}, classifyTokenError("token refresh", err, refreshToken)
	}
	return p.completeToken(ctx, client, tok)
}

func (p *Provider) completeToken(ctx context.Context, client *http.Client, tok *oauth2.Token) (Token, error) {
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		return Token{}, &TemporaryError{Err: errors.New("iflow's token reply lacks access_token or refresh_token")}
	}
	expires := tok.Expiry
	if expires.IsZero() {
		expires = time.Now().Add(48 * time.Hour) // iFlow's usual lifetime
	}
	t := Token{
		AccessToken:  tok.AccessToken,
		RefreshToken: tok.RefreshToken,
		ExpiresAt:    expires.UTC().Truncate(time.Second),
		LastRefresh:  time.Now().UTC().Truncate(time.Second),
	}
	key, account, err := p.UserInfo(ctx, client, tok.AccessToken)
	if err != nil {
		// The grant is done and may have used up the old refresh token:
		// hand back the new tokens with the error.
		return t, err
	}
	t.APIKey, t.Account = key, account
	return t, nil
}

// UserInfo returns the API key and the account name (email, or phone)
// behind an access token.
func (p *Provider) UserInfo(ctx context.Context, client *http.Client, accessToken string) (apiKey, account string, err error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		p.OAuthBase+"/api/oauth/getUserInfo?accessToken="+url.QueryEscape(accessToken), nil)
	if err != nil {
		// A parse error would quote the URL, which carries the token.
		return "", "", fmt.Errorf("getUserInfo: %w", unwrapURLError(err))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// The URL carries the access token: report the cause, not the URL.
		return "", "", &TemporaryError{Err: fmt.Errorf("getUserInfo: %w", unwrapURLError(err))}
	}
	defer resp.Body.Close()
	var reply struct {
		Success bool   `json:"success"`
		Message string `json:"message"`
		Data    *struct {
			APIKey string `json:"apiKey"`
			Email  string `json:"email"`
			Phone  string `json:"phone"`
		} `json:"data"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &reply) != nil {
		return "", "", &TemporaryError{Err: fmt.Errorf("getUserInfo answered HTTP %d", resp.StatusCode)}
	}
	if !reply.Success || reply.Data == nil || reply.Data.APIKey == "" {
		return "", "", &TemporaryError{Err: fmt.Errorf("getUserInfo gave no API key: %s", provider.Scrub(reply.Message, accessToken))}
	}
	account = reply.Data.Email
	if account == "" {
		account = reply.Data.Phone
	}
	return reply.Data.APIKey, account, nil
}

// TemporaryError is a failure that may pass: overload, network trouble, a
// reply that makes no sense. The credential keeps its current key, and the
// call is retried later.
type TemporaryError struct{ Err error }

func (e *TemporaryError) Error() string { return e.Err.Error() }
func (e *TemporaryError) Unwrap() error { return e.Err }

// classifyTokenError sorts token endpoint failures: invalid_grant means
// the login is gone (provider.ErrReauth); everything else is temporary.
// Text from the endpoint is quoted with secret (the refresh token or code
// sent) taken out, should the endpoint echo it.
func classifyTokenError(what string, err error, secret string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch {
		case re.ErrorCode == "invalid_grant":
			refused := "the refresh token"
			if what == "code exchange" {
				refused = "the authorization code (expired, used already, or for another redirect URL)"
			}
			return fmt.Errorf("%s: iflow rejected %s (invalid_grant): %w; log in again with `caddy proxycast login iflow`",
				what, refused, provider.ErrReauth)
		case re.Response != nil && re.Response.StatusCode == http.StatusServiceUnavailable &&
			bytes.Contains(re.Body, []byte(`"success"`)):
			var msg struct {
				Message string `json:"message"`
			}
			_ = json.Unmarshal(re.Body, &msg)
			return &TemporaryError{Err: fmt.Errorf("%s: iflow is overloaded: %s", what, provider.Scrub(msg.Message, secret))}
		case re.Response != nil:
			// error and error_description are the endpoint's text too.
			detail := strings.TrimSpace(re.ErrorCode + " " + re.ErrorDescription)
			if detail == "" {
				detail = strings.TrimSpace(string(re.Body))
			}
			return &TemporaryError{Err: fmt.Errorf("%s: iflow answered HTTP %d: %s", what, re.Response.StatusCode, provider.Scrub(detail, secret))}
		}
	}
	return &TemporaryError{Err: fmt.Errorf("%s: %w", what, unwrapURLError(err))}
}

// unwrapURLError drops the URL from a *url.Error, since some iFlow URLs
// carry tokens.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// CompleteLogin finishes a browser login: it exchanges the code and
// returns the token file to store and whose account it is.
func (p *Provider) CompleteLogin(ctx context.Context, client *http.Client, code, redirectURL string) ([]byte, string, error) {
	tok, err := p.Exchange(ctx, client, code, redirectURL)
	if err != nil {
		return nil, "", err
	}
	return tok.Marshal(), tok.Account, nil
}

// ImportToken checks a token given by a person (in any of the token file
// formats) and returns the token file to store.
func (p *Provider) ImportToken(raw []byte) ([]byte, error) {
	tok, err := ParseToken(raw)
	if err != nil {
		return nil, err
	}
	return tok.Marshal(), nil
}
