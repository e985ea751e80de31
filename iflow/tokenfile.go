package iflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Token is an OAuth account as proxycast keeps it: the tokens, the API key
// derived from them and whose it is.
//
// proxycast writes token files in this format (the seed's format plus what
// it derives):
//
//	{
//	  "type": "iflow",
//	  "access_token": "…",
//	  "refresh_token": "…",
//	  "expires_at": "2026-11-28T10:00:00Z",   // access token expiry, RFC 3339
//	  "api_key": "sk-…",                        // from getUserInfo
//	  "account": "someone@example.com",         // email, or phone if no email
//	  "last_refresh": "2026-11-26T10:00:00Z"
//	}
//
// It reads that format, the CLIProxyAPI style (expired, api_key, email,
// last_refresh) and the iFlow CLI's oauth_creds.json (expiry_date in Unix
// milliseconds, apiKey).
type Token struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	APIKey       string    `json:"api_key,omitempty"`
	Account      string    `json:"account,omitempty"`
	LastRefresh  time.Time `json:"last_refresh,omitzero"`
}

// tokenFile is the union of the formats found in the wild.
type tokenFile struct {
	Type         string          `json:"type"`
	AccessToken  string          `json:"access_token"`
	RefreshToken string          `json:"refresh_token"`
	ExpiresAt    string          `json:"expires_at"`   // seed, proxycast
	Expired      string          `json:"expired"`      // CLIProxyAPI
	ExpiryDate   json.RawMessage `json:"expiry_date"`  // iFlow CLI, Unix ms
	APIKey       string          `json:"api_key"`      // proxycast, CLIProxyAPI
	APIKeyCLI    string          `json:"apiKey"`       // iFlow CLI
	Account      string          `json:"account"`      // proxycast
	Email        string          `json:"email"`        // CLIProxyAPI
	LastRefresh  string          `json:"last_refresh"` // proxycast, CLIProxyAPI
}

// ParseToken reads a token file in any of the known formats. Its errors
// name the field that is wrong and never quote a value.
func ParseToken(data []byte) (Token, error) {
	var f tokenFile
	if err := json.Unmarshal(data, &f); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return Token{}, fmt.Errorf("token file is not valid JSON (at byte %d)", syn.Offset)
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && typ.Field != "" {
			return Token{}, fmt.Errorf("token file: %s has the wrong JSON type (want %s)", typ.Field, typ.Type)
		}
		return Token{}, errors.New("token file is not a JSON object of the expected shape")
	}
	if f.Type != "" && f.Type != "iflow" {
		return Token{}, fmt.Errorf("token file is of type %q, not iflow", f.Type)
	}
	t := Token{
		AccessToken:  strings.TrimSpace(f.AccessToken),
		RefreshToken: strings.TrimSpace(f.RefreshToken),
		APIKey:       strings.TrimSpace(firstNonEmpty(f.APIKey, f.APIKeyCLI)),
		Account:      firstNonEmpty(f.Account, f.Email),
	}
	if t.RefreshToken == "" {
		return Token{}, errors.New("token file has no refresh_token")
	}
	// The key signs chat requests in a header; the tokens go into forms
	// and URLs, escaped.
	if !httpguts.ValidHeaderFieldValue(t.APIKey) {
		return Token{}, errors.New("token file: api_key holds a character that cannot go into an HTTP header")
	}
	var err error
	var field string // where the expiry came from
	switch {
	case f.ExpiresAt != "":
		field = "expires_at"
		t.ExpiresAt, err = time.Parse(time.RFC3339, f.ExpiresAt)
		if err != nil {
			return Token{}, errors.New("token file: expires_at is not an RFC 3339 time")
		}
	case f.Expired != "":
		field = "expired"
		t.ExpiresAt, err = time.Parse(time.RFC3339, f.Expired)
		if err != nil {
			return Token{}, errors.New("token file: expired is not an RFC 3339 time")
		}
	case len(f.ExpiryDate) > 0 && string(f.ExpiryDate) != "null":
		field = "expiry_date"
		var ms json.Number
		if json.Unmarshal(f.ExpiryDate, &ms) != nil {
			return Token{}, errors.New("token file: expiry_date is not a number of milliseconds")
		}
		n, err := ms.Int64()
		if err != nil {
			return Token{}, errors.New("token file: expiry_date is not a whole number of milliseconds")
		}
		t.ExpiresAt = time.UnixMilli(n).UTC()
	}
	if field != "" && !marshalable(t.ExpiresAt) {
		return Token{}, fmt.Errorf("token file: %s is out of range", field)
	}
	// A missing expiry means unknown: the token is treated as expired, so
	// the first use refreshes it.
	if f.LastRefresh != "" {
		if lr, err := time.Parse(time.RFC3339, f.LastRefresh); err == nil && marshalable(lr) {
			t.LastRefresh = lr
		}
	}
	return t, nil
}

// marshalable reports whether Marshal can write t: encoding/json writes
// the years 0 to 9999 only, and Marshal writes UTC.
func marshalable(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

// Marshal writes the token in proxycast's format.
func (t Token) Marshal() []byte {
	out := struct {
		Type string `json:"type"`
		Token
	}{"iflow", t}
	out.ExpiresAt = out.ExpiresAt.UTC()
	if !out.LastRefresh.IsZero() {
		out.LastRefresh = out.LastRefresh.UTC()
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	return append(b, '\n')
}
