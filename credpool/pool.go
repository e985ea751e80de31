// Package credpool decides which account of a provider serves the next
// request and keeps the accounts' keys alive. It knows credentials by id,
// their health (rests after failures, counters) and whether they may be
// used; what a credential holds (keys, proxies) is the caller's Value, and
// how requests are sent is none of its business.
package credpool

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoCredential is matched (errors.Is) by every Pick failure.
var ErrNoCredential = errors.New("no usable credential")

// Unavailable is Pick's error: no credential can serve the model now.
type Unavailable struct {
	// Cooling is true when some credentials would serve but all of them
	// rest; RetryAt is then the earliest end of a rest.
	Cooling bool
	RetryAt time.Time
	// ModelUnsupported is true when every resting credential rests only
	// for this model, because it said it cannot serve it.
	ModelUnsupported bool
	// NoneServes is true when no enabled credential may be asked for the
	// model at all (see Entry.Serves).
	NoneServes bool
}

func (u *Unavailable) Error() string {
	if u.NoneServes {
		return "no credential serves the model"
	}
	if u.Cooling {
		return fmt.Sprintf("every usable credential is cooling down; the first is back at %s", u.RetryAt.UTC().Format(time.RFC3339))
	}
	return "no usable credential (all disabled, waiting for a new login, or without a key until a renewal succeeds)"
}

func (u *Unavailable) Unwrap() error { return ErrNoCredential }

// Entry is one credential in a pool.
type Entry[T any] struct {
	// ID names the credential in logs, metrics, headers and the admin API.
	ID string
	// Priority groups credentials: the lowest number with a usable
	// credential serves; 0 means after every credential that has one.
	Priority int
	// Disabled credentials are kept in the pool but never picked.
	Disabled bool
	// Usable, if set, is asked at every pick; a credential that is not
	// usable right now (it needs a new login, say) is passed over.
	Usable func() bool
	// Serves, if set, tells the models the credential may be asked for;
	// it is passed over for the others.
	Serves func(model string) bool
	// Health outlives the pool when the caller keeps it (across reloads);
	// nil gets a fresh one.
	Health *Health
	// Value is what the caller needs to use the credential.
	Value T
}

// Strategy chooses among the usable credentials of the best group.
type Strategy string

// Strategies.
const (
	// RoundRobin takes the group's credentials in turn.
	RoundRobin Strategy = "round_robin"
	// FillFirst uses the first credential until it cannot serve.
	FillFirst Strategy = "fill_first"
)

// Options tune a pool.
type Options struct {
	Strategy  Strategy
	Cooldowns Cooldowns
	// Sticky keeps a client session on the credential that served it for
	// this long after its last request; zero turns stickiness off.
	Sticky time.Duration
	// Shared carries the round-robin position and sticky sessions across
	// pools (reloads); nil gets a fresh one.
	Shared *Shared
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Shared is the part of a pool's state that outlives the pool.
type Shared struct {
	mu sync.Mutex
	// next is each priority group's round-robin position, by rank: one
	// for all would let a group that cannot serve move a fallback
	// group's turn on too, and starve part of it.
	next map[int]*atomic.Uint64
	// sticky maps a hash of each session id to its credential: the ids
	// come from clients, and may be long.
	sticky map[uint64]stickyEntry
	seed   maphash.Seed
	// pruned is when a full sticky table was last cleared of expired
	// sessions.
	pruned time.Time
}

// position returns the round-robin position of the group of rank.
func (s *Shared) position(rank int) *atomic.Uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next[rank] == nil {
		s.next[rank] = new(atomic.Uint64)
	}
	return s.next[rank]
}

type stickyEntry struct {
	id      string
	expires time.Time
}

// maxSticky bounds the sticky session table.
const maxSticky = 100_000

// NewShared returns fresh shared state.
func NewShared() *Shared {
	return &Shared{next: map[int]*atomic.Uint64{}, sticky: map[uint64]stickyEntry{}, seed: maphash.MakeSeed()}
}

// Pool hands out the credentials of one provider. It is safe for
// concurrent use.
type Pool[T any] struct {
	all    []*Entry[T]
	groups [][]*Entry[T]    // enabled entries by priority, best first
	next   []*atomic.Uint64 // each group's round-robin position
	opts   Options
	// failMu serialises failure decisions, so that two credentials
	// failing at once do not each rest in the belief that the other is
	// there to serve.
	failMu sync.Mutex
}

// New returns a pool of entries, which keep their order within a priority.
func New[T any](entries []*Entry[T], opts Options) *Pool[T] {
	if opts.Strategy == "" {
		opts.Strategy = RoundRobin
	}
	opts.Cooldowns = opts.Cooldowns.withDefaults()
	if opts.Shared == nil {
		opts.Shared = NewShared()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Pool[T]{all: entries, opts: opts}
	var enabled []*Entry[T]
	for _, e := range entries {
		if e.Health == nil {
			e.Health = NewHealth()
		}
		if !e.Disabled {
			enabled = append(enabled, e)
		}
	}
	sort.SliceStable(enabled, func(i, j int) bool { return rank(enabled[i].Priority) < rank(enabled[j].Priority) })
	for i, e := range enabled {
		if i == 0 || rank(e.Priority) != rank(enabled[i-1].Priority) {
			p.groups = append(p.groups, nil)
		}
		p.groups[len(p.groups)-1] = append(p.groups[len(p.groups)-1], e)
	}
	for _, g := range p.groups {
		p.next = append(p.next, opts.Shared.position(rank(g[0].Priority)))
	}
	return p
}

func rank(priority int) int {
	if priority <= 0 {
		return math.MaxInt
	}
	return priority
}

// Entries returns every credential of the pool, disabled ones included,
// in the order given. The slice must not be modified.
func (p *Pool[T]) Entries() []*Entry[T] { return p.all }

// Now is the pool's clock.
func (p *Pool[T]) Now() time.Time { return p.opts.Now() }

// Pick returns the credential to serve model: the session's credential if
// the session is sticky and it can serve and no better priority group can,
// else one of the best priority group that can, skipping those in tried.
// When none can, the error is an *Unavailable.
func (p *Pool[T]) Pick(model, session string, tried []*Entry[T]) (*Entry[T], error) {
	now := p.opts.Now()
	if session != "" && p.opts.Sticky > 0 {
		if e := p.stickyEntry(session, now); e != nil && p.available(e, model, now) && !contains(tried, e) &&
			!p.betterThan(e, model, now, tried) {
			p.remember(session, e, now)
			return e, nil
		}
	}
	for gi, g := range p.groups {
		var e *Entry[T]
		switch p.opts.Strategy {
		case FillFirst:
			for _, c := range g {
				if p.available(c, model, now) && !contains(tried, c) {
					e = c
					break
				}
			}
		default:
			start := p.next[gi].Add(1) - 1
			n := uint64(len(g))
			for i := range n {
				c := g[(start+i)%n]
				if p.available(c, model, now) && !contains(tried, c) {
					e = c
					if i > 0 {
						// Skip the passed-over ones next time too, so the
						// one after a resting credential is not used twice.
						p.next[gi].Add(i)
					}
					break
				}
			}
		}
		if e != nil {
			if session != "" && p.opts.Sticky > 0 {
				p.remember(session, e, now)
			}
			return e, nil
		}
	}
	return nil, p.unavailable(model, now, tried)
}

// betterThan reports whether a group of better priority than e's has a
// credential that can serve model.
func (p *Pool[T]) betterThan(e *Entry[T], model string, now time.Time, tried []*Entry[T]) bool {
	for _, g := range p.groups {
		if rank(g[0].Priority) >= rank(e.Priority) {
			return false
		}
		for _, c := range g {
			if p.available(c, model, now) && !contains(tried, c) {
				return true
			}
		}
	}
	return false
}

func (p *Pool[T]) available(e *Entry[T], model string, now time.Time) bool {
	return (e.Serves == nil || e.Serves(model)) && (e.Usable == nil || e.Usable()) && e.Health.restingUntil(model, now).IsZero()
}

// unavailable explains why nothing could be picked: if some credential
// only rests, when the first one is back.
func (p *Pool[T]) unavailable(model string, now time.Time, tried []*Entry[T]) error {
	u := &Unavailable{ModelUnsupported: true, NoneServes: len(p.groups) > 0}
	for _, g := range p.groups {
		for _, e := range g {
			if e.Serves != nil && !e.Serves(model) {
				continue
			}
			u.NoneServes = false
			if (e.Usable != nil && !e.Usable()) || contains(tried, e) {
				continue
			}
			if until, modelOnly := e.Health.resting(model, now); !until.IsZero() {
				if !u.Cooling || until.Before(u.RetryAt) {
					u.RetryAt = until
				}
				u.Cooling = true
				u.ModelUnsupported = u.ModelUnsupported && modelOnly
			}
		}
	}
	u.ModelUnsupported = u.ModelUnsupported && u.Cooling
	return u
}

// Succeeded records a successful call.
func (p *Pool[T]) Succeeded(e *Entry[T]) { e.Health.succeeded(p.opts.Now()) }

// Failed records a failed call and rests the credential as the failure
// calls for. It returns the rest imposed (zero for none).
func (p *Pool[T]) Failed(e *Entry[T], model string, f Failure) time.Duration {
	p.failMu.Lock()
	defer p.failMu.Unlock()
	now := p.opts.Now()
	spare := false
	for _, g := range p.groups {
		for _, c := range g {
			if c != e && p.available(c, model, now) {
				spare = true
			}
		}
	}
	return e.Health.failed(now, model, f, p.opts.Cooldowns, spare)
}

func contains[T any](list []*Entry[T], e *Entry[T]) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

func (p *Pool[T]) stickyEntry(session string, now time.Time) *Entry[T] {
	s := p.opts.Shared
	s.mu.Lock()
	se, ok := s.sticky[maphash.String(s.seed, session)]
	s.mu.Unlock()
	if !ok || now.After(se.expires) {
		return nil
	}
	for _, g := range p.groups {
		for _, e := range g {
			if e.ID == se.id {
				return e
			}
		}
	}
	return nil
}

func (p *Pool[T]) remember(session string, e *Entry[T], now time.Time) {
	s := p.opts.Shared
	s.mu.Lock()
	defer s.mu.Unlock()
	key := maphash.String(s.seed, session)
	if _, known := s.sticky[key]; !known && len(s.sticky) >= maxSticky {
		// Full: clear out expired sessions, but at most once a minute,
		// since every sticky pick waits for this lock.
		if now.Sub(s.pruned) >= time.Minute {
			s.pruned = now
			for k, v := range s.sticky {
				if now.After(v.expires) {
					delete(s.sticky, k)
				}
			}
		}
		if len(s.sticky) >= maxSticky {
			return // full of live sessions: this new one goes unremembered
		}
	}
	s.sticky[key] = stickyEntry{id: e.ID, expires: now.Add(p.opts.Sticky)}
}
