package clients

import (
	"maps"
	"sync"
	"time"

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
	// The tokens of the budget's current window, from window on.
	window       time.Time
	windowTokens int64
}

// NewMeter is a meter with nothing counted.
func NewMeter() *Meter { return &Meter{byModel: map[string]*ModelUsage{}} }

// Record counts one answered request for model; reported is false when
// the upstream said nothing of what it cost. Its tokens go to the budget
// window that begins at window (zero: the client has no budget).
func (m *Meter) Record(model string, u provider.Usage, reported bool, window time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if reported && !window.IsZero() {
		if !m.window.Equal(window) {
			m.window, m.windowTokens = window, 0
		}
		m.windowTokens += u.Prompt + u.Completion
	}
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

// Spent is the tokens counted in the budget window that begins at window.
func (m *Meter) Spent(window time.Time) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.window.Equal(window) {
		return m.windowTokens
	}
	return 0
}

// Saved is a meter's counts as they are stored.
type Saved struct {
	Usage        map[string]ModelUsage `json:"usage"`
	Window       time.Time             `json:"window,omitzero"`
	WindowTokens int64                 `json:"window_tokens,omitempty"`
}

// Save is the meter's counts, to store.
func (m *Meter) Save() Saved {
	snap := m.Snapshot()
	m.mu.Lock()
	defer m.mu.Unlock()
	return Saved{Usage: snap, Window: m.window, WindowTokens: m.windowTokens}
}

// Restore adds what was stored to the meter's counts.
func (m *Meter) Restore(s Saved) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for model, u := range s.Usage {
		mu := m.byModel[model]
		if mu == nil {
			mu = &ModelUsage{}
			m.byModel[model] = mu
		}
		mu.add(u)
	}
	if !s.Window.IsZero() && (m.window.IsZero() || s.Window.Equal(m.window)) {
		m.window = s.Window
		m.windowTokens += s.WindowTokens
	}
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
		t.add(u)
	}
	return t
}

func (u *ModelUsage) add(v ModelUsage) {
	u.Requests += v.Requests
	u.Prompt += v.Prompt
	u.Completion += v.Completion
	u.Cached += v.Cached
	u.Reasoning += v.Reasoning
	u.Unreported += v.Unreported
}
