package caddymodule

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/provider"
)

// modelsRetry is how soon a failed fetch of a model list is tried again.
const modelsRetry = time.Minute

// refreshModels fetches an instance's model list from its upstream, at
// once and then every interval, until the config ends. A failed fetch
// keeps the list last fetched, is logged once until a fetch works again,
// and is tried again sooner; no request waits for it.
func (h *Handler) refreshModels(ctx context.Context, ps *providerState, src provider.ModelSource) {
	failing := ""
	for {
		wait := src.ModelsRefresh()
		if err := h.fetchModels(ctx, ps, src); err != nil {
			if ctx.Err() != nil {
				return
			}
			if err.Error() != failing {
				failing = err.Error()
				h.logger.Warn("fetching the model list failed; the last one stays in use",
					zap.String("provider", ps.name), zap.Error(err))
			}
			wait = min(wait, modelsRetry)
		} else if failing != "" {
			failing = ""
			h.logger.Info("the model list is fetched again", zap.String("provider", ps.name))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// fetchModels fetches the model list once, with a credential the pool
// would pick.
func (h *Handler) fetchModels(ctx context.Context, ps *providerState, src provider.ModelSource) error {
	entry, err := ps.pool().Pick("", "", nil)
	if err != nil {
		return err
	}
	key, err := entry.Value.keys.APIKey(ctx)
	if err != nil {
		return err
	}
	callCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ids, err := src.FetchModels(callCtx, &provider.Call{APIKey: key, Transport: entry.Value.client.Transport})
	if err != nil {
		return err
	}
	slices.Sort(ids)
	ps.instance.models.Store(&ids)
	return nil
}

// instanceModels is an instance's model list: its fixed models and those
// fetched from its upstream, without those no credential of it serves.
func (ps *providerState) instanceModels() []string {
	out := slices.Clone(ps.provider.Models())
	if fetched := ps.instance.models.Load(); fetched != nil {
		for _, m := range *fetched {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	b := ps.build.Load()
	if b == nil {
		return out
	}
	entries := b.pool.Entries()
	if len(entries) == 0 {
		return out // without credentials (yet), the list is the upstream's
	}
	return slices.DeleteFunc(out, func(m string) bool {
		for _, e := range entries {
			if e.Serves == nil || e.Serves(m) {
				return false
			}
		}
		return true
	})
}
