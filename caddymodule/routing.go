package caddymodule

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Routing decides which provider serves a model.
type Routing struct {
	// Rules are tried by priority (1 first; rules without one come after
	// every rule that has one), then the more specific pattern (more
	// literal characters), then the order written.
	Rules []RoutingRule `json:"rules,omitempty"`

	// DefaultProvider serves models that no rule matches. When there are
	// no rules, no default and exactly one provider has credentials, that
	// provider is the default. Without a default an unmatched model gets
	// a 404.
	DefaultProvider string `json:"default_provider,omitempty"`
}

// RoutingRule sends the models matching a pattern to a provider.
type RoutingRule struct {
	// Pattern is a glob over the client's model name: `*` matches any run
	// of characters (as few as it can), `?` exactly one. Case-sensitive.
	Pattern string `json:"pattern"`

	// Provider is the name of the provider in credential_pool.
	Provider string `json:"provider"`

	// Priority orders rules, 1 first. 0 means no priority: after every
	// rule that has one.
	Priority int `json:"priority,omitempty"`

	// Model, when set, is the model name sent upstream instead of the
	// client's. `$1` … `$9` stand for what the pattern's wildcards
	// matched, in order: pattern `iflow-*` with model `$1` strips the
	// prefix. Default: the client's model name.
	Model string `json:"model,omitempty"`
}

// router is the compiled form of Routing.
type router struct {
	rules           []compiledRule
	defaultProvider string
}

type compiledRule struct {
	RoutingRule
	wildcards int
	literals  int
}

func newRouter(r Routing) (*router, error) {
	rt := &router{defaultProvider: r.DefaultProvider}
	for i, rule := range r.Rules {
		if err := rule.Check(); err != nil {
			return nil, fmt.Errorf("routing rule %d: %w", i+1, err)
		}
		c := compiledRule{RoutingRule: rule}
		c.wildcards, c.literals = patternCounts(rule.Pattern)
		rt.rules = append(rt.rules, c)
	}
	sort.SliceStable(rt.rules, func(i, j int) bool {
		a, b := rt.rules[i], rt.rules[j]
		if pa, pb := effectivePriority(a.Priority), effectivePriority(b.Priority); pa != pb {
			return pa < pb
		}
		return a.literals > b.literals
	})
	return rt, nil
}

// Check reports the first thing wrong with the rule.
func (r RoutingRule) Check() error {
	if r.Pattern == "" {
		return fmt.Errorf("pattern is required")
	}
	if r.Provider == "" {
		return fmt.Errorf("rule %q: provider is required", r.Pattern)
	}
	if r.Priority < 0 {
		return fmt.Errorf("rule %q: priority must be 1 or more, got %d", r.Pattern, r.Priority)
	}
	wildcards, _ := patternCounts(r.Pattern)
	if err := checkTemplate(r.Model, wildcards); err != nil {
		return fmt.Errorf("rule %q: model %q: %v", r.Pattern, r.Model, err)
	}
	return nil
}

func patternCounts(pattern string) (wildcards, literals int) {
	for _, ch := range pattern {
		if ch == '*' || ch == '?' {
			wildcards++
		} else {
			literals++
		}
	}
	return wildcards, literals
}

func effectivePriority(p int) int {
	if p == 0 {
		return math.MaxInt
	}
	return p
}

// checkTemplate accepts `$1`…`$9` up to the number of wildcards and `$$`
// for a literal dollar sign.
func checkTemplate(tmpl string, wildcards int) error {
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '$' {
			continue
		}
		if i+1 >= len(tmpl) {
			return fmt.Errorf("ends with a lone $ (write $$ for a dollar sign)")
		}
		switch c := tmpl[i+1]; {
		case c == '$':
		case c >= '1' && c <= '9':
			if n := int(c - '0'); n > wildcards {
				return fmt.Errorf("$%d refers to wildcard %d but the pattern has %d", n, n, wildcards)
			}
		default:
			return fmt.Errorf("$%c is not $1…$9 or $$", c)
		}
		i++
	}
	return nil
}

// route returns the provider for model and the model name to send it.
func (rt *router) route(model string) (provider, upstreamModel string, ok bool) {
	var buf [9]string // room for the usual captures, without allocating
	for i := range rt.rules {
		r := &rt.rules[i]
		caps, matched := globMatch(r.Pattern, model, buf[:0])
		if !matched {
			continue
		}
		if r.Model == "" {
			return r.Provider, model, true
		}
		return r.Provider, expand(r.Model, caps), true
	}
	if rt.defaultProvider != "" {
		return rt.defaultProvider, model, true
	}
	return "", "", false
}

func expand(tmpl string, caps []string) string {
	if strings.IndexByte(tmpl, '$') < 0 {
		return tmpl
	}
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] == '$' && i+1 < len(tmpl) {
			i++
			if tmpl[i] == '$' {
				b.WriteByte('$')
			} else if n, _ := strconv.Atoi(tmpl[i : i+1]); n >= 1 && n <= len(caps) {
				b.WriteString(caps[n-1])
			}
			continue
		}
		b.WriteByte(tmpl[i])
	}
	return b.String()
}

// globMatch reports whether s matches pattern, and returns caps with what
// each wildcard matched appended. Every `*` takes as little as it can.
//
// The model name is the client's: with several `*`, trying every split
// grows with the power of their number. Past a budget of steps, the
// positions found not to match are remembered, which bounds the work by
// len(pattern)·len(s); ordinary names never get there, and pay nothing.
func globMatch(p, s string, caps []string) ([]string, bool) {
	var g glob
	return g.match(p, s, caps)
}

// globBudget is how many wildcard splits a match tries before it starts
// remembering failed positions.
const globBudget = 1024

type glob struct {
	steps  int
	failed map[[2]int]bool // (len(rest of pattern), len(rest of name)) known not to match
}

func (g *glob) match(p, s string, caps []string) ([]string, bool) {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			// Grow the match a whole character at a time, so that `?`
			// after it counts characters and captures stay valid UTF-8.
			for i := 0; ; {
				if g.failed == nil || !g.failed[[2]int{len(p) - 1, len(s) - i}] {
					if out, ok := g.match(p[1:], s[i:], append(caps, s[:i])); ok {
						return out, true
					}
					if g.steps++; g.steps > globBudget {
						if g.failed == nil {
							g.failed = map[[2]int]bool{}
						}
						g.failed[[2]int{len(p) - 1, len(s) - i}] = true
					}
				}
				if i == len(s) {
					return caps, false
				}
				_, size := utf8.DecodeRuneInString(s[i:])
				i += size
			}
		case '?':
			if len(s) == 0 {
				return caps, false
			}
			_, size := utf8.DecodeRuneInString(s)
			caps = append(caps, s[:size])
			p, s = p[1:], s[size:]
		default:
			if len(s) == 0 || s[0] != p[0] {
				return caps, false
			}
			p, s = p[1:], s[1:]
		}
	}
	return caps, len(s) == 0
}

// providers lists every provider a routing decision can name.
func (rt *router) providers() []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, r := range rt.rules {
		add(r.Provider)
	}
	add(rt.defaultProvider)
	return out
}

// aliases lists the client-side names under which a provider's model is
// reachable: the model itself, the pattern of every rule without
// wildcards, and for every rule whose pattern has one `*` and whose model
// is `$1`, the pattern around it. Only names that
// really route to (provider, model) are kept, so /v1/models never lists a
// name the handler would refuse.
func (rt *router) aliases(provider, model string) []string {
	var out []string
	try := func(name string) {
		if p, m, ok := rt.route(name); ok && p == provider && m == model {
			for _, o := range out {
				if o == name {
					return
				}
			}
			out = append(out, name)
		}
	}
	try(model)
	for _, r := range rt.rules {
		switch {
		case r.Provider != provider:
		case r.wildcards == 0:
			try(r.Pattern)
		case r.Model == "$1" && r.wildcards == 1 && strings.Count(r.Pattern, "*") == 1:
			try(strings.Replace(r.Pattern, "*", model, 1))
		}
	}
	return out
}
