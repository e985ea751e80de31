package iflow_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/iflow"
	"github.com/proxycast/caddy-proxycast/provider"
)

// fixedReply is a RoundTripper that answers every request with the same
// reply, reusing one response, so that a benchmark counts the provider's
// allocations and not a server's or a socket's.
type fixedReply struct {
	header http.Header
	body   []byte
	rd     bytes.Reader
	resp   http.Response
	// check, when set, is run on each request.
	check func(*http.Request) error
}

func (f *fixedReply) RoundTrip(req *http.Request) (*http.Response, error) {
	if f.check != nil {
		if err := f.check(req); err != nil {
			return nil, err
		}
	}
	if req.Body != nil {
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	f.rd.Reset(f.body)
	f.resp = http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: f.header, ContentLength: int64(len(f.body)), Body: f, Request: req,
	}
	return &f.resp, nil
}

func (f *fixedReply) Read(p []byte) (int, error) { return f.rd.Read(p) }
func (f *fixedReply) Close() error               { return nil }

// checkSigned checks what the strict fake checks of a chat request's
// headers, so that the benchmark measures requests iFlow would accept.
func checkSigned(key string) func(*http.Request) error {
	return func(r *http.Request) error {
		h := r.Header
		if r.URL.String() != "https://apis.iflow.cn/v1/chat/completions" || r.Method != http.MethodPost {
			return fmt.Errorf("request to %s %s", r.Method, r.URL)
		}
		if h.Get("Authorization") != "Bearer "+key || h.Get("User-Agent") != iflow.UserAgent ||
			h.Get("Content-Type") != "application/json" {
			return fmt.Errorf("headers %v", h)
		}
		sid, ts := h.Get("Session-Id"), h.Get("X-Iflow-Timestamp")
		if _, err := strconv.ParseInt(ts, 10, 64); err != nil || !strings.HasPrefix(sid, "session-") {
			return fmt.Errorf("session %q, timestamp %q", sid, ts)
		}
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(iflow.UserAgent + ":" + sid + ":" + ts))
		if want := hex.EncodeToString(m.Sum(nil)); h.Get("X-Iflow-Signature") != want {
			return fmt.Errorf("signature %q, want %q", h.Get("X-Iflow-Signature"), want)
		}
		return nil
	}
}

// BenchmarkChat measures one chat call without the network: building and
// signing the request, and reading a small completion or a 16-event
// stream. The http.Client's own work is included.
func BenchmarkChat(b *testing.B) {
	const key = "sk-0123456789abcdef0123456789abcdef"
	body := chatBody("glm-4.6", false, "")
	completion := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1767225600,"model":"glm-4.6",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"echo: hello from the test"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`)
	var sse bytes.Buffer
	for i := range 16 {
		fmt.Fprintf(&sse, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"glm-4.6","choices":[{"index":0,"delta":{"content":"piece %d "},"finish_reason":null}]}`+"\n\n", i)
	}
	sse.WriteString("data: [DONE]\n\n")

	tests := []struct {
		name        string
		stream      bool
		contentType string
		reply       []byte
	}{
		{"json", false, "application/json", completion},
		{"stream", true, "text/event-stream; charset=utf-8", sse.Bytes()},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			tr := &fixedReply{header: http.Header{"Content-Type": {tt.contentType}}, body: tt.reply, check: checkSigned(key)}
			p := &iflow.Provider{APIBase: iflow.DefaultAPIBase}
			c := &provider.Call{Model: "glm-4.6", Body: body, Stream: tt.stream, APIKey: key, Transport: tr}
			ctx := context.Background()
			once := func() int {
				resp, err := p.Chat(ctx, c)
				if err != nil {
					b.Fatal(err)
				}
				if !tt.stream {
					return len(resp.Body)
				}
				n := 0
				for {
					data, err := resp.Events.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n += len(data)
				}
				resp.Events.Close()
				return n
			}
			if n := once(); n == 0 {
				b.Fatal("empty reply")
			}
			tr.check = nil
			b.ReportAllocs()
			for b.Loop() {
				once()
			}
		})
	}
}
