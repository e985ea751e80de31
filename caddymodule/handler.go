// Package caddymodule wires proxycast into Caddy: the http.handlers.proxycast
// handler that serves the OpenAI-compatible API, the admin.api.proxycast
// endpoints that manage credentials at run time, the `caddy proxycast`
// commands, and the provider modules in the proxycast.providers namespace.
package caddymodule

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/proxycast/caddy-proxycast/credpool"
	"github.com/proxycast/caddy-proxycast/provider"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultMaxBodySize bounds a client's request body when max_body_size is
// not set: large enough for long conversations with images.
const DefaultMaxBodySize = 20 << 20

// Defaults of the handler's options.
const (
	// DefaultMaxAttempts is how many credentials a request may try.
	DefaultMaxAttempts = 3
	// DefaultResponseTimeout bounds the wait for an answer to begin.
	DefaultResponseTimeout = 5 * time.Minute
	// DefaultStreamIdleTimeout bounds the silence within a stream.
	DefaultStreamIdleTimeout = 2 * time.Minute
	// DefaultPingInterval is the silence after which a Messages stream
	// gets a ping.
	DefaultPingInterval = 10 * time.Second
)

// CredentialHeader names the response header that carries the id of the
// credential that served a request.
const CredentialHeader = "X-Proxycast-Credential"

// Handler serves OpenAI's chat completions API (POST /v1/chat/completions),
// Anthropic's Messages API (POST /v1/messages and
// /v1/messages/count_tokens) and OpenAI's Responses API (POST
// /v1/responses), with GET /v1/models, from a pool of upstream provider
// accounts; a request in any of them goes to a provider of any format,
// translated where the provider speaks another. Requests outside /v1/ go
// to the next handler.
type Handler struct {
	// APIKeys are the keys clients present as `Authorization: Bearer <key>`
	// or `x-api-key: <key>`. Placeholders such as {env.PROXYCAST_API_KEY}
	// are replaced when the handler starts.
	APIKeys []string `json:"api_keys,omitempty"`

	// Clients are named clients, each with its own keys, models, rate
	// limit and expiry. Keys in api_keys are those of one unnamed client
	// with no limits.
	Clients []ClientConfig `json:"clients,omitempty"`

	// Anonymous serves clients without a key. It must be set explicitly:
	// without api_keys and without anonymous the handler refuses to start,
	// so that a public endpoint never hands out accounts by accident.
	Anonymous bool `json:"anonymous,omitempty"`

	// CredentialPool maps a provider instance's name to its accounts.
	CredentialPool map[string][]Credential `json:"credential_pool,omitempty"`

	// Routing sends each model to a provider.
	Routing Routing `json:"routing,omitzero"`

	// Providers configures provider instances by name. Each is an object
	// whose "type" names its module (proxycast.providers.<type>), such as
	// {"deepseek": {"type": "openai", "api_base": "…"}}; an instance named
	// after a module may leave "type" out ({"iflow": {…}}). A name used in
	// credential_pool without an entry here is an instance of the module
	// of that name, with its defaults.
	ProvidersRaw map[string]json.RawMessage `json:"providers,omitempty" caddy:"namespace=proxycast.providers inline_key=type"`

	// MaxBodySize bounds a client request body, in bytes. Default: 20 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// Selection chooses among the usable credentials of the best priority:
	// round_robin takes them in turn, fill_first uses the first until it
	// cannot serve. Default: round_robin.
	Selection string `json:"selection,omitempty"`

	// MaxAttempts bounds how many credentials one request may try: while
	// nothing has been sent to the client, a failed attempt moves on to
	// the next usable credential. Default: 3.
	MaxAttempts int `json:"max_attempts,omitempty"`

	// StickyHeader names a request header that carries the client's
	// session or conversation id; requests with the same id stay on one
	// credential while it can serve. Default: none (no stickiness).
	StickyHeader string `json:"sticky_header,omitempty"`

	// StickyTTL is how long a session stays on its credential after its
	// last request. Default: 1h.
	StickyTTL caddy.Duration `json:"sticky_ttl,omitempty"`

	// Cooldowns says how long a credential rests after each kind of
	// failure.
	Cooldowns *Cooldowns `json:"cooldowns,omitempty"`

	// ResponseTimeout bounds the wait for an upstream's answer to begin:
	// its response headers, and for streams its first event. A
	// non-streamed completion only answers when it is done, so this is
	// generous. Default: 5m.
	ResponseTimeout caddy.Duration `json:"response_timeout,omitempty"`

	// StreamIdleTimeout bounds the silence between two events of a
	// stream; a stream silent for longer is ended as failed. Default: 2m.
	StreamIdleTimeout caddy.Duration `json:"stream_idle_timeout,omitempty"`

	// PingInterval is how long an Anthropic Messages stream may stay
	// silent (an upstream thinking, say) before a ping event is sent, so
	// that clients and proxies on the way do not give up on it: the ping
	// goes out within one to two intervals of silence. Default: 10s.
	PingInterval caddy.Duration `json:"ping_interval,omitempty"`

	// AdminTokenDirs are the directories in which a token_file given
	// through the admin API (for a new credential, or a browser login) may
	// be an absolute path. Without them the admin API takes token files in
	// Caddy's storage only: whoever may call it could otherwise have Caddy
	// write any file it can write. Default: none.
	AdminTokenDirs []string `json:"admin_token_dirs,omitempty"`

	// RuntimeSync is how often to apply the admin API changes that other
	// instances sharing the storage (a cluster) have stored; an
	// instance's own changes apply at once. Negative: only at config
	// loads. Default: 30s.
	RuntimeSync caddy.Duration `json:"runtime_sync,omitempty"`

	// UsageSync is how often the usage of named clients and credentials
	// is stored, and the other instances' read: a restart loses at most
	// this much of it, and a token budget shared by instances is exact to
	// within one interval of each. Where several configs run, the one
	// loaded last sets it. Default: 30s.
	UsageSync caddy.Duration `json:"usage_sync,omitempty"`

	providers map[string]*providerState
	// onLive starts the renewals this config needs once Provision has
	// succeeded; see rebuild.
	onLive []func()
	// done is the config's Done channel, to tell whether it is the one
	// running.
	done <-chan struct{}
	// runtime is behind a pointer: it changes while the handler serves,
	// and Caddy copies the struct (CaddyModule has a value receiver).
	runtime *runtimeState
	// providerConfigs keeps the providers' JSON, which loading the
	// modules clears from ProvidersRaw.
	providerConfigs map[string][]byte
	stateKeys       []string // keys this config holds in credentialStates
	poolKeys        []string // keys this config holds in poolStates
	storage         certmagic.Storage
	router          *router
	keys            [][sha256.Size]byte
	// named is the named clients in force, behind a pointer for the
	// reason runtime is.
	named       *namedClients
	usage       *usageSyncer // held in usageSyncs by its id
	httpClients *clientCache // the upstream HTTP clients, by proxy
	logger      *zap.Logger
}

// providerState is a provider with its pool. The pool is rebuilt when the
// admin API changes the credentials; a request uses the pool it started
// with.
type providerState struct {
	name     string
	provider provider.Provider
	formats  []provider.Format // the formats the provider speaks
	shared   *credpool.Shared
	instance *instanceState
	mu       sync.Mutex // serialises rebuilds
	build    atomic.Pointer[poolBuild]
	// closed is set when the config is cleaned up; guarded by mu.
	closed bool
}

// poolBuild is one generation of a provider's credentials.
type poolBuild struct {
	pool  *credpool.Pool[*account]
	creds []effectiveCredential // as in force, in pool order
	keys  []string              // held in credentialStates
	// leftOut are the runtime credentials that could not be put in force
	// (an {env.X} they use has gone, say), with why: the admin API shows
	// them, to be fixed or deleted.
	leftOut []effectiveCredential
}

func (ps *providerState) pool() *credpool.Pool[*account] { return ps.build.Load().pool }

// close releases the provider's hold on its credential states. The last
// generation stays in place for requests that reach the config after its
// cleanup (a reload while their body was still arriving), and rebuilds
// take no new holds from then on.
func (ps *providerState) close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return
	}
	ps.closed = true
	if b := ps.build.Load(); b != nil {
		releaseStates(b.keys)
	}
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
	h.done = ctx.Done()
	if h.MaxBodySize == 0 {
		h.MaxBodySize = DefaultMaxBodySize
	}
	if h.MaxAttempts == 0 {
		h.MaxAttempts = DefaultMaxAttempts
	}
	if h.ResponseTimeout == 0 {
		h.ResponseTimeout = caddy.Duration(DefaultResponseTimeout)
	}
	if h.StreamIdleTimeout == 0 {
		h.StreamIdleTimeout = caddy.Duration(DefaultStreamIdleTimeout)
	}
	if h.PingInterval == 0 {
		h.PingInterval = caddy.Duration(DefaultPingInterval)
	}
	if h.RuntimeSync == 0 {
		h.RuntimeSync = caddy.Duration(DefaultRuntimeSync)
	}
	if h.RuntimeSync > 0 && time.Duration(h.RuntimeSync) < minRuntimeSync {
		return fmt.Errorf("runtime_sync %s is too short: each sync reads the storage; use %s or more, or off",
			time.Duration(h.RuntimeSync), minRuntimeSync)
	}
	for _, d := range h.AdminTokenDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("admin_token_dirs: %q is not an absolute path", d)
		}
	}
	if h.StickyHeader != "" && h.StickyTTL == 0 {
		h.StickyTTL = caddy.Duration(time.Hour)
	}
	switch credpool.Strategy(h.Selection) {
	case "", credpool.RoundRobin, credpool.FillFirst:
	default:
		return fmt.Errorf("selection %q is not round_robin or fill_first", h.Selection)
	}
	h.keys = nil
	for i, k := range h.APIKeys {
		k, err := resolvePlaceholders(k, envAndFile)
		if err != nil {
			return fmt.Errorf("api_keys: key %d: %v", i+1, err)
		}
		if k = strings.TrimSpace(k); k == "" {
			return fmt.Errorf("api_keys: key %d is empty", i+1)
		}
		if !httpguts.ValidHeaderFieldValue(k) {
			// No client could send it.
			return fmt.Errorf("api_keys: key %d holds a character that cannot go into an HTTP header (a line break or another control character)", i+1)
		}
		h.keys = append(h.keys, sha256.Sum256([]byte(k)))
	}

	if h.UsageSync == 0 {
		h.UsageSync = caddy.Duration(DefaultUsageSync)
	}
	if time.Duration(h.UsageSync) < minUsageSync {
		return fmt.Errorf("usage_sync %s is below %s", time.Duration(h.UsageSync), minUsageSync)
	}
	if err := h.provisionUsage(); err != nil {
		return err
	}

	provs, err := h.loadProviders(ctx)
	if err != nil {
		return err
	}

	h.httpClients = newClientCache(time.Duration(h.ResponseTimeout))
	// Until the handler is live, no runtime change may slip in between
	// reading the stored ones and being found by the admin API.
	applyMu.Lock()
	defer applyMu.Unlock()
	ov, err := loadOverlay(ctx, h.storage)
	if err != nil {
		// Serve the config as written; the admin API refuses changes
		// until the stored state is readable again.
		h.logger.Error("runtime credential changes are not applied", zap.Error(err))
		ov = &overlay{Version: 1}
	}
	h.runtime = &runtimeState{applied: ov.stored}
	if err := h.rebuildClients(h.clientsFor(ov)); err != nil {
		return err
	}
	h.providers = make(map[string]*providerState, len(provs))
	for _, name := range sortedKeys(provs) {
		v, _, _ := poolStates.LoadOrNew(name, func() (caddy.Destructor, error) { return &instanceState{pool: credpool.NewShared()}, nil })
		h.poolKeys = append(h.poolKeys, name)
		is := v.(*instanceState)
		ps := &providerState{name: name, provider: provs[name], formats: provider.FormatsOf(provs[name]), shared: is.pool, instance: is}
		h.providers[name] = ps
		if err := h.rebuild(ctx, ps, ov.effective(name, h.CredentialPool[name]), true); err != nil {
			return err
		}
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
			return fmt.Errorf("routing: provider %q is not declared: give it credentials in credential_pool, or declare it with provider %s { type … } (known types: %s)",
				p, p, strings.Join(providerTypes(), ", "))
		}
	}

	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	live.add(h)
	// Renewals start now (reading the stored keys, no network); they
	// renew in the background only once this config is the one running
	// (see credentialState.inUse).
	for _, f := range h.onLive {
		f()
	}
	h.onLive = nil
	if h.RuntimeSync > 0 {
		h.runtime.ctx = ctx
		h.runtime.stop, h.runtime.done = make(chan struct{}), make(chan struct{})
		go h.syncRuntime(time.Duration(h.RuntimeSync))
	}
	for _, name := range sortedKeys(h.providers) {
		ps := h.providers[name]
		if src, ok := ps.provider.(provider.ModelSource); ok && src.ModelsRefresh() > 0 {
			go h.refreshModels(ctx, ps, src)
		}
	}
	return nil
}

// loadProviders loads the declared provider instances and, with their
// module's defaults, every other provider named in credential_pool. It
// keeps each instance's JSON, type included, in providerConfigs.
func (h *Handler) loadProviders(ctx caddy.Context) (map[string]provider.Provider, error) {
	types := providerTypes()
	h.providerConfigs = map[string][]byte{}
	for _, name := range sortedKeys(h.ProvidersRaw) {
		raw := h.ProvidersRaw[name]
		typ, ok := provider.StringField(raw, "type")
		switch {
		case !ok && slices.Contains(types, name):
			// Configs from before instances had types.
			raw = provider.SetStringField(raw, "type", name)
			h.ProvidersRaw[name] = raw
		case !ok:
			return nil, fmt.Errorf("provider %q has no type; say which module it is, such as \"type\": \"openai\" (known types: %s)", name, strings.Join(types, ", "))
		case !slices.Contains(types, typ):
			return nil, fmt.Errorf("provider %q: unknown type %q (known types: %s)", name, typ, strings.Join(types, ", "))
		}
		h.providerConfigs[name] = slices.Clone(raw)
	}
	provs := map[string]provider.Provider{}
	if h.ProvidersRaw != nil {
		mods, err := ctx.LoadModule(h, "ProvidersRaw")
		if err != nil {
			return nil, fmt.Errorf("loading providers: %w", err)
		}
		for name, m := range mods.(map[string]any) {
			p, ok := m.(provider.Provider)
			if !ok {
				return nil, fmt.Errorf("provider %q: its module is not a proxycast provider", name)
			}
			provs[name] = p
		}
	}
	for _, name := range sortedKeys(h.CredentialPool) {
		if _, ok := provs[name]; ok {
			continue
		}
		if !slices.Contains(types, name) {
			return nil, fmt.Errorf("credential_pool: provider %q is not declared; declare it with provider %s { type … } (known types: %s)",
				name, name, strings.Join(types, ", "))
		}
		cfg := []byte(`{"type":` + strconv.Quote(name) + `}`)
		m, err := ctx.LoadModuleByID(providerNamespace+"."+name, []byte("{}"))
		if err != nil {
			return nil, fmt.Errorf("loading provider %q: %w", name, err)
		}
		h.providerConfigs[name] = cfg
		provs[name] = m.(provider.Provider)
	}
	for name, p := range provs {
		if n, ok := p.(instance); ok {
			n.setName(name)
		}
	}
	return provs, nil
}

// Validate checks what Provision could not reject on its own.
func (h *Handler) Validate() error {
	if len(h.keys) == 0 && h.clientSet().Len() == 0 && !h.Anonymous {
		return errors.New("no api_keys: set api_keys, or write anonymous to let any client use the accounts (or give named clients their keys with client blocks)")
	}
	if (len(h.keys) > 0 || len(h.Clients) > 0) && h.Anonymous {
		return errors.New("anonymous and api_keys (or named clients) exclude each other")
	}
	if h.MaxBodySize < 0 {
		return errors.New("max_body_size must not be negative")
	}
	if h.MaxAttempts < 0 {
		return errors.New("max_attempts must be 1 or more")
	}
	if h.ResponseTimeout < 0 || h.StreamIdleTimeout < 0 || h.PingInterval < 0 {
		return errors.New("response_timeout, stream_idle_timeout and ping_interval must not be negative")
	}
	return nil
}

// Cleanup releases this config's hold on credential states (the last
// config to let go of one stops its renewal) and closes idle upstream
// connections.
func (h *Handler) Cleanup() error {
	if h.runtime != nil && h.runtime.stop != nil {
		close(h.runtime.stop)
		<-h.runtime.done
	}
	live.remove(h)
	claims.forget(h.done)
	// The syncer goes first: if this is the last config, its last save
	// reads the meters that the credentials and clients hold.
	if h.usage != nil {
		_, _ = usageSyncs.Delete(h.usage.id)
	}
	for _, ps := range h.providers {
		ps.close()
	}
	for _, k := range h.poolKeys {
		_, _ = poolStates.Delete(k)
	}
	h.closeClients()
	if h.httpClients != nil {
		h.httpClients.close()
	}
	return nil
}

// ServeHTTP serves the /v1/ API and passes everything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.Path
	if path != "/v1" && !strings.HasPrefix(path, "/v1/") {
		return next.ServeHTTP(w, r)
	}
	d := dialectFor(path, r, h)
	c, ok := h.authorized(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="proxycast"`)
		d.writeError(w, clientError(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
			"missing or incorrect API key; send it as `Authorization: Bearer <key>` or `x-api-key: <key>`"))
		return nil
	}
	if c != nil {
		limited := r.Method == http.MethodPost && (path == "/v1/chat/completions" || path == "/v1/messages" ||
			path == "/v1/responses" || path == "/v1/messages/count_tokens")
		if e := h.admit(c, now(), limited); e != nil {
			d.writeError(w, e)
			return nil
		}
		r = withClient(r, c)
	}
	switch {
	case path == "/v1/chat/completions", path == "/v1/messages", path == "/v1/responses":
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, r, d, http.MethodPost)
		}
		return h.serveChat(w, r, d)
	case strings.HasPrefix(path, "/v1/responses/"):
		// GET, DELETE and cancel of a stored response, and its input items.
		d.writeError(w, clientError(http.StatusNotFound, "invalid_request_error", "response_not_stored",
			fmt.Sprintf("%s %s: this gateway does not store responses (store: true is taken as false); send the whole conversation in input", r.Method, path)))
		return nil
	case path == "/v1/messages/count_tokens":
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, r, d, http.MethodPost)
		}
		return h.serveCountTokens(w, r, d)
	case path == "/v1/models":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, r, d, http.MethodGet)
		}
		h.serveModels(w, r)
		return nil
	case strings.HasPrefix(path, "/v1/models/"):
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, r, d, http.MethodGet)
		}
		h.serveModel(w, r, strings.TrimPrefix(path, "/v1/models/"))
		return nil
	}
	d.writeError(w, clientError(http.StatusNotFound, "invalid_request_error", "unknown_url",
		fmt.Sprintf("invalid URL (%s %s)", r.Method, path)))
	return nil
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, d dialect, allow string) error {
	w.Header().Set("Allow", allow)
	d.writeError(w, clientError(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
		fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow)))
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
