package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/proxycast/caddy-proxycast/clients"
	"github.com/proxycast/caddy-proxycast/usage"
)

// clientsOverlay is the admin API's changes to the named clients, kept in
// the runtime overlay beside the credentials'. Keys given through the
// admin API are stored as their SHA-256 digests only: the admin API never
// shows a key, and neither does the storage.
type clientsOverlay struct {
	// Added are the clients added at run time.
	Added []runtimeClient `json:"added,omitempty"`
	// Changed are changes to clients of the config, by name, with the
	// hash of the config's entry at the time: when the config itself
	// changes the client, the config wins.
	Changed map[string]clientChange `json:"changed,omitempty"`
	// Deleted are clients of the config deleted at run time: name to the
	// hash of the config's entry.
	Deleted map[string]string `json:"deleted,omitempty"`
}

// runtimeClient is a client added through the admin API.
type runtimeClient struct {
	Name        string   `json:"name"`
	KeyDigests  []string `json:"key_sha256"`
	Models      []string `json:"models,omitempty"`
	RateLimit   string   `json:"rate_limit,omitempty"`
	TokenBudget string   `json:"token_budget,omitempty"`
	Expires     string   `json:"expires,omitempty"`
}

// clone is a deep copy of co, to compare a change with what was.
func (co *clientsOverlay) clone() *clientsOverlay {
	raw, _ := json.Marshal(co)
	var c clientsOverlay
	_ = json.Unmarshal(raw, &c)
	return &c
}

// withClients is o with clients co instead of its own.
func (o *overlay) withClients(co *clientsOverlay) *overlay {
	return &overlay{Version: o.Version, Providers: o.Providers, Clients: co}
}

func (rc runtimeClient) config() ClientConfig {
	return ClientConfig{Name: rc.Name, Models: rc.Models, RateLimit: rc.RateLimit, TokenBudget: rc.TokenBudget, Expires: rc.Expires}
}

// clientPatch is what PATCH may change; an empty string or list sets an
// option back to its default.
type clientPatch struct {
	KeyDigests  *[]string `json:"key_sha256,omitempty"`
	Models      *[]string `json:"models,omitempty"`
	RateLimit   *string   `json:"rate_limit,omitempty"`
	TokenBudget *string   `json:"token_budget,omitempty"`
	Expires     *string   `json:"expires,omitempty"`
}

type clientChange struct {
	ConfigHash string `json:"config_hash"`
	clientPatch
}

// apply is cc with the patch, and the digests of the keys it has beyond
// cc's (all of them, when the patch replaces the keys).
func (p clientPatch) apply(cc ClientConfig, digests []string) (ClientConfig, []string) {
	if p.KeyDigests != nil {
		cc.Keys, digests = nil, *p.KeyDigests
	}
	if cc.Models = patched(p.Models, cc.Models); len(cc.Models) == 0 {
		cc.Models = nil
	}
	cc.RateLimit = patched(p.RateLimit, cc.RateLimit)
	cc.TokenBudget = patched(p.TokenBudget, cc.TokenBudget)
	cc.Expires = patched(p.Expires, cc.Expires)
	return cc, digests
}

// merge is p with q's changes on top.
func (p clientPatch) merge(q clientPatch) clientPatch {
	p.KeyDigests = later(p.KeyDigests, q.KeyDigests)
	p.Models = later(p.Models, q.Models)
	p.RateLimit = later(p.RateLimit, q.RateLimit)
	p.TokenBudget = later(p.TokenBudget, q.TokenBudget)
	p.Expires = later(p.Expires, q.Expires)
	return p
}

// effectiveClient is a client as it is in force, and where it comes from.
type effectiveClient struct {
	ClientConfig
	// digests are the hex SHA-256 digests of the keys given through the
	// admin API.
	digests []string
	source  string
	// asConfigured is the config's own version of a config client that a
	// runtime change altered, to fall back on should the change not apply.
	asConfigured *ClientConfig
	// changeSetAside says why the runtime change to this config client is
	// not in force; leftOut why this runtime client is not.
	changeSetAside, leftOut string
}

// clientHash fingerprints a client of the config as written, its keys by
// their digests: the fingerprint is stored.
func clientHash(cc ClientConfig) string {
	keys := make([]string, len(cc.Keys))
	for i, k := range cc.Keys {
		d := sha256.Sum256([]byte(k))
		keys[i] = hex.EncodeToString(d[:])
	}
	cc.Keys = keys
	raw, _ := json.Marshal(cc)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:12])
}

// effectiveClients merges the config's clients with the overlay's
// changes.
func (o *overlay) effectiveClients(config []ClientConfig) []effectiveClient {
	co := o.Clients
	var out []effectiveClient
	for _, cc := range config {
		if co != nil {
			if h, ok := co.Deleted[cc.Name]; ok && h == clientHash(cc) {
				continue
			}
			if ch, ok := co.Changed[cc.Name]; ok && ch.ConfigHash == clientHash(cc) {
				orig := cc
				next, digests := ch.apply(cc, nil)
				out = append(out, effectiveClient{ClientConfig: next, digests: digests, source: sourceConfig, asConfigured: &orig})
				continue
			}
		}
		out = append(out, effectiveClient{ClientConfig: cc, source: sourceConfig})
	}
	if co != nil {
		for _, rc := range co.Added {
			if !slices.ContainsFunc(out, func(e effectiveClient) bool { return e.Name == rc.Name }) {
				out = append(out, effectiveClient{ClientConfig: rc.config(), digests: rc.KeyDigests, source: sourceRuntime})
			}
		}
	}
	return out
}

// clientsFor is the clients a handler runs with the overlay ov: an
// anonymous handler checks no key, so it takes no runtime client.
func (h *Handler) clientsFor(ov *overlay) []effectiveClient {
	if h.Anonymous {
		return (&overlay{}).effectiveClients(h.Clients)
	}
	return ov.effectiveClients(h.Clients)
}

// keyedHandlers lists the running handlers that check keys, newest
// first: the named clients of the admin API are theirs.
func keyedHandlers() []*Handler {
	var out []*Handler
	for _, h := range live.newestFirst() {
		if !h.Anonymous {
			out = append(out, h)
		}
	}
	return out
}

// configClients is the config's clients over the keyed handlers (newest
// first, so during a reload the new config's version of a client wins).
func configClients(hs []*Handler) []ClientConfig {
	var out []ClientConfig
	for _, h := range hs {
		for _, cc := range h.Clients {
			if !slices.ContainsFunc(out, func(o ClientConfig) bool { return o.Name == cc.Name }) {
				out = append(out, cc)
			}
		}
	}
	return out
}

// mutateClients changes the stored overlay's clients under the lock and
// puts the result in force in every keyed handler. Before storing, it
// builds each handler's clients with the change, so that a change that
// does not fit one of them (a key another client has) is refused with
// nothing stored.
func mutateClients(ctx context.Context, name string, change func(ov *overlay, current []effectiveClient) error) error {
	hs := keyedHandlers()
	if len(hs) == 0 {
		return errorf(http.StatusNotFound, "", "no running proxycast handler takes keys (each is anonymous, or none runs)")
	}
	ov, before, err := storeChange(ctx, hs[0].storage, func(ov *overlay) error {
		if ov.Clients == nil {
			ov.Clients = &clientsOverlay{}
		}
		was := ov.withClients(ov.Clients.clone())
		if err := change(ov, ov.effectiveClients(configClients(hs))); err != nil {
			return err
		}
		for _, h := range hs {
			if err := fits(h, was.effectiveClients(h.Clients), ov.effectiveClients(h.Clients), name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	applyMu.Lock()
	defer applyMu.Unlock()
	for _, h := range keyedHandlers() {
		if err := h.rebuildClients(h.clientsFor(ov)); err != nil {
			// Left for the next sync to try again.
			h.logger.Error("applying a runtime client change", zap.Error(err))
			continue
		}
		h.runtime.appliedPart(before, ov.stored)
	}
	return nil
}

// fits checks that the change from was to ecs fits h's clients: the
// client name, as changed, joins them (its change is not set aside), and
// no other client is pushed out or set aside that was not before.
func fits(h *Handler, was, ecs []effectiveClient, name string) error {
	before, err := h.buildClients(was, clients.NewBuilder(nil, nil))
	if err != nil {
		before.failed = map[string]error{}
	}
	after, err := h.buildClients(ecs, clients.NewBuilder(nil, nil))
	if err != nil {
		return adminClientError(err)
	}
	if err, ok := after.failed[name]; ok {
		return adminClientError(err)
	}
	for other, err := range after.failed {
		if _, ok := before.failed[other]; !ok {
			return errorf(http.StatusConflict, "keys", "the change would put client %q out of force: %v", other, err)
		}
	}
	return nil
}

// adminClientError is a client error as the admin API answers it: a
// conflict with another client is a 409, anything else a 400, naming the
// setting.
func adminClientError(err error) error {
	ce, ok := errors.AsType[*clients.Error](err)
	if !ok {
		return errorf(http.StatusBadRequest, "", "%v", err)
	}
	if ce.Conflict {
		return errorf(http.StatusConflict, ce.Field, "%s", ce.Msg)
	}
	return errorf(http.StatusBadRequest, ce.Field, "%s", ce.Msg)
}

// minAdminKey bounds a key given through the admin API from below: such
// a key is the whole of a client's secret.
const minAdminKey = 16

// digestsOf checks the keys of an admin API body and gives their digests.
func digestsOf(keys []string) ([]string, error) {
	if len(keys) == 0 {
		return nil, errorf(http.StatusBadRequest, "keys", "keys must list one or more keys")
	}
	out := make([]string, 0, len(keys))
	for i, k := range keys {
		k = strings.TrimSpace(k)
		switch {
		case len(k) < minAdminKey:
			return nil, errorf(http.StatusBadRequest, "keys", "key %d is shorter than %d characters; make one with `openssl rand -hex 24`", i+1, minAdminKey)
		case !httpguts.ValidHeaderFieldValue(k):
			return nil, errorf(http.StatusBadRequest, "keys", "key %d holds a character that cannot go into an HTTP header", i+1)
		case strings.HasPrefix(k, "{") && strings.HasSuffix(k, "}"):
			return nil, errorf(http.StatusBadRequest, "keys", "key %d looks like a placeholder; the admin API takes keys as they are (placeholders are for the config)", i+1)
		}
		d := clients.DigestOf(k)
		out = append(out, hex.EncodeToString(d[:]))
	}
	return out, nil
}

// clientBody is the body of POST /proxycast/clients.
type clientBody struct {
	Name        string   `json:"name"`
	Keys        []string `json:"keys"`
	Models      []string `json:"models,omitempty"`
	RateLimit   string   `json:"rate_limit,omitempty"`
	TokenBudget string   `json:"token_budget,omitempty"`
	Expires     string   `json:"expires,omitempty"`
}

// clientPatchBody is the body of PATCH /proxycast/clients/{name}: keys,
// if given, replace the client's keys.
type clientPatchBody struct {
	Keys        *[]string `json:"keys,omitempty"`
	Models      *[]string `json:"models,omitempty"`
	RateLimit   *string   `json:"rate_limit,omitempty"`
	TokenBudget *string   `json:"token_budget,omitempty"`
	Expires     *string   `json:"expires,omitempty"`
}

func addClient(w http.ResponseWriter, r *http.Request) error {
	var body clientBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Name == "" {
		return errorf(http.StatusBadRequest, "name", "name is missing")
	}
	digests, err := digestsOf(body.Keys)
	if err != nil {
		return err
	}
	rc := runtimeClient{Name: body.Name, KeyDigests: digests, Models: body.Models, RateLimit: body.RateLimit,
		TokenBudget: body.TokenBudget, Expires: body.Expires}
	if _, err := specOf(rc.config(), rc.KeyDigests); err != nil {
		return adminClientError(err)
	}
	adminMu.Lock()
	defer adminMu.Unlock()
	err = mutateClients(r.Context(), body.Name, func(ov *overlay, current []effectiveClient) error {
		if slices.ContainsFunc(current, func(e effectiveClient) bool { return e.Name == body.Name }) {
			return errorf(http.StatusConflict, "name", "there is already a client %q", body.Name)
		}
		// A runtime client hidden by a config client of its name goes.
		ov.Clients.Added = slices.DeleteFunc(ov.Clients.Added, func(o runtimeClient) bool { return o.Name == body.Name })
		ov.Clients.Added = append(ov.Clients.Added, rc)
		return nil
	})
	if err != nil {
		return err
	}
	adminClientLog(r, "client added", body.Name)
	return writeClient(w, http.StatusCreated, body.Name)
}

func patchClient(w http.ResponseWriter, r *http.Request, name string) error {
	var body clientPatchBody
	if err := decodeBody(r, &body, "name"); err != nil {
		return err
	}
	p := clientPatch{Models: body.Models, RateLimit: body.RateLimit, TokenBudget: body.TokenBudget, Expires: body.Expires}
	if body.Keys != nil {
		digests, err := digestsOf(*body.Keys)
		if err != nil {
			return err
		}
		p.KeyDigests = &digests
	}
	adminMu.Lock()
	defer adminMu.Unlock()
	err := mutateClients(r.Context(), name, func(ov *overlay, current []effectiveClient) error {
		i := slices.IndexFunc(current, func(e effectiveClient) bool { return e.Name == name })
		if i < 0 {
			return errorf(http.StatusNotFound, "", "there is no client %q", name)
		}
		cur := current[i]
		next, digests := p.apply(cur.ClientConfig, cur.digests)
		if _, err := specOf(next, digests); err != nil {
			return adminClientError(err)
		}
		co := ov.Clients
		if cur.source == sourceRuntime {
			for j := range co.Added {
				if co.Added[j].Name == name {
					co.Added[j] = runtimeClient{Name: name, KeyDigests: digests, Models: next.Models,
						RateLimit: next.RateLimit, TokenBudget: next.TokenBudget, Expires: next.Expires}
				}
			}
			return nil
		}
		cfg := configClients(keyedHandlers())
		j := slices.IndexFunc(cfg, func(c ClientConfig) bool { return c.Name == name })
		if j < 0 {
			return errorf(http.StatusConflict, "", "client %q has just left the config (a reload); try again", name)
		}
		hash := clientHash(cfg[j])
		if co.Changed == nil {
			co.Changed = map[string]clientChange{}
		}
		ch := co.Changed[name]
		if ch.ConfigHash != hash {
			ch = clientChange{ConfigHash: hash}
		}
		ch.clientPatch = ch.merge(p)
		co.Changed[name] = ch
		return nil
	})
	if err != nil {
		return err
	}
	adminClientLog(r, "client changed", name)
	return writeClient(w, http.StatusOK, name)
}

func deleteClient(w http.ResponseWriter, r *http.Request, name string) error {
	adminMu.Lock()
	defer adminMu.Unlock()
	err := mutateClients(r.Context(), "", func(ov *overlay, current []effectiveClient) error {
		i := slices.IndexFunc(current, func(e effectiveClient) bool { return e.Name == name })
		if i < 0 {
			return errorf(http.StatusNotFound, "", "there is no client %q", name)
		}
		co := ov.Clients
		co.Added = slices.DeleteFunc(co.Added, func(o runtimeClient) bool { return o.Name == name })
		if current[i].source == sourceRuntime {
			return nil
		}
		for _, cc := range configClients(keyedHandlers()) {
			if cc.Name == name {
				if co.Deleted == nil {
					co.Deleted = map[string]string{}
				}
				co.Deleted[name] = clientHash(cc)
				delete(co.Changed, name)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	adminClientLog(r, "client deleted", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func writeClient(w http.ResponseWriter, status int, name string) error {
	v, err := findClient(name, now())
	if err != nil {
		return err
	}
	writeAdminJSON(w, status, v)
	return nil
}

func adminClientLog(r *http.Request, msg, name string) {
	caddy.Log().Named("admin.api.proxycast").Info(msg, zap.String("client", name), zap.String("remote_ip", r.RemoteAddr))
}

// clientView is a named client as the admin API shows it: never a key.
type clientView struct {
	Name        string     `json:"name"`
	Source      string     `json:"source"`
	Keys        int        `json:"keys"`
	Models      []string   `json:"models,omitempty"`
	RateLimit   string     `json:"rate_limit,omitempty"`
	TokenBudget string     `json:"token_budget,omitempty"`
	Expires     *time.Time `json:"expires,omitempty"`
	Expired     bool       `json:"expired,omitempty"`
	// Budget is the current period of the token budget.
	Budget *budgetView `json:"budget,omitempty"`
	// LeftOut says why a runtime client is not in force; RuntimeChange
	// why a runtime change to a client of the config is not.
	LeftOut       string `json:"left_out,omitempty"`
	RuntimeChange string `json:"runtime_change,omitempty"`
	// Usage is by model, and in total: this instance's, kept across
	// restarts in Caddy's storage.
	Usage      map[string]usage.ModelUsage `json:"usage"`
	UsageTotal usage.ModelUsage            `json:"usage_total"`
}

// budgetView is a budget's current period: the tokens spent in it by
// this instance and, as of their last sync, the others sharing the
// storage.
type budgetView struct {
	Spent  int64     `json:"spent"`
	Start  time.Time `json:"start"`
	Renews time.Time `json:"renews"`
}

func viewOfClient(h *Handler, ec effectiveClient, c *clients.Client, at time.Time) clientView {
	v := clientView{Name: ec.Name, Source: ec.source, Keys: len(ec.Keys) + len(ec.digests), Models: ec.Models,
		RateLimit: ec.RateLimit, TokenBudget: ec.TokenBudget, Usage: map[string]usage.ModelUsage{}}
	if ec.changeSetAside != "" {
		v.RuntimeChange = "set aside: " + ec.changeSetAside
	}
	if c == nil {
		v.LeftOut = ec.leftOut
		return v
	}
	v.Expires, v.Expired = timePtr(c.Expires), c.Expired(at)
	if c.RateLimit.N > 0 {
		v.RateLimit = c.RateLimit.String()
	}
	if c.Budget.Tokens > 0 {
		v.TokenBudget = c.Budget.String()
		start, end := c.Budget.Window(at)
		spent := c.Meter.Spent(start)
		if p := h.peers(); p != nil {
			spent += p.Spent(c.Name, start)
		}
		v.Budget = &budgetView{Spent: spent, Start: start, Renews: end}
	}
	v.Usage = c.Meter.Snapshot()
	v.UsageTotal = usage.Total(v.Usage)
	return v
}

// listClients shows the named clients of the running handlers, by name
// (the newest config's where several configs run), with the runtime
// clients that could not be put in force.
func listClients(at time.Time) []clientView {
	out := []clientView{}
	seen := map[string]bool{}
	for _, h := range live.newestFirst() {
		b := h.clientsBuild()
		if b == nil {
			continue
		}
		for _, c := range b.inForce {
			if !seen[c.Name] {
				seen[c.Name] = true
				out = append(out, viewOfClient(h, c.effectiveClient, c.client, at))
			}
		}
		for _, ec := range b.leftOut {
			if !seen[ec.Name] {
				seen[ec.Name] = true
				out = append(out, viewOfClient(h, ec, nil, at))
			}
		}
	}
	slices.SortFunc(out, func(a, b clientView) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func findClient(name string, at time.Time) (clientView, error) {
	for _, v := range listClients(at) {
		if v.Name == name {
			return v, nil
		}
	}
	return clientView{}, errorf(http.StatusNotFound, "", "there is no client %q", name)
}
