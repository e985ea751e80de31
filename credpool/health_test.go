package credpool

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)} }

// prioritized builds entries from "a:1 b:1 c:2 d" (id:priority).
func prioritized(spec string) []*Entry[int] {
	var out []*Entry[int]
	for i, f := range strings.Fields(spec) {
		id, pr, _ := strings.Cut(f, ":")
		e := &Entry[int]{ID: id, Value: i}
		if pr != "" {
			e.Priority = int(pr[0] - '0')
		}
		out = append(out, e)
	}
	return out
}

func picks(t *testing.T, p *Pool[int], n int, model, session string) string {
	t.Helper()
	var got []string
	for range n {
		e, err := p.Pick(model, session, nil)
		if err != nil {
			got = append(got, "!")
			continue
		}
		got = append(got, e.ID)
	}
	return strings.Join(got, " ")
}

func TestSelection(t *testing.T) {
	tests := []struct {
		name     string
		pool     string
		strategy Strategy
		rest     []string // ids resting (transient failure with a spare)
		want     string
	}{
		{"best group only", "a:1 b:1 c:2 d", RoundRobin, nil, "a b a b"},
		{"next group when the best rests", "a:1 b:1 c:2 d", RoundRobin, []string{"a", "b"}, "c c c"},
		{"unprioritized last", "d a:2", RoundRobin, []string{"a"}, "d d"},
		{"equal priority by default", "a b c", RoundRobin, nil, "a b c a"},
		{"fill first", "a b c", FillFirst, nil, "a a a"},
		{"fill first moves on", "a b c", FillFirst, []string{"a"}, "b b b"},
		{"round robin skips the resting", "a b c", RoundRobin, []string{"b"}, "a c a c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(prioritized(tt.pool), Options{Strategy: tt.strategy, Now: newClock().now})
			for _, id := range tt.rest {
				for _, e := range p.Entries() {
					if e.ID == id {
						if d := p.Failed(e, "m", Failure{Kind: provider.KindTransient, Message: "502"}); d == 0 {
							t.Fatalf("%s did not rest", id)
						}
					}
				}
			}
			if got := picks(t, p, len(strings.Fields(tt.want)), "m", ""); got != tt.want {
				t.Errorf("picks %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCooldownClassification(t *testing.T) {
	tests := []struct {
		name   string
		f      Failure
		streak int // failures of this kind before
		want   time.Duration
	}{
		{"auth", Failure{Kind: provider.KindAuth}, 0, 30 * time.Minute},
		{"blocked", Failure{Kind: provider.KindBlocked}, 0, 30 * time.Minute},
		{"rate limit first", Failure{Kind: provider.KindRateLimit}, 0, time.Second},
		{"rate limit doubles", Failure{Kind: provider.KindRateLimit}, 3, 8 * time.Second},
		{"rate limit capped", Failure{Kind: provider.KindRateLimit}, 20, 30 * time.Minute},
		{"retry-after wins", Failure{Kind: provider.KindRateLimit, RetryAfter: 42 * time.Second}, 3, 42 * time.Second},
		{"retry-after capped", Failure{Kind: provider.KindRateLimit, RetryAfter: 5 * time.Hour}, 0, 30 * time.Minute},
		{"transient", Failure{Kind: provider.KindTransient}, 0, time.Minute},
		{"model", Failure{Kind: provider.KindModel}, 0, 12 * time.Hour},
		{"client", Failure{Kind: provider.KindClient}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			p := New(prioritized("a b"), Options{Now: clk.now})
			a := p.Entries()[0]
			for range tt.streak {
				p.Failed(a, "m", tt.f)
				clk.advance(time.Hour) // let each rest pass
			}
			if got := p.Failed(a, "m", tt.f); got != tt.want {
				t.Errorf("rest %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLastUsableNeverRestsOnTransient(t *testing.T) {
	clk := newClock()
	p := New([]*Entry[int]{{ID: "a"}, {ID: "b", Disabled: true}}, Options{Now: clk.now})
	a := p.Entries()[0]
	if d := p.Failed(a, "m", Failure{Kind: provider.KindTransient}); d != 0 {
		t.Errorf("the last usable credential rested %v on a transient failure", d)
	}
	if e, err := p.Pick("m", "", nil); err != nil || e != a {
		t.Errorf("pick after transient failure: %v, %v", e, err)
	}
	// A rate limit still rests it: there is nobody to spare it for, but
	// hammering a limited key does not help either.
	if d := p.Failed(a, "m", Failure{Kind: provider.KindRateLimit}); d != time.Second {
		t.Errorf("rate limit rest %v", d)
	}
}

func TestModelCooldownIsPerModel(t *testing.T) {
	clk := newClock()
	p := New(prioritized("a"), Options{Now: clk.now})
	a := p.Entries()[0]
	p.Failed(a, "glm-5", Failure{Kind: provider.KindModel, Message: "Model not support"})
	if _, err := p.Pick("glm-5", "", nil); err == nil {
		t.Error("picked for the model it cannot serve")
	}
	if e, err := p.Pick("qwen3-max", "", nil); err != nil || e != a {
		t.Errorf("other models: %v, %v", e, err)
	}
	st := a.Health.Status(clk.now())
	if _, ok := st.ModelCooldowns["glm-5"]; !ok || !st.CoolingUntil.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestAllCoolingAndRecovery(t *testing.T) {
	clk := newClock()
	p := New(prioritized("a b"), Options{Now: clk.now})
	a, b := p.Entries()[0], p.Entries()[1]
	p.Failed(a, "m", Failure{Kind: provider.KindRateLimit, RetryAfter: 10 * time.Second})
	p.Failed(b, "m", Failure{Kind: provider.KindRateLimit, RetryAfter: 4 * time.Second})
	_, err := p.Pick("m", "", nil)
	var u *Unavailable
	if !errors.As(err, &u) || !u.Cooling || !u.RetryAt.Equal(clk.now().Add(4*time.Second)) || !errors.Is(err, ErrNoCredential) {
		t.Fatalf("err %v (%+v)", err, u)
	}
	clk.advance(5 * time.Second)
	if e, err := p.Pick("m", "", nil); err != nil || e != b {
		t.Errorf("after b's rest: %v, %v", e, err)
	}
	clk.advance(10 * time.Second)
	if got := picks(t, p, 4, "m", ""); !strings.Contains(got, "a") {
		t.Errorf("a never came back: %q", got)
	}
}

func TestNoneUsable(t *testing.T) {
	usable := false
	p := New([]*Entry[int]{{ID: "a", Usable: func() bool { return usable }}, {ID: "b", Disabled: true}}, Options{})
	_, err := p.Pick("m", "", nil)
	var u *Unavailable
	if !errors.As(err, &u) || u.Cooling {
		t.Fatalf("err %v", err)
	}
	usable = true
	if e, err := p.Pick("m", "", nil); err != nil || e.ID != "a" {
		t.Errorf("after recovery: %v, %v", e, err)
	}
}

func TestTriedAreSkipped(t *testing.T) {
	p := New(prioritized("a b c"), Options{Strategy: FillFirst})
	a, b := p.Entries()[0], p.Entries()[1]
	if e, _ := p.Pick("m", "", []*Entry[int]{a}); e != b {
		t.Errorf("picked %v", e)
	}
	if e, _ := p.Pick("m", "", []*Entry[int]{a, b}); e == nil || e.ID != "c" {
		t.Errorf("picked %v", e)
	}
	if _, err := p.Pick("m", "", p.Entries()); !errors.Is(err, ErrNoCredential) {
		t.Errorf("all tried: %v", err)
	}
}

func TestStickySessions(t *testing.T) {
	clk := newClock()
	shared := NewShared()
	p := New(prioritized("a b c"), Options{Sticky: time.Hour, Shared: shared, Now: clk.now})
	first := picks(t, p, 1, "m", "conv-1")
	if got := picks(t, p, 5, "m", "conv-1"); got != strings.Repeat(first+" ", 4)+first {
		t.Errorf("session moved: first %q then %q", first, got)
	}
	other := picks(t, p, 1, "m", "conv-2")
	if other == first {
		t.Errorf("a second session landed on the same credential in a round robin of three")
	}
	// The session's credential rests: the session moves, and stays moved.
	for _, e := range p.Entries() {
		if e.ID == first {
			p.Failed(e, "m", Failure{Kind: provider.KindBlocked})
		}
	}
	moved := picks(t, p, 1, "m", "conv-1")
	if moved == first || picks(t, p, 1, "m", "conv-1") != moved {
		t.Errorf("after rest: %q then not stable", moved)
	}
	// A new pool with the same shared state (a reload) keeps sessions.
	p2 := New(prioritized("a b c"), Options{Sticky: time.Hour, Shared: shared, Now: clk.now})
	if got := picks(t, p2, 1, "m", "conv-2"); got != other {
		t.Errorf("after reload conv-2 went to %q, was %q", got, other)
	}
	// Expired sessions are forgotten...
	clk.advance(2 * time.Hour)
	if e := p.stickyEntry("conv-1", clk.now()); e != nil {
		t.Errorf("an expired session still sticks to %s", e.ID)
	}
	// ...and cleared out when the table is full.
	for i := range maxSticky {
		shared.sticky[uint64(i)<<20|1] = stickyEntry{id: "a", expires: clk.now().Add(-time.Minute)}
	}
	picks(t, p, 1, "m", "conv-3")
	if n := len(shared.sticky); n > 3 {
		t.Errorf("%d sessions kept after a full table of expired ones was pruned", n)
	}
}

func TestSuccessResetsRateLimitStreak(t *testing.T) {
	clk := newClock()
	p := New(prioritized("a b"), Options{Now: clk.now})
	a := p.Entries()[0]
	p.Failed(a, "m", Failure{Kind: provider.KindRateLimit})
	clk.advance(time.Minute)
	p.Failed(a, "m", Failure{Kind: provider.KindRateLimit})
	clk.advance(time.Minute)
	p.Succeeded(a)
	if d := p.Failed(a, "m", Failure{Kind: provider.KindRateLimit}); d != time.Second {
		t.Errorf("rest after a success %v, want the streak to start over at 1s", d)
	}
	st := a.Health.Status(clk.now())
	if st.Requests != 4 || st.Failures != 3 {
		t.Errorf("counters %+v", st)
	}
}

func TestUnavailableForUnsupportedModel(t *testing.T) {
	clk := newClock()
	p := New(prioritized("a b"), Options{Now: clk.now})
	a, b := p.Entries()[0], p.Entries()[1]
	p.Failed(a, "old-model", Failure{Kind: provider.KindModel})
	p.Failed(b, "old-model", Failure{Kind: provider.KindModel})
	_, err := p.Pick("old-model", "", nil)
	var u *Unavailable
	if !errors.As(err, &u) || !u.ModelUnsupported || !u.Cooling {
		t.Fatalf("err %v (%+v)", err, u)
	}
	// One credential resting as a whole: not a model problem.
	p.Failed(b, "m", Failure{Kind: provider.KindRateLimit, RetryAfter: time.Hour})
	_, err = p.Pick("old-model", "", nil)
	if !errors.As(err, &u) || u.ModelUnsupported {
		t.Fatalf("with b rate-limited: %+v", u)
	}
}

// TestModelRestsBounded: model rests do not pile up: expired ones go, and
// a credential keeps at most maxModelRests.
func TestModelRestsBounded(t *testing.T) {
	c := newClock()
	p := New(prioritized("a b"), Options{Now: c.now})
	a := p.Entries()[0]
	for i := range 1000 {
		p.Failed(a, "no-such-model-"+strconv.Itoa(i), Failure{Kind: provider.KindModel, Message: "404"})
	}
	c.advance(48 * time.Hour)
	p.Failed(a, "another", Failure{Kind: provider.KindModel, Message: "404"})
	if n := len(a.Health.Status(c.now()).ModelCooldowns); n != 1 {
		t.Errorf("%d model rests in force, want 1", n)
	}
	a.Health.mu.Lock()
	kept := len(a.Health.models)
	a.Health.mu.Unlock()
	if kept != 1 {
		t.Errorf("%d model rests kept, want 1: the rest expired a day ago", kept)
	}

	for i := range maxModelRests + 10 {
		c.advance(time.Second)
		p.Failed(a, "m-"+strconv.Itoa(i), Failure{Kind: provider.KindModel, Message: "404"})
	}
	a.Health.mu.Lock()
	kept = len(a.Health.models)
	a.Health.mu.Unlock()
	if kept != maxModelRests {
		t.Errorf("%d model rests kept, want the bound %d", kept, maxModelRests)
	}
	if got := a.Health.restingUntil("m-"+strconv.Itoa(maxModelRests+9), c.now()); got.IsZero() {
		t.Error("the newest model rest was dropped")
	}
	if got := a.Health.restingUntil("m-0", c.now()); !got.IsZero() {
		t.Error("the oldest model rest was kept over the bound")
	}
}
