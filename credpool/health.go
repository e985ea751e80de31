package credpool

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// Cooldowns says how long a credential rests after each kind of failure.
// Zero fields take the defaults, which beat what peers did: a day-long
// rest for a model a credential cannot serve, but never a rest for a
// transient failure of the last usable credential.
type Cooldowns struct {
	// Auth follows a key the upstream refused (401, iFlow 434/439) once a
	// renewal did not help. Default: 30m.
	Auth time.Duration `json:"auth,omitempty"`
	// Blocked follows a blocked key (403). Default: 30m.
	Blocked time.Duration `json:"blocked,omitempty"`
	// RateLimitMax caps the rest after rate limits (429, iFlow 449), which
	// doubles from 1s with every limit in a row unless the upstream sent
	// Retry-After. Default: 30m.
	RateLimitMax time.Duration `json:"rate_limit_max,omitempty"`
	// Transient follows 5xx answers, broken streams, resets and timeouts.
	// Default: 1m.
	Transient time.Duration `json:"transient,omitempty"`
	// Model rests one model on a credential that said it cannot serve it.
	// Default: 12h.
	Model time.Duration `json:"model,omitempty"`
	// Proxy follows a failure of the credential's proxy (unreachable, a
	// refused tunnel, refused proxy credentials); it rests the last usable
	// credential too, which would fail the same way. Default: 1m.
	Proxy time.Duration `json:"proxy,omitempty"`
	// Quota follows an account whose balance or quota is used up (402,
	// insufficient_quota), and caps the upstream's own word on when it
	// comes back, so that a far-off reset cannot hide a key that has
	// recovered. It rests the last usable credential too. Default: 6h.
	Quota time.Duration `json:"quota,omitempty"`
}

// Default rest durations.
const (
	DefaultAuthCooldown      = 30 * time.Minute
	DefaultBlockedCooldown   = 30 * time.Minute
	DefaultRateLimitMax      = 30 * time.Minute
	DefaultTransientCooldown = time.Minute
	DefaultModelCooldown     = 12 * time.Hour
	DefaultProxyCooldown     = time.Minute
	DefaultQuotaCooldown     = 6 * time.Hour
	rateLimitBase            = time.Second
)

func (c Cooldowns) withDefaults() Cooldowns {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Auth, DefaultAuthCooldown)
	def(&c.Blocked, DefaultBlockedCooldown)
	def(&c.RateLimitMax, DefaultRateLimitMax)
	def(&c.Transient, DefaultTransientCooldown)
	def(&c.Model, DefaultModelCooldown)
	def(&c.Proxy, DefaultProxyCooldown)
	def(&c.Quota, DefaultQuotaCooldown)
	return c
}

// Health is what is known about one credential's recent use: whether it
// rests, why and until when, and its counters. It is meant to outlive a
// configuration: the caller keeps one per credential across reloads.
type Health struct {
	requests atomic.Uint64
	failures atomic.Uint64

	mu          sync.Mutex
	until       time.Time
	reason      string
	kind        provider.Kind
	models      map[string]modelRest
	rateStreak  int
	lastError   string
	lastUsed    time.Time
	lastFailure time.Time
}

type modelRest struct {
	until  time.Time
	reason string
}

// NewHealth returns the health of a credential nobody has used yet.
func NewHealth() *Health { return &Health{} }

// HealthStatus is a snapshot of a Health, safe to show.
type HealthStatus struct {
	Requests      uint64
	Failures      uint64
	CoolingUntil  time.Time // zero when not resting
	CoolingReason string
	// CoolingKind is the kind of failure the credential rests for.
	CoolingKind    provider.Kind
	ModelCooldowns map[string]time.Time
	LastError      string
	LastUsed       time.Time
	LastFailure    time.Time
}

// Status reports the credential's health at now.
func (h *Health) Status(now time.Time) HealthStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := HealthStatus{
		Requests:    h.requests.Load(),
		Failures:    h.failures.Load(),
		LastError:   h.lastError,
		LastUsed:    h.lastUsed,
		LastFailure: h.lastFailure,
	}
	if now.Before(h.until) {
		s.CoolingUntil, s.CoolingReason, s.CoolingKind = h.until, h.reason, h.kind
	}
	for m, r := range h.models {
		if now.Before(r.until) {
			if s.ModelCooldowns == nil {
				s.ModelCooldowns = map[string]time.Time{}
			}
			s.ModelCooldowns[m] = r.until
		}
	}
	return s
}

// restingUntil reports until when the credential rests for model (zero if
// it does not).
func (h *Health) restingUntil(model string, now time.Time) time.Time {
	until, _ := h.resting(model, now)
	return until
}

// resting reports until when the credential rests for model, and whether
// only for that model (it said it cannot serve it) rather than as a whole.
func (h *Health) resting(model string, now time.Time) (until time.Time, modelOnly bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Before(h.until) {
		until = h.until
	}
	if r, ok := h.models[model]; ok && now.Before(r.until) {
		if until.IsZero() {
			modelOnly = true
		}
		if r.until.After(until) {
			until = r.until
		}
	}
	return until, modelOnly
}

func (h *Health) succeeded(now time.Time) {
	h.requests.Add(1)
	h.mu.Lock()
	h.lastUsed = now
	h.rateStreak = 0
	h.mu.Unlock()
}

// failed records a failure and rests the credential as the failure's kind
// calls for; spare says whether another credential could serve the model,
// so that a transient failure does not rest the last one. It returns the
// rest imposed (zero for none).
func (h *Health) failed(now time.Time, model string, f Failure, c Cooldowns, spare bool) time.Duration {
	h.requests.Add(1)
	h.failures.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastUsed, h.lastFailure = now, now
	h.lastError = f.Message
	var d time.Duration
	switch f.Kind {
	case provider.KindClient:
		return 0
	case provider.KindAuth:
		d = c.Auth
	case provider.KindBlocked:
		d = c.Blocked
	case provider.KindRateLimit:
		d = f.RetryAfter
		if d <= 0 {
			d = time.Duration(float64(rateLimitBase) * math.Pow(2, float64(h.rateStreak)))
		}
		d = min(d, c.RateLimitMax)
		h.rateStreak = min(h.rateStreak+1, 30)
	case provider.KindModel:
		h.restModel(now, model, modelRest{until: now.Add(c.Model), reason: f.Message})
		return c.Model
	case provider.KindTransient:
		if !spare {
			return 0
		}
		d = c.Transient
	case provider.KindProxy:
		d = c.Proxy
	case provider.KindQuota:
		d = c.Quota
		if f.RetryAfter > 0 {
			d = min(f.RetryAfter, c.Quota)
		}
	}
	if until := now.Add(d); until.After(h.until) {
		h.until, h.reason, h.kind = until, f.Message, f.Kind
	}
	return d
}

// maxModelRests bounds the models one credential rests for: clients name
// the models, and each unknown one is a model failure.
const maxModelRests = 1024

// restModel rests the credential for model. Expired rests go first, and
// when the table is still full, the one that ends soonest.
func (h *Health) restModel(now time.Time, model string, r modelRest) {
	if h.models == nil {
		h.models = map[string]modelRest{}
	}
	soonest := ""
	for m, old := range h.models {
		if !now.Before(old.until) {
			delete(h.models, m)
		} else if soonest == "" || old.until.Before(h.models[soonest].until) {
			soonest = m
		}
	}
	if _, known := h.models[model]; !known && len(h.models) >= maxModelRests {
		delete(h.models, soonest)
	}
	h.models[model] = r
}

// Failure is one failed attempt as the pool sees it.
type Failure struct {
	Kind       provider.Kind
	RetryAfter time.Duration
	// Message says what went wrong; it is shown in the admin API and must
	// hold no secret.
	Message string
}
