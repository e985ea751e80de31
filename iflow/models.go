package iflow

import "strings"

// Models are the model names iFlow offered (late 2025 to early 2026). iFlow
// has no dependable model list endpoint, so the proxy serves this one.
var Models = []string{
	"qwen3-coder-plus", "qwen3-max", "qwen3-vl-plus", "qwen3-max-preview",
	"qwen3-32b", "qwen3-235b", "qwen3-235b-a22b-instruct",
	"qwen3-235b-a22b-thinking-2507",
	"kimi-k2", "kimi-k2-0905", "kimi-k2-thinking", "kimi-k2.5",
	"glm-4.6", "glm-4.7", "glm-5",
	"deepseek-v3", "deepseek-v3.1", "deepseek-v3.2", "deepseek-r1",
	"minimax-m2", "minimax-m2.1", "minimax-m2.5",
	"tstars2.0", "iflow-rome-30ba3b",
}

// thinkingStyle is how a model family takes its thinking switch.
type thinkingStyle int

const (
	thinkingNone           thinkingStyle = iota
	thinkingTemplateKwargs               // chat_template_kwargs.enable_thinking
	thinkingGLM                          // the same, plus clear_thinking:false when on
	thinkingReasoningSplit               // top-level reasoning_split
)

func thinkingStyleOf(model string) thinkingStyle {
	m := strings.ToLower(model)
	switch {
	case strings.HasPrefix(m, "glm-"):
		return thinkingGLM
	case strings.HasPrefix(m, "deepseek-v3.1"), strings.HasPrefix(m, "deepseek-v3.2"):
		return thinkingTemplateKwargs
	case strings.HasPrefix(m, "minimax-"):
		return thinkingReasoningSplit
	}
	return thinkingNone
}
