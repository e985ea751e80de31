package caddymodule

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/provider"
)

// TestUsageSyncerInterval: the config loaded last sets the interval of
// the syncer it shares with the one before; a save that would change
// nothing writes nothing.
func TestUsageSyncerInterval(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	load := func(every time.Duration) *Handler {
		h := &Handler{storage: storage, UsageSync: caddy.Duration(every), logger: zap.NewNop()}
		if err := h.provisionUsage(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = usageSyncs.Delete(h.usage.id) })
		return h
	}
	slow, fast := load(time.Hour), load(20*time.Millisecond)
	if slow.usage != fast.usage {
		t.Fatal("two configs on one storage have two syncers")
	}
	m, held := fast.heldMeter(clientMeters, "interval-test", sectionClients)
	t.Cleanup(func() { _, _ = clientMeters.Delete(held) })
	m.Record("m", provider.Usage{Prompt: 1}, false, time.Time{})

	s, ctx := fast.usage, context.Background()
	key := s.key(s.instance)
	read := func() []byte {
		raw, _ := storage.Load(ctx, key)
		return raw
	}
	// Within the hour of the first config's interval only the second's
	// can have stored it.
	for deadline := time.Now().Add(10 * time.Second); !bytes.Contains(read(), []byte(`"interval-test"`)); {
		if time.Now().After(deadline) {
			t.Fatal("the usage was not stored at the second config's interval")
		}
		time.Sleep(10 * time.Millisecond)
	}

	before := read()
	s.save(ctx)
	if after := read(); !bytes.Equal(before, after) {
		t.Errorf("a save with nothing changed wrote the file again:\n%s\n%s", before, after)
	}
	m.Record("m", provider.Usage{Prompt: 1}, false, time.Time{})
	s.save(ctx)
	if bytes.Equal(before, read()) {
		t.Error("a save after a change wrote nothing")
	}
}
