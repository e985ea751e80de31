package credpool

import (
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

// TestProxyFailureRestsLastCredential: a failure of a credential's proxy
// rests it for the proxy cooldown, even when it is the last usable one
// (it would fail the same way at once), with the proxy named as the
// reason.
func TestProxyFailureRestsLastCredential(t *testing.T) {
	clk := newClock()
	p := New([]*Entry[int]{{ID: "a"}}, Options{Now: clk.now})
	a := p.Entries()[0]
	msg := "the credential's proxy failed: proxyconnect tcp: connection refused"
	if d := p.Failed(a, "m", Failure{Kind: provider.KindProxy, Message: msg}); d != DefaultProxyCooldown {
		t.Fatalf("rest %v, want %v", d, DefaultProxyCooldown)
	}
	s := a.Health.Status(clk.now())
	if s.CoolingUntil.IsZero() || !strings.Contains(s.CoolingReason, "proxy") {
		t.Errorf("status %+v: want a rest whose reason names the proxy", s)
	}
	if _, err := p.Pick("m", "", nil); err == nil {
		t.Error("the resting credential was picked")
	}
	clk.advance(DefaultProxyCooldown)
	if e, err := p.Pick("m", "", nil); err != nil || e != a {
		t.Errorf("after the rest: %v, %v", e, err)
	}
}
