package caddymodule_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

// These tests serve the API the way a public endpoint does: over HTTPS
// with a certificate from Caddy's internal CA, on HTTP/1.1, HTTP/2 and
// HTTP/3 (QUIC on the UDP port of the same number), with Caddy's server
// timeouts set.

// tlsKey is the upstream key of the TLS tests' only credential.
const tlsKey = "sk-tls"

// tlsStreamBody asks for a stream whose text is long enough for several
// events.
const tlsStreamBody = `{"model":"glm-4.6","stream":true,"messages":[{"role":"user","content":"a stream of several events over TLS"}]}`

// tlsSite is the HTTPS site of the test server and the clients that trust
// its certificate.
type tlsSite struct {
	url   string
	roots *x509.CertPool
	// clients are keyed by the protocol they speak: "h1", "h2", "h3".
	clients map[string]*http.Client
}

// startTLS runs Caddy with storage in a fresh directory, the site on
// https://localhost:<httpsPort> with tls internal, and timeouts (the
// inside of a timeouts block, or "") for its server. It waits until every
// protocol answers.
func startTLS(t *testing.T, srv *iflowtest.Server, timeouts string) *tlsSite {
	t.Helper()
	root := t.TempDir()
	if timeouts != "" {
		timeouts = "\t\ttimeouts {\n" + timeouts + "\n\t\t}\n"
	}
	// skip_install_trust: the test trusts the root itself; Caddy must not
	// try to add it to the system's store.
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 1ns
	persist_config off
	skip_install_trust
	storage file_system {
		root %s
	}
	servers {
		protocols h1 h2 h3
%s	}
}

https://localhost:%d {
	tls internal
	proxycast {
%s
	}
	handle /health {
		respond ok
	}
}
`, adminPort, httpPort, httpsPort, root, timeouts, httpsPort, poolConfig(srv, "", tlsKey))
	newTester(t).InitServer(cfg, "caddyfile")
	// Runs before TempDir removes root: hand Caddy a config that does not
	// use it, so that nothing writes there while it is removed.
	t.Cleanup(func() { loadCaddyfile(t, globalOptions+site("\trespond ok")) })

	s := &tlsSite{url: fmt.Sprintf("https://localhost:%d", httpsPort), roots: x509.NewCertPool()}
	rootPath := filepath.Join(root, "pki", "authorities", "local", "root.crt")
	waitFor(t, "the internal CA's root certificate", func() bool {
		pem, err := os.ReadFile(rootPath)
		return err == nil && s.roots.AppendCertsFromPEM(pem)
	})
	s.clients = tlsClients(t, s.roots)
	for proto, c := range s.clients {
		waitFor(t, "the site to answer "+proto+" with its certificate", func() bool {
			resp, err := c.Get(s.url + "/health")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	return s
}

// tlsClients returns a client per protocol that trusts roots. Every
// request through them is bounded by the client's timeout.
func tlsClients(t *testing.T, roots *x509.CertPool) map[string]*http.Client {
	t.Helper()
	tlsConfig := func() *tls.Config { return &tls.Config{RootCAs: roots} }
	// A transport with its own TLS config speaks HTTP/1.1 only, unless
	// told to attempt HTTP/2.
	h1 := &http.Transport{TLSClientConfig: tlsConfig()}
	h2 := &http.Transport{TLSClientConfig: tlsConfig(), ForceAttemptHTTP2: true}
	h3 := &http3.Transport{TLSClientConfig: tlsConfig()}
	t.Cleanup(func() {
		h1.CloseIdleConnections()
		h2.CloseIdleConnections()
		_ = h3.Close()
	})
	clients := map[string]*http.Client{}
	for proto, rt := range map[string]http.RoundTripper{"h1": h1, "h2": h2, "h3": h3} {
		clients[proto] = &http.Client{Transport: rt, Timeout: 30 * time.Second}
	}
	return clients
}

// do sends req over a fresh connection of the client for proto: with a
// short idle timeout, the server may be closing a kept-alive connection
// just as a request goes out on it, and a POST is not retried.
func (s *tlsSite) do(proto string, req *http.Request) (*http.Response, error) {
	c := s.clients[proto]
	c.CloseIdleConnections()
	return c.Do(req)
}

// protoMajor is the HTTP major version a client of tlsClients speaks.
var protoMajor = map[string]int{"h1": 1, "h2": 2, "h3": 3}

// startStream sends a stream request over a fresh connection of the
// client for proto and checks the answer's protocol and status.
func (s *tlsSite) startStream(t *testing.T, ctx context.Context, proto string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/chat/completions", strings.NewReader(tlsStreamBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+clientKey)
	resp, err := s.do(proto, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != protoMajor[proto] {
		resp.Body.Close()
		t.Fatalf("answered over %s, want HTTP/%d", resp.Proto, protoMajor[proto])
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	return resp
}

// nextEvent reads one SSE event and returns its data, failing the test if
// none arrives within 10s. The upstream may be holding the next event, so
// a proxy that buffers would keep this waiting: the bound turns that into
// a failure that says so.
func nextEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	type result struct {
		data string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		var r result
		for r.err == nil {
			var line string
			line, r.err = br.ReadString('\n')
			if d, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: "); ok {
				r.data = d
				// The blank line ends the event.
				_, r.err = br.ReadString('\n')
				break
			}
		}
		got <- r
	}()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("reading an event: %v", r.err)
		}
		return r.data
	case <-time.After(10 * time.Second):
		// The caller's deferred Body.Close ends the read.
		t.Fatal("no event within 10s while the upstream holds the next one: the stream is not delivered event by event")
		return ""
	}
}

// releaseNext lets the held upstream stream send its next event; the
// gate is unbuffered, so the send goes through only once the stream waits
// there.
func releaseNext(t *testing.T, gate chan<- struct{}) {
	t.Helper()
	select {
	case gate <- struct{}{}:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream stream never waited for its next event")
	}
}

// finishStream lets the upstream send the rest, reads it and checks that
// the whole text arrived and the stream ended with [DONE].
func finishStream(t *testing.T, gate chan struct{}, br *bufio.Reader, seen []string, want string) {
	t.Helper()
	close(gate)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading the rest of the stream: %v", err)
	}
	evs := append(seen, events(string(rest))...)
	if len(evs) == 0 || evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", evs)
	}
	var text strings.Builder
	for _, e := range evs[:len(evs)-1] {
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(e), &chunk); err != nil {
			t.Fatalf("bad chunk %q", e)
		}
		for _, c := range chunk.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if text.String() != want {
		t.Fatalf("streamed text = %q, want %q", text.String(), want)
	}
}

// TestTLSStream: over HTTPS, on HTTP/2 and HTTP/3, a stream reaches the
// client event by event (each event while the upstream still holds the
// next), and a client that resets its stream cancels the upstream call.
func TestTLSStream(t *testing.T) {
	srv := fakeIFlow(t, tlsKey)
	ts := startTLS(t, srv, "")
	for _, proto := range []string{"h2", "h3"} {
		t.Run(proto+"/event by event", func(t *testing.T) {
			gate := make(chan struct{})
			srv.SetStreamGate(tlsKey, gate)
			resp := ts.startStream(t, context.Background(), proto)
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			// The upstream sends its second event only when released,
			// after the client has the first.
			seen := []string{nextEvent(t, br)}
			releaseNext(t, gate)
			seen = append(seen, nextEvent(t, br))
			finishStream(t, gate, br, seen, "echo: a stream of several events over TLS")
		})
		t.Run(proto+"/reset cancels upstream", func(t *testing.T) {
			srv.SetStreamGate(tlsKey, make(chan struct{}))
			before, calls := srv.CanceledStreams(), srv.ChatCount()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp := ts.startStream(t, ctx, proto)
			defer resp.Body.Close()
			nextEvent(t, bufio.NewReader(resp.Body))
			// Canceling the request resets the stream (RST_STREAM on
			// HTTP/2, STOP_SENDING and RESET_STREAM on HTTP/3), not the
			// connection.
			cancel()
			if !srv.WaitCanceledStreams(before+1, 10*time.Second) {
				t.Fatal("the upstream call was not canceled within 10s of the client resetting its stream")
			}
			recs := srv.ChatRequests()
			if len(recs) != calls+1 || !recs[len(recs)-1].Canceled {
				t.Fatalf("want one more upstream call, canceled; got %d calls, last %+v", len(recs)-calls, recs[len(recs)-1])
			}
		})
	}
}

// slowTimeouts are the production example's server timeouts scaled down to
// a second, plus Caddy's idle read and write timeouts, which default to a
// minute, at a second too.
const slowTimeouts = `			read_header 1s
			read_body 1s
			read_body_idle 1s
			write_idle 1s
			idle 1s`

// slowCut is how long a slow client may be held before the test calls the
// timeouts ineffective: well past the 1s of slowTimeouts.
const slowCut = 10 * time.Second

// slowClient writes head at once and then trickle one byte every 50ms
// over a fresh HTTP/1.1 TLS connection, then waits, and reports how long
// after its first byte the server closed the connection, and what it
// answered. A connection still open after slowCut is an error.
func (s *tlsSite) slowClient(head, trickle string) (cut time.Duration, reply string, err error) {
	dialer := &tls.Dialer{Config: &tls.Config{RootCAs: s.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}}
	ctx, cancel := context.WithTimeout(context.Background(), slowCut)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", fmt.Sprintf("localhost:%d", httpsPort))
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetDeadline(start.Add(slowCut))
	closed := make(chan struct{})
	var got []byte
	var readErr error
	go func() {
		defer close(closed)
		got, readErr = io.ReadAll(conn)
	}()
	if _, err := io.WriteString(conn, head); err != nil {
		return 0, "", err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			if errors.Is(readErr, os.ErrDeadlineExceeded) {
				return 0, string(got), fmt.Errorf("connection still open after %s", slowCut)
			}
			return time.Since(start), string(got), nil
		case <-tick.C:
		}
		if i < len(trickle) {
			// A write may fail once the server has hung up; the reader
			// reports it.
			_, _ = io.WriteString(conn, trickle[i:i+1])
		}
	}
}

// TestSlowClients: with short server timeouts, clients that send their
// headers or their body one byte at a time, and kept-alive connections
// left idle, are cut off after the timeout while a normal request is
// answered, and a stream that lasts longer than every timeout is not cut,
// on any protocol.
func TestSlowClients(t *testing.T) {
	srv := fakeIFlow(t, tlsKey)
	ts := startTLS(t, srv, slowTimeouts)
	host := fmt.Sprintf("localhost:%d", httpsPort)
	// At 20 bytes a second, the headers would take 8s, the body 10s.
	body := `{"model":"glm-4.6","messages":[{"role":"user","content":"` + strings.Repeat("x", 140) + `"}]}`
	head := "POST /v1/chat/completions HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + clientKey +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n"

	t.Run("slow clients are cut", func(t *testing.T) {
		type slow struct {
			name, head, trickle string
			// want is how the server's answer begins: Go answers
			// headers that time out with a bare 400 of its own, a body
			// that times out gets the handler's error, an idle
			// connection has had its answer.
			want string
		}
		var clients []slow
		// Ten of each, as many as could otherwise hold the server.
		for range 10 {
			clients = append(clients,
				slow{"headers", "", head + body, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain"},
				slow{"body", head, body, "HTTP/1.1 4"},
				slow{"idle", "GET /health HTTP/1.1\r\nHost: " + host + "\r\n\r\n", "", "HTTP/1.1 200 "})
		}
		type outcome struct {
			slow
			cut   time.Duration
			reply string
			err   error
		}
		done := make(chan outcome, len(clients))
		calls := srv.ChatCount()
		for _, c := range clients {
			go func() {
				cut, reply, err := ts.slowClient(c.head, c.trickle)
				done <- outcome{c, cut, reply, err}
			}()
		}

		// While they trickle, everyone else is served.
		for _, proto := range []string{"h1", "h2", "h3"} {
			req, _ := http.NewRequest(http.MethodPost, ts.url+"/v1/chat/completions", strings.NewReader(`{"model":"glm-4.6","messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+clientKey)
			resp, err := ts.do(proto, req)
			if err != nil {
				t.Fatalf("%s: %v", proto, err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), "echo: hi") {
				t.Errorf("%s while slow clients trickle: %d %s", proto, resp.StatusCode, raw)
			}
		}

		for range clients {
			o := <-done
			switch {
			case o.err != nil:
				t.Errorf("%s: %v", o.name, o.err)
			// The server arms the timeout before the client's first
			// byte, so a cut much earlier is not the timeout's doing; the
			// trickles last 8s and more, so a cut much later is not either.
			case o.cut < 800*time.Millisecond || o.cut > 5*time.Second:
				t.Errorf("%s: cut after %s, not by the 1s timeout (answer %q)", o.name, o.cut, o.reply)
			case !strings.HasPrefix(o.reply, o.want):
				t.Errorf("%s: cut after %s with the answer %q, want %q…", o.name, o.cut, o.reply, o.want)
			}
		}
		if n := srv.ChatCount() - calls; n != 3 {
			t.Errorf("%d upstream calls, want 3 (the normal requests only)", n)
		}
	})

	for _, proto := range []string{"h1", "h2", "h3"} {
		t.Run(proto+"/long stream", func(t *testing.T) {
			gate := make(chan struct{})
			srv.SetStreamGate(tlsKey, gate)
			resp := ts.startStream(t, context.Background(), proto)
			defer resp.Body.Close()
			start := time.Now()
			br := bufio.NewReader(resp.Body)
			seen := []string{nextEvent(t, br)}
			// Time passing is the point here, not an event to wait for:
			// the stream stays open, silent, for twice the longest
			// timeout before it goes on.
			time.Sleep(2*time.Second - time.Since(start))
			releaseNext(t, gate)
			seen = append(seen, nextEvent(t, br))
			finishStream(t, gate, br, seen, "echo: a stream of several events over TLS")
		})
	}
}
