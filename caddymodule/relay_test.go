package caddymodule

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// flushRecorder keeps apart what was written and what was flushed.
type flushRecorder struct {
	mu               sync.Mutex
	hdr              http.Header
	pending, flushed bytes.Buffer
}

func (w *flushRecorder) Header() http.Header { return w.hdr }
func (w *flushRecorder) WriteHeader(int)     {}
func (w *flushRecorder) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending.Write(b)
}

func (w *flushRecorder) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.pending.WriteTo(&w.flushed)
	return nil
}

func (w *flushRecorder) Flushed() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushed.String()
}

// sseEvents reads upstream SSE as a provider's stream does.
type sseEvents struct{ *provider.SSEReader }

func (e sseEvents) Close() error { e.Release(); return nil }

// TestRelayFlushesBeforeComment: an event followed by a keep-alive comment
// (no event) is flushed at once, not held until the next real event.
func TestRelayFlushesBeforeComment(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	go func() {
		_, _ = io.WriteString(w, "data: first\n\ndata: second\n\n: keep-alive\n\n")
	}()
	events := sseEvents{provider.NewSSEReader(r)}
	first, end := events.Next()
	rec := &flushRecorder{hdr: http.Header{}}
	go relay(rec, events, first, end, chatFramer{}, 0, nil)
	deadline := time.Now().Add(10 * time.Second) // a held event is never flushed
	for !strings.Contains(rec.Flushed(), "data: second\n\n") {
		if time.Now().After(deadline) {
			t.Fatalf("the second event is not flushed while the upstream waits after a comment; flushed: %q", rec.Flushed())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWriteEventMultiLine: data that spans lines goes out as one data line
// per line, which SSE clients join back; anything else would lose all but
// the first line.
func TestWriteEventMultiLine(t *testing.T) {
	b := appendData(nil, []byte("{\n  \"a\": 1\n}"))
	if want := "data: {\ndata:   \"a\": 1\ndata: }\n\n"; string(b) != want {
		t.Errorf("wrote %q, want %q", b, want)
	}
	b = appendData(b[:0], []byte(`{"a":1}`))
	if want := "data: {\"a\":1}\n\n"; string(b) != want {
		t.Errorf("wrote %q, want %q", b, want)
	}
	// Read back, the event is what was sent.
	s := provider.NewSSEReader(strings.NewReader("data: {\ndata:   \"a\": 1\ndata: }\n\n"))
	defer s.Release()
	if got, err := s.Next(); err != nil || string(got) != "{\n  \"a\": 1\n}" {
		t.Errorf("read back %q, %v", got, err)
	}
}
