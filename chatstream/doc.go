// Package chatstream reads OpenAI chat completions and their streams for
// translators into other wire formats (Anthropic Messages, OpenAI
// Responses). A stream of chat.completion.chunk events is turned into a
// sequence of blocks (reasoning, text, tool calls), each opened, filled
// and closed before the next begins, whatever quirks the upstream has:
// tool calls with 0-based, 1-based or missing indexes, calls interleaved
// with one another or with text, reasoning as reasoning_content,
// reasoning or content parts. It knows nothing of the formats it is
// translated into.
package chatstream
