package caddyfile

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/proxycast/caddy-proxycast/caddymodule"
)

// TestExamples adapts every Caddyfile under examples/ and every Caddyfile
// block of the README, so the configurations users copy cannot rot. The
// README's blocks must each be one of the example files, verbatim.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/*/Caddyfile")
	if len(files) < 2 {
		t.Fatalf("found %d example Caddyfiles", len(files))
	}
	examples := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		examples[f] = string(raw)
		t.Run(f, func(t *testing.T) { adaptClean(t, string(raw)) })
	}

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) == 0 {
		t.Fatal("README has no caddyfile blocks")
	}
	for i, b := range blocks {
		found := false
		for _, ex := range examples {
			if strings.Contains(ex, b[1]) {
				found = true
			}
		}
		if !found {
			t.Errorf("README caddyfile block %d is not part of any file in examples/:\n%s", i+1, b[1])
		}
	}
}

func adaptClean(t *testing.T, caddyfileText string) {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Errorf("warning at line %d: %s", w.Line, w.Message)
	}
	if !bytes.Contains(out, []byte(`"handler":"proxycast"`)) {
		t.Errorf("adapted config has no proxycast handler: %s", out)
	}
	// A catch-all answer (respond) ahead of proxycast would answer the
	// API's requests too.
	if r := bytes.Index(out, []byte(`"handler":"static_response"`)); r >= 0 && r < bytes.Index(out, []byte(`"handler":"proxycast"`)) {
		t.Errorf("a respond runs before proxycast: %s", out)
	}
}

// TestJSONExample decodes the JSON example's handler strictly, so a key
// the handler does not know fails the test.
func TestJSONExample(t *testing.T) {
	raw, err := os.ReadFile("../examples/json/proxycast.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []json.RawMessage `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, srv := range cfg.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			for _, h := range r.Handle {
				var probe struct{ Handler string }
				_ = json.Unmarshal(h, &probe)
				if probe.Handler != "proxycast" {
					continue
				}
				found++
				var strict struct {
					Name string `json:"handler"`
					caddymodule.Handler
				}
				dec := json.NewDecoder(bytes.NewReader(h))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&strict); err != nil {
					t.Errorf("proxycast handler JSON: %v", err)
				}
				if len(strict.CredentialPool["iflow"]) == 0 || len(strict.Routing.Rules) == 0 || len(strict.Clients) == 0 {
					t.Errorf("example lost its credentials or rules: %+v", strict.Handler)
				}
			}
		}
	}
	if found != 1 {
		t.Fatalf("found %d proxycast handlers in the JSON example", found)
	}
}
