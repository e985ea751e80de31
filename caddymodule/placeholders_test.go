package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/proxycast/caddy-proxycast/iflow"
)

// TestPlaceholderSources: secret fields take {env.NAME} and {file.PATH}
// (one trailing newline dropped), token_file takes {env.NAME} only, and
// every other placeholder is kept as written.
func TestPlaceholderSources(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("sk-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PROXYCAST_TEST_DIR", "tokens")

	tests := []struct {
		name   string
		c      Credential
		field  func(resolved) string
		want   string
		errHas string
	}{
		{"api_key from a file", Credential{ID: "a", AuthType: "api_key", APIKey: "{file." + keyFile + "}"},
			func(r resolved) string { return r.APIKey }, "sk-from-file", ""},
		{"token_file from env", Credential{ID: "a", AuthType: "oauth", TokenFile: "{env.PROXYCAST_TEST_DIR}/a.json"},
			func(r resolved) string { return r.TokenFile }, "tokens/a.json", ""},
		{"other placeholders kept", Credential{ID: "a", AuthType: "api_key", APIKey: "k-{system.hostname}"},
			func(r resolved) string { return r.APIKey }, "k-{system.hostname}", ""},
		{"token_file from a file", Credential{ID: "a", AuthType: "oauth", TokenFile: "{file." + keyFile + "}"},
			nil, "", "not taken here"},
		{"missing file", Credential{ID: "a", AuthType: "api_key", APIKey: "{file." + dir + "/nope}"},
			nil, "", "/nope}: cannot read the file: it does not exist"},
		{"empty file", Credential{ID: "a", AuthType: "api_key", APIKey: "{file." + empty + "}"},
			nil, "", "the file is empty"},
	}
	for _, tt := range tests {
		r, err := tt.c.resolve()
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.errHas)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := tt.field(r); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestErrorsQuoteFieldsAsWritten: whatever is wrong with a field whose
// placeholders resolved, the error quotes the field as written and nothing
// the placeholders put in it (an environment variable, a file's content).
func TestErrorsQuoteFieldsAsWritten(t *testing.T) {
	const secret = "hunter2-Secret-Value"
	t.Setenv("PROXYCAST_TEST_SECRET", secret)
	t.Setenv("PROXYCAST_TEST_LINES", "sk-abc\r\nX-Injected: 1")
	environ := filepath.Join(t.TempDir(), "environ")
	if err := os.WriteFile(environ, []byte("HOME=/root\x00SECRET="+secret+"\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	p := &iflow.Provider{}
	tests := []struct {
		name, field string
		c           Credential
	}{
		{"token_file leaving the storage", "token_file", Credential{ID: "a", AuthType: "oauth", TokenFile: "../{env.PROXYCAST_TEST_SECRET}"}},
		{"token_file on a plugin key", "token_file", Credential{ID: "a", AuthType: "oauth", TokenFile: "state/{env.PROXYCAST_TEST_SECRET}"}},
		{"proxy_url scheme", "proxy_url", Credential{ID: "a", AuthType: "api_key", APIKey: "k", ProxyURL: "{env.PROXYCAST_TEST_SECRET}:"}},
		{"proxy_url from a file", "proxy_url", Credential{ID: "a", AuthType: "api_key", APIKey: "k", ProxyURL: "{file." + environ + "}"}},
		{"proxy_url without host", "proxy_url", Credential{ID: "a", AuthType: "api_key", APIKey: "k", ProxyURL: "http://{env.PROXYCAST_TEST_SECRET}@"}},
		{"cookie without BXAuth", "cookies", Credential{ID: "a", AuthType: "cookie", Cookies: "{env.PROXYCAST_TEST_SECRET}"}},
		{"api_key with a line break", "api_key", Credential{ID: "a", AuthType: "api_key", APIKey: "{env.PROXYCAST_TEST_LINES}"}},
	}
	for _, tt := range tests {
		err := func() error {
			r, err := tt.c.resolve()
			if err != nil {
				return err
			}
			auth, err := p.NewAuth(r.spec)
			if err != nil {
				return r.authError(err)
			}
			if auth.Renewer != nil {
				_, err = r.locate(storage, auth, "iflow")
			}
			return err
		}()
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, secret) || strings.Contains(msg, "hunter2") || strings.Contains(msg, "X-Injected") {
			t.Errorf("%s: the error holds what the placeholder gave: %s", tt.name, msg)
		}
		if !strings.Contains(msg, tt.field) {
			t.Errorf("%s: the error %q does not name %s", tt.name, msg, tt.field)
		}
		if fe, ok := err.(*FieldError); !ok || fe.Field != tt.field {
			t.Errorf("%s: error %#v, want a FieldError for %s", tt.name, err, tt.field)
		}
	}
}

// TestCredentialInputRefused: values that cannot work are refused up
// front, naming the field: bytes that cannot go into a header, and ids
// that are no names.
func TestCredentialInputRefused(t *testing.T) {
	tests := []struct {
		field string
		c     Credential
	}{
		{"api_key", Credential{ID: "a", AuthType: "api_key", APIKey: "sk-abc\r\nX-Evil: 1"}},
		{"api_key", Credential{ID: "a", AuthType: "api_key", APIKey: "sk-abc\x00"}},
		{"cookies", Credential{ID: "a", AuthType: "cookie", Cookies: "BXAuth=abc\ndef"}},
		{"id", Credential{ID: ".", AuthType: "api_key", APIKey: "k"}},
		{"id", Credential{ID: "..", AuthType: "api_key", APIKey: "k"}},
	}
	for _, tt := range tests {
		err := tt.c.Check()
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != tt.field {
			t.Errorf("%+v: error %v, want one for %s", tt.c, err, tt.field)
			continue
		}
		if strings.Contains(fe.Msg, "sk-abc") || strings.Contains(fe.Msg, "BXAuth=abc") {
			t.Errorf("the error quotes the value: %s", fe.Msg)
		}
	}
}
