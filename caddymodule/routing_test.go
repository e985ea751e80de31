package caddymodule

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestRoute(t *testing.T) {
	type lookup struct {
		model    string
		provider string // "" means no route
		upstream string
	}
	tests := []struct {
		name    string
		routing Routing
		lookups []lookup
	}{
		{
			name: "priority 1 before 2 before unset",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "glm-4.6", Provider: "unset"},
				{Pattern: "glm-*", Provider: "two", Priority: 2},
				{Pattern: "*", Provider: "one", Priority: 1},
			}},
			lookups: []lookup{{"glm-4.6", "one", "glm-4.6"}, {"qwen3-max", "one", "qwen3-max"}},
		},
		{
			name: "priority 2 before unset even when less specific",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "glm-4.6", Provider: "unset"},
				{Pattern: "g*", Provider: "two", Priority: 2},
			}},
			lookups: []lookup{{"glm-4.6", "two", "glm-4.6"}},
		},
		{
			name: "more literal characters win",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "*", Provider: "any"},
				{Pattern: "glm-*", Provider: "glm"},
				{Pattern: "glm-4.?", Provider: "glm4"},
				{Pattern: "glm-4.6", Provider: "exact"},
			}},
			lookups: []lookup{
				{"glm-4.6", "exact", "glm-4.6"},
				{"glm-4.7", "glm4", "glm-4.7"},
				{"glm-5", "glm", "glm-5"},
				{"kimi-k2", "any", "kimi-k2"},
			},
		},
		{
			name: "ten wildcards and a template",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "??????????*", Provider: "p", Model: "$9$1"},
			}},
			lookups: []lookup{{"abcdefghijk", "p", "ia"}},
		},
		{
			name: "specificity within one priority",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "*", Provider: "any", Priority: 1},
				{Pattern: "qwen*", Provider: "qwen", Priority: 1},
				{Pattern: "qwen3-max", Provider: "low", Priority: 2},
			}},
			lookups: []lookup{{"qwen3-max", "qwen", "qwen3-max"}, {"glm-5", "any", "glm-5"}},
		},
		{
			name: "literals are counted in characters, not bytes",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "心流*", Provider: "cjk"},    // 2 characters, 6 bytes
				{Pattern: "*abc", Provider: "ascii"}, // 3 characters
			}},
			lookups: []lookup{{"心流abc", "ascii", "心流abc"}, {"心流x", "cjk", "心流x"}},
		},
		{
			name: "config order breaks ties",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "a*", Provider: "first"},
				{Pattern: "*a", Provider: "second"},
			}},
			lookups: []lookup{{"aa", "first", "aa"}, {"ba", "second", "ba"}},
		},
		{
			name: "config order breaks ties, reversed",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "*a", Provider: "second"},
				{Pattern: "a*", Provider: "first"},
			}},
			lookups: []lookup{{"aa", "second", "aa"}},
		},
		{
			name: "star and question mark",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "glm-?", Provider: "q"},
				{Pattern: "kimi-*", Provider: "s"},
				{Pattern: "x?y", Provider: "xy"},
			}},
			lookups: []lookup{
				{"glm-5", "q", "glm-5"},
				{"glm-4.6", "", ""}, // ? is exactly one character
				{"glm-", "", ""},
				{"kimi-", "s", "kimi-"}, // * may match nothing
				{"kimi-k2.5", "s", "kimi-k2.5"},
				{"x心y", "xy", "x心y"}, // ? is a character, not a byte
				{"xy", "", ""},
				{"GLM-5", "", ""}, // case-sensitive
				{"aglm-5", "", ""},
				{"glm-55", "", ""},
			},
		},
		{
			name: "$1 strips a prefix",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "iflow-*", Provider: "iflow", Model: "$1"},
			}},
			lookups: []lookup{
				{"iflow-glm-4.6", "iflow", "glm-4.6"},
				{"iflow-", "iflow", ""},
				{"glm-4.6", "", ""},
			},
		},
		{
			name: "literal model and $$",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "gpt-4*", Provider: "p", Model: "qwen3-max"},
				{Pattern: "cost-*", Provider: "p", Model: "$$$1$$"},
			}},
			lookups: []lookup{
				{"gpt-4o", "p", "qwen3-max"},
				{"cost-x", "p", "$x$"},
			},
		},
		{
			name: "multiple wildcards",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "*/*", Provider: "swap", Model: "$2-$1"},
				{Pattern: "*-*", Provider: "lazy", Model: "[$1][$2]"},
				{Pattern: "?*?", Provider: "ends", Model: "$3$2$1"},
			}},
			lookups: []lookup{
				{"a/b", "swap", "b-a"},
				{"a/b/c", "swap", "b/c-a"}, // the first * takes as little as it can
				{"a-b-c", "lazy", "[a][b-c]"},
				{"abc", "ends", "cba"},
				{"心ab流", "ends", "流ab心"},
			},
		},
		{
			name: "default provider",
			routing: Routing{
				Rules:           []RoutingRule{{Pattern: "glm-*", Provider: "glm", Model: "x-$1"}},
				DefaultProvider: "iflow",
			},
			lookups: []lookup{{"glm-5", "glm", "x-5"}, {"qwen3-max", "iflow", "qwen3-max"}, {"", "iflow", ""}},
		},
		{
			name:    "default only",
			routing: Routing{DefaultProvider: "iflow"},
			lookups: []lookup{{"anything", "iflow", "anything"}},
		},
		{
			name:    "nothing",
			routing: Routing{},
			lookups: []lookup{{"glm-5", "", ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := newRouter(tt.routing)
			if err != nil {
				t.Fatalf("newRouter: %v", err)
			}
			for _, l := range tt.lookups {
				p, m, ok := rt.route(l.model)
				if ok != (l.provider != "") || p != l.provider || m != l.upstream {
					t.Errorf("route(%q) = %q, %q, %v; want %q, %q", l.model, p, m, ok, l.provider, l.upstream)
				}
			}
		})
	}
}

// TestGlobWholeRunes checks that wildcards take whole characters, so that
// `?` counts characters and captures are valid UTF-8.
func TestGlobWholeRunes(t *testing.T) {
	tests := []struct {
		pattern, s string
		match      bool
		caps       []string
	}{
		{"*", "", true, []string{""}},
		{"*", "心流", true, []string{"心流"}},
		{"?", "心", true, []string{"心"}},
		{"??", "心", false, nil},
		{"*??", "心", false, nil},
		{"*?", "心流", true, []string{"心", "流"}},
		{"*?*", "心", true, []string{"", "心", ""}},
		{"*??", "心流", true, []string{"", "心", "流"}},
		{"*-?", "a-心", true, []string{"a", "心"}},
		{"a*b*c", "axxbyyc", true, []string{"xx", "yy"}},
		{"a*b*c", "axxbyy", false, nil},
		{"a*b", "ab", true, []string{""}},
		// More wildcards than the nine captures a template can name.
		{"??????????*", "abcdefghijk", true, []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}},
	}
	for _, tt := range tests {
		var buf [9]string
		caps, ok := globMatch(tt.pattern, tt.s, buf[:0])
		if ok != tt.match {
			t.Errorf("globMatch(%q, %q) = %v, want %v (caps %q)", tt.pattern, tt.s, ok, tt.match, caps)
			continue
		}
		if !ok {
			continue
		}
		if !slices.Equal(caps, tt.caps) {
			t.Errorf("globMatch(%q, %q) captured %q, want %q", tt.pattern, tt.s, caps, tt.caps)
		}
		for _, c := range caps {
			if !utf8.ValidString(c) {
				t.Errorf("globMatch(%q, %q) captured invalid UTF-8 %q", tt.pattern, tt.s, c)
			}
		}
	}
}

func TestCheckTemplate(t *testing.T) {
	tests := []struct {
		tmpl      string
		wildcards int
		errHas    string // "" means valid
	}{
		{"", 0, ""},
		{"glm-4.6", 0, ""},
		{"$1", 1, ""},
		{"$2-$1", 2, ""},
		{"$9", 9, ""},
		{"$$", 0, ""},
		{"$$1", 0, ""}, // a dollar sign and a 1
		{"a$$b$1", 1, ""},
		{"$1", 0, "$1"},
		{"$3", 2, "$3"},
		{"x$", 1, "lone $"},
		{"$", 0, "lone $"},
		{"$x", 1, "$x"},
		{"$0", 1, "$0"},
		{"$$$", 0, "lone $"},
	}
	for _, tt := range tests {
		err := checkTemplate(tt.tmpl, tt.wildcards)
		switch {
		case tt.errHas == "" && err != nil:
			t.Errorf("checkTemplate(%q, %d) = %v, want ok", tt.tmpl, tt.wildcards, err)
		case tt.errHas != "" && err == nil:
			t.Errorf("checkTemplate(%q, %d) accepted it, want an error about %s", tt.tmpl, tt.wildcards, tt.errHas)
		case tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas):
			t.Errorf("checkTemplate(%q, %d) = %v, want it to mention %s", tt.tmpl, tt.wildcards, err, tt.errHas)
		}
	}
}

func TestNewRouterErrors(t *testing.T) {
	tests := []struct {
		name   string
		rule   RoutingRule
		errHas []string
	}{
		{"no pattern", RoutingRule{Provider: "p"}, []string{"pattern"}},
		{"no provider", RoutingRule{Pattern: "glm-*"}, []string{"provider", "glm-*"}},
		{"negative priority", RoutingRule{Pattern: "a", Provider: "p", Priority: -1}, []string{"priority"}},
		{"$3 with two wildcards", RoutingRule{Pattern: "*-*", Provider: "p", Model: "$3"}, []string{"$3", "*-*"}},
		{"lone $", RoutingRule{Pattern: "*", Provider: "p", Model: "a$"}, []string{"lone $"}},
		{"$x", RoutingRule{Pattern: "*", Provider: "p", Model: "$x"}, []string{"$x"}},
		{"$1 without wildcard", RoutingRule{Pattern: "glm", Provider: "p", Model: "$1"}, []string{"$1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := RoutingRule{Pattern: "ok-*", Provider: "p"}
			_, err := newRouter(Routing{Rules: []RoutingRule{good, tt.rule}})
			if err == nil {
				t.Fatal("newRouter accepted the rule")
			}
			for _, w := range append(tt.errHas, "2") { // names the rule by position
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRouterProviders(t *testing.T) {
	rt, err := newRouter(Routing{
		Rules: []RoutingRule{
			{Pattern: "a*", Provider: "p2"},
			{Pattern: "b*", Provider: "p1", Priority: 1},
			{Pattern: "c*", Provider: "p2"},
		},
		DefaultProvider: "p3",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rt.providers(), []string{"p1", "p2", "p3"}; !slices.Equal(got, want) {
		t.Errorf("providers() = %v, want %v", got, want)
	}
}

func TestAliases(t *testing.T) {
	tests := []struct {
		name     string
		routing  Routing
		provider string
		model    string
		want     []string
	}{
		{
			name: "prefix alias and plain name",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "iflow-*", Provider: "iflow", Model: "$1"},
				{Pattern: "*", Provider: "iflow"},
			}},
			provider: "iflow", model: "glm-4.6",
			want: []string{"glm-4.6", "iflow-glm-4.6"},
		},
		{
			name: "suffix alias",
			routing: Routing{
				Rules:           []RoutingRule{{Pattern: "*@iflow", Provider: "iflow", Model: "$1"}},
				DefaultProvider: "iflow",
			},
			provider: "iflow", model: "kimi-k2",
			want: []string{"kimi-k2", "kimi-k2@iflow"},
		},
		{
			name: "literal rule renames a model",
			routing: Routing{
				Rules: []RoutingRule{
					{Pattern: "gpt-4o", Provider: "iflow", Model: "qwen3-max"},
					{Pattern: "gpt-4o-mini", Provider: "iflow", Model: "glm-4.6"},
				},
				DefaultProvider: "iflow",
			},
			provider: "iflow", model: "qwen3-max",
			want: []string{"qwen3-max", "gpt-4o"},
		},
		{
			name: "plain name not routed there",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "iflow-*", Provider: "iflow", Model: "$1"},
			}},
			provider: "iflow", model: "glm-4.6",
			want: []string{"iflow-glm-4.6"},
		},
		{
			name: "alias shadowed by a higher rule",
			routing: Routing{
				Rules: []RoutingRule{
					{Pattern: "iflow-glm-*", Provider: "other", Priority: 1},
					{Pattern: "iflow-*", Provider: "iflow", Model: "$1"},
				},
				DefaultProvider: "iflow",
			},
			provider: "iflow", model: "glm-4.6",
			want: []string{"glm-4.6"},
		},
		{
			name: "other provider's rule ignored",
			routing: Routing{
				Rules:           []RoutingRule{{Pattern: "x-*", Provider: "other", Model: "$1"}},
				DefaultProvider: "iflow",
			},
			provider: "iflow", model: "glm-5",
			want: []string{"glm-5"},
		},
		{
			name: "rules that are not a plain $1 give no alias",
			routing: Routing{
				Rules: []RoutingRule{
					{Pattern: "a-*-*", Provider: "iflow", Model: "$1"},
					{Pattern: "b-?", Provider: "iflow", Model: "$1"},
					{Pattern: "c-*", Provider: "iflow", Model: "$1-x"},
					{Pattern: "d-*", Provider: "iflow"},
				},
				DefaultProvider: "iflow",
			},
			provider: "iflow", model: "glm-5",
			want: []string{"glm-5"},
		},
		{
			name:     "unreachable",
			routing:  Routing{Rules: []RoutingRule{{Pattern: "*", Provider: "other"}}},
			provider: "iflow", model: "glm-5",
			want: nil,
		},
		{
			name: "duplicate alias listed once",
			routing: Routing{Rules: []RoutingRule{
				{Pattern: "iflow-*", Provider: "iflow", Model: "$1"},
				{Pattern: "iflow-*", Provider: "iflow", Model: "$1", Priority: 3},
			}},
			provider: "iflow", model: "glm-5",
			want: []string{"iflow-glm-5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := newRouter(tt.routing)
			if err != nil {
				t.Fatal(err)
			}
			got := rt.aliases(tt.provider, tt.model)
			if !slices.Equal(got, tt.want) {
				t.Errorf("aliases(%q, %q) = %q, want %q", tt.provider, tt.model, got, tt.want)
			}
			// Every alias really routes there.
			for _, a := range got {
				if p, m, ok := rt.route(a); !ok || p != tt.provider || m != tt.model {
					t.Errorf("alias %q routes to %q, %q", a, p, m)
				}
			}
		})
	}
}

func benchRouter(tb testing.TB) *router {
	rt, err := newRouter(Routing{
		Rules: []RoutingRule{
			{Pattern: "gpt-*", Provider: "openai"},
			{Pattern: "claude-*", Provider: "anthropic"},
			{Pattern: "iflow-*", Provider: "iflow", Model: "$1"},
			{Pattern: "qwen3-*", Provider: "iflow"},
			{Pattern: "glm-?.?", Provider: "iflow"},
			{Pattern: "*-thinking*", Provider: "iflow", Priority: 5},
		},
		DefaultProvider: "iflow",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rt
}

// TestRouteAllocs keeps routing free of allocations unless a rule
// rewrites the model.
func TestRouteAllocs(t *testing.T) {
	rt := benchRouter(t)
	for _, model := range []string{"glm-4.6", "qwen3-coder-plus", "kimi-k2-thinking", "deepseek-v3.2"} {
		if n := testing.AllocsPerRun(100, func() { rt.route(model) }); n != 0 {
			t.Errorf("route(%q): %v allocs, want 0", model, n)
		}
	}
}

func BenchmarkRoute(b *testing.B) {
	rt := benchRouter(b)
	for _, model := range []string{"glm-4.6", "deepseek-v3.2", "iflow-kimi-k2"} {
		b.Run(model, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := rt.route(model); !ok {
					b.Fatal("no route")
				}
			}
		})
	}
}

// TestGlobManyWildcards: a pattern with several `*` against a long model
// name that almost matches (the client chooses the name) ends at once;
// trying every split would take minutes. The deadline only guards against
// a hang.
func TestGlobManyWildcards(t *testing.T) {
	rt, err := newRouter(Routing{Rules: []RoutingRule{{Pattern: "*-*-*-*-*-x", Provider: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, 1)
	go func() {
		_, _, ok := rt.route(strings.Repeat("-", maxModelName))
		done <- ok
	}()
	select {
	case ok := <-done:
		if ok {
			t.Error("a name without x matched")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("matching did not end")
	}
	if p, _, ok := rt.route("a-b-c-d-e-x"); !ok || p != "p" {
		t.Error("a matching name did not match")
	}
}
