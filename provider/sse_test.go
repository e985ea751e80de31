package provider

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll collects every event until Next fails.
func readAll(t *testing.T, s *SSEReader) ([]string, error) {
	t.Helper()
	var events []string
	for i := 0; i < 1000; i++ {
		data, err := s.Next()
		if err != nil {
			return events, err
		}
		events = append(events, string(data))
	}
	t.Fatal("Next never ended")
	return nil, nil
}

func TestSSEReader(t *testing.T) {
	long := strings.Repeat("x", 10*bufSize) // far beyond the buffer
	exact := strings.Repeat("y", bufSize-6) // "data: " + exact fills the buffer exactly
	tests := []struct {
		name     string
		in       string
		want     []string
		wantDone bool
	}{
		{"single", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []string{`{"a":1}`}, true},
		{"two events", "data: a\n\ndata: b\n\ndata: [DONE]\n\n", []string{"a", "b"}, true},
		{"multi-line data", "data: a\ndata: b\ndata:c\n\n", []string{"a\nb\nc"}, false},
		{"no space after colon", "data:{\"a\":1}\n\ndata:[DONE]\n\n", []string{`{"a":1}`}, true},
		{"only one space stripped", "data:  two\n\n", []string{" two"}, false},
		{"empty data", "data:\n\ndata: x\n\n", []string{"", "x"}, false},
		{"comments skipped", ": keep-alive\n\n: another\ndata: a\n: inside\n\n", []string{"a"}, false},
		{"other fields skipped", "event: message\nid: 7\nretry: 100\ndata: a\n\n", []string{"a"}, false},
		{"event without data skipped", "event: ping\n\ndata: a\n\n", []string{"a"}, false},
		{"CRLF", "data: a\r\ndata: b\r\n\r\ndata: [DONE]\r\n\r\n", []string{"a\nb"}, true},
		{"blank lines between events", "\n\n\ndata: a\n\n\n\ndata: b\n\n", []string{"a", "b"}, false},
		{"DONE with spaces", "data: a\n\ndata:  [DONE] \n\n", []string{"a"}, true},
		{"DONE ends reading", "data: [DONE]\n\ndata: after\n\n", nil, true},
		{"EOF without DONE", "data: a\n\ndata: b\n\n", []string{"a", "b"}, false},
		{"trailing event without blank line", "data: a\n\ndata: b\n", []string{"a", "b"}, false},
		{"trailing event without newline", "data: a\n\ndata: b", []string{"a", "b"}, false},
		{"trailing DONE without newline", "data: a\n\ndata: [DONE]", []string{"a"}, true},
		{"empty input", "", nil, false},
		{"only comments", ": hi\n\n", nil, false},
		{"data is not DONE inside JSON", "data: {\"x\":\"[DONE]\"}\n\n", []string{`{"x":"[DONE]"}`}, false},
		{"long line", "data: " + long + "\n\ndata: [DONE]\n\n", []string{long}, true},
		{"long line CRLF", "data: " + long + "\r\n\r\n", []string{long}, false},
		{"long line at EOF", "data: a\n\ndata: " + long, []string{"a", long}, false},
		{"long multi-line", "data: " + long + "\ndata: " + long + "\n\n", []string{long + "\n" + long}, false},
		{"long comment skipped", ": " + long + "\ndata: a\n\n", []string{"a"}, false},
		{"line filling the buffer", "data: " + exact + "\n\ndata: z\n\n", []string{exact, "z"}, false},
		{"line filling the buffer at EOF", "data: " + exact, []string{exact}, false},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data+EOF", iotest.DataErrReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				s := NewSSEReader(rd.wrap(strings.NewReader(tt.in)))
				got, err := readAll(t, s)
				if !errors.Is(err, io.EOF) {
					t.Fatalf("ended with %v, want io.EOF", err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d events %q, want %d %q", len(got), short(got), len(tt.want), short(tt.want))
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Errorf("event %d = %q, want %q", i, shorten(got[i]), shorten(tt.want[i]))
					}
				}
				if s.Done != tt.wantDone {
					t.Errorf("Done = %v, want %v", s.Done, tt.wantDone)
				}
			})
		}
	}
}

// TestSSEReaderError checks that a broken connection is an error, not
// the regular end of the stream, and that a half-read event is dropped.
func TestSSEReaderError(t *testing.T) {
	broken := errors.New("connection reset")
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"after event", "data: a\n\n", []string{"a"}},
		{"inside event", "data: a\n\ndata: b\n", []string{"a"}},
		{"inside line", "data: a\n\ndata: partial", []string{"a"}},
		{"inside long line", "data: " + strings.Repeat("x", 20000), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := io.MultiReader(strings.NewReader(tt.in), iotest.ErrReader(broken))
			s := NewSSEReader(r)
			got, err := readAll(t, s)
			if !errors.Is(err, broken) {
				t.Fatalf("ended with %v, want %v", err, broken)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("events = %q, want %q", short(got), tt.want)
			}
			if s.Done {
				t.Error("Done is set after a broken stream")
			}
		})
	}
}

// arrivals hands out its chunks one at a time, as a connection delivers
// what the upstream flushed, and checks that the reader waits for each
// with a one-byte read and no buffer. Before each wait it scribbles over
// a pooled buffer, which spoils any event still pointing into the buffer
// the reader gave back.
type arrivals struct {
	t      *testing.T
	s      *SSEReader
	chunks []string
	rest   string
}

func (a *arrivals) Read(p []byte) (int, error) {
	if a.rest == "" {
		if len(a.chunks) == 0 {
			return 0, io.EOF
		}
		if len(p) != 1 || a.s.buf != nil {
			a.t.Errorf("waiting for %q with a %d-byte read, holding a buffer: %v", a.chunks[0], len(p), a.s.buf != nil)
		}
		b := buffers.Get().(*[bufSize]byte)
		for i := range b {
			b[i] = 'X'
		}
		buffers.Put(b)
		a.rest, a.chunks = a.chunks[0], a.chunks[1:]
	}
	n := copy(p, a.rest)
	a.rest = a.rest[n:]
	return n, nil
}

// TestSSEReaderWaitsWithoutBuffer: an open stream waiting for its upstream
// holds no buffer, and an event split across arrivals survives the
// buffer going back to the pool.
func TestSSEReaderWaitsWithoutBuffer(t *testing.T) {
	a := &arrivals{t: t, chunks: []string{
		"data: a\n\n",
		"data: b\n", "\n",
		"data: c\n", "data: d\n", "\n",
		"data: e\n\ndata: f\n\n",
		"data: [DONE]\n\n",
	}}
	s := NewSSEReader(a)
	a.s = s
	defer s.Release()
	got, err := readAll(t, s)
	if !errors.Is(err, io.EOF) || !s.Done {
		t.Fatalf("ended with %v (Done %v), want io.EOF after [DONE]", err, s.Done)
	}
	if want := "a|b|c\nd|e|f"; strings.Join(got, "|") != want {
		t.Errorf("events = %q, want %q", strings.Join(got, "|"), want)
	}
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:20] + "…" + s[len(s)-20:]
	}
	return s
}

func short(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = shorten(s)
	}
	return out
}

// TestEventBufferedNotComments: what follows an event that is only a
// comment or blank lines is no buffered event: a relay must flush.
func TestEventBufferedNotComments(t *testing.T) {
	for _, rest := range []string{": keep-alive\n\n", "\n\n\n", "event: ping\n\n", ": x\ndata: b\n"} {
		s := NewSSEReader(strings.NewReader("data: a\n\n" + rest))
		if data, err := s.Next(); err != nil || string(data) != "a" {
			t.Fatalf("Next() = %q, %v", data, err)
		}
		if s.EventBuffered() {
			t.Errorf("after %q: EventBuffered() = true, want false", rest)
		}
		s.Release()
	}
	s := NewSSEReader(strings.NewReader("data: a\n\n: keep-alive\n\ndata: b\n\n"))
	defer s.Release()
	if _, err := s.Next(); err != nil || !s.EventBuffered() {
		t.Errorf("an event after a comment: EventBuffered() = false, %v", err)
	}
}

func TestEventBuffered(t *testing.T) {
	s := NewSSEReader(strings.NewReader("data: a\n\ndata: b\r\n\r\ndata: c\n"))
	defer s.Release()
	want := []struct {
		data     string
		buffered bool
	}{{"a", true}, {"b", false}, {"c", false}}
	for _, w := range want {
		got, err := s.Next()
		if err != nil || string(got) != w.data {
			t.Fatalf("Next() = %q, %v; want %q", got, err, w.data)
		}
		if b := s.EventBuffered(); b != w.buffered {
			t.Errorf("after %q: EventBuffered() = %v, want %v", w.data, b, w.buffered)
		}
	}
	s.Release()
	if s.EventBuffered() {
		t.Error("a released reader reports a buffered event")
	}
}
