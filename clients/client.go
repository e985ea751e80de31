package clients

import (
	"crypto/sha256"

	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// Spec is one client as configured, with placeholders already replaced.
type Spec struct {
	Name string
	// Keys are the keys it presents (one or more).
	Keys []string
	// Models are globs over the model the client asks for (`*` any run
	// of characters, `?` one); empty means every model.
	Models []string
	// RateLimit bounds its requests per window, in this instance; zero
	// means none.
	RateLimit Rate
	// Expires is when its keys stop working; zero means never.
	Expires time.Time
	// Budget bounds the tokens of its answers per period, over every
	// instance that shares the usage; zero means none.
	Budget Budget
}

// Rate is a number of requests per window.
type Rate struct {
	N      int
	Window time.Duration
}

func (r Rate) String() string {
	if r.N == 0 {
		return "none"
	}
	return strconv.Itoa(r.N) + "/" + windowString(r.Window)
}

func windowString(d time.Duration) string {
	switch d {
	case time.Second:
		return "s"
	case time.Minute:
		return "m"
	case time.Hour:
		return "h"
	case 24 * time.Hour:
		return "d"
	}
	return d.String()
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseRate reads a rate as written in the config: "60/m", "5/s",
// "1000/h", "10000/d", or a count over a duration ("100/30s").
func ParseRate(s string) (Rate, error) {
	n, w, ok := strings.Cut(strings.TrimSpace(s), "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count <= 0 {
		return Rate{}, fmt.Errorf("rate %q is not requests per window, such as 60/m (s, m, h, d or a duration such as 30s)", s)
	}
	var window time.Duration
	switch w {
	case "s", "sec", "second":
		window = time.Second
	case "m", "min", "minute":
		window = time.Minute
	case "h", "hour":
		window = time.Hour
	case "d", "day":
		window = 24 * time.Hour
	default:
		window, err = time.ParseDuration(w)
		if err != nil || window <= 0 {
			return Rate{}, fmt.Errorf("rate %q: the window %q is not s, m, h, d or a duration such as 30s", s, w)
		}
	}
	if count > maxRate {
		return Rate{}, fmt.Errorf("rate %q: at most %d requests per window are counted one by one; use a shorter window", s, maxRate)
	}
	return Rate{N: count, Window: window}, nil
}

// maxRate bounds N: a client's limiter keeps one time per request of its
// window.
const maxRate = 100000

// ParseExpiry reads an expiry date (2027-03-01, which ends at the start of
// that day in UTC) or time (RFC 3339).
func ParseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("expires %q is not a date such as 2027-03-01 or a time such as 2027-03-01T12:00:00Z", s)
}

// A Client is one named client in force.
type Client struct {
	Spec
	limiter *Limiter
	// Meter counts what the client's requests cost.
	Meter *Meter
}

// MayUse reports whether the client may ask for model.
func (c *Client) MayUse(model string) bool {
	if len(c.Models) == 0 {
		return true
	}
	for _, g := range c.Models {
		if ok, _ := path.Match(g, model); ok {
			return true
		}
	}
	return false
}

// Expired reports whether the client's keys no longer work at now.
func (c *Client) Expired(now time.Time) bool {
	return !c.Expires.IsZero() && !now.Before(c.Expires)
}

// Record counts one answered request for model at now.
func (c *Client) Record(now time.Time, model string, u provider.Usage, reported bool) {
	var window time.Time
	if c.Budget.Tokens > 0 {
		window, _ = c.Budget.Window(now)
	}
	c.Meter.Record(model, u, reported, window)
}

// OverBudget reports whether the client has used its budget at now, with
// others the tokens other instances have counted in the same window, and
// when the budget renews.
func (c *Client) OverBudget(now time.Time, others func(window time.Time) int64) (over bool, renews time.Time) {
	if c.Budget.Tokens == 0 {
		return false, time.Time{}
	}
	start, end := c.Budget.Window(now)
	spent := c.Meter.Spent(start)
	if others != nil {
		spent += others(start)
	}
	return spent >= c.Budget.Tokens, end
}

// Allow counts one request at now if the client's rate limit lets it
// through, and otherwise says how long until it would.
func (c *Client) Allow(now time.Time) (ok bool, retryAfter time.Duration) {
	if c.limiter == nil {
		return true, 0
	}
	return c.limiter.allow(now)
}

// A Set is the clients of one handler, found by key.
type Set struct {
	byKey   map[[sha256.Size]byte]*Client
	clients []*Client
}

// New checks the specs and builds the set. limiterFor gives the limiter
// of a client with a rate limit: one kept from the config before, so that
// a reload does not forget what a client has sent, or a new one. Nil
// means a new one each.
//
// meterFor gives the meter of a client, likewise (nil: a new one each).
func New(specs []Spec, limiterFor func(name string, r Rate) *Limiter, meterFor func(name string) *Meter) (*Set, error) {
	if limiterFor == nil {
		limiterFor = func(_ string, r Rate) *Limiter { return NewLimiter(r) }
	}
	if meterFor == nil {
		meterFor = func(string) *Meter { return NewMeter() }
	}
	s := &Set{byKey: map[[sha256.Size]byte]*Client{}}
	owner := map[[sha256.Size]byte]string{}
	seen := map[string]bool{}
	for _, sp := range specs {
		if !namePattern.MatchString(sp.Name) {
			return nil, fmt.Errorf("client %q: a name is 1 to 64 letters, digits, '.', '_' or '-', beginning with a letter or digit", sp.Name)
		}
		if seen[sp.Name] {
			return nil, fmt.Errorf("client %q is configured twice", sp.Name)
		}
		seen[sp.Name] = true
		if len(sp.Keys) == 0 {
			return nil, fmt.Errorf("client %q has no key", sp.Name)
		}
		for _, g := range sp.Models {
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("client %q: models %q is not a glob", sp.Name, g)
			}
		}
		c := &Client{Spec: sp, Meter: meterFor(sp.Name)}
		if sp.RateLimit.N > 0 {
			c.limiter = limiterFor(sp.Name, sp.RateLimit)
		}
		for i, k := range sp.Keys {
			if strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("client %q: key %d is empty", sp.Name, i+1)
			}
			sum := sha256.Sum256([]byte(strings.TrimSpace(k)))
			if other, taken := owner[sum]; taken {
				if other == sp.Name {
					return nil, fmt.Errorf("client %q has the same key twice (key %d repeats an earlier one)", sp.Name, i+1)
				}
				return nil, fmt.Errorf("client %q and client %q have the same key: each key belongs to one client", other, sp.Name)
			}
			owner[sum] = sp.Name
			s.byKey[sum] = c
		}
		s.clients = append(s.clients, c)
	}
	return s, nil
}

// Lookup finds the client whose key is presented, by the key's SHA-256
// digest: what the map compares is the digest, so the time a lookup takes
// says nothing of how much of a key was right (a near miss has an
// unrelated digest), and it does not grow with the number of clients.
func (s *Set) Lookup(presented string) *Client {
	if s == nil || presented == "" {
		return nil
	}
	return s.byKey[sha256.Sum256([]byte(presented))]
}

// All lists the clients in the order of the config.
func (s *Set) All() []*Client {
	if s == nil {
		return nil
	}
	return s.clients
}

// Len is the number of clients.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.clients)
}

// A Limiter is a sliding log: the times of the requests of the last
// window, oldest first, in a ring. A request is let through when fewer
// than N came in the window before it, so no window of that length ever
// holds more than N.
type Limiter struct {
	rate Rate

	mu    sync.Mutex
	times []time.Time // ring of at most rate.N
	head  int         // index of the oldest
}

// NewLimiter is a limiter of r with no request yet.
func NewLimiter(r Rate) *Limiter { return &Limiter{rate: r} }

func (l *Limiter) allow(now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.times) < l.rate.N {
		l.times = append(l.times, now)
		return true, 0
	}
	oldest := l.times[l.head]
	if free := oldest.Add(l.rate.Window); now.Before(free) {
		return false, free.Sub(now)
	}
	l.times[l.head] = now
	l.head = (l.head + 1) % len(l.times)
	return true, 0
}
