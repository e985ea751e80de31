package clients

import (
	"maps"
	"sync"

	"github.com/proxycast/caddy-proxycast/provider"
)

// ModelUsage is what a client's requests for one model cost.
type ModelUsage struct {
	Requests   int64 `json:"requests"`
	Prompt     int64 `json:"prompt"`
	Completion int64 `json:"completion"`
	Cached     int64 `json:"cached"`
	Reasoning  int64 `json:"reasoning"`
	// Unreported counts the answers whose upstream reported no usage:
	// their tokens are not in the counts.
	Unreported int64 `json:"unreported,omitempty"`
}

// A Meter counts one client's usage by model. It is safe for concurrent
// use.
type Meter struct {
	mu      sync.Mutex
	byModel map[string]*ModelUsage
}

// NewMeter is a meter with nothing counted.
func NewMeter() *Meter { return &Meter{byModel: map[string]*ModelUsage{}} }

// Record counts one answered request for model; reported is false when
// the upstream said nothing of what it cost.
func (m *Meter) Record(model string, u provider.Usage, reported bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mu := m.byModel[model]
	if mu == nil {
		mu = &ModelUsage{}
		m.byModel[model] = mu
	}
	mu.Requests++
	if !reported {
		mu.Unreported++
		return
	}
	mu.Prompt += u.Prompt
	mu.Completion += u.Completion
	mu.Cached += u.Cached
	mu.Reasoning += u.Reasoning
}

// Snapshot is a copy of the counts by model.
func (m *Meter) Snapshot() map[string]ModelUsage {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]ModelUsage, len(m.byModel))
	for k, v := range m.byModel {
		out[k] = *v
	}
	return out
}

// Total sums the counts over the models.
func Total(byModel map[string]ModelUsage) ModelUsage {
	var t ModelUsage
	for u := range maps.Values(byModel) {
		t.Requests += u.Requests
		t.Prompt += u.Prompt
		t.Completion += u.Completion
		t.Cached += u.Cached
		t.Reasoning += u.Reasoning
		t.Unreported += u.Unreported
	}
	return t
}
