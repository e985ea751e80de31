package caddymodule_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStalledUpstream: an upstream that goes silent is cut off after
// response_timeout (before an answer) or stream_idle_timeout (within a
// stream), instead of holding the client.
func TestStalledUpstream(t *testing.T) {
	release := make(chan struct{})
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice when Caddy hangs up.
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.Header.Get("Authorization") {
		case "Bearer sk-headers": // nothing at all
		case "Bearer sk-first": // headers, then nothing
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
		case "Bearer sk-mid": // one event, then nothing
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			fmt.Fprint(w, `data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}`+"\n\n")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer stall.Close()
	defer close(release)

	for _, tt := range []struct {
		key    string
		stream bool
	}{{"sk-headers", false}, {"sk-first", true}, {"sk-mid", true}} {
		t.Run(tt.key, func(t *testing.T) {
			startCaddy(t, fmt.Sprintf(`		api_keys %s
		response_timeout 300ms
		stream_idle_timeout 300ms
		credential_pool {
			iflow {
				credential stalled {
					auth_type api_key
					api_key %s
				}
			}
		}
		provider iflow {
			api_base %s
		}`, clientKey, tt.key, stall.URL))
			// (chat's client gives up after 30s, long before the
			// default timeouts of minutes would end the wait.)
			resp, body := chat(t, fmt.Sprintf(`{"model":"qwen3-max","stream":%v,"messages":[{"role":"user","content":"x"}]}`, tt.stream))
			if tt.key == "sk-mid" {
				evs := events(body)
				if resp.StatusCode != 200 || len(evs) != 2 || decodeError(t, evs[1]).Error.Code != "upstream_timeout" {
					t.Fatalf("%d %q", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != 504 || decodeError(t, body).Error.Code != "upstream_timeout" || !strings.Contains(body, "300ms") && tt.stream {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	}
}
