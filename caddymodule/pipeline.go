package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/credpool"
	"github.com/proxycast/caddy-proxycast/provider"
	"github.com/proxycast/caddy-proxycast/responses"
	"github.com/proxycast/caddy-proxycast/usage"
)

// maxModelName bounds the model name a client may send; it keeps glob
// matching cheap.
const maxModelName = 256

var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// chatRequest is one client request on its way through the pool.
type chatRequest struct {
	w       http.ResponseWriter
	r       *http.Request
	dialect dialect
	ps      *providerState
	pool    *credpool.Pool[*account] // the generation this request uses
	// format is the provider's format the body was translated into (the
	// client's own where the provider speaks it).
	format provider.Format
	body   []byte
	model  string // upstream model
	// asked is the model the client named, which translated answers
	// carry.
	asked  string
	stream bool
	// wantsUsage is whether a streaming client asked for usage
	// (stream_options.include_usage); when it did not, an upstream's
	// usage-only chunk is counted but not passed on.
	wantsUsage bool
	// responses is a Responses request translated for the provider,
	// which its answer is translated back for.
	responses *responses.Request
	logger    *zap.Logger
}

// log returns a logger for one attempt. It is built only when there is
// something to log, since a child logger costs allocations on every
// request otherwise.
func (cr *chatRequest) log(credential string) *zap.Logger {
	return cr.logger.With(zap.String("provider", cr.ps.name), zap.String("model", cr.model), zap.String("credential", credential))
}

// serveChat is the request path of every dialect: read the body, route
// the model, then try credentials until one answers or nothing more can
// be tried. Like attempt's, its frame stays on the stack of every open
// stream.
func (h *Handler) serveChat(w http.ResponseWriter, r *http.Request, d dialect) error {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			bodyBuffers.Put(buf)
		}
	}()
	cr := h.readChat(w, r, d, buf)
	if cr == nil {
		return nil // answered
	}
	session := ""
	if h.StickyHeader != "" {
		session = r.Header.Get(h.StickyHeader)
	}

	var tried []*credpool.Entry[*account]
	var last *provider.Error
	for range h.MaxAttempts {
		entry, err := cr.pool.Pick(cr.model, session, tried)
		if err != nil {
			if last == nil {
				d.writeError(w, unavailable(cr.ps, cr.model, err))
				return nil
			}
			break // nothing left to try: the client gets the last failure
		}
		if len(tried) > 0 {
			metricFailovers.WithLabelValues(cr.ps.name, last.Kind.String()).Inc()
		}
		tried = append(tried, entry)
		failure := h.attempt(cr, entry)
		if failure == nil {
			return nil
		}
		last = failure
	}
	d.writeError(w, last)
	return nil
}

// readChat reads and checks the request into buf, routes its model and
// translates the body into a format the provider speaks. It answers the
// client itself, and returns nil, when the request cannot go on.
func (h *Handler) readChat(w http.ResponseWriter, r *http.Request, d dialect, buf *bytes.Buffer) *chatRequest {
	body, e := h.readBody(w, r, buf)
	if e != nil {
		d.writeError(w, e)
		return nil
	}
	model, stream, e := requestModel(body)
	if e == nil {
		e = mayUse(clientOf(r), model)
	}
	if e != nil {
		d.writeError(w, e)
		return nil
	}
	provName, upstreamModel, ok := h.router.route(model)
	if !ok {
		d.writeError(w, clientError(http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("no routing rule matches model %q and no default_provider is set", model)))
		return nil
	}
	ps := h.providers[provName]
	cr := &chatRequest{
		w: w, r: r, dialect: d, ps: ps, pool: ps.pool(), model: upstreamModel, asked: model, stream: stream,
		logger: h.logger,
	}
	if cr.body, e = cr.translate(body); e != nil {
		d.writeError(w, e)
		return nil
	}
	if opts, ok := provider.Field(body, "stream_options"); ok && stream {
		cr.wantsUsage = provider.BoolField(opts, "include_usage")
	}
	return cr
}

// readBody reads a request body into buf and checks that it is a JSON
// object, refusing what is too large.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) ([]byte, *provider.Error) {
	tooLarge := clientError(http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
		fmt.Sprintf("request body is larger than %d bytes", h.MaxBodySize))
	// The body stays in memory until the answer ends; with its length
	// known, one allocation of that size instead of doubling growth. Only
	// up to 64 KiB is trusted before the bytes arrive.
	if r.ContentLength > h.MaxBodySize {
		// Said up front: none of it is read, nor waited for. Go's HTTP/1
		// server would read what it could of the body before answering,
		// to keep the connection; it is closed instead.
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		return nil, tooLarge
	}
	if n := r.ContentLength; n > 0 && n <= h.MaxBodySize {
		buf.Grow(int(min(n, 64<<10)) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.MaxBodySize)); err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			return nil, tooLarge
		}
		return nil, clientError(http.StatusBadRequest, "invalid_request_error", "bad_request", "reading the request body failed")
	}
	body := buf.Bytes()
	if !json.Valid(body) || bytes.TrimSpace(body)[0] != '{' {
		return nil, clientError(http.StatusBadRequest, "invalid_request_error", "invalid_json",
			"the request body must be a JSON object")
	}
	return body, nil
}

// requestModel reads the model and the stream switch of a request body,
// the two members every dialect has.
func requestModel(body []byte) (model string, stream bool, e *provider.Error) {
	// The upstream must read the model and the stream switch routed on,
	// and an upstream that matches member names without regard to case
	// (or takes the last of two) would read another.
	if key, names := provider.AmbiguousMember(body, "model", "stream"); key != "" {
		return "", false, paramError(key, fmt.Sprintf("the body has %d members that read as %q (%s); send one %q", len(names), key, quoteAll(names), key))
	}
	model, ok := provider.StringField(body, "model")
	if !ok || model == "" {
		return "", false, paramError("model", "you must provide a model parameter (a string)")
	}
	if len(model) > maxModelName {
		return "", false, paramError("model", fmt.Sprintf("model name is longer than %d bytes", maxModelName))
	}
	if raw, ok := provider.Field(body, "stream"); ok {
		switch string(raw) {
		case "true":
			stream = true
		case "false", "null":
		default:
			return "", false, paramError("stream", "stream must be true or false")
		}
	}
	return model, stream, nil
}

// attempt tries one credential. It returns nil once the client has its
// answer (or is gone), or the failure when another credential may still
// serve, with nothing written to the client.
//
// A stream is relayed from inside attempt, so attempt's frame stays on
// the stack of every open stream: its cold paths (no key, a failed call)
// live in functions of their own to keep that frame small.
func (h *Handler) attempt(cr *chatRequest, entry *credpool.Entry[*account]) *provider.Error {
	acc, ctx := entry.Value, cr.r.Context()
	cr.w.Header().Set(CredentialHeader, entry.ID)

	apiKey, err := acc.keys.APIKey(ctx)
	if err != nil {
		return cr.noKey(entry, err)
	}

	start := time.Now()
	callCtx := ctx
	var watch *watchdog
	if cr.stream {
		// Bound the wait for the first event, then the silence between
		// events: a stalled stream ends instead of holding the client.
		// (Plain answers are bounded by the transport's header timeout.)
		var cancel context.CancelFunc
		callCtx, cancel = context.WithCancel(ctx)
		defer cancel()
		watch = newWatchdog(cancel, time.Duration(h.ResponseTimeout), time.Duration(h.StreamIdleTimeout))
		defer watch.stop()
	}
	resp, err := cr.ps.provider.Chat(callCtx, &provider.Call{
		Model: cr.model, Format: cr.format, Body: cr.body, Stream: cr.stream, APIKey: apiKey,
		Transport: acc.client.Transport, Header: cr.r.Header,
	})
	if err != nil {
		// Even one that wraps io.EOF: an upstream that hung up.
		return h.callFailed(cr, entry, apiKey, start, watch, err)
	}
	if resp.Events == nil {
		return h.answer(cr, entry, apiKey, start, resp)
	}
	if watch != nil {
		resp.Events = watch.wrap(resp.Events)
	}
	events, counted := cr.translateStream(resp.Events)
	defer counted.release()
	// Wait for the first event before answering, so that a stream that
	// fails at once can still go to another credential. end is io.EOF
	// for a stream with no event at all.
	first, end := events.Next()
	if end != nil && !errors.Is(end, io.EOF) {
		events.Close()
		return h.callFailed(cr, entry, apiKey, start, watch, end)
	}
	cr.pool.Succeeded(entry)
	ttfb := time.Now()
	every, ping := cr.dialect.keepalive()
	mid := relay(cr.w, events, first, end, cr.dialect.framer(cr.wantsUsage), every, ping)
	used, estimated := counted.cost(cr)
	acc.used(cr.model, used, estimated)
	clientUsed(clientOf(cr.r), cr.asked, used, estimated)
	if mid != nil && ctx.Err() == nil {
		cr.streamFailed(entry, mid)
	}
	acc.metrics.observe(http.StatusOK, start, ttfb)
	return nil
}

// answer passes a plain answer on, in the client's format.
func (h *Handler) answer(cr *chatRequest, entry *credpool.Entry[*account], apiKey string, start time.Time,
	resp *provider.Response) *provider.Error {
	body, err := cr.translateAnswer(resp.Body)
	if err != nil {
		return h.callFailed(cr, entry, apiKey, start, nil, err)
	}
	cr.pool.Succeeded(entry)
	ttfb := time.Now()
	hdr := cr.w.Header()
	hdr.Set("Content-Type", resp.ContentType)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	cr.w.WriteHeader(http.StatusOK)
	_, _ = cr.w.Write(body)
	u, ok := usageOf(cr.format, resp.Body)
	estimated := !ok || u.IsZero()
	if estimated {
		u = provider.Usage{Prompt: usage.Prompt(cr.format, cr.body), Completion: usage.Answer(cr.format, resp.Body)}
	}
	entry.Value.used(cr.model, u, estimated)
	clientUsed(clientOf(cr.r), cr.asked, u, estimated)
	entry.Value.metrics.observe(http.StatusOK, start, ttfb)
	return nil
}

// noKey is attempt's answer when the credential has no usable key.
func (cr *chatRequest) noKey(entry *credpool.Entry[*account], err error) *provider.Error {
	if cr.r.Context().Err() != nil {
		return nil
	}
	// The renewal machinery has recorded why; no rest on top.
	cr.log(entry.ID).Warn("credential has no usable key", zap.Error(err))
	return noKeyError(entry.ID)
}

// noKeyError is the failure of a credential that has no usable key.
func noKeyError(id string) *provider.Error {
	return &provider.Error{Status: http.StatusServiceUnavailable, Type: "api_error", Code: "credential_unavailable",
		Message: fmt.Sprintf("credential %q has no usable key right now", id), Kind: provider.KindTransient}
}

// callFailed classifies a call that failed before anything reached the
// client: a client error is answered at once; anything else rests the
// credential as it calls for and is returned, for another to try.
func (h *Handler) callFailed(cr *chatRequest, entry *credpool.Entry[*account], apiKey string, start time.Time,
	watch *watchdog, err error) *provider.Error {
	if watch != nil && watch.fired.Load() {
		err = watch.err()
	}
	if cr.r.Context().Err() != nil {
		cr.log(entry.ID).Debug("client went away", zap.Error(err))
		return nil
	}
	// Whatever made the error (the provider, the transport), it holds
	// neither the key nor the proxy's password.
	pe := provider.TransportError(err)
	pe.Message = provider.Scrub(pe.Message, apiKey, entry.Value.proxySecret)
	entry.Value.metrics.observe(pe.Status, start, time.Time{})
	cr.log(entry.ID).Warn("upstream attempt failed", zap.Int("status", pe.Status), zap.String("code", pe.Code),
		zap.Stringer("kind", pe.Kind), zap.String("message", pe.Message))
	if pe.Kind == provider.KindClient {
		cr.dialect.writeError(cr.w, pe)
		return nil
	}
	h.failed(cr, entry, apiKey, pe)
	return pe
}

// streamFailed rests the credential of a stream that broke after it
// began (the client has had its error event).
func (cr *chatRequest) streamFailed(entry *credpool.Entry[*account], mid *provider.Error) {
	cr.log(entry.ID).Warn("stream failed after it began", zap.String("code", mid.Code), zap.String("message", mid.Message))
	cr.pool.Failed(entry, cr.model, credpool.Failure{Kind: mid.Kind, Message: mid.Message})
}

// failed rests the credential as the failure calls for. A refused key of
// a renewable credential is renewed first (once) instead.
func (h *Handler) failed(cr *chatRequest, entry *credpool.Entry[*account], apiKey string, pe *provider.Error) {
	if pe.Kind == provider.KindAuth && entry.Value.renewing != nil && entry.Value.renewing.Rejected(apiKey) {
		return
	}
	d := cr.pool.Failed(entry, cr.model, credpool.Failure{Kind: pe.Kind, RetryAfter: pe.RetryAfter, Message: pe.Message})
	if d > 0 {
		metricCooldowns.WithLabelValues(cr.ps.name, entry.ID, pe.Kind.String()).Inc()
	}
}

// watchdog cancels an upstream call that stays silent too long: first
// until its first event, then between events.
type watchdog struct {
	timer       *time.Timer
	first, idle time.Duration
	fired       atomic.Bool
	started     atomic.Bool
}

func newWatchdog(cancel context.CancelFunc, first, idle time.Duration) *watchdog {
	w := &watchdog{first: first, idle: idle}
	w.timer = time.AfterFunc(first, func() {
		w.fired.Store(true)
		cancel()
	})
	return w
}

func (w *watchdog) stop() { w.timer.Stop() }

// err describes the silence that ended the call.
func (w *watchdog) err() *provider.Error {
	what, d := "the first event", w.first
	if w.started.Load() {
		what, d = "the next event", w.idle
	}
	return &provider.Error{Status: http.StatusGatewayTimeout, Type: "api_error", Code: "upstream_timeout",
		Message: fmt.Sprintf("the upstream sent nothing for %s while waiting for %s", d, what), Kind: provider.KindTransient}
}

// wrap resets the watchdog on every event and names the silence when it
// ended the stream.
func (w *watchdog) wrap(events provider.EventReader) provider.EventReader {
	return watchedEvents{EventReader: events, w: w}
}

type watchedEvents struct {
	provider.EventReader
	w *watchdog
}

// EventBuffered passes the wrapped reader's answer on (embedding would
// hide it).
func (e watchedEvents) EventBuffered() bool {
	b, ok := e.EventReader.(provider.BufferedEvents)
	return ok && b.EventBuffered()
}

func (e watchedEvents) Next() ([]byte, error) {
	data, err := e.EventReader.Next()
	if err == nil {
		e.w.started.Store(true)
		e.w.timer.Reset(e.w.idle)
		return data, nil
	}
	if e.w.fired.Load() {
		return nil, e.w.err()
	}
	return nil, err
}

// unavailable is the answer when no credential can serve: 429 with
// Retry-After when all that could serve are resting, else 503.
func unavailable(ps *providerState, model string, err error) *provider.Error {
	var u *credpool.Unavailable
	if errors.As(err, &u) && u.NoneServes {
		return clientError(http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("no credential of provider %q serves model %q: their models lists leave it out", ps.name, model))
	}
	if errors.As(err, &u) && u.ModelUnsupported {
		return clientError(http.StatusBadRequest, "invalid_request_error", "model_not_supported",
			fmt.Sprintf("no credential of provider %q can serve model %q: each said it does not support it (asked again from %s)",
				ps.name, model, u.RetryAt.UTC().Format(time.RFC3339)))
	}
	if errors.As(err, &u) && u.Cooling {
		wait := max(time.Until(u.RetryAt), time.Second)
		return &provider.Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "all_credentials_cooling",
			Message: fmt.Sprintf("every credential of provider %q that can serve model %q is cooling down; the first is back in %s (at %s)",
				ps.name, model, wait.Round(time.Second), u.RetryAt.UTC().Format(time.RFC3339)),
			RetryAfter: wait, Kind: provider.KindRateLimit}
	}
	return &provider.Error{Status: http.StatusServiceUnavailable, Type: "api_error", Code: "no_usable_credential",
		Message:    fmt.Sprintf("provider %q has no usable credential for model %q (all disabled, waiting for a new login, or without a key until a renewal succeeds)", ps.name, model),
		RetryAfter: 30 * time.Second, Kind: provider.KindTransient}
}

// relay passes a stream on event by event, framed for the client,
// flushing when nothing more is at hand; it starts with first (or with
// the end of the stream when err is io.EOF). A stream that ends as it
// should gets the framer's end; a failure after the stream began is
// sent as the framer's error event and returned. With every > 0, ping
// goes out whenever the stream has been silent that long.
func relay(w http.ResponseWriter, events provider.EventReader, first []byte, err error, f framer,
	every time.Duration, ping []byte) *provider.Error {
	defer events.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := &streamWriter{w: w, rc: http.NewResponseController(w)}
	if every > 0 {
		out.keepAlive(every, ping)
		defer out.stop()
	}
	buffered, _ := events.(provider.BufferedEvents)
	data := first
	for err == nil {
		// Flush when nothing more is at hand: events that arrived together
		// leave in one write, and none waits for the network.
		flush := buffered == nil || !buffered.EventBuffered()
		bp := eventBuffers.Get().(*[]byte)
		*bp = f.event((*bp)[:0], data)
		ok := (len(*bp) == 0 && !flush) || out.write(*bp, flush)
		putEventBuffer(bp)
		if !ok {
			return nil // the client is gone; its context cancels the upstream call
		}
		data, err = events.Next()
	}
	bp := eventBuffers.Get().(*[]byte)
	defer putEventBuffer(bp)
	if !errors.Is(err, io.EOF) {
		pe := provider.TransportError(err)
		out.write(f.fail((*bp)[:0], pe), true)
		return pe
	}
	out.write(f.end((*bp)[:0]), true)
	return nil
}

// eventBuffers hold a frame while it is written; a stream waiting for
// its next event holds none.
var eventBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func putEventBuffer(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		eventBuffers.Put(bp)
	}
}

// streamWriter writes a stream's frames; with a keepalive, its pings
// come from a timer, and the writer serialises the two. The timer is not
// reset for every write: it counts them, and pings only when none came
// since it last looked (so a ping goes out after one to two intervals of
// silence).
type streamWriter struct {
	w      io.Writer
	rc     *http.ResponseController
	mu     sync.Mutex // held while writing, when pings may come
	timer  *time.Timer
	writes uint64 // guarded by mu
	done   bool
}

func (s *streamWriter) write(b []byte, flush bool) bool {
	if s.timer == nil {
		return s.send(b, flush)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.send(b, flush)
}

func (s *streamWriter) send(b []byte, flush bool) bool {
	if len(b) > 0 {
		if _, err := s.w.Write(b); err != nil {
			return false
		}
	}
	return !flush || s.rc.Flush() == nil
}

// keepAlive sends ping whenever nothing was written for every.
func (s *streamWriter) keepAlive(every time.Duration, ping []byte) {
	var seen uint64
	s.mu.Lock() // the timer is set before its function can read it
	defer s.mu.Unlock()
	s.timer = time.AfterFunc(every, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.done {
			return
		}
		if s.writes == seen && !s.send(ping, true) {
			return
		}
		seen = s.writes
		s.timer.Reset(every)
	})
}

// stop ends the pings before the handler returns: the ResponseWriter
// must not be used after that.
func (s *streamWriter) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	s.timer.Stop()
}

// usageCounter reads the usage a provider's stream reports, in the
// provider's format, before any translation, and keeps the events to
// estimate the usage from should the stream report none.
type usageCounter struct {
	provider.EventReader
	format provider.Format
	used   provider.Usage
	// reported is the translation's own reading of the usage, where it
	// reads it (then the counter does not).
	reported func() provider.Usage
	out      *usage.Output
}

func newUsageCounter(events provider.EventReader, format provider.Format) *usageCounter {
	return &usageCounter{EventReader: events, format: format, out: usage.NewOutput(format)}
}

func (c *usageCounter) Next() ([]byte, error) {
	data, err := c.EventReader.Next()
	if err == nil && c.out != nil {
		c.out.Add(data)
		if c.reported == nil {
			if u, ok := usageOf(c.format, data); ok {
				c.used = mergeUsage(c.used, u)
			}
		}
	}
	return data, err
}

// cost is what the stream cost: as it reported, or else as estimated from
// the prompt and the events.
func (c *usageCounter) cost(cr *chatRequest) (u provider.Usage, estimated bool) {
	u = c.used
	if c.reported != nil {
		u = c.reported()
	}
	if !u.IsZero() || c.out == nil {
		return u, false
	}
	return provider.Usage{Prompt: usage.Prompt(cr.format, cr.body), Completion: c.out.Tokens()}, true
}

// release gives the kept events back; the counter keeps no more.
func (c *usageCounter) release() {
	if c.out != nil {
		c.out.Release()
		c.out = nil
	}
}

// EventBuffered passes the wrapped reader's answer on.
func (c *usageCounter) EventBuffered() bool {
	b, ok := c.EventReader.(provider.BufferedEvents)
	return ok && b.EventBuffered()
}

// mergeUsage takes what a later report says: a stream's counts only
// grow, and an Anthropic stream tells its input at the start and its
// output at the end.
func mergeUsage(u, later provider.Usage) provider.Usage {
	if later.Prompt > 0 {
		u.Prompt, u.Cached = later.Prompt, later.Cached
	}
	if later.Completion > 0 {
		u.Completion, u.Reasoning = later.Completion, later.Reasoning
	}
	return u
}

// quoteAll lists names quoted and comma-separated.
func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
