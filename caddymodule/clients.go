package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/net/http/httpguts"

	"github.com/proxycast/caddy-proxycast/clients"
	"github.com/proxycast/caddy-proxycast/provider"
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

// clientMeters keeps each client's usage across reloads, by name.
var clientMeters = caddy.NewUsagePool()

type heldMeter struct{ *clients.Meter }

func (heldMeter) Destruct() error { return nil }

// provisionClients builds the named clients.
func (h *Handler) provisionClients() error {
	var specs []clients.Spec
	for i, cc := range h.Clients {
		sp := clients.Spec{Name: cc.Name, Models: cc.Models}
		if cc.Name == "" {
			return fmt.Errorf("clients: client %d has no name", i+1)
		}
		for j, k := range cc.Keys {
			k, err := resolvePlaceholders(k, envAndFile)
			if err != nil {
				return fmt.Errorf("client %q: key %d: %v", cc.Name, j+1, err)
			}
			k = strings.TrimSpace(k)
			if k != "" && !httpguts.ValidHeaderFieldValue(k) {
				return fmt.Errorf("client %q: key %d holds a character that cannot go into an HTTP header", cc.Name, j+1)
			}
			sp.Keys = append(sp.Keys, k)
		}
		if cc.RateLimit != "" {
			r, err := clients.ParseRate(cc.RateLimit)
			if err != nil {
				return fmt.Errorf("client %q: rate_limit: %v", cc.Name, err)
			}
			sp.RateLimit = r
		}
		if cc.TokenBudget != "" {
			b, err := clients.ParseBudget(cc.TokenBudget)
			if err != nil {
				return fmt.Errorf("client %q: %v", cc.Name, err)
			}
			sp.Budget = b
		}
		if cc.Expires != "" {
			t, err := clients.ParseExpiry(cc.Expires)
			if err != nil {
				return fmt.Errorf("client %q: %v", cc.Name, err)
			}
			sp.Expires = t
		}
		specs = append(specs, sp)
	}
	legacy := map[[sha256.Size]byte]bool{}
	for _, k := range h.keys {
		legacy[k] = true
	}
	for _, sp := range specs {
		for j, k := range sp.Keys {
			if legacy[sha256.Sum256([]byte(k))] {
				return fmt.Errorf("client %q: key %d is also in api_keys: each key belongs to one client", sp.Name, j+1)
			}
		}
	}
	if len(specs) > 0 {
		// One syncer per interval and storage: a config that moves the
		// storage gets its own. The storage is named by a digest of its
		// settings, which may hold a password.
		storageID := sha256.Sum256([]byte(fmt.Sprintf("%#v", h.storage)))
		key := time.Duration(h.UsageSync).String() + "|" + hex.EncodeToString(storageID[:8])
		v, _, err := usageSyncs.LoadOrNew(key, func() (caddy.Destructor, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return startUsageSync(ctx, h.storage, time.Duration(h.UsageSync), h.logger.Named("usage"))
		})
		if err != nil {
			return fmt.Errorf("clients: starting the usage store: %v", err)
		}
		h.usage = v.(*usageSyncer)
		h.usageKey = key
	}
	set, err := clients.New(specs, func(name string, r clients.Rate) *clients.Limiter {
		key := name + "|" + strconv.Itoa(r.N) + "|" + r.Window.String()
		v, _, _ := clientLimiters.LoadOrNew(key, func() (caddy.Destructor, error) {
			return heldLimiter{clients.NewLimiter(r)}, nil
		})
		h.limiterKeys = append(h.limiterKeys, key)
		return v.(heldLimiter).Limiter
	}, func(name string) *clients.Meter {
		v, _, _ := clientMeters.LoadOrNew(name, func() (caddy.Destructor, error) {
			m := clients.NewMeter()
			if saved, ok := h.usage.take(name); ok {
				m.Restore(saved)
			}
			return heldMeter{m}, nil
		})
		h.meterKeys = append(h.meterKeys, name)
		return v.(heldMeter).Meter
	})
	if err != nil {
		return err
	}
	h.clientSet = set
	return nil
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
	var others func(time.Time) int64
	if h.usage != nil && c.Budget.Tokens > 0 {
		others = h.usage.others(c.Name)
	}
	if over, renews := c.OverBudget(now, others); over {
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

// mayUse refuses a model outside the client's models.
func mayUse(c *clients.Client, model string) *provider.Error {
	if c == nil || c.MayUse(model) {
		return nil
	}
	return clientError(http.StatusForbidden, "permission_error", "model_not_allowed",
		fmt.Sprintf("client %q may not use model %q; it may use %s", c.Name, model, strings.Join(c.Models, ", ")))
}

// clientUsed counts an answered request of the named client c (if any)
// for model: what it cost, if the upstream reported it.
func clientUsed(c *clients.Client, model string, u provider.Usage, reported bool) {
	if c == nil {
		return
	}
	c.Record(time.Now(), model, u, reported)
	metricClientRequests.WithLabelValues(c.Name, model).Inc()
	if !reported {
		return
	}
	for _, k := range [...]struct {
		kind string
		n    int64
	}{{"prompt", u.Prompt}, {"completion", u.Completion}, {"cached", u.Cached}, {"reasoning", u.Reasoning}} {
		if k.n > 0 {
			metricClientTokens.WithLabelValues(c.Name, model, k.kind).Add(float64(k.n))
		}
	}
}

// clientView is a named client as the admin API shows it: never a key.
type clientView struct {
	Name        string     `json:"name"`
	Keys        int        `json:"keys"`
	Models      []string   `json:"models,omitempty"`
	RateLimit   string     `json:"rate_limit,omitempty"`
	TokenBudget string     `json:"token_budget,omitempty"`
	Expires     *time.Time `json:"expires,omitempty"`
	Expired     bool       `json:"expired,omitempty"`
	// Usage is by model, and in total: this instance's, kept across
	// restarts in Caddy's storage.
	Usage      map[string]clients.ModelUsage `json:"usage"`
	UsageTotal clients.ModelUsage            `json:"usage_total"`
}

// listClients shows the named clients of the running handlers, by name
// (the newest config's where several configs run).
func listClients(now time.Time) []clientView {
	out := []clientView{}
	seen := map[string]bool{}
	for _, h := range live.newestFirst() {
		for _, c := range h.clientSet.All() {
			if seen[c.Name] {
				continue
			}
			seen[c.Name] = true
			v := clientView{Name: c.Name, Keys: len(c.Keys), Models: c.Models, Expires: timePtr(c.Expires), Expired: c.Expired(now)}
			if c.RateLimit.N > 0 {
				v.RateLimit = c.RateLimit.String()
			}
			if c.Budget.Tokens > 0 {
				v.TokenBudget = c.Budget.String()
			}
			v.Usage = c.Meter.Snapshot()
			v.UsageTotal = clients.Total(v.Usage)
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b clientView) int { return strings.Compare(a.Name, b.Name) })
	return out
}
