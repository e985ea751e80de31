package caddymodule

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

func handlerWithKeys(keys ...string) *Handler {
	h := &Handler{}
	for _, k := range keys {
		h.keys = append(h.keys, sha256.Sum256([]byte(k)))
	}
	return h
}

func TestAuthorized(t *testing.T) {
	tests := []struct {
		name      string
		anonymous bool
		keys      []string
		header    map[string]string
		want      bool
	}{
		{"bearer", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearer sk-good"}, true},
		{"bearer lower case", false, []string{"sk-good"}, map[string]string{"Authorization": "bearer sk-good"}, true},
		{"bearer upper case", false, []string{"sk-good"}, map[string]string{"Authorization": "BEARER sk-good"}, true},
		{"bearer spaces trimmed", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearer   sk-good  "}, true},
		{"bearer second key", false, []string{"sk-good", "sk-other"}, map[string]string{"Authorization": "Bearer sk-other"}, true},
		{"bearer wrong key", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearer sk-bad"}, false},
		{"bearer prefix of key", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearer sk-goo"}, false},
		{"bearer key with suffix", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearer sk-goodx"}, false},
		{"bearer key case matters", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearer SK-GOOD"}, false},
		{"bearer empty", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearer "}, false},
		{"bearer blank", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearer    "}, false},
		{"bearer without space", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearersk-good"}, false},
		{"basic", false, []string{"sk-good"}, map[string]string{"Authorization": "Basic sk-good"}, false},
		{"bare key in authorization", false, []string{"sk-good"}, map[string]string{"Authorization": "sk-good"}, false},
		{"x-api-key", false, []string{"sk-good"}, map[string]string{"X-Api-Key": "sk-good"}, true},
		{"x-api-key lower-case header name", false, []string{"sk-good"}, map[string]string{"x-api-key": "sk-good"}, true},
		{"x-api-key trimmed", false, []string{"sk-good"}, map[string]string{"X-Api-Key": " sk-good "}, true},
		{"x-api-key wrong", false, []string{"sk-good"}, map[string]string{"X-Api-Key": "sk-bad"}, false},
		{"x-api-key with basic auth", false, []string{"sk-good"}, map[string]string{"Authorization": "Basic abc", "X-Api-Key": "sk-good"}, true},
		{"bearer wins over x-api-key", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearer sk-bad", "X-Api-Key": "sk-good"}, false},
		{"bearer good, x-api-key too", false, []string{"sk-good"}, map[string]string{"Authorization": "Bearer sk-good", "X-Api-Key": "sk-other"}, true},
		{"no key", false, []string{"sk-good"}, nil, false},
		{"empty x-api-key", false, []string{"sk-good"}, map[string]string{"X-Api-Key": ""}, false},
		{"no keys configured", false, nil, map[string]string{"Authorization": "Bearer sk-good"}, false},
		{"anonymous", true, nil, nil, true},
		{"anonymous with a key", true, nil, map[string]string{"X-Api-Key": "sk-whatever"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := handlerWithKeys(tt.keys...)
			h.Anonymous = tt.anonymous
			r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if _, got := h.authorized(r); got != tt.want {
				t.Errorf("authorized = %v, want %v", got, tt.want)
			}
			if v, sent := tt.header["Authorization"]; sent && r.Header.Get("Authorization") != v {
				t.Errorf("Authorization changed to %q", r.Header.Get("Authorization"))
			}
		})
	}
}

func BenchmarkAuthorized(b *testing.B) {
	h := handlerWithKeys("sk-first-0123456789abcdef", "sk-second-0123456789abcdef", "sk-third-0123456789abcdef")
	b.Run("bearer", func(b *testing.B) {
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
		r.Header.Set("Authorization", "Bearer sk-third-0123456789abcdef")
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := h.authorized(r); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("wrong", func(b *testing.B) {
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
		r.Header.Set("Authorization", "Bearer sk-wrong-0123456789abcdef")
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := h.authorized(r); ok {
				b.Fatal("accepted")
			}
		}
	})
}

// BenchmarkAuthorizedClients: finding a named client's key costs the same
// with one client as with a thousand.
func BenchmarkAuthorizedClients(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			h := handlerWithKeys("sk-legacy-0123456789abcdef")
			for i := range n {
				h.Clients = append(h.Clients, ClientConfig{Name: "c" + strconv.Itoa(i), Keys: []string{"sk-client-" + strconv.Itoa(i) + "-0123456789abcdef"}})
			}
			h.storage = &certmagic.FileStorage{Path: b.TempDir()}
			h.UsageSync = caddy.Duration(time.Minute)
			h.logger = zap.NewNop()
			if err := h.provisionUsage(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _, _ = usageSyncs.Delete(h.usage.id) })
			applyMu.Lock()
			err := h.rebuildClients((&overlay{}).effectiveClients(h.Clients))
			applyMu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(h.closeClients)
			r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
			r.Header.Set("Authorization", "Bearer sk-client-0-0123456789abcdef")
			b.ReportAllocs()
			for b.Loop() {
				if c, ok := h.authorized(r); !ok || c == nil {
					b.Fatal("refused")
				}
			}
		})
	}
}
