package caddymodule_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"

	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

// These tests inject faults between Caddy and the upstream (resets,
// garbage, broken streams, slow answers, a token endpoint that is down, a
// storage that cannot write, clients that leave) and check what the
// client sees and that every case leaves no goroutine and no upstream
// connection behind.

// tracked serves an upstream handler and keeps the state of every
// connection it has accepted.
type tracked struct {
	*httptest.Server
	mu    sync.Mutex
	conns map[net.Conn]http.ConnState
}

func newTracked(t *testing.T, h http.Handler) *tracked {
	t.Helper()
	tr := &tracked{conns: map[net.Conn]http.ConnState{}}
	tr.Server = httptest.NewUnstartedServer(h)
	tr.Config.ConnState = func(c net.Conn, s http.ConnState) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		switch s {
		case http.StateClosed, http.StateHijacked:
			delete(tr.conns, c)
		default:
			tr.conns[c] = s
		}
	}
	tr.Start()
	t.Cleanup(tr.Close)
	return tr
}

// active counts the connections in the middle of a request.
func (tr *tracked) active() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, s := range tr.conns {
		if s == http.StateActive {
			n++
		}
	}
	return n
}

// closeIdle hangs up on kept-alive connections, so that the client's
// goroutines for them end.
func (tr *tracked) closeIdle() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for c, s := range tr.conns {
		if s == http.StateIdle || s == http.StateNew {
			c.Close()
		}
	}
}

// trackedIFlow is the strict fake iFlow served behind a tracked listener.
func trackedIFlow(t *testing.T, keys ...string) (*iflowtest.Server, *tracked) {
	t.Helper()
	srv := iflowtest.New()
	tr := newTracked(t, srv.Handler())
	t.Cleanup(srv.Close) // runs before tr.Close: running streams end first
	for _, k := range keys {
		srv.AddAPIKey(k)
	}
	return srv, tr
}

// goroutineMargin is how many goroutines more than before a case may
// still run after it (Caddy's and the runtime's own come and go).
const goroutineMargin = 2

// goroutines counts the running goroutines but for certmagic's file lock
// keepers, which by design outlive a released lock by up to 5 s.
func goroutines() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.HasPrefix(g, "goroutine ") && !strings.Contains(g, "certmagic.keepLockfileFresh") {
			n++
		}
	}
	return n
}

// baseline counts goroutines once the server is up and idle: the lowest
// count over a short while, as the previous case winds down.
func baseline() int {
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	n := goroutines()
	for range 10 {
		time.Sleep(20 * time.Millisecond)
		n = min(n, goroutines())
	}
	return n
}

// checkNoLeaks waits (up to about 2 s) for a case to wind down: no
// upstream connection may stay in the middle of a request, and once idle
// connections are closed the goroutine count must come back to within
// goroutineMargin of before.
func checkNoLeaks(t *testing.T, before int, ups ...*tracked) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for _, u := range ups {
		for u.active() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := u.active(); n > 0 {
			t.Errorf("%d upstream connections are still in the middle of a request", n)
		}
	}
	var n int
	for {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		for _, u := range ups {
			u.closeIdle()
		}
		if n = goroutines(); n <= before+goroutineMargin {
			t.Logf("goroutines: %d before, %d after", before, n)
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	t.Errorf("%d goroutines after the case, %d before (margin %d):\n%s", n, before, goroutineMargin, buf)
}

// faultUpstream answers like iFlow for key sk-good and misbehaves for the
// others, as the key's second word says: sk-reset-… resets the
// connection, sk-html-… answers an HTML page with 200, sk-junk-… answers
// 200 application/json that is not JSON, sk-midclose-…
// breaks a stream after its first event, sk-slow-… answers after delay,
// sk-hang-… streams until the client goes, sk-silent-… says nothing until
// the client goes.
type faultUpstream struct {
	*tracked
	delay    time.Duration
	mu       sync.Mutex
	hits     map[string]int
	canceled atomic.Int32
}

func newFaultUpstream(t *testing.T) *faultUpstream {
	u := &faultUpstream{hits: map[string]int{}, delay: 400 * time.Millisecond}
	u.tracked = newTracked(t, http.HandlerFunc(u.serve))
	return u
}

func (u *faultUpstream) hitsOf(key string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[key]
}

const (
	goodChunk      = `{"id":"chatcmpl-f","object":"chat.completion.chunk","created":1,"model":"qwen3-max","choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}`
	goodCompletion = `{"id":"chatcmpl-f","object":"chat.completion","created":1,"model":"qwen3-max","choices":[{"index":0,"message":{"role":"assistant","content":"good answer"},"finish_reason":"stop"}]}`
)

func (u *faultUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	u.mu.Lock()
	u.hits[key]++
	u.mu.Unlock()
	stream := bytes.Contains(body, []byte(`"stream":true`))
	mode, _, _ := strings.Cut(strings.TrimPrefix(key, "sk-"), "-")
	flush := func() { _ = http.NewResponseController(w).Flush() }
	event := func(data string) {
		fmt.Fprintf(w, "data: %s\n\n", data)
		flush()
	}
	switch mode {
	case "good":
	case "reset":
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with RST
		}
		conn.Close()
		return
	case "hangup": // reads the request, closes without a word
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		conn.Close()
		return
	case "html":
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
		return
	case "junk":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[{"index":0,"mess`)
		return
	case "midclose":
		w.Header().Set("Content-Type", "text/event-stream")
		event(fmt.Sprintf(goodChunk, "first"))
		panic(http.ErrAbortHandler) // drop the connection mid-body
	case "slow":
		select {
		case <-time.After(u.delay):
		case <-r.Context().Done():
			u.canceled.Add(1)
			return
		}
	case "hang":
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			event(fmt.Sprintf(goodChunk, fmt.Sprint(i)))
			select {
			case <-time.After(50 * time.Millisecond):
			case <-r.Context().Done():
				u.canceled.Add(1)
				return
			}
		}
	case "silent":
		<-r.Context().Done()
		u.canceled.Add(1)
		return
	default:
		http.Error(w, "fault upstream: unknown key "+key, http.StatusBadRequest)
		return
	}
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, goodCompletion)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	event(fmt.Sprintf(goodChunk, "good "))
	event(fmt.Sprintf(goodChunk, "answer"))
	event("[DONE]")
}

// faultConfig is a proxycast block with one api_key credential per id
// and key pair, in that order, against u.
func faultConfig(u *faultUpstream, extra string, idKeys ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\t\tapi_keys %s\n\t\tselection fill_first\n%s\n\t\tcredential_pool {\n\t\t\tiflow {\n", clientKey, extra)
	for i := 0; i+1 < len(idKeys); i += 2 {
		fmt.Fprintf(&b, "\t\t\t\tcredential %s {\n\t\t\t\t\tauth_type api_key\n\t\t\t\t\tapi_key %s\n\t\t\t\t}\n", idKeys[i], idKeys[i+1])
	}
	fmt.Fprintf(&b, "\t\t\t}\n\t\t}\n\t\tprovider iflow {\n\t\t\tapi_base %s/v1\n\t\t}", u.URL)
	return b.String()
}

func chatBody(stream bool) string {
	return fmt.Sprintf(`{"model":"qwen3-max","stream":%v,"messages":[{"role":"user","content":"x"}]}`, stream)
}

// sumMetric adds up every sample of a metric whose labels hold all of
// labels; 0 if there is none.
func sumMetric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(line, l)
		}
		if all {
			var v float64
			f := strings.Fields(line)
			fmt.Sscan(f[len(f)-1], &v)
			sum += v
		}
	}
	return sum
}

// checkGoodAnswer checks a successful answer of the fault upstream's good
// key, plain or streamed.
func checkGoodAnswer(t *testing.T, resp *http.Response, body string, stream bool, from string) {
	t.Helper()
	if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != from {
		t.Fatalf("status %d from %q, want 200 from %q: %s", resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), from, body)
	}
	if !stream {
		if !strings.Contains(body, `"content":"good answer"`) {
			t.Fatalf("not the good completion: %s", body)
		}
		return
	}
	evs := events(body)
	if len(evs) != 3 || evs[2] != "[DONE]" || strings.Contains(body, `"error"`) {
		t.Fatalf("not the good stream: %q", body)
	}
}

// TestUpstreamFaults: an upstream that resets the connection, hangs up
// (an io.EOF, which is no empty stream) or answers garbage is failed over to a good credential; alone, it is the client's
// 502 with a code that says what happened.
func TestUpstreamFaults(t *testing.T) {
	for _, tt := range []struct{ mode, code string }{
		{"reset", "upstream_unreachable"},
		{"hangup", "upstream_unreachable"},
		{"html", "upstream_bad_reply"},
		{"junk", "upstream_bad_reply"},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tt.mode, stream), func(t *testing.T) {
				u := newFaultUpstream(t)
				bad := "sk-" + tt.mode + "-1"
				startCaddy(t, faultConfig(u, "", "bad", bad, "good", "sk-good"))
				before := baseline()
				failovers := sumMetric(t, "caddy_proxycast_failovers_total", `reason="transient"`)

				resp, body := chat(t, chatBody(stream))
				checkGoodAnswer(t, resp, body, stream, "good")
				if u.hitsOf(bad) != 1 || u.hitsOf("sk-good") != 1 {
					t.Errorf("upstream hits: bad %d, good %d; want 1 each", u.hitsOf(bad), u.hitsOf("sk-good"))
				}
				if got := sumMetric(t, "caddy_proxycast_failovers_total", `reason="transient"`); got != failovers+1 {
					t.Errorf("transient failovers %v -> %v, want one more", failovers, got)
				}
				checkNoLeaks(t, before, u.tracked)

				// The faulty credential alone: the client gets the failure.
				alone := "sk-" + tt.mode + "-2"
				startCaddy(t, faultConfig(u, "", "bad", alone))
				before = baseline()
				for range 2 { // the last usable credential does not rest
					resp, body = chat(t, chatBody(stream))
					if resp.StatusCode != 502 || resp.Header.Get("Content-Type") != "application/json" {
						t.Fatalf("alone: status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
					}
					if e := decodeError(t, body); e.Error.Code != tt.code || e.Error.Type != "api_error" {
						t.Fatalf("alone: code %q type %q, want %q: %s", e.Error.Code, e.Error.Type, tt.code, body)
					}
				}
				if u.hitsOf(alone) != 2 {
					t.Errorf("the faulty credential was tried %d times, want 2", u.hitsOf(alone))
				}
				checkNoLeaks(t, before, u.tracked)
			})
		}
	}
}

// TestStreamBreaksMidway: a stream whose connection drops after its first
// event reaches the client as that event and a final error event, without
// [DONE].
func TestStreamBreaksMidway(t *testing.T) {
	u := newFaultUpstream(t)
	startCaddy(t, faultConfig(u, "", "mid", "sk-midclose-1"))
	before := baseline()

	resp, body := chat(t, chatBody(true))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	evs := events(body)
	if len(evs) != 2 || !strings.Contains(evs[0], `"content":"first"`) {
		t.Fatalf("want the first event and an error event: %q", body)
	}
	if e := decodeError(t, evs[1]); e.Error.Code != "upstream_stream_broken" {
		t.Errorf("final event %q is not the broken stream's error", evs[1])
	}
	if strings.Contains(body, "[DONE]") {
		t.Error("a broken stream must not end with [DONE]")
	}
	checkNoLeaks(t, before, u.tracked)
}

// TestSlowFirstByte: an answer that takes its time (within
// response_timeout) arrives, and the time to its first byte is measured.
func TestSlowFirstByte(t *testing.T) {
	u := newFaultUpstream(t)
	startCaddy(t, faultConfig(u, "\t\tresponse_timeout 3s", "slow", "sk-slow-1"))
	before := baseline()
	const ttfb = "caddy_proxycast_upstream_ttfb_seconds"
	count := sumMetric(t, ttfb+"_count", `credential="slow"`)
	sum := sumMetric(t, ttfb+"_sum", `credential="slow"`)
	fast := sumMetric(t, ttfb+"_bucket", `credential="slow"`, `le="0.25"`)

	for _, stream := range []bool{false, true} {
		resp, body := chat(t, chatBody(stream))
		checkGoodAnswer(t, resp, body, stream, "slow")
	}
	if got := sumMetric(t, ttfb+"_count", `credential="slow"`); got != count+2 {
		t.Errorf("ttfb observations %v -> %v, want 2 more", count, got)
	}
	if got := sumMetric(t, ttfb+"_sum", `credential="slow"`); got-sum < 2*u.delay.Seconds() {
		t.Errorf("ttfb sum grew by %.3fs, want at least %.3fs", got-sum, 2*u.delay.Seconds())
	}
	if got := sumMetric(t, ttfb+"_bucket", `credential="slow"`, `le="0.25"`); got != fast {
		t.Errorf("a slow answer landed in the 0.25s bucket (%v -> %v)", fast, got)
	}
	checkNoLeaks(t, before, u.tracked)
}

// TestClientLeavesCleanly: a client that goes away, mid-stream or before
// anything arrived, cancels the upstream call at once and leaves nothing
// running. (TestClientDisconnectCancelsUpstream covers the cancellation
// against the fake iFlow; this adds the leak checks.)
func TestClientLeavesCleanly(t *testing.T) {
	for _, tt := range []struct {
		name, key string
		stream    bool
	}{
		{"mid-stream", "sk-hang-1", true},
		{"before the first event", "sk-silent-1", true},
		{"before the answer", "sk-silent-2", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newFaultUpstream(t)
			startCaddy(t, faultConfig(u, "", "c", tt.key))
			before := baseline()

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/chat/completions", strings.NewReader(chatBody(tt.stream)))
			req.Header.Set("Authorization", "Bearer "+clientKey)
			done := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_, err = bufio.NewReader(resp.Body).ReadString('\n')
					if err == nil {
						cancel() // leave after the first event
					}
					resp.Body.Close()
				}
				done <- err
			}()
			waitFor(t, "the upstream call", func() bool { return u.hitsOf(tt.key) == 1 })
			if tt.key != "sk-hang-1" {
				cancel() // the upstream has the request and says nothing
			}
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("client: %v", err)
			}
			deadline := time.Now().Add(2 * time.Second)
			for u.canceled.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if u.canceled.Load() != 1 {
				t.Fatal("the upstream call was not cancelled within 2s of the client leaving")
			}
			checkNoLeaks(t, before, u.tracked)
		})
	}
}

// credView is the admin API's view of a credential, as far as these tests
// read it.
type credView struct {
	ID          string     `json:"id"`
	State       string     `json:"state"`
	Disabled    bool       `json:"disabled"`
	Account     string     `json:"account"`
	ExpiresAt   *time.Time `json:"expires_at"`
	LastRefresh *time.Time `json:"last_refresh"`
	NextRenewal *time.Time `json:"next_renewal"`
	LastError   string     `json:"last_error"`
	Requests    uint64     `json:"requests"`
}

func getCred(t *testing.T, id string) credView {
	t.Helper()
	status, body := admin(t, "GET", "/proxycast/credentials/iflow/"+id, "")
	var v credView
	if status != 200 || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("GET %s: %d %s", id, status, body)
	}
	return v
}

// settledCred is getCred once no renewal is under way: a renewal records
// its outcome (last_error, the renewed key) a moment before it is over,
// and reading the stored state again after a change (a login, a new
// token) is a renewal too, a short one.
func settledCred(t *testing.T, id string) credView {
	t.Helper()
	var v credView
	waitFor(t, id+" with no renewal under way", func() bool {
		v = getCred(t, id)
		return v.State != "refreshing"
	})
	return v
}

// TestTokenEndpointDown: while the token endpoint is down, a due refresh
// fails, the still-valid key keeps serving and the admin API shows the
// error; once the endpoint is back, a refresh goes through.
func TestTokenEndpointDown(t *testing.T) {
	srv, tr := trackedIFlow(t)
	acct := srv.AddAccount("down@example.com", "")
	srv.SetTokenBehavior(iflowtest.TokenDown)
	root := t.TempDir()
	oldRefresh := writeToken(t, root, "iflow/oauth.json", srv, acct, 2*time.Hour, true)
	startWithStorage(t, root, oauthSiteAt(tr.URL, "iflow/oauth.json", ""))
	before := baseline()

	// The token is inside the refresh lead: the first refresh fails at once.
	waitFor(t, "the failed refresh to show", func() bool { return getCred(t, "oauth-1").LastError != "" })
	v := settledCred(t, "oauth-1")
	if v.State != "active" || !strings.Contains(v.LastError, "503") {
		t.Errorf("while the token endpoint is down: state %q, last_error %q", v.State, v.LastError)
	}
	for i := range 4 {
		resp, body := chat(t, chatBody(i%2 == 1))
		if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "oauth-1" {
			t.Fatalf("request %d with the old key: %d %s", i, resp.StatusCode, body)
		}
	}
	status, body := admin(t, "POST", "/proxycast/credentials/iflow/oauth-1/refresh", "")
	var failed struct {
		Error      string
		Credential credView
	}
	if status != 502 || json.Unmarshal([]byte(body), &failed) != nil || failed.Error == "" || failed.Credential.State != "active" {
		t.Errorf("refresh while down: %d %s", status, body)
	}
	if srv.RefreshCount() != 0 {
		t.Fatalf("refreshes %d while the endpoint is down", srv.RefreshCount())
	}
	if tok, _ := readToken(t, root, "iflow/oauth.json"); tok.RefreshToken != oldRefresh {
		t.Error("the token file changed although no refresh went through")
	}

	srv.SetTokenBehavior(iflowtest.TokenNormal)
	status, body = admin(t, "POST", "/proxycast/credentials/iflow/oauth-1/refresh", "")
	if status != 200 {
		t.Fatalf("refresh after the endpoint is back: %d %s", status, body)
	}
	v = getCred(t, "oauth-1")
	if v.State != "active" || v.LastError != "" || v.LastRefresh == nil || time.Until(*v.ExpiresAt) < 40*time.Hour {
		t.Errorf("after the refresh: %+v", v)
	}
	tok, _ := readToken(t, root, "iflow/oauth.json")
	if tok.RefreshToken == oldRefresh || tok.APIKey != acct.APIKey() {
		t.Error("the refreshed token was not stored")
	}
	if srv.RefreshCount() != 1 || srv.ReusedRefreshTokens() != 0 {
		t.Errorf("refreshes %d (want 1), reused refresh tokens %d", srv.RefreshCount(), srv.ReusedRefreshTokens())
	}
	if resp, body := chat(t, qwenBody); resp.StatusCode != 200 {
		t.Fatalf("after the refresh: %d %s", resp.StatusCode, body)
	}
	checkNoLeaks(t, before, tr)
}

func init() {
	caddy.RegisterModule(faultyStorage{})
}

// storeFails makes every Store of the proxycast_test_faulty storage fail.
var storeFails atomic.Bool

// faultyStorage is caddy.storage.proxycast_test_faulty: file storage
// whose writes fail while storeFails is set.
//
//	storage proxycast_test_faulty {
//		root <dir>
//	}
type faultyStorage struct {
	Root string `json:"root,omitempty"`
}

func (faultyStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.storage.proxycast_test_faulty",
		New: func() caddy.Module { return new(faultyStorage) },
	}
}

func (s faultyStorage) CertMagicStorage() (certmagic.Storage, error) {
	return &faultyFiles{FileStorage: &certmagic.FileStorage{Path: s.Root}}, nil
}

func (s *faultyStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	for d.NextBlock(0) {
		switch d.Val() {
		case "root":
			if !d.NextArg() {
				return d.ArgErr()
			}
			s.Root = d.Val()
		default:
			return d.Errf("unrecognized parameter %q", d.Val())
		}
	}
	if s.Root == "" {
		return d.Err("root is required")
	}
	return nil
}

type faultyFiles struct{ *certmagic.FileStorage }

var errInjected = errors.New("injected storage write failure")

func (s *faultyFiles) Store(ctx context.Context, key string, value []byte) error {
	s.hold(ctx, key)
	if storeFails.Load() {
		return errInjected
	}
	return s.FileStorage.Store(ctx, key, value)
}

// usageHang, while set, holds every call on the usage files
// (proxycast/usage/…) until it is closed; usageHeld counts the calls
// held.
var (
	usageHang atomic.Pointer[chan struct{}]
	usageHeld atomic.Int64
)

func (s *faultyFiles) hold(ctx context.Context, key string) {
	ch := usageHang.Load()
	if ch == nil || !strings.HasPrefix(key, "proxycast/usage") {
		return
	}
	usageHeld.Add(1)
	select {
	case <-*ch:
	case <-ctx.Done():
	}
}

func (s *faultyFiles) Load(ctx context.Context, key string) ([]byte, error) {
	s.hold(ctx, key)
	return s.FileStorage.Load(ctx, key)
}

func (s *faultyFiles) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	s.hold(ctx, path)
	return s.FileStorage.List(ctx, path, recursive)
}

// String names the storage, which keeps credential states across reloads.
func (s *faultyFiles) String() string { return "ProxycastTestFaulty:" + s.Path }

var (
	_ caddy.StorageConverter = (*faultyStorage)(nil)
	_ caddyfile.Unmarshaler  = (*faultyStorage)(nil)
)

// TestBudgetWithoutStorage: a token budget is checked in memory: while
// every call on the usage files hangs, a budgeted client is served, and
// refused once its budget is spent, as fast as ever.
func TestBudgetWithoutStorage(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	root := t.TempDir()
	opts := strings.Replace(globalOptions, "persist_config off", "persist_config off\n\tstorage proxycast_test_faulty {\n\t\troot "+root+"\n\t}", 1)
	newTester(t).InitServer(opts+site("\tproxycast {\n"+poolConfig(srv, "\t\tusage_sync 50ms\n\t\tclient b {\n\t\t\tkey b-key-0123456789\n\t\t\ttoken_budget 30/1000h\n\t\t}\n", "sk-a")+"\t}"), "caddyfile")
	settle(t)
	// The syncer stops (storing once more) before root is removed.
	t.Cleanup(func() { loadCaddyfile(t, globalOptions+site("\trespond ok")) })
	hang := make(chan struct{})
	usageHeld.Store(0)
	usageHang.Store(&hang)
	release := sync.OnceFunc(func() { usageHang.Store(nil); close(hang) })
	t.Cleanup(release)
	// The syncer is stuck on its next write.
	if resp, body := chat(t, chatBody(false), "Authorization", "Bearer b-key-0123456789"); resp.StatusCode != 200 {
		t.Fatalf("b's first request: %d %s", resp.StatusCode, body)
	}
	waitFor(t, "the syncer to hang on the storage", func() bool { return usageHeld.Load() > 0 })

	served, start := 1, time.Now()
	for ; served < 50; served++ {
		resp, body := chat(t, chatBody(served%2 == 1), "Authorization", "Bearer b-key-0123456789")
		if resp.StatusCode == http.StatusTooManyRequests && strings.Contains(body, "token_budget_exceeded") {
			break
		}
		if resp.StatusCode != 200 {
			t.Fatalf("request %d while the storage hangs: %d %s", served, resp.StatusCode, body)
		}
	}
	if served < 3 || served >= 50 {
		t.Errorf("served %d requests of a 30-token budget while the storage hangs", served)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("%d requests took %v while the storage hangs", served, d)
	}
	release()
}

// TestStorageWriteFailure: while the storage cannot write, a refreshed
// token is not used before it is stored (the old, still valid key keeps
// serving), admin changes are refused with a JSON 500 and change
// nothing; once writes work again the refreshed token is stored and used.
func TestStorageWriteFailure(t *testing.T) {
	srv, tr := trackedIFlow(t, "sk-spare")
	acct := srv.AddAccount("storage@example.com", "")
	root := t.TempDir()
	oldRefresh := writeToken(t, root, "iflow/oauth.json", srv, acct, 2*time.Hour, true)
	oldTok, _ := readToken(t, root, "iflow/oauth.json")
	storeFails.Store(true)
	t.Cleanup(func() { storeFails.Store(false) })
	opts := strings.Replace(globalOptions, "persist_config off", "persist_config off\n\tstorage proxycast_test_faulty {\n\t\troot "+root+"\n\t}", 1)
	newTester(t).InitServer(opts+"\n"+siteAddr+" {\n"+oauthSiteAt(tr.URL, "iflow/oauth.json", "")+"\n\thandle /health {\n\t\trespond ok\n\t}\n}\n", "caddyfile")
	settle(t)
	before := baseline()

	// The token is due at once: the refresh goes through upstream, but its
	// result cannot be stored.
	waitFor(t, "the refresh", func() bool { return srv.RefreshCount() == 1 })
	waitFor(t, "the store failure to show", func() bool {
		return strings.Contains(getCred(t, "oauth-1").LastError, "storing the renewed state")
	})
	v := getCred(t, "oauth-1")
	if v.ExpiresAt == nil || !v.ExpiresAt.Equal(oldTok.ExpiresAt) || v.LastRefresh != nil {
		t.Errorf("the unstored token is in use: expires_at %v (old %v), last_refresh %v", v.ExpiresAt, oldTok.ExpiresAt, v.LastRefresh)
	}
	if v.State != "refreshing" {
		t.Errorf("state %q while the renewed token waits to be stored, want refreshing", v.State)
	}
	for i := range 4 {
		resp, body := chat(t, chatBody(i%2 == 1))
		if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "oauth-1" {
			t.Fatalf("request %d while storage fails: %d from %q: %s", i, resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), body)
		}
	}

	// Admin changes need the storage: refused, nothing changed.
	token := fmt.Sprintf(`{"access_token":"a","refresh_token":"r","expires_at":%q,"api_key":"sk-x"}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/proxycast/credentials/iflow", `{"id":"spare","auth_type":"api_key","api_key":"sk-spare"}`},
		{"POST", "/proxycast/credentials/iflow", `{"id":"o2","auth_type":"oauth","token":` + token + `}`},
		{"PATCH", "/proxycast/credentials/iflow/oauth-1", `{"disabled":true}`},
		{"DELETE", "/proxycast/credentials/iflow/oauth-1", ""},
	} {
		status, body := admin(t, c.method, c.path, c.body)
		var e struct{ Error string }
		if status != 500 || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, "injected") {
			t.Errorf("%s %s while storage fails: %d %s", c.method, c.path, status, body)
		}
	}
	if vs := list(t); len(vs) != 1 || vs["oauth-1"].Disabled {
		t.Errorf("a refused change took effect: %+v", vs)
	}
	for _, name := range []string{"runtime.json", "iflow/o2.json"} {
		if _, err := os.Stat(filepath.Join(root, "proxycast", name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after refused changes: %v", name, err)
		}
	}
	if tok, _ := readToken(t, root, "iflow/oauth.json"); tok.RefreshToken != oldRefresh {
		t.Error("the token file changed while storage failed")
	}
	if srv.RefreshCount() != 1 || srv.ReusedRefreshTokens() != 0 {
		t.Errorf("refreshes %d (want 1: the renewed token waits to be stored), reused refresh tokens %d", srv.RefreshCount(), srv.ReusedRefreshTokens())
	}

	// Writes work again: the renewed token is stored (retried with
	// backoff from 1s) and then used.
	storeFails.Store(false)
	deadline := time.Now().Add(20 * time.Second) // the retries back off: 1s, 2s, 4s, 8s…
	for {
		if tok, _ := readToken(t, root, "iflow/oauth.json"); tok.RefreshToken != oldRefresh {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the renewed token was not stored within 20s of writes working again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	tok, mode := readToken(t, root, "iflow/oauth.json")
	if tok.APIKey != acct.APIKey() || tok.Account != "storage@example.com" || time.Until(tok.ExpiresAt) < 40*time.Hour || mode != 0o600 {
		t.Errorf("stored token: key ok %v, account %q, expires in %v, mode %o", tok.APIKey == acct.APIKey(), tok.Account, time.Until(tok.ExpiresAt), mode)
	}
	waitFor(t, "the stored token to be in use", func() bool {
		v := getCred(t, "oauth-1")
		return v.ExpiresAt != nil && v.ExpiresAt.Equal(tok.ExpiresAt)
	})
	if v := settledCred(t, "oauth-1"); v.State != "active" || v.LastError != "" || v.LastRefresh == nil {
		t.Errorf("after storing: %+v", v)
	}
	if resp, body := chat(t, qwenBody); resp.StatusCode != 200 {
		t.Fatalf("after storing: %d %s", resp.StatusCode, body)
	}
	if srv.RefreshCount() != 1 || srv.ReusedRefreshTokens() != 0 {
		t.Errorf("refreshes %d (want 1), reused refresh tokens %d", srv.RefreshCount(), srv.ReusedRefreshTokens())
	}
	if status, body := admin(t, "POST", "/proxycast/credentials/iflow", `{"id":"spare","auth_type":"api_key","api_key":"sk-spare"}`); status != 201 {
		t.Errorf("adding once writes work: %d %s", status, body)
	}
	if status, body := admin(t, "DELETE", "/proxycast/credentials/iflow/spare", ""); status != 204 {
		t.Errorf("deleting: %d %s", status, body)
	}
	checkNoLeaks(t, before, tr)
}

// TestReloadDuringUpload: a request whose body is still arriving when the
// config is reloaded is served to the end by the config it started with.
func TestReloadDuringUpload(t *testing.T) {
	u := newFaultUpstream(t)
	cfg := faultConfig(u, "", "good", "sk-good")
	startCaddy(t, cfg)
	before := baseline()

	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, baseURL+"/v1/chat/completions", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+clientKey)
	// With Expect: 100-continue, the client sends the body only once the
	// server says go on, which Go's server does when the handler first
	// reads the body: a write into the pipe returns once the handler is
	// reading.
	req.Header.Set("Expect", "100-continue")
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ExpectContinueTimeout = time.Minute
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(raw), err}
	}()
	body := chatBody(false)
	wrote := make(chan error, 1)
	go func() {
		_, err := io.WriteString(pw, body[:10])
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case r := <-done:
		t.Fatalf("the request ended before its body was read: %d %v %s", r.status, r.err, r.body)
	case <-time.After(30 * time.Second):
		t.Fatal("the handler never read the body")
	}

	startCaddy(t, cfg+"\n\t\tmax_attempts 2") // a reload: the old config is cleaned up
	if _, err := io.WriteString(pw, body[10:]); err != nil {
		t.Fatalf("sending the rest of the body after the reload: %v", err)
	}
	pw.Close()
	r := <-done
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, "good answer") {
		t.Fatalf("the request under way during the reload: %d %v %s", r.status, r.err, r.body)
	}
	checkNoLeaks(t, before, u.tracked)
}

// TestStorageWriteFailureKeyExpires: when the old key expires while the
// renewed one still waits to be stored, the credential cannot serve; its
// requests go to another credential at once instead of waiting for the
// storage to come back.
func TestStorageWriteFailureKeyExpires(t *testing.T) {
	srv, tr := trackedIFlow(t, "sk-spare")
	acct := srv.AddAccount("expiring@example.com", "")
	root := t.TempDir()
	oldRefresh := writeToken(t, root, "iflow/oauth.json", srv, acct, 2*time.Second, true)
	storeFails.Store(true)
	t.Cleanup(func() { storeFails.Store(false) })
	opts := strings.Replace(globalOptions, "persist_config off", "persist_config off\n\tstorage proxycast_test_faulty {\n\t\troot "+root+"\n\t}", 1)
	site := oauthSiteAt(tr.URL, "iflow/oauth.json", "\t\t\t\tcredential spare {\n\t\t\t\t\tauth_type api_key\n\t\t\t\t\tapi_key sk-spare\n\t\t\t\t}")
	site = strings.Replace(site, "\t\tcredential_pool {", "\t\tselection fill_first\n\t\tcredential_pool {", 1)
	newTester(t).InitServer(opts+"\n"+siteAddr+" {\n"+site+"\n\thandle /health {\n\t\trespond ok\n\t}\n}\n", "caddyfile")
	settle(t)
	before := baseline()

	waitFor(t, "the store failure", func() bool {
		return strings.Contains(getCred(t, "oauth-1").LastError, "storing the renewed state")
	})
	oldTok, _ := readToken(t, root, "iflow/oauth.json")
	time.Sleep(time.Until(oldTok.ExpiresAt) + 100*time.Millisecond)

	// The old key has expired and the new one is not stored: the spare
	// serves, without waiting (a request held up would wait for a store
	// that keeps failing, past any timeout).
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPost, baseURL+"/v1/chat/completions", strings.NewReader(chatBody(i%2 == 1)))
		req.Header.Set("Authorization", "Bearer "+clientKey)
		resp, err := client.Do(req) // its timeout catches a request held up
		if err != nil {
			t.Fatalf("request %d with the old key expired: %v", i, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Proxycast-Credential") != "spare" {
			t.Fatalf("request %d with the old key expired: %d from %q: %s", i, resp.StatusCode, resp.Header.Get("X-Proxycast-Credential"), raw)
		}
	}
	if srv.RefreshCount() != 1 || srv.ReusedRefreshTokens() != 0 {
		t.Errorf("refreshes %d (want 1), reused refresh tokens %d", srv.RefreshCount(), srv.ReusedRefreshTokens())
	}

	storeFails.Store(false)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if tok, _ := readToken(t, root, "iflow/oauth.json"); tok.RefreshToken != oldRefresh {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the renewed token was not stored within 20s of writes working again")
		}
	}
	waitFor(t, "oauth-1 to serve again", func() bool {
		resp, _ := chat(t, qwenBody)
		return resp.StatusCode == 200 && resp.Header.Get("X-Proxycast-Credential") == "oauth-1"
	})
	checkNoLeaks(t, before, tr)
}

// TestAdminDuringReload: admin changes made while configs load back to
// back take effect at once in whichever config ends up running, and leave
// no credential state behind in the configs that are gone.
func TestAdminDuringReload(t *testing.T) {
	u := newFaultUpstream(t)
	var idKeys []string
	for i := range 200 { // a config that takes a while to provision
		idKeys = append(idKeys, fmt.Sprintf("k%d", i), "sk-good")
	}
	root := t.TempDir()
	site := "\tproxycast {\n" + faultConfig(u, "", idKeys...) + "\n\t}"
	config := storageOptions(root) + "\n" + siteAddr + " {\n" + site + "\n\thandle /health {\n\t\trespond ok\n\t}\n}\n"
	startWithStorage(t, root, site)
	before := baseline()

	// Fresh connections: a reload replaces the admin server, whose idle
	// connections would fail the next call.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableKeepAlives = true
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	call := func(method, path, contentType, body string, header ...string) (int, string) {
		for range 5 {
			req, _ := http.NewRequest(method, adminURL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			for i := 0; i+1 < len(header); i += 2 {
				req.Header.Set(header[i], header[i+1])
			}
			resp, err := client.Do(req)
			if err != nil {
				// Dropped as the admin server was replaced: no handler saw
				// it. Send it again.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(raw)
		}
		return 0, "no answer after 5 tries"
	}

	stop := make(chan struct{})
	var reloads atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if status, body := call("POST", "/load", "text/caddyfile", config, "Cache-Control", "must-revalidate"); status != 200 {
				t.Errorf("reload: %d %s", status, body)
				return
			}
			reloads.Add(1)
		}
	})
	deadline := time.Now().Add(3 * time.Second)
	rounds := 0
	for ; time.Now().Before(deadline) && !t.Failed(); rounds++ {
		for _, s := range []struct {
			method, path, body string
			status             int
		}{
			{"POST", "/proxycast/credentials/iflow", `{"id":"x","auth_type":"api_key","api_key":"sk-good"}`, 201},
			{"GET", "/proxycast/credentials/iflow/x", "", 200},
			{"PATCH", "/proxycast/credentials/iflow/x", `{"disabled":true}`, 200},
			{"DELETE", "/proxycast/credentials/iflow/x", "", 204},
			{"GET", "/proxycast/credentials/iflow/x", "", 404},
		} {
			if status, body := call(s.method, s.path, "application/json", s.body); status != s.status {
				t.Errorf("round %d: %s %s: %d, want %d: %s", rounds, s.method, s.path, status, s.status, body)
				break
			}
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d admin rounds during %d reloads", rounds, reloads.Load())
	if reloads.Load() < 3 {
		t.Errorf("only %d reloads", reloads.Load())
	}
	if vs := list(t); len(vs) != 200 {
		t.Errorf("%d credentials after the reloads, want the config's 200", len(vs))
	}
	if v := scrapeMetric(t, "caddy_proxycast_credential_state", `credential="x"`); v != -1 {
		t.Errorf("the removed credential x still has a state (gauge %v)", v)
	}
	transport.CloseIdleConnections()
	checkNoLeaks(t, before, u.tracked)
}
