package clients

import (
	"strings"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
	"github.com/proxycast/caddy-proxycast/usage"
)

func TestParseRate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Rate
		err  string
	}{
		{"60/m", Rate{60, time.Minute}, ""},
		{"5/s", Rate{5, time.Second}, ""},
		{"1000/h", Rate{1000, time.Hour}, ""},
		{"10000/d", Rate{10000, 24 * time.Hour}, ""},
		{"100/30s", Rate{100, 30 * time.Second}, ""},
		{" 2/minute ", Rate{2, time.Minute}, ""},
		{"60", Rate{}, "requests per window"},
		{"0/m", Rate{}, "requests per window"},
		{"-1/m", Rate{}, "requests per window"},
		{"x/m", Rate{}, "requests per window"},
		{"60/fortnight", Rate{}, `the window "fortnight"`},
		{"60/-1s", Rate{}, `the window "-1s"`},
		{"100001/d", Rate{}, "at most 100000"},
	} {
		got, err := ParseRate(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRate(%q) error %v; want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if s := (Rate{60, time.Minute}).String(); s != "60/m" {
		t.Errorf("String = %q", s)
	}
}

func TestParseExpiry(t *testing.T) {
	if got, err := ParseExpiry("2027-03-01"); err != nil || !got.Equal(time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("date: %v %v", got, err)
	}
	if got, err := ParseExpiry("2027-03-01T12:00:00+08:00"); err != nil || !got.Equal(time.Date(2027, 3, 1, 4, 0, 0, 0, time.UTC)) {
		t.Errorf("time: %v %v", got, err)
	}
	if _, err := ParseExpiry("March 1"); err == nil || !strings.Contains(err.Error(), "2027-03-01") {
		t.Errorf("bad: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tt := range []struct {
		name  string
		specs []Spec
		err   string
	}{
		{"a key given to two clients", []Spec{{Name: "alice", Keys: []string{"k1"}}, {Name: "bob", Keys: []string{"k2", "k1"}}}, `client "alice" and client "bob" have the same key`},
		{"the same key twice", []Spec{{Name: "alice", Keys: []string{"k1", " k1"}}}, `client "alice" has the same key twice`},
		{"no key", []Spec{{Name: "alice"}}, `client "alice" has no key`},
		{"an empty key", []Spec{{Name: "alice", Keys: []string{"k", " "}}}, `key 2 is empty`},
		{"a name twice", []Spec{{Name: "a", Keys: []string{"1"}}, {Name: "a", Keys: []string{"2"}}}, `client "a" is configured twice`},
		{"a bad name", []Spec{{Name: "al ice", Keys: []string{"1"}}}, `a name is 1 to 64`},
		{"a bad glob", []Spec{{Name: "a", Keys: []string{"1"}, Models: []string{"claude-["}}}, `models "claude-[" is not a glob`},
	} {
		if _, err := New(tt.specs, nil, nil); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: %v; want %q", tt.name, err, tt.err)
		}
	}
}

func TestLookupAndModels(t *testing.T) {
	s, err := New([]Spec{
		{Name: "alice", Keys: []string{"ka1", "ka2"}, Models: []string{"claude-*", "deepseek-?3"}},
		{Name: "ci-bot", Keys: []string{"kc"}},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Errorf("Len %d", s.Len())
	}
	a := s.Lookup("ka2")
	if a == nil || a.Name != "alice" || s.Lookup("ka1") != a {
		t.Fatalf("alice's keys: %v", a)
	}
	for _, k := range []string{"", "ka", "ka1 ", "KA1", "kc2"} {
		if c := s.Lookup(k); c != nil {
			t.Errorf("Lookup(%q) = %s", k, c.Name)
		}
	}
	for model, ok := range map[string]bool{"claude-sonnet-4-5": true, "claude-": true, "deepseek-v3": true, "deepseek-v31": false, "gpt-4o": false, "xclaude-1": false} {
		if a.MayUse(model) != ok {
			t.Errorf("alice MayUse(%q) = %v", model, !ok)
		}
	}
	if !s.Lookup("kc").MayUse("anything") {
		t.Error("a client without models may use every model")
	}
}

func TestExpired(t *testing.T) {
	c := &Client{Spec: Spec{Expires: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)}}
	if c.Expired(time.Date(2027, 2, 28, 23, 59, 59, 0, time.UTC)) || !c.Expired(time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("expiry edge")
	}
	if (&Client{}).Expired(time.Now()) {
		t.Error("no expiry")
	}
}

// TestRateLimitEdges: at most N requests in any window, a window that
// slides with each request, and the wait until the next is let through.
func TestRateLimitEdges(t *testing.T) {
	s, err := New([]Spec{{Name: "a", Keys: []string{"k"}, RateLimit: Rate{3, time.Minute}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Lookup("k")
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for i, d := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
		if ok, _ := c.Allow(at(d)); !ok {
			t.Fatalf("request %d refused", i+1)
		}
	}
	if ok, wait := c.Allow(at(30 * time.Second)); ok || wait != 30*time.Second {
		t.Errorf("the fourth in the minute: %v, wait %v; want refused, 30s", ok, wait)
	}
	// One nanosecond before the first request leaves the window, still
	// refused; at the edge, let through.
	if ok, wait := c.Allow(at(time.Minute - time.Nanosecond)); ok || wait != time.Nanosecond {
		t.Errorf("just before the edge: %v, %v", ok, wait)
	}
	if ok, _ := c.Allow(at(time.Minute)); !ok {
		t.Error("at the edge: refused")
	}
	// The window slides: now the second request (at 10s) is the oldest.
	if ok, wait := c.Allow(at(time.Minute + 5*time.Second)); ok || wait != 5*time.Second {
		t.Errorf("after the slide: %v, %v; want refused, 5s", ok, wait)
	}
	if ok, _ := c.Allow(at(time.Minute + 10*time.Second)); !ok {
		t.Error("when the second left the window: refused")
	}
	// A refused request does not count: after a long pause all N pass.
	for i := range 3 {
		if ok, _ := c.Allow(at(time.Hour + time.Duration(i))); !ok {
			t.Errorf("after an hour, request %d refused", i+1)
		}
	}

	// A set built with the limiter of the one before goes on counting.
	again, _ := New([]Spec{{Name: "a", Keys: []string{"k2"}, RateLimit: Rate{3, time.Minute}}},
		func(string, Rate) *Limiter { return c.limiter }, nil)
	if ok, _ := again.Lookup("k2").Allow(at(time.Hour + time.Second)); ok {
		t.Error("the limiter handed over forgot the requests of the window")
	}
}

func TestParseBudget(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Budget
		err  string
	}{
		{"2000000/day", Budget{Tokens: 2000000, Period: "day"}, ""},
		{"5/d", Budget{Tokens: 5, Period: "day"}, ""},
		{"50000000/month", Budget{Tokens: 50000000, Period: "month"}, ""},
		{"100000/6h", Budget{Tokens: 100000, Every: 6 * time.Hour}, ""},
		{"100/30s", Budget{}, "a minute or more"},
		{"100/week", Budget{}, `the period "week"`},
		{"lots/day", Budget{}, "tokens per period"},
		{"0/day", Budget{}, "tokens per period"},
	} {
		got, err := ParseBudget(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseBudget(%q) error %v; want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseBudget(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

// TestBudgetWindows: calendar days and months in UTC, fixed runs of a
// duration, and the spend of a window forgotten when the next begins.
func TestBudgetWindows(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	now := time.Date(2026, 12, 8, 7, 30, 0, 0, shanghai) // 2026-12-07 23:30 UTC
	for _, tt := range []struct {
		b          Budget
		start, end time.Time
	}{
		{Budget{Tokens: 1, Period: "day"}, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)},
		{Budget{Tokens: 1, Period: "month"}, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Budget{Tokens: 1, Every: 6 * time.Hour}, time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC), time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)},
	} {
		start, end := tt.b.Window(now)
		if !start.Equal(tt.start) || !end.Equal(tt.end) {
			t.Errorf("%s: %v to %v; want %v to %v", tt.b, start, end, tt.start, tt.end)
		}
	}

	c := &Client{Spec: Spec{Name: "a", Budget: Budget{Tokens: 100, Period: "day"}}, Meter: usage.NewMeter()}
	c.Record(now, "m", provider.Usage{Prompt: 60, Completion: 30}, false)
	if over, _ := c.OverBudget(now, nil); over {
		t.Error("90 of 100: over")
	}
	if over, renews := c.OverBudget(now, fixedPeers(10)); !over || !renews.Equal(time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("90 here and 10 elsewhere: over %v, renews %v", over, renews)
	}
	next := now.Add(31 * time.Minute) // the next UTC day
	if over, _ := c.OverBudget(next, fixedPeers(10)); over {
		t.Error("a new day: still over")
	}
	c.Record(next, "m", provider.Usage{Prompt: 5}, true) // an estimate counts too
	start, _ := c.Budget.Window(next)
	if got := c.Meter.Spent(start); got != 5 {
		t.Errorf("the new day's spend %d, want 5", got)
	}

	// A stored meter comes back: usage added, the window's spend kept if
	// it is the same window.
	saved := c.Meter.Save()
	m := usage.NewMeter()
	m.Restore(saved)
	if got := m.Spent(start); got != 5 || m.Snapshot()["m"].Requests != 2 || m.Snapshot()["m"].EstimatedTokens != 5 {
		t.Errorf("restored: spent %d, %+v", got, m.Snapshot())
	}
}

// fixedPeers have spent the same in every window.
type fixedPeers int64

func (p fixedPeers) Spent(string, time.Time) int64 { return int64(p) }
