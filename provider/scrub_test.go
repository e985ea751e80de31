package provider

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	const key = "sk-Secret0123456789abcdef"
	const cookie = "bx/Auth+value=="
	tests := []struct {
		name, in string
		secrets  []string
		want     string // what the output must contain
	}{
		{"exact", "Invalid apiKey " + key, []string{key}, "Invalid apiKey [redacted]"},
		{"upper-cased", "INVALID APIKEY " + strings.ToUpper(key), []string{key}, "INVALID APIKEY [redacted]"},
		{"in a redirect path", "https://x.example/keys/" + url.PathEscape(cookie) + "/info", []string{cookie}, "/keys/[redacted]/info"},
		{"query-escaped", "token=" + url.QueryEscape(cookie), []string{cookie}, "token=[redacted]"},
		{"JSON-escaped", `{"msg":"` + strings.ReplaceAll("a\"b"+key, `"`, `\"`) + `"}`, []string{"a\"b" + key}, `{"msg":"[redacted]"}`},
		{"base64", "auth " + base64.StdEncoding.EncodeToString([]byte(key)), []string{key}, "auth [redacted]"},
		{"another key", "your other key sk-proj-abcdefghijklmnop1234 is fine", nil, "your other key [redacted] is fine"},
		{"bearer token", "sent Authorization: Bearer abc.def.ghi-123456", nil, "Authorization: [redacted]"},
		{"jwt", "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig", nil, "token [redacted]"},
		{"control characters", "line1\nline2\r\x1b[31m", nil, "line1 line2  [31m"},
		{"short secrets ignored", "the cat sat", []string{"at"}, "the cat sat"},
		{"ordinary words kept", "risk-assessment: ask politely", nil, "risk-assessment: ask politely"},
	}
	for _, tt := range tests {
		got := Scrub(tt.in, tt.secrets...)
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s: Scrub(%q) = %q, want it to contain %q", tt.name, tt.in, got, tt.want)
		}
		for _, s := range tt.secrets {
			if len(s) >= minSecret && strings.Contains(strings.ToLower(got), strings.ToLower(s)) {
				t.Errorf("%s: the secret is still in %q", tt.name, got)
			}
		}
	}
}

// TestScrubCutsAfterRedacting: a long text is cut only after every secret
// is out, so no part of one is left at the cut, and the cut keeps UTF-8
// whole.
func TestScrubCutsAfterRedacting(t *testing.T) {
	key := "sk-" + strings.Repeat("k", 40)
	in := strings.Repeat("é", MaxShownText/2-5) + key + strings.Repeat("x", 1000)
	got := Scrub(in, key)
	if strings.Contains(got, "kkkk") {
		t.Errorf("part of the key survived the cut: %q", got)
	}
	if len(got) > MaxShownText+len("…") {
		t.Errorf("%d bytes, want at most %d", len(got), MaxShownText+len("…"))
	}
	if !strings.HasSuffix(got, "…") || !strings.Contains(got, Redacted) {
		t.Errorf("got %q", got)
	}
	if strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("the cut broke a character: %q", got)
	}
}

func FuzzScrub(f *testing.F) {
	f.Add("Invalid key SK-ABCDEF0123456789", "sk-abcdef0123456789")
	f.Add("https://h/p/a%2Fb", "a/b")
	f.Fuzz(func(t *testing.T, text, secret string) {
		got := Scrub(text, secret)
		if len(got) > MaxShownText+len("…") {
			t.Fatalf("%d bytes", len(got))
		}
		// The output is never longer than the text it came from, apart
		// from the markers it adds, and a secret of letters and digits
		// never survives in any case.
		plain := len(secret) >= minSecret && strings.Trim(secret, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == ""
		if plain && len(got) < MaxShownText && strings.Contains(strings.ToLower(got), strings.ToLower(secret)) &&
			!strings.Contains(strings.ToLower(Redacted), strings.ToLower(secret)) {
			t.Fatalf("secret %q survived in %q", secret, got)
		}
	})
}
