package anthropic

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer"
)

// The estimate's corpus: the files of testdata/tokens but the bodies
// (body-*.json), each a kind by the start of its name, and these files of
// Go's own tree (BSD-licensed), read where the toolchain keeps them.
var gorootTokenSamples = []struct{ path, kind string }{
	{"src/strings/strings.go", "go"},
	{"src/net/http/server.go", "go"},
	{"src/encoding/json/decode.go", "go"},
	{"src/unicode/tables.go", "go"}, // hexadecimal tables
	{"src/runtime/runtime-gdb.py", "python"},
	{"lib/wasm/wasm_exec.js", "js"},
	{"misc/chrome/gophertool/popup.js", "js"},
	{"src/crypto/tls/bogo_config.json", "json"},
	{"src/cmd/vendor/golang.org/x/arch/arm64/arm64asm/inst.json", "json"},
	{"src/runtime/HACKING.md", "markdown"},
	{"doc/godebug.md", "markdown"},
}

// maxSample is the most of a file a sample takes, cut at a line's end.
const maxSample = 20 << 10

type tokenSample struct{ name, kind, text string }

var (
	tokenCorpusOnce sync.Once
	tokenCorpusData []tokenSample
	tokenCorpusErr  error
)

func tokenCorpus(t testing.TB) []tokenSample {
	t.Helper()
	tokenCorpusOnce.Do(func() { tokenCorpusData, tokenCorpusErr = readTokenCorpus() })
	if tokenCorpusErr != nil {
		t.Fatal(tokenCorpusErr)
	}
	return tokenCorpusData
}

func readTokenCorpus() ([]tokenSample, error) {
	cut := func(s string) string {
		if len(s) <= maxSample {
			return s
		}
		if i := strings.LastIndexByte(s[:maxSample], '\n'); i > 0 {
			return s[:i+1]
		}
		return s[:maxSample]
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT: %v", err)
	}
	root := strings.TrimSpace(string(out))
	var ss []tokenSample
	for _, g := range gorootTokenSamples {
		b, err := os.ReadFile(filepath.Join(root, g.path))
		if err != nil {
			return nil, fmt.Errorf("a sample of the corpus from Go's tree: %v", err)
		}
		s := string(b)
		if i := strings.Index(s, "\nvar _"); g.path == "src/unicode/tables.go" && i > 0 {
			s = s[i+1:] // the tables, not the header
		}
		ss = append(ss, tokenSample{"GOROOT/" + g.path, g.kind, cut(s)})
	}
	files, err := filepath.Glob("testdata/tokens/*")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasPrefix(base, "body-") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		kind, _, _ := strings.Cut(base, "-")
		ss = append(ss, tokenSample{base, kind, cut(string(b))})
	}
	if len(ss) < 30 {
		return nil, fmt.Errorf("the corpus has %d samples; testdata/tokens is missing files", len(ss))
	}
	return ss, nil
}

func o200k(t testing.TB) tokenizer.Codec {
	t.Helper()
	enc, err := tokenizer.Get(tokenizer.O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func count(t testing.TB, enc tokenizer.Codec, s string) int {
	t.Helper()
	n, err := enc.Count(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// errorStats collects relative errors, overall and by kind.
type errorStats struct {
	worst, sum float64
	n          int
	kinds      map[string]*errorStats
}

func (s *errorStats) add(kind string, e float64) {
	s.worst, s.sum, s.n = math.Max(s.worst, math.Abs(e)), s.sum+math.Abs(e), s.n+1
	if kind == "" {
		return
	}
	if s.kinds == nil {
		s.kinds = map[string]*errorStats{}
	}
	if s.kinds[kind] == nil {
		s.kinds[kind] = &errorStats{}
	}
	s.kinds[kind].add("", e)
}

func (s *errorStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "worst %.1f%%, mean %.1f%% over %d samples", 100*s.worst, 100*s.sum/float64(s.n), s.n)
	kinds := make([]string, 0, len(s.kinds))
	for k := range s.kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		ks := s.kinds[k]
		fmt.Fprintf(&b, "\n  %-9s worst %5.1f%%  mean %5.1f%%  (%d)", k, 100*ks.worst, 100*ks.sum/float64(ks.n), ks.n)
	}
	return b.String()
}

// TestEstimateTextCorpus: on every sample, the estimate is within 10% of
// o200k_base's count.
func TestEstimateTextCorpus(t *testing.T) {
	enc := o200k(t)
	var st errorStats
	for _, s := range tokenCorpus(t) {
		real, est := count(t, enc, s.text), EstimateText(s.text)
		e := float64(est-real) / float64(real)
		st.add(s.kind, e)
		t.Logf("%-62s o200k %6d  estimate %6d  %+5.1f%%", s.name, real, est, 100*e)
		if math.Abs(e) > 0.10 {
			t.Errorf("%s: estimate %d is %+.1f%% off o200k_base's %d", s.name, est, 100*e, real)
		}
	}
	t.Log(st.String())
}

// TestSegmenterMatchesO200k: the pieces the segmenter cuts are the
// pre-tokenizer's: they cover the text in order, and o200k_base counts
// them one by one as it counts the whole (BPE never merges across a
// piece's edge, so a wrong cut shows as a different sum).
func TestSegmenterMatchesO200k(t *testing.T) {
	enc := o200k(t)
	texts := []string{
		"don't stop: it's HTTPServer's getHTTPResponse(x1)  \t\t(foo) ((bar))\n\n\t  \n  x",
		"中文English中文Text，非常好。 世界 foo中文Bar 用Go写 ９９ ＡＢ  123 ０１",
		"}\n//comment\n    return nil\n\n}\r\n\ttab\t(x)  \u3000全角 end   ",
	}
	for _, s := range tokenCorpus(t) {
		texts = append(texts, s.text)
	}
	for i, s := range texts {
		g := segmenter[string]{s: s}
		var p piece
		sum, at := 0, 0
		for g.next(&p) {
			if p.start != at || p.end <= p.start {
				t.Fatalf("text %d: piece [%d,%d) after %d", i, p.start, p.end, at)
			}
			at = p.end
			sum += count(t, enc, s[p.start:p.end])
		}
		if at != len(s) {
			t.Fatalf("text %d: pieces end at %d of %d", i, at, len(s))
		}
		if whole := count(t, enc, s); sum != whole {
			t.Errorf("text %d (%.40q…): o200k counts %d for the pieces, %d for the whole", i, s, sum, whole)
		}
	}
}

// TestEstimateTextCases: short texts of each kind the rule tells apart.
func TestEstimateTextCases(t *testing.T) {
	for _, tt := range []struct {
		text string
		want int
	}{
		{"", 0},
		{"hello world", 2},
		{"1234567890", 4}, // digits go three to a token
		{strings.Repeat(" ", 40), 1},
		{"\n\n\n\n", 1},
		{"一", 1},
		{"我们", 1},     // a pair that is one token
		{"橐龠", 4},     // two ideographs that are two tokens each
		{`\u4e2d`, 5}, // an escape in text is text
		{"http://example.com", 4},
	} {
		if got := EstimateText(tt.text); got != tt.want {
			t.Errorf("EstimateText(%q) = %d, want %d", tt.text, got, tt.want)
		}
	}
}

// TestEstimateTextAllocs: the estimate of a text allocates nothing.
func TestEstimateTextAllocs(t *testing.T) {
	text := tokenCorpus(t)[0].text + "中文，非常好。"
	if n := testing.AllocsPerRun(20, func() { EstimateText(text) }); n != 0 {
		t.Errorf("EstimateText allocates %v times", n)
	}
}

// referenceTokens counts a request as EstimateTokens means to, but with
// o200k_base for the text and encoding/json for the structure: the
// overheads are the estimate's own, everything else is counted apart.
func referenceTokens(t *testing.T, enc tokenizer.Codec, body []byte) int64 {
	t.Helper()
	var req struct {
		System   json.RawMessage                     `json:"system"`
		Messages []struct{ Content json.RawMessage } `json:"messages"`
		Tools    []struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"input_schema"`
		} `json:"tools"`
		ToolChoice struct{ Type string } `json:"tool_choice"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	compact := func(raw json.RawMessage) string {
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	n := int64(requestOverhead)
	var content func(raw json.RawMessage)
	content = func(raw json.RawMessage) {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			n += int64(count(t, enc, s))
			return
		}
		var blocks []struct {
			Type     string          `json:"type"`
			Text     string          `json:"text"`
			Thinking string          `json:"thinking"`
			Name     string          `json:"name"`
			Input    json.RawMessage `json:"input"`
			Content  json.RawMessage `json:"content"`
			Source   struct {
				Data string `json:"data"`
			} `json:"source"`
		}
		if err := json.Unmarshal(raw, &blocks); err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			switch b.Type {
			case "text":
				n += int64(count(t, enc, b.Text))
			case "thinking":
				n += int64(count(t, enc, b.Thinking))
			case "tool_use":
				n += toolUseOverhead + int64(count(t, enc, b.Name)+count(t, enc, compact(b.Input)))
			case "tool_result":
				n += toolResultOverhead
				content(b.Content)
			case "image":
				data, err := base64.StdEncoding.DecodeString(b.Source.Data)
				if err != nil {
					t.Fatal(err)
				}
				cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				n += int64(math.Ceil(float64(cfg.Width*cfg.Height) / imagePixelsPerToken))
			default:
				t.Fatalf("the reference does not count %q blocks", b.Type)
			}
		}
	}
	if req.System != nil {
		content(req.System)
	}
	for _, m := range req.Messages {
		n += messageOverhead
		content(m.Content)
	}
	for _, tool := range req.Tools {
		n += toolOverhead + int64(count(t, enc, tool.Name)+count(t, enc, tool.Description)+count(t, enc, compact(tool.InputSchema)))
	}
	if len(req.Tools) > 0 {
		if req.ToolChoice.Type == "any" || req.ToolChoice.Type == "tool" {
			n += toolsPromptAny
		} else {
			n += toolsPromptAuto
		}
	}
	return n
}

// TestEstimateTokensBodies: whole Claude Code count_tokens bodies (system
// prompt, tool schemas, a conversation with tool calls, results,
// thinking and a screenshot) are within 10% of the reference count.
func TestEstimateTokensBodies(t *testing.T) {
	enc := o200k(t)
	files, err := filepath.Glob("testdata/tokens/body-*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("the bodies are missing: %v %v", files, err)
	}
	var st errorStats
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		real := referenceTokens(t, enc, body)
		est, err := EstimateTokens(body)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		e := float64(est-real) / float64(real)
		st.add("", e)
		t.Logf("%-28s reference %6d  estimate %6d  %+5.1f%%", filepath.Base(f), real, est, 100*e)
		if math.Abs(e) > 0.10 {
			t.Errorf("%s: estimate %d is %+.1f%% off the reference %d", f, est, 100*e, real)
		}
	}
	t.Log(st.String())
}

// TestEstimateTokensDocumented: the two examples of Anthropic's
// count_tokens documentation come out near what Anthropic answers.
func TestEstimateTokensDocumented(t *testing.T) {
	for _, tt := range []struct {
		body string
		want int64
	}{
		{`{"model":"claude-sonnet-4-5","system":"You are a scientist","messages":[{"role":"user","content":"Hello, Claude"}]}`, 14},
		{`{"model":"claude-sonnet-4-5","tools":[{"name":"get_weather","description":"Get the current weather in a given location",` +
			`"input_schema":{"type":"object","properties":{"location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"}},"required":["location"]}}],` +
			`"messages":[{"role":"user","content":"What's the weather like in San Francisco?"}]}`, 403},
	} {
		got, err := EstimateTokens([]byte(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if off := math.Abs(float64(got-tt.want)) / float64(tt.want); off > 0.05 {
			t.Errorf("%s: %d, Anthropic counts %d", tt.body, got, tt.want)
		}
	}
}

// msgBody is a request with one user message of the given content JSON
// and the given extra top-level members.
func msgBody(content string, extra ...string) string {
	s := `{"model":"m","messages":[{"role":"user","content":` + content + `}]`
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

func mustEstimate(t *testing.T, body string) int64 {
	t.Helper()
	n, err := EstimateTokens([]byte(body))
	if err != nil {
		t.Fatalf("%.200s: %v", body, err)
	}
	return n
}

// TestEstimateTokensStructure: each part of a request counts, as its text
// and its framing, and what is not read by the model does not (to within
// rounding).
func TestEstimateTokensStructure(t *testing.T) {
	const tool = `{"name":"Read","description":"Reads a file.","input_schema":{"type":"object","properties":{"file_path":{"type":"string"}},"required":["file_path"]}}`
	text := func(s string) int64 { return int64(EstimateText(s)) }
	for _, tt := range []struct {
		name       string
		more, less string
		diff       int64 // more − less, exactly
	}{
		{"a message", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hi"}]}`,
			`{"messages":[{"role":"user","content":"hi"}]}`, messageOverhead + text("hi")},
		{"system as a string", `{"system":"You are terse.","messages":[]}`, `{"messages":[]}`, text("You are terse.")},
		{"system as blocks", `{"system":[{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral"}}],"messages":[]}`,
			`{"messages":[]}`, text("You are terse.")},
		{"blocks as a string", msgBody(`[{"type":"text","text":"Hello, Claude"},{"type":"text","text":" again"}]`),
			msgBody(`"Hello, Claude"`), text(" again")},
		{"escapes read as text", msgBody(`"\u4e2d\u6587 \"quoted\"\nline"`), msgBody(`""`), text("中文 \"quoted\"\nline")},
		{"one tool: its text, framing and the tool-use prompt", msgBody(`"x"`, `"tools":[`+tool+`]`), msgBody(`"x"`),
			toolsPromptAuto + toolOverhead + text("Read") + text("Reads a file.") + text(`{"type":"object","properties":{"file_path":{"type":"string"}},"required":["file_path"]}`)},
		{"a second tool: no second prompt", msgBody(`"x"`, `"tools":[`+tool+`,`+tool+`]`), msgBody(`"x"`, `"tools":[`+tool+`]`),
			mustEstimate(t, msgBody(`"x"`, `"tools":[`+tool+`]`)) - mustEstimate(t, msgBody(`"x"`)) - toolsPromptAuto},
		{"tool_choice auto rather than any", msgBody(`"x"`, `"tools":[`+tool+`]`, `"tool_choice":{"type":"auto"}`),
			msgBody(`"x"`, `"tools":[`+tool+`]`, `"tool_choice":{"type":"any"}`), toolsPromptAuto - toolsPromptAny},
		{"tool_choice without tools", msgBody(`"x"`, `"tool_choice":{"type":"any"}`), msgBody(`"x"`), 0},
		{"a pretty schema counts as a compact one", msgBody(`"x"`, `"tools":[{"name":"Read","input_schema":{ "type" : "object",`+"\n\t"+`"properties": {} }}]`),
			msgBody(`"x"`, `"tools":[{"name":"Read","input_schema":{"type":"object","properties":{}}}]`), 0},
		{"a tool call: name and input", msgBody(`[{"type":"tool_use","id":"toolu_1","name":"Read","input":{"file_path":"/a/b.go"}}]`), msgBody(`[]`),
			toolUseOverhead + text("Read") + text(`{"file_path":"/a/b.go"}`)},
		{"a tool result: string content", msgBody(`[{"type":"tool_result","tool_use_id":"toolu_1","content":"package main"}]`), msgBody(`[]`),
			toolResultOverhead + text("package main")},
		{"a tool result: block content", msgBody(`[{"type":"tool_result","tool_use_id":"toolu_1","is_error":true,"content":[{"type":"text","text":"package main"}]}]`), msgBody(`[]`),
			toolResultOverhead + text("package main")},
		{"thinking counts, its signature does not", msgBody(`[{"type":"thinking","thinking":"Let me see.","signature":"` + strings.Repeat("Zm9v", 500) + `"}]`), msgBody(`[]`),
			text("Let me see.")},
		{"members in any order", msgBody(`[{"text":"Hello","type":"text"}]`), msgBody(`[{"type":"text","text":"Hello"}]`), 0},
		{"metadata, ids and cache_control do not count", msgBody(`[{"type":"text","text":"Hi","cache_control":{"type":"ephemeral"}}]`, `"metadata":{"user_id":"user_0123456789abcdef"}`, `"max_tokens":1024`, `"thinking":{"type":"enabled","budget_tokens":2000}`),
			msgBody(`[{"type":"text","text":"Hi"}]`), 0},
		{"an unknown block counts as its JSON", msgBody(`[{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]}]`), msgBody(`[]`),
			text(`{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]}`)},
		{"a text document", msgBody(`[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"The grass is green."},"title":"Facts"}]`), msgBody(`[]`),
			text("The grass is green.") + text("Facts")},
		{"a server tool: Anthropic's figure", msgBody(`"x"`, `"tools":[{"type":"bash_20250124","name":"bash"}]`), msgBody(`"x"`), toolsPromptAuto + 245},
		{"redacted thinking: by its length", msgBody(`[{"type":"redacted_thinking","data":"` + strings.Repeat("A", 500) + `"}]`), msgBody(`[]`), 100},
	} {
		// The total is rounded once, each text of the want on its own.
		more, less := mustEstimate(t, tt.more), mustEstimate(t, tt.less)
		if d := more - less - tt.diff; d < -1 || d > 1 {
			t.Errorf("%s: %d − %d = %d, want %d", tt.name, more, less, more-less, tt.diff)
		}
	}
}

func encodeImage(t *testing.T, format string, w, h int) string {
	t.Helper()
	m := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black, color.White})
	var buf bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&buf, m)
	case "jpeg":
		err = jpeg.Encode(&buf, m, nil)
	case "gif":
		err = gif.Encode(&buf, m, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// webpVP8X is the head of an extended WebP file of w × h pixels.
func webpVP8X(w, h int) string {
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00")
	b = append(b, byte(w-1), byte((w-1)>>8), byte((w-1)>>16), byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	return base64.StdEncoding.EncodeToString(b)
}

// webpVP8L is the head of a lossless WebP file of w × h pixels.
func webpVP8L(w, h int) string {
	v := uint32(w-1) | uint32(h-1)<<14
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f")
	b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	return base64.StdEncoding.EncodeToString(b)
}

// TestEstimateTokensImages: an image counts width × height / 750 when its
// header can be read (PNG, JPEG, GIF, WebP), scaled down as Anthropic
// scales it, and the most an image counts otherwise.
func TestEstimateTokensImages(t *testing.T) {
	// A JPEG whose frame header comes after a large APP segment.
	jpegData, _ := base64.StdEncoding.DecodeString(encodeImage(t, "jpeg", 200, 150))
	app := append([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xF0}, make([]byte, 0xFFEE)...)
	withExif := base64.StdEncoding.EncodeToString(append(app, jpegData[2:]...))
	image := func(source string) string {
		return msgBody(`[{"type":"image","source":` + source + `}]`)
	}
	b64 := func(media, data string) string {
		return image(`{"type":"base64","media_type":"` + media + `","data":"` + data + `"}`)
	}
	base := mustEstimate(t, msgBody(`[]`))
	for _, tt := range []struct {
		name string
		body string
		want int64
	}{
		{"png 300x200", b64("image/png", encodeImage(t, "png", 300, 200)), 80},
		{"jpeg 750x100", b64("image/jpeg", encodeImage(t, "jpeg", 750, 100)), 100},
		{"jpeg after 64 KB of EXIF", b64("image/jpeg", withExif), 40},
		{"gif 100x75", b64("image/gif", encodeImage(t, "gif", 100, 75)), 10},
		{"webp VP8X 1000x1000", b64("image/webp", webpVP8X(1000, 1000)), 1334},
		{"webp VP8L 64x64", b64("image/webp", webpVP8L(64, 64)), 6},
		{"the media type is not trusted", b64("image/jpeg", encodeImage(t, "png", 300, 200)), 80},
		{"a long edge over 1568 is scaled down", b64("image/png", encodeImage(t, "png", 3136, 200)), 210},
		{"at most 1600", b64("image/png", encodeImage(t, "png", 1500, 1500)), imageMaxTokens},
		{"escaped slashes", b64("image/png", strings.ReplaceAll(encodeImage(t, "png", 300, 200), "/", `\/`)), 80},
		{"unreadable data", b64("image/png", "bm90IGFuIGltYWdl"), imageMaxTokens},
		{"by url", image(`{"type":"url","url":"https://example.com/a.png"}`), imageMaxTokens},
		{"by file id", image(`{"type":"file","file_id":"file_011CNha8iCJcU1wXNR6q4V8w"}`), imageMaxTokens},
		{"no source", msgBody(`[{"type":"image"}]`), imageMaxTokens},
		{"in a tool result", msgBody(`[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` +
			encodeImage(t, "png", 300, 200) + `"}}]}]`), toolResultOverhead + 80},
	} {
		if got := mustEstimate(t, tt.body) - base; got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestEstimateTokensPDF: a PDF counts a page's worth for each page object
// in it, or by its size where none can be seen.
func TestEstimateTokensPDF(t *testing.T) {
	pdf := func(s string) string {
		return msgBody(`[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"` +
			base64.StdEncoding.EncodeToString([]byte(s)) + `"}}]`)
	}
	var three strings.Builder
	three.WriteString("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 >> endobj\n")
	for i := 3; i <= 5; i++ {
		fmt.Fprintf(&three, "%d 0 obj << /Type/Page /Parent 2 0 R >> endobj\n%s\n", i, strings.Repeat("x", 3000)) // pages across the chunks the scan reads
	}
	base := mustEstimate(t, msgBody(`[]`))
	for _, tt := range []struct {
		name string
		body string
		want int64
	}{
		{"three pages", pdf(three.String()), 3 * pdfPageTokens},
		{"no page objects: by size", pdf("%PDF-1.5\n" + strings.Repeat("y", 3*pdfBytesPage)), 3 * pdfPageTokens},
		{"a small one without page objects", pdf("%PDF-1.5\n"), pdfPageTokens},
		{"by url", msgBody(`[{"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}}]`), pdfPageTokens},
	} {
		if got := mustEstimate(t, tt.body) - base; got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestEstimateTokensInvalid: a body that is not a JSON object is an
// error; any JSON object is estimated, whatever its members hold.
func TestEstimateTokensInvalid(t *testing.T) {
	for _, body := range []string{
		``, ` `, `{"model":`, `{"messages":[}`, `{"a":1,}`, `{"a" 1}`, `{'a':1}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":tru}`, `{"a":nul}`, `{"a":1} {}`, `{"a":1}x`, `{"a":[1 2]}`,
		`[1,2]`, `"text"`, `42`, `null`,
		strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1),
	} {
		if n, err := EstimateTokens([]byte(body)); err == nil {
			t.Errorf("%.40q: estimated %d, want an error", body, n)
		}
	}
	for _, body := range []string{
		`{}`, ` {"model":"m"} `, `{"messages":{}}`, `{"messages":[1,"a",null,{"content":7}]}`, `{"system":5}`, `{"tools":"x"}`,
		`{"tools":[1,{"name":5,"input_schema":"s"}]}`, `{"tool_choice":"auto","tools":[{}]}`,
		msgBody(`[1,{"type":7},{"type":"text","text":5},{"type":"image","source":"x"},{"type":"tool_result","content":{"a":1}}]`),
		`{"messages":[{"content":"\ud83d\ude00 \ud800 \u00e9"}]}`, "{\"messages\":[{\"content\":\"\xff\xfe\"}]}",
	} {
		if _, err := EstimateTokens([]byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}

// FuzzEstimateTokens: the estimate fails exactly for bodies that are not
// JSON objects, and never panics.
func FuzzEstimateTokens(f *testing.F) {
	for _, s := range []string{`{}`, `{"messages":[{"role":"user","content":"hi"}]}`, `{"a":[1,2,{"b":"\u00e9\n"}]}`, `[]`, `{"a":1e5}`, `{"a":-0.5E-3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := EstimateTokens(body)
		var v any
		valid := json.Unmarshal(body, &v) == nil
		_, isObject := v.(map[string]any)
		if want := valid && isObject && utf8.Valid(body); want && err != nil || !(valid && isObject) && err == nil {
			t.Errorf("%q: error %v, valid JSON object %v", body, err, valid && isObject)
		}
	})
}

// bigBody is a count_tokens body of at least size bytes: the corpus's
// bodies, then the corpus's samples as tool results.
func bigBody(t testing.TB, size int) []byte {
	base, err := os.ReadFile("testdata/tokens/body-en-coding.json")
	if err != nil {
		t.Fatal(err)
	}
	var req map[string]any
	if err := json.Unmarshal(base, &req); err != nil {
		t.Fatal(err)
	}
	msgs := req["messages"].([]any)
	for i, s := range tokenCorpus(t) {
		id := fmt.Sprintf("toolu_%02d", i)
		msgs = append(msgs,
			map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": id, "name": "Read", "input": map[string]any{"file_path": "/src/" + s.name}}}},
			map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": id, "content": s.text}}})
		req["messages"] = msgs
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) >= size {
			return b
		}
	}
	t.Fatalf("the corpus makes no body of %d bytes", size)
	return nil
}

// TestEstimateTokensAllocs: estimating a body allocates nothing per
// message, block or word: at most its two pooled buffers' growth (the
// race detector empties pools at random).
func TestEstimateTokensAllocs(t *testing.T) {
	body := bigBody(t, 100<<10)
	if n := testing.AllocsPerRun(10, func() { EstimateTokens(body) }); n > 40 {
		t.Errorf("EstimateTokens allocates %v times for a body of %d bytes", n, len(body))
	}
}

func BenchmarkEstimateTokens(b *testing.B) {
	body := bigBody(b, 100<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EstimateTokens(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEstimateText(b *testing.B) {
	var all strings.Builder
	for _, s := range tokenCorpus(b) {
		all.WriteString(s.text)
	}
	text := all.String()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		EstimateText(text)
	}
}

var (
	calibrate    = flag.Bool("calibrate", false, "fit the estimate's tables to o200k_base on the corpus and print them")
	calibrateOut = flag.String("calibrate.out", "", "write the fitted tables to this file instead")
)

type countedPiece struct {
	p   piece
	tok int
}

type cutSample struct {
	s      tokenSample
	pieces []countedPiece
}

func cutCorpus(t testing.TB, enc tokenizer.Codec) []cutSample {
	var out []cutSample
	for _, s := range tokenCorpus(t) {
		cs := cutSample{s: s}
		g := segmenter[string]{s: s.text}
		var p piece
		for g.next(&p) {
			cs.pieces = append(cs.pieces, countedPiece{p, count(t, enc, s.text[p.start:p.end])})
		}
		out = append(out, cs)
	}
	return out
}

// hanTables lists the ideographs and the ideograph pairs that are one
// token of o200k_base.
func hanTables(enc tokenizer.Codec) (singles, pairs string) {
	isHan := func(r rune) bool { return r >= 0x4E00 && r <= 0x9FFF }
	var s, p []string
	for id := uint(0); id < 200000; id++ {
		tok, err := enc.Decode([]uint{id})
		if err != nil || !utf8.ValidString(tok) {
			continue
		}
		switch rs := []rune(tok); {
		case len(rs) == 1 && isHan(rs[0]):
			s = append(s, tok)
		case len(rs) == 2 && isHan(rs[0]) && isHan(rs[1]):
			p = append(p, tok)
		}
	}
	sort.Strings(s)
	sort.Strings(p)
	return strings.Join(s, ""), strings.Join(p, "")
}

func goString(name, s string, perLine int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "const %s = \"\" +\n", name)
	rs := []rune(s)
	for i := 0; i < len(rs); i += perLine {
		end := min(i+perLine, len(rs))
		sep := " +"
		if end == len(rs) {
			sep = ""
		}
		fmt.Fprintf(&b, "\t%q%s\n", string(rs[i:end]), sep)
	}
	return b.String()
}

// TestCalibrate fits the estimate's tables and prints them, or with
// -calibrate.out=FILE writes them as they end tokens.go (go test
// ./anthropic -run TestCalibrate -calibrate -calibrate.out=/tmp/t.go,
// then replace the end of tokens.go with the file): the mean o200k_base count of the corpus's words by group
// and length, of punctuation by length, what capitals and contractions
// add, and by least squares the cost of a prefix before a non-ASCII
// letter and of a letter of another script; and it lists the Han
// ideographs and pairs that are one token.
func TestCalibrate(t *testing.T) {
	if !*calibrate {
		t.Skip("run with -calibrate to fit the tables")
	}
	enc := o200k(t)
	singles, pairs := hanTables(enc)
	t.Logf("%d single ideographs, %d pairs", utf8.RuneCountInString(singles), utf8.RuneCountInString(pairs)/2)
	loadHanTables(singles, pairs)
	data := cutCorpus(t, enc)

	// Words of ASCII letters: the mean by group and length.
	var sum, cnt [numGroups][17]float64
	for _, cs := range data {
		for _, c := range cs.pieces {
			p := c.p
			if p.kind != pkWord || !p.plain || p.contraction || p.upper == p.ascii && p.ascii > 1 {
				continue
			}
			if p.ascii <= 16 {
				sum[p.group][p.ascii] += float64(c.tok)
				cnt[p.group][p.ascii]++
			}
		}
	}
	var w [numGroups][17]float64
	for g := range numGroups {
		for l := 1; l <= 16; l++ {
			// A length seen too seldom costs a quarter more than the one
			// before it; a longer word never costs less.
			v := 1.0
			if l > 1 {
				v = w[g][l-1] + 0.25
			}
			if cnt[g][l] >= 10 {
				v = sum[g][l] / cnt[g][l]
			}
			w[g][l] = math.Max(v, w[g][l-1])
		}
	}
	wordCosts = w
	// Letters past 16: what each adds to the table's last entry.
	var lt, ll float64
	for _, cs := range data {
		for _, c := range cs.pieces {
			p := c.p
			if p.kind == pkWord && p.plain && p.ascii > 16 && !p.contraction {
				lt += float64(c.tok) - w[p.group][16]
				ll += float64(p.ascii - 16)
			}
		}
	}
	longWordRate = math.Max(0.1, lt/math.Max(ll, 1))
	// All capitals and contractions: what they add.
	var capS, capN [17]float64
	var conS, conN float64
	capsCosts = [17]float64{}
	contractionCost = 0
	for _, cs := range data {
		for _, c := range cs.pieces {
			p := c.p
			if p.kind != pkWord || !p.plain {
				continue
			}
			if p.contraction {
				conS += float64(c.tok) - wordCost(p.group, p.ascii, p.upper)
				conN++
			} else if p.upper == p.ascii && p.ascii > 1 {
				l := min(p.ascii, 16)
				capS[l] += float64(c.tok) - wordCost(p.group, p.ascii, p.upper)
				capN[l]++
			}
		}
	}
	for l := 2; l <= 16; l++ {
		if capN[l] >= 5 {
			capsCosts[l] = capS[l] / capN[l]
		} else {
			capsCosts[l] = capsCosts[l-1]
		}
	}
	contractionCost = conS / math.Max(conN, 1)
	// Punctuation by length.
	var ps, pn [8]float64
	for _, cs := range data {
		for _, c := range cs.pieces {
			p := c.p
			if p.kind != pkPunct {
				continue
			}
			if p.runes < 8 {
				ps[p.runes] += float64(c.tok)
				pn[p.runes]++
			}
		}
	}
	for k := 1; k < 8; k++ {
		punctCost[k] = math.Max(punctCost[k-1], ps[k]/math.Max(pn[k], 1))
	}
	var rs, rn float64
	for _, cs := range data {
		for _, c := range cs.pieces {
			if p := c.p; p.kind == pkPunct && p.runes >= 8 {
				rs += float64(c.tok) - punctCost[7]
				rn += float64(p.runes - 7)
			}
		}
	}
	punctRate = math.Max(0.1, rs/math.Max(rn, 1))
	// Words with other letters: prefix costs and the cost of a letter, by
	// least squares on what the rest of the model leaves.
	prefixCosts = [numGroups]float64{}
	otherLetterCost = 0
	data = cutCorpus(t, enc) // again, with the tables fitted so far
	var ata [numGroups + 1][numGroups + 1]float64
	var atb [numGroups + 1]float64
	for _, cs := range data {
		for _, c := range cs.pieces {
			p := c.p
			if p.kind != pkWord || p.plain {
				continue
			}
			var x [numGroups + 1]float64
			if p.wideLead {
				x[p.group] = 1
			}
			x[numGroups] = float64(p.others)
			y := float64(c.tok) - p.cost
			for i := range x {
				for j := range x {
					ata[i][j] += x[i] * x[j]
				}
				atb[i] += x[i] * y
			}
		}
	}
	sol := solve(ata, atb)
	for g := range numGroups {
		prefixCosts[g] = sol[g]
	}
	otherLetterCost = sol[numGroups]

	var b strings.Builder
	b.WriteString("var (\n\twordCosts = [numGroups][17]float64{\n")
	for g := range numGroups {
		b.WriteString("\t\t{0")
		for l := 1; l <= 16; l++ {
			fmt.Fprintf(&b, ", %.2f", w[g][l])
		}
		b.WriteString("},\n")
	}
	b.WriteString("\t}\n\tcapsCosts = [17]float64{0")
	for l := 1; l <= 16; l++ {
		fmt.Fprintf(&b, ", %.2f", capsCosts[l])
	}
	b.WriteString("}\n\tpunctCost = [8]float64{0")
	for k := 1; k < 8; k++ {
		fmt.Fprintf(&b, ", %.2f", punctCost[k])
	}
	fmt.Fprintf(&b, "}\n\tpunctRate = %.2f\n\tlongWordRate = %.2f\n\tcontractionCost = %.2f\n\tprefixCosts = [numGroups]float64{", punctRate, longWordRate, contractionCost)
	for g := range numGroups {
		if g > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%.2f", prefixCosts[g])
	}
	fmt.Fprintf(&b, "}\n\totherLetterCost = %.2f\n)\n\n", otherLetterCost)
	b.WriteString(goString("hanSingleList", singles, 40))
	b.WriteString("\n")
	b.WriteString(goString("hanPairList", pairs, 40))
	// The tables' comment, as tokens.go has it, then the tables.
	src, err := os.ReadFile("tokens.go")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(src, []byte("// The tables below are written by TestCalibrate"))
	end := bytes.Index(src, []byte("var (\n\twordCosts"))
	if start < 0 || end < start {
		t.Fatal("tokens.go has lost the tables' comment")
	}
	out, err := format.Source(append(append([]byte("package anthropic\n\n"), src[start:end]...), b.String()...))
	if err != nil {
		t.Fatal(err)
	}
	out = bytes.TrimPrefix(out, []byte("package anthropic\n\n"))
	if *calibrateOut != "" {
		if err := os.WriteFile(*calibrateOut, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Log("\n" + string(out))
}

func solve(a [numGroups + 1][numGroups + 1]float64, b [numGroups + 1]float64) [numGroups + 1]float64 {
	const n = numGroups + 1
	for i := range n {
		a[i][i] += 1e-3 // ridge: groups that never occur stay at 0
	}
	for c := range n {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		a[c], a[p] = a[p], a[c]
		b[c], b[p] = b[p], b[c]
		for r := c + 1; r < n; r++ {
			f := a[r][c] / a[c][c]
			for k := c; k < n; k++ {
				a[r][k] -= f * a[c][k]
			}
			b[r] -= f * b[c]
		}
	}
	var x [n]float64
	for r := n - 1; r >= 0; r-- {
		s := b[r]
		for k := r + 1; k < n; k++ {
			s -= a[r][k] * x[k]
		}
		x[r] = s / a[r][r]
	}
	return x
}
