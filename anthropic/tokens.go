package anthropic

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"unicode"
	"unicode/utf8"
)

// The local token estimate behind count_tokens.
//
// Claude's tokenizer is not public. The estimate follows OpenAI's
// o200k_base instead (the tokenizer of OpenAI's current models; the BPEs
// of DeepSeek, Qwen and GLM cut text about as finely) in two steps, as a
// BPE tokenizer does. First the text is cut into the pieces o200k_base's
// pre-tokenizer makes (words with the space or mark before them, runs of
// up to three digits, runs of punctuation, runs of whitespace); that cut
// is exact, and BPE never merges across it. Then each piece is given the
// number of tokens BPE makes of it on average: a table by length and by
// the character in front for words, by length for punctuation, one per
// digit group and per whitespace run, and for Chinese a walk over the
// ideographs with the 2,515 ideographs and 2,408 ideograph pairs that are
// single tokens of o200k_base. The tables that end this file were fitted
// against o200k_base on the corpus of tokens_test.go.

type text interface{ ~string | ~[]byte }

// Rune classes, after the character classes of o200k_base's pre-tokenizer.
const (
	rcPunct   = iota // neither letter, number nor whitespace
	rcSpace          // U+0020
	rcBlank          // other whitespace except \r and \n (tab, U+3000, …)
	rcNewline        // \r, \n
	rcDigit          // \p{N}
	rcUpper          // Lu, Lt: ends a word after lower-case letters
	rcLower          // Ll
	rcBoth           // Lm, Lo, M: upper and lower case at once
	rcEnd            // past the end of the text
)

// Scripts of letters, for their cost.
const (
	scASCII = iota
	scHan   // a CJK unified ideograph U+4E00–U+9FFF
	scWide  // other CJK ideographs, kana, hangul: costed per character
	scOther
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := range t {
		switch {
		case c == ' ':
			t[c] = rcSpace
		case c == '\r' || c == '\n':
			t[c] = rcNewline
		case c == '\t' || c == '\v' || c == '\f':
			t[c] = rcBlank
		case c >= '0' && c <= '9':
			t[c] = rcDigit
		case c >= 'A' && c <= 'Z':
			t[c] = rcUpper
		case c >= 'a' && c <= 'z':
			t[c] = rcLower
		default:
			t[c] = rcPunct
		}
	}
	return t
}()

// classify returns the class, script and size of the rune at s[i], and
// the rune itself.
func classify[T text](s T, i int) (class, script uint8, size int, r rune) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], scASCII, 1, rune(c)
	}
	return classifyWide(s, i)
}

func classifyWide[T text](s T, i int) (class, script uint8, size int, r rune) {
	var b [utf8.UTFMax]byte
	n := copy(b[:], s[i:])
	r, size = utf8.DecodeRune(b[:n])
	switch {
	case r >= 0x4E00 && r <= 0x9FFF:
		return rcBoth, scHan, size, r
	case r >= 0x3400 && r <= 0x4DBF, r >= 0xF900 && r <= 0xFAFF, r >= 0x20000 && r <= 0x3FFFF,
		r >= 0x3041 && r <= 0x309F, r >= 0x30A1 && r <= 0x30FA, r >= 0x30FC && r <= 0x30FF,
		r >= 0xAC00 && r <= 0xD7A3:
		return rcBoth, scWide, size, r
	case r >= 0x3001 && r <= 0x303F && r != 0x3005 && r != 0x3006 && r != 0x3007 || r >= 0xFF01 && r <= 0xFF0F:
		return rcPunct, scOther, size, r // CJK punctuation, the common case of non-ASCII
	case unicode.IsSpace(r):
		return rcBlank, scOther, size, r
	case unicode.IsUpper(r) || unicode.IsTitle(r):
		return rcUpper, scOther, size, r
	case unicode.IsLower(r):
		return rcLower, scOther, size, r
	case unicode.IsLetter(r) || unicode.IsMark(r):
		return rcBoth, scOther, size, r
	case unicode.IsNumber(r):
		return rcDigit, scOther, size, r
	}
	return rcPunct, scOther, size, r
}

func isLetterClass(c uint8) bool { return c >= rcUpper && c <= rcBoth }

// Piece kinds.
const (
	pkWord   = iota // letters, perhaps after one prefix character
	pkDigits        // up to three digits
	pkPunct         // a punctuation run, perhaps after a space, with the newlines after it
	pkSpace         // whitespace without a line break
	pkBreak         // whitespace up to and including line breaks
)

// Groups of the character in front of a word, which BPE merges with the
// word more or less readily.
const (
	pgBare  = iota // nothing, or a tab
	pgSpace        // a space
	pgJoin         // . _ ( [ \ @ $ < ' : merged with most words
	pgMark         // other ASCII punctuation
	pgWide         // non-ASCII punctuation or symbol (， 。 “ …)
	numGroups
)

var joinPrefix = [utf8.RuneSelf]bool{'.': true, '_': true, '(': true, '[': true, '\\': true, '@': true, '$': true, '<': true, '\'': true}

// piece is one pre-token. For a word of nothing but ASCII letters
// (plain), ascii, upper and group give its cost from the tables; any
// other word carries its cost in cost.
type piece struct {
	start, end  int
	kind        uint8
	group       uint8 // of the prefix, for words
	plain       bool
	contraction bool // 's, 't, 're, 've, 'm, 'll, 'd after the word
	runes       int
	ascii       int // ASCII letters
	upper       int // of them upper case
	cost        float64
	// for the calibration of words that are not plain
	wideLead bool // a prefix before a non-ASCII letter
	others   int  // letters of other scripts
}

// segmenter cuts text into the pieces of o200k_base's pre-tokenizer:
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
type segmenter[T text] struct {
	s T
	i int
}

func (g *segmenter[T]) peek(i int) (class, script uint8, size int, r rune) {
	if i >= len(g.s) {
		return rcEnd, 0, 0, 0
	}
	if c := g.s[i]; c < utf8.RuneSelf {
		return asciiClass[c], scASCII, 1, rune(c)
	}
	return classifyWide(g.s, i)
}

func (g *segmenter[T]) next(p *piece) bool {
	if g.i >= len(g.s) {
		return false
	}
	*p = piece{start: g.i}
	c, sc, n, r := g.peek(g.i)
	switch {
	case isLetterClass(c):
		g.word(p, pgBare, false)
	case c == rcDigit:
		p.kind = pkDigits
		for k := 0; k < 3 && c == rcDigit; k++ {
			g.i += n
			p.runes++
			c, _, n, _ = g.peek(g.i)
		}
	case c == rcPunct:
		if c2, _, _, _ := g.peek(g.i + n); isLetterClass(c2) {
			group := uint8(pgWide)
			if sc == scASCII {
				group = pgMark
				if joinPrefix[r] {
					group = pgJoin
				}
			}
			g.i += n
			g.word(p, group, true)
		} else {
			g.punct(p)
		}
	default:
		g.space(p)
	}
	p.end = g.i
	return true
}

// word reads the letters from g.i; a prefix, if any, is already read.
// Upper-case letters after lower-case ones begin the next word.
func (g *segmenter[T]) word(p *piece, group uint8, prefixed bool) {
	p.kind, p.group, p.plain = pkWord, group, true
	if prefixed {
		p.runes = 1
	}
	var (
		lowerSeen bool
		run       int   // ASCII letters in the current run
		runUpper  int   // of them upper case
		runGroup  uint8 // the group the run's cost is taken from
		pending   rune  // a Han ideograph not yet paired
	)
	prefixRunes := p.runes
	for {
		// ASCII letters, the common case, without the general path.
		str, i, runes := g.s, g.i, p.runes
		for i < len(str) && str[i] < utf8.RuneSelf {
			c := asciiClass[str[i]]
			if c == rcLower {
				lowerSeen = true
			} else if c != rcUpper || lowerSeen {
				break
			} else {
				runUpper++
			}
			if run == 0 {
				if pending != 0 {
					p.cost += hanCost(pending)
					pending = 0
				}
				runGroup = pgBare
				if runes == prefixRunes {
					runGroup = group
				}
			}
			run++
			runes++
			i++
		}
		g.i, p.runes = i, runes
		c, sc, n, r := g.peek(g.i)
		if sc == scASCII || !isLetterClass(c) || c == rcUpper && lowerSeen {
			break
		}
		if c == rcLower {
			lowerSeen = true
		}
		first := p.runes == prefixRunes
		p.runes++
		g.i += n
		p.plain = false
		if run > 0 {
			p.cost += wordCost(runGroup, run, runUpper)
			run, runUpper = 0, 0
		}
		if first && prefixed {
			p.cost += prefixCosts[group]
			p.wideLead = true
		}
		if sc == scHan && pending != 0 && isHanPair(pending, r) {
			p.cost++
			pending = 0
			continue
		}
		if pending != 0 {
			p.cost += hanCost(pending)
			pending = 0
		}
		switch sc {
		case scHan:
			pending = r
		case scWide:
			p.cost += wideCost(r)
		default:
			p.cost += otherLetterCost
			p.others++
		}
	}
	if pending != 0 {
		p.cost += hanCost(pending)
	}
	if p.plain {
		p.ascii, p.upper = run, runUpper
	} else if run > 0 {
		p.cost += wordCost(runGroup, run, runUpper)
	}
	if g.contraction(p) {
		p.contraction = true
		p.cost += contractionCost
	}
}

// contraction reads the English contraction that the pre-tokenizer keeps
// with the word before it.
func (g *segmenter[T]) contraction(p *piece) bool {
	s, i := g.s, g.i
	if i+1 >= len(s) || s[i] != '\'' {
		return false
	}
	n := 0
	switch s[i+1] | 0x20 {
	case 's', 't', 'm', 'd':
		n = 2
	case 'r', 'v':
		if i+2 < len(s) && s[i+2]|0x20 == 'e' {
			n = 3
		}
	case 'l':
		if i+2 < len(s) && s[i+2]|0x20 == 'l' {
			n = 3
		}
	}
	p.runes += n
	g.i += n
	return n > 0
}

// punct reads a punctuation run and the line breaks and slashes after it.
func (g *segmenter[T]) punct(p *piece) {
	p.kind = pkPunct
	for {
		c, _, n, _ := g.peek(g.i)
		if c != rcPunct {
			break
		}
		g.i += n
		p.runes++
	}
	for g.i < len(g.s) && (g.s[g.i] == '\n' || g.s[g.i] == '\r' || g.s[g.i] == '/') {
		g.i++
		p.runes++
	}
}

// space reads whitespace. A run with line breaks is one piece up to its
// last break; of the blanks after that, the last goes with a word or
// (a space) with punctuation that follows.
func (g *segmenter[T]) space(p *piece) {
	j, lastBreak, lastSize, onlySpaces := g.i, -1, 0, true
	var c uint8
	for {
		var n int
		c, _, n, _ = g.peek(j)
		if c != rcSpace && c != rcBlank && c != rcNewline {
			break
		}
		if c == rcNewline {
			lastBreak = j
		}
		onlySpaces = onlySpaces && c == rcSpace
		lastSize = n
		j += n
	}
	if lastBreak >= 0 {
		p.kind = pkBreak
		p.runes = countRunes(g.s[g.i : lastBreak+1])
		g.i = lastBreak + 1
		return
	}
	p.kind = pkSpace
	last := j - lastSize
	lastIsSpace := g.s[last] == ' '
	if c != rcEnd && (isLetterClass(c) || c == rcPunct && lastIsSpace) {
		if last == g.i { // one blank, the prefix of what follows
			g.i = j
			if isLetterClass(c) {
				group := uint8(pgBare)
				if lastIsSpace {
					group = pgSpace
				}
				g.word(p, group, true)
			} else {
				g.punct(p)
				p.runes++
			}
			return
		}
		j = last
	} else if c != rcEnd && last > g.i {
		j = last // before a digit or after a tab before punctuation, the last blank stands alone
	}
	p.runes = j - g.i
	if !onlySpaces {
		p.runes = countRunes(g.s[g.i:j])
	}
	p.plain = onlySpaces
	g.i = j
}

func countRunes[T text](s T) int {
	n := 0
	for i := 0; i < len(s); n++ {
		if s[i] < utf8.RuneSelf {
			i++
		} else {
			_, _, size, _ := classify(s, i)
			i += size
		}
	}
	return n
}

// tokens is what BPE makes of the piece, on average.
func (p *piece) tokens() float64 {
	switch p.kind {
	case pkWord:
		if p.plain {
			c := wordCost(p.group, p.ascii, p.upper)
			if p.contraction {
				c += contractionCost
			}
			return c
		}
		return p.cost
	case pkDigits:
		return 1
	case pkPunct:
		if p.runes < len(punctCost) {
			return punctCost[p.runes]
		}
		return punctCost[len(punctCost)-1] + punctRate*float64(p.runes-len(punctCost)+1)
	case pkSpace:
		if p.plain { // spaces only: one token up to 79 of them
			return float64(1 + (p.runes-1)/79)
		}
	}
	return float64(1 + (p.runes-1)/16) // tabs and line breaks: up to 16 a token
}

func wordCost(group uint8, letters, upper int) float64 {
	t := &wordCosts[group]
	var c float64
	if letters < len(t) {
		c = t[letters]
	} else {
		c = t[len(t)-1] + longWordRate*float64(letters-len(t)+1)
	}
	if upper == letters && letters > 1 {
		c += capsCosts[min(letters, len(capsCosts)-1)]
	}
	return c
}

// hanCost is the cost of one ideograph that pairs with neither neighbour:
// a token if o200k_base has it as one, else the two its UTF-8 bytes make.
func hanCost(r rune) float64 {
	k := r - 0x4E00
	if hanSingles[k>>6]&(1<<(k&63)) != 0 {
		return 1
	}
	return 2
}

// wideCost is the cost of other CJK letters: kana and hangul are mostly a
// token each in o200k_base, rarer ideographs as many as their bytes.
func wideCost(r rune) float64 {
	switch {
	case r >= 0x3041 && r <= 0x30FF, r >= 0xAC00 && r <= 0xD7A3:
		return 1
	case r >= 0x10000:
		return 4
	}
	return 3
}

func isHanPair(a, b rune) bool {
	key := uint32(a-0x4E00)<<16 | uint32(b-0x4E00) + 1
	for h := key * 0x9E3779B1 >> (32 - hanPairBits); ; h = (h + 1) & (1<<hanPairBits - 1) {
		switch hanPairs[h] {
		case key:
			return true
		case 0:
			return false
		}
	}
}

const hanPairBits = 13

var (
	hanSingles [(0x9FFF - 0x4E00 + 64) / 64]uint64
	hanPairs   [1 << hanPairBits]uint32
)

func init() { loadHanTables(hanSingleList, hanPairList) }

// loadHanTables fills the tables of ideographs (singles) and ideograph
// pairs (pairs, two by two) that are one token.
func loadHanTables(singles, pairs string) {
	hanSingles = [len(hanSingles)]uint64{}
	hanPairs = [len(hanPairs)]uint32{}
	for _, r := range singles {
		k := r - 0x4E00
		hanSingles[k>>6] |= 1 << (k & 63)
	}
	var a rune
	for _, r := range pairs {
		if a == 0 {
			a = r
			continue
		}
		key := uint32(a-0x4E00)<<16 | uint32(r-0x4E00) + 1
		h := key * 0x9E3779B1 >> (32 - hanPairBits)
		for hanPairs[h] != 0 {
			h = (h + 1) & (1<<hanPairBits - 1)
		}
		hanPairs[h] = key
		a = 0
	}
}

// EstimateText estimates the tokens of one text. It makes one pass over
// the text and allocates nothing.
func EstimateText(s string) int { return int(textTokens(s) + 0.5) }

func textTokens[T text](s T) float64 {
	g := segmenter[T]{s: s}
	var p piece
	n := 0.0
	for g.next(&p) {
		n += p.tokens()
	}
	return n
}

// Overheads of a request's structure that its text does not show. Claude's
// prompt format is not public either; these follow the two examples of
// Anthropic's count_tokens documentation ("Hello, Claude" after a
// one-line system prompt counts 14; one small tool adds about 350) and
// its published tool-use prompt sizes.
const (
	requestOverhead    = 3   // the turn that the answer opens
	messageOverhead    = 3   // a message's role and framing
	toolUseOverhead    = 8   // a tool call's framing around its name and input
	toolResultOverhead = 5   // a tool result's framing
	toolOverhead       = 5   // a tool definition's framing around its name, description and schema
	toolsPromptAuto    = 346 // the tool-use system prompt with tool_choice auto or none
	toolsPromptAny     = 313 // … with tool_choice any or tool
	// Images: Anthropic counts width × height / 750 after scaling the
	// long edge down to 1568 pixels, about 1600 at most; an image whose
	// size cannot be read (a URL, a file id, an unknown format) counts
	// as the largest.
	imagePixelsPerToken = 750
	imageMaxEdge        = 1568
	imageMaxTokens      = 1600
	// A PDF page counts as its text and its picture: Anthropic gives
	// 1,500 to 3,000 tokens a page; this is the middle.
	pdfPageTokens = 2250
	pdfBytesPage  = 100 << 10 // a page per this many bytes where no page objects can be found
	// Encrypted thinking: its base64 carries about the bytes of the text.
	redactedCharsPerToken = 5
)

// Server tools whose definition is Anthropic's own: the input tokens each
// adds, as Anthropic documents them, by the prefix of its type.
var serverTools = []struct {
	prefix string
	tokens int64
}{
	{"bash_", 245},
	{"text_editor_", 700},
	{"computer_", 735},
}

// EstimateTokens estimates the input tokens of a Messages request or
// count_tokens body: the text of system, messages (text, tool_use name
// and input JSON, tool_result content, thinking) and tool definitions
// (name, description, input_schema JSON), the overheads above, and
// images as Anthropic counts them where their size can be read from the
// PNG, JPEG, GIF or WebP header in their base64 data. Any JSON object is
// estimated, whatever its members hold; a body that is not a JSON object
// is an error.
func EstimateTokens(body []byte) (int64, error) {
	r := jsonReader{b: body}
	r.ws()
	if r.i < len(r.b) && r.b[r.i] != '{' {
		r.skip()
		r.end()
		if r.err != nil {
			return 0, r.err
		}
		return 0, errors.New("the body is not a JSON object")
	}
	bufs := estimateBuffers.Get().(*[2][]byte)
	e := estimator{r: &r, buf: bufs[0][:0], alt: bufs[1][:0]}
	defer func() {
		if cap(e.buf)+cap(e.alt) <= maxPooledBuffers {
			bufs[0], bufs[1] = e.buf, e.alt
			estimateBuffers.Put(bufs)
		}
	}()
	var tools int64
	forced := false // tool_choice any or tool
	r.object(func(key []byte) {
		switch string(key) {
		case "system":
			e.content()
		case "messages":
			if !r.is('[') {
				e.json()
				return
			}
			r.array(func() {
				e.n += messageOverhead
				if !r.is('{') {
					e.json()
					return
				}
				r.object(func(key []byte) {
					if string(key) == "content" {
						e.content()
					} else {
						r.skip()
					}
				})
			})
		case "tools":
			if !r.is('[') {
				e.json()
				return
			}
			r.array(func() {
				tools++
				e.tool()
			})
		case "tool_choice":
			if !r.is('{') {
				r.skip()
				return
			}
			r.object(func(key []byte) {
				if string(key) == "type" && r.is('"') {
					t := r.str(&e.buf)
					forced = string(t) == "any" || string(t) == "tool"
				} else {
					r.skip()
				}
			})
		default:
			r.skip()
		}
	})
	r.end()
	if r.err != nil {
		return 0, r.err
	}
	n := requestOverhead + int64(math.Round(e.n))
	if tools > 0 {
		if forced {
			n += toolsPromptAny
		} else {
			n += toolsPromptAuto
		}
	}
	return n, nil
}

// estimateBuffers keeps estimators' buffers between requests, up to
// maxPooledBuffers bytes each.
var estimateBuffers = sync.Pool{New: func() any { return new([2][]byte) }}

const maxPooledBuffers = 1 << 20

// estimator sums the tokens of a request as its reader walks it.
type estimator struct {
	r   *jsonReader
	n   float64
	buf []byte // unescaped strings
	alt []byte // compacted JSON
}

// text counts a string value, or the JSON of anything else.
func (e *estimator) text() {
	if !e.r.is('"') {
		e.json()
		return
	}
	e.n += textTokens(e.r.str(&e.buf))
}

// json counts a value as the compact JSON text it is.
func (e *estimator) json() {
	start := e.r.i
	e.r.skip()
	if e.r.err != nil {
		return
	}
	e.alt = compactJSON(e.alt[:0], e.r.b[start:e.r.i])
	e.n += textTokens(e.alt)
}

// content counts message content: a string, or an array of blocks.
func (e *estimator) content() {
	r := e.r
	switch {
	case r.is('"'):
		e.text()
	case r.is('['):
		r.array(e.block)
	default:
		e.json()
	}
}

// spans of a block's members, read before its type is known (members
// come in any order).
type blockSpans struct {
	typ                                  []byte
	text, thinking, name, input, content span
	source, data, title, context         span
}

type span struct{ s, e int }

func (s span) ok() bool { return s.e > s.s }

// block counts one content block.
func (e *estimator) block() {
	r := e.r
	if !r.is('{') {
		e.json()
		return
	}
	start := r.i
	var b blockSpans
	r.object(func(key []byte) {
		var sp *span
		switch string(key) {
		case "type":
			if r.is('"') {
				b.typ = r.str(nil)
				return
			}
		case "text":
			sp = &b.text
		case "thinking":
			sp = &b.thinking
		case "name":
			sp = &b.name
		case "input":
			sp = &b.input
		case "content":
			sp = &b.content
		case "source":
			sp = &b.source
		case "data":
			sp = &b.data
		case "title":
			sp = &b.title
		case "context":
			sp = &b.context
		}
		s := r.i
		r.skip()
		if sp != nil {
			*sp = span{s, r.i}
		}
	})
	if r.err != nil {
		return
	}
	end := r.i
	switch string(b.typ) {
	case "text":
		e.sub(b.text, e.text)
	case "thinking":
		e.sub(b.thinking, e.text)
	case "redacted_thinking":
		if b.data.ok() {
			e.n += float64(b.data.e-b.data.s) / redactedCharsPerToken
		}
	case "tool_use", "server_tool_use", "mcp_tool_use":
		e.n += toolUseOverhead
		e.sub(b.name, e.text)
		e.sub(b.input, e.json)
	case "tool_result", "mcp_tool_result":
		e.n += toolResultOverhead
		e.sub(b.content, e.content)
	case "image":
		e.n += e.image(b.source)
	case "document":
		e.sub(b.title, e.text)
		e.sub(b.context, e.text)
		e.document(b.source)
	case "search_result":
		e.sub(b.title, e.text)
		e.sub(b.source, e.text)
		e.sub(b.content, e.content)
	default:
		e.sub(span{start, end}, e.json)
	}
}

// sub runs count on the value at sp, if there is one.
func (e *estimator) sub(sp span, count func()) {
	if !sp.ok() {
		return
	}
	saved := *e.r
	e.r.b, e.r.i = e.r.b[:sp.e], sp.s
	count()
	err := e.r.err
	*e.r = saved
	if e.r.err == nil {
		e.r.err = err
	}
}

// tool counts one tool definition.
func (e *estimator) tool() {
	r := e.r
	if !r.is('{') {
		e.json()
		return
	}
	start := r.i
	var typ []byte
	var name, desc, schema span
	r.object(func(key []byte) {
		var sp *span
		switch string(key) {
		case "type":
			if r.is('"') {
				typ = r.str(nil)
				return
			}
		case "name":
			sp = &name
		case "description":
			sp = &desc
		case "input_schema":
			sp = &schema
		}
		s := r.i
		r.skip()
		if sp != nil {
			*sp = span{s, r.i}
		}
	})
	if r.err != nil {
		return
	}
	if !schema.ok() && len(typ) > 0 && string(typ) != "custom" {
		for _, st := range serverTools {
			if bytes.HasPrefix(typ, []byte(st.prefix)) {
				e.n += float64(st.tokens)
				return
			}
		}
		e.n += toolOverhead
		e.sub(span{start, r.i}, e.json)
		return
	}
	e.n += toolOverhead
	e.sub(name, e.text)
	e.sub(desc, e.text)
	e.sub(schema, e.json)
}

// image counts an image block by its source.
func (e *estimator) image(source span) float64 {
	data, ok := e.base64Source(source)
	if !ok {
		return imageMaxTokens
	}
	w, h, ok := imageSize(data)
	if !ok {
		return imageMaxTokens
	}
	return float64(imageSizeTokens(w, h))
}

// imageSizeTokens is Anthropic's rule for an image of w × h pixels.
func imageSizeTokens(w, h int) int64 {
	fw, fh := float64(w), float64(h)
	if long := math.Max(fw, fh); long > imageMaxEdge {
		fw, fh = fw*imageMaxEdge/long, fh*imageMaxEdge/long
	}
	return int64(math.Min(math.Ceil(fw*fh/imagePixelsPerToken), imageMaxTokens))
}

// document counts a document block by its source: a PDF by its pages,
// text as text, content as blocks.
func (e *estimator) document(source span) {
	var typ []byte
	var data, content span
	e.sub(source, func() {
		r := e.r
		if !r.is('{') {
			r.skip()
			return
		}
		r.object(func(key []byte) {
			var sp *span
			switch string(key) {
			case "type":
				if r.is('"') {
					typ = r.str(nil)
					return
				}
			case "data":
				sp = &data
			case "content":
				sp = &content
			}
			s := r.i
			r.skip()
			if sp != nil {
				*sp = span{s, r.i}
			}
		})
	})
	switch string(typ) {
	case "text":
		e.sub(data, e.text)
	case "content":
		e.sub(content, e.content)
	case "base64":
		b64, ok := e.base64Source(source)
		if !ok {
			e.n += pdfPageTokens
			return
		}
		e.n += float64(pdfPageTokens * pdfPages(b64))
	default:
		e.n += pdfPageTokens
	}
}

// base64Source returns the data of a {"type":"base64","data":…} source,
// unescaped.
func (e *estimator) base64Source(source span) ([]byte, bool) {
	var typ, data []byte
	e.sub(source, func() {
		r := e.r
		if !r.is('{') {
			r.skip()
			return
		}
		r.object(func(key []byte) {
			switch {
			case string(key) == "type" && r.is('"'):
				typ = r.str(nil)
			case string(key) == "data" && r.is('"'):
				data = r.str(&e.buf)
			default:
				r.skip()
			}
		})
	})
	return data, string(typ) == "base64" && len(data) > 0
}

// jsonReader reads JSON in place, allocating nothing: it checks the
// syntax as it goes (RFC 8259), and remembers the first error.
type jsonReader struct {
	b     []byte
	i     int
	depth int
	err   error
}

// maxDepth is encoding/json's limit on nesting.
const maxDepth = 10000

func (r *jsonReader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("the body is not valid JSON: "+format, a...)
	}
	r.i = len(r.b) // stop reading
}

func (r *jsonReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// is reports whether the next value begins with c.
func (r *jsonReader) is(c byte) bool {
	r.ws()
	return r.err == nil && r.i < len(r.b) && r.b[r.i] == c
}

// end checks that nothing but whitespace follows the top-level value.
func (r *jsonReader) end() {
	r.ws()
	if r.err == nil && r.i < len(r.b) {
		r.fail("data after the top-level value at offset %d", r.i)
	}
}

// object reads an object, calling member at each member's value, which
// member must read (with skip, str or another reader call).
func (r *jsonReader) object(member func(key []byte)) {
	if !r.is('{') {
		r.fail("expected an object at offset %d", r.i)
		return
	}
	if r.depth++; r.depth > maxDepth {
		r.fail("nested too deeply")
		return
	}
	r.i++
	var key []byte
	if r.is('}') {
		r.i++
		r.depth--
		return
	}
	for r.err == nil {
		if !r.is('"') {
			r.fail("expected a member name at offset %d", r.i)
			return
		}
		key = r.str(nil)
		if bytes.IndexByte(key, '\\') >= 0 {
			key = unescape(nil, key)
		}
		r.ws()
		if r.err != nil || r.i >= len(r.b) || r.b[r.i] != ':' {
			r.fail("expected ':' at offset %d", r.i)
			return
		}
		r.i++
		r.ws()
		member(key)
		r.ws()
		if r.err != nil {
			return
		}
		if r.i < len(r.b) && r.b[r.i] == ',' {
			r.i++
			continue
		}
		if r.i < len(r.b) && r.b[r.i] == '}' {
			r.i++
			r.depth--
			return
		}
		r.fail("expected ',' or '}' at offset %d", r.i)
	}
}

// array reads an array, calling elem at each element, which elem must
// read.
func (r *jsonReader) array(elem func()) {
	if !r.is('[') {
		r.fail("expected an array at offset %d", r.i)
		return
	}
	if r.depth++; r.depth > maxDepth {
		r.fail("nested too deeply")
		return
	}
	r.i++
	if r.is(']') {
		r.i++
		r.depth--
		return
	}
	for r.err == nil {
		r.ws()
		elem()
		r.ws()
		if r.err != nil {
			return
		}
		if r.i < len(r.b) && r.b[r.i] == ',' {
			r.i++
			continue
		}
		if r.i < len(r.b) && r.b[r.i] == ']' {
			r.i++
			r.depth--
			return
		}
		r.fail("expected ',' or ']' at offset %d", r.i)
	}
}

// skip reads any value.
func (r *jsonReader) skip() {
	r.ws()
	if r.err != nil {
		return
	}
	if r.i >= len(r.b) {
		r.fail("unexpected end")
		return
	}
	switch c := r.b[r.i]; {
	case c == '{':
		r.object(func([]byte) { r.skip() })
	case c == '[':
		r.array(r.skip)
	case c == '"':
		r.str(nil)
	case c == '-' || c >= '0' && c <= '9':
		r.number()
	case c == 't':
		r.literal("true")
	case c == 'f':
		r.literal("false")
	case c == 'n':
		r.literal("null")
	default:
		r.fail("unexpected %q at offset %d", c, r.i)
	}
}

func (r *jsonReader) literal(word string) {
	if !bytes.HasPrefix(r.b[r.i:], []byte(word)) {
		r.fail("unexpected %q at offset %d", r.b[r.i], r.i)
		return
	}
	r.i += len(word)
}

func (r *jsonReader) number() {
	b, i := r.b, r.i
	digits := func() bool {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > s
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		r.fail("bad number at offset %d", r.i)
		return
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			r.fail("bad number at offset %d", r.i)
			return
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			r.fail("bad number at offset %d", r.i)
			return
		}
	}
	r.i = i
}

// str reads a string. It returns the string's content: raw if buf is
// nil, else unescaped (into *buf when there are escapes).
func (r *jsonReader) str(buf *[]byte) []byte {
	b := r.b
	start := r.i + 1
	escaped := false
	for i := start; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			r.i = i + 1
			raw := b[start:i]
			if buf == nil || !escaped {
				return raw
			}
			*buf = unescape((*buf)[:0], raw)
			return *buf
		case c == '\\':
			escaped = true
			i++
			if i >= len(b) {
				break
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					r.fail("bad \\u escape at offset %d", i)
					return nil
				}
				i += 4
			default:
				r.fail("bad escape at offset %d", i)
				return nil
			}
		case c < 0x20:
			r.fail("control character in a string at offset %d", i)
			return nil
		}
	}
	r.fail("unterminated string at offset %d", r.i)
	return nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f' }

func hexVal(b []byte) rune {
	var v rune
	for _, c := range b {
		switch {
		case c <= '9':
			v = v<<4 | rune(c-'0')
		default:
			v = v<<4 | rune(c|0x20-'a'+10)
		}
	}
	return v
}

// unescape appends the content of a checked JSON string to dst.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hexVal(raw[i+1 : i+5])
			i += 4
			if utf16IsHigh(r) && i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo := hexVal(raw[i+3 : i+7]); lo >= 0xDC00 && lo <= 0xDFFF {
					r = (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000
					i += 6
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // " \ /
			dst = append(dst, raw[i])
		}
	}
	return dst
}

func utf16IsHigh(r rune) bool { return r >= 0xD800 && r <= 0xDBFF }

// compactJSON appends checked JSON without its insignificant whitespace,
// with \u escapes of non-ASCII characters written as the characters, as
// a tool's schema or input reads when it is rendered for the model.
func compactJSON(dst, v []byte) []byte {
	in := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
		case c == '"':
			in = !in
			dst = append(dst, c)
		case in && c == '\\':
			if v[i+1] == 'u' {
				if r := hexVal(v[i+2 : i+6]); r >= utf8.RuneSelf {
					n := 6
					if utf16IsHigh(r) && i+11 < len(v) && v[i+6] == '\\' && v[i+7] == 'u' {
						n = 12
					}
					dst = unescape(dst, v[i:i+n])
					i += n - 1
					continue
				}
			}
			dst = append(dst, c, v[i+1])
			i++
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// b64 decodes base64 (standard or URL alphabet) at random offsets of the
// bytes it encodes, without decoding the rest.
type b64 []byte

var b64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range len(std) {
		t[std[i]] = byte(i)
	}
	t['-'], t['_'] = 62, 63
	return t
}()

// at returns the byte at offset off of the decoded data.
func (d b64) at(off int) (byte, bool) {
	if off < 0 {
		return 0, false
	}
	q := off / 3 * 4
	var v uint32
	m := 0 // characters of the quantum that carry data
	for k := range 4 {
		x := byte(0)
		if q+k < len(d) && d[q+k] != '=' {
			if x = b64Values[d[q+k]]; x == 0xFF {
				return 0, false
			}
			m++
		}
		v = v<<6 | uint32(x)
	}
	if off%3 >= m-1 {
		return 0, false
	}
	return byte(v >> (16 - 8*(off%3))), true
}

// be and le read n bytes at off as a big- or little-endian number.
func (d b64) be(off, n int) (int, bool) {
	v := 0
	for k := range n {
		c, ok := d.at(off + k)
		if !ok {
			return 0, false
		}
		v = v<<8 | int(c)
	}
	return v, true
}

func (d b64) le(off, n int) (int, bool) {
	v := 0
	for k := n - 1; k >= 0; k-- {
		c, ok := d.at(off + k)
		if !ok {
			return 0, false
		}
		v = v<<8 | int(c)
	}
	return v, true
}

func (d b64) has(off int, s string) bool {
	for k := range len(s) {
		if c, ok := d.at(off + k); !ok || c != s[k] {
			return false
		}
	}
	return true
}

// imageSize reads the width and height from the header of a base64 PNG,
// JPEG, GIF or WebP image.
func imageSize(data []byte) (w, h int, ok bool) {
	if bytes.HasPrefix(data, []byte("data:")) {
		if i := bytes.IndexByte(data, ','); i >= 0 {
			data = data[i+1:]
		}
	}
	d := b64(data)
	switch {
	case d.has(0, "\x89PNG\r\n\x1a\n") && d.has(12, "IHDR"):
		w, ok1 := d.be(16, 4)
		h, ok2 := d.be(20, 4)
		return w, h, ok1 && ok2 && w > 0 && h > 0
	case d.has(0, "GIF87a") || d.has(0, "GIF89a"):
		w, ok1 := d.le(6, 2)
		h, ok2 := d.le(8, 2)
		return w, h, ok1 && ok2 && w > 0 && h > 0
	case d.has(0, "RIFF") && d.has(8, "WEBP"):
		return webpSize(d)
	case d.has(0, "\xFF\xD8"):
		return jpegSize(d)
	}
	return 0, 0, false
}

func webpSize(d b64) (w, h int, ok bool) {
	switch {
	case d.has(12, "VP8 ") && d.has(23, "\x9d\x01\x2a"):
		w, ok1 := d.le(26, 2)
		h, ok2 := d.le(28, 2)
		return w & 0x3FFF, h & 0x3FFF, ok1 && ok2 && w&0x3FFF > 0 && h&0x3FFF > 0
	case d.has(12, "VP8L") && d.has(20, "\x2f"):
		v, ok := d.le(21, 4)
		return v&0x3FFF + 1, v>>14&0x3FFF + 1, ok
	case d.has(12, "VP8X"):
		w, ok1 := d.le(24, 3)
		h, ok2 := d.le(27, 3)
		return w + 1, h + 1, ok1 && ok2
	}
	return 0, 0, false
}

// jpegSize walks the JPEG's segments to its frame header.
func jpegSize(d b64) (w, h int, ok bool) {
	off := 2
	for range 1000 {
		c, ok := d.at(off)
		if !ok || c != 0xFF {
			return 0, 0, false
		}
		m, ok := d.at(off + 1)
		if !ok {
			return 0, 0, false
		}
		switch {
		case m == 0xFF: // fill byte
			off++
			continue
		case m == 0x01 || m >= 0xD0 && m <= 0xD8: // no length
			off += 2
			continue
		case m == 0xD9 || m == 0xDA: // end of image, start of scan: no frame header before
			return 0, 0, false
		}
		n, ok := d.be(off+2, 2)
		if !ok || n < 2 {
			return 0, 0, false
		}
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			h, ok1 := d.be(off+5, 2)
			w, ok2 := d.be(off+7, 2)
			return w, h, ok1 && ok2 && w > 0 && h > 0
		}
		off += 2 + n
	}
	return 0, 0, false
}

// pdfPages counts the page objects of a base64 PDF; where there are none
// to see (they can sit in compressed object streams), it guesses from
// the size.
func pdfPages(data []byte) int64 {
	var chunk [4096 + 16]byte
	carry, n, pages, size := 0, 0, int64(0), 0
	var acc uint32
	bits := 0
	// scan counts the page objects that begin in b, but for those in its
	// last 16 bytes, which the next chunk begins with, unless final.
	scan := func(b []byte, final bool) {
		limit := len(b) - 16
		if final {
			limit = len(b)
		}
		for {
			i := bytes.Index(b, []byte("/Type"))
			if i < 0 || i >= limit {
				return
			}
			limit -= i + 5
			j := i + 5
			for j < len(b) && (b[j] == ' ' || b[j] == '\n' || b[j] == '\r' || b[j] == '\t') {
				j++
			}
			if j+5 < len(b) && string(b[j:j+5]) == "/Page" {
				if c := b[j+5]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
					pages++
				}
			}
			b = b[i+5:]
		}
	}
	for _, c := range data {
		v := b64Values[c]
		if v == 0xFF {
			continue // padding, line breaks
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			chunk[carry+n] = byte(acc >> bits)
			n++
			size++
			if carry+n == len(chunk) {
				scan(chunk[:carry+n], false)
				carry = copy(chunk[:], chunk[len(chunk)-16:])
				n = 0
			}
		}
	}
	scan(chunk[:carry+n], true)
	if pages == 0 {
		pages = int64(max(1, size/pdfBytesPage))
	}
	return pages
}

// The tables below are written by TestCalibrate (go test ./anthropic -run
// TestCalibrate -calibrate -calibrate.out=FILE writes what replaces this
// comment to the end of the file), from o200k_base on the corpus:
// wordCosts[group][n] is the mean count of a word of n ASCII letters after
// a prefix of the group, longWordRate what each letter past 16 adds,
// capsCosts[n] what capitals throughout add; punctCost[n] is the mean
// count of a punctuation piece of n characters, punctRate what each past 7
// adds; contractionCost is what 's, 't, … add; and, by least squares,
// prefixCosts is what a prefix before a non-ASCII letter adds and
// otherLetterCost the cost of a letter of other scripts (Cyrillic,
// accented Latin, …). hanSingleList and hanPairList are the ideographs
// and ideograph pairs that o200k_base's vocabulary has as one token.
var (
	wordCosts = [numGroups][17]float64{
		{0, 1.00, 1.07, 1.10, 1.10, 1.13, 1.13, 1.21, 1.36, 1.83, 1.83, 2.00, 2.50, 2.50, 2.75, 3.00, 4.00},
		{0, 1.00, 1.00, 1.01, 1.01, 1.03, 1.04, 1.04, 1.11, 1.31, 1.31, 1.31, 1.51, 1.51, 2.31, 2.31, 2.56},
		{0, 1.01, 1.04, 1.08, 1.12, 1.19, 1.22, 1.24, 1.40, 1.69, 2.00, 2.00, 2.25, 2.50, 2.75, 3.00, 3.25},
		{0, 1.11, 1.75, 1.75, 1.75, 1.75, 1.78, 2.08, 2.08, 2.41, 2.67, 2.67, 2.92, 3.17, 3.42, 3.67, 3.92},
		{0, 1.00, 1.25, 1.50, 1.75, 2.00, 2.25, 2.50, 2.75, 3.00, 3.25, 3.50, 3.75, 4.00, 4.25, 4.50, 4.75},
	}
	capsCosts       = [17]float64{0, 0.00, -0.01, 0.20, 0.17, 0.73, 0.63, 0.95, 1.06, 1.80, 1.80, 2.42, 2.42, 2.42, 2.42, 2.42, 2.42}
	punctCost       = [8]float64{0, 1.00, 1.00, 1.04, 1.40, 1.58, 1.63, 2.19}
	punctRate       = 0.10
	longWordRate    = 0.42
	contractionCost = 0.57
	prefixCosts     = [numGroups]float64{0.00, 0.56, 0.00, 1.00, 0.69}
	otherLetterCost = 0.17
)

const hanSingleList = "" +
	"一丁七万丈三上下不与专且世丘业东丝两严並丨个中丰串临丶丸丹为主丽举乃久么义之乌乎" +
	"乐乔乗乘乙九也习乡书买乱乳乾亂了予争事二于亏云互五井亚些亞亡交亦产亩享京亭亮亲人" +
	"亿什仁仅今介仍从仓仔仕他付仙代令以仪们仲件价任份企伊伍伏休众优伙会伝伟传伤伦伯估" +
	"伴伸似但位低住佐体何余佛作你佣佩佳使來例供依侠価侣侧侯侵便係促俄俊俗保信修俱俺個" +
	"倍們倒候借倡値倫债值倾假偏做停健側偶偷偿傅備储催傳傷働像僕價億優儿允元兄充兆先光" +
	"克免児兑兒兔党入內全兩八公六兰共关兴兵其具典养兼兽内円冈冊册再冒写军农冠冬冰冲决" +
	"况冷冻净准凉凌减凝几凡凤処凭凯凰凸出击函刀分切刊刑划列刘则刚创初删判別利别到制刷" +
	"券刺刻剂則削前剑剤剧剩剪副割創劇力办功加务动助努励劲劳効势勇勒動務勝募勢勤勿包化" +
	"北匙匹区医區十千升午半华协卒卓協单卖南単博占卡卢卧卫印危即却卷卸厂厅历厉压厕厘厚" +
	"原厦厨去县参參又叉及友双反収发叔取受变口古句另只叫召可台史右叶号司吃各合吉吊同名" +
	"后吐向吕吗君吞吟否吧吨含听启吴吸吹吻吾呀呈告员呢周味呵呻呼命咋和咖咨咪品哈响員哥" +
	"哦哪哭哲唐售唯唱商啊問啥啦啪善喊喘喜喝單営喷嗎嗯嘉嘎嘛嘴嘿噜器四回因团団园困囲図" +
	"围固国图圆圈國園圖團土圣在地圳场圾址坂均坊坏坐坑块坚坛坝坡坦坪垃型埃城埔域培基堂" +
	"堡報場堵塑塔塘塞填境墓増墙增墨壁壇士壮声売处备変复夏夕外多夜够夢大天太夫央失头夹" +
	"夺奇奈奉奋奏契奔奖套奥女奴奶奷奸她好如妇妈妓妖妙妞妮妹妻姆始姐姑姓委姚姜姨姿威娃" +
	"娇娘娛娜娱婆婚婦婷媒媳媽嫁嫂嫌嫩嬉子孔孕字存孙孟季孤学孩學宁它宅宇守安宋完宏宗官" +
	"定宜宝实実宠审客宣室宫宮害宴家容宽宾宿寄密富寒寓寝察實寨寫寶寸对寺寻导対寿封専射" +
	"将將專尊尋對導小少尔尖尚尝尤就尸尺尼尽尾尿局屁层居届屋屏展属履屯山岁岗岛岡岩岭岳" +
	"岸峡峰島崎川州巡工左巧巨差己已巴巻币市布帅师希帐帖帝带師席帮帯帰帳帶常帽幅幕干平" +
	"年并幸幻幼幽广広庄庆床序库应底店府废度座庫庭康廉廣延廷建开异弃弄弊式引弗弘弟张弱" +
	"張強弹强归当录形彦彩彰影役彻彼往征径待很律後徐徒得從御復循微徳徴德徽心必忆忍志忘" +
	"忙応忠忧快念忽怀态怎怒怕怖思怡急性怪总恋恐恒恢恩息恶悉悟悠患悦您悪悲情惊惑惜惠惨" +
	"惯想意愛感愿慈態慎慢慧慰懂應戀戏成我戒或战戦截戰戲戴戶户戸戻房所手才扎扑扒打払托" +
	"扣执扩扫扬扰扱扶批找承技把抓投抗折抜択抢护报披抱抵押抽担拆拉拍拒拓拔拖拘招拜拟拥" +
	"拨择括拳拼拾拿持挂指按挑挡挣挥振挺捕损换据捷掃授掉掌排掛採探接控推措掲揉描提插換" +
	"握揭援搏搜搞搬搭携摄摆摇摘摩摸撃撑撒撞撤播撮撸擊操據擦攝支收改攻放政故效敌敏救敗" +
	"教敢散敦敬数整敵數文斗料斤断斯新方於施旁旅旋族旗无既日旦旧旨早旬旭时旺昂昆昌明易" +
	"昔星映春昨昭是昼显時晋晒晓晚晨普景晰晴晶智暂暇暑暖暗暨暮暴曜曝曰曲更書曹曼曾替最" +
	"會月有朋服朗望朝期木未末本札术朱机杀杂权杆杉李杏材村杜束条来杨杭杯杰東松板极构析" +
	"林枚果枝枪架柄柏某染柔柜查柱柳柴査标栋栏树栗校株样核根格桂桃框案桌桑档桥桶梁梅條" +
	"梦梨梯械检棋棒棚森植椒検楚業極楼楽概榜構様槽樂樓標模樣横橋機橹橾權欠次欢欣欧欲欺" +
	"款歉歌歓歡止正此步武歩歲歳歴歷死殊残殖段殺毁毅母毎每毒比毕毛毫氏民气気氣氧水永汁" +
	"求汇汉汗江池污汤決汽沁沃沈沉沒沖沙沟没沢沪河油治沿況泄泉泊法泛泡波泥注泰泳泽洁洋" +
	"洗洛洞津洪洲活派流浅浆测济浓浜浦浩浪浮浴海消涉涓涙涛润涨涩涯液涵淘淡淫深混添清済" +
	"渐減渠渡温測港游湖湘湾湿満源準溪滋滑滚满滤滨滴滿漂漏演漢漫潔潘潜潭潮澡澳激灣火灭" +
	"灯灰灵灾炉炎炒炮炸点為炼烈烟烦烧热無焦然焼煌煙煤照熊熟熱燃燕營爆爰爱爵父爷爸爽片" +
	"版牌牙牛牡牢牧物牲特犬犯状狂狐狗狠独狸狼猎猛猜猪猫献猴獸玄率玉王玖玛玩环现玲玻珍" +
	"珠班現球理琪琳琴瑞璃環瓜瓣瓦瓶甘甚甜生產産用田由甲申电男甸町画畅界留略番畫異當疆" +
	"疑疗疫疯疲疼疾病症痛療癌発登發白百的皆皇皮盆盈益盐监盒盖盗盘盛盟監盤目直相盾省眉" +
	"看県真眠眼着睛睡督瞬知矩短石矿码砂研砖破础硕硬确碍碎碑碰確碼磁磨示礼社祖祝神祥票" +
	"祭禁福禧离禽禾秀私秋种科秒秘租秦积称移程稍税種稱稳稿穆積穴究空穿突窍窗窝窥立站竞" +
	"竟章童端競竹笑笔符第筆等筋筑答策筛筹签简算管箭箱節篇築篮簡籍米类粉粒粗粤粮精糕糖" +
	"系紀約紅納純紙級素索紧紫累細紹終組経結絡給統絲絶經続維網総緒線締編縄縮總績繁續纠" +
	"红约级纪纬纯纲纳纵纷纸纹纽线练组细织终绍经绑结绕绘给络绝统继绩绪续维综绿缓编缘缩" +
	"缴缺网罗罚罩罪置署羅羊美羞群義羽翁翌習翔翠翻翼耀老考者而耐耗耳聊职联聘聚聞聪聯聲" +
	"職肃肉肌肖股肤肥肩肯育肺胃胆背胎胖胜胞胡胶胸能脂脑脚脱脸腐腕腰腳腹腾腿膜膽臀臣自" +
	"臭至致臺與興舍舒舔舗舞舟航般舰船艇良色艳艷艺艾节芝芬芯花芳芸芽苍苏苑苗若苦英范茶" +
	"茸草荐荒荡荣药荷莉莎莓莞莫莱莲获菌菜華菲萄萌萝营萨萬落葉著葛葡董蒂蒙蒲蓝蔡蕉蕩薄" +
	"薦薪薬藏藝藤虎虐虑處虚號虫虹虽蛇蛋蛛蜂蜜蝶融血行術街衛衡衣补表袋袖袜被袭裁裂装裏" +
	"裕裙補裝裤裸製襪西要覆見規視覚覧親観覽觀见观规视览觉角解触言訂計訊討記訪設許訳診" +
	"証評詞詢試話詳誉誌認誘語說説読誰課調談請論講謝證識警議護讀變讓计订认讨让训议讯记" +
	"讲许论设访诀证评识诈诉诊词译试诗诚话询该详语误诱说请诸诺读课谁调谈谋谓谜谢谨谱谷" +
	"豆豊象豪豹貌負財貨販責買貸費貼賀資賞質購贝负贡财责贤败账货质贫购贯贴贵贷贸费赁资" +
	"赋赌赏赔赖赚赛赞赠赢赤赫走赴赵赶起超越趋趣足跃跌跑距跟跨路跳践踏踩踪躁身車軍転軽" +
	"較載輪輯輸轉车轨轩转轮软轴轻载较辅辆辉辑输辖辛辞辣辦辨辰辱農边辺込辽达迁迅过迈迎" +
	"运近返还这进远违连迟迪迫述迷迹追退送适逃逆选逊透逐递途這通速造連週進逸逻逼遂遇遊" +
	"運遍過道達違遗遠遣遥適遭遮遵選避邀還邑那邦邪邮邻郎郑部郭郵都配酒酷酸醉醒醫采释里" +
	"重野量金鉄鉴銀錄錯録鍵鏈鐘鑫针钟钢钥钮钱钻铁铃铜铭银铺链销锁锅锋锐错锡锦键镇镜長" +
	"长門閉開間関閱閲關门闪闭问闲间闻阁阅队阪防阳阴阵阶阻阿附际陆陈陌降限院除险陪陰陵" +
	"陶陷険陽隆隊階随隐隔際障难雀雄雅集雑雕雙雞離難雨雪零雷電需震霍霞露霸青靖静非靠面" +
	"革鞋韓韩音響頁頂頃項順須預領頭頻頼題額顔願類页顶项顺须顾顿预领频颖颗题颜额風风飛" +
	"飞食飯飲養餐館饭饮饰馆馈首香馨馬駅験驗马驰驱驶驻驾验骑骗骚骤骨骰體高鬼魂魅魏魔魚" +
	"鱼鲁鲜鲸鳥鸟鸡鸣鸭鸿鹅鹏鹰鹿麗麟麦麻麼黃黄黎黑黒默點鼎鼓鼠鼻齐齢龄龍龙"

const hanPairList = "" +
	"一下一个一些一区一卡一句一天一定一家一年一扫一期一本一样一次一步一点一直一码一种" +
	"一级一肖一致一般一覧一起一路一道丁目丁香七码万个万人万元万円万吨万能万辆丈夫三个" +
	"三区三星三码三級三级三肖上一上下上传上午上市上映上海上涨上的上线上述下一下午下来" +
	"下注下載下载下降下面不上不中不了不仅不会不停不像不到不卡不可不同不好不少不开不得" +
	"不断不是不用不给不能不要不起不足不过不错不限与你专业专区专家专项专题世界世纪业内" +
	"业务东京东北东县东方东西丝袜两个严格严重个人个位个月中了中华中古中国中國中央中奖" +
	"中字中心中文中新中旗中特中王中的中色中过丰富丰满串一为了为何为空主义主人主任主体" +
	"主动主席主持主播主演主管主营主要主页主题举办举报举行久久久热久草之一之前之后之外" +
	"之家之间乐城乐彩乐透九九九龙也是书记买吗买法买马乱子乱码亂倫了一了吗了承了解予定" +
	"予約争锋争霸事业事件事务事实事情事故事項事项二区二维于是云南互动五星五月五码井空" +
	"亚洲亚游亞洲交换交換交易交流交通产业产品产权产生京都人与人为人人人体人口人员人在" +
	"人士人大人妻人工人成人才人数人格人民人気人氣人物人生人的人體亿元什么今回今天今年" +
	"今日今晚介紹介绍仕事仕様他们他的他说付款代引代理代码代表令人以上以下以内以前以及" +
	"以后以来价值价格任何任务任选企业企業企鹅伊人休日优势优化优惠优秀伙伴会上会员会社" +
	"会议传奇传媒传播传真传统伦理伯温但是位置住宅住宿住房住所体彩体现体系体育体验余额" +
	"作为作品作弊作文作爱作用作者你好你懂你的使命使用來源例如供应依据依法価格侵犯便利" +
	"促进保存保护保持保証保证保险保障信息信用信誉修改俺也俺去倍投倍率倫理值得假吗假的" +
	"做人做到做好做愛做爰停售停止停车健康偷偷偷拍偷窥價格億元優惠儿童允许元素充值充分" +
	"先生先进先锋免費免责免费兑奖兑换兑现党员党委党建党的党组入住入力入口內容全国全天" +
	"全年全文全民全球全部全集全面八码公交公众公共公务公司公告公安公布公平公开公式公斤" +
	"公益公网公里公開六合六月六码六肖共产共享共同共和共有关于关注关系关联关键关闭兴趣" +
	"其中其他其它其实其次具体具有养老兼职内容内幕内部再次写真军事农业农村冠亚冠军决定" +
	"冷热冻结准备准确凌晨减少几个几十几年几点凤凰出了出去出口出台出售出处出来出演出版" +
	"出现出生出的出票出租函数分享分别分彩分快分析分类分鐘分钟分钱分類分页列表创业创建" +
	"创新创造初心删除判断利来利润利用利益别人到了到底到账制作制定制度制服制造刷新刷水" +
	"刺激前三前年剧情割合力度力量办公办法办理功能加入加坡加工加强加盟加载动作动力动态" +
	"动漫动物动画动车助手助赢努力劳动勒比動漫動画動畫募集勤務包含包括包装北京区别区域" +
	"医保医学医生医疗医院匿名十一十三十九十二十五十八十分十四十大千万升级午夜午後半年" +
	"协会协议协调单位单双南京南县博士博客博彩卫生印度危险即可即时厂家历史压力厕所厘米" +
	"原则原创原因厨房去了去哪去年参与参加参数参考又爽又黄及时友情双方双色反水反馈収納" +
	"发动发展发布发挥发现发生发行发表发财发送取得取消受付受到变化变态变量口诀句话另一" +
	"另外另类只是只有只能召开可以可信可是可能可靠台湾右旗右翼号码司机司法吃奶各种合买" +
	"合作合同合彩合法合理合集吉林同志同性同时同期同步同比同行名前名单名字名称名稱后一" +
	"后三后二后台后来后的否则启动告诉员工周年周期呻吟和值和尚和平和彩咨询品牌品質品质" +
	"哈哈哈尔响应哥哥哪个哪些哪里售价唯一商业商务商品商城問題啪啪喜欢営業喷水噜噜四六" +
	"四川四色回事回复回应回来回答回血因为因此因素团队困难固定国产国内国务国外国家国语" +
	"国际图区图库图片圖片土地在人在哪在線在线地下地主地产地区地图地址地域地方地点坑人" +
	"坚定坚持垃圾型号城乡城区城县城市培养培训基地基层基本基础基金場合場所填写增加增强" +
	"增长声明声音处分处理处罚备案备注备用変更复制复式复杂外交外围外国外挂多个多久多人" +
	"多少多年多数多野夜夜大仙大众大会大全大利大厅大发大型大奖大学大家大小大师大战大片" +
	"大的大神大胆大道大量大阪大陆大香天下天地天堂天天天气天津天然天空太阳夫妻央视失败" +
	"头像奇米奋斗奔驰奖励奖金套利套路套餐女人女优女士女子女孩女性女生奶头好了好友好吗" +
	"好多好爽好的好运如下如今如何如果如此妈妈妹妹始化姐妹姐姐姑娘姓名委员娛樂娱乐婷婷" +
	"媒体媽媽子的字体字号字幕字段字符存在季度学习学历学校学生学院孩子學生宁县宁市安全" +
	"安卓安县安市安徽安心安排安装完全完善完成完整官方官网定义定位定胆宝典宝宝宝马实体" +
	"实例实力实名实施实时实现实行实践实际实验実況审批审核客户客服客様客邦宣传宣布家乐" +
	"家具家婆家庭家的容易容量密码对于对刷对子对应对此对白对象寻找导师导演导致导航対応" +
	"対象専門将在導航小姐小学小时小說小说少女少妇少婦少年尔沁尤其尤物就业就在就是尺寸" +
	"尺度尼姑尼斯屁股居民展开展示属于属性山东山区山县山市岁的岗位岛国川县川県州市巡视" +
	"工业工作工具工商工程工资左右左旗巨大已有已经巴黎市场市場市委布局希望帐号帖子帮助" +
	"常委幕后干部平刷平县平台平均平成平方平特平码年代年份年前年底年度年月年来年的年第" +
	"年至年轻年間年龄幸福幸运幻想广东广告广大广州广播广西広告库存应用应该店舗延期建立" +
	"建筑建议建设开发开号开启开奖开始开展开彩开心开户开放开的异常引用強奸强化强奷强调" +
	"当前当地当天当然录像形式形成彩乐彩图彩堂彩神彩票彩网彩金影响影片影视影院影音待遇" +
	"很多很好律宾律师徒歩得到循环微信微博微软德国心得心水心理心经必中必要必赢必须応募" +
	"快三快乐快捷快播快速怎么怎样思思思想性交性愛性感性爱性的性能性色性质总代总体总站" +
	"总结总统总部恐縮恢复悠悠患者您好您的情侣情况情報情色想到想着意义意味意思意见意识" +
	"感染感觉感谢成为成交成人成功成员成年成本成果成熟成立成绩成都成长我们我們我国我是" +
	"我的我要或者战争战略截图截止截至所以所在所属所得所有所谓手机手機手游手续才能扑克" +
	"扒开打一打印打开打法打造执行扩大扫描扫码扶贫批准找到承担技巧技术技能投入投注投稿" +
	"投诉投资护士护理报价报名报告报码报警报道担当拉特拍拍招商招生招聘拥有拿大持续挂机" +
	"挂牌指出指南指定指导指数指标按摩按照按钮挑战挣钱捕鱼授权排列排名排序排行探索接受" +
	"接口控制推出推动推广推荐推薦推进措施掲載描述提交提供提出提前提升提款提现提示提醒" +
	"提高插件揭秘搜尋搜狐搜索摄影摘要播播播放操作支付支持收入收到收益收藏收费改单改变" +
	"改善改革攻击攻略放心政协政府政治政策故事效果效率救世教学教师教師教授教材教程教育" +
	"数字数学数据数组数量整个整体整改整数整理文件文化文字文学文明文本文章料理料金新人" +
	"新区新华新品新增新浪新版新疆新的新聞新闻方便方向方式方案方法方面施工施設旅游旅行" +
	"旗下旗舰无人无法无码无线无遮无限无需日产日前日在日志日报日日日時日晚日期日本日电" +
	"日至日讯日起日韩早点早餐时代时候时报时时时期时间昌县明星明显明确星彩星期映画春节" +
	"昨天昨日是一是不是假是否是哪是在是真是谁昵称显示時計時間晒单晚上普通智慧智能暂停" +
	"暂无曜日曝光更加更多更新最低最佳最准最后最多最大最好最後最快最新最终最近最长最高" +
	"會員月份月底月至有人有关有所有效有码有限朋克朋友服务服務朗普期开期待期期期間期间" +
	"期限未来未知未经本人本文本科本站本网本道本金机会机关机制机器机场机构机械杀号杀码" +
	"权益权限材料条件条例来也来了来到来源来的来看来自来说来越杭州東京极品极速查看查询" +
	"柴油标准标签标题栏目树林校园核心根据格式案件案例梦想检查检测棋牌森林植物検索楽天" +
	"概率概要模块模型模式模拟模板次数欢乐欢迎欧洲欧美歌曲歌词歓迎正在正常正式正文正版" +
	"正确正规此前此外此次步骤武汉死亡死人残局每天每日比例比分比如比赛比較比较毕业毛片" +
	"毫米民主民族水县水平水果永久永利求人江县江市江苏江西污染汽车沒有没人没有河北河南" +
	"河县治理治疗法人法国法律法规法院注册注意注文注明注销活动活動派奖流水流程测试测速" +
	"浏览浙江浩特海南海外海道消息消费消防涉及涉嫌淘宝深入深化深圳深爱添加渠道港台游客" +
	"游戏游戲湖北湖南源县源码溪县滚球满意满足漂亮漏洞演员漫画漫畫澳门激情点击点评点赞" +
	"热点热线热门無料然后然而照片熟女熟妇熱門爆乳爱情爱的爸爸爽爽版本版权牛牛牢记物业" +
	"物流牲交特别特徴特殊特点特码特色特马特黄犯法犯罪状态状態狐狸狠狠独胆狼人猛烈猜你" +
	"玄机玖玖玩吗玩家玩法玩的环亚环保环境环球现代现在现场现实现金現在球队理念理由理解" +
	"理论琪琪甚至生产生命生态生成生日生活生肖產品用了用于用品用户用途由于申博申请电子" +
	"电影电玩电竞电脑电视电话男人男女男子男性画像留下留言番号疫情疯狂疾病病例病毒発売" +
	"発送登入登录登记登録登陆發布白浆白菜百万百分百度百科的一的不的人的吗的大的小的新" +
	"的是的话的钱皇冠皇家盈利监听监察监督监管盒彩盘口目前目录目标目的直到直属直接直播" +
	"直营直选相信相关相比相談相關省委看到看来看片看的看看真人真假真实真正真的真钱知乎" +
	"知识知道短信研发研究破解确保确定确认碰碰確認礼包社会社区社員神器神算神马祥云禁止" +
	"福利福建福彩私人私彩科学科技科研秒速秘书秘密秘籍秘诀积分积极移动程序程度税込種類" +
	"稳定稳赚稳赢空气空间突出突然突破窗口立即竞争竞彩竞技竞猜章节符合第一第三第二第五" +
	"第四等奖等待等等等级答案策略签到简介简单简称算法算盘管理篮球米奇类似类别类型粉嫩" +
	"精准精品精彩精神精选系列系统素材累计紹介終了経験結果給与絲襪網址網站編集红包红姐" +
	"红鹰纪委纪录纪律纽约线上线程线蕉线路组三组件组六组合组成组织组选终于经典经历经济" +
	"经理经营经过经验绑定结合结束结构结果给予给吗统一统计继续维修维护综合绿色缓存编号" +
	"编码编辑缩水缴情网上网友网址网投网易网站网络网赌网页罗斯美元美国美女美容群众老人" +
	"老太老妇老婆老师老師老板考虑考试而言聊天职业职位职责联合联盟联系联网聯系股份股票" +
	"胆拖胆码背景能力能够能源腾讯自主自产自动自在自己自慰自拍自治自然自由自行自身至尊" +
	"至少舒服航空色情色色艺术节点节目英国英文英语英雄苹果范围荣耀获取获得菜单菠菜营业" +
	"营销萬元落实葡京董事蒙古藏宝藝術虎机虽然蛋蛋蜘蛛融合融资行业行为行动行情行政表现" +
	"表示表达被骗装修装备裸体裸體西亚西游要求覆盖視頻觀看观察观点观看规划规则规定规律" +
	"规格规模规范视觉视讯视频觉得角色解决解析解绑解释解除記事設備設定評価評論詳細誘惑" +
	"説明論壇警方護士计划计算订单认为认可认真认证认识讨论让我训练讯网记录记者讲话许可" +
	"论坛论文设备设施设置设计访问诀窍证券证明评价评分评级评论诈骗试听试玩试看诚信详情" +
	"详细语言说明说道请求读取课堂课程调整调查调用谢谢豹子財布販売資料資格資訊質問購入" +
	"负责贡献财富财政财神财经责任责编账号账户质量购买购彩购物贯彻贴吧贵州贷款贸易费用" +
	"资产资料资本资格资源资讯资金赌博赌场赌球赔率赚钱赛事赛车赢家赢钱走势起来超碰超级" +
	"超过趋势足彩足球跑狗跑路距离跨度路径路线身份身体転載车型车辆转换转载软件辅助输了" +
	"输入输出输钱辽宁达人达到迅雷过去过滤过程运动运营运行运输近平近日近期返信返品返回" +
	"返水返点返钱还是还有还能这一这个这么这些这是这样这种这里进入进去进口进行违反违法" +
	"违规连接连续追加追号追回退休退出退款送料送钱选五选号选四选择透明透露途中通信通常" +
	"通知通讯通販通过速報速度造成週間道人道路遗漏避免邀请那个那么那些那里邮件邮箱部分" +
	"部署部长部门都会都市都是都有配置配送酒店采取采用采访采购释放里的里面重复重大重庆" +
	"重新重点重要重量金币金沙金花金融金额銀行针对钱包铁路银河银行链接销售销量错误长度" +
	"长期长沙长龙開催開始関連閱讀门户问题阅读阳县阳市阶段附件附近降低限制限定陕西除了" +
	"除此随后随机随着隐藏雅黑集中集合集团雪球零钱電子電影電話需求需要露脸霸王青年青春" +
	"青草青青非常非法靠谱面对面的面积革命韩国音乐順位页面顶部项目预测预算预约预计领先" +
	"领取领域领奖领导频道颜色额度風吹风险飞机飞艇食品首先首次首頁首页香港香蕉马上马会" +
	"马克马报驾驶验证骗人骗子骗局高中高度高手高校高清高潮高级高速鱼儿麻将麻豆黃色黄片" +
	"黄色黄金黑人黑彩黑钱默认龙江龙虎"
