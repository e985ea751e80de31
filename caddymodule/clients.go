package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/proxycast/caddy-proxycast/clients"
	"github.com/proxycast/caddy-proxycast/provider"
	"github.com/proxycast/caddy-proxycast/usage"
)

// ClientConfig is one named client: its keys, and what it may use.
type ClientConfig struct {
	// Name names the client in logs and metrics (never its key).
	Name string `json:"name"`

	// Keys are the keys the client presents, as api_keys are presented.
	// Placeholders such as {env.ALICE_KEY} are replaced when the handler
	// starts. A key belongs to one client.
	Keys []string `json:"keys"`

	// Models, if set, are the only models the client may ask for: globs
	// over the model it names, `*` any run of characters and `?` one.
	// Default: every model.
	Models []string `json:"models,omitempty"`

	// RateLimit bounds the client's requests (chat, messages, responses,
	// count_tokens) in any window of the given length, in this Caddy
	// instance: "60/m", "5/s", "1000/h", "10000/d" or "100/30s".
	// Default: none.
	RateLimit string `json:"rate_limit,omitempty"`

	// Expires is when the client's keys stop working: a date
	// (2027-03-01, at 00:00 UTC) or an RFC 3339 time. Default: never.
	Expires string `json:"expires,omitempty"`

	// TokenBudget bounds the tokens (prompt and completion, as the
	// providers report them) of the client's answers per calendar day or
	// month in UTC, or per run of a duration: "2000000/day",
	// "50000000/month", "100000/6h". Instances that share storage share
	// the budget. Default: none.
	TokenBudget string `json:"token_budget,omitempty"`
}

// clientLimiters keeps each client's rate limiter across reloads, by
// name and rate: a reload does not forget what a client has sent.
var clientLimiters = caddy.NewUsagePool()

type heldLimiter struct{ *clients.Limiter }

func (heldLimiter) Destruct() error { return nil }

// clientsBuild is one generation of a handler's named clients, rebuilt
// when the admin API changes them, with the limiters and meters it holds.
type clientsBuild struct {
	builtClients
	limiterKeys []string // held in clientLimiters
	meterKeys   []string // held in clientMeters
}

func (b *clientsBuild) release() {
	for _, k := range b.limiterKeys {
		_, _ = clientLimiters.Delete(k)
	}
	for _, k := range b.meterKeys {
		_, _ = clientMeters.Delete(k)
	}
}

// namedClients is a handler's named clients.
type namedClients struct {
	now atomic.Pointer[clientsBuild]
	// closed, guarded by applyMu, is set when the config is cleaned up.
	closed bool
}

// clientsBuild is the generation of named clients in force, or nil.
func (h *Handler) clientsBuild() *clientsBuild {
	if h.named == nil {
		return nil
	}
	return h.named.now.Load()
}

// clientSet is the named clients in force.
func (h *Handler) clientSet() *clients.Set {
	if b := h.clientsBuild(); b != nil {
		return b.set
	}
	return nil
}

// specOf checks a client's settings and replaces the placeholders of its
// keys. Its errors are *clients.Error, naming the setting.
func specOf(cc ClientConfig, digests []string) (clients.Spec, error) {
	sp := clients.Spec{Name: cc.Name, Models: cc.Models}
	if cc.Name == "" {
		return sp, clients.Errorf("name", "a client has no name")
	}
	for j, k := range cc.Keys {
		k, err := resolvePlaceholders(k, envAndFile)
		if err != nil {
			return sp, clients.Errorf("keys", "client %q: key %d: %v", cc.Name, j+1, err)
		}
		k = strings.TrimSpace(k)
		if k != "" && !httpguts.ValidHeaderFieldValue(k) {
			return sp, clients.Errorf("keys", "client %q: key %d holds a character that cannot go into an HTTP header", cc.Name, j+1)
		}
		sp.Keys = append(sp.Keys, k)
	}
	for j, d := range digests {
		raw, err := hex.DecodeString(d)
		if err != nil || len(raw) != sha256.Size {
			return sp, clients.Errorf("keys", "client %q: key digest %d is not a SHA-256 digest in hex", cc.Name, j+1)
		}
		sp.Digests = append(sp.Digests, clients.Digest(raw))
	}
	if cc.RateLimit != "" {
		r, err := clients.ParseRate(cc.RateLimit)
		if err != nil {
			return sp, clients.Errorf("rate_limit", "client %q: rate_limit: %v", cc.Name, err)
		}
		sp.RateLimit = r
	}
	if cc.TokenBudget != "" {
		b, err := clients.ParseBudget(cc.TokenBudget)
		if err != nil {
			return sp, clients.Errorf("token_budget", "client %q: %v", cc.Name, err)
		}
		sp.Budget = b
	}
	if cc.Expires != "" {
		t, err := clients.ParseExpiry(cc.Expires)
		if err != nil {
			return sp, clients.Errorf("expires", "client %q: %v", cc.Name, err)
		}
		sp.Expires = t
	}
	return sp, nil
}

// builtClients is what buildClients makes of a handler's clients.
type builtClients struct {
	set     *clients.Set
	inForce []clientInForce
	// leftOut are the runtime clients that could not be put in force,
	// with why.
	leftOut []effectiveClient
	// failed says, by name, why a client is left out or why its runtime
	// change is set aside.
	failed map[string]error
}

// clientInForce is a client as configured and as it runs.
type clientInForce struct {
	effectiveClient
	client *clients.Client
}

// buildClients builds ecs into a set for h: the clients of the config as
// they are first, then those a runtime change alters, then the runtime
// clients, so that a runtime change never pushes a client of the config
// out (the config wins). A runtime change to a config client that does
// not fit is set aside, the client running as configured; a runtime
// client that does not fit is left out. Only a client of the config as
// configured that does not fit is an error: the config is wrong.
func (h *Handler) buildClients(ecs []effectiveClient, b *clients.Builder) (builtClients, error) {
	for _, k := range h.keys {
		b.Reserve(k, "api_keys")
	}
	out := builtClients{failed: map[string]error{}}
	add := func(ec effectiveClient) (*clients.Client, error) {
		sp, err := specOf(ec.ClientConfig, ec.digests)
		if err != nil {
			return nil, err
		}
		return b.Add(sp)
	}
	rank := func(ec effectiveClient) int {
		switch {
		case ec.source == sourceRuntime:
			return 2
		case ec.asConfigured != nil:
			return 1
		}
		return 0
	}
	for pass := range 3 {
		for i, ec := range ecs {
			if rank(ec) != pass {
				continue
			}
			c, err := add(ec)
			if err != nil && ec.asConfigured != nil {
				out.failed[ec.Name] = err
				ec = effectiveClient{ClientConfig: *ec.asConfigured, source: sourceConfig, changeSetAside: err.Error()}
				c, err = add(ec)
			}
			switch {
			case err == nil:
				out.inForce = append(out.inForce, clientInForce{ec, c})
			case ec.source == sourceRuntime:
				out.failed[ec.Name] = err
				ec.leftOut = err.Error()
				out.leftOut = append(out.leftOut, ec)
			case ec.Name == "":
				return out, fmt.Errorf("clients: client %d has no name", i+1)
			default:
				return out, err
			}
		}
	}
	out.set = b.Set()
	return out, nil
}

// rebuildClients builds the named clients from ecs (see buildClients)
// and puts them in force. The caller holds applyMu.
func (h *Handler) rebuildClients(ecs []effectiveClient) error {
	if h.named == nil {
		h.named = &namedClients{}
	}
	if h.named.closed {
		return nil // the config is gone: holds taken now would stay for good
	}
	next := &clientsBuild{}
	b := clients.NewBuilder(func(name string, r clients.Rate) *clients.Limiter {
		key := name + "|" + strconv.Itoa(r.N) + "|" + r.Window.String()
		v, _, _ := clientLimiters.LoadOrNew(key, func() (caddy.Destructor, error) {
			return heldLimiter{clients.NewLimiter(r)}, nil
		})
		next.limiterKeys = append(next.limiterKeys, key)
		return v.(heldLimiter).Limiter
	}, func(name string) *usage.Meter {
		m, held := h.heldMeter(clientMeters, name, sectionClients)
		next.meterKeys = append(next.meterKeys, held)
		return m
	})
	built, err := h.buildClients(ecs, b)
	if err != nil {
		next.release()
		return err
	}
	for _, ec := range built.inForce {
		if ec.changeSetAside != "" {
			h.logger.Error("runtime change to a client of the config set aside; the client runs as configured",
				zap.String("client", ec.Name), zap.String("error", ec.changeSetAside))
		}
	}
	for _, ec := range built.leftOut {
		h.logger.Error("runtime client left out", zap.String("client", ec.Name), zap.String("error", ec.leftOut))
	}
	next.builtClients = built
	if old := h.named.now.Swap(next); old != nil {
		old.release()
	}
	return nil
}

// closeClients lets go of the clients' limiters and meters. The last
// generation stays in force for requests that reach the config after its
// cleanup.
func (h *Handler) closeClients() {
	applyMu.Lock()
	defer applyMu.Unlock()
	if h.named == nil || h.named.closed {
		return
	}
	h.named.closed = true
	if b := h.named.now.Load(); b != nil {
		b.release()
	}
}

// clientKey is the context key of the request's named client.
type clientKey struct{}

// clientOf is the named client that sent r, or nil (an api_keys key, or
// anonymous).
func clientOf(r *http.Request) *clients.Client {
	c, _ := r.Context().Value(clientKey{}).(*clients.Client)
	return c
}

func withClient(r *http.Request, c *clients.Client) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), clientKey{}, c))
}

// admit refuses a named client's request that its expiry, token budget
// or rate limit forbids; limited is whether the request is one they
// bound. It reads only memory: the other instances' share of a budget is
// as of the last sync.
func (h *Handler) admit(c *clients.Client, now time.Time, limited bool) *provider.Error {
	if c == nil {
		return nil
	}
	if c.Expired(now) {
		return clientError(http.StatusUnauthorized, "invalid_request_error", "expired_api_key",
			fmt.Sprintf("the key of client %q expired at %s; ask for a new one", c.Name, c.Expires.UTC().Format(time.RFC3339)))
	}
	if !limited {
		return nil
	}
	if over, renews := c.OverBudget(now, h.peers()); over {
		e := clientError(http.StatusTooManyRequests, "rate_limit_error", "token_budget_exceeded",
			fmt.Sprintf("client %q has used its token budget of %s; it renews at %s", c.Name, c.Budget, renews.Format(time.RFC3339)))
		e.RetryAfter = renews.Sub(now)
		return e
	}
	if ok, wait := c.Allow(now); !ok {
		e := clientError(http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded",
			fmt.Sprintf("client %q may send %s requests; try again in %ds", c.Name, c.RateLimit, int(math.Ceil(wait.Seconds()))))
		e.RetryAfter = wait
		return e
	}
	return nil
}

// peers is the other instances' spend of budgets, or nil.
func (h *Handler) peers() clients.Peers {
	if h.usage == nil {
		return nil // a nil *usageSyncer would be a non-nil Peers
	}
	return h.usage
}

// mayUse refuses a model outside the client's models.
func mayUse(c *clients.Client, model string) *provider.Error {
	if c == nil || c.MayUse(model) {
		return nil
	}
	return clientError(http.StatusForbidden, "permission_error", "model_not_allowed",
		fmt.Sprintf("client %q may not use model %q; it may use %s", c.Name, model, strings.Join(c.Models, ", ")))
}

// clientUsed counts an answered request of the named client c (if any)
// for model: what it cost, as the upstream reported or, with estimated,
// as estimated.
func clientUsed(c *clients.Client, model string, u provider.Usage, estimated bool) {
	if c == nil {
		return
	}
	c.Record(now(), model, u, estimated)
	metricClientRequests.WithLabelValues(c.Name, model).Inc()
	tokens := metricClientTokens
	if estimated {
		tokens = metricClientEstimated
	}
	for _, k := range [...]struct {
		kind string
		n    int64
	}{{"prompt", u.Prompt}, {"completion", u.Completion}, {"cached", u.Cached}, {"reasoning", u.Reasoning}} {
		if k.n > 0 {
			tokens.WithLabelValues(c.Name, model, k.kind).Add(float64(k.n))
		}
	}
}

// clock is the handler's clock for named clients (expiry, rate limits,
// budget periods); tests move it.
var clock atomic.Pointer[func() time.Time]

func now() time.Time {
	if f := clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}
