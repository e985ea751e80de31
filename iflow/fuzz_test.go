package iflow

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func FuzzBXAuth(f *testing.F) {
	for _, seed := range []string{
		"BXAuth=abc",
		"a=1; BXAuth=tok; b=2",
		" BXAuth = spaced ;",
		"BXAuth=; BXAuth=second",
		"bxauth=lower; BXAuth",
		"BXAuth==x=y",
		"BXAuth=\t\n",
		"",
		";;;",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cookies string) {
		got, err := BXAuth(cookies)
		if err != nil {
			if got != "" {
				t.Fatalf("BXAuth(%q) = %q with error %v", cookies, got, err)
			}
			return
		}
		value, ok := strings.CutPrefix(got, "BXAuth=")
		if !ok || value == "" || strings.Contains(value, ";") || strings.TrimSpace(value) != value {
			t.Fatalf("BXAuth(%q) = %q, want BXAuth=<trimmed value without ;>", cookies, got)
		}
		if !strings.Contains(cookies, value) {
			t.Fatalf("BXAuth(%q) = %q, a value that is not in the cookies", cookies, got)
		}
		if again, err := BXAuth(got); err != nil || again != got {
			t.Fatalf("BXAuth(%q) = %q, %v; want it unchanged", got, again, err)
		}
	})
}

func FuzzParseExpireTime(f *testing.F) {
	for _, seed := range []string{
		"2026-03-04 15:54",
		"2026-03-04 15:54:30",
		" 2026-03-04 15:54\n",
		"2026-03-04 15:54:30.123456789",
		"0000-01-01 00:00",
		"9999-12-31 23:59:59",
		"2026-02-29 00:00",
		"2026-03-04T15:54:00Z",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseExpireTime(s)
		if err != nil {
			return
		}
		// Written back in Beijing time (with any fraction of a second
		// the seconds carried), it reads as the same instant.
		layout := "2006-01-02 15:04:05.999999999"
		if got.Second() == 0 && got.Nanosecond() == 0 {
			layout = "2006-01-02 15:04"
		}
		out := got.In(beijing).Format(layout)
		back, err := ParseExpireTime(out)
		if err != nil || !back.Equal(got) {
			t.Fatalf("ParseExpireTime(%q) = %v, written %q, read back %v, %v", s, got, out, back, err)
		}
	})
}

// fuzzKeyShape is what an iFlow key looks like; the fixed texts of the
// messages contain nothing of that shape.
var fuzzKeyShape = regexp.MustCompile(`^sk-[0-9A-Za-z]{4,}$`)

func FuzzReplyError(f *testing.F) {
	const key = "sk-fuzz0123456789"
	for _, seed := range []string{
		`{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`,
		`{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}`,
		`{"choices":[{"delta":{},"finish_reason":"network_error"}]}`,
		`{"choices":[],"error":null}`,
		`{"choices":[],"error":{"message":"boom sk-fuzz0123456789"}}`,
		`{"status":"434","msg":"Invalid apiKey sk-fuzz0123456789","body":null}`,
		`{"status":"434","msg":"Your API key has been blocked"}`,
		`{"status":"439","msg":"token expired"}`,
		`{"status":449,"message":"rate limit"}`,
		`{"error_code":1,"msg":"Model not support"}`,
		`{"status":"sk-fuzz0123456789"}`,
		`{"error":"sk-fuzz0123456789 is wrong"}`,
		`{"ch\u006fices":[]}`,
		`{"choices":1,"choices":[]}`,
		`{}`, `[]`, `null`, `"sk-fuzz0123456789"`,
	} {
		f.Add([]byte(seed), key)
	}
	f.Fuzz(func(t *testing.T, body []byte, apiKey string) {
		if !json.Valid(body) {
			return
		}
		if !fuzzKeyShape.MatchString(apiKey) {
			apiKey = key
		}
		var errs []string
		if e := replyError(body, apiKey); e != nil {
			errs = append(errs, "replyError: "+e.Message)
		}
		var chunkErrs int
		for _, first := range []bool{true, false} {
			if e := streamChunkError(body, first, apiKey); e != nil {
				chunkErrs++
				errs = append(errs, "streamChunkError: "+e.Message)
			}
		}
		for _, status := range []int{400, 401, 403, 404, 406, 429, 500} {
			if e := statusError(status, http.Header{}, body, "qwen3-max", apiKey); e == nil {
				t.Fatalf("statusError(%d, %q) = nil", status, body)
			} else {
				errs = append(errs, "statusError: "+e.Message)
			}
		}
		for _, msg := range errs {
			if strings.Contains(msg, apiKey) {
				t.Fatalf("the message for %q leaks the key %s: %s", body, apiKey, msg)
			}
		}

		// A completion or a chunk: an object with a "choices" array and
		// no "error".
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil || obj == nil {
			return
		}
		choices, ok := obj["choices"]
		if _, hasErr := obj["error"]; !ok || hasErr || !bytes.HasPrefix(bytes.TrimLeft(choices, " \t\r\n"), []byte("[")) {
			return
		}
		if e := replyError(body, apiKey); e != nil {
			t.Fatalf("replyError(%q) = %+v, want nil for a completion", body, e)
		}
		var chunk struct {
			Choices []struct {
				FinishReason json.RawMessage `json:"finish_reason"`
			} `json:"choices"`
		}
		_ = json.Unmarshal(body, &chunk)
		for _, c := range chunk.Choices {
			if string(c.FinishReason) == `"network_error"` {
				return // the one chunk with choices that is an error
			}
		}
		if chunkErrs > 0 {
			t.Fatalf("streamChunkError(%q) failed for a chunk: %q", body, errs)
		}
	})
}

// FuzzSign holds the stack-buffer HMAC to crypto/hmac.
func FuzzSign(f *testing.F) {
	f.Add("sk-test", "session-0f8fad5b-d9cb-469f-a165-70867728950e", int64(1700000000000))
	f.Add("", "", int64(0))
	f.Add(strings.Repeat("k", 64), "s", int64(-1))
	f.Add(strings.Repeat("k", 65), strings.Repeat("s", 200), int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, apiKey, sessionID string, ts int64) {
		m := hmac.New(sha256.New, []byte(apiKey))
		m.Write([]byte(UserAgent + ":" + sessionID + ":" + strconv.FormatInt(ts, 10)))
		if got, want := Sign(apiKey, sessionID, ts), hex.EncodeToString(m.Sum(nil)); got != want {
			t.Fatalf("Sign(%q, %q, %d) = %s, crypto/hmac says %s", apiKey, sessionID, ts, got, want)
		}
	})
}
