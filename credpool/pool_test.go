package credpool

import (
	"errors"
	"strings"
	"sync"
	"testing"
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
