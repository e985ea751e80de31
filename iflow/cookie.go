package iflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// beijing is the zone of the platform's expireTime. A fixed zone, so the
// result does not depend on the host's tzdata.
var beijing = time.FixedZone("UTC+8", 8*60*60)

// The platform checks that a key regeneration comes from its own pages.
const (
	platformOrigin  = "https://platform.iflow.cn"
	platformReferer = "https://platform.iflow.cn/"
	browserAgent    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36"
)

// unknownKeyLife stands in for the life of an issued key whose expireTime
// cannot be read; it is longer than the 48h renewal lead, or the key
// would be replaced again at once.
const unknownKeyLife = 7 * 24 * time.Hour

// CookieKey is the API key a platform cookie yields.
type CookieKey struct {
	APIKey    string
	Name      string
	ExpiresAt time.Time
}

// ParseExpireTime reads the platform's expireTime, "2026-03-04 15:54" in
// Beijing time.
func ParseExpireTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, beijing); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("expireTime %q is not of the form 2006-01-02 15:04", s)
}

type platformReply struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
	Data    *struct {
		Name       string `json:"name"`
		APIKey     string `json:"apiKey"`
		APIKeyMask string `json:"apiKeyMask"`
		ExpireTime string `json:"expireTime"`
		HasExpired bool   `json:"hasExpired"`
	} `json:"data"`
}

// RegenerateCookieKey issues a new API key for the account behind a cookie
// (GET for the key's name, then POST). The account's previous key stops
// working.
func (p *Provider) RegenerateCookieKey(ctx context.Context, client *http.Client, cookies string) (CookieKey, error) {
	bx, err := BXAuth(cookies)
	if err != nil {
		return CookieKey{}, err
	}
	info, err := p.platformCall(ctx, client, http.MethodGet, bx, nil)
	if err != nil {
		return CookieKey{}, err
	}
	body, _ := json.Marshal(map[string]string{"name": info.Data.Name})
	issued, err := p.platformCall(ctx, client, http.MethodPost, bx, body)
	if err != nil {
		return CookieKey{}, err
	}
	if issued.Data.APIKey == "" {
		return CookieKey{}, &TemporaryError{Err: errors.New("the platform issued no apiKey")}
	}
	// The POST has replaced the account's key: the new one must be kept
	// whatever else the reply holds. Without a readable expiry it is
	// renewed after a week, or at once when iFlow refuses it.
	exp, err := ParseExpireTime(issued.Data.ExpireTime)
	if err != nil {
		exp = time.Now().Add(unknownKeyLife)
	}
	return CookieKey{APIKey: issued.Data.APIKey, Name: issued.Data.Name, ExpiresAt: exp}, nil
}

func (p *Provider) platformCall(ctx context.Context, client *http.Client, method, bxauth string, body []byte) (*platformReply, error) {
	if client == nil {
		client = http.DefaultClient
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.PlatformBase+"/api/openapi/apikey", rd)
	if err != nil {
		return nil, err
	}
	// Go's transport asks for gzip and undoes it, as the platform may
	// answer gzip-encoded.
	req.Header.Set("Cookie", bxauth)
	req.Header.Set("User-Agent", browserAgent)
	req.Header.Set("Accept", "application/json, text/plain, */*")
	req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8")
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", platformOrigin)
		req.Header.Set("Referer", platformReferer)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, &TemporaryError{Err: fmt.Errorf("platform %s: %w", method, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &TemporaryError{Err: fmt.Errorf("platform %s: reading the reply: %w", method, err)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &TemporaryError{Err: fmt.Errorf("platform %s answered HTTP %d", method, resp.StatusCode)}
	}
	var reply platformReply
	if err := json.Unmarshal(raw, &reply); err != nil {
		return nil, &TemporaryError{Err: fmt.Errorf("platform %s answered with something that is not JSON", method)}
	}
	if !reply.Success || reply.Data == nil {
		msg := provider.Scrub(reply.Message, strings.TrimPrefix(bxauth, "BXAuth="))
		if msg == "" {
			msg = "no data"
		}
		return nil, fmt.Errorf("the platform refused the cookie (%s): %w; copy a fresh Cookie header from platform.iflow.cn",
			msg, provider.ErrReauth)
	}
	return &reply, nil
}
