package provider

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

// SSEReader reads the data of server-sent events, as OpenAI-compatible
// services stream chat completions.
type SSEReader struct {
	r    *bufio.Reader
	data []byte
	line []byte
	// Done reports whether the stream ended with "data: [DONE]".
	Done bool
}

// readers are reused across streams: a stream's buffer is its largest
// allocation. 4 KiB holds a typical chunk and lets the relay see several
// events that arrived together (2 KiB measured more flushes per stream);
// longer lines are assembled in SSEReader.line.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// NewSSEReader reads events from r. Release it when the stream is done.
func NewSSEReader(r io.Reader) *SSEReader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return &SSEReader{r: br}
}

// Release returns the reader's buffer for reuse; the reader must not be
// used afterwards.
func (s *SSEReader) Release() {
	if s.r != nil {
		s.r.Reset(nil)
		readers.Put(s.r)
		s.r = nil
	}
}

// EventBuffered reports whether a whole next event has already arrived,
// so that a relay can pass events that came together on in one write
// instead of flushing each.
func (s *SSEReader) EventBuffered() bool {
	if s.r == nil {
		return false
	}
	b, _ := s.r.Peek(s.r.Buffered())
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\r\n\r\n"))
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
	s.data = s.data[:0]
	have := false
	for {
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && have {
				return s.finish()
			}
			return nil, err
		}
		if len(line) == 0 {
			if have {
				return s.finish()
			}
			continue
		}
		value, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // comment, event:, id:, retry:
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if have {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, value...)
		have = true
	}
}

func (s *SSEReader) finish() ([]byte, error) {
	if bytes.Equal(bytes.TrimSpace(s.data), doneData) {
		s.Done = true
		return nil, io.EOF
	}
	if s.data == nil {
		return []byte{}, nil
	}
	return s.data, nil
}

// readLine returns one line without its line ending.
func (s *SSEReader) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.line = append(s.line[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = s.r.ReadSlice('\n')
			s.line = append(s.line, line...)
		}
		line = s.line
	}
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
