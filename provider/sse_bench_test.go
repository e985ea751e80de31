package provider

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// sseEvents is a 16-event stream of chat chunks, as an upstream sends it.
func sseEvents() []byte {
	var b bytes.Buffer
	for i := range 16 {
		fmt.Fprintf(&b, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"glm-4.6",`+
			`"choices":[{"index":0,"delta":{"content":"piece %d of the answer "},"finish_reason":null}]}`+"\n\n", i)
	}
	return b.Bytes()
}

// endless repeats a stream forever.
type endless struct {
	data []byte
	off  int
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.data[e.off:])
	e.off = (e.off + n) % len(e.data)
	return n, nil
}

// BenchmarkSSERelay measures SSEReader.Next: per event once a reader is
// warm ("event", which must not allocate), and per 16-event stream from
// NewSSEReader to Release ("stream").
func BenchmarkSSERelay(b *testing.B) {
	events := sseEvents()
	b.Run("event", func(b *testing.B) {
		s := NewSSEReader(&endless{data: events})
		defer s.Release()
		if _, err := s.Next(); err != nil { // warm up
			b.Fatal(err)
		}
		b.SetBytes(int64(len(events) / 16))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Next(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stream", func(b *testing.B) {
		r := bytes.NewReader(events)
		b.SetBytes(int64(len(events)))
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(events)
			s := NewSSEReader(r)
			n := 0
			for {
				if _, err := s.Next(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
				n++
			}
			s.Release()
			if n != 16 {
				b.Fatalf("read %d events, want 16", n)
			}
		}
	})
}
