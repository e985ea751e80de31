package credpool

import (
	"errors"
	"strings"
	"testing"
	"time"

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

// TestQuotaRest: an account out of balance or quota rests for the quota
// cooldown (the last usable credential too), or for as long as the
// upstream says, but never longer than the cooldown.
func TestQuotaRest(t *testing.T) {
	tests := []struct {
		retry, want time.Duration
	}{
		{0, DefaultQuotaCooldown},
		{40 * time.Second, 40 * time.Second},
		{30 * 24 * time.Hour, DefaultQuotaCooldown},
	}
	for _, tt := range tests {
		clk := newClock()
		p := New([]*Entry[int]{{ID: "a"}}, Options{Now: clk.now})
		a := p.Entries()[0]
		if d := p.Failed(a, "m", Failure{Kind: provider.KindQuota, RetryAfter: tt.retry, Message: "quota"}); d != tt.want {
			t.Errorf("retry %v: rest %v, want %v", tt.retry, d, tt.want)
		}
		if s := a.Health.Status(clk.now()); s.CoolingKind != provider.KindQuota {
			t.Errorf("cooling kind %v", s.CoolingKind)
		}
	}
}

// TestServes: a credential that serves some models only is picked for
// those, and a model none serves is said to be so, not a rest.
func TestServes(t *testing.T) {
	clk := newClock()
	chat := func(m string) bool { return strings.HasPrefix(m, "chat-") }
	p := New([]*Entry[int]{{ID: "a", Serves: chat}, {ID: "b"}, {ID: "c", Serves: chat}}, Options{Now: clk.now})
	if got := picks(t, p, 4, "chat-1", ""); got != "a b c a" {
		t.Errorf("chat-1: %s", got)
	}
	if got := picks(t, p, 3, "reasoner", ""); got != "b b b" {
		t.Errorf("reasoner: %s", got)
	}
	only := New([]*Entry[int]{{ID: "a", Serves: chat}}, Options{Now: clk.now})
	_, err := only.Pick("reasoner", "", nil)
	var u *Unavailable
	if !errors.As(err, &u) || !u.NoneServes || u.Cooling {
		t.Errorf("a model no credential serves: %#v", err)
	}
	empty := New([]*Entry[int]{{ID: "a", Disabled: true}}, Options{Now: clk.now})
	if _, err := empty.Pick("reasoner", "", nil); !errors.As(err, &u) || u.NoneServes {
		t.Errorf("no enabled credential: %#v", err)
	}
}
