// Command upstream is a fast OpenAI-compatible stub used as the common
// upstream of the proxycast benchmark. It answers POST /v1/chat/completions
// with a fixed chat.completion, or, for "stream":true, with -chunks SSE
// chunks and "data: [DONE]", flushing each. When the body asks for usage
// in the stream ("stream_options":{"include_usage":true}, as proxycast's
// openai type does by default), it answers as OpenAI does: every chunk
// has "usage":null, and one more chunk with "choices":[] and the usage
// comes before [DONE]. A stream whose body has "max_tokens" (or
// "max_completion_tokens") N, from 2 to 4096, has N chunks instead of
// -chunks: the stream64 and messages64 scenarios ask for theirs this way,
// as it is what a Messages request translated into chat still carries. It
// checks no signature or key, so that Caddy's plain reverse_proxy gets the
// same answers as both proxycast targets. Every reply is precomputed (the
// streams sized by max_tokens on their first request): the stub should
// never be the bottleneck.
//
// GET /stats reports how many chat requests came, how many were streams,
// how many of those asked for usage, how many were sized by max_tokens,
// and how many carried an "Authorization: Bearer …" header (run.sh checks
// that the openai target calls the stub the way a real OpenAI-compatible
// API is called).
//
//	go run ./bench/upstream -listen 127.0.0.1:9800
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const completion = `{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"qwen3-max",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},` +
	`"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}`

// chunk is the i-th of n stream chunks; with usage it carries
// "usage":null, as OpenAI's chunks do when usage was asked for.
func chunk(i, n int, usage bool) []byte {
	var delta, finish string
	switch {
	case i == 0:
		delta, finish = `{"role":"assistant","content":""}`, "null"
	case i == n-1:
		delta, finish = `{}`, `"stop"`
	default:
		delta, finish = `{"content":"tok`+strconv.Itoa(i)+` "}`, "null"
	}
	tail := ""
	if usage {
		tail = `,"usage":null`
	}
	return fmt.Appendf(nil, `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,`+
		`"model":"qwen3-max","choices":[{"index":0,"delta":%s,"finish_reason":%s}]%s}`+"\n\n", delta, finish, tail)
}

// usageChunk is the extra chunk of a stream that asked for usage: no
// choices, the whole answer's usage. Its completion_tokens is n, so
// that run.sh can tell it was counted.
func usageChunk(n int) []byte {
	return fmt.Appendf(nil, `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,`+
		`"model":"qwen3-max","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", n, 9+n)
}

var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// isStream reports whether the top level of body says "stream": true. A
// byte scan is enough for the benchmark's bodies and costs next to nothing.
func isStream(body []byte) bool {
	i := bytes.Index(body, []byte(`"stream"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(body[i+len(`"stream"`):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(rest[1:], " \t\r\n"), []byte("true"))
}

// wantsUsage reports whether body has "include_usage": true (in
// stream_options, for the benchmark's bodies). A byte scan, like isStream.
func wantsUsage(body []byte) bool {
	i := bytes.Index(body, []byte(`"include_usage"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(body[i+len(`"include_usage"`):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(rest[1:], " \t\r\n"), []byte("true"))
}

// maxChunks bounds the streams sized by max_tokens: a translator's
// default max_tokens (thousands) would otherwise make the stub the
// bottleneck.
const maxChunks = 4096

// bodyChunks reads "max_tokens": N or "max_completion_tokens": N from a
// request body (the first that is there), for N from 2 to maxChunks. A
// byte scan, like isStream.
func bodyChunks(body []byte) (int, bool) {
	for _, name := range []string{`"max_tokens"`, `"max_completion_tokens"`} {
		i := bytes.Index(body, []byte(name))
		if i < 0 {
			continue
		}
		rest := bytes.TrimLeft(body[i+len(name):], " \t\r\n")
		if len(rest) == 0 || rest[0] != ':' {
			continue
		}
		rest = bytes.TrimLeft(rest[1:], " \t\r\n")
		n, digits := 0, 0
		for ; digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' && n <= maxChunks; digits++ {
			n = n*10 + int(rest[digits]-'0')
		}
		if digits > 0 && n >= 2 && n <= maxChunks {
			return n, true
		}
		return 0, false
	}
	return 0, false
}

// streams are the precomputed chunks of a stream of n chunks, without
// and with usage.
type streams struct{ plain, withUsage [][]byte }

func newStreams(n int) *streams {
	s := &streams{plain: make([][]byte, n), withUsage: make([][]byte, n+1)}
	for i := range s.plain {
		s.plain[i] = chunk(i, n, false)
		s.withUsage[i] = chunk(i, n, true)
	}
	s.withUsage[n] = usageChunk(n)
	return s
}

// bodyDelay reads "bench_chunk_delay_ms": N from a request body: the
// held-streams scenario asks for slow streams through both proxies this
// way (proxycast forwards unknown body fields, reverse_proxy the body).
func bodyDelay(body []byte) (time.Duration, bool) {
	i := bytes.Index(body, []byte(`"bench_chunk_delay_ms":`))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(body[i+len(`"bench_chunk_delay_ms":`):], " ")
	n := 0
	for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
		n = n*10 + int(rest[0]-'0')
		rest = rest[1:]
	}
	return time.Duration(n) * time.Millisecond, true
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9800", "address to listen on (keep it on loopback)")
	nChunks := flag.Int("chunks", 16, "SSE chunks per streamed reply, [DONE] not counted (a body's max_tokens overrides it)")
	chunkDelay := flag.Duration("chunk-delay", 0, "pause between SSE chunks (0: none)")
	flag.Parse()
	if *nChunks < 1 {
		log.Fatal("-chunks must be at least 1")
	}

	body := []byte(completion)
	bodyLen := strconv.Itoa(len(body))
	// The streams of -chunks chunks, and those sized by max_tokens, made
	// on first use. A stream that did not ask for usage gets plain, one
	// that did withUsage, the usage chunk last.
	defaults := newStreams(*nChunks)
	var sized sync.Map // int -> *streams
	streamsOf := func(n int) *streams {
		if s, ok := sized.Load(n); ok {
			return s.(*streams)
		}
		s, _ := sized.LoadOrStore(n, newStreams(n))
		return s.(*streams)
	}
	done := []byte("data: [DONE]\n\n")

	var nChat, nStream, nUsage, nSized, nBearer atomic.Int64

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"chat":%d,"stream":%d,"stream_usage":%d,"stream_sized":%d,"bearer":%d}`+"\n",
			nChat.Load(), nStream.Load(), nUsage.Load(), nSized.Load(), nBearer.Load())
	})
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		buf := bufs.Get().(*bytes.Buffer)
		buf.Reset()
		defer bufs.Put(buf)
		if _, err := buf.ReadFrom(io.LimitReader(r.Body, 1<<20)); err != nil {
			http.Error(w, "reading body failed", http.StatusBadRequest)
			return
		}
		nChat.Add(1)
		if a := r.Header.Get("Authorization"); len(a) > len("Bearer ") && a[:len("Bearer ")] == "Bearer " {
			nBearer.Add(1)
		}
		h := w.Header()
		if !isStream(buf.Bytes()) {
			h["Content-Type"] = []string{"application/json"}
			h["Content-Length"] = []string{bodyLen}
			_, _ = w.Write(body)
			return
		}
		nStream.Add(1)
		set := defaults
		if n, ok := bodyChunks(buf.Bytes()); ok {
			nSized.Add(1)
			set = streamsOf(n)
		}
		chunks := set.plain
		if wantsUsage(buf.Bytes()) {
			nUsage.Add(1)
			chunks = set.withUsage
		}
		h["Content-Type"] = []string{"text/event-stream"}
		h["Cache-Control"] = []string{"no-cache"}
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		delay := *chunkDelay
		if ms, ok := bodyDelay(buf.Bytes()); ok {
			delay = ms
		}
		for i, c := range chunks {
			if i > 0 && delay > 0 {
				select {
				case <-time.After(delay):
				case <-r.Context().Done():
					return
				}
			}
			if _, err := w.Write(c); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		_, _ = w.Write(done)
		_ = rc.Flush()
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		_ = srv.Close()
	}()
	log.Printf("upstream stub listening on http://%s (%d chunks per stream)", ln.Addr(), *nChunks)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
