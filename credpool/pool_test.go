package credpool

import (
	"errors"
	"hash/maphash"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// entries builds a pool's entries from a spec like "a b -c d", where a
// leading "-" marks a disabled credential.
func entries(spec string) []*Entry[int] {
	var out []*Entry[int]
	for i, f := range strings.Fields(spec) {
		id, disabled := strings.CutPrefix(f, "-")
		out = append(out, &Entry[int]{ID: id, Disabled: disabled, Value: i})
	}
	return out
}

func TestPickRoundRobin(t *testing.T) {
	tests := []struct {
		name string
		pool string
		want string // ids of successive picks
	}{
		{"one", "a", "a a a"},
		{"three", "a b c", "a b c a b c a"},
		{"disabled skipped", "a -b c", "a c a c a"},
		{"disabled first", "-a b c", "b c b c"},
		{"disabled last", "a b -c", "a b a b"},
		{"only one usable", "-a b -c", "b b b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := entries(tt.pool)
			p := New(es, Options{})
			var got []string
			for range strings.Fields(tt.want) {
				e, err := p.Pick("m", "", nil)
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				if e.Disabled {
					t.Fatalf("picked disabled %q", e.ID)
				}
				got = append(got, e.ID)
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("picks = %q, want %q", g, tt.want)
			}
			if len(p.Entries()) != len(es) {
				t.Errorf("Entries() has %d, want all %d (disabled included)", len(p.Entries()), len(es))
			}
			for i, e := range p.Entries() {
				if e != es[i] {
					t.Errorf("Entries()[%d] = %q, want %q in the given order", i, e.ID, es[i].ID)
				}
			}
		})
	}
}

func TestPickNone(t *testing.T) {
	for _, spec := range []string{"", "-a", "-a -b -c"} {
		p := New(entries(spec), Options{})
		for range 3 {
			e, err := p.Pick("m", "", nil)
			if !errors.Is(err, ErrNoCredential) || e != nil {
				t.Errorf("pool %q: Pick() = %v, %v; want ErrNoCredential", spec, e, err)
			}
		}
	}
	if p := New[int](nil, Options{}); len(p.Entries()) != 0 {
		t.Errorf("nil pool has entries")
	}
}

// TestPickConcurrent checks that concurrent picks share the load exactly
// evenly: N credentials picked N*k times give each one k picks.
func TestPickConcurrent(t *testing.T) {
	const (
		workers = 16
		perEach = 500
	)
	p := New(entries("a -x b c d -y e"), Options{})
	usable := 5
	total := usable * perEach * 4 // divisible by workers
	if total%workers != 0 {
		t.Fatal("total picks must divide among workers")
	}
	counts := make([]map[string]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		counts[w] = map[string]int{}
		wg.Go(func() {
			for range total / workers {
				e, err := p.Pick("m", "", nil)
				if err != nil {
					t.Error(err)
					return
				}
				counts[w][e.ID]++
			}
		})
	}
	wg.Wait()
	sum := map[string]int{}
	for _, c := range counts {
		for id, n := range c {
			sum[id] += n
		}
	}
	if len(sum) != usable {
		t.Errorf("picked %v, want exactly the %d usable credentials", sum, usable)
	}
	for id, n := range sum {
		if n != total/usable {
			t.Errorf("%s picked %d times, want %d (all: %v)", id, n, total/usable, sum)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	p := New(entries("a b c d"), Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Pick("m", "", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPickFallbackGroupInTurn: when the best group has credentials but
// none can serve, the fallback group is still taken in turn.
func TestPickFallbackGroupInTurn(t *testing.T) {
	for _, why := range []string{"need a login", "resting"} {
		t.Run(why, func(t *testing.T) {
			c := newClock()
			p := New(prioritized("a:1 b:1 c:2 d:2"), Options{Now: c.now})
			for _, e := range p.Entries()[:2] {
				if why == "resting" {
					p.Failed(e, "m", Failure{Kind: provider.KindRateLimit, RetryAfter: time.Hour})
				} else {
					e.Usable = func() bool { return false }
				}
			}
			if got := picks(t, p, 4, "m", ""); got != "c d c d" && got != "d c d c" {
				t.Errorf("picks %q, want c and d in turn", got)
			}
		})
	}
}

// TestStickyBackToBetterGroup: a session that moved to the fallback group
// while the best one rested goes back once the best one can serve.
func TestStickyBackToBetterGroup(t *testing.T) {
	c := newClock()
	p := New(prioritized("a:1 z:2"), Options{Now: c.now, Sticky: time.Hour})
	p.Failed(p.Entries()[0], "m", Failure{Kind: provider.KindTransient, Message: "502"}) // z is spare: a rests
	if got := picks(t, p, 1, "m", "s"); got != "z" {
		t.Fatalf("pick %q, want z while a rests", got)
	}
	c.advance(2 * time.Minute)
	if got := picks(t, p, 3, "m", "s"); got != "a a a" {
		t.Errorf("picks %q after a is back, want a (priority 1)", got)
	}
}

// TestStickyFullTable: a full table of live sessions still keeps the
// sessions it has (their expiry moves on with use); only new ones go
// unremembered.
func TestStickyFullTable(t *testing.T) {
	c := newClock()
	sh := NewShared()
	p := New(prioritized("a b"), Options{Now: c.now, Sticky: time.Hour, Shared: sh})
	first := picks(t, p, 1, "m", "s")
	for i := range maxSticky - 1 {
		sh.sticky[maphash.String(sh.seed, strconv.Itoa(i))] = stickyEntry{id: "a", expires: c.t.Add(3 * time.Hour)}
	}
	for range 8 { // used every 15 minutes for 2 hours
		c.advance(15 * time.Minute)
		if got := picks(t, p, 1, "m", "s"); got != first {
			t.Fatalf("session moved from %s to %s while in steady use", first, got)
		}
	}
	if _, ok := sh.sticky[maphash.String(sh.seed, "new")]; ok || len(sh.sticky) != maxSticky {
		t.Fatalf("test setup: %d sessions in a table of %d, want it full and without the new one", len(sh.sticky), maxSticky)
	}
	picks(t, p, 1, "m", "new")
	if _, ok := sh.sticky[maphash.String(sh.seed, "new")]; ok {
		t.Error("a new session was added to a table full of live ones")
	}
}

// TestStickyKeepsNoSessionIDs: session ids come from clients and may be
// long; the table keeps a hash of each, not the id.
func TestStickyKeepsNoSessionIDs(t *testing.T) {
	c := newClock()
	p := New(prioritized("a b"), Options{Now: c.now, Sticky: time.Hour})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 100 {
		id := strings.Repeat(strconv.Itoa(i%10), 64<<10) + strconv.Itoa(i) // 64 KiB each
		first := picks(t, p, 1, "m", id)
		if again := picks(t, p, 1, "m", id); again != first {
			t.Fatalf("session %d moved from %s to %s", i, first, again)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 1<<20 {
		t.Errorf("the heap grew by %d KiB for 100 sessions of 64 KiB ids", grown>>10)
	}
}
