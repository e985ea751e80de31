// Package caddymodule wires proxycast into Caddy: the http.handlers.proxycast
// handler that serves the OpenAI-compatible API, and the provider modules
// in the proxycast.providers namespace.
package caddymodule

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/credpool"
	"github.com/proxycast/caddy-proxycast/provider"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultMaxBodySize bounds a client's request body when max_body_size is
// not set: large enough for long conversations with images.
const DefaultMaxBodySize = 20 << 20

// CredentialHeader names the response header that carries the id of the
// credential that served a request.
const CredentialHeader = "X-Proxycast-Credential"

// Handler serves an OpenAI-compatible API (POST /v1/chat/completions,
// GET /v1/models) from a pool of upstream provider accounts. Requests
// outside /v1/ go to the next handler.
type Handler struct {
	// APIKeys are the keys clients present as `Authorization: Bearer <key>`
	// or `x-api-key: <key>`. Placeholders such as {env.PROXYCAST_API_KEY}
	// are replaced when the handler starts.
	APIKeys []string `json:"api_keys,omitempty"`

	// Anonymous serves clients without a key. It must be set explicitly:
	// without api_keys and without anonymous the handler refuses to start,
	// so that a public endpoint never hands out accounts by accident.
	Anonymous bool `json:"anonymous,omitempty"`

	// CredentialPool maps a provider name to its accounts.
	CredentialPool map[string][]Credential `json:"credential_pool,omitempty"`

	// Routing sends each model to a provider.
	Routing Routing `json:"routing,omitzero"`

	// Providers configures providers by name. A provider used in
	// credential_pool without an entry here gets its defaults.
	ProvidersRaw caddy.ModuleMap `json:"providers,omitempty" caddy:"namespace=proxycast.providers"`

	// MaxBodySize bounds a client request body, in bytes. Default: 20 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	providers map[string]*providerState
	renewing  []*credpool.Renewing
	storage   certmagic.Storage
	router    *router
	keys      [][sha256.Size]byte
	clients   *clientCache
	logger    *zap.Logger
}

// Credential is one upstream account.
type Credential struct {
	// ID names the credential in logs, metrics, the response header and
	// the admin API. Unique within its provider.
	ID string `json:"id"`

	// AuthType is how the account authenticates: oauth, cookie or api_key.
	AuthType string `json:"auth_type"`

	// TokenFile holds the OAuth tokens (auth_type oauth).
	TokenFile string `json:"token_file,omitempty"`

	// Cookies is the browser cookie string (auth_type cookie).
	Cookies string `json:"cookies,omitempty"`

	// APIKey is the provider API key (auth_type api_key).
	APIKey string `json:"api_key,omitempty"`

	// Disabled keeps the credential configured but out of use.
	Disabled bool `json:"disabled,omitempty"`

	// ProxyURL sends this credential's upstream calls through an http,
	// https, socks5 or socks5h proxy. Default: the environment's proxy
	// settings (HTTPS_PROXY, NO_PROXY).
	ProxyURL string `json:"proxy_url,omitempty"`

	// RefreshBefore is how long before its expiry a renewable key (oauth,
	// cookie) is renewed in the background. Default: the provider's; for
	// iFlow 24h for oauth and 48h for cookie.
	RefreshBefore caddy.Duration `json:"refresh_before,omitempty"`
}

// providerState is a provider with its pool.
type providerState struct {
	name     string
	provider provider.Provider
	pool     *credpool.Pool[*account]
}

// account is what the handler needs to use one credential.
type account struct {
	keys   provider.KeySource
	client *http.Client
	// renewing is set for credentials whose key is renewed (oauth,
	// cookie).
	renewing *credpool.Renewing
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.proxycast",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets the handler up.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.storage = ctx.Storage()
	if h.MaxBodySize == 0 {
		h.MaxBodySize = DefaultMaxBodySize
	}
	repl := caddy.NewReplacer()

	h.keys = nil
	for i, k := range h.APIKeys {
		k = strings.TrimSpace(repl.ReplaceAll(k, ""))
		if k == "" {
			return fmt.Errorf("api_keys: key %d is empty (is its environment variable set?)", i+1)
		}
		h.keys = append(h.keys, sha256.Sum256([]byte(k)))
	}

	provs, err := h.loadProviders(ctx)
	if err != nil {
		return err
	}

	h.clients = newClientCache()
	h.providers = make(map[string]*providerState, len(h.CredentialPool))
	for _, name := range sortedKeys(h.CredentialPool) {
		ps := &providerState{name: name, provider: provs[name]}
		var entries []*credpool.Entry[*account]
		seen := map[string]bool{}
		for i, c := range h.CredentialPool[name] {
			e, err := h.newEntry(name, c, ps.provider, repl)
			if err == nil && seen[c.ID] {
				err = errors.New("duplicate id")
			}
			seen[c.ID] = true
			if err != nil {
				if c.ID == "" {
					return fmt.Errorf("credential_pool %s: credential %d: %w", name, i+1, err)
				}
				return fmt.Errorf("credential_pool %s: credential %q: %w", name, c.ID, err)
			}
			entries = append(entries, e)
		}
		ps.pool = credpool.New(entries)
		h.providers[name] = ps
	}

	routing := h.Routing
	if len(routing.Rules) == 0 && routing.DefaultProvider == "" && len(h.providers) == 1 {
		for name := range h.providers {
			routing.DefaultProvider = name
		}
	}
	h.router, err = newRouter(routing)
	if err != nil {
		return err
	}
	for _, p := range h.router.providers() {
		if _, ok := h.providers[p]; !ok {
			if slices.Contains(knownProviders(), p) {
				return fmt.Errorf("routing: provider %q has no credentials in credential_pool", p)
			}
			return fmt.Errorf("routing: unknown provider %q (known: %s)", p, strings.Join(knownProviders(), ", "))
		}
	}

	// Only now that nothing can fail: read the stored states and start
	// renewing in the background (Cleanup stops it).
	for _, r := range h.renewing {
		r.Start(ctx)
	}
	return nil
}

// loadProviders loads the configured provider modules and, with their
// defaults, every other provider named in credential_pool.
func (h *Handler) loadProviders(ctx caddy.Context) (map[string]provider.Provider, error) {
	provs := map[string]provider.Provider{}
	if h.ProvidersRaw != nil {
		mods, err := ctx.LoadModule(h, "ProvidersRaw")
		if err != nil {
			return nil, fmt.Errorf("loading providers: %w", err)
		}
		for name, m := range mods.(map[string]any) {
			p, ok := m.(provider.Provider)
			if !ok {
				return nil, fmt.Errorf("providers: module %q is not a proxycast provider", name)
			}
			provs[name] = p
		}
	}
	for _, name := range sortedKeys(h.CredentialPool) {
		if _, ok := provs[name]; ok {
			continue
		}
		if !slices.Contains(knownProviders(), name) {
			return nil, fmt.Errorf("credential_pool: unknown provider %q (known: %s)", name, strings.Join(knownProviders(), ", "))
		}
		m, err := ctx.LoadModuleByID(providerNamespace+"."+name, []byte("{}"))
		if err != nil {
			return nil, fmt.Errorf("loading provider %q: %w", name, err)
		}
		provs[name] = m.(provider.Provider)
	}
	return provs, nil
}

func (h *Handler) newEntry(prov string, c Credential, p provider.Provider, repl *caddy.Replacer) (*credpool.Entry[*account], error) {
	c.TokenFile = repl.ReplaceAll(c.TokenFile, "")
	c.Cookies = repl.ReplaceAll(c.Cookies, "")
	c.APIKey = repl.ReplaceAll(c.APIKey, "")
	c.ProxyURL = repl.ReplaceAll(c.ProxyURL, "")
	if err := c.Check(); err != nil {
		return nil, err
	}
	proxyURL, err := parseProxyURL(c.ProxyURL)
	if err != nil {
		return nil, err
	}
	spec := provider.CredentialSpec{
		ID:        c.ID,
		AuthType:  c.AuthType,
		TokenFile: c.TokenFile,
		Cookies:   c.Cookies,
		APIKey:    c.APIKey,
	}
	auth, err := p.NewAuth(spec)
	if err != nil {
		return nil, err
	}
	acc := &account{client: h.clients.client(proxyURL)}
	entry := &credpool.Entry[*account]{ID: c.ID, Disabled: c.Disabled, Value: acc}
	if auth.Renewer == nil {
		acc.keys = provider.StaticKey(auth.APIKey)
		return entry, nil
	}
	loc, err := locateState(h.storage, auth.StateKey, prov, c.ID)
	if err != nil {
		return nil, err
	}
	lead := auth.RenewBefore
	if c.RefreshBefore > 0 {
		lead = time.Duration(c.RefreshBefore)
	}
	acc.renewing = credpool.NewRenewing(credpool.RenewingConfig{
		ID:          c.ID,
		Renewer:     auth.Renewer,
		Store:       loc.store,
		StateKey:    loc.key,
		Client:      acc.client,
		RenewBefore: lead,
		OnEvent:     h.renewalLogger(prov, loc.where),
	})
	acc.keys = acc.renewing
	entry.Usable = acc.renewing.Usable
	if !c.Disabled {
		h.renewing = append(h.renewing, acc.renewing)
	}
	return entry, nil
}

// renewalLogger logs what renewing credentials do. Errors from renewals
// carry no secrets: the providers keep tokens out of them.
func (h *Handler) renewalLogger(prov, where string) func(credpool.Event) {
	return func(e credpool.Event) {
		fields := []zap.Field{zap.String("provider", prov), zap.String("credential", e.Credential), zap.String("state", where)}
		switch e.What {
		case "renewed":
			h.logger.Info("credential key renewed", append(fields, zap.Time("expires_at", e.ExpiresAt))...)
		case "adopted":
			h.logger.Debug("credential key renewed elsewhere; adopted", append(fields, zap.Time("expires_at", e.ExpiresAt))...)
		case "needs_login":
			h.logger.Error("credential needs a new login; it is skipped until then", append(fields, zap.Error(e.Err))...)
		default:
			h.logger.Warn("credential renewal failed", append(fields, zap.String("event", e.What), zap.Error(e.Err))...)
		}
	}
}

// Check reports the first thing wrong with the credential's settings that
// holds for every provider: the auth type and the field it needs, fields
// that belong to another auth type, and the proxy URL. Fields still holding
// a {placeholder} are only checked for presence.
func (c Credential) Check() error {
	if strings.TrimSpace(c.ID) == "" {
		return errors.New("id is required")
	}
	need := map[string]struct{ field, value string }{
		provider.AuthOAuth:  {"token_file", c.TokenFile},
		provider.AuthCookie: {"cookies", c.Cookies},
		provider.AuthAPIKey: {"api_key", c.APIKey},
	}
	switch c.AuthType {
	case "":
		return errors.New("auth_type is required (oauth, cookie or api_key)")
	case provider.AuthOAuth, provider.AuthCookie, provider.AuthAPIKey:
	default:
		return fmt.Errorf("unknown auth_type %q (want oauth, cookie or api_key)", c.AuthType)
	}
	for typ, f := range need {
		switch {
		case typ == c.AuthType && strings.TrimSpace(f.value) == "":
			return fmt.Errorf("auth_type %s needs %s (empty: is its environment variable set?)", typ, f.field)
		case typ != c.AuthType && f.value != "":
			return fmt.Errorf("%s is only for auth_type %s, not %s", f.field, typ, c.AuthType)
		}
	}
	if c.RefreshBefore < 0 {
		return errors.New("refresh_before must not be negative")
	}
	if c.RefreshBefore > 0 && c.AuthType == provider.AuthAPIKey {
		return errors.New("refresh_before is only for oauth and cookie credentials")
	}
	if !strings.Contains(c.ProxyURL, "{") {
		if _, err := parseProxyURL(c.ProxyURL); err != nil {
			return err
		}
	}
	return nil
}

// parseProxyURL checks a proxy_url. Its errors never repeat the URL, which
// may hold a password.
func parseProxyURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("proxy_url is not a valid URL")
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("proxy_url scheme %q is not supported (want http, https, socks5 or socks5h)", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("proxy_url has no host")
	}
	return u, nil
}

// Validate checks what Provision could not reject on its own.
func (h *Handler) Validate() error {
	if len(h.keys) == 0 && !h.Anonymous {
		return errors.New("no api_keys: set api_keys, or write anonymous to let any client use the accounts")
	}
	if len(h.keys) > 0 && h.Anonymous {
		return errors.New("anonymous and api_keys exclude each other")
	}
	if h.MaxBodySize < 0 {
		return errors.New("max_body_size must not be negative")
	}
	return nil
}

// Cleanup stops renewals and closes idle upstream connections.
func (h *Handler) Cleanup() error {
	for _, r := range h.renewing {
		r.Stop()
	}
	if h.clients != nil {
		h.clients.close()
	}
	return nil
}

// ServeHTTP serves the /v1/ API and passes everything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.Path
	if path != "/v1" && !strings.HasPrefix(path, "/v1/") {
		return next.ServeHTTP(w, r)
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="proxycast"`)
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
			"missing or incorrect API key; send it as `Authorization: Bearer <key>` or `x-api-key: <key>`")
		return nil
	}
	switch {
	case path == "/v1/chat/completions":
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, r, http.MethodPost)
		}
		return h.serveChat(w, r)
	case path == "/v1/models":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, r, http.MethodGet)
		}
		h.serveModels(w)
		return nil
	case strings.HasPrefix(path, "/v1/models/"):
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, r, http.MethodGet)
		}
		h.serveModel(w, strings.TrimPrefix(path, "/v1/models/"))
		return nil
	}
	writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url",
		fmt.Sprintf("invalid URL (%s %s)", r.Method, path))
	return nil
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) error {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
		fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow))
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
