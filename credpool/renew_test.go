package credpool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// rnStore is an in-memory Store with a real lock across its callers.
type rnStore struct {
	mu     sync.Mutex
	data   map[string][]byte
	locks  map[string]chan struct{} // held locks; closed on Unlock
	stores int
	// lockTries counts calls of Lock.
	lockTries int
	// failStores and failLoads make that many next Store and Load calls
	// fail.
	failStores, failLoads int
}

func newRNStore() *rnStore {
	return &rnStore{data: map[string][]byte{}, locks: map[string]chan struct{}{}}
}

func (s *rnStore) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failLoads > 0 {
		s.failLoads--
		return nil, errors.New("storage offline")
	}
	v, ok := s.data[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return slices.Clone(v), nil
}

func (s *rnStore) Store(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stores++
	if s.failStores > 0 {
		s.failStores--
		return errors.New("disk full")
	}
	s.data[key] = slices.Clone(value)
	return nil
}

func (s *rnStore) Lock(ctx context.Context, name string) error {
	s.mu.Lock()
	s.lockTries++
	s.mu.Unlock()
	for {
		s.mu.Lock()
		held, ok := s.locks[name]
		if !ok {
			s.locks[name] = make(chan struct{})
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *rnStore) Unlock(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	held, ok := s.locks[name]
	if !ok {
		return fmt.Errorf("unlock of %s, which is not locked", name)
	}
	delete(s.locks, name)
	close(held)
	return nil
}

func (s *rnStore) get(key string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data[key]
}

func (s *rnStore) counts() (stores, lockTries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stores, s.lockTries
}

func (s *rnStore) setFailStores(n int) {
	s.mu.Lock()
	s.failStores = n
	s.mu.Unlock()
}

// rnState is the fake renewer's state.
type rnState struct {
	Key     string    `json:"key"`
	Expires time.Time `json:"expires"`
}

func rnEncode(key string, expires time.Time) []byte {
	b, _ := json.Marshal(rnState{key, expires})
	return b
}

// rnRenewer is a provider.Renewer whose keys are "key-<n>" for its n-th
// renewal, valid for validFor by the test clock.
type rnRenewer struct {
	clock    *rnClock
	validFor time.Duration
	// reauthOnNil makes Key(nil) fail as a missing token file does.
	reauthOnNil bool
	// gate, when set, holds every Renew until it is closed (or ctx ends).
	gate chan struct{}
	// entered receives one value per Renew call that started.
	entered chan struct{}

	mu    sync.Mutex
	calls int
	// errs[i] is the error of call i+1 (nil: success); later calls succeed.
	errs []error
	// sameKey makes a renewal keep the key of the state it renews.
	sameKey bool
}

func (f *rnRenewer) Key(state []byte) (provider.Key, error) {
	if state == nil {
		if f.reauthOnNil {
			return provider.Key{}, fmt.Errorf("no token file: %w", provider.ErrReauth)
		}
		return provider.Key{}, nil
	}
	var s rnState
	if err := json.Unmarshal(state, &s); err != nil {
		return provider.Key{}, fmt.Errorf("unreadable state: %w", provider.ErrReauth)
	}
	return provider.Key{APIKey: s.Key, ExpiresAt: s.Expires, Account: "acct"}, nil
}

func (f *rnRenewer) Renew(ctx context.Context, _ *http.Client, state []byte) ([]byte, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	var err error
	if n <= len(f.errs) {
		err = f.errs[n-1]
	}
	f.mu.Unlock()
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("key-%d", n)
	if f.sameKey {
		old, _ := f.Key(state)
		key = old.APIKey
	}
	return rnEncode(key, f.clock.Now().Add(f.validFor)), nil
}

func (f *rnRenewer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// rnClock is a settable clock.
type rnClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *rnClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *rnClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// rnEvents collects the events of a credential.
type rnEvents struct {
	mu  sync.Mutex
	got []Event
}

func (e *rnEvents) add(ev Event) {
	e.mu.Lock()
	e.got = append(e.got, ev)
	e.mu.Unlock()
}

func (e *rnEvents) count(what string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.got {
		if ev.What == what {
			n++
		}
	}
	return n
}

// rnEventually polls cond for up to five seconds.
func rnEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rnWaiting counts the goroutines parked in Renewing.renew, waiting for
// a renewal under way, that came there through the method from
// ("APIKey", "RenewNow").
func rnWaiting(from string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[select") && strings.Contains(g, "credpool.(*Renewing).renew(") &&
			strings.Contains(g, "credpool.(*Renewing)."+from+"(") {
			n++
		}
	}
	return n
}

// rnReceive waits up to five seconds for a value on ch.
func rnReceive(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

const rnKey = "iflow/a.json"

var rnEpoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type rnFixture struct {
	clock   *rnClock
	store   *rnStore
	renewer *rnRenewer
	events  *rnEvents
}

// newRNFixture has a store holding key "cur" that expires in expiresIn,
// and a renewer whose keys are valid for 48h.
func newRNFixture(expiresIn time.Duration) *rnFixture {
	clock := &rnClock{now: rnEpoch}
	f := &rnFixture{
		clock:   clock,
		store:   newRNStore(),
		renewer: &rnRenewer{clock: clock, validFor: 48 * time.Hour},
		events:  &rnEvents{},
	}
	if expiresIn != 0 {
		f.store.data[rnKey] = rnEncode("cur", rnEpoch.Add(expiresIn))
	}
	return f
}

func (f *rnFixture) start(t *testing.T, renewer provider.Renewer) *Renewing {
	t.Helper()
	if renewer == nil {
		renewer = f.renewer
	}
	r := NewRenewing(RenewingConfig{
		ID:          "a",
		Renewer:     renewer,
		Store:       f.store,
		StateKey:    rnKey,
		RenewBefore: time.Hour,
		OnEvent:     f.events.add,
		Now:         f.clock.Now,
	})
	r.Start(context.Background())
	t.Cleanup(func() {
		if f.renewer.gate != nil {
			select {
			case <-f.renewer.gate:
			default:
				close(f.renewer.gate)
			}
		}
		r.Stop()
	})
	return r
}

func rnAPIKey(t *testing.T, r *Renewing) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k, err := r.APIKey(ctx)
	if err != nil {
		t.Fatalf("APIKey: %v", err)
	}
	return k
}

// TestRenewingSingleflight: many requests on an expired key share one
// renewal.
func TestRenewingSingleflight(t *testing.T) {
	f := newRNFixture(-time.Hour)
	f.renewer.gate = make(chan struct{})
	f.renewer.entered = make(chan struct{}, 200)
	r := f.start(t, nil)

	const n = 100
	keys := make(chan string, n)
	errs := make(chan error, n)
	var started sync.WaitGroup
	for range n {
		started.Add(1)
		go func() {
			started.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			k, err := r.APIKey(ctx)
			if err != nil {
				errs <- err
				return
			}
			keys <- k
		}()
	}
	started.Wait()
	rnReceive(t, "the renewal", f.renewer.entered)
	rnEventually(t, "every caller waiting on the renewal", func() bool { return rnWaiting("APIKey") == n })
	if got := r.Status().State; got != StateRefreshing {
		t.Errorf("State during the renewal = %s, want %s", got, StateRefreshing)
	}
	// While the renewal is held, every caller has joined it instead of
	// starting its own: one lock was ever asked for.
	if _, tries := f.store.counts(); tries != 1 {
		t.Errorf("%d renewals asked for the storage lock at once, want 1", tries)
	}
	close(f.renewer.gate)
	for range n {
		select {
		case k := <-keys:
			if k != "key-1" {
				t.Errorf("APIKey = %q, want key-1", k)
			}
		case err := <-errs:
			t.Errorf("APIKey: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("callers still waiting")
		}
	}
	if c := f.renewer.count(); c != 1 {
		t.Errorf("%d renewals, want exactly 1", c)
	}
	if stores, _ := f.store.counts(); stores != 1 {
		t.Errorf("%d stores, want 1", stores)
	}
	if k, _ := f.renewer.Key(f.store.get(rnKey)); k.APIKey != "key-1" {
		t.Errorf("stored key %q, want key-1", k.APIKey)
	}
	if s := r.Status(); s.State != StateActive || !s.LastRefresh.Equal(rnEpoch) || s.LastError != "" ||
		!s.ExpiresAt.Equal(rnEpoch.Add(48*time.Hour)) || s.Account != "acct" {
		t.Errorf("Status = %+v", s)
	}
}

// TestRenewingSharedStore: two instances sharing one store renew once;
// the second adopts what the first stored.
func TestRenewingSharedStore(t *testing.T) {
	f := newRNFixture(-time.Hour)
	f.renewer.gate = make(chan struct{})
	f.renewer.entered = make(chan struct{}, 10)
	r1 := f.start(t, nil)
	r2 := f.start(t, nil)

	rnReceive(t, "a renewal", f.renewer.entered)
	// The other instance waits for the lock meanwhile.
	rnEventually(t, "both instances at the lock", func() bool { _, tries := f.store.counts(); return tries >= 2 })
	close(f.renewer.gate)
	k1, k2 := rnAPIKey(t, r1), rnAPIKey(t, r2)
	if k1 != "key-1" || k2 != "key-1" {
		t.Errorf("keys %q and %q, want key-1 for both", k1, k2)
	}
	if c := f.renewer.count(); c != 1 {
		t.Errorf("%d renewals, want exactly 1", c)
	}
	if stores, _ := f.store.counts(); stores != 1 {
		t.Errorf("%d stores, want 1", stores)
	}
	// The other adopts what the one stored; a late caller may make it
	// adopt twice, which is harmless (there was one renewal, above).
	if f.events.count("renewed") != 1 || f.events.count("adopted") < 1 {
		t.Errorf("events %+v, want one renewed and at least one adopted", f.events.got)
	}
}

// TestRenewingAhead: a valid key is handed out at once while the
// background renewal, due already, is under way.
func TestRenewingAhead(t *testing.T) {
	f := newRNFixture(30 * time.Minute) // within RenewBefore (1h)
	f.renewer.gate = make(chan struct{})
	f.renewer.entered = make(chan struct{}, 10)
	r := f.start(t, nil)

	rnReceive(t, "the background renewal", f.renewer.entered)
	// The renewal is held until the gate closes: a caller that waited for
	// it would run into the timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k, err := r.APIKey(ctx)
	if err != nil || k != "cur" {
		t.Fatalf("APIKey during the renewal = %q, %v; want cur at once", k, err)
	}
	if !r.Usable() {
		t.Error("not usable during a renewal")
	}
	close(f.renewer.gate)
	rnEventually(t, "the renewed key", func() bool { return rnAPIKey(t, r) == "key-1" })
	if c := f.renewer.count(); c != 1 {
		t.Errorf("%d renewals, want 1", c)
	}
	// The next renewal is due RenewBefore ahead of the new expiry.
	want := rnEpoch.Add(47 * time.Hour)
	rnEventually(t, "the next renewal planned", func() bool { return r.Status().NextRenewal.Equal(want) })
}

// TestRenewingTemporaryFailure: a failure that may pass keeps the valid
// key in use, records the error and retries with a growing wait.
func TestRenewingTemporaryFailure(t *testing.T) {
	f := newRNFixture(30 * time.Minute)
	boom := errors.New("iflow is overloaded")
	f.renewer.errs = []error{boom, boom}
	f.renewer.entered = make(chan struct{}, 10)
	r := f.start(t, nil)

	rnReceive(t, "the first renewal", f.renewer.entered)
	rnEventually(t, "the first retry planned", func() bool { return r.Status().NextRenewal.Equal(rnEpoch.Add(minRetry)) })
	s := r.Status()
	if s.State != StateActive || !strings.Contains(s.LastError, "overloaded") || !r.Usable() {
		t.Errorf("after a temporary failure: %+v, usable %v", s, r.Usable())
	}
	if k := rnAPIKey(t, r); k != "cur" {
		t.Errorf("APIKey = %q, want the still valid cur", k)
	}
	if f.events.count("renew_failed") != 1 {
		t.Errorf("events %+v", f.events.got)
	}

	// Retry now (as the timer would): it fails again and waits longer.
	r.trigger()
	rnReceive(t, "the second renewal", f.renewer.entered)
	rnEventually(t, "the second retry planned", func() bool { return r.Status().NextRenewal.Equal(rnEpoch.Add(2 * minRetry)) })
	if k := rnAPIKey(t, r); k != "cur" {
		t.Errorf("APIKey = %q, want cur", k)
	}

	// The third try succeeds: the error clears and the wait resets.
	r.trigger()
	rnReceive(t, "the third renewal", f.renewer.entered)
	rnEventually(t, "the renewed key", func() bool { return rnAPIKey(t, r) == "key-3" })
	rnEventually(t, "the next renewal planned", func() bool { return r.Status().NextRenewal.Equal(rnEpoch.Add(47 * time.Hour)) })
	if s := r.Status(); s.LastError != "" || s.State != StateActive {
		t.Errorf("after recovery: %+v", s)
	}
}

// TestRenewingExpiredTemporaryFailure: without a valid key, a temporary
// failure is reported to the caller and leaves the credential
// unavailable, not waiting for a person. It is not picked while APIKey
// would only fail (right after the failure), and is again once a request
// may try a renewal itself.
func TestRenewingExpiredTemporaryFailure(t *testing.T) {
	f := newRNFixture(-time.Minute)
	f.renewer.errs = []error{errors.New("connection refused"), errors.New("connection refused")}
	r := f.start(t, nil)
	_, err := r.APIKey(context.Background())
	if err == nil || errors.Is(err, provider.ErrReauth) {
		t.Fatalf("APIKey = %v, want the temporary error", err)
	}
	rnEventually(t, "the failure recorded", func() bool { return r.Status().State == StateUnavailable })
	if r.Usable() {
		t.Error("Usable right after a failed renewal, while APIKey fails at once")
	}
	f.clock.Add(minRetry)
	if s := r.Status(); s.State != StateUnavailable || !r.Usable() {
		t.Errorf("after the retry wait: Status = %+v, usable %v", s, r.Usable())
	}
}

// TestRenewingNeedsLogin: a renewal failure wrapping ErrReauth parks the
// credential until a person acts.
func TestRenewingNeedsLogin(t *testing.T) {
	f := newRNFixture(-time.Minute)
	revoked := fmt.Errorf("refresh token revoked: %w", provider.ErrReauth)
	f.renewer.errs = []error{revoked, revoked, revoked}
	r := f.start(t, nil)

	_, err := r.APIKey(context.Background())
	if !errors.Is(err, provider.ErrReauth) {
		t.Fatalf("APIKey = %v, want ErrReauth", err)
	}
	rnEventually(t, "needs_login", func() bool { return r.Status().State == StateNeedsLogin })
	if r.Usable() {
		t.Error("Usable() = true for a credential that needs a login")
	}
	if s := r.Status(); !strings.Contains(s.LastError, "revoked") {
		t.Errorf("LastError = %q", s.LastError)
	}
	n := f.renewer.count()
	for range 5 {
		if _, err := r.APIKey(context.Background()); !errors.Is(err, provider.ErrReauth) {
			t.Errorf("APIKey = %v, want ErrReauth", err)
		}
	}
	rnEventually(t, "the loop parked for a day", func() bool {
		return r.Status().NextRenewal.Equal(rnEpoch.Add(24 * time.Hour))
	})
	if c := f.renewer.count(); c != n {
		t.Errorf("%d more renewals of a credential that needs a login", c-n)
	}
	if f.events.count("needs_login") == 0 {
		t.Errorf("events %+v, want needs_login", f.events.got)
	}
}

// TestRenewingMissingState: a state whose absence only a person can fix
// (no token file) needs a login from the start, without a renewal.
func TestRenewingMissingState(t *testing.T) {
	f := newRNFixture(0)
	f.renewer.reauthOnNil = true
	r := f.start(t, nil)
	if s := r.Status(); s.State != StateNeedsLogin || r.Usable() {
		t.Errorf("Status = %+v", s)
	}
	if _, err := r.APIKey(context.Background()); !errors.Is(err, provider.ErrReauth) {
		t.Errorf("APIKey = %v, want ErrReauth", err)
	}
	if c := f.renewer.count(); c != 0 {
		t.Errorf("%d renewals", c)
	}

	// Without a stored state and without the need of a person (a cookie),
	// the first use fetches a key.
	g := newRNFixture(0)
	r = g.start(t, nil)
	if k := rnAPIKey(t, r); k != "key-1" {
		t.Errorf("APIKey = %q, want key-1", k)
	}
}

// TestRenewingRejected: a refused key is renewed away from once; a
// refusal of the key that renewal brought shows renewing does not help.
func TestRenewingRejected(t *testing.T) {
	f := newRNFixture(10 * time.Hour)
	f.renewer.gate = make(chan struct{})
	f.renewer.entered = make(chan struct{}, 10)
	r := f.start(t, nil)

	if !r.Rejected("some-old-key") {
		t.Error("Rejected(an old key) = false")
	}
	if k := rnAPIKey(t, r); k != "cur" {
		t.Fatalf("APIKey = %q, want cur", k)
	}
	if !r.Rejected("cur") {
		t.Fatal("Rejected(current key) = false, want a renewal")
	}
	rnReceive(t, "the renewal after the refusal", f.renewer.entered)
	// The refused key is not handed out any more: a caller waits for the
	// renewal.
	got := make(chan string, 1)
	go func() {
		k, _ := r.APIKey(context.Background())
		got <- k
	}()
	rnEventually(t, "the caller waiting on the renewal", func() bool { return rnWaiting("APIKey") == 1 })
	select {
	case k := <-got:
		t.Fatalf("APIKey = %q during the renewal away from the refused key", k)
	default:
	}
	if !r.Rejected("cur") {
		t.Error("a second refusal of the key being replaced = false")
	}
	close(f.renewer.gate)
	select {
	case k := <-got:
		if k != "key-1" {
			t.Errorf("APIKey = %q, want key-1", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("APIKey still waiting")
	}

	if !r.Rejected("cur") {
		t.Error("Rejected(the replaced key) = false")
	}
	if r.Rejected("key-1") {
		t.Error("Rejected(the key obtained after a refusal) = true, want false: renewing does not help")
	}
	// No renewal can follow: the loop sleeps until 1h before key-1
	// expires (by a clock that stands still), nothing is under way and
	// nothing has woken it.
	rnEventually(t, "the loop asleep until the next renewal", func() bool {
		s := r.Status()
		return s.State == StateActive && s.NextRenewal.Equal(rnEpoch.Add(47*time.Hour))
	})
	if n := len(r.kick); n != 0 {
		t.Errorf("the loop was woken %d times after the refusal of key-1", n)
	}
	if c := f.renewer.count(); c != 1 {
		t.Errorf("%d renewals, want 1", c)
	}
	if k := rnAPIKey(t, r); k != "key-1" {
		t.Errorf("APIKey = %q, want key-1", k)
	}
}

// TestRenewingRejectedSameKey: when the renewal after a refusal brings
// back the same key, callers get it without renewing again and again, and
// its next refusal shows renewing does not help.
func TestRenewingRejectedSameKey(t *testing.T) {
	f := newRNFixture(10 * time.Hour)
	f.renewer.sameKey = true
	f.renewer.entered = make(chan struct{}, 10)
	r := f.start(t, nil)

	if !r.Rejected("cur") {
		t.Fatal("Rejected(cur) = false")
	}
	rnReceive(t, "the renewal", f.renewer.entered)
	rnEventually(t, "the renewal stored", func() bool { s, _ := f.store.counts(); return s == 1 })
	for range 5 {
		if k := rnAPIKey(t, r); k != "cur" {
			t.Fatalf("APIKey = %q, want cur", k)
		}
	}
	if c := f.renewer.count(); c != 1 {
		t.Errorf("%d renewals, want 1: each request renewed again", c)
	}
	if r.Rejected("cur") {
		t.Error("Rejected(cur) after the renewal brought it back = true, want false")
	}
}

// TestRenewingStoreFailure: a renewed state is used only once stored.
func TestRenewingStoreFailure(t *testing.T) {
	f := newRNFixture(-time.Minute)
	f.store.setFailStores(1)
	r := f.start(t, nil)

	got := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		k, _ := r.APIKey(ctx)
		got <- k
	}()
	rnEventually(t, "the failed store", func() bool { return f.events.count("store_failed") == 1 })
	// The store is retried from now on (the error is recorded as the
	// retries begin): a caller is turned away at once with the store's
	// error, neither given the unstored key nor held until the retry.
	rnEventually(t, "the store retried", func() bool { return strings.Contains(r.Status().LastError, "storing the renewed state") })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	k, err := r.APIKey(ctx)
	cancel()
	if err == nil {
		t.Errorf("APIKey = %q before the renewed state was stored", k)
	} else if !strings.Contains(err.Error(), "disk full") {
		t.Errorf("APIKey while the renewed state waits to be stored: %v, want the store's error at once", err)
	}
	if s := r.Status(); !strings.Contains(s.LastError, "disk full") {
		t.Errorf("LastError = %q", s.LastError)
	}
	if k, _ := f.renewer.Key(f.store.get(rnKey)); k.APIKey != "cur" {
		t.Errorf("stored %q", k.APIKey)
	}
	// The retry stores it (about a second later), and only then is it
	// used. A request that joined the renewal before the store failed
	// waits for that; one that came later was turned away at once (so it
	// could go to another credential): either way it never got the
	// unstored key.
	select {
	case k := <-got:
		if k != "key-1" && k != "" {
			t.Errorf("APIKey = %q, want key-1 or a refusal", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("APIKey still waiting")
	}
	rnEventually(t, "the retried store", func() bool {
		k, _ := f.renewer.Key(f.store.get(rnKey))
		return k.APIKey == "key-1"
	})
	if k := rnAPIKey(t, r); k != "key-1" {
		t.Errorf("APIKey after the store = %q, want key-1", k)
	}
	if c := f.renewer.count(); c != 1 {
		t.Errorf("%d renewals, want 1 (the state is stored again, not renewed again)", c)
	}
	// The flight that stored it ends a moment after the key is adopted.
	rnEventually(t, "active without error", func() bool { s := r.Status(); return s.State == StateActive && s.LastError == "" })
}

// leftover is a renewer whose renewal fails after changing the state, as
// an OAuth refresh does when the API key cannot be fetched.
type leftover struct{ *rnRenewer }

func (l leftover) Renew(ctx context.Context, client *http.Client, state []byte) ([]byte, error) {
	next, err := l.rnRenewer.Renew(ctx, client, state)
	if err != nil {
		return nil, err
	}
	return next, errors.New("getUserInfo failed")
}

// TestRenewingKeepsStateOfFailedRenewal: a state returned along with an
// error is stored (it may hold a rotated refresh token), but the failure
// stands.
func TestRenewingKeepsStateOfFailedRenewal(t *testing.T) {
	f := newRNFixture(30 * time.Minute)
	f.renewer.entered = make(chan struct{}, 10)
	r := f.start(t, leftover{f.renewer})
	rnReceive(t, "the renewal", f.renewer.entered)
	rnEventually(t, "the failure", func() bool { return f.events.count("renew_failed") == 1 })
	if k, _ := f.renewer.Key(f.store.get(rnKey)); k.APIKey != "key-1" {
		t.Errorf("stored %q, want the state left by the failed renewal", k.APIKey)
	}
	if s := r.Status(); !strings.Contains(s.LastError, "getUserInfo") {
		t.Errorf("Status = %+v", s)
	}
}

// hangingRenewal starts a credential whose renewal is under way and hangs
// until f.renewer.gate is closed.
func hangingRenewal(t *testing.T) (*rnFixture, *Renewing) {
	t.Helper()
	f := newRNFixture(-time.Minute)
	f.renewer.gate = make(chan struct{})
	f.renewer.entered = make(chan struct{}, 10)
	r := f.start(t, nil)
	rnReceive(t, "the renewal", f.renewer.entered)
	return f, r
}

// TestRenewingStop: Stop returns at once even while a renewal hangs.
func TestRenewingStop(t *testing.T) {
	f, r := hangingRenewal(t)

	stopped := make(chan struct{})
	go func() {
		r.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second): // the renewal never ends on its own
		t.Fatal("Stop waits for the renewal under way")
	}
	// The renewal goes on and stores its result.
	close(f.renewer.gate)
	rnEventually(t, "the renewal stored after Stop", func() bool {
		k, _ := f.renewer.Key(f.store.get(rnKey))
		return k.APIKey == "key-1"
	})
	r.Stop() // a second Stop is harmless

	// Stop of a credential never started returns too.
	idle := NewRenewing(RenewingConfig{Renewer: f.renewer, Store: f.store, StateKey: rnKey})
	done := make(chan struct{})
	go func() {
		idle.Stop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop of a credential never started hangs")
	}
}

// TestRenewingLoadFailure: a store that cannot be read at start leaves
// the credential without key but not waiting for a person; the first
// renewal reads the store again and adopts what is there.
func TestRenewingLoadFailure(t *testing.T) {
	f := newRNFixture(10 * time.Hour)
	f.store.failLoads = 1
	r := f.start(t, nil)
	if k := rnAPIKey(t, r); k != "cur" {
		t.Errorf("APIKey = %q, want the stored cur", k)
	}
	if c := f.renewer.count(); c != 0 {
		t.Errorf("%d renewals, want 0 (the stored key is good)", c)
	}
	if !r.Usable() {
		t.Error("not usable")
	}
}

// TestRenewingUnreadableState: a state the renewer cannot read and says
// only a person can fix parks the credential.
func TestRenewingUnreadableState(t *testing.T) {
	f := newRNFixture(0)
	f.store.data[rnKey] = []byte("not json")
	r := f.start(t, nil)
	if s := r.Status(); s.State != StateNeedsLogin || !strings.Contains(s.LastError, "unreadable") {
		t.Errorf("Status = %+v", s)
	}
}

func TestNextWait(t *testing.T) {
	clock := &rnClock{now: rnEpoch}
	tests := []struct {
		name  string
		state State
		retry time.Duration
		key   provider.Key
		want  time.Duration
	}{
		{"no key", StateUnavailable, 0, provider.Key{}, 0},
		{"due later", StateActive, 0, provider.Key{APIKey: "k", ExpiresAt: rnEpoch.Add(3 * time.Hour)}, 2 * time.Hour},
		{"overdue", StateActive, 0, provider.Key{APIKey: "k", ExpiresAt: rnEpoch.Add(time.Minute)}, 0},
		{"retrying", StateActive, minRetry, provider.Key{APIKey: "k", ExpiresAt: rnEpoch.Add(time.Minute)}, minRetry},
		{"needs login", StateNeedsLogin, minRetry, provider.Key{}, 24 * time.Hour},
	}
	for _, tt := range tests {
		r := NewRenewing(RenewingConfig{RenewBefore: time.Hour, Now: clock.Now})
		r.state, r.retry, r.key = tt.state, tt.retry, tt.key
		if got := r.nextWait(); got != tt.want {
			t.Errorf("%s: nextWait() = %v, want %v", tt.name, got, tt.want)
		}
		if s := r.Status(); !s.NextRenewal.Equal(rnEpoch.Add(tt.want)) {
			t.Errorf("%s: NextRenewal = %v", tt.name, s.NextRenewal)
		}
	}
}

// TestRenewingStoreOnStop: a renewed state still waiting to be stored
// gets one last try when the credential stops, over before StopWait
// returns; if that fails too, the loss is reported, since a rotated
// refresh token is then gone.
func TestRenewingStoreOnStop(t *testing.T) {
	for _, tt := range []struct {
		name      string
		failures  int
		stored    string
		abandoned int
	}{
		{"last try stores", 1, "key-1", 0},
		{"last try fails", 100, "cur", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newRNFixture(-time.Minute)
			f.store.setFailStores(tt.failures)
			r := f.start(t, nil)
			rnEventually(t, "the failed store", func() bool { return f.events.count("store_failed") == 1 })
			// The process may exit as soon as StopWait returns: the last
			// try is over by then.
			if !r.StopWait(5 * time.Second) {
				t.Fatal("StopWait: the renewal is still under way")
			}
			if k, _ := f.renewer.Key(f.store.get(rnKey)); k.APIKey != tt.stored {
				t.Errorf("stored key %q, want %q", k.APIKey, tt.stored)
			}
			if n := f.events.count("store_abandoned"); n != tt.abandoned {
				t.Errorf("%d store_abandoned events, want %d", n, tt.abandoned)
			}
		})
	}
}

// TestRenewingStopWait: StopWait waits for a renewal under way and its
// store, but no longer than it is told.
func TestRenewingStopWait(t *testing.T) {
	f, r := hangingRenewal(t)

	if r.StopWait(50 * time.Millisecond) {
		t.Error("StopWait = true while the renewal hangs")
	}
	time.AfterFunc(50*time.Millisecond, func() { close(f.renewer.gate) })
	if !r.StopWait(5 * time.Second) {
		t.Fatal("StopWait gave up on a renewal that ends in 50ms")
	}
	if k, _ := f.renewer.Key(f.store.get(rnKey)); k.APIKey != "key-1" {
		t.Errorf("stored %q when StopWait returned, want key-1", k.APIKey)
	}
}

// TestKeylessRenewingIsNoSpare: a renewing credential without a key,
// whose renewal just failed, is not another credential that can serve: the
// one that works is not rested for a transient failure in its favour, and
// the next request is served.
func TestKeylessRenewingIsNoSpare(t *testing.T) {
	f := newRNFixture(-time.Minute)
	down := errors.New("token endpoint down")
	f.renewer.errs = []error{down, down, down, down}
	f.renewer.entered = make(chan struct{}, 10)
	r := f.start(t, nil)
	rnReceive(t, "the first renewal", f.renewer.entered)
	rnEventually(t, "the failure", func() bool { s := r.Status(); return s.LastError != "" && s.State == StateUnavailable })

	keyless := &Entry[int]{ID: "keyless", Usable: r.Usable}
	works := &Entry[int]{ID: "works"}
	p := New([]*Entry[int]{keyless, works}, Options{Now: f.clock.Now})
	if d := p.Failed(works, "m", Failure{Kind: provider.KindTransient, Message: "502"}); d != 0 {
		t.Errorf("the only credential with a key rested %v for a transient failure", d)
	}
	if e, err := p.Pick("m", "", nil); err != nil || e != works {
		t.Errorf("Pick = %v, %v; want the credential with a key", e, err)
	}
}

// TestRenewingLoopDoesNotSpin: woken while the key has expired and a
// request's renewal has just failed, the background loop renews (and
// backs off) instead of spinning without doing anything.
func TestRenewingLoopDoesNotSpin(t *testing.T) {
	f := newRNFixture(2 * time.Hour) // the loop sleeps until 1h before expiry
	down := errors.New("connection refused")
	f.renewer.errs = []error{down, down, down}
	var reads atomic.Int64
	r := NewRenewing(RenewingConfig{
		ID: "a", Renewer: f.renewer, Store: f.store, StateKey: rnKey, RenewBefore: time.Hour,
		Now: func() time.Time { reads.Add(1); return f.clock.Now() },
	})
	r.Start(context.Background())
	defer r.Stop()
	rnEventually(t, "the loop asleep", func() bool { return !r.Status().NextRenewal.IsZero() })

	f.clock.Add(3 * time.Hour) // a wall-clock jump (suspend and resume): the key expired
	if _, err := r.APIKey(context.Background()); err == nil {
		t.Fatal("APIKey succeeded with the token endpoint down")
	}
	r.Rejected("cur") // a refusal of the old key wakes the loop
	before := reads.Load()
	// The loop renews (the second renewal, after the request's) and,
	// since that fails too, plans its retry minRetry ahead by a clock
	// that stands still: it sleeps, and cannot spin.
	rnEventually(t, "the loop's renewal and its retry planned", func() bool {
		return f.renewer.count() == 2 && r.Status().NextRenewal.Equal(f.clock.Now().Add(minRetry))
	})
	if n := reads.Load() - before; n > 1000 {
		t.Fatalf("the loop spun: %d clock reads before it went to sleep", n)
	}
}

// TestRenewingNotWanted: a credential no configuration uses is not
// renewed in the background, even when due; once wanted again, it is.
func TestRenewingNotWanted(t *testing.T) {
	f := newRNFixture(-time.Minute) // due at once
	var wanted atomic.Bool
	r := NewRenewing(RenewingConfig{
		ID: "a", Renewer: f.renewer, Store: f.store, StateKey: rnKey, RenewBefore: time.Hour,
		Now: f.clock.Now, Wanted: wanted.Load,
	})
	r.Start(context.Background())
	defer r.Stop()
	// The loop plans its renewal (due: now), is told it is not wanted,
	// and looks again unwantedCheck later; moving the clock on shows
	// that second look. Each time it found the credential not in use.
	rnEventually(t, "the loop's first look", func() bool { return r.Status().NextRenewal.Equal(rnEpoch) })
	f.clock.Add(time.Minute)
	rnEventually(t, "the loop's second look", func() bool {
		if c := f.renewer.count(); c != 0 {
			t.Fatalf("%d background renewals of a credential not in use", c)
		}
		return r.Status().NextRenewal.Equal(rnEpoch.Add(time.Minute))
	})
	if c := f.renewer.count(); c != 0 {
		t.Fatalf("%d background renewals of a credential not in use", c)
	}
	wanted.Store(true) // the loop looks again within unwantedCheck
	rnEventually(t, "the renewal once wanted", func() bool { return f.renewer.count() == 1 })
}

// TestRenewNowIsForced: RenewNow renews even when it meets a renewal under
// way that was not forced (one that finds the key not due and only adopts
// the stored state).
func TestRenewNowIsForced(t *testing.T) {
	f := newRNFixture(30 * time.Hour) // not due: RenewBefore is 1h
	r := f.start(t, nil)
	ctx := context.Background()
	// Hold the storage lock, so that a plain renewal waits in it...
	if err := f.store.Lock(ctx, LockName(rnKey)); err != nil {
		t.Fatal(err)
	}
	_, tries := f.store.counts()
	plain := make(chan error, 1)
	go func() { plain <- r.Renew(ctx) }()
	rnEventually(t, "the plain renewal at the lock", func() bool { _, n := f.store.counts(); return n > tries })
	// ...and ask for a forced one meanwhile.
	forced := make(chan error, 1)
	go func() { forced <- r.RenewNow(ctx) }()
	rnEventually(t, "the forced renewal waiting on the plain one", func() bool { return rnWaiting("RenewNow") == 1 })
	if err := f.store.Unlock(ctx, LockName(rnKey)); err != nil {
		t.Fatal(err)
	}
	if err := <-plain; err != nil {
		t.Fatal(err)
	}
	if err := <-forced; err != nil {
		t.Fatal(err)
	}
	if c := f.renewer.count(); c != 1 {
		t.Errorf("%d renewals after RenewNow, want 1", c)
	}
}
