package caddymodule

import (
	"fmt"
	"strings"
	"sync"

	"github.com/proxycast/caddy-proxycast/provider"
)

// claims knows, per config, where each renewable credential keeps its
// state and whose account it renews. Two credentials renewing one account
// would take its key from each other: one token file named two ways takes
// two locks and spends a rotating refresh token twice; two cookie
// credentials of one cookie issue the account's key away from each other.
// So the second credential is refused, naming the first.
var claims claimRegistry

type claimRegistry struct {
	mu sync.Mutex
	// byConfig maps a config (its Done channel) to what its credentials
	// claim: a place ("state " + canonical location) or an account
	// ("account " + provider + identity).
	byConfig map[<-chan struct{}]map[string]claimant
}

// claimant is a credential that claims something, and how it named it.
type claimant struct {
	prov, id string
	// as is how the claimant names the place, for a second name of one
	// place; empty for accounts.
	as string
}

func (c claimant) String() string { return fmt.Sprintf("credential %q of %s", c.id, c.prov) }

// claimsOf are the claims of one credential.
type claimsOf map[string]claimant

// conflict returns who else in config holds one of want, other than the
// credentials of provider skip (being rebuilt) and the claimant itself
// under the same name.
func (r *claimRegistry) conflict(config <-chan struct{}, skip string, want claimsOf) (claimant, string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := r.byConfig[config]
	for what, c := range want {
		if o, ok := held[what]; ok && o.prov != skip && o != c {
			return o, what, true
		}
	}
	return claimant{}, "", false
}

// set puts the claims of provider prov's credentials in force for config,
// in place of their previous claims.
func (r *claimRegistry) set(config <-chan struct{}, prov string, all claimsOf) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byConfig == nil {
		r.byConfig = map[<-chan struct{}]map[string]claimant{}
	}
	held := r.byConfig[config]
	if held == nil {
		held = map[string]claimant{}
		r.byConfig[config] = held
	}
	for what, c := range held {
		if c.prov == prov {
			delete(held, what)
		}
	}
	for what, c := range all {
		held[what] = c
	}
}

// forget drops what config claims, once it has ended.
func (r *claimRegistry) forget(config <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byConfig, config)
}

// credentialClaims is what a credential claims: the place of its state (a
// renewable one's) and its account, where the provider can tell it.
func credentialClaims(prov, id string, auth provider.Auth, loc stateLocation) claimsOf {
	cl := claimsOf{}
	if auth.Renewer != nil {
		cl["state "+loc.canonical()] = claimant{prov: prov, id: id, as: loc.where}
	}
	if auth.Account != "" {
		cl["account "+prov+" "+auth.Account] = claimant{prov: prov, id: id}
	}
	return cl
}

// free reports, as an error naming the other credential, whether any of
// cl is claimed already: in taken, or by another provider of config.
func (cl claimsOf) free(config <-chan struct{}, prov string, taken claimsOf) error {
	for what, c := range cl {
		if o, ok := taken[what]; ok && o != c {
			return claimConflict(what, o)
		}
	}
	if o, what, ok := claims.conflict(config, prov, cl); ok {
		return claimConflict(what, o)
	}
	return nil
}

// claimConflict says why a credential that claims what other holds is
// refused.
func claimConflict(what string, other claimant) error {
	if strings.HasPrefix(what, "account ") {
		return fieldErr("cookies", "it logs in to the same account as %s, and each would renew the account's key away from the other; keep one", other)
	}
	return fieldErr("token_file", "its token file is the token file of %s (%s); one account's tokens serve one credential: keep one, or log in a second account", other, other.as)
}
