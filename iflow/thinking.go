package iflow

import (
	"encoding/json"

	"github.com/proxycast/caddy-proxycast/provider"
)

// applyThinking turns an OpenAI-style reasoning_effort into the switch the
// model's family takes ("none" is off, any other level on) and drops the
// field iFlow does not know. A switch the client set itself wins. Bodies
// without reasoning_effort, and models without a known switch, pass
// untouched.
func applyThinking(model string, body []byte) []byte {
	style := thinkingStyleOf(model)
	if style == thinkingNone {
		return body
	}
	effort, ok := provider.StringField(body, "reasoning_effort")
	if !ok {
		return body
	}
	on := effort != "none"
	switch style {
	case thinkingReasoningSplit:
		if _, set := provider.Field(body, "reasoning_split"); !set {
			body = provider.SetField(body, "reasoning_split", jsonBool(on))
		}
	case thinkingTemplateKwargs, thinkingGLM:
		kwargs := map[string]json.RawMessage{}
		if raw, set := provider.Field(body, "chat_template_kwargs"); set {
			if json.Unmarshal(raw, &kwargs) != nil || kwargs == nil {
				return body // not an object: leave the client's value to iFlow
			}
		}
		if _, set := kwargs["enable_thinking"]; !set {
			kwargs["enable_thinking"] = jsonBool(on)
		}
		if style == thinkingGLM && on {
			if _, set := kwargs["clear_thinking"]; !set {
				kwargs["clear_thinking"] = jsonBool(false)
			}
		}
		raw, err := json.Marshal(kwargs)
		if err != nil {
			return body
		}
		body = provider.SetField(body, "chat_template_kwargs", raw)
	}
	return provider.DeleteField(body, "reasoning_effort")
}

func jsonBool(b bool) []byte {
	if b {
		return []byte("true")
	}
	return []byte("false")
}
