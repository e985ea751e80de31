package anthropic

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tiktoken-go/tokenizer"
)

// corpus is the estimate's test corpus: the samples in testdata/tokens
// (English prose and Markdown tables, Chinese, Go and shell code, JSON)
// and a few of Go's own sources.
func corpus(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	files, err := filepath.Glob("testdata/tokens/*")
	if err != nil || len(files) < 8 {
		t.Fatalf("the corpus is missing: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = string(b)
	}
	for _, f := range []string{"net/http/server.go", "encoding/json/decode.go", "strings/strings.go", "bufio/bufio.go", "fmt/print.go"} {
		b, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "src", f))
		if err != nil {
			t.Fatal(err)
		}
		out["GOROOT/"+f] = string(b[:min(len(b), 20000)])
	}
	return out
}

// TestEstimateText: on every sample of the corpus, the estimate is within
// 10% of what OpenAI's o200k_base tokenizer counts.
func TestEstimateText(t *testing.T) {
	enc, err := tokenizer.Get(tokenizer.O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	worst, sum, n := 0.0, 0.0, 0
	for name, text := range corpus(t) {
		ids, _, err := enc.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		real, est := len(ids), EstimateText(text)
		off := float64(est-real) / float64(real)
		t.Logf("%-36s o200k %6d  estimate %6d  %+5.1f%%", name, real, est, 100*off)
		if math.Abs(off) > 0.10 {
			t.Errorf("%s: estimate %d is %+.1f%% off o200k's %d", name, est, 100*off, real)
		}
		worst, sum, n = max(worst, math.Abs(off)), sum+math.Abs(off), n+1
	}
	t.Logf("worst %.1f%%, mean %.1f%% over %d samples", 100*worst, 100*sum/float64(n), n)
}

// TestEstimateTokensBody: a whole count_tokens body counts its system
// prompt, messages, tool calls, results and definitions, as o200k would
// count their text (within 10%), and more tools count more.
func TestEstimateTokensBody(t *testing.T) {
	enc, _ := tokenizer.Get(tokenizer.O200kBase)
	system := corpus(t)["en-style.md"]
	code := corpus(t)["go-pool.go.txt"]
	body := fmt.Sprintf(`{"model":"claude-sonnet-4-5","system":[{"type":"text","text":%q}],"messages":[`+
		`{"role":"user","content":%q},`+
		`{"role":"assistant","content":[{"type":"text","text":"Let me look at the file."},{"type":"tool_use","id":"toolu_1","name":"read_file","input":{"path":"credpool/pool.go"}}]},`+
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":%q}]}],`+
		`"tools":[{"name":"read_file","description":"Read a file of the repository and return its text.","input_schema":{"type":"object","properties":{"path":{"type":"string","description":"the file's path"}},"required":["path"]}}]}`,
		system, "Why does the pool rest a credential after a 429? Explain the code below.", code)
	got, err := EstimateTokens([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	ids, _, _ := enc.Encode(system + "Why does the pool rest a credential after a 429? Explain the code below." +
		"Let me look at the file. read_file path credpool/pool.go" + code +
		"read_file Read a file of the repository and return its text. type object properties path type string description the file's path required path")
	if off := float64(got-int64(len(ids))) / float64(len(ids)); math.Abs(off) > 0.10 {
		t.Errorf("estimate %d, o200k counts %d for the text (%+.1f%%)", got, len(ids), 100*off)
	}
	fewer, _ := EstimateTokens([]byte(strings.Replace(body, `"tools":[`, `"ignored":[`, 1)))
	if fewer >= got-20 {
		t.Errorf("tools add nothing: %d with, %d without", got, fewer)
	}
	if _, err := EstimateTokens([]byte(`{"model":`)); err == nil {
		t.Error("invalid JSON estimated")
	}
	if _, err := EstimateTokens([]byte(`[1,2]`)); err == nil {
		t.Error("an array estimated")
	}
}

// TestEstimateImages: an image counts as Anthropic counts it, from the
// size its data says (PNG and JPEG), and as the largest image where that
// cannot be read.
func TestEstimateImages(t *testing.T) {
	encode := func(f func(*bytes.Buffer, image.Image) error, w, h int) string {
		var buf bytes.Buffer
		if err := f(&buf, image.NewRGBA(image.Rect(0, 0, w, h))); err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(buf.Bytes())
	}
	pngOf := func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) }
	jpegOf := func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) }
	body := func(media, data string) []byte {
		return []byte(fmt.Sprintf(`{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":%q,"data":%q}}]}]}`, media, data))
	}
	const user = 1 // the role's word
	for _, tt := range []struct {
		name string
		body []byte
		want int64
	}{
		{"png 300x200", body("image/png", encode(pngOf, 300, 200)), perMessage + 300*200/750 + 1 + user},
		{"jpeg 750x100", body("image/jpeg", encode(jpegOf, 750, 100)), perMessage + 100 + 1 + user},
		{"huge png", body("image/png", encode(pngOf, 4000, 3000)), perMessage + perImage + user},
		{"unreadable", body("image/png", "bm90IGFuIGltYWdl"), perMessage + perImage + user},
		{"by url", []byte(`{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}]}`), perMessage + perImage + user},
	} {
		got, err := EstimateTokens(tt.body)
		if err != nil || got != tt.want {
			t.Errorf("%s: %d (%v), want %d", tt.name, got, err, tt.want)
		}
	}
}

func BenchmarkEstimateTokens(b *testing.B) {
	text := strings.Repeat("The pool rests a credential after a 429 and 限流 之后 换一个账号. func (p *Pool) Pick() {}\n", 1200)
	body := []byte(fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":%q}]}`, text))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EstimateTokens(body); err != nil {
			b.Fatal(err)
		}
	}
}
