package iflow

import (
	"regexp"
	"strings"
	"testing"
)

// The expected signatures were computed independently of this package with
// Python's hmac module:
//
//	python3 -c 'import hmac,hashlib,sys; k,s,t=sys.argv[1:]; print(hmac.new(k.encode(), f"iFlow-Cli:{s}:{t}".encode(), hashlib.sha256).hexdigest())' KEY SESSION TS
func TestSign(t *testing.T) {
	tests := []struct {
		name      string
		apiKey    string
		sessionID string
		ts        int64
		want      string
	}{
		{"typical", "sk-test", "session-0f8fad5b-d9cb-469f-a165-70867728950e", 1700000000000,
			"7b463d8fecce8f2d79df928dee97a7eadfed428552a5db3a758a995139b1f5db"},
		{"iflow-shaped key", "sk-0123456789abcdef0123456789abcdef", "session-123e4567-e89b-42d3-a456-426614174000", 1767225600123,
			"18a1f7310042b405ed0597a35342084bdbd308adc0b542a11f507c087526ef1d"},
		{"empty key, zero time", "", "session-00000000-0000-4000-8000-000000000000", 0,
			"d9d029e674a6e75bd2494d0cae815ed615ee13ea445ebd8e7c9f93874aeaa0d8"},
		{"negative time", "k", "s", -1,
			"bd2b57e8b8e03307102e320f1ed26823524d515726ecdddd50e9df850ba034ac"},
		{"utf-8 key", "密钥", "session-x", 42,
			"9cc4f6e009633453320754e0563cb1203dfdc82aa8cf20c1055628e409f5df10"},
		// key longer than the SHA-256 block, message longer than the
		// 128-byte stack buffer, largest int64
		{"long key and session", "sk-" + strings.Repeat("a", 97), "session-" + strings.Repeat("b", 192), 9223372036854775807,
			"bf796fbd843148a29e98943e2159fee82cbb592cb6b15d86f24e57ac1246caf4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sign(tt.apiKey, tt.sessionID, tt.ts); got != tt.want {
				t.Errorf("Sign(%q, %q, %d) = %s, want %s", tt.apiKey, tt.sessionID, tt.ts, got, tt.want)
			}
		})
	}
}

var sessionIDPattern = regexp.MustCompile(`^session-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewSessionID(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		id := NewSessionID()
		if !sessionIDPattern.MatchString(id) {
			t.Fatalf("NewSessionID() = %q, want session-<lowercase uuid v4>", id)
		}
		if seen[id] {
			t.Fatalf("NewSessionID() repeated %q", id)
		}
		seen[id] = true
	}
}

func BenchmarkSign(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Sign("sk-0123456789abcdef0123456789abcdef", "session-123e4567-e89b-42d3-a456-426614174000", 1767225600123)
	}
}
