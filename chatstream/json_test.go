package chatstream

import "testing"

// TestJSONProgress: a call's arguments are whole once every object, array
// and string they open is closed, whatever the fragments' cuts.
func TestJSONProgress(t *testing.T) {
	for args, whole := range map[string]bool{
		`{"a":1}`: true, `{"a":"}"}`: true, `{"a":"\"}"}`: true, `{"a":[1,{"b":2}]}`: true, `  {}  `: true,
		`{"a":`: false, `{"a":"}`: false, `{"a":"\"}`: false, `{"a":[1,{}`: false, ``: false, `   `: false,
	} {
		for cut := 0; cut <= len(args); cut++ {
			var p progress
			p.feed(args[:cut])
			p.feed(args[cut:])
			if p.complete() != whole {
				t.Errorf("%q cut at %d: complete %t, want %t", args, cut, p.complete(), whole)
			}
		}
	}
}
