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
	"github.com/proxycast/caddy-proxycast/usage"
)

// Spec is one client as configured, with placeholders already replaced.
type Spec struct {
	Name string
	// Keys are the keys it presents, and Digests the digests of more of
	// them (one or more in all).
	Keys    []string
	Digests []Digest
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
	Meter *usage.Meter
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

// Record counts one answered request for model at now; estimated is
// whether u is an estimate. Estimates count against the budget too.
func (c *Client) Record(now time.Time, model string, u provider.Usage, estimated bool) {
	var window time.Time
	if c.Budget.Tokens > 0 {
		window, _ = c.Budget.Window(now)
	}
	c.Meter.Record(model, u, estimated, window)
}

// Peers tells what the other instances sharing the usage have spent of a
// client's budget in the window that begins at window, as of their last
// report.
type Peers interface {
	Spent(client string, window time.Time) int64
}

// OverBudget reports whether the client has used its budget at now, with
// what peers (nil: none) have counted in the same window, and when the
// budget renews.
func (c *Client) OverBudget(now time.Time, peers Peers) (over bool, renews time.Time) {
	if c.Budget.Tokens == 0 {
		return false, time.Time{}
	}
	start, end := c.Budget.Window(now)
	spent := c.Meter.Spent(start)
	if peers != nil {
		spent += peers.Spent(c.Name, start)
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
	byKey   map[Digest]*Client
	clients []*Client
}

// Digest is the SHA-256 digest of a key, by which clients are found: a
// key given through the admin API is stored as its digest alone.
type Digest = [sha256.Size]byte

// DigestOf is the digest of a key as presented, surrounding spaces
// aside.
func DigestOf(key string) Digest { return sha256.Sum256([]byte(strings.TrimSpace(key))) }

// New checks the specs and builds the set. limiterFor gives the limiter
// of a client with a rate limit: one kept from the config before, so that
// a reload does not forget what a client has sent, or a new one. Nil
// means a new one each.
//
// meterFor gives the meter of a client, likewise (nil: a new one each).
func New(specs []Spec, limiterFor func(name string, r Rate) *Limiter, meterFor func(name string) *usage.Meter) (*Set, error) {
	b := NewBuilder(limiterFor, meterFor)
	for _, sp := range specs {
		if _, err := b.Add(sp); err != nil {
			return nil, err
		}
	}
	return b.Set(), nil
}

// A Builder builds a Set one client at a time, so that a client that
// cannot join (its key is another's, say) can be left out while the rest
// are built.
type Builder struct {
	set        *Set
	owner      map[Digest]string
	reserved   map[Digest]string
	seen       map[string]bool
	limiterFor func(string, Rate) *Limiter
	meterFor   func(string) *usage.Meter
}

// NewBuilder is a builder of an empty set, with limiterFor and meterFor
// as New takes them.
func NewBuilder(limiterFor func(name string, r Rate) *Limiter, meterFor func(name string) *usage.Meter) *Builder {
	if limiterFor == nil {
		limiterFor = func(_ string, r Rate) *Limiter { return NewLimiter(r) }
	}
	if meterFor == nil {
		meterFor = func(string) *usage.Meter { return usage.NewMeter() }
	}
	return &Builder{set: &Set{byKey: map[Digest]*Client{}}, owner: map[Digest]string{}, reserved: map[Digest]string{},
		seen: map[string]bool{}, limiterFor: limiterFor, meterFor: meterFor}
}

// Reserve keeps a key from every client: it belongs to what (such as
// "api_keys").
func (b *Builder) Reserve(d Digest, what string) { b.reserved[d] = what }

// An Error is a client that cannot be built: Field names its setting at
// fault (name, keys, models, rate_limit, token_budget, expires), and
// Conflict says whether it clashes with another client rather than being
// wrong in itself.
type Error struct {
	Field    string
	Conflict bool
	Msg      string
}

func (e *Error) Error() string { return e.Msg }

// Errorf is an Error about field.
func Errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Add checks a client against the spec rules and the clients added
// before, and adds it; a client that does not pass is not added, and
// takes no limiter or meter. Its errors are *Error.
func (b *Builder) Add(sp Spec) (*Client, error) {
	if !namePattern.MatchString(sp.Name) {
		return nil, Errorf("name", "client %q: a name is 1 to 64 letters, digits, '.', '_' or '-', beginning with a letter or digit", sp.Name)
	}
	if b.seen[sp.Name] {
		return nil, &Error{Field: "name", Conflict: true, Msg: fmt.Sprintf("client %q is configured twice", sp.Name)}
	}
	if len(sp.Keys)+len(sp.Digests) == 0 {
		return nil, Errorf("keys", "client %q has no key", sp.Name)
	}
	for _, g := range sp.Models {
		if _, err := path.Match(g, ""); err != nil {
			return nil, Errorf("models", "client %q: models %q is not a glob", sp.Name, g)
		}
	}
	digests := make([]Digest, 0, len(sp.Keys)+len(sp.Digests))
	for i, k := range sp.Keys {
		if strings.TrimSpace(k) == "" {
			return nil, Errorf("keys", "client %q: key %d is empty", sp.Name, i+1)
		}
		digests = append(digests, DigestOf(k))
	}
	digests = append(digests, sp.Digests...)
	mine := map[Digest]bool{}
	for i, d := range digests {
		if what, ok := b.reserved[d]; ok {
			return nil, &Error{Field: "keys", Conflict: true, Msg: fmt.Sprintf("client %q: key %d is also in %s: each key belongs to one client", sp.Name, i+1, what)}
		}
		if other, taken := b.owner[d]; taken {
			return nil, &Error{Field: "keys", Conflict: true, Msg: fmt.Sprintf("client %q and client %q have the same key: each key belongs to one client", other, sp.Name)}
		}
		if mine[d] {
			return nil, Errorf("keys", "client %q has the same key twice (key %d repeats an earlier one)", sp.Name, i+1)
		}
		mine[d] = true
	}
	b.seen[sp.Name] = true
	c := &Client{Spec: sp, Meter: b.meterFor(sp.Name)}
	if sp.RateLimit.N > 0 {
		c.limiter = b.limiterFor(sp.Name, sp.RateLimit)
	}
	for _, d := range digests {
		b.owner[d] = sp.Name
		b.set.byKey[d] = c
	}
	b.set.clients = append(b.set.clients, c)
	return c, nil
}

// Set is the set built.
func (b *Builder) Set() *Set { return b.set }

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
