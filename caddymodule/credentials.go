package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/proxycast/caddy-proxycast/credpool"
	"github.com/proxycast/caddy-proxycast/provider"
)

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

	// Priority groups credentials: requests go to the lowest number that
	// has a usable credential. Credentials without one come after every
	// credential that has one. Default: none (all equal).
	Priority int `json:"priority,omitempty"`

	// ProxyURL sends this credential's upstream calls through an http,
	// https, socks5 or socks5h proxy. Default: the environment's proxy
	// settings (HTTPS_PROXY, NO_PROXY).
	ProxyURL string `json:"proxy_url,omitempty"`

	// RefreshBefore is how long before its expiry a renewable key (oauth,
	// cookie) is renewed in the background. Default: the provider's; for
	// iFlow 24h for oauth and 48h for cookie.
	RefreshBefore caddy.Duration `json:"refresh_before,omitempty"`

	// Models, if set, are the only models this credential serves: globs
	// over the upstream model name (after any routing rewrite), `*` any
	// run of characters and `?` one. Default: every model.
	Models []string `json:"models,omitempty"`
}

// serves reports whether the credential may be asked for model.
func (c Credential) serves(model string) bool {
	if len(c.Models) == 0 || model == "" {
		return true
	}
	var buf [9]string
	for _, p := range c.Models {
		if _, ok := globMatch(p, model, buf[:0]); ok {
			return true
		}
	}
	return false
}

// used counts what an answer of the credential for model cost; estimated
// is whether u is an estimate.
func (a *account) used(model string, u provider.Usage, estimated bool) {
	a.state.meter.Record(model, u, estimated, time.Time{})
	a.metrics.used(u, estimated)
}

// account is what the handler needs to use one credential.
type account struct {
	keys   provider.KeySource
	client *http.Client
	// state outlives the config: health, counters, renewal.
	state *credentialState
	// renewing is state.renewing, for credentials whose key is renewed.
	renewing *credpool.Renewing
	metrics  *credentialMetrics
	// proxySecret is the password in proxy_url, to keep out of errors.
	proxySecret string
}

// rebuild makes a new generation of a provider's pool from creds and puts
// it in force. Credentials of the config must be valid (an error fails
// the config); a runtime credential that is not is left out, and a
// runtime change to a config credential that makes it invalid is set
// aside, both logged, so that a bad runtime change never takes the server
// down.
func (h *Handler) rebuild(ctx context.Context, ps *providerState, creds []effectiveCredential, initial bool) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		// The config is gone (an admin change raced a reload): taking
		// holds on states now would keep them alive for good.
		return nil
	}
	b := &poolBuild{}
	var entries []*credpool.Entry[*account]
	var activate []func(context.Context)
	seen := map[string]bool{}
	taken := claimsOf{}
	for i, c := range creds {
		e, key, act, err := h.newEntry(ps.name, c.Credential, ps.provider, taken)
		if err != nil && c.asConfigured != nil {
			h.logger.Error("runtime change to a credential of the config left out; the credential runs as configured",
				zap.String("provider", ps.name), zap.String("credential", c.ID), zap.Error(err))
			c = effectiveCredential{Credential: *c.asConfigured, source: sourceConfig, changeSetAside: err.Error()}
			e, key, act, err = h.newEntry(ps.name, c.Credential, ps.provider, taken)
		}
		if err == nil && seen[c.ID] {
			releaseStates([]string{key})
			err = errors.New("duplicate id")
		}
		seen[c.ID] = true
		if err != nil {
			if c.source == sourceRuntime {
				h.logger.Error("runtime credential left out", zap.String("provider", ps.name), zap.String("credential", c.ID), zap.Error(err))
				c.leftOut = err.Error()
				b.leftOut = append(b.leftOut, c)
				continue
			}
			releaseStates(b.keys)
			if c.ID == "" {
				return fmt.Errorf("credential_pool %s: credential %d: %w", ps.name, i+1, err)
			}
			return fmt.Errorf("credential_pool %s: credential %q: %w", ps.name, c.ID, err)
		}
		entries = append(entries, e)
		activate = append(activate, act)
		b.creds = append(b.creds, c)
		b.keys = append(b.keys, key)
	}
	claims.set(h.done, ps.name, taken)
	b.pool = credpool.New(entries, credpool.Options{
		Strategy:  credpool.Strategy(h.Selection),
		Cooldowns: h.Cooldowns.pool(),
		Sticky:    time.Duration(h.StickyTTL),
		Shared:    ps.shared,
	})
	if old := ps.build.Swap(b); old != nil {
		// Requests under way keep their entries; only the hold on the
		// states of credentials now gone is released.
		releaseStates(old.keys)
	}
	// The states are shared with the config in force until this one is:
	// a config load starts its renewals once it has provisioned, and they
	// renew in the background only while a running config uses them
	// (credentialState.inUse), so a load that fails renews nothing.
	// (Whether a credential is disabled is read from the pool in force,
	// never from the shared state.)
	for _, act := range activate {
		if initial {
			h.onLive = append(h.onLive, func() { act(ctx) })
		} else {
			act(ctx)
		}
	}
	return nil
}

func releaseStates(keys []string) {
	for _, k := range keys {
		_, _ = credentialStates.Delete(k)
	}
}

// newEntry builds one credential of provider prov. Its state is taken
// from (or put into) credentialStates under the returned key, which the
// caller must release.
// The returned activate starts the credential's renewal if this config
// uses it; the caller runs it once the config is in force.
// What the credential claims (its state's place, its account) goes into
// taken, unless a credential before it there, or one of another provider
// of this config, claims it already.
func (h *Handler) newEntry(prov string, c Credential, p provider.Provider, taken claimsOf) (*credpool.Entry[*account], string, func(context.Context), error) {
	rc, err := c.resolve()
	if err != nil {
		return nil, "", nil, err
	}
	c, proxyURL := rc.Credential, rc.proxy
	auth, err := p.NewAuth(rc.spec)
	if err != nil {
		return nil, "", nil, rc.authError(err)
	}
	var loc stateLocation
	if auth.Renewer != nil {
		if loc, err = rc.locate(h.storage, auth, prov); err != nil {
			return nil, "", nil, err
		}
	}
	cl := credentialClaims(prov, c.ID, auth, loc)
	if err := cl.free(h.done, prov, taken); err != nil {
		return nil, "", nil, err
	}

	acc := &account{client: h.httpClients.client(proxyURL), metrics: newCredentialMetrics(prov, c.ID)}
	if proxyURL != nil {
		acc.proxySecret, _ = proxyURL.User.Password()
	}
	key := identity(prov, h.providerConfigs[prov], h.storage, c)
	val, _, err := credentialStates.LoadOrNew(key, func() (caddy.Destructor, error) {
		st := &credentialState{provider: prov, id: c.ID, authType: c.AuthType, health: credpool.NewHealth()}
		st.meter, st.meterKey = h.heldMeter(credentialMeters, meterKey(prov, c.ID), sectionCredentials)
		if auth.Renewer != nil {
			lead := auth.RenewBefore
			if c.RefreshBefore > 0 {
				lead = time.Duration(c.RefreshBefore)
			}
			st.renewing = credpool.NewRenewing(credpool.RenewingConfig{
				ID:          c.ID,
				Renewer:     auth.Renewer,
				Store:       loc.store,
				StateKey:    loc.key,
				Client:      acc.client,
				RenewBefore: lead,
				OnEvent:     renewalLogger(h.logger, prov, loc.where),
				Wanted:      st.inUse,
			})
		}
		return st, nil
	})
	if err != nil {
		return nil, "", nil, err
	}
	st := val.(*credentialState)
	acc.state, acc.renewing = st, st.renewing
	activate := func(ctx context.Context) {
		if st.renewing != nil && !c.Disabled {
			st.renewing.Start(ctx)
		}
	}

	maps.Copy(taken, cl)
	entry := &credpool.Entry[*account]{ID: c.ID, Priority: c.Priority, Disabled: c.Disabled, Health: st.health, Value: acc}
	if len(c.Models) > 0 {
		entry.Serves = c.serves
	}
	if st.renewing == nil {
		acc.keys = provider.StaticKey(auth.APIKey)
		return entry, key, activate, nil
	}
	acc.keys = st.renewing
	entry.Usable = st.renewing.Usable
	return entry, key, activate, nil
}

// resolved is a credential with its placeholders replaced and checked: the
// spec a provider takes and the parsed proxy go with it, and the
// credential as written, which is what errors quote.
type resolved struct {
	Credential
	written Credential
	spec    provider.CredentialSpec
	proxy   *url.URL // nil: the environment's proxy settings
}

// resolve replaces the placeholders ({env.NAME}, {file.PATH}) in the
// credential's fields and checks the result. Its errors quote fields as
// written, never what their placeholders hold.
func (c Credential) resolve() (resolved, error) {
	r := resolved{written: c}
	for _, f := range []struct {
		name  string
		value *string
		take  placeholders
	}{
		{"token_file", &c.TokenFile, envOnly},
		{"cookies", &c.Cookies, envAndFile},
		{"api_key", &c.APIKey, envAndFile},
		{"proxy_url", &c.ProxyURL, envAndFile},
	} {
		v, err := resolvePlaceholders(*f.value, f.take)
		if err != nil {
			return resolved{Credential: c, written: r.written}, fieldErr(f.name, "%s: %v", f.name, err)
		}
		*f.value = v
	}
	r.Credential = c
	r.spec = provider.CredentialSpec{ID: c.ID, AuthType: c.AuthType, TokenFile: c.TokenFile, Cookies: c.Cookies, APIKey: c.APIKey}
	err := c.check(false)
	if err == nil {
		r.proxy, err = parseProxyURL(c.ProxyURL, r.written.ProxyURL)
	}
	return r, r.hide(err)
}

// authError is a provider's refusal of the credential's settings, as an
// error about the field that holds its secret.
func (r resolved) authError(err error) error {
	err = r.hide(err)
	if _, ok := errors.AsType[*FieldError](err); ok {
		return err
	}
	return &FieldError{Field: secretField(r.AuthType), Msg: err.Error()}
}

// hide puts the fields as written in place of their resolved values in
// err, for errors that come from elsewhere (a provider's check).
func (r resolved) hide(err error) error {
	return hideResolved(err,
		[2]string{r.written.TokenFile, r.TokenFile},
		[2]string{r.written.Cookies, r.Cookies},
		[2]string{r.written.APIKey, r.APIKey},
		[2]string{r.written.ProxyURL, r.ProxyURL})
}

// tokenFileShown is the token file as errors and logs may name it: as
// written, when placeholders made it.
func (r resolved) tokenFileShown() string { return strconv.Quote(r.written.TokenFile) }

// renewalLogger logs and counts what renewing credentials do. Errors from
// renewals carry no secrets: the providers keep tokens out of them.
func renewalLogger(logger *zap.Logger, prov, where string) func(credpool.Event) {
	return func(e credpool.Event) {
		fields := []zap.Field{zap.String("provider", prov), zap.String("credential", e.Credential), zap.String("state", where)}
		if e.What == "short_lifetime" {
			// Not a renewal: a note about the keys the renewals bring.
			logger.Warn("credential's keys live less than twice refresh_before; they are renewed halfway through their life instead",
				append(fields, zap.Duration("lifetime", e.Lifetime))...)
			return
		}
		metricRefreshes.WithLabelValues(prov, e.Credential, e.What).Inc()
		switch e.What {
		case "renewed":
			logger.Info("credential key renewed", append(fields, zap.Time("expires_at", e.ExpiresAt))...)
		case "adopted":
			logger.Debug("credential key renewed elsewhere; adopted", append(fields, zap.Time("expires_at", e.ExpiresAt))...)
		case "needs_login":
			logger.Error("credential needs a new login; it is skipped until then", append(fields, zap.Error(e.Err))...)
		case "store_abandoned":
			logger.Error("credential's renewed login was never stored", append(fields, zap.Error(e.Err))...)
		default:
			logger.Warn("credential renewal failed", append(fields, zap.String("event", e.What), zap.Error(e.Err))...)
		}
	}
}

// Check reports the first thing wrong with the credential's settings that
// holds for every provider: the auth type and the field it needs, fields
// that belong to another auth type, and the proxy URL. Fields still holding
// a {placeholder} are only checked for presence.
func (c Credential) Check() error { return c.check(true) }

// check is Check; the proxy URL is left to the caller when proxy is false
// (resolve parses it knowing what was written).
func (c Credential) check(proxy bool) error {
	switch strings.TrimSpace(c.ID) {
	case "":
		return fieldErr("id", "id is required")
	case ".", "..":
		// It names a path segment in the admin API, and a file for a
		// cookie credential's state.
		return fieldErr("id", "id %q is not a name; choose another", c.ID)
	}
	switch c.AuthType {
	case "":
		return fieldErr("auth_type", "auth_type is required (oauth, cookie or api_key)")
	case provider.AuthOAuth, provider.AuthCookie, provider.AuthAPIKey:
	default:
		return fieldErr("auth_type", "unknown auth_type %q (want oauth, cookie or api_key)", c.AuthType)
	}
	for _, f := range []struct{ typ, field, value string }{
		{provider.AuthOAuth, "token_file", c.TokenFile},
		{provider.AuthCookie, "cookies", c.Cookies},
		{provider.AuthAPIKey, "api_key", c.APIKey},
	} {
		switch {
		case f.typ == c.AuthType && strings.TrimSpace(f.value) == "":
			return fieldErr(f.field, "auth_type %s needs %s (empty: is its environment variable set?)", f.typ, f.field)
		case f.typ != c.AuthType && f.value != "":
			return fieldErr(f.field, "%s is only for auth_type %s, not %s", f.field, f.typ, c.AuthType)
		}
	}
	if c.Priority < 0 {
		return fieldErr("priority", "priority must be 1 or more")
	}
	if c.RefreshBefore < 0 {
		return fieldErr("refresh_before", "refresh_before must not be negative")
	}
	if c.RefreshBefore > 0 && c.AuthType == provider.AuthAPIKey {
		return fieldErr("refresh_before", "refresh_before is only for oauth and cookie credentials")
	}
	for _, m := range c.Models {
		if strings.TrimSpace(m) == "" || len(m) > maxModelName {
			return fieldErr("models", "models: each entry is a model name or a glob of at most %d bytes", maxModelName)
		}
	}
	// The key and the cookie go into request headers as they are: a line
	// break would fail every request, or split it.
	for _, f := range []struct{ name, value string }{{"api_key", c.APIKey}, {"cookies", c.Cookies}} {
		if !httpguts.ValidHeaderFieldValue(f.value) {
			return fieldErr(f.name, "%s holds a character that cannot go into an HTTP header (a line break or another control character)", f.name)
		}
	}
	if proxy && !strings.Contains(c.ProxyURL, "{") {
		if _, err := parseProxyURL(c.ProxyURL, c.ProxyURL); err != nil {
			return err
		}
	}
	return nil
}

// FieldError is a problem with one field of a credential; the admin API
// names the field in its answer.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// parseProxyURL checks a proxy_url, which is the resolved value of
// written. Its errors never repeat the URL, which may hold a password, nor
// any part of what placeholders put in it.
func parseProxyURL(raw, written string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	what, fromPlaceholders := "proxy_url", raw != strings.TrimSpace(written)
	if fromPlaceholders {
		what = fmt.Sprintf("proxy_url %q", written)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fieldErr("proxy_url", "%s is not a valid URL", what)
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		if fromPlaceholders {
			return nil, fieldErr("proxy_url", "%s does not have a supported scheme (want http, https, socks5 or socks5h)", what)
		}
		return nil, fieldErr("proxy_url", "proxy_url scheme %q is not supported (want http, https, socks5 or socks5h)", u.Scheme)
	}
	if u.Host == "" {
		return nil, fieldErr("proxy_url", "%s has no host", what)
	}
	return u, nil
}
