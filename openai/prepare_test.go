package openai

import (
	"strings"
	"testing"
)

// TestPrepare: the instance's changes to a client's body, and nothing
// else: members dropped and renamed, usage asked for in streams only, the
// client's own stream options kept.
func TestPrepare(t *testing.T) {
	tests := []struct {
		name   string
		p      Provider
		stream bool
		body   string
		want   string
	}{
		{"untouched", Provider{}, false, `{"model":"m","x":{"k":[1,2.50]}}`, `{"model":"m","x":{"k":[1,2.50]}}`},
		{"dropped", Provider{DropParams: []string{"logprobs", "seed"}}, false, `{"model":"m","logprobs":true,"seed":7,"n":1}`, `{"model":"m","n":1}`},
		{"renamed", Provider{RenameParams: [][2]string{{"max_tokens", "max_completion_tokens"}}}, false, `{"model":"m","max_tokens":100}`, `{"model":"m","max_completion_tokens":100}`},
		{"renamed onto a member there", Provider{RenameParams: [][2]string{{"max_tokens", "max_completion_tokens"}}}, false, `{"model":"m","max_tokens":100,"max_completion_tokens":50}`, `{"model":"m","max_completion_tokens":50}`},
		{"usage asked in a stream", Provider{StreamUsage: true}, true, `{"model":"m","stream":true}`, `{"stream_options":{"include_usage":true},"model":"m","stream":true}`},
		{"usage not asked without a stream", Provider{StreamUsage: true}, false, `{"model":"m"}`, `{"model":"m"}`},
		{"client's stream options kept", Provider{StreamUsage: true}, true, `{"model":"m","stream":true,"stream_options":{"x":1}}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true,"x":1}}`},
		{"client's include_usage false turned on", Provider{StreamUsage: true}, true, `{"model":"m","stream":true,"stream_options":{"include_usage":false}}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`},
		{"stream_usage off", Provider{}, true, `{"model":"m","stream":true}`, `{"model":"m","stream":true}`},
		{"stream_options dropped wins", Provider{StreamUsage: true, DropParams: []string{"stream_options"}}, true, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, `{"model":"m","stream":true}`},
	}
	for _, tt := range tests {
		got := string(tt.p.prepare([]byte(tt.body), tt.stream))
		if got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestFixFor(t *testing.T) {
	p := &Provider{Name: "deepseek"}
	body := []byte(`{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true},"logprobs":true}`)
	tests := []struct{ msg, want string }{
		{"Unrecognized request argument supplied: stream_options", "stream_usage off"},
		{"logprobs is not supported", "drop_params logprobs"},
		{"messages: field required", ""},
		{"bad things", ""},
	}
	for _, tt := range tests {
		got := p.fixFor(tt.msg, body)
		if tt.want == "" && got != "" || tt.want != "" && (!strings.Contains(got, tt.want) || !strings.Contains(got, `provider "deepseek"`)) {
			t.Errorf("%q: %q, want it to say %q", tt.msg, got, tt.want)
		}
	}
}
