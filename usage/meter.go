package usage

import (
	"maps"
	"sync"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// ModelUsage is what the requests for one model cost.
type ModelUsage struct {
	Requests   int64 `json:"requests"`
	Prompt     int64 `json:"prompt"`
	Completion int64 `json:"completion"`
	Cached     int64 `json:"cached"`
	Reasoning  int64 `json:"reasoning"`
	// Estimated counts the answers whose upstream reported no usage, and
	// EstimatedTokens the prompt and completion tokens estimated for
	// them, which Prompt and Completion include.
	Estimated       int64 `json:"estimated,omitempty"`
	EstimatedTokens int64 `json:"estimated_tokens,omitempty"`
}

// A Meter counts usage by model, and the tokens of one window (a token
// budget's period). It is safe for concurrent use.
type Meter struct {
	mu      sync.Mutex
	byModel map[string]*ModelUsage
	// The tokens of the current window, from window on.
	window       time.Time
	windowTokens int64
}

// NewMeter is a meter with nothing counted.
func NewMeter() *Meter { return &Meter{byModel: map[string]*ModelUsage{}} }

// Record counts one answered request for model; estimated is whether u
// is an estimate rather than the upstream's report. Its prompt and
// completion tokens go to the window that begins at window (zero: no
// window is kept).
func (m *Meter) Record(model string, u provider.Usage, estimated bool, window time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !window.IsZero() {
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
	mu.Prompt += u.Prompt
	mu.Completion += u.Completion
	mu.Cached += u.Cached
	mu.Reasoning += u.Reasoning
	if estimated {
		mu.Estimated++
		mu.EstimatedTokens += u.Prompt + u.Completion
	}
}

// Spent is the tokens counted in the window that begins at window.
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
	m.mu.Lock()
	defer m.mu.Unlock()
	return Saved{Usage: m.snapshot(), Window: m.window, WindowTokens: m.windowTokens}
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
		mu.Add(u)
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
	return m.snapshot()
}

func (m *Meter) snapshot() map[string]ModelUsage {
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
		t.Add(u)
	}
	return t
}

// Add adds v's counts to u's.
func (u *ModelUsage) Add(v ModelUsage) {
	u.Requests += v.Requests
	u.Prompt += v.Prompt
	u.Completion += v.Completion
	u.Cached += v.Cached
	u.Reasoning += v.Reasoning
	u.Estimated += v.Estimated
	u.EstimatedTokens += v.EstimatedTokens
}
