package provider

import "testing"

func TestUsageOf(t *testing.T) {
	tests := []struct {
		body string
		want Usage
		ok   bool
	}{
		{`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}`,
			Usage{Prompt: 10, Completion: 5, Cached: 4, Reasoning: 2}, true},
		{`{"usage":{"prompt_tokens":7,"completion_tokens":3,"prompt_cache_hit_tokens":6}}`, Usage{Prompt: 7, Completion: 3, Cached: 6}, true},
		{`{"choices":[{"delta":{"content":"x"}}],"usage":null}`, Usage{}, false},
		{`{"choices":[{"delta":{"content":"usage"}}]}`, Usage{}, false},
		{`{"choices":[]}`, Usage{}, false},
	}
	for _, tt := range tests {
		got, ok := UsageOf([]byte(tt.body))
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: %+v %v, want %+v %v", tt.body, got, ok, tt.want, tt.ok)
		}
	}
}

func TestUsageOnly(t *testing.T) {
	tests := []struct {
		chunk string
		want  bool
	}{
		{`{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, true},
		{`{"id":"c","choices": [ ],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, true},
		{`{"id":"c","choices":[{"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, false},
		{`{"id":"c","choices":[],"usage":null}`, false},
		{`{"id":"c","choices":[{"delta":{"content":"hi"}}]}`, false},
	}
	for _, tt := range tests {
		if got := UsageOnly([]byte(tt.chunk)); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.chunk, got, tt.want)
		}
	}
}
