// Package credpool decides which account of a provider serves the next
// request. It knows credentials by id and whether they may be used; what a
// credential holds (keys, tokens, proxies) is the caller's Value, and how
// requests are sent is none of its business.
package credpool

import (
	"errors"
	"sync/atomic"
)

// ErrNoCredential is returned by Pick when no credential may be used.
var ErrNoCredential = errors.New("no usable credential")

// Entry is one credential in a pool.
type Entry[T any] struct {
	// ID names the credential in logs, metrics, headers and the admin API.
	ID string
	// Disabled credentials are kept in the pool but never picked.
	Disabled bool
	// Usable, if set, is asked at every pick; a credential that is not
	// usable right now (it needs a new login, say) is passed over.
	Usable func() bool
	// Value is what the caller needs to use the credential.
	Value T
}

// Pool hands out the credentials of one provider in round robin. It is
// safe for concurrent use.
type Pool[T any] struct {
	all    []*Entry[T]
	usable []*Entry[T]
	next   atomic.Uint64
}

// New returns a pool of entries, in the given order.
func New[T any](entries []*Entry[T]) *Pool[T] {
	p := &Pool[T]{all: entries}
	for _, e := range entries {
		if !e.Disabled {
			p.usable = append(p.usable, e)
		}
	}
	return p
}

// Pick returns the next usable credential, or ErrNoCredential.
func (p *Pool[T]) Pick() (*Entry[T], error) {
	n := uint64(len(p.usable))
	if n == 0 {
		return nil, ErrNoCredential
	}
	start := p.next.Add(1) - 1
	for i := range n {
		e := p.usable[(start+i)%n]
		if e.Usable == nil || e.Usable() {
			return e, nil
		}
	}
	return nil, ErrNoCredential
}

// Entries returns every credential of the pool, disabled ones included.
// The slice must not be modified.
func (p *Pool[T]) Entries() []*Entry[T] { return p.all }
