package caddyfile

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/proxycast/caddy-proxycast/caddymodule"
)

var update = flag.Bool("update", false, "rewrite the expected JSON of testdata/adapt/*.caddyfiletest")

// adaptSeparator divides a .caddyfiletest file into the Caddyfile and the
// JSON it must adapt to.
const adaptSeparator = "\n----------\n"

// TestAdapt adapts every testdata/adapt/*.caddyfiletest file and compares
// the result with the JSON after the separator (go test -update rewrites
// it).
func TestAdapt(t *testing.T) {
	files, _ := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if len(files) == 0 {
		t.Fatal("no adapt test files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(raw), adaptSeparator)
			if !ok {
				t.Fatalf("%s has no %q separator", f, strings.TrimSpace(adaptSeparator))
			}
			in = strings.TrimRight(in, "\n") + "\n"
			want = strings.TrimRight(want, "\n")
			if *update {
				out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(in), nil)
				if err != nil {
					t.Fatal(err)
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, out, "", "\t"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(strings.TrimSuffix(in, "\n")+adaptSeparator+pretty.String()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			caddytest.AssertAdapt(t, in, "caddyfile", want)
		})
	}
}

func parse(t *testing.T, input string) (*caddymodule.Handler, error) {
	t.Helper()
	h := new(caddymodule.Handler)
	err := Unmarshal(caddyfile.NewTestDispenser(input), h)
	return h, err
}

func TestUnmarshalGood(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(*testing.T, *caddymodule.Handler)
	}{
		{
			name: "disabled forms",
			input: `proxycast {
				api_keys k
				credential_pool {
					iflow {
						credential a {
							auth_type api_key
							api_key x
							disabled
						}
						credential b {
							auth_type api_key
							api_key x
							disabled false
						}
						credential c {
							auth_type api_key
							api_key x
							disabled true
						}
					}
				}
			}`,
			check: func(t *testing.T, h *caddymodule.Handler) {
				got := []bool{}
				for _, c := range h.CredentialPool["iflow"] {
					got = append(got, c.Disabled)
				}
				if want := []bool{true, false, true}; !equal(got, want) {
					t.Errorf("disabled = %v, want %v", got, want)
				}
			},
		},
		{
			name: "api_keys repeat and accumulate",
			input: `proxycast {
				api_keys a b
				api_keys {env.K}
			}`,
			check: func(t *testing.T, h *caddymodule.Handler) {
				if want := []string{"a", "b", "{env.K}"}; !equal(h.APIKeys, want) {
					t.Errorf("api_keys = %q, want %q", h.APIKeys, want)
				}
			},
		},
		{
			name: "rule options in any order",
			input: `proxycast {
				anonymous
				routing {
					rule iflow-* iflow model $1 priority 3
					rule * iflow
				}
			}`,
			check: func(t *testing.T, h *caddymodule.Handler) {
				want := []caddymodule.RoutingRule{
					{Pattern: "iflow-*", Provider: "iflow", Priority: 3, Model: "$1"},
					{Pattern: "*", Provider: "iflow"},
				}
				if len(h.Routing.Rules) != 2 || h.Routing.Rules[0] != want[0] || h.Routing.Rules[1] != want[1] {
					t.Errorf("rules = %+v, want %+v", h.Routing.Rules, want)
				}
				if !h.Anonymous {
					t.Error("anonymous not set")
				}
			},
		},
		{
			name:  "max_body_size",
			input: "proxycast {\n api_keys k\n max_body_size 2MiB\n}",
			check: func(t *testing.T, h *caddymodule.Handler) {
				if h.MaxBodySize != 2<<20 {
					t.Errorf("max_body_size = %d", h.MaxBodySize)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parse(t, tt.input)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tt.check(t, h)
		})
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestUnmarshalErrors checks that every kind of bad input is refused with
// a message that names the problem and the line it is on.
func TestUnmarshalErrors(t *testing.T) {
	pool := func(cred string) string {
		return "proxycast {\napi_keys k\ncredential_pool {\niflow {\n" + cred + "\n}\n}\n}"
	}
	tests := []struct {
		name, input, want string
		line              int // the line the error must name
	}{
		{"unknown option", "proxycast {\n  api_keys k\n  bogus\n}", `unrecognized proxycast option "bogus"`, 3},
		{"argument on directive", "proxycast extra {\n}", "wrong argument count", 1},
		{"api_keys without keys", "proxycast {\napi_keys\n}", "api_keys needs at least one key", 2},
		{"anonymous with keys", "proxycast {\napi_keys k\nanonymous\n}", "anonymous and api_keys exclude each other", 4},
		{"anonymous with argument", "proxycast {\nanonymous yes\n}", "wrong argument count", 2},
		{"client without a name", "proxycast {\nclient {\nkey k\n}\n}", "client needs a name", 2},
		{"client without a key", "proxycast {\nclient alice {\nmodels m\n}\n}", "client alice has no key", 4},
		{"client with a bad rate", "proxycast {\nclient alice {\nkey k\nrate_limit 60/fortnight\n}\n}", `client alice: rate_limit: rate "60/fortnight"`, 4},
		{"client with a bad expiry", "proxycast {\nclient alice {\nkey k\nexpires soon\n}\n}", `expires "soon" is not a date`, 4},
		{"client option twice", "proxycast {\nclient alice {\nkey k\nmodels a\nmodels b\n}\n}", "models is set twice", 5},
		{"client unknown option", "proxycast {\nclient alice {\nkey k\nbudget 1\n}\n}", `client alice: unrecognized option "budget"`, 4},
		{"client with a bad budget", "proxycast {\nclient alice {\nkey k\ntoken_budget 5/week\n}\n}", `client alice: token_budget "5/week"`, 4},
		{"bad usage_sync", "proxycast {\napi_keys k\nusage_sync soon\n}", `usage_sync: "soon" is not a positive duration`, 3},
		{"client models empty", "proxycast {\nclient alice {\nkey k\nmodels\n}\n}", "models needs at least one glob", 4},
		{"bad max_body_size", "proxycast {\napi_keys k\nmax_body_size lots\n}", `max_body_size: "lots" is not a size`, 3},
		{"max_body_size overflows", "proxycast {\napi_keys k\nmax_body_size 9EiB\n}", `max_body_size: "9EiB" is not a size`, 3},
		{"option set twice", "proxycast {\napi_keys k\nselection fill_first\nselection round_robin\n}", "selection is set twice", 4},
		{"block set twice", "proxycast {\napi_keys k\ncooldowns {\nauth 1m\n}\ncooldowns {\nblocked 1m\n}\n}", "cooldowns is set twice", 6},
		{"cooldown set twice", "proxycast {\napi_keys k\ncooldowns {\nauth 1m\nauth 2m\n}\n}", "cooldowns auth is set twice", 5},
		{"default_provider set twice", "proxycast {\napi_keys k\nrouting {\ndefault_provider iflow\ndefault_provider iflow\n}\n}", "default_provider is set twice", 5},
		{"default_provider in two routing blocks", "proxycast {\napi_keys k\nrouting {\ndefault_provider iflow\n}\nrouting {\ndefault_provider iflow\n}\n}", "default_provider is set twice", 7},
		{"credential option set twice", pool("credential a {\nauth_type api_key\napi_key x\napi_key y\n}"), `credential "a": api_key is set twice`, 8},
		{"provider option set twice", "proxycast {\napi_keys k\nprovider iflow {\napi_base https://a.example/v1\napi_base https://b.example/v1\n}\n}", "api_base is set twice", 5},
		{"runtime_sync without value", "proxycast {\napi_keys k\nruntime_sync\n}", "runtime_sync needs a duration such as 30s, or off", 3},
		{"bad runtime_sync", "proxycast {\napi_keys k\nruntime_sync sometimes\n}", `runtime_sync: "sometimes" is not a positive duration`, 3},
		{"relative admin_token_dirs", "proxycast {\napi_keys k\nadmin_token_dirs tokens\n}", `admin_token_dirs: "tokens" is not an absolute path`, 3},
		{"empty admin_token_dirs", "proxycast {\napi_keys k\nadmin_token_dirs\n}", `admin_token_dirs needs at least one directory`, 3},
		{"admin_token_dirs twice", "proxycast {\napi_keys k\nadmin_token_dirs /a\nadmin_token_dirs /b\n}", `admin_token_dirs is set twice`, 4},
		{"runtime_sync with two values", "proxycast {\napi_keys k\nruntime_sync 1s 2s\n}", "runtime_sync needs a duration such as 30s, or off", 3},
		{"unknown provider in pool", "proxycast {\ncredential_pool {\nnosuch {\n}\n}\n}", `unknown provider "nosuch": declare it with provider nosuch { type … } (known types: anthropic, iflow, openai)`, 3},
		{"unknown word in pool", pool("token abc"), `unrecognized option "token" in credential_pool iflow`, 5},
		{"credential without id", pool("credential {\nauth_type api_key\n}"), "credential needs an id", 5},
		{"unknown credential option", pool("credential a {\nauth_type api_key\napi_key x\ncolor blue\n}"), `credential "a": unrecognized option "color"`, 8},
		{"missing auth_type", pool("credential a {\napi_key x\n}"), `credential "a": auth_type is required`, 5},
		{"unknown auth_type", pool("credential a {\nauth_type password\n}"), `credential "a": unknown auth_type "password"`, 5},
		{"oauth without token_file", pool("credential a {\nauth_type oauth\n}"), `credential "a": auth_type oauth needs token_file`, 5},
		{"cookie without cookies", pool("credential a {\nauth_type cookie\n}"), `credential "a": auth_type cookie needs cookies`, 5},
		{"api_key without api_key", pool("credential a {\nauth_type api_key\n}"), `credential "a": auth_type api_key needs api_key`, 5},
		{"field of another auth type", pool("credential a {\nauth_type api_key\napi_key x\ncookies BXAuth=y\n}"), `credential "a": cookies is only for auth_type cookie, not api_key`, 5},
		{"option without value", pool("credential a {\nauth_type\n}"), `credential "a": auth_type needs a value`, 6},
		{"option with two values", pool("credential a {\nauth_type api_key\napi_key x y\n}"), `credential "a": api_key takes one value`, 7},
		{"bad disabled", pool("credential a {\nauth_type api_key\napi_key x\ndisabled maybe\n}"), `credential "a": disabled takes true or false, not "maybe"`, 8},
		{"duplicate id", pool("credential a {\nauth_type api_key\napi_key x\n}\ncredential a {\nauth_type api_key\napi_key y\n}"), `credential "a": duplicate id in credential_pool iflow`, 9},
		{"proxy scheme", pool("credential a {\nauth_type api_key\napi_key x\nproxy_url ftp://p:21\n}"), `credential "a": proxy_url scheme "ftp" is not supported`, 5},
		{"proxy without host", pool("credential a {\nauth_type api_key\napi_key x\nproxy_url http://\n}"), `credential "a": proxy_url has no host`, 5},
		{"proxy password not echoed", pool("credential a {\nauth_type api_key\napi_key x\nproxy_url \"http://u:se cret@h\"\n}"), `credential "a": proxy_url is not a valid URL`, 5},
		{"rule without provider", "proxycast {\napi_keys k\nrouting {\nrule iflow-*\n}\n}", "rule needs a pattern and a provider", 4},
		{"rule unknown provider", "proxycast {\napi_keys k\nrouting {\nrule gpt-* nosuch\n}\n}", `unknown provider "nosuch"`, 4},
		{"rule bad priority", "proxycast {\napi_keys k\nrouting {\nrule a iflow priority first\n}\n}", `rule a: priority must be a whole number from 1, not "first"`, 4},
		{"rule zero priority", "proxycast {\napi_keys k\nrouting {\nrule a iflow priority 0\n}\n}", `rule a: priority must be a whole number from 1, not "0"`, 4},
		{"rule dangling option", "proxycast {\napi_keys k\nrouting {\nrule a iflow priority\n}\n}", `rule a: "priority" needs a value`, 4},
		{"rule unknown option", "proxycast {\napi_keys k\nrouting {\nrule a iflow weight 2\n}\n}", `rule a: unrecognized option "weight"`, 4},
		{"rule bad template", "proxycast {\napi_keys k\nrouting {\nrule iflow-* iflow model $2\n}\n}", `rule "iflow-*": model "$2": $2 refers to wildcard 2 but the pattern has 1`, 4},
		{"unknown routing word", "proxycast {\napi_keys k\nrouting {\nfallback iflow\n}\n}", `unrecognized routing option "fallback"`, 4},
		{"unknown default provider", "proxycast {\napi_keys k\nrouting {\ndefault_provider nosuch\n}\n}", `unknown provider "nosuch"`, 4},
		{"provider without name", "proxycast {\napi_keys k\nprovider\n}", "provider needs a name", 3},
		{"provider without a type", "proxycast {\napi_keys k\nprovider deepseek {\napi_base https://api.deepseek.com\n}\n}", `provider "deepseek" needs a type`, 3},
		{"unknown provider type", "proxycast {\napi_keys k\nprovider deepseek {\ntype nosuch\n}\n}", `provider "deepseek": unknown type "nosuch" (known types: anthropic, iflow, openai)`, 4},
		{"provider type twice", "proxycast {\napi_keys k\nprovider deepseek {\ntype openai\ntype openai\n}\n}", `provider "deepseek": type is set twice`, 5},
		{"openai without api_base", "proxycast {\napi_keys k\nprovider deepseek {\ntype openai\n}\n}", `an openai provider needs api_base`, 3},
		{"openai auth_header without key", "proxycast {\napi_keys k\nprovider az {\ntype openai\napi_base https://x.example/v1\nauth_header api-key secret\n}\n}", `auth_header: the value "secret" has no {key}`, 6},
		{"openai bad api_base", "proxycast {\napi_keys k\nprovider ds {\ntype openai\napi_base api.deepseek.com\n}\n}", `api_base: "api.deepseek.com" is not an http or https URL`, 5},
		{"openai unknown option", "proxycast {\napi_keys k\nprovider ds {\ntype openai\napi_base https://x.example/v1\nmodel x\n}\n}", `unrecognized openai provider option "model"`, 6},
		{"openai odd rename_params", "proxycast {\napi_keys k\nprovider ds {\ntype openai\napi_base https://x.example/v1\nrename_params a\n}\n}", `rename_params needs pairs`, 6},
		{"openai bad responses", "proxycast {\napi_keys k\nprovider ds {\ntype openai\napi_base https://x.example/v1\nresponses passthrough\n}\n}", `responses takes native`, 6},
		{"openai bad stream_usage", "proxycast {\napi_keys k\nprovider ds {\ntype openai\napi_base https://x.example/v1\nstream_usage maybe\n}\n}", `stream_usage takes on or off`, 6},
		{"openai short refresh", "proxycast {\napi_keys k\nprovider ds {\ntype openai\napi_base https://x.example/v1\nmodels_from_upstream 1s\n}\n}", `is not a refresh interval of 1m or more`, 6},
		{"pool naming an undeclared instance", "proxycast {\napi_keys k\ncredential_pool {\ndeepseek {\n}\n}\n}", `unknown provider "deepseek"`, 4},
		{"unknown provider option", "proxycast {\napi_keys k\nprovider iflow {\nbase http://x\n}\n}", `unrecognized iflow provider option "base"`, 4},
		{"bad provider URL", "proxycast {\napi_keys k\nprovider iflow {\napi_base ftp://x\n}\n}", `api_base: "ftp://x" is not an http or https URL`, 4},
		{"bad selection", "proxycast {\napi_keys k\nselection random\n}", `selection "random" is not round_robin or fill_first`, 3},
		{"zero max_attempts", "proxycast {\napi_keys k\nmax_attempts 0\n}", `max_attempts must be a whole number from 1, not "0"`, 3},
		{"bad sticky_ttl", "proxycast {\napi_keys k\nsticky_ttl forever\n}", `sticky_ttl: "forever" is not a positive duration`, 3},
		{"unknown cooldown", "proxycast {\napi_keys k\ncooldowns {\nhttp500 1m\n}\n}", `unrecognized cooldown "http500"`, 4},
		{"bad cooldown", "proxycast {\napi_keys k\ncooldowns {\nauth -1m\n}\n}", `cooldowns auth: "-1m" is not a positive duration`, 4},
		{"bad priority", pool("credential a {\nauth_type api_key\napi_key x\npriority 0\n}"), `credential "a": priority must be a whole number from 1, not "0"`, 8},
		{"refresh_before on api_key", pool("credential a {\nauth_type api_key\napi_key x\nrefresh_before 1h\n}"), `credential "a": refresh_before is only for oauth and cookie credentials`, 5},
		{"duplicate provider", "proxycast {\napi_keys k\nprovider iflow {\n}\nprovider iflow {\n}\n}", `provider "iflow" is declared twice`, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.input)
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
			if at := fmt.Sprintf(", at Testfile:%d", tt.line); !strings.HasSuffix(err.Error(), at) {
				t.Errorf("error %q does not end in %q", err, at)
			}
			if strings.Contains(err.Error(), "se cret") {
				t.Errorf("error repeats a secret: %q", err)
			}
		})
	}
}

// TestRepeatableBlocks: credential_pool and routing blocks add to each
// other (imported snippets may each bring one), as api_keys lines do.
func TestRepeatableBlocks(t *testing.T) {
	h := new(caddymodule.Handler)
	input := `proxycast {
		api_keys k1
		api_keys k2
		credential_pool {
			iflow {
				credential a {
					auth_type api_key
					api_key x
				}
			}
		}
		credential_pool {
			iflow {
				credential b {
					auth_type api_key
					api_key y
				}
			}
		}
		routing {
			rule a-* iflow
		}
		routing {
			rule b-* iflow
		}
	}`
	if err := Unmarshal(caddyfile.NewTestDispenser(input), h); err != nil {
		t.Fatal(err)
	}
	if len(h.APIKeys) != 2 || len(h.CredentialPool["iflow"]) != 2 || len(h.Routing.Rules) != 2 {
		t.Errorf("keys %d, credentials %d, rules %d; want 2 of each", len(h.APIKeys), len(h.CredentialPool["iflow"]), len(h.Routing.Rules))
	}
}
