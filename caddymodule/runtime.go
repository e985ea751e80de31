package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// runtimeKey is where the admin API's changes to the credentials live in
// Caddy's storage; every config load applies them on top of the config.
var runtimeKey = path.Join(storagePrefix, "runtime.json")

// runtimeLock guards runtimeKey across the instances sharing the storage.
const runtimeLock = "proxycast-runtime"

// overlay is the admin API's changes to the configured credentials and
// named clients.
type overlay struct {
	Version   int                         `json:"version"`
	Providers map[string]*providerOverlay `json:"providers,omitempty"`
	Clients   *clientsOverlay             `json:"clients,omitempty"`

	// stored fingerprints the stored form this overlay was read as or
	// written to; zero when nothing is stored.
	stored [sha256.Size]byte
}

// providerOverlay is the changes to one provider's credentials. Changes
// to a credential of the config carry the hash of the config's entry at
// the time: when the config itself changes the credential, the config
// wins.
type providerOverlay struct {
	// Added are the credentials added at run time.
	Added []Credential `json:"added,omitempty"`
	// Changed are changes to credentials of the config, by id.
	Changed map[string]configChange `json:"changed,omitempty"`
	// Deleted are credentials of the config deleted at run time: id to
	// the hash of the config's entry.
	Deleted map[string]string `json:"deleted,omitempty"`
}

// configChange is a runtime change to a credential of the config.
type configChange struct {
	ConfigHash string `json:"config_hash"`
	credentialPatch
}

// credentialPatch is what PATCH may change.
type credentialPatch struct {
	Disabled *bool     `json:"disabled,omitempty"`
	Priority *int      `json:"priority,omitempty"`
	ProxyURL *string   `json:"proxy_url,omitempty"`
	Cookies  *string   `json:"cookies,omitempty"`
	Models   *[]string `json:"models,omitempty"`
}

func (p credentialPatch) apply(c Credential) Credential {
	c.Disabled = patched(p.Disabled, c.Disabled)
	c.Priority = patched(p.Priority, c.Priority)
	c.ProxyURL = patched(p.ProxyURL, c.ProxyURL)
	c.Cookies = patched(p.Cookies, c.Cookies)
	c.Models = patched(p.Models, c.Models)
	return c
}

// merge is p with q's changes on top.
func (p credentialPatch) merge(q credentialPatch) credentialPatch {
	p.Disabled = later(p.Disabled, q.Disabled)
	p.Priority = later(p.Priority, q.Priority)
	p.ProxyURL = later(p.ProxyURL, q.ProxyURL)
	p.Cookies = later(p.Cookies, q.Cookies)
	p.Models = later(p.Models, q.Models)
	return p
}

// patched is a field as a patch leaves it: its new value if the patch
// sets it (p), else the old one.
func patched[T any](p *T, old T) T {
	if p != nil {
		return *p
	}
	return old
}

// later is a field of two patches in turn: the second's, if it sets it.
func later[T any](p, q *T) *T {
	if q != nil {
		return q
	}
	return p
}

// Sources of a credential, as the admin API shows them.
const (
	sourceConfig  = "config"
	sourceRuntime = "runtime"
)

// effectiveCredential is a credential as it is in force, and where it
// comes from.
type effectiveCredential struct {
	Credential
	source string
	// asConfigured is the config's own version of a config credential
	// that a runtime change altered, to fall back on if the change
	// cannot be applied (an {env.X} it uses has gone, say).
	asConfigured *Credential
	// changeSetAside says why the runtime change to this config
	// credential is not in force, when it could not be applied; leftOut
	// why this runtime credential is not.
	changeSetAside, leftOut string
}

// configHash fingerprints a credential of the config as written.
func configHash(c Credential) string {
	raw, _ := json.Marshal(c)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:12])
}

// effective merges the config's credentials of a provider with the
// overlay's changes.
func (o *overlay) effective(prov string, config []Credential) []effectiveCredential {
	po := o.provider(prov, false)
	var out []effectiveCredential
	for _, c := range config {
		if po != nil {
			if h, ok := po.Deleted[c.ID]; ok && h == configHash(c) {
				continue
			}
			if ch, ok := po.Changed[c.ID]; ok && ch.ConfigHash == configHash(c) {
				orig := c
				out = append(out, effectiveCredential{Credential: ch.apply(c), source: sourceConfig, asConfigured: &orig})
				continue
			}
		}
		out = append(out, effectiveCredential{Credential: c, source: sourceConfig})
	}
	if po != nil {
		for _, c := range po.Added {
			if !slices.ContainsFunc(out, func(e effectiveCredential) bool { return e.ID == c.ID }) {
				out = append(out, effectiveCredential{Credential: c, source: sourceRuntime})
			}
		}
	}
	return out
}

func (o *overlay) provider(prov string, create bool) *providerOverlay {
	if po, ok := o.Providers[prov]; ok || !create {
		return po
	}
	if o.Providers == nil {
		o.Providers = map[string]*providerOverlay{}
	}
	po := &providerOverlay{}
	o.Providers[prov] = po
	return po
}

// loadOverlay reads the overlay; a missing one is empty. An unreadable one
// is an error: it is neither used nor overwritten.
func loadOverlay(ctx context.Context, storage certmagic.Storage) (*overlay, error) {
	raw, err := storage.Load(ctx, runtimeKey)
	if errors.Is(err, fs.ErrNotExist) {
		return &overlay{Version: 1}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", runtimeKey, err)
	}
	o := overlay{stored: sha256.Sum256(raw)}
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, fmt.Errorf("%s in storage is not valid (%v); fix or remove it", runtimeKey, err)
	}
	if o.Version != 1 {
		return nil, fmt.Errorf("%s has version %d, which this build does not know", runtimeKey, o.Version)
	}
	return &o, nil
}

func saveOverlay(ctx context.Context, storage certmagic.Storage, o *overlay) error {
	raw, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	if err := storage.Store(ctx, runtimeKey, raw); err != nil {
		return err
	}
	o.stored = sha256.Sum256(raw)
	return nil
}

// DefaultRuntimeSync is how often a handler looks for runtime changes
// stored by the other instances sharing its storage.
const DefaultRuntimeSync = 30 * time.Second

// minRuntimeSync keeps a mistyped interval (JSON durations are
// nanoseconds) from turning the sync into a busy loop on the storage.
const minRuntimeSync = 100 * time.Millisecond

// runtimeState is what a handler knows of the runtime changes in storage.
type runtimeState struct {
	// applied fingerprints the stored changes in force, and applies
	// counts the rebuilds from stored changes; both are guarded by
	// applyMu.
	applied [sha256.Size]byte
	applies uint64

	// The sync's lifetime: ctx ends when Caddy unloads the config, stop
	// and done end the goroutine. Nil when runtime_sync is off.
	ctx        context.Context
	stop, done chan struct{}
}

// appliedPart notes that part of a stored change (one provider's
// credentials, or the clients) is now in force, the change that turned
// the stored overlay from before into stored: the whole is in force only
// if what was stored before was; if not, the next sync applies all of it.
// The caller holds applyMu.
func (rt *runtimeState) appliedPart(before, stored [sha256.Size]byte) {
	if rt.applied == before {
		rt.applied = stored
	}
	rt.applies++
}

// syncRuntime applies, every interval until Cleanup, the runtime changes
// that another instance sharing the storage has stored. It logs a failure
// to read them once, not on every tick.
func (h *Handler) syncRuntime(every time.Duration) {
	defer close(h.runtime.done)
	t := time.NewTicker(every)
	defer t.Stop()
	failing := ""
	for {
		select {
		case <-h.runtime.stop:
			return
		case <-t.C:
		}
		err := h.syncOnce()
		switch {
		case err != nil && err.Error() != failing:
			failing = err.Error()
			h.logger.Error("reading runtime credential changes from storage", zap.Error(err))
		case err == nil && failing != "":
			failing = ""
			h.logger.Info("runtime credential changes in storage are readable again")
		}
	}
}

// syncOnce applies the stored runtime changes if they are not the ones in
// force. The storage is read without applyMu, so that a slow storage holds
// up no reload or admin call; if the credentials were rebuilt meanwhile
// (say by this instance's admin API), what was read may be older than what
// is in force, and it is dropped until the next tick.
func (h *Handler) syncOnce() error {
	rt := h.runtime
	applyMu.Lock()
	seen := rt.applies
	applyMu.Unlock()

	ctx, cancel := context.WithTimeout(rt.ctx, 30*time.Second)
	defer cancel()
	ov, err := loadOverlay(ctx, h.storage)
	if err != nil {
		if rt.ctx.Err() != nil {
			return nil // the config is being unloaded
		}
		return err
	}

	applyMu.Lock()
	defer applyMu.Unlock()
	if rt.applies != seen || ov.stored == rt.applied {
		return nil
	}
	for _, name := range sortedKeys(h.providers) {
		if err := h.rebuild(ctx, h.providers[name], ov.effective(name, h.CredentialPool[name]), false); err != nil {
			h.logger.Error("applying runtime credential changes from storage", zap.String("provider", name), zap.Error(err))
		}
	}
	if err := h.rebuildClients(h.clientsFor(ov)); err != nil {
		h.logger.Error("applying runtime client changes from storage", zap.Error(err))
	}
	rt.applied = ov.stored
	rt.applies++
	h.logger.Info("applied runtime credential changes from storage")
	return nil
}
