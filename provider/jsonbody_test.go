package provider

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestField(t *testing.T) {
	tests := []struct {
		name string
		body string
		key  string
		want string // raw value; "" with ok false when missing
		ok   bool
	}{
		{"string", `{"model":"glm-4.6"}`, "model", `"glm-4.6"`, true},
		{"number", `{"n":-1.5e3}`, "n", `-1.5e3`, true},
		{"number before close", `{"a":1,"n":42}`, "n", `42`, true},
		{"true", `{"stream":true}`, "stream", `true`, true},
		{"null", `{"x":null}`, "x", `null`, true},
		{"missing", `{"model":"a"}`, "stream", "", false},
		{"empty object", `{}`, "model", "", false},
		{"empty body", ``, "model", "", false},
		{"array body", `[{"model":"a"}]`, "model", "", false},
		{"string body", `"{\"model\":\"a\"}"`, "model", "", false},
		{"nested object value", `{"a":{"b":{"c":[1,{"d":"}"}]}},"z":1}`, "a", `{"b":{"c":[1,{"d":"}"}]}}`, true},
		{"nested key not top level", `{"a":{"model":"inner"}}`, "model", "", false},
		{"nested key in array not top level", `{"messages":[{"model":"inner"}],"x":1}`, "model", "", false},
		{"key after nested", `{"messages":[{"role":"user","content":"{\"model\":\"no\"}"}],"model":"yes"}`, "model", `"yes"`, true},
		{"braces in string", `{"a":"}{][","b":2}`, "b", `2`, true},
		{"quotes and escapes in string", `{"a":"say \"hi\" \\","b":"x"}`, "b", `"x"`, true},
		{"trailing backslash in string", `{"a":"\\\\","b":"x"}`, "b", `"x"`, true},
		{"escaped quote after escaped backslash", `{"a":"\\\"}\\","b":"x"}`, "b", `"x"`, true},
		{"escaped key", `{"mo\u0064el":"glm"}`, "model", `"glm"`, true},
		{"escaped quote in key", `{"a\"b":1}`, `a"b`, `1`, true},
		{"key with quote not matched by plain", `{"a\"b":1}`, `a\"b`, "", false},
		{"duplicates last wins", `{"model":"first","x":1,"model":"second"}`, "model", `"second"`, true},
		{"whitespace everywhere", " \n\t{ \"a\" :\r\n 1 , \"model\"\t:\n\"m\" \n}\n", "model", `"m"`, true},
		{"whitespace before number end", `{"n": 7 }`, "n", `7`, true},
		{"unicode", `{"k":"心流"}`, "k", `"心流"`, true},
		{"empty key", `{"":1}`, "", `1`, true},
		{"array value", `{"a":[1,[2,[3]],"]"]}`, "a", `[1,[2,[3]],"]"]`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, ok := Field([]byte(tt.body), tt.key)
			if ok != tt.ok || string(raw) != tt.want {
				t.Errorf("Field(%s, %q) = %q, %v; want %q, %v", tt.body, tt.key, raw, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestStringField(t *testing.T) {
	tests := []struct {
		name string
		body string
		key  string
		want string
		ok   bool
	}{
		{"plain", `{"model":"qwen3-max"}`, "model", "qwen3-max", true},
		{"empty string", `{"model":""}`, "model", "", true},
		{"escapes decoded", `{"s":"a\"b\\c\nd\u00e9\/"}`, "s", "a\"b\\c\nd\u00e9/", true},
		{"surrogate pair", `{"s":"\ud83d\ude00"}`, "s", "😀", true},
		{"raw utf8", `{"s":"心流"}`, "s", "心流", true},
		{"braces", `{"s":"{}[]"}`, "s", "{}[]", true},
		{"number is not a string", `{"s":1}`, "s", "", false},
		{"null is not a string", `{"s":null}`, "s", "", false},
		{"object is not a string", `{"s":{"a":"b"}}`, "s", "", false},
		{"missing", `{"t":"x"}`, "s", "", false},
		{"duplicates last wins", `{"s":"a","s":"b"}`, "s", "b", true},
		{"last duplicate not a string", `{"s":"a","s":2}`, "s", "", false},
		{"escaped key", `{"\u0073":"v"}`, "s", "v", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := StringField([]byte(tt.body), tt.key)
			if got != tt.want || ok != tt.ok {
				t.Errorf("StringField(%s, %q) = %q, %v; want %q, %v", tt.body, tt.key, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestBoolField(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"stream":true}`, true},
		{`{"stream": true }`, true},
		{`{"stream":false}`, false},
		{`{"stream":"true"}`, false},
		{`{"stream":1}`, false},
		{`{"stream":null}`, false},
		{`{}`, false},
		{`{"x":{"stream":true}}`, false},
		{`{"stream":false,"stream":true}`, true},
		{`{"stream":true,"stream":false}`, false},
	}
	for _, tt := range tests {
		if got := BoolField([]byte(tt.body), "stream"); got != tt.want {
			t.Errorf("BoolField(%s) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

func TestSetField(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		key   string
		value string
		want  string
	}{
		{"replace", `{"model":"a","x":1}`, "model", `"b"`, `{"model":"b","x":1}`},
		{"replace last", `{"x":1,"model":"a"}`, "model", `"b"`, `{"x":1,"model":"b"}`},
		{"replace with longer object", `{"a":1,"b":2}`, "a", `{"k":[1,2]}`, `{"a":{"k":[1,2]},"b":2}`},
		{"replace nested value", `{"a":{"x":"}"},"b":2}`, "a", `null`, `{"a":null,"b":2}`},
		{"add to object", `{"x":1}`, "model", `"m"`, `{"model":"m","x":1}`},
		{"add to empty object", `{}`, "model", `"m"`, `{"model":"m"}`},
		{"add to empty object with space", `{ }`, "model", `"m"`, `{"model":"m" }`},
		{"add to empty object with newline", "{\n}", "model", `"m"`, "{\"model\":\"m\"\n}"},
		{"add with leading space", "  {\n  \"x\": 1\n}", "k", `true`, "  {\"k\":true,\n  \"x\": 1\n}"},
		{"add key needing escapes", `{"x":1}`, `a"b\c`, `1`, `{"a\"b\\c":1,"x":1}`},
		{"nested key untouched, top level added", `{"a":{"model":"inner"}}`, "model", `"top"`, `{"model":"top","a":{"model":"inner"}}`},
		{"duplicates all set", `{"m":1,"x":"m","m":2}`, "m", `3`, `{"m":3,"x":"m","m":3}`},
		{"escaped key replaced", `{"mo\u0064el":"a"}`, "model", `"b"`, `{"mo\u0064el":"b"}`},
		{"whitespace kept", "{ \"a\" : 1 ,\n \"b\" :\t2 }", "b", `3`, "{ \"a\" : 1 ,\n \"b\" :\t3 }"},
		{"strings with braces kept", `{"c":"{\"model\":1}","model":"x"}`, "model", `"y"`, `{"c":"{\"model\":1}","model":"y"}`},
		{"array body untouched", `[{"x":1}]`, "model", `"m"`, `[{"x":1}]`},
		{"string body untouched", `"{"`, "model", `"m"`, `"{"`},
		{"number body untouched", `1`, "model", `"m"`, `1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			orig := bytes.Clone(body)
			got := SetField(body, tt.key, []byte(tt.value))
			if string(got) != tt.want {
				t.Errorf("SetField(%s, %q, %s) =\n%s\nwant\n%s", tt.body, tt.key, tt.value, got, tt.want)
			}
			if !bytes.Equal(body, orig) {
				t.Errorf("SetField modified its input: %s", body)
			}
			if json.Valid(orig) && !json.Valid(got) {
				t.Errorf("SetField produced invalid JSON: %s", got)
			}
		})
	}
}

func TestSetStringField(t *testing.T) {
	tests := []struct {
		body, key, value, want string
	}{
		{`{"model":"iflow-glm-4.6","messages":[]}`, "model", "glm-4.6", `{"model":"glm-4.6","messages":[]}`},
		{`{}`, "model", "m", `{"model":"m"}`},
		{`{"s":1}`, "s", "quote \" backslash \\ newline \n", `{"s":"quote \" backslash \\ newline \n"}`},
		{`{"s":1}`, "s", "心流", `{"s":"心流"}`},
	}
	for _, tt := range tests {
		got := SetStringField([]byte(tt.body), tt.key, tt.value)
		if string(got) != tt.want {
			t.Errorf("SetStringField(%s, %q, %q) = %s, want %s", tt.body, tt.key, tt.value, got, tt.want)
		}
		if s, ok := StringField(got, tt.key); !ok || s != tt.value {
			t.Errorf("StringField after SetStringField = %q, %v; want %q", s, ok, tt.value)
		}
	}
}

func TestDeleteField(t *testing.T) {
	tests := []struct {
		name string
		body string
		key  string
		want string
	}{
		{"first", `{"a":1,"b":2,"c":3}`, "a", `{"b":2,"c":3}`},
		{"middle", `{"a":1,"b":2,"c":3}`, "b", `{"a":1,"c":3}`},
		{"last", `{"a":1,"b":2,"c":3}`, "c", `{"a":1,"b":2}`},
		{"only", `{"a":1}`, "a", `{}`},
		{"only with space", `{ "a" : 1 }`, "a", `{ }`},
		{"missing returns body", `{"a":1, "b" : 2}`, "z", `{"a":1, "b" : 2}`},
		{"empty object", `{}`, "a", `{}`},
		{"duplicates all removed", `{"a":1,"b":2,"a":3}`, "a", `{"b":2}`},
		{"escaped key", `{"\u0061":1,"b":2}`, "a", `{"b":2}`},
		{"nested same key kept", `{"x":{"a":1},"a":2}`, "a", `{"x":{"a":1}}`},
		{"values kept byte for byte", `{"reasoning_effort":"high","n":1.50,"s":"a\u00e9\"}"}`, "reasoning_effort", `{"n":1.50,"s":"a\u00e9\"}"}`},
		{"multiline first", "{\n  \"a\": 1,\n  \"b\": 2\n}", "a", "{\"b\": 2\n}"},
		{"multiline last", "{\n  \"a\": 1,\n  \"b\": 2\n}", "b", "{\"a\": 1\n}"},
		{"array body untouched", `[{"a":1}]`, "a", `[{"a":1}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			orig := bytes.Clone(body)
			got := DeleteField(body, tt.key)
			if string(got) != tt.want {
				t.Errorf("DeleteField(%s, %q) =\n%s\nwant\n%s", tt.body, tt.key, got, tt.want)
			}
			if !bytes.Equal(body, orig) {
				t.Errorf("DeleteField modified its input: %s", body)
			}
			if !json.Valid(got) {
				t.Errorf("DeleteField produced invalid JSON: %s", got)
			}
			if _, ok := Field(got, tt.key); ok {
				t.Errorf("key %q still present in %s", tt.key, got)
			}
		})
	}
}

// TestUnknownFieldsPreserved checks that the members a change does not
// touch travel byte for byte, as a client's extra switches must.
func TestUnknownFieldsPreserved(t *testing.T) {
	body := []byte(`{"model":"iflow-glm-4.6","messages":[{"role":"user","content":"hi \"there\" {}"}],` +
		`"x_custom":{"deep":[1.0,2e10,"\u00e9"]},"temperature":0.70,"reasoning_effort":"low"}`)
	out := SetStringField(body, "model", "glm-4.6")
	out = DeleteField(out, "reasoning_effort")
	out = SetField(out, "chat_template_kwargs", []byte(`{"enable_thinking":true}`))
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	for _, k := range []string{"messages", "x_custom", "temperature"} {
		before, _ := Field(body, k)
		after, ok := Field(out, k)
		if !ok || !bytes.Equal(before, after) {
			t.Errorf("member %q changed: %s -> %s", k, before, after)
		}
	}
	want := `{"chat_template_kwargs":{"enable_thinking":true},"model":"glm-4.6","messages":[{"role":"user","content":"hi \"there\" {}"}],` +
		`"x_custom":{"deep":[1.0,2e10,"\u00e9"]},"temperature":0.70}`
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func FuzzSetDelete(f *testing.F) {
	seeds := []struct{ body, key, value string }{
		{`{}`, "model", "glm-4.6"},
		{`{"model":"a"}`, "model", "b"},
		{`{"a":1,"model":"x","b":[1,{"model":2}]}`, "model", "y"},
		{`{"m\u006fdel":"x","model":"z"}`, "model", "q\"uote"},
		{` { "a" : "}" , "b" : { "c" : "{" } } `, "b", "\\"},
		{`{"a":"\\","b":null,"c":true,"d":-0.5e-3}`, "c", "心流"},
		{`{"a\"b":1}`, `a"b`, ""},
		{`{"":{}}`, "", "\n\t"},
		{`[1,2]`, "a", "b"},
		{`[{"a":1}]`, "a", "b"},
		{`"str"`, "a", "b"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.key, s.value)
	}
	f.Fuzz(func(t *testing.T, body []byte, key, value string) {
		if !json.Valid(body) {
			return
		}
		var obj map[string]json.RawMessage
		isObject := json.Unmarshal(body, &obj) == nil && obj != nil
		if !isObject {
			// Not an object: nothing is found and nothing changes.
			if _, ok := Field(body, key); ok {
				t.Fatalf("Field found %q in non-object %q", key, body)
			}
			if got := SetStringField(body, key, value); !bytes.Equal(got, body) {
				t.Fatalf("SetStringField changed non-object %q to %q", body, got)
			}
			if got := DeleteField(body, key); !bytes.Equal(got, body) {
				t.Fatalf("DeleteField changed non-object %q to %q", body, got)
			}
			return
		}
		// JSON text cannot carry invalid UTF-8 through a round trip.
		if !utf8.ValidString(key) || !utf8.ValidString(value) || !utf8.Valid(body) {
			return
		}
		orig := bytes.Clone(body)

		set := SetStringField(body, key, value)
		if !json.Valid(set) {
			t.Fatalf("SetStringField(%q, %q, %q) = invalid %q", body, key, value, set)
		}
		if got, ok := StringField(set, key); !ok || got != value {
			t.Fatalf("StringField after SetStringField(%q, %q, %q) = %q, %v", body, key, value, got, ok)
		}
		var after map[string]json.RawMessage
		if err := json.Unmarshal(set, &after); err != nil {
			t.Fatalf("unmarshal %q: %v", set, err)
		}
		for k, v := range obj {
			if k != key && !bytes.Equal(after[k], v) {
				t.Fatalf("member %q changed from %q to %q", k, v, after[k])
			}
		}

		del := DeleteField(body, key)
		if !json.Valid(del) {
			t.Fatalf("DeleteField(%q, %q) = invalid %q", body, key, del)
		}
		if raw, ok := Field(del, key); ok {
			t.Fatalf("DeleteField(%q, %q) = %q still has the key (%q)", body, key, del, raw)
		}
		var deleted map[string]json.RawMessage
		if err := json.Unmarshal(del, &deleted); err != nil {
			t.Fatalf("unmarshal %q: %v", del, err)
		}
		if _, ok := deleted[key]; ok {
			t.Fatalf("DeleteField(%q, %q) = %q: encoding/json still sees the key", body, key, del)
		}
		for k, v := range obj {
			if k != key && !bytes.Equal(deleted[k], v) {
				t.Fatalf("member %q changed from %q to %q", k, v, deleted[k])
			}
		}
		if !bytes.Equal(body, orig) {
			t.Fatalf("input modified")
		}
	})
}

// chatBody4K is a chat request of about 4 KB with the model near the end,
// as clients that put messages first send it.
func chatBody4K() []byte {
	var b strings.Builder
	b.WriteString(`{"messages":[`)
	for i := 0; b.Len() < 4000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"role":"user","content":"message ` + strconv.Itoa(i) +
			` with {braces}, \"quotes\" and \\ escapes, and a decoy \"model\":\"no\""}`)
	}
	b.WriteString(`],"temperature":0.2,"stream":true,"model":"glm-4.6"}`)
	return []byte(b.String())
}

func BenchmarkStringField(b *testing.B) {
	body := chatBody4K()
	if !json.Valid(body) {
		b.Fatal("benchmark body is not valid JSON")
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		m, ok := StringField(body, "model")
		if !ok || m != "glm-4.6" {
			b.Fatalf("StringField = %q, %v", m, ok)
		}
	}
}

func BenchmarkBoolField(b *testing.B) {
	body := chatBody4K()
	b.ReportAllocs()
	for b.Loop() {
		if !BoolField(body, "stream") {
			b.Fatal("stream not found")
		}
	}
}

// TestFieldAllocs keeps model sniffing cheap: finding a plain key does not
// allocate, and StringField allocates only the string it returns.
func TestFieldAllocs(t *testing.T) {
	body := chatBody4K()
	tests := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"Field", 0, func() { Field(body, "model") }},
		{"BoolField", 0, func() { BoolField(body, "stream") }},
		{"StringField", 1, func() { StringField(body, "model") }},
		{"StringField missing", 0, func() { StringField(body, "absent") }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, tt.fn); got > tt.max {
			t.Errorf("%s: %v allocs per run, want at most %v", tt.name, got, tt.max)
		}
	}
}

func TestFirstElement(t *testing.T) {
	for in, want := range map[string]string{
		`[{"a":[1,{"b":"]"}]},{"c":2}]`: `{"a":[1,{"b":"]"}]}`,
		` [ "x" , 1]`:                   `"x"`,
		`[]`:                            ``,
		`[ ]`:                           ``,
		`{"a":1}`:                       ``,
		`null`:                          ``,
		`[{"unterminated":`:             ``,
		``:                              ``,
	} {
		if got := string(FirstElement([]byte(in))); got != want {
			t.Errorf("FirstElement(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestFields2(t *testing.T) {
	a, b := Fields2([]byte(`{"choices":[{"x":"usage"}],"id":"1","usage":{"n":1}}`), "choices", "usage")
	if string(a) != `[{"x":"usage"}]` || string(b) != `{"n":1}` {
		t.Errorf("%s %s", a, b)
	}
	if a, b := Fields2([]byte(`{"choices":[]}`), "choices", "usage"); string(a) != `[]` || b != nil {
		t.Errorf("%s %s", a, b)
	}
}

func TestJSONKind(t *testing.T) {
	var (
		s  *string
		n  **int64
		f  float64
		m  map[string]any
		a  []int
		st struct{}
		b  bool
		i  any
	)
	for _, tt := range []struct {
		v    any
		want string
	}{
		{&s, "a string"}, {&n, "an integer"}, {&f, "a number"}, {&m, "an object"},
		{&a, "an array"}, {&st, "an object"}, {&b, "a boolean"}, {&i, "a JSON value"},
	} {
		if got := JSONKind(reflect.TypeOf(tt.v).Elem()); got != tt.want {
			t.Errorf("JSONKind(%T) = %q, want %q", tt.v, got, tt.want)
		}
	}
	if got := JSONKind(nil); got != "a JSON value" {
		t.Errorf("JSONKind(nil) = %q", got)
	}
}

func TestFieldOrIn(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{`{"usage":{"a":1}}`, `{"a":1}`},
		{`{"type":"x","response":{"usage":{"b":2}}}`, `{"b":2}`},
		{`{"usage":null,"response":{"usage":{"b":2}}}`, `null`},
		{`{"response":{"id":"r"}}`, ``},
		{`{"other":{"usage":1}}`, ``},
	} {
		got, _ := FieldOrIn([]byte(tt.body), "usage", "response")
		if string(got) != tt.want {
			t.Errorf("FieldOrIn(%s) = %s, want %s", tt.body, got, tt.want)
		}
	}
}
