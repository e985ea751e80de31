package credpool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// Store keeps the state of renewable credentials (token files, derived
// keys) across restarts and, when it is shared, across the instances of a
// cluster. Caddy's storage (certmagic.Storage) satisfies it. Store must
// replace a value atomically; Lock is a mutex across everyone sharing the
// store.
type Store interface {
	Load(ctx context.Context, key string) ([]byte, error) // fs.ErrNotExist when missing
	Store(ctx context.Context, key string, value []byte) error
	Lock(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
}

// State is where a credential stands.
type State string

// The states of a credential.
const (
	StateActive     State = "active"
	StateRefreshing State = "refreshing"
	// StateNeedsLogin: only a person can bring it back (a new login, a
	// fresh cookie); it is skipped until then.
	StateNeedsLogin State = "needs_login"
	// StateUnavailable: it has no usable key right now, for a reason that
	// may pass (the first key could not be fetched yet, storage failed).
	StateUnavailable State = "unavailable"
)

// Status is a snapshot of a renewable credential, safe to show (no
// secrets).
type Status struct {
	State       State
	Account     string
	ExpiresAt   time.Time
	LastRefresh time.Time
	LastError   string
	NextRenewal time.Time
}

// Event reports what a renewing credential did, for logs.
type Event struct {
	Credential string
	What       string // "renewed", "adopted", "renew_failed", "needs_login", "store_failed", "store_abandoned", "short_lifetime"
	Err        error
	ExpiresAt  time.Time
	// Lifetime is, for "short_lifetime", how long the renewed key lives.
	Lifetime time.Duration
}

// RenewingConfig describes one renewable credential.
type RenewingConfig struct {
	ID       string
	Renewer  provider.Renewer
	Store    Store
	StateKey string
	Client   *http.Client
	// RenewBefore is how long before expiry the key is renewed in the
	// background.
	RenewBefore time.Duration
	// OnEvent, if set, is told about renewals and failures.
	OnEvent func(Event)
	// Wanted, if set, reports whether renewing in the background is
	// wanted now: a credential that no configuration in force uses (it is
	// disabled) is not renewed behind its owner's back. Renewals a caller
	// asks for (APIKey, RenewNow) do not ask it.
	Wanted func() bool
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Retry bounds for renewals that failed for a reason that may pass.
const (
	minRetry = 15 * time.Second
	maxRetry = 30 * time.Minute
	// renewTimeout bounds one renewal, network and storage included.
	renewTimeout = 2 * time.Minute
	// minRenewSpacing is the least time between a renewal and the next
	// one in the background, however short-lived the keys the upstream
	// hands out (one that expires sooner is renewed when it expires).
	minRenewSpacing = time.Minute
)

// Renewing is a credential whose key must be renewed from time to time:
// it renews in the background ahead of expiry, at most once at a time
// (also across instances sharing the Store), stores the new state before
// using it, and never makes a request wait while its key is still valid.
// It implements provider.KeySource.
type Renewing struct {
	cfg RenewingConfig

	mu          sync.Mutex
	key         provider.Key
	state       State
	lastErr     error
	lastRefresh time.Time
	retry       time.Duration
	nextRenewal time.Time
	// lead is how long before expiry the key is renewed: RenewBefore, or
	// half the life of the keys the upstream hands out when they live
	// less than twice RenewBefore, so that renewals never follow each
	// other without pause. renewAfter is the earliest background renewal
	// after the last one (minRenewSpacing later); shortWarned says the
	// short life was reported.
	lead        time.Duration
	renewAfter  time.Time
	shortWarned bool
	flight      *flight
	// rejected is a key the upstream refused, to be renewed away from;
	// afterRefusal marks a key obtained because of a refusal, whose own
	// refusal means renewing does not help.
	rejected     string
	afterRefusal bool
	failedAt     time.Time // of the last failed renewal; zero after a success
	// storing is set while a renewed state waits to be stored
	// (storeLater); requests do not wait for that.
	storing bool

	kick      chan struct{}
	stop      chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
	done      chan struct{}
}

type flight struct {
	done  chan struct{}
	err   error
	force bool // renew even if the stored state is not due
}

// NewRenewing returns a credential that is not started yet.
func NewRenewing(cfg RenewingConfig) *Renewing {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Renewing{
		cfg:   cfg,
		lead:  cfg.RenewBefore,
		state: StateUnavailable,
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// Start reads the stored state (no network unless there is none or it is
// due) and starts renewing in the background until Stop. Only the first
// call does anything.
func (r *Renewing) Start(ctx context.Context) {
	r.startOnce.Do(func() {
		r.load(ctx)
		go r.loop()
	})
}

// Stop ends background renewal and waits for the loop (not for a renewal
// under way, which finishes and stores its result on its own).
func (r *Renewing) Stop() {
	r.stopOnce.Do(func() { close(r.stop) })
	started := true
	r.startOnce.Do(func() { started = false })
	if started {
		<-r.done
	}
}

// StopWait is Stop for a process about to exit: it then waits up to d for
// a renewal under way to finish, since the state that renewal is about to
// store (a rotated refresh token) exists nowhere else. It reports whether
// nothing was left under way.
func (r *Renewing) StopWait(d time.Duration) bool {
	r.Stop()
	r.mu.Lock()
	f := r.flight
	r.mu.Unlock()
	if f == nil {
		return true
	}
	select {
	case <-f.done:
		return true
	case <-time.After(d):
		return false
	}
}

// load adopts what the store holds, without renewing.
func (r *Renewing) load(ctx context.Context) {
	state, err := r.cfg.Store.Load(ctx, r.cfg.StateKey)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		state = nil
	case err != nil:
		r.lastErr = fmt.Errorf("reading the stored state: %w", err)
		return
	}
	k, err := r.cfg.Renewer.Key(state)
	if err != nil {
		r.setFailureLocked(err)
		return
	}
	r.key = k
	if r.cfg.Now().Before(k.ExpiresAt) && k.APIKey != "" {
		r.state = StateActive
	}
}

// APIKey returns the current key. Only when there is no valid key does it
// wait for a renewal, and then for one shared by every waiting caller.
func (r *Renewing) APIKey(ctx context.Context) (string, error) {
	r.mu.Lock()
	k, state, lastErr, rejected, storing := r.key, r.state, r.lastErr, r.rejected, r.storing
	r.mu.Unlock()
	if state == StateNeedsLogin {
		return "", lastErr
	}
	if k.APIKey != "" && k.APIKey != rejected && r.cfg.Now().Before(k.ExpiresAt) {
		return k.APIKey, nil
	}
	if storing {
		// The renewed key is not used before it is stored, and the
		// storage may take long to come back: fail now, so the request
		// can go to another credential.
		return "", lastErr
	}
	if lastErr != nil && r.recentlyFailed() {
		// A renewal just failed: do not start one per request; the
		// background loop retries with backoff.
		return "", lastErr
	}
	if err := r.Renew(ctx); err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.key.APIKey == "" {
		return "", errors.New("no API key after renewal")
	}
	return r.key.APIKey, nil
}

// Rejected tells the credential that the upstream refused key (iFlow's
// 434). It reports whether renewing may help: the first refusal of a key
// starts one immediate renewal (and a refusal of a key already being
// replaced waits for that); a key that was itself obtained because of a
// refusal and is refused too shows that renewing does not help, and the
// caller rests the credential instead.
func (r *Renewing) Rejected(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case key == "" || key != r.key.APIKey:
		return true // an old key; the current one is already another
	case key == r.rejected:
		return true // already being renewed
	case r.afterRefusal:
		return false
	}
	r.rejected = key
	r.trigger()
	return true
}

// recentlyFailed reports whether the last renewal failed less than
// minRetry ago.
func (r *Renewing) recentlyFailed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.failedAt.IsZero() && r.cfg.Now().Sub(r.failedAt) < minRetry
}

// Reload drops what the credential knows and reads the stored state
// again, for when a person put a new one there (a login, a token). A
// credential that needed a login is then used again if the new state
// holds a valid key.
func (r *Renewing) Reload(ctx context.Context) {
	r.mu.Lock()
	r.key, r.state, r.lastErr, r.failedAt = provider.Key{}, StateUnavailable, nil, time.Time{}
	r.rejected, r.afterRefusal, r.retry = "", false, 0
	r.mu.Unlock()
	r.load(ctx)
	r.trigger()
}

// Status reports the credential's state.
func (r *Renewing) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{
		State:       r.state,
		Account:     r.key.Account,
		ExpiresAt:   r.key.ExpiresAt,
		LastRefresh: r.lastRefresh,
		NextRenewal: r.nextRenewal,
	}
	if r.flight != nil {
		s.State = StateRefreshing
	}
	if r.lastErr != nil {
		s.LastError = r.lastErr.Error()
	}
	return s
}

// Usable reports whether the credential may be picked: it is not waiting
// for a person, and it has a key or APIKey would try to get one (rather
// than fail at once, as it does while a renewed key waits to be stored or
// right after a renewal failed). A credential that would only fail must
// not count as another that can serve, or the one that can would be
// rested in its favour.
func (r *Renewing) Usable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == StateNeedsLogin {
		return false
	}
	now := r.cfg.Now()
	if k := r.key; k.APIKey != "" && k.APIKey != r.rejected && now.Before(k.ExpiresAt) {
		return true
	}
	failedRecently := r.lastErr != nil && !r.failedAt.IsZero() && now.Sub(r.failedAt) < minRetry
	return !r.storing && !failedRecently
}

func (r *Renewing) trigger() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// unwantedCheck is how often a loop whose renewals are not wanted looks
// again, such as for a config that has just started running.
const unwantedCheck = time.Second

func (r *Renewing) wanted() bool { return r.cfg.Wanted == nil || r.cfg.Wanted() }

// Renew renews if due, or joins the renewal under way. It returns when
// that renewal is done or ctx ends (the renewal itself goes on).
func (r *Renewing) Renew(ctx context.Context) error { return r.renew(ctx, false) }

// RenewNow renews even if the key is not due (an operator asked), or
// joins the renewal under way.
func (r *Renewing) RenewNow(ctx context.Context) error { return r.renew(ctx, true) }

func (r *Renewing) renew(ctx context.Context, force bool) error {
	for {
		r.mu.Lock()
		f := r.flight
		if f == nil {
			f = &flight{done: make(chan struct{}), force: force}
			r.flight = f
			go r.run(f)
		}
		r.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		// A forced renewal does not settle for one that was not: that one
		// may have adopted the stored state without renewing.
		if !force || f.force {
			return f.err
		}
	}
}

func (r *Renewing) run(f *flight) {
	ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
	defer cancel()
	f.err = r.renewLocked(ctx, f.force)
	r.mu.Lock()
	r.flight = nil
	r.mu.Unlock()
	close(f.done)
}

// LockName is the name of the storage lock that guards the state stored
// under key: renewals take it, and so must anyone else who writes there.
func LockName(key string) string { return "proxycast-renew-" + key }

// due reports whether k must be renewed now.
func (r *Renewing) due(k provider.Key, rejected string) bool {
	now := r.cfg.Now()
	if k.APIKey == "" || k.APIKey == rejected || !now.Before(k.ExpiresAt) {
		return true
	}
	r.mu.Lock()
	at := r.renewAtLocked(k)
	r.mu.Unlock()
	return !now.Before(at)
}

// renewAtLocked is when k is renewed in the background: lead ahead of its
// expiry, and not before renewAfter.
func (r *Renewing) renewAtLocked(k provider.Key) time.Time {
	at := k.ExpiresAt.Add(-r.lead)
	if at.Before(r.renewAfter) {
		at = r.renewAfter
	}
	return at
}

// renewedLocked spaces the renewals after one that obtained k at now: a
// key that lives less than twice RenewBefore (a 1h access token with the
// 24h default, a cookie key issued for less than 96h) would otherwise be
// due the moment it arrives, and renewed without pause. It reports the
// key's life when that is first found to be short.
func (r *Renewing) renewedLocked(k provider.Key, now time.Time) (short time.Duration) {
	life := k.ExpiresAt.Sub(now)
	r.lead = r.cfg.RenewBefore
	if r.cfg.RenewBefore > life/2 {
		r.lead = life / 2
		if !r.shortWarned {
			r.shortWarned, short = true, life
		}
	}
	r.renewAfter = now.Add(min(life, minRenewSpacing))
	return short
}

// renewLocked renews under the store's lock: it re-reads the stored
// state first, so that a renewal done meanwhile by another instance (or a
// previous configuration) is adopted instead of repeated, and a rotating
// refresh token is never used twice.
func (r *Renewing) renewLocked(ctx context.Context, force bool) error {
	lockName := LockName(r.cfg.StateKey)
	if err := r.cfg.Store.Lock(ctx, lockName); err != nil {
		return r.fail(fmt.Errorf("taking the storage lock: %w", err))
	}
	defer func() { _ = r.cfg.Store.Unlock(context.Background(), lockName) }()

	r.mu.Lock()
	rejected := r.rejected
	r.mu.Unlock()

	state, err := r.cfg.Store.Load(ctx, r.cfg.StateKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		state = nil
	case err != nil:
		return r.fail(fmt.Errorf("reading the stored state: %w", err))
	}
	if state != nil && !force {
		if k, err := r.cfg.Renewer.Key(state); err == nil && !r.due(k, rejected) {
			r.adopt(k, "adopted")
			return nil
		}
	}

	next, err := r.cfg.Renewer.Renew(ctx, r.cfg.Client, state)
	if err != nil {
		if next != nil {
			// The renewal failed after changing the state (a refresh
			// token was used up): keep the change, or it is lost.
			if serr := r.cfg.Store.Store(ctx, r.cfg.StateKey, next); serr != nil {
				r.emit(Event{What: "store_failed", Err: fmt.Errorf("storing the state left by a failed renewal: %w", serr)})
			}
		}
		return r.fail(err)
	}
	k, err := r.cfg.Renewer.Key(next)
	if err != nil {
		return r.fail(fmt.Errorf("the renewed state is unreadable: %w", err))
	}
	now := r.cfg.Now()
	if !now.Before(k.ExpiresAt) {
		// Stored all the same (it may hold a rotated refresh token), but
		// not used: renewing again at once would only get another such
		// key. The failure is retried with backoff.
		if serr := r.cfg.Store.Store(ctx, r.cfg.StateKey, next); serr != nil {
			r.emit(Event{What: "store_failed", Err: fmt.Errorf("storing the renewed state: %w", serr)})
		}
		return r.fail(fmt.Errorf("the renewed key expired already (at %s, %s ago); is this machine's clock right?",
			k.ExpiresAt.UTC().Format(time.RFC3339), now.Sub(k.ExpiresAt).Round(time.Second)))
	}
	r.mu.Lock()
	short := r.renewedLocked(k, now)
	r.mu.Unlock()
	if short > 0 {
		r.emit(Event{What: "short_lifetime", ExpiresAt: k.ExpiresAt, Lifetime: short})
	}
	if err := r.cfg.Store.Store(ctx, r.cfg.StateKey, next); err != nil {
		// The new state (perhaps a rotated refresh token) exists only in
		// memory now; keep trying to store it and do not use it before.
		err = fmt.Errorf("storing the renewed state: %w", err)
		r.emit(Event{What: "store_failed", Err: err})
		return r.storeLater(next, k, err)
	}
	r.mu.Lock()
	r.lastRefresh = r.cfg.Now()
	r.mu.Unlock()
	r.adopt(k, "renewed")
	return nil
}

// storeLater retries storing a renewed state until it succeeds or the
// credential stops. Stopping makes one last try: the state may hold a
// refresh token that the service has rotated, which then exists nowhere
// else.
func (r *Renewing) storeLater(state []byte, k provider.Key, firstErr error) error {
	r.mu.Lock()
	r.lastErr = firstErr
	r.storing = true
	if r.state == StateActive && !r.cfg.Now().Before(r.key.ExpiresAt) {
		r.state = StateUnavailable
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.storing = false
		r.mu.Unlock()
	}()
	wait := minRetry / 15
	for stopping := false; ; {
		select {
		case <-r.stop:
			stopping = true
		case <-time.After(wait):
		}
		ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
		err := r.cfg.Store.Store(ctx, r.cfg.StateKey, state)
		cancel()
		if err == nil {
			r.mu.Lock()
			r.lastRefresh = r.cfg.Now()
			r.mu.Unlock()
			r.adopt(k, "renewed")
			return nil
		}
		if stopping {
			r.emit(Event{What: "store_abandoned", Err: fmt.Errorf(
				"the credential stopped before its renewed state could be stored (%w); if the service rotated its refresh token, it needs a new login", err)})
			return firstErr
		}
		wait = min(wait*2, maxRetry)
	}
}

func (r *Renewing) adopt(k provider.Key, what string) {
	r.mu.Lock()
	r.key = k
	r.state = StateActive
	r.lastErr = nil
	r.failedAt = time.Time{}
	r.retry = 0
	switch {
	// A renewal answers a pending refusal even when it brought back the
	// refused key itself: that key's next refusal then shows renewing
	// does not help (instead of every request renewing again).
	case r.rejected != "" && (r.rejected != k.APIKey || what == "renewed"):
		r.rejected, r.afterRefusal = "", true
	case r.rejected == "":
		r.afterRefusal = false
	}
	r.mu.Unlock()
	r.emit(Event{What: what, ExpiresAt: k.ExpiresAt})
}

// fail records a failed renewal and returns err.
func (r *Renewing) fail(err error) error {
	r.mu.Lock()
	r.setFailureLocked(err)
	r.mu.Unlock()
	what := "renew_failed"
	if errors.Is(err, provider.ErrReauth) {
		what = "needs_login"
	}
	r.emit(Event{What: what, Err: err})
	return err
}

func (r *Renewing) setFailureLocked(err error) {
	r.lastErr = err
	r.failedAt = r.cfg.Now()
	switch {
	case errors.Is(err, provider.ErrReauth):
		r.state = StateNeedsLogin
	case r.key.APIKey == "" || !r.cfg.Now().Before(r.key.ExpiresAt) || r.key.APIKey == r.rejected:
		r.state = StateUnavailable
	}
}

func (r *Renewing) emit(e Event) {
	if r.cfg.OnEvent != nil {
		e.Credential = r.cfg.ID
		r.cfg.OnEvent(e)
	}
}

// loop renews ahead of expiry, retries failures with backoff, and renews
// at once when kicked.
func (r *Renewing) loop() {
	defer close(r.done)
	// Waiting for a renewal ends with Stop; the renewal itself does not.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-r.stop
		cancel()
	}()
	for {
		wait := r.nextWait()
		if !r.wanted() {
			wait = unwantedCheck
		}
		timer := time.NewTimer(wait)
		select {
		case <-r.stop:
			timer.Stop()
			return
		case <-r.kick:
			timer.Stop()
		case <-timer.C:
		}
		r.mu.Lock()
		needsLogin := r.state == StateNeedsLogin
		r.mu.Unlock()
		if needsLogin || !r.wanted() {
			continue // a person must act, or the credential is not in use
		}
		err := r.Renew(ctx)
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		if err != nil && !errors.Is(err, provider.ErrReauth) {
			r.retry = min(max(r.retry*2, minRetry), maxRetry)
		} else {
			r.retry = 0
		}
		r.mu.Unlock()
	}
}

// nextWait is how long the loop sleeps: until the renewal is due, or the
// retry after a failure.
func (r *Renewing) nextWait() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var wait time.Duration
	switch {
	case r.state == StateNeedsLogin:
		wait = 24 * time.Hour
	case r.retry > 0:
		wait = r.retry
	case r.key.APIKey == "" && r.lastRefresh.IsZero():
		wait = 0 // nothing to serve with yet: get a first key now
	case r.key.APIKey == "":
		wait = minRetry
	default:
		wait = r.renewAtLocked(r.key).Sub(r.cfg.Now())
	}
	wait = max(wait, 0)
	r.nextRenewal = r.cfg.Now().Add(wait)
	return wait
}
