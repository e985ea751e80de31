package chatstream

import (
	"strings"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, as encoding/json would write
// it (invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped) but without
// escaping HTML characters.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// PlainString reports whether raw is a JSON string that can be copied
// into another document as it is: no control characters, only JSON's
// escapes.
func PlainString(raw []byte) bool {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	for i := 1; i < len(raw)-1; i++ {
		switch c := raw[i]; {
		case c < 0x20 || c == '"':
			return false
		case c == '\\':
			i++
			if i >= len(raw)-1 || !strings.ContainsRune(`"\/bfnrtu`, rune(raw[i])) {
				return false
			}
		}
	}
	return true
}

// progress follows a tool call's arguments as they arrive, to tell when
// they make a whole JSON value, without parsing them again for each
// fragment.
type progress struct {
	depth            int
	started          bool // a non-space byte came
	inString, escape bool
}

func (p *progress) feed(frag string) {
	for i := 0; i < len(frag); i++ {
		c := frag[i]
		switch {
		case p.inString:
			switch {
			case p.escape:
				p.escape = false
			case c == '\\':
				p.escape = true
			case c == '"':
				p.inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case c == '"':
			p.started, p.inString = true, true
		case c == '{' || c == '[':
			p.started = true
			p.depth++
		case c == '}' || c == ']':
			p.depth--
		default:
			p.started = true
		}
	}
}

// complete reports whether the arguments so far close every object,
// array and string they open.
func (p *progress) complete() bool { return p.started && p.depth <= 0 && !p.inString }
