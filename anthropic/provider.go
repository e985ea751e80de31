package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// DefaultAPIVersion is the anthropic-version an instance sends unless its
// Version says otherwise: the one every Messages feature is documented
// against.
const DefaultAPIVersion = "2023-06-01"

// maxModelPages bounds the pages FetchModels follows, so that an upstream
// whose has_more never ends cannot keep a refresh going.
const maxModelPages = 50

// modelsPageSize is the limit FetchModels asks for: the API's largest.
const modelsPageSize = 1000

// Provider is Anthropic's own API as an upstream: a client's Messages body
// goes to {api_base}/v1/messages as it came, signed with the credential's
// key in x-api-key, and answers, streams and errors come back in
// Anthropic's format. Configure it by assignment; it must not change once
// it serves.
type Provider struct {
	// Name names the instance in messages: anthropic instance "claude".
	Name string
	// APIBase is the API's base URL without /v1, such as
	// https://api.anthropic.com.
	APIBase string
	// Version is the anthropic-version header of every call. Default:
	// DefaultAPIVersion.
	Version string
	// Betas says which of the client's anthropic-beta values go upstream.
	Betas BetaPolicy
	// StaticModels is a fixed model list for GET /v1/models.
	StaticModels []string
	// Refresh, if not zero, is how often to fetch the model list from
	// {api_base}/v1/models.
	Refresh time.Duration
	// Headers are sent with every call. Their anthropic-beta values are
	// sent whatever the client asked for, ahead of the client's own.
	Headers http.Header

	// now is the clock that rate-limit reset times are read against; nil
	// is time.Now.
	now func() time.Time
}

// BetaPolicy says what becomes of the anthropic-beta header a client
// sends. The zero value passes every beta on.
type BetaPolicy struct {
	// Drop sends none of the client's betas.
	Drop bool
	// Allow, if not empty, passes on only the client's betas it names
	// (in any letter case) and silently drops the others.
	Allow []string
}

// pass reports whether the client's beta b goes upstream.
func (bp BetaPolicy) pass(b string) bool {
	if bp.Drop {
		return false
	}
	if len(bp.Allow) == 0 {
		return true
	}
	return slices.ContainsFunc(bp.Allow, func(a string) bool { return strings.EqualFold(a, b) })
}

// Check reports the first thing wrong with the settings.
func (p *Provider) Check() error {
	if p.APIBase == "" {
		return errors.New("api_base is required")
	}
	u, err := url.Parse(p.APIBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("api_base must be an http:// or https:// URL, such as https://api.anthropic.com")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("api_base must have no query or fragment")
	}
	if strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/v1") {
		return errors.New("api_base must not end in /v1: the paths /v1/messages and /v1/models are added to it (use https://api.anthropic.com)")
	}
	if p.Version != "" && !isHeaderToken(p.Version) {
		return fmt.Errorf("version %q is not a header token, such as %s", p.Version, DefaultAPIVersion)
	}
	if p.Betas.Drop && len(p.Betas.Allow) > 0 {
		return errors.New("betas: drop sends no client beta, so an allow list beside it means nothing; keep one of them")
	}
	for _, b := range p.Betas.Allow {
		if !isHeaderToken(b) {
			return fmt.Errorf("betas: %q is not a beta name (a header token without commas or spaces, such as prompt-caching-2024-07-31)", b)
		}
	}
	if p.Refresh < 0 {
		return errors.New("the models refresh interval must not be negative")
	}
	for name, vals := range p.Headers {
		switch http.CanonicalHeaderKey(name) {
		case "X-Api-Key":
			return errors.New("headers: x-api-key comes from each credential's api_key and cannot be set for the instance")
		case "Anthropic-Version":
			return errors.New("headers: set anthropic-version with the version option")
		case "Anthropic-Beta":
			for _, b := range splitBetas(vals) {
				if !isHeaderToken(b) {
					return fmt.Errorf("headers: anthropic-beta %q is not a beta name", b)
				}
			}
		}
	}
	return nil
}

// isHeaderToken reports whether s is an HTTP token (RFC 9110): what a header
// value listed with commas may hold without quoting.
func isHeaderToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func (p *Provider) label() string {
	if p.Name == "" {
		return "the anthropic upstream"
	}
	return fmt.Sprintf("anthropic instance %q", p.Name)
}

func (p *Provider) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// Models lists the fixed models of the instance; those fetched from the
// upstream come through FetchModels.
func (p *Provider) Models() []string { return p.StaticModels }

// ModelsRefresh is how often the model list is fetched; zero: never.
func (p *Provider) ModelsRefresh() time.Duration { return p.Refresh }

// Speaks says that the instance takes Anthropic Messages bodies only.
func (p *Provider) Speaks() []provider.Format { return []provider.Format{provider.FormatMessages} }

// NewAuth checks a credential: Anthropic's API takes API keys.
func (p *Provider) NewAuth(spec provider.CredentialSpec) (provider.Auth, error) {
	switch spec.AuthType {
	case provider.AuthAPIKey:
		return provider.KeyAuth(spec)
	case "":
		return provider.Auth{}, errors.New("auth_type is required (api_key)")
	default:
		return provider.Auth{}, fmt.Errorf("auth_type %s is not taken by %s: Anthropic's API takes API keys (auth_type api_key)", spec.AuthType, p.label())
	}
}

// Chat sends one Messages request to {api_base}/v1/messages. A stream
// request always gets a stream, even from an upstream that answered it
// with one message.
func (p *Provider) Chat(ctx context.Context, call *provider.Call) (*provider.Response, error) {
	if call.Format != provider.FormatMessages {
		return nil, fmt.Errorf("%s takes Anthropic Messages bodies, not %s", p.label(), call.Format)
	}
	resp, err := p.post(ctx, "/v1/messages", call)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, p.statusError(resp.StatusCode, resp.Header, provider.ReadErrorBody(resp.Body), call.Model, call.APIKey)
	}
	if call.Stream && provider.IsEventStream(resp.Header.Get("Content-Type")) {
		return p.openStream(resp, call)
	}
	defer resp.Body.Close()
	raw, err := provider.ReadReply(resp.Body, resp.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", p.label(), err)
	}
	if err := p.checkMessage(raw, call.APIKey); err != nil {
		return nil, err
	}
	if call.Stream {
		events, err := jsonAnswerEvents(raw, p.label())
		if err != nil {
			return nil, err
		}
		return &provider.Response{ContentType: "text/event-stream", Events: events}, nil
	}
	return &provider.Response{ContentType: "application/json", Body: raw}, nil
}

// CountTokens counts the input tokens of a count_tokens body with
// {api_base}/v1/messages/count_tokens.
func (p *Provider) CountTokens(ctx context.Context, call *provider.Call) (int64, error) {
	if call.Format != provider.FormatMessages {
		return 0, fmt.Errorf("%s counts tokens of Anthropic Messages bodies, not %s", p.label(), call.Format)
	}
	plain := *call
	plain.Stream = false
	resp, err := p.post(ctx, "/v1/messages/count_tokens", &plain)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, p.statusError(resp.StatusCode, resp.Header, provider.ReadErrorBody(resp.Body), call.Model, call.APIKey)
	}
	raw, err := provider.ReadReply(resp.Body, resp.ContentLength)
	if err != nil {
		return 0, fmt.Errorf("%s: reading the token count: %w", p.label(), err)
	}
	var count struct {
		InputTokens *int64 `json:"input_tokens"`
	}
	if json.Unmarshal(raw, &count) != nil || count.InputTokens == nil || *count.InputTokens < 0 {
		return 0, p.badReply(raw, call.APIKey, `{"input_tokens": N}`)
	}
	return *count.InputTokens, nil
}

// FetchModels reads the model list from {api_base}/v1/models, page after
// page.
func (p *Provider) FetchModels(ctx context.Context, call *provider.Call) ([]string, error) {
	var ids []string
	after := ""
	for range maxModelPages {
		q := url.Values{"limit": {strconv.Itoa(modelsPageSize)}}
		if after != "" {
			q.Set("after_id", after)
		}
		page, err := p.fetchModelsPage(ctx, call, q.Encode())
		if err != nil {
			return nil, err
		}
		for _, m := range page.Data {
			if m.ID != "" && !slices.Contains(ids, m.ID) {
				ids = append(ids, m.ID)
			}
		}
		if !page.HasMore || page.LastID == "" || page.LastID == after || len(page.Data) == 0 {
			return ids, nil
		}
		after = page.LastID
	}
	return nil, fmt.Errorf("%s: the model list goes on for more than %d pages of %d; its has_more never ends", p.label(), maxModelPages, modelsPageSize)
}

// modelsPageJSON is one page of GET /v1/models.
type modelsPageJSON struct {
	Data []struct {
		ID string `json:"id"`
	} `json:"data"`
	HasMore bool   `json:"has_more"`
	LastID  string `json:"last_id"`
}

func (p *Provider) fetchModelsPage(ctx context.Context, call *provider.Call, query string) (*modelsPageJSON, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.APIBase+"/v1/models?"+query, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: building the request: %w", p.label(), err)
	}
	req.Header = p.header(call, false)
	resp, err := p.send(req, call.Transport)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, p.statusError(resp.StatusCode, resp.Header, provider.ReadErrorBody(resp.Body), "", call.APIKey)
	}
	raw, err := provider.ReadReply(resp.Body, resp.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the model list: %w", p.label(), err)
	}
	var page modelsPageJSON
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) || json.Unmarshal(raw, &page) != nil {
		return nil, fmt.Errorf("%s: the model list is not {\"data\":[{\"id\":…}],\"has_more\":…}", p.label())
	}
	return &page, nil
}

// post sends call.Body to path.
func (p *Provider) post(ctx context.Context, path string, call *provider.Call) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.APIBase+path, bytes.NewReader(call.Body))
	if err != nil {
		return nil, fmt.Errorf("%s: building the request: %w", p.label(), err)
	}
	req.Header = p.header(call, true)
	return p.send(req, call.Transport)
}

// header is a call's headers: the instance's own, the key, the version,
// the betas the policy lets through, and the content types.
func (p *Provider) header(call *provider.Call, hasBody bool) http.Header {
	h := make(http.Header, len(p.Headers)+6)
	for k, v := range p.Headers {
		h[http.CanonicalHeaderKey(k)] = v
	}
	h.Set("X-Api-Key", call.APIKey)
	version := p.Version
	if version == "" {
		version = DefaultAPIVersion
	}
	h.Set("Anthropic-Version", version)
	if betas := p.betas(call.Header); len(betas) > 0 {
		h.Set("Anthropic-Beta", strings.Join(betas, ","))
	} else {
		h.Del("Anthropic-Beta")
	}
	if hasBody {
		h.Set("Content-Type", "application/json")
	}
	if call.Stream {
		h.Set("Accept", "text/event-stream")
	} else {
		h.Set("Accept", "application/json")
	}
	return h
}

// betas are the anthropic-beta values of a call: the instance's own, then
// those of the client that the policy passes, each once.
func (p *Provider) betas(client http.Header) []string {
	var out []string
	add := func(b string) {
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, b) }) {
			out = append(out, b)
		}
	}
	for k, v := range p.Headers {
		if http.CanonicalHeaderKey(k) == "Anthropic-Beta" {
			for _, b := range splitBetas(v) {
				add(b)
			}
		}
	}
	for _, b := range splitBetas(client.Values("Anthropic-Beta")) {
		if p.Betas.pass(b) {
			add(b)
		}
	}
	return out
}

// splitBetas reads anthropic-beta header lines, each a comma list.
func splitBetas(lines []string) []string {
	var out []string
	for _, line := range lines {
		for b := range strings.SplitSeq(line, ",") {
			if b = strings.TrimSpace(b); b != "" {
				out = append(out, b)
			}
		}
	}
	return out
}

// Interface guards
var (
	_ provider.Provider     = (*Provider)(nil)
	_ provider.Speaker      = (*Provider)(nil)
	_ provider.TokenCounter = (*Provider)(nil)
	_ provider.ModelSource  = (*Provider)(nil)
)
