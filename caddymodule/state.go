package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/credpool"
	"github.com/proxycast/caddy-proxycast/provider"
	"github.com/proxycast/caddy-proxycast/usage"
)

// State that must survive `caddy reload` lives in these pools, keyed so
// that a reload which keeps a credential keeps its state, and one that
// drops or changes it drops it (when the last config using it is cleaned
// up).
var (
	// credentialStates holds a *credentialState per credential identity.
	credentialStates = caddy.NewUsagePool()
	// poolStates holds an *instanceState (round-robin position, sticky
	// sessions, the model list last fetched) per provider instance.
	poolStates = caddy.NewUsagePool()
)

// credentialState is the part of a credential that outlives a config: its
// health and, for renewable credentials, the renewal running in the
// background.
type credentialState struct {
	provider string
	id       string
	authType string
	health   *credpool.Health
	renewing *credpool.Renewing
	// meter counts what the credential's answers cost, by upstream
	// model; it is held in credentialMeters (as meterKey) by storage,
	// provider and id, so that a changed credential keeps its counts and
	// a restart restores them.
	meter    *usage.Meter
	meterKey string
}

// inUse reports whether the config running has this credential enabled:
// only then is its key renewed in the background (a disabled cookie
// credential, say, must not have its account's key re-issued). A config
// that is loading, or failed to start, does not count.
func (s *credentialState) inUse() bool {
	running := caddy.ActiveContext()
	if running.Context == nil {
		return false // nothing runs yet
	}
	for _, h := range live.newestFirst() {
		// The handler's context derives from its config's (with values
		// added), and ends with it: the same Done channel.
		if h.done != running.Done() {
			continue
		}
		for _, ps := range h.providers {
			b := ps.build.Load()
			if b == nil {
				continue
			}
			for _, e := range b.pool.Entries() {
				if e.Value.state == s && !e.Disabled {
					return true
				}
			}
		}
	}
	return false
}

// Destruct stops background renewal once no config uses the credential,
// and drops its metrics once no config has a credential of its id.
// When Caddy is exiting, it waits a moment for a renewal under way, whose
// result (a rotated refresh token) would otherwise be lost with the
// process; on a reload or a removal the renewal finishes on its own.
func (s *credentialState) Destruct() error {
	// Its metrics go with the last state of this provider and id (a
	// changed credential has a new state under the same id).
	other := false
	credentialStates.Range(func(_, v any) bool {
		o := v.(*credentialState)
		other = o != s && o.provider == s.provider && o.id == s.id
		return !other
	})
	if !other {
		forgetCredentialMetrics(s.provider, s.id)
	}
	_, _ = credentialMeters.Delete(s.meterKey)
	if s.renewing == nil {
		return nil
	}
	if !caddy.Exiting() {
		s.renewing.Stop()
		return nil
	}
	if !s.renewing.StopWait(exitRenewWait) {
		caddy.Log().Named("http.handlers.proxycast").Warn("exiting while a credential renewal is under way; if it rotated the refresh token, the credential may need a new login",
			zap.String("provider", s.provider), zap.String("credential", s.id))
	}
	return nil
}

// exitRenewWait bounds how long an exiting Caddy waits for a credential's
// renewal under way.
const exitRenewWait = 5 * time.Second

// identity keys a credential's state: the provider and its settings, the
// storage, the id and every setting that changes what the credential is.
// A credential whose key, token file, cookie, proxy, provider or storage
// changes starts afresh; one that is only disabled, enabled or given
// another priority keeps its state. The key is a hash: it holds no
// secret.
func identity(prov string, providerConfig []byte, storage certmagic.Storage, c Credential) string {
	h := sha256.New()
	for _, f := range []string{prov, string(providerConfig), storageIdentity(storage), c.ID, c.AuthType, c.APIKey, c.TokenFile, c.Cookies, c.ProxyURL, time.Duration(c.RefreshBefore).String()} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return prov + "/" + c.ID + "/" + hex.EncodeToString(h.Sum(nil)[:8])
}

// storageIdentity names a storage by what it is, the same for the same
// settings across config loads: its String() if it has one, or else its
// type and settings (each config load makes a new instance, and %#v would
// print its pointers). It may hold a password: hash it before use.
func storageIdentity(storage certmagic.Storage) string {
	if s, ok := storage.(fmt.Stringer); ok {
		return s.String()
	}
	if storage == nil {
		return ""
	}
	settings, _ := json.Marshal(storage)
	return fmt.Sprintf("%T %s", storage, settings)
}

// Credential states as the admin API and metrics show them.
const (
	stateActive  = "active"
	stateCooling = "cooling"
	// stateQuota is cooling for a used-up balance or quota: it comes
	// back in hours, or when someone pays.
	stateQuota      = "quota_exhausted"
	stateRefreshing = "refreshing"
	stateNeedsLogin = "needs_login"
	// stateCookieExpired is needs_login for a cookie credential: the fix
	// is a fresh cookie, not a login.
	stateCookieExpired = "cookie_expired"
	stateUnavail       = "unavailable"
	stateDisabled      = "disabled"
	// stateInvalid is a runtime credential that could not be put in force
	// (see poolBuild.leftOut).
	stateInvalid = "invalid"
)

var allStates = []string{stateActive, stateCooling, stateQuota, stateRefreshing, stateNeedsLogin, stateCookieExpired, stateUnavail, stateDisabled, stateInvalid}

// state sums up where a credential stands at now; disabled is as the
// config in force has it (the state is shared by every config that has
// the credential, also one that is still loading, or failed to).
func (s *credentialState) state(now time.Time, disabled bool) string {
	if disabled {
		return stateDisabled
	}
	if s.renewing != nil {
		switch s.renewing.Status().State {
		case credpool.StateNeedsLogin:
			if s.authType == provider.AuthCookie {
				return stateCookieExpired
			}
			return stateNeedsLogin
		case credpool.StateRefreshing:
			return stateRefreshing
		case credpool.StateUnavailable:
			return stateUnavail
		}
	}
	if hs := s.health.Status(now); !hs.CoolingUntil.IsZero() {
		if hs.CoolingKind == provider.KindQuota {
			return stateQuota
		}
		return stateCooling
	}
	return stateActive
}

// instanceState is the part of a provider instance that outlives a
// config.
type instanceState struct {
	pool *credpool.Shared
	// models is the model list last fetched from the upstream (see
	// provider.ModelSource), kept while a new config fetches its own.
	models atomic.Pointer[[]string]
}

func (*instanceState) Destruct() error { return nil }

// Cooldowns says how long a credential rests after each kind of failure.
type Cooldowns struct {
	// Auth follows a key the upstream refused (401, iFlow 434/439) once a
	// renewal did not help. Default: 30m.
	Auth caddy.Duration `json:"auth,omitempty"`
	// Blocked follows a blocked key (403). Default: 30m.
	Blocked caddy.Duration `json:"blocked,omitempty"`
	// RateLimitMax caps the rest after rate limits (429, iFlow 449), which
	// doubles from 1s with every limit in a row unless the upstream sends
	// Retry-After. Default: 30m.
	RateLimitMax caddy.Duration `json:"rate_limit_max,omitempty"`
	// Transient follows 5xx answers, broken streams, resets and timeouts;
	// the last usable credential is never rested for one. Default: 1m.
	Transient caddy.Duration `json:"transient,omitempty"`
	// Model rests one model on a credential that cannot serve it.
	// Default: 12h.
	Model caddy.Duration `json:"model,omitempty"`
	// Proxy follows a failure of the credential's proxy_url (unreachable,
	// a refused tunnel, refused proxy credentials), also for the last
	// usable credential. Default: 1m.
	Proxy caddy.Duration `json:"proxy,omitempty"`
	// Quota follows an account whose balance or quota is used up (402,
	// insufficient_quota), also for the last usable credential, and caps
	// the upstream's own word on when it comes back. Default: 6h.
	Quota caddy.Duration `json:"quota,omitempty"`
}

func (c *Cooldowns) pool() credpool.Cooldowns {
	if c == nil {
		return credpool.Cooldowns{}
	}
	return credpool.Cooldowns{
		Auth:         time.Duration(c.Auth),
		Blocked:      time.Duration(c.Blocked),
		RateLimitMax: time.Duration(c.RateLimitMax),
		Transient:    time.Duration(c.Transient),
		Model:        time.Duration(c.Model),
		Proxy:        time.Duration(c.Proxy),
		Quota:        time.Duration(c.Quota),
	}
}
