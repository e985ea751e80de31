package provider

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// SSEReader reads the data of server-sent events, as OpenAI-compatible
// services stream chat completions.
//
// A stream spends nearly all its life waiting for the upstream's next
// event, and thousands may be open at once, so the reader holds its
// buffer only while it has unread input: it waits for input with a
// one-byte read and takes a pooled buffer when the input comes.
type SSEReader struct {
	src  io.Reader
	buf  []byte // pooled; nil while nothing unread is held
	r, w int    // buf[r:w] is unread
	err  error  // the source's error, returned once buf is drained
	one  [1]byte
	data []byte // an event's data when it spans several lines
	line []byte // a line longer than buf, assembled
	// Done reports whether the stream ended with "data: [DONE]".
	Done bool
}

// bufSize holds a typical chunk and lets the relay see several events
// that arrived together (2 KiB measured more flushes per stream); longer
// lines are assembled in SSEReader.line.
const bufSize = 4 << 10

var buffers = sync.Pool{New: func() any { return new([bufSize]byte) }}

// NewSSEReader reads events from r. Release it when the stream is done.
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{src: r}
}

// Release returns the reader's buffer for reuse; the reader must not be
// used afterwards.
func (s *SSEReader) Release() {
	s.drop()
	s.src, s.err = nil, io.ErrClosedPipe
}

func (s *SSEReader) drop() {
	if s.buf != nil {
		buffers.Put((*[bufSize]byte)(s.buf))
		s.buf, s.r, s.w = nil, 0, 0
	}
}

// EventBuffered reports whether a whole next event has already arrived,
// so that a relay can pass events that came together on in one write
// instead of flushing each. Comments and blank lines are no event: after
// them, Next would wait on the network.
func (s *SSEReader) EventBuffered() bool {
	b := s.buf[s.r:s.w]
	data := false
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false
		}
		line := bytes.TrimSuffix(b[:i], []byte("\r"))
		switch {
		case len(line) == 0:
			if data {
				return true
			}
		case bytes.HasPrefix(line, []byte("data:")):
			data = true
		}
		b = b[i+1:]
	}
}

var doneData = []byte("[DONE]")

// Next returns the data of the next event, joined with "\n" where an event
// has several data lines; an event with empty data is an empty, non-nil
// slice. Comments and the other fields are skipped. It returns io.EOF at
// "[DONE]", and from then on, or at the end of the input; the slice is
// valid until the next call.
func (s *SSEReader) Next() ([]byte, error) {
	if s.Done {
		return nil, io.EOF
	}
	// value is the event's data while it is one line; it points into the
	// buffer, so it moves to s.data before anything may refill that.
	var value []byte
	have, joined := false, false
	for {
		if have && !joined && !s.lineBuffered() {
			s.data = append(s.data[:0], value...)
			value, joined = s.data, true
		}
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && have {
				return s.finish(value)
			}
			return nil, err
		}
		if len(line) == 0 {
			if have {
				return s.finish(value)
			}
			continue
		}
		v, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // comment, event:, id:, retry:
		}
		v = bytes.TrimPrefix(v, []byte(" "))
		switch {
		case !have:
			value, have = v, true
		case !joined:
			s.data = append(append(append(s.data[:0], value...), '\n'), v...)
			value, joined = s.data, true
		default:
			s.data = append(append(s.data, '\n'), v...)
			value = s.data
		}
	}
}

func (s *SSEReader) finish(data []byte) ([]byte, error) {
	if bytes.Equal(bytes.TrimSpace(data), doneData) {
		s.Done = true
		return nil, io.EOF
	}
	if data == nil {
		return []byte{}, nil
	}
	return data, nil
}

// lineBuffered reports whether a whole line is unread, so that reading it
// will not refill the buffer.
func (s *SSEReader) lineBuffered() bool {
	return bytes.IndexByte(s.buf[s.r:s.w], '\n') >= 0
}

// readLine returns one line without its line ending. The slice points
// into the buffer (or s.line) and is valid until the next refill.
func (s *SSEReader) readLine() ([]byte, error) {
	long := false
	for {
		if i := bytes.IndexByte(s.buf[s.r:s.w], '\n'); i >= 0 {
			line := s.buf[s.r : s.r+i]
			s.r += i + 1
			if long {
				s.line = append(s.line, line...)
				line = s.line
			}
			return bytes.TrimSuffix(line, []byte("\r")), nil
		}
		if s.err != nil {
			// The input ends inside a line: it counts only at a clean end.
			line := s.buf[s.r:s.w]
			s.r = s.w
			if long {
				s.line = append(s.line, line...)
				line = s.line
			}
			if errors.Is(s.err, io.EOF) && len(line) > 0 {
				return bytes.TrimSuffix(line, []byte("\r")), nil
			}
			return nil, s.err
		}
		if s.r == 0 && s.w == len(s.buf) && s.w > 0 {
			// A line longer than the buffer.
			if !long {
				s.line, long = s.line[:0], true
			}
			s.line = append(s.line, s.buf...)
			s.r, s.w = 0, 0
		}
		s.fill()
	}
}

// fill reads more input. With nothing unread it first gives the buffer
// back and waits on a one-byte read, so that a stream waiting for its
// upstream holds no buffer.
func (s *SSEReader) fill() {
	if s.r == s.w {
		s.drop()
	}
	for range 100 { // as bufio does: a source that keeps returning 0, nil is broken
		var n int
		var err error
		if s.buf == nil {
			if s.src == nil {
				s.err = io.ErrClosedPipe
				return
			}
			n, err = s.src.Read(s.one[:])
			if n > 0 {
				s.buf = buffers.Get().(*[bufSize]byte)[:]
				s.buf[0] = s.one[0]
				s.r, s.w = 0, 1
			}
		} else {
			if s.r > 0 {
				s.w = copy(s.buf, s.buf[s.r:s.w])
				s.r = 0
			}
			n, err = s.src.Read(s.buf[s.w:])
			s.w += n
		}
		if err != nil {
			s.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	s.err = io.ErrNoProgress
}

// SSEBody is an upstream's streamed answer: its events, and the body they
// come from. Providers embed it in their EventReaders.
type SSEBody struct {
	SSE  *SSEReader
	Body io.Closer
}

// NewSSEBody reads the events of body.
func NewSSEBody(body io.ReadCloser) SSEBody { return SSEBody{SSE: NewSSEReader(body), Body: body} }

// Close ends the stream and releases its buffer. It is safe to call twice.
func (s SSEBody) Close() error {
	err := s.Body.Close()
	s.SSE.Release()
	return err
}

// EventBuffered reports whether the next event has arrived already.
func (s SSEBody) EventBuffered() bool { return s.SSE.EventBuffered() }
