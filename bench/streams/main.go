// Command streams holds many streaming chat requests open at once through
// one proxy, checks that every one of them delivers every chunk and ends
// with [DONE], and reads the proxy's memory (Linux /proc) while they are
// open. It prints one JSON line:
//
//	streams -url http://127.0.0.1:9801/v1/chat/completions -n 2000 -pid 1234 \
//	        -chunks 16 -delay 200ms -header 'Authorization: Bearer bench-key'
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

type result struct {
	Target      string  `json:"target"`
	Streams     int     `json:"streams"`
	OK          int     `json:"ok"`
	Failed      int     `json:"failed"`
	LostChunks  int64   `json:"lost_chunks"`
	FirstError  string  `json:"first_error,omitempty"`
	IdleRSSKiB  int64   `json:"idle_rss_kib"`
	HeldRSSKiB  int64   `json:"held_rss_kib"`
	PeakRSSKiB  int64   `json:"peak_rss_kib"`
	KiBPerOpen  float64 `json:"kib_per_open_stream"`
	OpenSeconds float64 `json:"open_seconds"`
}

func main() {
	url := flag.String("url", "", "URL to POST to")
	n := flag.Int("n", 1000, "streams to hold open at once")
	chunks := flag.Int("chunks", 16, "chunks the upstream sends per stream ([DONE] not counted)")
	delay := flag.Duration("delay", 200*time.Millisecond, "pause the upstream makes between chunks")
	pid := flag.Int("pid", 0, "pid of the proxy whose memory to read")
	target := flag.String("target", "", "label")
	report := flag.String("report", "", "print the table of a file of result lines, then exit")
	var hdrs headers
	flag.Var(&hdrs, "header", "request header 'Name: value' (repeatable)")
	flag.Parse()
	if *report != "" {
		if err := printReport(*report); err != nil {
			fmt.Fprintln(os.Stderr, "streams:", err)
			os.Exit(1)
		}
		return
	}

	body := fmt.Sprintf(`{"model":"qwen3-max","stream":true,"bench_chunk_delay_ms":%d,"messages":[{"role":"user","content":"hello"}]}`,
		delay.Milliseconds())
	tr := &http.Transport{
		MaxIdleConnsPerHost: *n,
		MaxConnsPerHost:     0,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: *delay*time.Duration(*chunks) + time.Minute}

	res := result{Target: *target, Streams: *n, IdleRSSKiB: rss(*pid, "VmRSS")}
	var ok, failed atomic.Int64
	var lost atomic.Int64
	var firstErr atomic.Value
	var started sync.WaitGroup // every stream has its first chunk
	started.Add(*n)
	var wg sync.WaitGroup
	begin := time.Now()
	for range *n {
		wg.Go(func() {
			got, err := oneStream(client, *url, body, hdrs, &started)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			} else {
				ok.Add(1)
			}
			if got < *chunks {
				lost.Add(int64(*chunks - got))
			}
		})
	}
	// Read the memory once every stream has begun (or after the first
	// third of a stream's life), while all are open.
	waitCh := make(chan struct{})
	go func() { started.Wait(); close(waitCh) }()
	select {
	case <-waitCh:
	case <-time.After(*delay * time.Duration(*chunks) / 3):
	}
	res.HeldRSSKiB = rss(*pid, "VmRSS")
	wg.Wait()
	res.OpenSeconds = time.Since(begin).Seconds()
	res.PeakRSSKiB = rss(*pid, "VmHWM")
	res.OK, res.Failed, res.LostChunks = int(ok.Load()), int(failed.Load()), lost.Load()
	if e, _ := firstErr.Load().(string); e != "" {
		res.FirstError = e
	}
	if *n > 0 && res.HeldRSSKiB > 0 {
		res.KiBPerOpen = float64(res.HeldRSSKiB-res.IdleRSSKiB) / float64(*n)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Failed > 0 || res.LostChunks > 0 {
		os.Exit(1)
	}
}

// oneStream sends one request and counts the chunks until [DONE].
func oneStream(client *http.Client, url, body string, hdrs headers, started *sync.WaitGroup) (int, error) {
	once := sync.OnceFunc(started.Done)
	defer once()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range hdrs {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	got := 0
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("data: ")) {
			continue
		}
		if bytes.Equal(line, []byte("data: [DONE]")) {
			return got, nil
		}
		got++
		once()
	}
	if err := sc.Err(); err != nil {
		return got, err
	}
	return got, fmt.Errorf("stream ended without [DONE] after %d chunks", got)
}

// rss reads a memory figure of /proc/<pid>/status in KiB.
func rss(pid int, field string) int64 {
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// printReport prints the held-streams table: per target, every count
// tried, and the most streams held with nothing lost.
func printReport(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Printf("%-16s %8s %8s %6s %13s %15s %13s\n", "target", "streams", "ok", "lost", "held RSS MiB", "KiB per stream", "peak RSS MiB")
	best := map[string]int{}
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("bad result line %q", line)
		}
		fmt.Printf("%-16s %8d %8d %6d %13.1f %15.1f %13.1f\n", r.Target, r.Streams, r.OK, r.LostChunks,
			float64(r.HeldRSSKiB)/1024, r.KiBPerOpen, float64(r.PeakRSSKiB)/1024)
		if _, seen := best[r.Target]; !seen {
			order = append(order, r.Target)
			best[r.Target] = 0
		}
		if r.Failed == 0 && r.LostChunks == 0 && r.Streams > best[r.Target] {
			best[r.Target] = r.Streams
		}
	}
	for _, t := range order {
		fmt.Printf("most streams held with no chunk lost: %s %d\n", t, best[t])
	}
	return nil
}
