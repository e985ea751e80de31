package credpool

import (
	"strings"
	"testing"
	"time"
)

// TestRenewalSpacing: whatever lifetime the upstream gives its keys,
// renewals never follow each other without pause. A key that lives less
// than twice RenewBefore is renewed halfway through its life (said once),
// never sooner than minRenewSpacing after the last renewal unless it
// expires first; one that has expired when it arrives is a failure,
// retried with backoff.
func TestRenewalSpacing(t *testing.T) {
	tests := []struct {
		name      string
		life      time.Duration
		lead      time.Duration
		wantNext  time.Duration // after the renewal
		wantShort bool
	}{
		{"1h token, 24h lead", time.Hour, 24 * time.Hour, 30 * time.Minute, true},
		{"just over the lead", 24*time.Hour + time.Second, 24 * time.Hour, 12*time.Hour + 500*time.Millisecond, true},
		{"48h token, 24h lead", 48 * time.Hour, 24 * time.Hour, 24 * time.Hour, false},
		{"90s key", 90 * time.Second, time.Hour, minRenewSpacing, true},
		{"key shorter than the spacing", 5 * time.Second, time.Hour, 5 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRNFixture(0) // nothing stored: the first key is fetched at once
			f.renewer.validFor = tt.life
			r := NewRenewing(RenewingConfig{
				ID: "a", Renewer: f.renewer, Store: f.store, StateKey: rnKey,
				RenewBefore: tt.lead, OnEvent: f.events.add, Now: f.clock.Now,
			})
			r.Start(t.Context())
			defer r.Stop()
			rnEventually(t, "the first key and the loop asleep", func() bool {
				s := r.Status()
				return s.State == StateActive && s.NextRenewal.After(rnEpoch)
			})
			if got := r.Status().NextRenewal.Sub(rnEpoch); got != tt.wantNext {
				t.Fatalf("next renewal %v after the first, want %v", got, tt.wantNext)
			}
			if n := f.renewer.count(); n != 1 {
				t.Fatalf("%d renewals, want 1", n)
			}

			// Once due, the loop renews once more, and spaces the next one
			// the same way; the short life is reported only once.
			f.clock.Add(tt.wantNext)
			r.trigger()
			rnEventually(t, "the second renewal", func() bool { return f.renewer.count() == 2 })
			rnEventually(t, "the loop asleep again", func() bool {
				return r.Status().NextRenewal.Equal(rnEpoch.Add(2 * tt.wantNext))
			})
			want := 0
			if tt.wantShort {
				want = 1
			}
			if n := f.events.count("short_lifetime"); n != want {
				t.Errorf("%d short_lifetime events, want %d", n, want)
			}
		})
	}
}

// TestRenewedKeyExpiredAlready: a renewal that brings a key which has
// expired already is a failure: its state is stored (it may hold a
// rotated refresh token), the key is not used, and the loop retries with
// backoff instead of at once.
func TestRenewedKeyExpiredAlready(t *testing.T) {
	f := newRNFixture(0)
	f.renewer.validFor = -time.Minute
	r := f.start(t, nil)
	rnEventually(t, "the failed first renewal", func() bool { return f.events.count("renew_failed") > 0 })
	rnEventually(t, "the loop asleep", func() bool { return r.Status().NextRenewal.After(rnEpoch) })
	s := r.Status()
	if !strings.Contains(s.LastError, "expired already") {
		t.Errorf("last error %q does not say the key expired already", s.LastError)
	}
	if got := s.NextRenewal.Sub(rnEpoch); got != minRetry {
		t.Errorf("retried after %v, want %v", got, minRetry)
	}
	if n := f.renewer.count(); n != 1 {
		t.Errorf("%d renewals, want 1", n)
	}
	if f.store.get(rnKey) == nil {
		t.Error("the renewed state was not stored")
	}
	if _, err := r.APIKey(t.Context()); err == nil {
		t.Error("APIKey handed out an expired key")
	}
}
