package provider

import (
	"slices"
	"testing"
)

func TestAmbiguousMember(t *testing.T) {
	tests := []struct {
		body      string
		key       string
		wantNames []string
	}{
		{`{"model":"a","stream":true}`, "", nil},
		{`{"model":"a","MODEL":"b"}`, "model", []string{"model", "MODEL"}},
		{`{"Model":"a"}`, "model", []string{"Model"}},
		{`{"model":"a","model":"b"}`, "model", []string{"model", "model"}},
		{`{"model":"a","mod\u0065l":"b"}`, "model", []string{"model", "model"}},
		{`{"model":"a","ſtream":true}`, "stream", []string{"ſtream"}},
		{`{"model":"a","stream":false,"Stream":true}`, "stream", []string{"stream", "Stream"}},
		{`{"models":"a","model_x":1,"model":"b"}`, "", nil},
		{`{"messages":[{"model":"x","MODEL":"y"}],"model":"a"}`, "", nil}, // nested: not the request's
	}
	for _, tt := range tests {
		key, names := AmbiguousMember([]byte(tt.body), "model", "stream")
		if key != tt.key || !slices.Equal(names, tt.wantNames) {
			t.Errorf("%s: %q %q, want %q %q", tt.body, key, names, tt.key, tt.wantNames)
		}
	}
}

func TestAmbiguousMemberAllocs(t *testing.T) {
	body := []byte(`{"model":"qwen3-max","stream":true,"messages":[{"role":"user","content":"hello"}],"temperature":0.7}`)
	if n := testing.AllocsPerRun(100, func() { AmbiguousMember(body, "model", "stream") }); n > 1 {
		t.Errorf("%v allocations for an ordinary body", n)
	}
}

func TestRenameField(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"a":1,"max_tokens":5,"b":2}`, `{"a":1,"max_completion_tokens":5,"b":2}`},
		{`{"max_tokens" : 5}`, `{"max_completion_tokens" : 5}`},
		{`{"max_t\u006fkens":5}`, `{"max_completion_tokens":5}`},
		{`{"x":{"max_tokens":5}}`, `{"x":{"max_tokens":5}}`},
		{`{"a":1}`, `{"a":1}`},
	}
	for _, tt := range tests {
		if got := string(RenameField([]byte(tt.body), "max_tokens", "max_completion_tokens")); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.body, got, tt.want)
		}
	}
}
