package provider

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// The functions below read and change the top-level members of a JSON
// object in place, so that a client's body travels upstream byte for byte
// as it was sent (unknown fields, key order and number formatting kept)
// and the request path does not decode a whole conversation to look at
// one field. Every function expects body to be valid JSON (check it with
// json.Valid first); on anything that is not an object they find nothing.

// Field returns the raw JSON value of the top-level member named key. As
// with encoding/json, the last of duplicate members wins.
func Field(body []byte, key string) (raw []byte, ok bool) {
	eachMember(body, func(_ int, k []byte, vs, ve int) {
		if keyIs(k, key) {
			raw, ok = body[vs:ve], true
		}
	})
	return raw, ok
}

// FieldOrIn returns the top-level member key of body, or else the member
// key of its object member parent: where an answer and the stream event
// that wraps one (a message_start's message, a response.completed's
// response) keep the same member.
func FieldOrIn(body []byte, key, parent string) ([]byte, bool) {
	raw, ok := Field(body, key)
	if !ok {
		if p, found := Field(body, parent); found {
			raw, ok = Field(p, key)
		}
	}
	return raw, ok
}

// Fields2 returns the raw JSON values of two top-level members in one
// pass over body; a value is nil when its member is missing.
func Fields2(body []byte, a, b string) (ra, rb []byte) {
	eachMember(body, func(_ int, k []byte, vs, ve int) {
		switch {
		case keyIs(k, a):
			ra = body[vs:ve]
		case keyIs(k, b):
			rb = body[vs:ve]
		}
	})
	return ra, rb
}

// FirstElement returns the raw first element of a JSON array, or nil
// when arr is not an array or is empty.
func FirstElement(arr []byte) []byte {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return nil
	}
	i = skipSpace(arr, i+1)
	if i >= len(arr) || arr[i] == ']' {
		return nil
	}
	e := skipValue(arr, i)
	if e < 0 {
		return nil
	}
	return arr[i:e]
}

// StringField returns the top-level string member named key.
func StringField(body []byte, key string) (string, bool) {
	raw, ok := Field(body, key)
	if !ok || len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// BoolField reports the top-level boolean member named key; a missing or
// non-boolean member is false.
func BoolField(body []byte, key string) bool {
	raw, ok := Field(body, key)
	return ok && string(raw) == "true"
}

// SetField returns body with the top-level member key set to the raw JSON
// value. Every existing member of that name gets the value; if there is
// none, the member is added first. body is not modified.
func SetField(body []byte, key string, value []byte) []byte {
	type span struct{ s, e int }
	var spans []span
	eachMember(body, func(_ int, k []byte, vs, ve int) {
		if keyIs(k, key) {
			spans = append(spans, span{vs, ve})
		}
	})
	if len(spans) == 0 {
		open := skipSpace(body, 0)
		if open >= len(body) || body[open] != '{' {
			return body // not an object
		}
		out := make([]byte, 0, len(body)+len(key)+len(value)+4)
		out = append(out, body[:open+1]...)
		out = appendQuoted(out, key)
		out = append(out, ':')
		out = append(out, value...)
		if rest := bytes.TrimLeft(body[open+1:], " \t\r\n"); len(rest) > 0 && rest[0] != '}' {
			out = append(out, ',')
		}
		return append(out, body[open+1:]...)
	}
	out := make([]byte, 0, len(body)+len(spans)*len(value))
	last := 0
	for _, sp := range spans {
		out = append(out, body[last:sp.s]...)
		out = append(out, value...)
		last = sp.e
	}
	return append(out, body[last:]...)
}

// SetStringField is SetField with a JSON string value.
func SetStringField(body []byte, key, value string) []byte {
	v, _ := json.Marshal(value)
	return SetField(body, key, v)
}

// DeleteField returns body without any top-level member named key. The
// remaining members keep their text; only the separators between them are
// rebuilt.
func DeleteField(body []byte, key string) []byte {
	type span struct{ s, e int }
	var kept []span
	found := false
	lastEnd := -1
	eachMember(body, func(ks int, k []byte, _, ve int) {
		lastEnd = ve
		if keyIs(k, key) {
			found = true
			return
		}
		kept = append(kept, span{ks, ve})
	})
	if !found {
		return body
	}
	open := bytes.IndexByte(body, '{')
	out := make([]byte, 0, len(body))
	out = append(out, body[:open+1]...)
	for i, sp := range kept {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, body[sp.s:sp.e]...)
	}
	return append(out, body[lastEnd:]...)
}

func keyIs(raw []byte, key string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == key
	}
	var s string
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	return json.Unmarshal(quoted, &s) == nil && s == key
}

func appendQuoted(out []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(out, q...)
}

// eachMember calls fn for every top-level member of the object in body
// with the index of the key's opening quote, the key's raw bytes (between
// the quotes) and the value's span.
func eachMember(body []byte, fn func(ks int, key []byte, vs, ve int)) {
	ScanObject(body, skipSpace(body, 0), func(ks int, key []byte, vs int) int {
		ve := skipValue(body, vs)
		if ve >= 0 {
			fn(ks, key, vs, ve)
		}
		return ve
	})
}

// ScanObject reads the members of the object at b[i] in one pass: fn gets
// the index of each key's opening quote, the key's raw bytes (between the
// quotes, escapes unread; compare with KeyIs) and where its value starts,
// and returns where the value ends: SkipValue(b, vs) to pass it by, or
// the end of its own reading of it, so that nested values are read in
// place rather than skipped and read again. A negative return stops the
// scan. ScanObject returns the index after the object's '}', or -1 where
// b[i] is not a well-formed object or fn stopped.
func ScanObject(b []byte, i int, fn func(ks int, key []byte, vs int) int) int {
	if i < 0 || i >= len(b) || b[i] != '{' {
		return -1
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		ks := i
		ke := skipString(b, i)
		if ke < 0 {
			return -1
		}
		i = skipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		var end bool
		if i, end = afterValue(b, fn(ks, b[ks+1:ke-1], skipSpace(b, i+1)), '}'); end {
			return i
		}
	}
}

// afterValue reads past a value ending at ve and what follows it: a
// comma, to the next value (end false), or the closing bracket, to after
// it (end true). i is -1, and end true, on anything else.
func afterValue(b []byte, ve int, closing byte) (i int, end bool) {
	if ve < 0 {
		return -1, true
	}
	i = skipSpace(b, ve)
	switch {
	case i >= len(b):
		return -1, true
	case b[i] == closing:
		return i + 1, true
	case b[i] == ',':
		return skipSpace(b, i+1), false
	}
	return -1, true
}

// ScanArray is ScanObject for the elements of the array at b[i]: fn gets
// each element's position (0, 1, ...) and start, and returns its end.
func ScanArray(b []byte, i int, fn func(n, vs int) int) int {
	if i < 0 || i >= len(b) || b[i] != '[' {
		return -1
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1
	}
	for n := 0; ; n++ {
		var end bool
		if i, end = afterValue(b, fn(n, i), ']'); end {
			return i
		}
	}
}

// SkipValue returns the index after the JSON value starting at b[i], or
// -1 where none ends. Like the rest of this file it trusts b to be valid
// JSON, and only finds where a value ends.
func SkipValue(b []byte, i int) int { return skipValue(b, i) }

// KeyIs reports whether a key's raw bytes, as ScanObject gives them, name
// key.
func KeyIs(raw []byte, key string) bool { return keyIs(raw, key) }

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
// A quote ends it unless an odd run of backslashes escapes it.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return -1
		}
		q += j
		esc := 0
		for k := q - 1; k > i && b[k] == '\\'; k-- {
			esc++
		}
		if esc%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
	return -1
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := skipString(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' &&
			b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// AmbiguousMember reports the first of keys (at most eight) that body
// cannot be read as one value for: a top-level member of that name appears
// twice, or a member spells it in other letter case (encoding/json, and so
// many an upstream, matches member names without regard to case, while
// Field does not). The gateway and the upstream would then read different
// values of it. It returns the key and the member names as written.
func AmbiguousMember(body []byte, keys ...string) (key string, names []string) {
	keys = keys[:min(len(keys), 8)]
	var count [8]int
	var odd [8]bool
	eachMember(body, func(_ int, k []byte, _, _ int) {
		for i, want := range keys {
			if exact, ok := nameFolds(k, want); ok {
				count[i]++
				odd[i] = odd[i] || !exact
			}
		}
	})
	for i, want := range keys {
		if count[i] < 2 && !odd[i] {
			continue
		}
		eachMember(body, func(_ int, k []byte, _, _ int) {
			if _, ok := nameFolds(k, want); ok {
				names = append(names, memberName(k))
			}
		})
		return want, names
	}
	return "", nil
}

// nameFolds reports whether the raw member name k reads as want without
// regard to case, and whether it is want exactly. Names of plain ASCII
// compare without allocating; others fold as Unicode does (ſ is s, K is k).
func nameFolds(k []byte, want string) (exact, ok bool) {
	for _, c := range k {
		if c == '\\' || c >= 0x80 {
			name := memberName(k)
			return name == want, strings.EqualFold(name, want)
		}
	}
	if len(k) != len(want) {
		return false, false
	}
	exact = true
	for i := range k {
		a, b := k[i], want[i]
		exact = exact && a == b
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false, false
		}
	}
	return exact, true
}

// memberName is a raw member name, unescaped.
func memberName(k []byte) string {
	if bytes.IndexByte(k, '\\') < 0 {
		return string(k)
	}
	var s string
	if json.Unmarshal(append(append([]byte{'"'}, k...), '"'), &s) != nil {
		return string(k)
	}
	return s
}

// EachMember calls fn with the name of every top-level member of body, in
// order.
func EachMember(body []byte, fn func(key string)) {
	eachMember(body, func(_ int, k []byte, _, _ int) { fn(memberName(k)) })
}

// RenameField returns body with the top-level members named old renamed
// to name, where they stand; body is not modified.
func RenameField(body []byte, old, name string) []byte {
	type span struct{ s, e int }
	var keys []span
	eachMember(body, func(ks int, k []byte, _, _ int) {
		if keyIs(k, old) {
			keys = append(keys, span{ks, ks + len(k) + 2})
		}
	})
	if len(keys) == 0 {
		return body
	}
	out := make([]byte, 0, len(body)+len(keys)*len(name))
	last := 0
	for _, sp := range keys {
		out = append(out, body[last:sp.s]...)
		out = appendQuoted(out, name)
		last = sp.e
	}
	return append(out, body[last:]...)
}

// JSONKind names the JSON value a Go type takes, for errors that say what
// a member must be ("must be an array, not string"): the type of a
// json.UnmarshalTypeError, through pointers.
func JSONKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Interface:
		return "a JSON value"
	}
	return "a " + t.Kind().String()
}
