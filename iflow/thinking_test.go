package iflow

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/proxycast/caddy-proxycast/provider"
)

func TestApplyThinking(t *testing.T) {
	// msgs is carried byte for byte; its odd spacing and escapes show it.
	const msgs = `[{"role":"user","content":"think about \"this\" {}" ,"x":1.50}]`
	body := func(model, extra string) string {
		b := `{"model":"` + model + `","messages":` + msgs
		if extra != "" {
			b += "," + extra
		}
		return b + `,"x_unknown":{"keep":[1e3]}}`
	}
	tests := []struct {
		name  string
		model string
		in    string
		// want is the expected body, compared as decoded JSON; "" means the
		// body must come back byte for byte.
		want string
	}{
		{"glm high", "glm-4.6", body("glm-4.6", `"reasoning_effort":"high"`),
			body("glm-4.6", `"chat_template_kwargs":{"enable_thinking":true,"clear_thinking":false}`)},
		{"glm low is on", "glm-4.7", body("glm-4.7", `"reasoning_effort":"low"`),
			body("glm-4.7", `"chat_template_kwargs":{"enable_thinking":true,"clear_thinking":false}`)},
		{"glm minimal is on", "glm-5", body("glm-5", `"reasoning_effort":"minimal"`),
			body("glm-5", `"chat_template_kwargs":{"enable_thinking":true,"clear_thinking":false}`)},
		{"glm none", "glm-4.6", body("glm-4.6", `"reasoning_effort":"none"`),
			body("glm-4.6", `"chat_template_kwargs":{"enable_thinking":false}`)},
		{"glm upper case", "GLM-4.6", body("GLM-4.6", `"reasoning_effort":"high"`),
			body("GLM-4.6", `"chat_template_kwargs":{"enable_thinking":true,"clear_thinking":false}`)},
		{"deepseek-v3.1 high", "deepseek-v3.1", body("deepseek-v3.1", `"reasoning_effort":"high"`),
			body("deepseek-v3.1", `"chat_template_kwargs":{"enable_thinking":true}`)},
		{"deepseek-v3.2 none", "deepseek-v3.2", body("deepseek-v3.2", `"reasoning_effort":"none"`),
			body("deepseek-v3.2", `"chat_template_kwargs":{"enable_thinking":false}`)},
		{"deepseek-v3.2 medium", "deepseek-v3.2", body("deepseek-v3.2", `"reasoning_effort":"medium"`),
			body("deepseek-v3.2", `"chat_template_kwargs":{"enable_thinking":true}`)},
		{"minimax high", "minimax-m2", body("minimax-m2", `"reasoning_effort":"high"`),
			body("minimax-m2", `"reasoning_split":true`)},
		{"minimax none", "minimax-m2.5", body("minimax-m2.5", `"reasoning_effort":"none"`),
			body("minimax-m2.5", `"reasoning_split":false`)},
		{"minimax client split wins", "minimax-m2.1", body("minimax-m2.1", `"reasoning_split":false,"reasoning_effort":"high"`),
			body("minimax-m2.1", `"reasoning_split":false`)},
		{"client kwargs win, others kept", "glm-4.6",
			body("glm-4.6", `"chat_template_kwargs":{"enable_thinking":false,"clear_thinking":true,"other":"v"},"reasoning_effort":"high"`),
			body("glm-4.6", `"chat_template_kwargs":{"enable_thinking":false,"clear_thinking":true,"other":"v"}`)},
		{"client other kwargs kept", "deepseek-v3.1",
			body("deepseek-v3.1", `"reasoning_effort":"none","chat_template_kwargs":{"other":{"n":2}}`),
			body("deepseek-v3.1", `"chat_template_kwargs":{"other":{"n":2},"enable_thinking":false}`)},
		{"client clear_thinking wins", "glm-4.6",
			body("glm-4.6", `"chat_template_kwargs":{"clear_thinking":true},"reasoning_effort":"high"`),
			body("glm-4.6", `"chat_template_kwargs":{"clear_thinking":true,"enable_thinking":true}`)},

		// Bodies that pass untouched.
		{"qwen has no switch", "qwen3-max", body("qwen3-max", `"reasoning_effort":"high"`), ""},
		{"deepseek-v3 has no switch", "deepseek-v3", body("deepseek-v3", `"reasoning_effort":"high"`), ""},
		{"deepseek-r1 has no switch", "deepseek-r1", body("deepseek-r1", `"reasoning_effort":"none"`), ""},
		{"kimi has no switch", "kimi-k2-thinking", body("kimi-k2-thinking", `"reasoning_effort":"high"`), ""},
		{"glm without effort", "glm-4.6", body("glm-4.6", ""), ""},
		{"glm without effort, client kwargs", "glm-4.6", body("glm-4.6", `"chat_template_kwargs":{"enable_thinking":true}`), ""},
		{"deepseek-v3.1 without effort", "deepseek-v3.1", body("deepseek-v3.1", ""), ""},
		{"minimax without effort", "minimax-m2", body("minimax-m2", ""), ""},
		{"effort not a string", "glm-4.6", body("glm-4.6", `"reasoning_effort":null`), ""},
		{"kwargs not an object", "glm-4.6", body("glm-4.6", `"chat_template_kwargs":"x","reasoning_effort":"high"`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			orig := bytes.Clone(in)
			got := applyThinking(tt.model, in)
			if !bytes.Equal(in, orig) {
				t.Fatalf("input modified: %s", in)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			if tt.want == "" {
				if !bytes.Equal(got, orig) {
					t.Errorf("body changed:\n got %s\nwant %s", got, orig)
				}
				return
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("applyThinking(%q): %v: %s", tt.model, err, got)
			}
			if err := json.Unmarshal([]byte(tt.want), &w); err != nil {
				t.Fatalf("test case: want is not JSON: %v: %s", err, tt.want)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("applyThinking(%q):\n got %s\nwant %s", tt.model, got, tt.want)
			}
			if _, ok := provider.Field(got, "reasoning_effort"); ok {
				t.Errorf("reasoning_effort still sent: %s", got)
			}
			for _, k := range []string{"messages", "x_unknown", "model"} {
				before, _ := provider.Field(orig, k)
				after, _ := provider.Field(got, k)
				if !bytes.Equal(before, after) {
					t.Errorf("%s changed: %s -> %s", k, before, after)
				}
			}
		})
	}
}
