package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/credpool"
	"github.com/proxycast/caddy-proxycast/provider"
	"github.com/proxycast/caddy-proxycast/ui"
	"github.com/proxycast/caddy-proxycast/usage"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// maxAdminBody bounds the body of an admin API request.
const maxAdminBody = 64 << 10

// maxAdminDrain bounds what is read of a body too large for the admin
// API before it is refused.
const maxAdminDrain = 1 << 20

// AdminAPI is the admin.api.proxycast module: it lists the credentials of
// the running proxycast handlers and adds, changes, removes and refreshes
// them without a reload. Changes are kept in Caddy's storage
// (proxycast/runtime.json) and applied again on every reload and restart.
//
//	GET    /proxycast/credentials                       every credential
//	GET    /proxycast/credentials/{provider}/{id}       one
//	POST   /proxycast/credentials/{provider}            add one
//	PATCH  /proxycast/credentials/{provider}/{id}       change disabled, cookies, proxy_url, token, priority, models
//	DELETE /proxycast/credentials/{provider}/{id}       remove one
//	POST   /proxycast/credentials/{provider}/{id}/refresh  renew its key now
//	POST   /proxycast/oauth/{provider}                  start a browser login
//	GET    /proxycast/oauth/{provider}/{state}          how that login went
//	DELETE /proxycast/oauth/{provider}/{state}          cancel that login while it waits for the browser
//	POST   /proxycast/oauth/{provider}/{state}/callback complete it with the callback URL, pasted from a browser elsewhere
//	GET    /proxycast/providers                         the provider instances, with the auth types they take
//	GET    /proxycast/clients                           the named clients, with their limits and usage (never a key)
//	GET    /proxycast/ui/                               the management page
//
// Caddy provisions admin modules apart from the apps, so the handlers are
// looked up when a request comes.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.proxycast",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (a AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/proxycast/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// adminError is an admin API failure: a status, a message and, where one
// field of the request is at fault, its name.
type adminError struct {
	status int
	field  string
	msg    string
}

func (e *adminError) Error() string { return e.msg }

func errorf(status int, field, format string, args ...any) *adminError {
	return &adminError{status: status, field: field, msg: fmt.Sprintf(format, args...)}
}

func (a AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	err := a.route(w, r)
	if err == nil {
		return nil
	}
	ae, ok := errors.AsType[*adminError](err)
	if !ok {
		ae = &adminError{status: http.StatusInternalServerError, msg: err.Error()}
	}
	body := map[string]string{"error": ae.msg}
	if ae.field != "" {
		body["field"] = ae.field
	}
	writeAdminJSON(w, ae.status, body)
	return nil
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	raw, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(raw, '\n'))
}

func (a AdminAPI) route(w http.ResponseWriter, r *http.Request) error {
	var segs []string
	for _, s := range strings.Split(strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), "/proxycast/"), "/"), "/") {
		u, err := url.PathUnescape(s)
		if err != nil {
			return errorf(http.StatusBadRequest, "", "bad path segment %q", s)
		}
		segs = append(segs, u)
	}
	method := func(m string) error {
		if r.Method != m {
			w.Header().Set("Allow", m)
			return errorf(http.StatusMethodNotAllowed, "", "%s is not allowed on %s; use %s", r.Method, r.URL.Path, m)
		}
		return nil
	}
	switch {
	case len(segs) == 1 && segs[0] == "providers":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		writeAdminJSON(w, http.StatusOK, listProviders())
		return nil
	case len(segs) == 1 && segs[0] == "clients":
		switch r.Method {
		case http.MethodGet:
			writeAdminJSON(w, http.StatusOK, listClients(now()))
			return nil
		case http.MethodPost:
			return addClient(w, r)
		}
		w.Header().Set("Allow", "GET, POST")
		return errorf(http.StatusMethodNotAllowed, "", "%s is not allowed on %s", r.Method, r.URL.Path)
	case len(segs) == 2 && segs[0] == "clients":
		switch r.Method {
		case http.MethodGet:
			v, err := findClient(segs[1], now())
			if err != nil {
				return err
			}
			writeAdminJSON(w, http.StatusOK, v)
			return nil
		case http.MethodPatch:
			return patchClient(w, r, segs[1])
		case http.MethodDelete:
			return deleteClient(w, r, segs[1])
		}
		w.Header().Set("Allow", "GET, PATCH, DELETE")
		return errorf(http.StatusMethodNotAllowed, "", "%s is not allowed on %s", r.Method, r.URL.Path)
	case len(segs) >= 1 && segs[0] == "ui":
		return serveUI(w, r)
	case len(segs) == 1 && segs[0] == "credentials":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		writeAdminJSON(w, http.StatusOK, listCredentials())
		return nil
	case len(segs) == 2 && segs[0] == "credentials":
		if err := method(http.MethodPost); err != nil {
			return err
		}
		return addCredential(w, r, segs[1])
	case len(segs) == 3 && segs[0] == "credentials":
		switch r.Method {
		case http.MethodGet:
			v, err := findView(segs[1], segs[2])
			if err != nil {
				return err
			}
			writeAdminJSON(w, http.StatusOK, v)
			return nil
		case http.MethodPatch:
			return patchCredential(w, r, segs[1], segs[2])
		case http.MethodDelete:
			return deleteCredential(w, r, segs[1], segs[2])
		}
		w.Header().Set("Allow", "GET, PATCH, DELETE")
		return errorf(http.StatusMethodNotAllowed, "", "%s is not allowed on %s", r.Method, r.URL.Path)
	case len(segs) == 4 && segs[0] == "credentials" && segs[3] == "refresh":
		if err := method(http.MethodPost); err != nil {
			return err
		}
		return refreshCredential(w, r, segs[1], segs[2])
	case len(segs) == 2 && segs[0] == "oauth":
		if err := method(http.MethodPost); err != nil {
			return err
		}
		return startOAuth(w, r, segs[1])
	case len(segs) == 4 && segs[0] == "oauth" && segs[3] == "callback":
		if err := method(http.MethodPost); err != nil {
			return err
		}
		return pasteCallback(w, r, segs[1], segs[2])
	case len(segs) == 3 && segs[0] == "oauth" && r.Method == http.MethodDelete:
		return cancelOAuth(w, segs[1], segs[2])
	case len(segs) == 3 && segs[0] == "oauth":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		return oauthStatus(w, segs[1], segs[2])
	}
	return errorf(http.StatusNotFound, "", "no proxycast admin endpoint at %s", r.URL.Path)
}

// credentialView is a credential as the admin API shows it: never a
// secret.
type credentialView struct {
	Provider       string               `json:"provider"`
	ID             string               `json:"id"`
	AuthType       string               `json:"auth_type"`
	Source         string               `json:"source"`
	Disabled       bool                 `json:"disabled"`
	Priority       int                  `json:"priority,omitempty"`
	State          string               `json:"state"`
	TokenFile      string               `json:"token_file,omitempty"`
	ProxyURL       string               `json:"proxy_url,omitempty"`
	Models         []string             `json:"models,omitempty"`
	Account        string               `json:"account,omitempty"`
	ExpiresAt      *time.Time           `json:"expires_at,omitempty"`
	LastRefresh    *time.Time           `json:"last_refresh,omitempty"`
	NextRenewal    *time.Time           `json:"next_renewal,omitempty"`
	CoolingUntil   *time.Time           `json:"cooling_until,omitempty"`
	CoolingReason  string               `json:"cooling_reason,omitempty"`
	CoolingKind    string               `json:"cooling_kind,omitempty"`
	ModelCooldowns map[string]time.Time `json:"model_cooldowns,omitempty"`
	LastError      string               `json:"last_error,omitempty"`
	Tokens         *tokensView          `json:"tokens,omitempty"`
	// Usage is what the credential's answers cost by upstream model:
	// this instance's, kept across restarts in Caddy's storage.
	Usage map[string]usage.ModelUsage `json:"usage,omitempty"`
	// RuntimeChange says why a runtime change to a credential of the
	// config is not in force (it runs as configured).
	RuntimeChange string     `json:"runtime_change,omitempty"`
	Requests      uint64     `json:"requests"`
	Failures      uint64     `json:"failures"`
	LastUsed      *time.Time `json:"last_used,omitempty"`
}

// tokensView is what a credential's answers cost, as the upstream
// reported or, for answers that reported nothing, as estimated: Estimated
// is how many of the prompt and completion tokens are estimates.
type tokensView struct {
	Prompt     int64 `json:"prompt"`
	Completion int64 `json:"completion"`
	Cached     int64 `json:"cached"`
	Reasoning  int64 `json:"reasoning"`
	Estimated  int64 `json:"estimated,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// viewOf shows a credential in force, or (e nil) one left out.
func viewOf(prov string, ec effectiveCredential, e *credpool.Entry[*account], now time.Time) credentialView {
	if e == nil {
		return credentialView{Provider: prov, ID: ec.ID, AuthType: ec.AuthType, Source: ec.source, Disabled: ec.Disabled,
			Priority: ec.Priority, State: stateInvalid, TokenFile: ec.TokenFile, ProxyURL: maskedProxy(ec.ProxyURL),
			LastError: "set aside: " + ec.leftOut}
	}
	st := e.Value.state
	hs := st.health.Status(now)
	v := credentialView{
		Provider: prov, ID: ec.ID, AuthType: ec.AuthType, Source: ec.source,
		Disabled: ec.Disabled, Priority: ec.Priority, State: st.state(now, ec.Disabled),
		TokenFile: ec.TokenFile, Models: ec.Models, Requests: hs.Requests, Failures: hs.Failures,
		LastUsed: timePtr(hs.LastUsed), CoolingUntil: timePtr(hs.CoolingUntil), CoolingReason: hs.CoolingReason,
		CoolingKind:    coolingKind(hs),
		ModelCooldowns: hs.ModelCooldowns, LastError: hs.LastError,
	}
	if ec.changeSetAside != "" {
		v.RuntimeChange = "set aside: " + ec.changeSetAside
	}
	if byModel := st.meter.Snapshot(); len(byModel) > 0 {
		u := usage.Total(byModel)
		v.Tokens = &tokensView{Prompt: u.Prompt, Completion: u.Completion, Cached: u.Cached, Reasoning: u.Reasoning, Estimated: u.EstimatedTokens}
		v.Usage = byModel
	}
	v.ProxyURL = maskedProxy(ec.ProxyURL)
	if st.renewing != nil {
		rs := st.renewing.Status()
		v.Account, v.ExpiresAt, v.LastRefresh = rs.Account, timePtr(rs.ExpiresAt), timePtr(rs.LastRefresh)
		v.NextRenewal = timePtr(rs.NextRenewal)
		if rs.LastError != "" {
			v.LastError = rs.LastError
		}
	}
	return v
}

// inForce calls f for every credential of every running handler, once
// per provider and id (the newest config's where several configs run).
// The runtime credentials that could not be put in force come with a nil
// entry.
func inForce(f func(prov string, c effectiveCredential, e *credpool.Entry[*account])) {
	seen := map[[2]string]bool{}
	for _, h := range live.newestFirst() {
		for _, name := range sortedKeys(h.providers) {
			b := h.providers[name].build.Load()
			if b == nil {
				continue
			}
			for i, e := range b.pool.Entries() {
				k := [2]string{name, e.ID}
				if !seen[k] {
					seen[k] = true
					f(name, b.creds[i], e)
				}
			}
			for _, c := range b.leftOut {
				k := [2]string{name, c.ID}
				if !seen[k] {
					seen[k] = true
					f(name, c, nil)
				}
			}
		}
	}
}

// providerView is a provider instance as the admin API shows it.
type providerView struct {
	Name string `json:"name"`
	// Type is the instance's module: iflow, openai, anthropic.
	Type string `json:"type"`
	// AuthTypes are the auth types its credentials take.
	AuthTypes []string `json:"auth_types"`
	// Login says whether POST /proxycast/oauth/{name} logs in through the
	// browser.
	Login bool `json:"login"`
	// Credentials counts the credentials in force, and set aside.
	Credentials int `json:"credentials"`
}

// listProviders shows the provider instances of the running handlers, by
// name (the newest config's where several configs run).
func listProviders() []providerView {
	out := []providerView{}
	seen := map[string]bool{}
	for _, h := range live.newestFirst() {
		for _, name := range sortedKeys(h.providers) {
			ps := h.providers[name]
			b := ps.build.Load()
			if b == nil || seen[name] {
				continue
			}
			seen[name] = true
			typ, _ := provider.StringField(h.providerConfigs[name], "type")
			_, login := ps.provider.(provider.Login)
			out = append(out, providerView{Name: name, Type: typ, AuthTypes: provider.AuthTypesOf(ps.provider),
				Login: login, Credentials: len(b.creds) + len(b.leftOut)})
		}
	}
	slices.SortFunc(out, func(a, b providerView) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// listCredentials shows every credential in force, and the runtime ones
// that could not be.
func listCredentials() []credentialView {
	now := time.Now()
	out := []credentialView{}
	inForce(func(prov string, c effectiveCredential, e *credpool.Entry[*account]) {
		out = append(out, viewOf(prov, c, e, now))
	})
	return out
}

// located is one credential in the newest handler that has it.
type located struct {
	h     *Handler
	ps    *providerState
	cred  effectiveCredential
	entry *credpool.Entry[*account]
}

func locate(prov, id string) (*located, error) {
	hs := handlersFor(prov)
	if len(hs) == 0 {
		return nil, errorf(http.StatusNotFound, "", "no proxycast handler serves provider %q", prov)
	}
	for _, h := range hs {
		ps := h.providers[prov]
		b := ps.build.Load()
		if b == nil {
			continue
		}
		for i, e := range b.pool.Entries() {
			if e.ID == id {
				return &located{h: h, ps: ps, cred: b.creds[i], entry: e}, nil
			}
		}
	}
	return nil, errorf(http.StatusNotFound, "", "provider %q has no credential %q", prov, id)
}

func findView(prov, id string) (credentialView, error) {
	l, err := locate(prov, id)
	if err == nil {
		return viewOf(prov, l.cred, l.entry, time.Now()), nil
	}
	for _, h := range handlersFor(prov) {
		for _, c := range h.providers[prov].build.Load().leftOut {
			if c.ID == id {
				return viewOf(prov, c, nil, time.Now()), nil
			}
		}
	}
	return credentialView{}, err
}

// coolingKind names the failure a credential rests for.
func coolingKind(hs credpool.HealthStatus) string {
	if hs.CoolingUntil.IsZero() {
		return ""
	}
	return hs.CoolingKind.String()
}

// maskedProxy is a proxy_url as written, with its password masked.
func maskedProxy(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// handlersFor lists the running handlers that serve prov, newest first.
func handlersFor(prov string) []*Handler {
	var out []*Handler
	for _, h := range live.newestFirst() {
		if ps := h.providers[prov]; ps != nil && ps.build.Load() != nil {
			out = append(out, h)
		}
	}
	return out
}

// configOf is the config's credentials of prov, over every handler that
// serves it (newest first, so during a reload the new config's version of
// a credential wins).
func configOf(hs []*Handler, prov string) []Credential {
	var out []Credential
	for _, h := range hs {
		for _, c := range h.CredentialPool[prov] {
			if !slices.ContainsFunc(out, func(o Credential) bool { return o.ID == c.ID }) {
				out = append(out, c)
			}
		}
	}
	return out
}

// adminMu serialises changes in this instance; the storage lock does so
// across instances.
var adminMu sync.Mutex

// mutate changes the stored overlay for prov under the lock and puts the
// result in force in every running handler that serves prov.
func mutate(ctx context.Context, prov string, change func(ov *overlay, current []effectiveCredential) error) error {
	hs := handlersFor(prov)
	if len(hs) == 0 {
		return errorf(http.StatusNotFound, "", "no proxycast handler serves provider %q", prov)
	}
	ov, before, err := storeChange(ctx, hs[0].storage, func(ov *overlay) error {
		return change(ov, ov.effective(prov, configOf(hs, prov)))
	})
	if err != nil {
		return err
	}
	// The handlers live now, not those at the start: a config may have
	// loaded meanwhile, having read the overlay before this change.
	applyMu.Lock()
	defer applyMu.Unlock()
	for _, h := range handlersFor(prov) {
		if err := h.rebuild(ctx, h.providers[prov], ov.effective(prov, h.CredentialPool[prov]), false); err != nil {
			h.logger.Error("applying a runtime credential change", zap.Error(err))
		}
		h.runtime.appliedPart(before, ov.stored)
	}
	return nil
}

// storeChange makes change to the stored overlay under the storage lock
// and stores the result, which it returns with the fingerprint of what
// was stored before. Nothing is stored when change fails.
func storeChange(ctx context.Context, storage certmagic.Storage, change func(ov *overlay) error) (*overlay, [sha256.Size]byte, error) {
	if err := storage.Lock(ctx, runtimeLock); err != nil {
		return nil, [sha256.Size]byte{}, fmt.Errorf("taking the storage lock: %w", err)
	}
	defer func() { _ = storage.Unlock(context.Background(), runtimeLock) }()
	ov, err := loadOverlay(ctx, storage)
	if err != nil {
		return nil, [sha256.Size]byte{}, errorf(http.StatusInternalServerError, "", "the stored runtime changes are unreadable, so none is made: %v", err)
	}
	before := ov.stored
	if err := change(ov); err != nil {
		return nil, before, err
	}
	if err := saveOverlay(ctx, storage, ov); err != nil {
		return nil, before, fmt.Errorf("storing the change: %w", err)
	}
	return ov, before, nil
}

// decodeBody reads a JSON body strictly: size-limited, no unknown fields,
// errors that name the field.
func decodeBody(r *http.Request, v any, immutable ...string) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return errorf(http.StatusBadRequest, "", "reading the body: %v", err)
	}
	if len(raw) > maxAdminBody {
		// Caddy's admin server closes every connection after its answer;
		// a client still sending the rest of its body would meet a reset
		// instead of the 413. Up to a bound, the rest is read first.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxAdminDrain))
		return errorf(http.StatusRequestEntityTooLarge, "", "the body is larger than %d bytes", maxAdminBody)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err == nil {
		return nil
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(f, `"`)
		for _, m := range immutable {
			if m == field {
				return errorf(http.StatusBadRequest, field, "%s cannot be changed; delete the credential and add it again", field)
			}
		}
		return errorf(http.StatusBadRequest, field, "unknown field %q", field)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
		// Fields of embedded structs come as "Struct.field".
		field := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
		return errorf(http.StatusBadRequest, field, "%s must be a JSON %s", field, te.Type)
	}
	if errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "", "the body is empty; send a JSON object")
	}
	// Other decoding errors (syntax, bad durations) do not quote values.
	return errorf(http.StatusBadRequest, "", "the body is not a valid JSON object: %v", err)
}

// addBody is the body of POST /proxycast/credentials/{provider}.
type addBody struct {
	Credential
	// Token is an OAuth token to store as the credential's token file, in
	// any of the formats token files take.
	Token json.RawMessage `json:"token,omitempty"`
}

func addCredential(w http.ResponseWriter, r *http.Request, prov string) error {
	var body addBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	c := body.Credential
	if err := checkID(c.ID); err != nil {
		return err
	}
	if c.AuthType == provider.AuthOAuth && c.TokenFile == "" {
		c.TokenFile = path.Join(prov, c.ID+".json")
	}
	if hs := handlersFor(prov); len(hs) > 0 {
		// (Errors of resolving come from prepareCredential.)
		if rc, err := c.resolve(); err == nil {
			if err := hs[0].adminTokenFile(rc); err != nil {
				return checkError(err)
			}
		}
	}
	adminMu.Lock()
	defer adminMu.Unlock()
	var view credentialView
	err := mutate(r.Context(), prov, func(ov *overlay, current []effectiveCredential) error {
		for _, e := range current {
			if e.ID == c.ID {
				return errorf(http.StatusConflict, "id", "provider %q already has a credential %q", prov, c.ID)
			}
		}
		if err := prepareCredential(r.Context(), prov, c, body.Token, true); err != nil {
			return err
		}
		po := ov.provider(prov, true)
		po.Added = append(po.Added, c)
		return nil
	})
	if err != nil {
		return err
	}
	view, err = findView(prov, c.ID)
	if err != nil {
		return err
	}
	adminLog(r, "credential added", prov, c.ID)
	writeAdminJSON(w, http.StatusCreated, view)
	return nil
}

// patchBody is the body of PATCH /proxycast/credentials/{provider}/{id}.
type patchBody struct {
	credentialPatch
	Token json.RawMessage `json:"token,omitempty"`
}

func patchCredential(w http.ResponseWriter, r *http.Request, prov, id string) error {
	var body patchBody
	if err := decodeBody(r, &body, "id", "auth_type", "api_key", "token_file", "refresh_before"); err != nil {
		return err
	}
	adminMu.Lock()
	defer adminMu.Unlock()
	err := mutate(r.Context(), prov, func(ov *overlay, current []effectiveCredential) error {
		var cur *effectiveCredential
		for i := range current {
			if current[i].ID == id {
				cur = &current[i]
			}
		}
		if cur == nil {
			return errorf(http.StatusNotFound, "", "provider %q has no credential %q", prov, id)
		}
		next := body.apply(cur.Credential)
		cookiesChanged := body.Cookies != nil && *body.Cookies != cur.Cookies
		if len(body.Token) > 0 && next.AuthType != provider.AuthOAuth {
			return errorf(http.StatusBadRequest, "token", "token is only for oauth credentials, and %q is %s", id, next.AuthType)
		}
		if err := prepareCredential(r.Context(), prov, next, body.Token, cookiesChanged); err != nil {
			return err
		}
		po := ov.provider(prov, true)
		if cur.source == sourceRuntime {
			for i := range po.Added {
				if po.Added[i].ID == id {
					po.Added[i] = next
				}
			}
			return nil
		}
		if po.Changed == nil {
			po.Changed = map[string]configChange{}
		}
		var cfg Credential
		for _, c := range configOf(handlersFor(prov), prov) {
			if c.ID == id {
				cfg = c
			}
		}
		ch := po.Changed[id]
		if ch.ConfigHash != configHash(cfg) {
			ch = configChange{ConfigHash: configHash(cfg)}
		}
		ch.credentialPatch = ch.merge(body.credentialPatch)
		po.Changed[id] = ch
		return nil
	})
	if err != nil {
		return err
	}
	l, err := locate(prov, id)
	if err != nil {
		return err
	}
	if len(body.Token) > 0 && l.entry.Value.renewing != nil {
		l.entry.Value.renewing.Reload(r.Context())
	}
	adminLog(r, "credential changed", prov, id)
	writeAdminJSON(w, http.StatusOK, viewOf(prov, l.cred, l.entry, time.Now()))
	return nil
}

func deleteCredential(w http.ResponseWriter, r *http.Request, prov, id string) error {
	adminMu.Lock()
	defer adminMu.Unlock()
	err := mutate(r.Context(), prov, func(ov *overlay, current []effectiveCredential) error {
		for _, e := range current {
			if e.ID != id {
				continue
			}
			po := ov.provider(prov, true)
			// A runtime credential of this id goes too, also one that a
			// config credential of the same id hides: it must not come
			// back in its place.
			kept := po.Added[:0]
			for _, c := range po.Added {
				if c.ID != id {
					kept = append(kept, c)
				}
			}
			po.Added = kept
			if e.source == sourceRuntime {
				return nil
			}
			for _, c := range configOf(handlersFor(prov), prov) {
				if c.ID == id {
					if po.Deleted == nil {
						po.Deleted = map[string]string{}
					}
					po.Deleted[id] = configHash(c)
					delete(po.Changed, id)
				}
			}
			return nil
		}
		return errorf(http.StatusNotFound, "", "provider %q has no credential %q", prov, id)
	})
	if err != nil {
		return err
	}
	adminLog(r, "credential deleted", prov, id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func refreshCredential(w http.ResponseWriter, r *http.Request, prov, id string) error {
	l, err := locate(prov, id)
	if err != nil {
		return err
	}
	ren := l.entry.Value.renewing
	if ren == nil {
		return errorf(http.StatusBadRequest, "", "credential %q has a fixed api_key: there is nothing to refresh", id)
	}
	if l.cred.Disabled {
		return errorf(http.StatusConflict, "disabled", "credential %q is disabled; enable it first", id)
	}
	ren.Start(r.Context())
	if err := ren.RenewNow(r.Context()); err != nil {
		writeAdminJSON(w, http.StatusBadGateway, map[string]any{
			"error":      "the refresh failed: " + err.Error(),
			"credential": viewOf(prov, l.cred, l.entry, time.Now()),
		})
		return nil
	}
	adminLog(r, "credential refreshed", prov, id)
	writeAdminJSON(w, http.StatusOK, viewOf(prov, l.cred, l.entry, time.Now()))
	return nil
}

// prepareCredential checks a credential that is about to be added or
// changed, and stores what it brings: a token for an oauth credential, or
// for a new or changed cookie the key the platform issues for it (which
// checks the cookie).
func prepareCredential(ctx context.Context, prov string, c Credential, token json.RawMessage, checkCookie bool) error {
	h := handlersFor(prov)[0]
	p := h.providers[prov].provider
	// Placeholders are checked as they resolve now: a change that cannot
	// be put in force must not be stored.
	rc, err := c.resolve()
	if err != nil {
		return checkError(err)
	}
	c, proxyURL := rc.Credential, rc.proxy
	auth, err := p.NewAuth(rc.spec)
	if err != nil {
		return checkError(rc.authError(err))
	}
	if auth.Renewer == nil {
		if len(token) > 0 {
			return errorf(http.StatusBadRequest, "token", "token is only for oauth credentials")
		}
		return nil
	}
	loc, err := rc.locate(h.storage, auth, prov)
	if err != nil {
		return checkError(err)
	}
	if err := credentialClaims(prov, c.ID, auth, loc).free(h.done, "", nil); err != nil {
		return conflictError(err)
	}
	client := h.httpClients.client(proxyURL)
	switch {
	case len(token) > 0:
		imp, ok := p.(provider.TokenImporter)
		if !ok {
			return errorf(http.StatusBadRequest, "token", "provider %q does not take tokens", prov)
		}
		state, err := imp.ImportToken(token)
		if err != nil {
			return errorf(http.StatusBadRequest, "token", "%v", err)
		}
		return storeError(storeState(ctx, loc, state, tokenOf(auth)))
	case c.AuthType == provider.AuthOAuth:
		if _, err := loc.store.Load(ctx, loc.key); errors.Is(err, fs.ErrNotExist) {
			return errorf(http.StatusBadRequest, "token", "there is no token at %s: pass token, or log in with POST /proxycast/oauth/%s", loc.where, prov)
		}
	case c.AuthType == provider.AuthCookie && checkCookie:
		state, err := auth.Renewer.Renew(ctx, client, nil)
		if errors.Is(err, provider.ErrReauth) {
			return errorf(http.StatusBadRequest, "cookies", "%v", err)
		}
		if err != nil {
			return errorf(http.StatusBadGateway, "cookies", "the cookie could not be checked: %v", err)
		}
		return storeState(ctx, loc, state, nil)
	}
	return nil
}

// conflictError is a FieldError as a 409 about its field.
func conflictError(err error) error {
	if fe, ok := errors.AsType[*FieldError](err); ok {
		return errorf(http.StatusConflict, fe.Field, "%s", fe.Msg)
	}
	return errorf(http.StatusConflict, "", "%v", err)
}

// storeError is storeState's failure as an admin API error: a place that
// holds something else is a conflict about the token file.
func storeError(err error) error {
	if errors.Is(err, errOccupied) {
		return errorf(http.StatusConflict, "token_file", "%v", err)
	}
	return err
}

// checkError turns a failed Credential.Check into a 400 that names the
// field at fault.
func checkError(err error) error {
	if fe, ok := errors.AsType[*FieldError](err); ok {
		return errorf(http.StatusBadRequest, fe.Field, "%s", fe.Msg)
	}
	return errorf(http.StatusBadRequest, "", "%v", err)
}

// secretField names the field that carries an auth type's secret.
func secretField(authType string) string {
	switch authType {
	case provider.AuthOAuth:
		return "token_file"
	case provider.AuthCookie:
		return "cookies"
	case provider.AuthAPIKey:
		return "api_key"
	}
	return "auth_type"
}

// checkID accepts ids that are safe in URLs, file names and metric labels.
func checkID(id string) error {
	if id == "" {
		return errorf(http.StatusBadRequest, "id", "id is required")
	}
	if len(id) > 64 {
		return errorf(http.StatusBadRequest, "id", "id is longer than 64 characters")
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return errorf(http.StatusBadRequest, "id", "id %q may only hold letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}

// adminLog records a change; never a secret.
func adminLog(r *http.Request, msg, prov, id string) {
	caddy.Log().Named("admin.api.proxycast").Info(msg,
		zap.String("provider", prov), zap.String("credential", id), zap.String("remote_ip", r.RemoteAddr))
}

// Interface guards
var _ caddy.AdminRouter = (*AdminAPI)(nil)

// uiPage serves the management page's files.
var uiPage = ui.Handler(ui.Prefix)

// serveUI serves the management page. Caddy's admin endpoint turns away
// a browser's own navigation to it (the cross-site check wants an Origin
// that navigations lack), so browsers reach it through `caddy proxycast
// ui`, which forwards here.
func serveUI(w http.ResponseWriter, r *http.Request) error {
	uiPage.ServeHTTP(w, r)
	return nil
}
