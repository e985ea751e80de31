package chatstream

import (
	"errors"
	"io"

	"github.com/proxycast/caddy-proxycast/provider"
)

// An Emitter holds a translator's events: written one after another into
// one buffer, which is reused once they have all been read (an event
// need only stay valid until the next call of Next).
type Emitter struct {
	queue [][]byte // events ready, in buf, from head on
	head  int
	buf   []byte
}

// Append begins an event with s: it returns where the event starts in
// the buffer, and the buffer to append the rest to and hand to Emit.
func (e *Emitter) Append(s string) (int, []byte) { return len(e.buf), append(e.buf, s...) }

// Emit queues the event that b holds from start.
func (e *Emitter) Emit(start int, b []byte) {
	e.buf = b
	e.queue = append(e.queue, b[start:len(b):len(b)])
}

// EmitStatic queues an event that lives outside the buffer.
func (e *Emitter) EmitStatic(ev []byte) { e.queue = append(e.queue, ev) }

// A Translation turns chat chunks into another format's events, which it
// emits through the Emitter given to Translate.
type Translation interface {
	// Chunk reads one chat.completion.chunk.
	Chunk(data []byte)
	// End is called at the end of the chunks: it emits the last events,
	// or says why the stream may not end here.
	End() error
	// Usage is the last usage the chunks reported.
	Usage() provider.Usage
}

// Translate returns the events t makes of chunks, in order. A failure of
// chunks, or of t.End, ends them; it is returned as it is, for the
// caller's error event. The reader answers EventBuffered when chunks
// does.
func Translate(chunks provider.EventReader, t Translation, e *Emitter) provider.EventReader {
	r := &reader{chunks: chunks, t: t, e: e}
	if b, ok := chunks.(provider.BufferedEvents); ok {
		return bufferedReader{r, b}
	}
	return r
}

type reader struct {
	chunks provider.EventReader
	t      Translation
	e      *Emitter
	ended  bool
}

func (r *reader) Close() error { return r.chunks.Close() }

// Usage is the last usage the chunks read so far reported, for whoever
// counts what a stream cost without reading every chunk again.
func (r *reader) Usage() provider.Usage { return r.t.Usage() }

func (r *reader) Next() ([]byte, error) {
	e := r.e
	for e.head == len(e.queue) {
		if r.ended {
			return nil, io.EOF
		}
		e.buf, e.queue, e.head = e.buf[:0], e.queue[:0], 0
		data, err := r.chunks.Next()
		if errors.Is(err, io.EOF) {
			if err := r.t.End(); err != nil {
				return nil, err
			}
			r.ended = true
			continue
		}
		if err != nil {
			return nil, err
		}
		r.t.Chunk(data)
	}
	ev := e.queue[e.head]
	e.head++
	return ev, nil
}

type bufferedReader struct {
	*reader
	buffered provider.BufferedEvents
}

// EventBuffered reports whether the next event is at hand.
func (b bufferedReader) EventBuffered() bool {
	return b.e.head < len(b.e.queue) || b.ended || b.buffered.EventBuffered()
}
