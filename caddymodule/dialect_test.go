package caddymodule

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

// TestResponsesFramerFollows: the framer follows the sequence numbers and
// the response's id whether the number comes right after the type (as
// the translators and OpenAI write it) or elsewhere in the event, so that
// a failure ends the stream with the response.failed event that would
// come next.
func TestResponsesFramerFollows(t *testing.T) {
	f := &responsesFramer{}
	var out []byte
	for _, ev := range []string{
		`{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","created_at":17,"model":"m"}}`,
		`{"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1"}}`,
		// An upstream that writes the number last.
		`{"type":"response.output_text.delta","item_id":"msg_1","delta":"hi","sequence_number":2}`,
		` {"sequence_number":3,"type":"response.output_text.delta","delta":"!"}`,
	} {
		out = f.event(out, []byte(ev))
	}
	if !strings.Contains(string(out), "event: response.output_text.delta\ndata: ") {
		t.Fatalf("events: %s", out)
	}
	failed := string(f.fail(nil, &provider.Error{Status: http.StatusTooManyRequests, Kind: provider.KindRateLimit, Message: "slow down", RetryAfter: 1500e6}))
	data, ok := strings.CutPrefix(failed, "event: response.failed\ndata: ")
	if !ok {
		t.Fatalf("failure: %q", failed)
	}
	var ev struct {
		Type           string `json:"type"`
		SequenceNumber int    `json:"sequence_number"`
		Response       struct {
			ID        string `json:"id"`
			CreatedAt int64  `json:"created_at"`
			Model     string `json:"model"`
			Status    string `json:"status"`
			Error     struct{ Code, Message string }
		} `json:"response"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &ev); err != nil {
		t.Fatalf("failure data %q: %v", data, err)
	}
	r := ev.Response
	if ev.SequenceNumber != 4 || r.ID != "resp_1" || r.CreatedAt != 17 || r.Model != "m" || r.Status != "failed" ||
		r.Error.Code != "rate_limit_exceeded" || r.Error.Message != "slow down Please try again in 2s." {
		t.Errorf("failure: %+v", ev)
	}
}
