package provider

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzSSEReader reads arbitrary input as a stream, and the input split at
// "\n" as the events of a stream built from them.
func FuzzSSEReader(f *testing.F) {
	for _, seed := range []string{
		"data: {\"a\":1}\n\ndata: [DONE]\n\n",
		"data: a\ndata: b\ndata:c\n\n",
		"data: a\r\ndata: b\r\n\r\ndata: [DONE]\r\n\r\n",
		": keep-alive\n\nevent: ping\nid: 7\nretry: 100\ndata: a\n\n",
		"data:\n\ndata: x\n\n",
		"data: [DONE]\n\ndata: after\n\n",
		"data: a\n\ndata: b",
		"data:  two\n\n\n\n",
		"data\ndata :x\n\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, wrap := range []func(io.Reader) io.Reader{
			func(r io.Reader) io.Reader { return r },
			iotest.OneByteReader,
		} {
			checkStream(t, NewSSEReader(wrap(bytes.NewReader(in))), nil, false)
		}

		// Events without line breaks survive being framed as a stream,
		// except the one that ends it.
		events := strings.Split(string(in), "\n")
		var stream strings.Builder
		for _, e := range events {
			if strings.ContainsRune(e, '\r') || strings.TrimSpace(e) == "[DONE]" {
				return
			}
			stream.WriteString("data: " + e + "\n\n")
		}
		checkStream(t, NewSSEReader(strings.NewReader(stream.String())), events, true)
	})
}

// checkStream reads s to its end; if exact, the events must be want.
func checkStream(t *testing.T, s *SSEReader, want []string, exact bool) {
	t.Helper()
	defer s.Release()
	var got []string
	for {
		// Each event takes at least a "data:" line, so a reader that
		// returns more events than its input has bytes is looping.
		if len(got) > len(want)+1<<16 {
			t.Fatal("Next never ends")
		}
		data, err := s.Next()
		if err != nil {
			for range 2 {
				if d, again := s.Next(); again == nil {
					t.Fatalf("after %v, Next returned event %q and no error", err, d)
				}
			}
			if exact && !errors.Is(err, io.EOF) {
				t.Fatalf("stream of %q ended with %v", want, err)
			}
			break
		}
		if data == nil {
			t.Fatalf("event %d is nil", len(got))
		}
		got = append(got, string(data))
	}
	if exact && strings.Join(got, "\x00") != strings.Join(want, "\x00") || exact && len(got) != len(want) {
		t.Fatalf("events %q came back as %q", want, got)
	}
}

// FuzzIsEventStream holds IsEventStream to mime.ParseMediaType.
func FuzzIsEventStream(f *testing.F) {
	for _, seed := range []string{
		"text/event-stream", "text/event-stream; charset=utf-8", " Text/Event-Stream ;",
		"text/event-stream;;", "text/event-stream x", "application/json", "", "text/event-ſtream",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		mt, _, _ := mime.ParseMediaType(ct)
		if got, want := IsEventStream(ct), mt == "text/event-stream"; got != want {
			t.Fatalf("IsEventStream(%q) = %v, mime.ParseMediaType says %v", ct, got, want)
		}
	})
}

// FuzzReadReply holds ReadReply to io.ReadAll, whatever the
// Content-Length claims and however the body arrives.
func FuzzReadReply(f *testing.F) {
	f.Add([]byte(`{"choices":[]}`), int64(14), false)
	f.Add([]byte(`{"choices":[]}`), int64(-1), true)
	f.Add([]byte(strings.Repeat("x", 1500)), int64(3), true)
	f.Add([]byte{}, int64(0), false)
	f.Fuzz(func(t *testing.T, body []byte, size int64, oneByte bool) {
		var r io.Reader = bytes.NewReader(body)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		got, err := ReadReply(r, size)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("ReadReply(%d bytes, size %d) = %d bytes, %v", len(body), size, len(got), err)
		}
	})
}
