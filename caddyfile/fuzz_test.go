package caddyfile

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/proxycast/caddy-proxycast/caddymodule"
)

// secretMark marks the secrets of fuzzSecrets, which no error may repeat.
const secretMark = "SECRETMARK"

// fuzzSecrets is a credential_pool whose secrets are read before the
// fuzzed text, which goes where the last credential's options go.
const fuzzSecrets = `proxycast {
	credential_pool {
		iflow {
			credential k {
				auth_type api_key
				api_key sk-SECRETMARK-key
				proxy_url "http://user:SECRETMARK-pass@127.0.0.1:3128"
			}
			credential c {
				auth_type cookie
				cookies "BXAuth=SECRETMARK-cookie; a=b"
`

// FuzzCaddyfile reads arbitrary text as a whole directive, as the inside
// of a proxycast block, and as options after secrets. It must not panic,
// a handler it accepts must survive a JSON round trip, and no error may
// repeat a secret.
func FuzzCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"proxycast {\n\tapi_keys a b\n\tanonymous\n}",
		"api_keys {env.K} k2\nmax_body_size 1MiB\nselection fill_first\nmax_attempts 2",
		"sticky_header X-Session\nsticky_ttl 30m\nresponse_timeout 1m\nstream_idle_timeout 10s",
		"cooldowns {\n\tauth 1m\n\tblocked 2m\n\trate_limit_max 3m\n\ttransient 4s\n\tmodel 5h\n}",
		"credential_pool {\n\tiflow {\n\t\tcredential a {\n\t\t\tauth_type oauth\n\t\t\ttoken_file t.json\n\t\t\trefresh_before 1h\n\t\t\tpriority 2\n\t\t\tdisabled false\n\t\t}\n\t}\n}",
		"routing {\n\trule iflow-* iflow priority 1 model $1\n\trule * iflow\n\tdefault_provider iflow\n}",
		"provider iflow {\n\tapi_base http://127.0.0.1:9777/v1\n}",
		"credential_pool {\n\tiflow {\n\t}\n}\ncooldowns {\n}",
		"anonymous\napi_keys k",
		"max_body_size 0",
		"\t\t\t\tapi_key other\n\t\t\t}\n\t\t}\n\t}\n}",
		"\t\t\t\tauth_type api_key\n\t\t\t}\n\t\t}\n\t}\n}",
		"\t\t\t\tdisabled maybe",
		"\t\t\t\tpriority 0",
		"\t\t\t\tproxy_url ftp://x",
		"\t\t\t\tcookies a b",
		"\t\t\t}\n\t\t\tcredential k {\n\t\t\t\tauth_type api_key\n\t\t\t\tapi_key x\n\t\t\t}\n\t\t}\n\t}\n}",
		"{\n}}\n\"unclosed",
		"<<EOF\nx\nEOF",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		// {$VAR} is replaced before lexing; with none, text lexes as
		// it is, and a lexing error stays out of NewTestDispenser,
		// which would end the process.
		if strings.Contains(text, "{$") {
			return
		}
		for _, in := range []string{text, "proxycast {\n" + text + "\n}"} {
			if _, err := caddyfile.Tokenize([]byte(in), "Testfile"); err == nil {
				checkUnmarshal(t, in)
			}
		}
		if strings.Contains(strings.ToUpper(text), secretMark) {
			return
		}
		in := fuzzSecrets + text + "\n}}}}"
		if _, err := caddyfile.Tokenize([]byte(in), "Testfile"); err != nil {
			return
		}
		if err := checkUnmarshal(t, in); err != nil && strings.Contains(err.Error(), secretMark) {
			t.Fatalf("the error for\n%s\nrepeats a secret: %v", in, err)
		}
	})
}

// checkUnmarshal reads in and checks that what it accepts marshals to JSON
// and back to the same handler.
func checkUnmarshal(t *testing.T, in string) error {
	t.Helper()
	h := new(caddymodule.Handler)
	if err := Unmarshal(caddyfile.NewTestDispenser(in), h); err != nil {
		return err
	}
	out, err := json.Marshal(h)
	if err != nil {
		t.Fatalf("the handler read from\n%s\ndoes not marshal: %v", in, err)
	}
	back := new(caddymodule.Handler)
	if err := json.Unmarshal(out, back); err != nil {
		t.Fatalf("the JSON %s of\n%s\ndoes not unmarshal: %v", out, in, err)
	}
	again, err := json.Marshal(back)
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("the JSON of\n%s\nchanged in a round trip: %s became %s (%v)", in, out, again, err)
	}
	// JSON carries no invalid UTF-8, and does not tell an empty map
	// from a missing one.
	if utf8.ValidString(in) {
		if len(h.CredentialPool) == 0 {
			h.CredentialPool = nil
		}
		if len(h.ProvidersRaw) == 0 {
			h.ProvidersRaw = nil
		}
		if !reflect.DeepEqual(h, back) {
			t.Fatalf("the handler read from\n%s\nis %+v, but %+v after a JSON round trip", in, h, back)
		}
	}
	return nil
}
