// Command load is the closed-loop HTTP load generator of the proxycast
// benchmark: -c workers each send a request, wait for the whole answer and
// send the next, for -d. It prints one JSON line of results on stdout and
// exits with status 1 if any request failed (transport error, non-2xx
// status, a body without -expect, a chat stream without "data: [DONE]",
// an Anthropic Messages stream (-messages) whose events are out of order
// or that does not end with message_stop, or a stream with fewer than
// -min-chunks chunks).
//
//	load -url http://127.0.0.1:9801/v1/chat/completions -c 64 -d 10s \
//	     -header 'Authorization: Bearer bench-key' -body '{"model":"qwen3-max",...}'
//	load -url http://127.0.0.1:9804/v1/messages -c 1 -d 10s -messages -events 64 -min-chunks 62 \
//	     -header 'x-api-key: bench-key' -header 'anthropic-version: 2023-06-01' \
//	     -body '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,...}'
//
// With -report FILE it instead reads such JSON lines (with the target and
// scenario labels set) and prints the comparison table of run.sh.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// Result is the JSON line printed for one run.
type Result struct {
	Target   string         `json:"target,omitempty"`
	Scenario string         `json:"scenario,omitempty"`
	Round    int            `json:"round,omitempty"`
	URL      string         `json:"url"`
	Conns    int            `json:"c"`
	Stream   bool           `json:"stream"`
	Seconds  float64        `json:"seconds"`
	Requests int64          `json:"requests"`
	Errors   int64          `json:"errors"`
	Statuses map[string]int `json:"statuses"`
	RPS      float64        `json:"rps"`
	Latency  Percentiles    `json:"latency_us"`
	TTFC     *Percentiles   `json:"ttfc_us,omitempty"`
	// Tail is, for each stream, the time from its first data line to its
	// end: the time the rest of the stream took once it had begun.
	Tail *Percentiles `json:"tail_us,omitempty"`
	// ChunksPerRq counts a chat stream's data lines but [DONE], and a
	// Messages stream's content_block_delta events.
	ChunksPerRq float64 `json:"chunks_per_req,omitempty"`
	// Messages is set when the answers were Anthropic Messages streams.
	Messages bool `json:"messages,omitempty"`
	// Responses is set when the answers were OpenAI Responses streams.
	Responses bool `json:"responses,omitempty"`
	// UpstreamEvents is a label: the chunks the upstream sent per stream
	// (its usage chunk not counted), for the report's figures per event.
	UpstreamEvents int `json:"upstream_events,omitempty"`
	// CPU is CPU time (user+system) per completed request, in µs, of each
	// process named in -cpu-pids and of this load generator ("load"), over
	// the run.
	CPU map[string]float64 `json:"cpu_us_per_req,omitempty"`
	// Busy is the share of the machine's CPU time (all cores) that was
	// not idle during the run, in percent: about 100 means CPU-bound.
	Busy float64 `json:"machine_busy_pct,omitempty"`
}

// Percentiles are in microseconds.
type Percentiles struct {
	Mean float64 `json:"mean"`
	P50  int64   `json:"p50"`
	P90  int64   `json:"p90"`
	P99  int64   `json:"p99"`
	Max  int64   `json:"max"`
}

func percentiles(v []int64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	slices.Sort(v)
	var sum float64
	for _, x := range v {
		sum += float64(x)
	}
	at := func(q float64) int64 {
		i := int(q*float64(len(v))+0.5) - 1
		return v[max(0, min(i, len(v)-1))]
	}
	return Percentiles{Mean: sum / float64(len(v)), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: v[len(v)-1]}
}

type worker struct {
	lat, ttfc, tail []int64
	chunks          int64
	errors          int64
	statuses        map[int]int
	samples         []string
}

// spec is what every worker sends and what it checks in the answers.
type spec struct {
	url       string
	hdr       http.Header
	payload   []byte
	stream    bool
	messages  bool // the answer is an Anthropic Messages stream
	responses bool // the answer is an OpenAI Responses stream
	expect    []byte
	minChunks int
	deadline  time.Time
}

func main() {
	var headers headerFlags
	url := flag.String("url", "", "URL to POST to")
	conns := flag.Int("c", 1, "connections (closed-loop workers)")
	dur := flag.Duration("d", 10*time.Second, "duration of the run")
	body := flag.String("body", `{"model":"qwen3-max","messages":[{"role":"user","content":"hello"}]}`, "request body (JSON); @file reads a file")
	flag.Var(&headers, "header", "request header `Name: value` (repeatable)")
	stream := flag.Bool("stream", false, "the answer is SSE: measure time to first chunk and require data: [DONE]")
	responses := flag.Bool("responses", false, "the answer is an OpenAI Responses stream (implies -stream): require sequence numbers from 0 by one, response.created first and response.completed last, and count response.output_text.delta events as chunks")
	messages := flag.Bool("messages", false, "the answer is an Anthropic Messages stream (implies -stream): require its events in order, ending with message_stop, and count content_block_delta events as chunks")
	minChunks := flag.Int("min-chunks", 0, "fail a stream with fewer chunks than this (0: no check)")
	events := flag.Int("events", 0, "label: the chunks the upstream sends per stream, for figures per event")
	expect := flag.String("expect", "chat.completion", "substring every 2xx body must contain (empty: no check)")
	timeout := flag.Duration("timeout", 30*time.Second, "timeout of one request")
	target := flag.String("target", "", "label: the system under test (proxycast-iflow, proxycast-openai, reverse_proxy)")
	scenario := flag.String("scenario", "", "label: the scenario (latency, throughput, stream, stream64, messages64, …)")
	round := flag.Int("round", 0, "label: the round number")
	cpuPids := flag.String("cpu-pids", "", "name=pid,… of processes whose CPU time per request to report (Linux /proc)")
	report := flag.String("report", "", "print the comparison table of a file of result lines, then exit; more files may follow the flags (rounds of one file after another: medians over all)")
	flag.Parse()

	if *report != "" {
		os.Exit(printReport(append([]string{*report}, flag.Args()...)))
	}
	if *url == "" || *conns < 1 || *dur <= 0 {
		fmt.Fprintln(os.Stderr, "load: -url, -c ≥ 1 and -d > 0 are required")
		os.Exit(2)
	}
	payload := []byte(*body)
	if strings.HasPrefix(*body, "@") {
		var err error
		if payload, err = os.ReadFile((*body)[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(2)
		}
	}
	hdr := http.Header{"Content-Type": {"application/json"}}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "load: -header %q is not `Name: value`\n", h)
			os.Exit(2)
		}
		hdr.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	*stream = *stream || *messages || *responses
	if *stream {
		hdr.Set("Accept", "text/event-stream")
	}
	pids, err := parsePids(*cpuPids)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}

	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        *conns * 2,
		MaxIdleConnsPerHost: *conns * 2,
		MaxConnsPerHost:     *conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: *timeout}

	pids["load"] = os.Getpid()
	busy0, total0 := machineCPU()
	cpu0 := readCPU(pids)
	start := time.Now()
	sp := spec{url: *url, hdr: hdr, payload: payload, stream: *stream, messages: *messages, responses: *responses,
		expect: []byte(*expect), minChunks: *minChunks, deadline: start.Add(*dur)}
	workers := make([]*worker, *conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{statuses: map[int]int{}, lat: make([]int64, 0, 1<<14)}
		workers[i] = w
		wg.Go(func() { w.run(client, &sp) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1 := readCPU(pids)
	busy1, total1 := machineCPU()

	res := Result{Target: *target, Scenario: *scenario, Round: *round, URL: *url, Conns: *conns,
		Stream: *stream, Messages: *messages, Responses: *responses, UpstreamEvents: *events, Seconds: elapsed.Seconds(), Statuses: map[string]int{}}
	var lat, ttfc, tail []int64
	var chunks int64
	var samples []string
	for _, w := range workers {
		lat = append(lat, w.lat...)
		ttfc = append(ttfc, w.ttfc...)
		tail = append(tail, w.tail...)
		chunks += w.chunks
		res.Errors += w.errors
		for s, n := range w.statuses {
			res.Statuses[strconv.Itoa(s)] += n
		}
		samples = append(samples, w.samples...)
	}
	res.Requests = int64(len(lat))
	res.RPS = float64(res.Requests) / elapsed.Seconds()
	res.Latency = percentiles(lat)
	if *stream {
		p, q := percentiles(ttfc), percentiles(tail)
		res.TTFC, res.Tail = &p, &q
		if res.Requests > 0 {
			res.ChunksPerRq = float64(chunks) / float64(res.Requests)
		}
	}
	if len(pids) > 0 && res.Requests > 0 {
		res.CPU = map[string]float64{}
		for name := range pids {
			if a, b := cpu0[name], cpu1[name]; a >= 0 && b >= a {
				res.CPU[name] = float64(b-a) / float64(time.Microsecond) / float64(res.Requests)
			}
		}
	}
	if total1 > total0 {
		res.Busy = 100 * float64(busy1-busy0) / float64(total1-total0)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Errors > 0 || res.Requests == 0 {
		fmt.Fprintf(os.Stderr, "load: FAILED: %d errors in %d requests to %s (statuses %v)\n",
			res.Errors, res.Requests, *url, res.Statuses)
		slices.Sort(samples)
		samples = slices.Compact(samples)
		for _, s := range samples[:min(len(samples), 5)] {
			fmt.Fprintln(os.Stderr, "  e.g.", s)
		}
		os.Exit(1)
	}
}

func (w *worker) run(client *http.Client, sp *spec) {
	var buf bytes.Buffer
	br := bufio.NewReaderSize(nil, 32<<10)
	fail := func(format string, args ...any) {
		w.errors++
		if len(w.samples) < 5 {
			w.samples = append(w.samples, fmt.Sprintf(format, args...))
		}
	}
	for time.Now().Before(sp.deadline) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, sp.url, bytes.NewReader(sp.payload))
		if err != nil {
			fail("building request: %v", err)
			return
		}
		req.Header = sp.hdr.Clone()
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			w.lat = append(w.lat, time.Since(t0).Microseconds())
			w.statuses[0]++
			fail("%v", err)
			continue
		}
		w.statuses[resp.StatusCode]++
		ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
		if sp.stream && ok2xx && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			buf.Reset()
			_, _ = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			w.lat = append(w.lat, time.Since(t0).Microseconds())
			fail("status %d: not an event stream (Content-Type %q): %s",
				resp.StatusCode, resp.Header.Get("Content-Type"), snippet(buf.Bytes()))
			continue
		}
		if sp.stream && ok2xx {
			br.Reset(resp.Body)
			var first time.Time
			var n int
			var rerr error
			done := true
			if sp.messages {
				first, n, rerr = readMessages(br)
			} else if sp.responses {
				first, n, rerr = readResponses(br)
			} else {
				first, done, n, rerr = readSSE(br)
			}
			resp.Body.Close()
			end := time.Now()
			w.lat = append(w.lat, end.Sub(t0).Microseconds())
			switch {
			case rerr != nil && sp.messages:
				fail("status %d: the Messages stream: %v", resp.StatusCode, rerr)
			case rerr != nil && sp.responses:
				fail("status %d: the Responses stream: %v", resp.StatusCode, rerr)
			case rerr != nil:
				fail("status %d: reading the stream: %v", resp.StatusCode, rerr)
			case !done:
				fail("status %d: stream ended without data: [DONE] after %d chunks", resp.StatusCode, n)
			case n < sp.minChunks:
				fail("status %d: stream had %d chunks, want at least %d", resp.StatusCode, n, sp.minChunks)
			default:
				w.ttfc = append(w.ttfc, first.Sub(t0).Microseconds())
				w.tail = append(w.tail, end.Sub(first).Microseconds())
				w.chunks += int64(n)
			}
			continue
		}
		buf.Reset()
		_, rerr := buf.ReadFrom(resp.Body)
		resp.Body.Close()
		w.lat = append(w.lat, time.Since(t0).Microseconds())
		switch {
		case !ok2xx:
			fail("status %d: %s", resp.StatusCode, snippet(buf.Bytes()))
		case rerr != nil:
			fail("status %d: reading the body: %v", resp.StatusCode, rerr)
		case len(sp.expect) > 0 && !bytes.Contains(buf.Bytes(), sp.expect):
			fail("status %d without %q in the body: %s", resp.StatusCode, sp.expect, snippet(buf.Bytes()))
		}
	}
}

// readSSE reads a stream to its end and reports when the first data line
// arrived, whether "data: [DONE]" came, and how many other data lines.
func readSSE(br *bufio.Reader) (first time.Time, done bool, n int, err error) {
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && bytes.HasPrefix(line, []byte("data:")) {
			if first.IsZero() {
				first = time.Now()
			}
			if bytes.Equal(bytes.TrimSpace(line[5:]), []byte("[DONE]")) {
				done = true
			} else {
				n++
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		}
		if err == io.EOF {
			return first, done, n, nil
		}
		if err != nil {
			return first, done, n, err
		}
	}
}

var sequenceKey = []byte(`"sequence_number":`)

// eventName is name as a string, without allocating one for the names
// the fronts send: a string per event would cost the load generator,
// which shares the CPUs, more than some of what it measures.
func eventName(name []byte) string {
	for _, known := range knownEvents {
		if known == string(name) {
			return known
		}
	}
	return string(name)
}

var knownEvents = [...]string{"message_start", "content_block_start", "content_block_delta", "content_block_stop",
	"message_delta", "message_stop", "ping", "error",
	"response.created", "response.in_progress", "response.output_item.added",
	"response.content_part.added", "response.output_text.delta", "response.output_text.done",
	"response.content_part.done", "response.output_item.done", "response.completed"}

// readResponses reads an OpenAI Responses stream to its end and reports
// when its first data line arrived and how many response.output_text.delta
// events came. It fails the stream, as Codex would, where an event has
// no event line or another sequence_number than the one after the last,
// where response.created is not first, on response.failed or error, on a
// "data: [DONE]", and where response.completed is missing or not last.
// Like readMessages it reads names and numbers, not every event's JSON.
func readResponses(br *bufio.Reader) (first time.Time, n int, err error) {
	seq, completed := 0, false
	first, err = eachEvent(br, "Responses", func(ev string, data []byte) error {
		switch {
		case completed:
			return fmt.Errorf("event %s after response.completed", ev)
		case seq == 0 && ev != "response.created":
			return fmt.Errorf("the stream begins with %s", ev)
		case ev == "response.failed" || ev == "error":
			return fmt.Errorf("%s: %s", ev, snippet(data))
		}
		i := bytes.Index(data, sequenceKey)
		got := -1
		if i >= 0 {
			got = 0
			for _, c := range data[i+len(sequenceKey):] {
				if c < '0' || c > '9' {
					break
				}
				got = got*10 + int(c-'0')
			}
		}
		if got != seq {
			return fmt.Errorf("%s has sequence_number %d, want %d", ev, got, seq)
		}
		seq++
		switch ev {
		case "response.output_text.delta":
			n++
		case "response.completed":
			completed = true
		}
		return nil
	})
	if err == nil && !completed {
		err = errors.New("the stream ended without response.completed")
	}
	if err != nil {
		err = fmt.Errorf("%w (after %d events, %d deltas)", err, seq, n)
	}
	return first, n, err
}

// readMessages reads an Anthropic Messages stream to its end and reports
// when its first data line arrived and how many content_block_delta
// events came. It fails the stream, as Anthropic's SDKs would, where
// events come out of order: message_start not first or twice, a block
// whose index skips or repeats, a delta or stop outside its block, a
// block left open, a message_delta without usage (clients then count no
// tokens) or none, anything after message_stop, an error event, a
// "data: [DONE]" (Messages has none), or no message_stop at the end. It
// reads only event names and block indexes: checking every data line's
// JSON would cost the load generator, which shares the CPUs, more than
// the proxy's translation.
func readMessages(br *bufio.Reader) (first time.Time, n int, err error) {
	var (
		last    string // the last event's name, for errors
		started bool   // message_start came
		open    bool   // a content block is open
		block   int    // the open block's index, or the next one's
		delta   bool   // message_delta came
		stopped bool   // message_stop came
	)
	first, err = eachEvent(br, "Messages", func(ev string, data []byte) error {
		if stopped {
			return fmt.Errorf("event %s after message_stop", ev)
		}
		if ev != "message_start" && ev != "ping" && ev != "error" && !started {
			return fmt.Errorf("event %s before message_start", ev)
		}
		switch ev {
		case "message_start":
			if started {
				return fmt.Errorf("a second message_start")
			}
			started = true
		case "ping":
		case "content_block_start":
			if open {
				return fmt.Errorf("content_block_start while block %d is open", block)
			}
			if i, ok := index(data); !ok || i != block {
				return fmt.Errorf("content_block_start with index %s, want %d", indexText(data), block)
			}
			open = true
		case "content_block_delta", "content_block_stop":
			if !open {
				return fmt.Errorf("%s with no block open", ev)
			}
			if i, ok := index(data); !ok || i != block {
				return fmt.Errorf("%s with index %s in block %d", ev, indexText(data), block)
			}
			if ev == "content_block_delta" {
				n++
			} else {
				open = false
				block++
			}
		case "message_delta":
			if open {
				return fmt.Errorf("message_delta while block %d is open", block)
			}
			if delta {
				return fmt.Errorf("a second message_delta")
			}
			if !bytes.Contains(data, []byte(`"usage"`)) {
				return fmt.Errorf("message_delta without usage: %s", snippet(data))
			}
			delta = true
		case "message_stop":
			if !delta {
				return fmt.Errorf("message_stop without message_delta before it")
			}
			stopped = true
		case "error":
			return fmt.Errorf("error event: %s", snippet(data))
		default:
			return fmt.Errorf("unknown event %q", ev)
		}
		last = ev
		return nil
	})
	if err == nil && !stopped {
		err = errors.New("ended without event: message_stop")
	}
	if err != nil {
		err = fmt.Errorf("%w (after %d deltas, last event %q)", err, n, last)
	}
	return first, n, err
}

// eachEvent reads an SSE stream of named events to its end, handing fn
// each event's name and data line; an error of fn ends it. A data line
// without an event line, and "data: [DONE]", fail the stream: neither
// the Messages nor the Responses front sends one. first is when the
// first data line came. A long data line (response.completed holds the
// whole output) is read past: its start has what the readers look at.
func eachEvent(br *bufio.Reader, front string, fn func(ev string, data []byte) error) (first time.Time, err error) {
	var name []byte // of the event whose data line comes next
	for {
		line, rerr := br.ReadSlice('\n')
		switch {
		case bytes.HasPrefix(line, []byte("event:")):
			name = append(name[:0], bytes.TrimSpace(line[6:])...)
		case bytes.HasPrefix(line, []byte("data:")):
			if first.IsZero() {
				first = time.Now()
			}
			data := bytes.TrimSpace(line[5:])
			if bytes.Equal(data, []byte("[DONE]")) {
				return first, fmt.Errorf("data: [DONE] in a %s stream", front)
			}
			if len(name) == 0 {
				return first, fmt.Errorf("a data line without an event line: %s", snippet(data))
			}
			ev := eventName(name)
			name = name[:0]
			if err := fn(ev, data); err != nil {
				return first, err
			}
		}
		for errors.Is(rerr, bufio.ErrBufferFull) {
			_, rerr = br.ReadSlice('\n')
		}
		if rerr == io.EOF {
			return first, nil
		}
		if rerr != nil {
			return first, rerr
		}
	}
}

// index reads a content block event's "index" member.
func index(data []byte) (int, bool) {
	i := bytes.Index(data, []byte(`"index":`))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(data[i+len(`"index":`):], " ")
	v, digits := 0, 0
	for ; digits < len(rest) && digits < 9 && rest[digits] >= '0' && rest[digits] <= '9'; digits++ {
		v = v*10 + int(rest[digits]-'0')
	}
	return v, digits > 0
}

func indexText(data []byte) string {
	if i, ok := index(data); ok {
		return strconv.Itoa(i)
	}
	return "(none)"
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func parsePids(s string) (map[string]int, error) {
	pids := map[string]int{}
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, v, ok := strings.Cut(part, "=")
		pid, err := strconv.Atoi(v)
		if !ok || err != nil || pid <= 0 {
			return nil, fmt.Errorf("-cpu-pids: %q is not name=pid", part)
		}
		pids[name] = pid
	}
	return pids, nil
}

// readCPU returns user+system CPU time of each process, or -1 where it
// cannot be read.
func readCPU(pids map[string]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range pids {
		out[name] = procCPU(pid)
	}
	return out
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(ut+st) * time.Second / clockTicks
}

// machineCPU returns the busy and total jiffies of all CPUs from
// /proc/stat (idle and iowait count as not busy), or zeros.
func machineCPU() (busy, total int64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice,
	// already counted in user and nice]
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0
		}
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

// baseline is the target every other one is compared with.
const baseline = "reverse_proxy"

// Issue 11's bar for a proxycast target against reverse_proxy in the same
// run: throughput (BENCH_CONNS connections) at least minRatio of
// reverse_proxy's, and the p50 at one connection at most maxAddedP50 µs
// above it.
const (
	minRatio    = 0.95
	maxAddedP50 = 20
)

// frontPairs are the scenarios run.sh runs on one target through both
// fronts, OpenAI chat and Anthropic Messages, over the same upstream
// stream: at one connection and at BENCH_CONNS.
var frontPairs = []struct{ front, chat, other string }{
	{"messages", "stream64", "messages64"},
	{"messages", "stream64-tput", "messages64-tput"},
	{"responses", "stream64", "responses64"},
	{"responses", "stream64-tput", "responses64-tput"},
}

// minFrontRatio is the bar for the Messages front: translation
// costs under 10% of plain chat throughput, so the Messages front's
// throughput at the most connections is at least 0.90 of the chat
// front's on the same target and upstream.
const minFrontRatio = 0.90

// printReport prints the comparison table of the result lines in files and
// returns the exit status: 1 if any run had errors. The rounds of each
// file are numbered after those of the files before it, so that several
// runs of run.sh give medians over all their rounds.
func printReport(files []string) int {
	type key struct{ scenario, target string }
	runs := map[key][]Result{}
	var scenarios, targets []string
	var totalErrors int64
	offset := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			return 2
		}
		last := offset
		for line := range strings.Lines(string(raw)) {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var r Result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				fmt.Fprintf(os.Stderr, "load: %s: bad line %q: %v\n", file, line, err)
				return 2
			}
			if !slices.Contains(scenarios, r.Scenario) {
				scenarios = append(scenarios, r.Scenario)
			}
			if !slices.Contains(targets, r.Target) {
				targets = append(targets, r.Target)
			}
			r.Round += offset
			last = max(last, r.Round)
			k := key{r.Scenario, r.Target}
			runs[k] = append(runs[k], r)
			totalErrors += r.Errors
		}
		offset = last
	}
	// The proxycast targets in name order (proxycast-iflow,
	// proxycast-openai), the baseline last: the order the runs came in
	// rotates from scenario to scenario.
	slices.SortFunc(targets, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == baseline:
			return 1
		case b == baseline:
			return -1
		}
		return strings.Compare(a, b)
	})
	var compared []string // every target but the baseline
	for _, t := range targets {
		if t != baseline {
			compared = append(compared, t)
		}
	}
	hasBaseline := slices.Contains(targets, baseline)

	// With several rounds every figure is the median over the rounds.
	median := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		v = slices.Clone(v)
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	med := func(rs []Result, f func(Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	type row struct {
		rps, p50, p99, t50, t99, cpu, up, ld, busy float64
		tail, chunks                               float64 // p50 of first event to end; client chunks per request
		errors                                     int64
		n, c, events                               int // events: the upstream's chunks per stream
	}
	summarize := func(rs []Result) row {
		var r row
		if len(rs) == 0 {
			return r
		}
		r.n, r.c = len(rs), rs[0].Conns
		r.rps = med(rs, func(x Result) float64 { return x.RPS })
		r.p50 = med(rs, func(x Result) float64 { return float64(x.Latency.P50) })
		r.p99 = med(rs, func(x Result) float64 { return float64(x.Latency.P99) })
		r.cpu = med(rs, func(x Result) float64 { return x.CPU["caddy"] })
		r.up = med(rs, func(x Result) float64 { return x.CPU["upstream"] })
		r.ld = med(rs, func(x Result) float64 { return x.CPU["load"] })
		r.busy = med(rs, func(x Result) float64 { return x.Busy })
		if rs[0].TTFC != nil {
			r.t50 = med(rs, func(x Result) float64 { return float64(x.TTFC.P50) })
			r.t99 = med(rs, func(x Result) float64 { return float64(x.TTFC.P99) })
			r.chunks = med(rs, func(x Result) float64 { return x.ChunksPerRq })
		}
		if rs[0].Tail != nil {
			r.tail = med(rs, func(x Result) float64 { return float64(x.Tail.P50) })
		}
		r.events = rs[0].UpstreamEvents
		for _, x := range rs {
			r.errors += x.Errors
		}
		return r
	}
	sum := map[key]row{}
	for k, rs := range runs {
		sum[k] = summarize(rs)
	}
	dash := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	}

	// perEvent is the µs per upstream event of the time a stream took
	// from its first event to its end: the upstream's events 2 to n came
	// in that time.
	perEvent := func(tail float64, events int) (float64, bool) {
		if events < 2 || tail == 0 {
			return 0, false
		}
		return tail / float64(events-1), true
	}
	evText := func(r row) (chunks, per string) {
		chunks, per = "-", "-"
		if r.chunks > 0 {
			chunks = strconv.FormatFloat(r.chunks, 'f', 0, 64)
		}
		if v, ok := perEvent(r.tail, r.events); ok {
			per = strconv.FormatFloat(v, 'f', 2, 64)
		}
		return chunks, per
	}

	// 1. Every scenario and target.
	fmt.Printf("%-15s %-16s %3s %6s %8s %8s %8s %9s %9s %6s %6s %12s %9s %8s %5s %6s\n",
		"scenario", "target", "c", "rounds", "req/s", "p50 µs", "p99 µs", "ttfc50 µs", "ttfc99 µs", "ev/req", "µs/ev",
		"caddy µs/req", "upstr µs", "load µs", "busy%", "errors")
	for _, s := range scenarios {
		for _, t := range targets {
			r, ok := sum[key{s, t}]
			if !ok {
				continue
			}
			chunks, per := evText(r)
			fmt.Printf("%-15s %-16s %3d %6d %8.0f %8.0f %8.0f %9s %9s %6s %6s %12.1f %9.1f %8.1f %5.0f %6d\n",
				s, t, r.c, r.n, r.rps, r.p50, r.p99, dash(r.t50), dash(r.t99), chunks, per, r.cpu, r.up, r.ld, r.busy, r.errors)
		}
	}

	// 2. The Messages and Responses fronts against the chat front on the
	// same target
	// and upstream stream: what translating costs.
	for _, front := range []string{"messages", "responses"} {
		for _, t := range targets {
			type pair struct {
				chat, other string
				c, m        row
			}
			var pairs []pair
			for _, p := range frontPairs {
				c, okC := sum[key{p.chat, t}]
				m, okM := sum[key{p.other, t}]
				if p.front == front && okC && okM {
					pairs = append(pairs, pair{p.chat, p.other, c, m})
				}
			}
			if len(pairs) == 0 {
				continue
			}
			conns := func(c int) string {
				if c == 1 {
					return "1 conn"
				}
				return fmt.Sprintf("%d conns", c)
			}
			events := pairs[0].c.events
			fmt.Println()
			fmt.Printf("%s front vs chat front (%s: same target, same upstream, %d chunks a stream; medians):\n", front, t, events)
			width := 0
			for _, p := range pairs {
				width = max(width, len(p.other)+1+len(p.chat))
			}
			for _, p := range pairs {
				c, m := p.c, p.m
				line := fmt.Sprintf("  %-9s %-*s   req/s ratio %5.3f (%.0f vs %.0f req/s, %.0f vs %.0f events/s)",
					conns(c.c), width, p.other+"/"+p.chat, m.rps/c.rps, m.rps, c.rps, m.rps*float64(m.events), c.rps*float64(c.events))
				line += fmt.Sprintf("   added ttfc p50 %+5.0f µs", m.t50-c.t50)
				if pm, ok := perEvent(m.tail, m.events); ok {
					if pc, ok := perEvent(c.tail, c.events); ok {
						line += fmt.Sprintf("   added %+5.2f µs/event (first event to end p50 %.0f vs %.0f µs)", pm-pc, m.tail, c.tail)
					}
				}
				if c.cpu > 0 {
					line += fmt.Sprintf("   caddy CPU/req ratio %4.2f (%+.0f µs/req, %+.2f µs/event)",
						m.cpu/c.cpu, m.cpu-c.cpu, (m.cpu-c.cpu)/float64(max(1, m.events)))
				}
				fmt.Println(line)
			}
			byRound := func(s string) map[int]Result {
				out := map[int]Result{}
				for _, r := range runs[key{s, t}] {
					out[r.Round] = r
				}
				return out
			}
			type metric struct {
				label  string
				f      func(m, c Result) (float64, bool)
				format string
			}
			metrics := []metric{
				{"req/s ratio", func(m, c Result) (float64, bool) { return m.RPS / c.RPS, c.RPS > 0 }, "%6.3f"},
				{"added µs/event", func(m, c Result) (float64, bool) {
					if m.Tail == nil || c.Tail == nil {
						return 0, false
					}
					pm, okM := perEvent(float64(m.Tail.P50), m.UpstreamEvents)
					pc, okC := perEvent(float64(c.Tail.P50), c.UpstreamEvents)
					return pm - pc, okM && okC
				}, "%+6.2f"},
				{"added ttfc p50", func(m, c Result) (float64, bool) {
					if m.TTFC == nil || c.TTFC == nil {
						return 0, false
					}
					return float64(m.TTFC.P50 - c.TTFC.P50), true
				}, "%+6.0f"},
				{"caddy CPU/req", func(m, c Result) (float64, bool) {
					return m.CPU["caddy"] / c.CPU["caddy"], c.CPU["caddy"] > 0
				}, "%6.3f"},
			}
			fmt.Printf("  round by round (%[1]s front / chat front; added: %[1]s minus chat):\n", front)
			for _, p := range pairs {
				ms, cs := byRound(p.other), byRound(p.chat)
				for _, mt := range metrics {
					var vals []float64
					var parts []string
					for _, rd := range slices.Sorted(maps.Keys(ms)) {
						c, ok := cs[rd]
						if !ok {
							continue
						}
						if v, ok := mt.f(ms[rd], c); ok {
							vals = append(vals, v)
							parts = append(parts, fmt.Sprintf(mt.format, v))
						}
					}
					if len(vals) == 0 {
						continue
					}
					fmt.Printf("    %-9s %-15s %s   (median "+mt.format+", spread "+strings.Replace(mt.format, "+", "", 1)+")\n",
						conns(p.c.c), mt.label, strings.Join(parts, " "), median(vals), slices.Max(vals)-slices.Min(vals))
				}
			}
			// The bar: at the most connections measured.
			top := pairs[0]
			for _, p := range pairs[1:] {
				if p.c.c > top.c.c {
					top = p
				}
			}
			if top.c.rps > 0 {
				r := top.m.rps / top.c.rps
				fmt.Printf("%-16s translation costs under %.0f%% of plain chat throughput: %s %.3f × %s at %s (want ≥ %.2f): %s\n",
					t+":", 100*(1-minFrontRatio), top.other, r, top.chat, conns(top.c.c), minFrontRatio, okWord(r >= minFrontRatio))
			}
		}
	}

	// compare prints target t against target base, scenario by
	// scenario, from the medians.
	compare := func(t, base string) {
		fmt.Println()
		fmt.Printf("%s vs %s (same upstream, same run; medians):\n", t, base)
		for _, s := range scenarios {
			a, okA := sum[key{s, t}]
			b, okB := sum[key{s, base}]
			if !okA || !okB {
				continue
			}
			line := fmt.Sprintf("  %-13s req/s ratio %5.3f (%5.1f%%)   added p50 %+6.0f µs   added p99 %+6.0f µs",
				s, a.rps/b.rps, 100*a.rps/b.rps, a.p50-b.p50, a.p99-b.p99)
			if a.t50 > 0 || b.t50 > 0 {
				line += fmt.Sprintf("   added ttfc p50 %+6.0f µs", a.t50-b.t50)
			}
			if b.cpu > 0 {
				line += fmt.Sprintf("   caddy CPU/req ratio %4.2f (%+.0f µs)", a.cpu/b.cpu, a.cpu-b.cpu)
			}
			fmt.Println(line)
		}
	}
	// A thousand named clients against one: the same handler, the key
	// found among 1,000 instead of 1.
	if slices.Contains(targets, "proxycast-clients1000") && slices.Contains(targets, "proxycast-client1") {
		compare("proxycast-clients1000", "proxycast-client1")
	}

	if !hasBaseline || len(compared) == 0 {
		return errorStatus(totalErrors)
	}

	// 3. Each proxycast target against the baseline, from the medians.
	for _, t := range compared {
		compare(t, baseline)
	}

	// 4. The same ratios round by round (each pair ran in the same round,
	// minutes apart at most): how far one round is from the next.
	rounds := map[int]bool{}
	for _, rs := range runs {
		for _, r := range rs {
			rounds[r.Round] = true
		}
	}
	if len(rounds) > 1 {
		byRound := func(s, t string) map[int]Result {
			m := map[int]Result{}
			for _, r := range runs[key{s, t}] {
				m[r.Round] = r
			}
			return m
		}
		fmt.Println()
		fmt.Printf("round by round vs %s (req/s ratio; latency: added p50 µs; caddy: CPU/req ratio at %s):\n", baseline, "throughput")
		type metric struct {
			scenario, label string
			f               func(a, b Result) (float64, bool)
			format          string
		}
		ratio := func(a, b Result) (float64, bool) { return a.RPS / b.RPS, b.RPS > 0 }
		metrics := []metric{
			{"latency", "latency p50", func(a, b Result) (float64, bool) { return float64(a.Latency.P50 - b.Latency.P50), true }, "%+5.0f"},
			{"throughput", "throughput", ratio, "%5.3f"},
			{"throughput256", "throughput256", ratio, "%5.3f"},
			{"stream", "stream", ratio, "%5.3f"},
			{"throughput", "caddy CPU/req", func(a, b Result) (float64, bool) {
				return a.CPU["caddy"] / b.CPU["caddy"], b.CPU["caddy"] > 0
			}, "%5.3f"},
		}
		for _, t := range compared {
			for _, m := range metrics {
				as, bs := byRound(m.scenario, t), byRound(m.scenario, baseline)
				var vals []float64
				var parts []string
				for _, rd := range slices.Sorted(maps.Keys(as)) {
					b, ok := bs[rd]
					if !ok {
						continue
					}
					if v, ok := m.f(as[rd], b); ok {
						vals = append(vals, v)
						parts = append(parts, fmt.Sprintf(m.format, v))
					}
				}
				if len(vals) == 0 {
					continue
				}
				fmt.Printf("  %-16s %-14s %s   (median "+m.format+", spread "+strings.Replace(m.format, "+", "", 1)+")\n",
					t, m.label, strings.Join(parts, " "), median(vals), slices.Max(vals)-slices.Min(vals))
			}
		}
	}

	// 5. One column per target, and each proxycast target's ratio to the
	// baseline.
	short := func(t string) string { return strings.TrimPrefix(t, "proxycast-") }
	fmt.Println()
	fmt.Printf("%-26s", "summary (medians)")
	for _, t := range targets {
		fmt.Printf(" %16s", t)
	}
	for _, t := range compared {
		fmt.Printf(" %12s", short(t)+"/rp")
	}
	fmt.Println()
	type line struct {
		label, scenario string
		get             func(row) float64
		diff            bool // difference in µs, not a ratio
	}
	lines := []line{
		{"1 conn: req/s", "latency", func(r row) float64 { return r.rps }, false},
		{"1 conn: p50 µs", "latency", func(r row) float64 { return r.p50 }, true},
		{"1 conn: p99 µs", "latency", func(r row) float64 { return r.p99 }, true},
		{"throughput: req/s", "throughput", func(r row) float64 { return r.rps }, false},
		{"throughput256: req/s", "throughput256", func(r row) float64 { return r.rps }, false},
		{"stream: req/s", "stream", func(r row) float64 { return r.rps }, false},
		{"stream: ttfc p50 µs", "stream", func(r row) float64 { return r.t50 }, true},
		{"throughput: caddy µs/req", "throughput", func(r row) float64 { return r.cpu }, false},
		{"stream: caddy µs/req", "stream", func(r row) float64 { return r.cpu }, false},
	}
	for _, l := range lines {
		b, ok := sum[key{l.scenario, baseline}]
		if !ok {
			continue
		}
		label := l.label
		if c := b.c; c > 1 && strings.HasPrefix(l.scenario, "throughput") {
			label = strings.Replace(label, l.scenario, fmt.Sprintf("%d conns", c), 1)
		}
		fmt.Printf("%-26s", label)
		for _, t := range targets {
			if r, ok := sum[key{l.scenario, t}]; ok {
				fmt.Printf(" %16.1f", l.get(r))
			} else {
				fmt.Printf(" %16s", "-")
			}
		}
		for _, t := range compared {
			a, ok := sum[key{l.scenario, t}]
			switch {
			case !ok || l.get(b) == 0:
				fmt.Printf(" %12s", "-")
			case l.diff:
				fmt.Printf(" %+9.0f µs", l.get(a)-l.get(b))
			default:
				fmt.Printf(" %12.3f", l.get(a)/l.get(b))
			}
		}
		fmt.Println()
	}

	// 6. Issue 11's bar.
	fmt.Println()
	for _, t := range compared {
		var verdicts []string
		if a, ok := sum[key{"throughput", t}]; ok {
			if b, ok := sum[key{"throughput", baseline}]; ok && b.rps > 0 {
				r := a.rps / b.rps
				verdicts = append(verdicts, fmt.Sprintf("throughput (%d conns) %.3f × %s (want ≥ %.2f): %s",
					b.c, r, baseline, minRatio, okWord(r >= minRatio)))
			}
		}
		if a, ok := sum[key{"latency", t}]; ok {
			if b, ok := sum[key{"latency", baseline}]; ok {
				d := a.p50 - b.p50
				verdicts = append(verdicts, fmt.Sprintf("added p50 at 1 conn %+.0f µs (want ≤ %d): %s",
					d, maxAddedP50, okWord(d <= maxAddedP50)))
			}
		}
		if len(verdicts) > 0 {
			fmt.Printf("%-16s %s\n", t+":", strings.Join(verdicts, "; "))
		}
	}
	return errorStatus(totalErrors)
}

func okWord(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func errorStatus(totalErrors int64) int {
	if totalErrors > 0 {
		fmt.Printf("\nFAILED: %d request errors (see the log above)\n", totalErrors)
		return 1
	}
	return 0
}
