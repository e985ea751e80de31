package caddymodule

import (
	"cmp"
	"slices"
	"sync"
)

// live knows the handlers of the configs that are running, for the admin
// API, which is provisioned apart from them and must find them when a
// request comes.
var live liveHandlers

// applyMu orders config loads and runtime changes: a handler reads the
// stored changes and joins live under it, and a change, once stored, is
// put in force in the live handlers under it. So a change made while a
// config loads is either read by the new handler or applied to it.
var applyMu sync.Mutex

type liveHandlers struct {
	mu   sync.Mutex
	seq  uint64
	list map[*Handler]uint64
}

func (l *liveHandlers) add(h *Handler) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.list == nil {
		l.list = map[*Handler]uint64{}
	}
	l.seq++
	l.list[h] = l.seq
}

func (l *liveHandlers) remove(h *Handler) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.list, h)
}

// newestFirst returns the running handlers, the most recently provisioned
// first (during a reload the new config's).
func (l *liveHandlers) newestFirst() []*Handler {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Handler, 0, len(l.list))
	for h := range l.list {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b *Handler) int { return cmp.Compare(l.list[b], l.list[a]) })
	return out
}
