package provider

import (
	"encoding/base64"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxShownText bounds the upstream text that Scrub lets through.
const MaxShownText = 300

// Redacted replaces what Scrub takes out.
const Redacted = "[redacted]"

// minSecret is the shortest secret Scrub looks for: shorter ones would
// match ordinary words.
const minSecret = 4

// keyShaped matches text that looks like a credential whoever it belongs
// to: an API key (sk-…, sk_…), a bearer token, a JSON web token. An
// upstream may quote a key other than the one sent (the account's other
// keys, a key it just issued).
var keyShaped = regexp.MustCompile(`(?i)\b(?:sk|ak|pk|rk)[-_][A-Za-z0-9_\-]{12,}|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{8,}=*|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*)?`)

// Scrub makes text an upstream sent (an error message, a redirect target,
// an OAuth error) fit to reach a client, a log line or the admin API:
// every one of secrets (the key, token or cookie the call carried) is taken
// out in any letter case and as it reads URL-, JSON- or base64-encoded;
// anything shaped like a key or token is taken out too; control
// characters become spaces; and the text is cut to MaxShownText bytes.
// Every path by which upstream text leaves the plugin goes through it.
func Scrub(text string, secrets ...string) string {
	// Secrets are looked for in the whole text before it is cut, so that
	// a cut never leaves part of one behind.
	if len(text) > 64<<10 {
		text = text[:64<<10]
	}
	text = strings.ToValidUTF8(text, "")
	for _, s := range secrets {
		if len(s) < minSecret {
			continue
		}
		for _, form := range secretForms(s) {
			text = replaceFold(text, form, Redacted)
		}
	}
	text = keyShaped.ReplaceAllString(text, Redacted)
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, text)
	if len(text) > MaxShownText {
		cut := MaxShownText
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	return text
}

// secretForms are the ways s may appear in text that quotes it.
func secretForms(s string) []string {
	forms := []string{s}
	add := func(f string) {
		for _, o := range forms {
			if o == f {
				return
			}
		}
		forms = append(forms, f)
	}
	add(url.QueryEscape(s))
	add(url.PathEscape(s))
	if q := strconv.Quote(s); len(q) > 2 {
		add(q[1 : len(q)-1])
	}
	add(base64.StdEncoding.EncodeToString([]byte(s)))
	add(base64.RawURLEncoding.EncodeToString([]byte(s)))
	return forms
}

// replaceFold replaces every occurrence of old in s, compared without
// regard to letter case, by repl.
func replaceFold(s, old, repl string) string {
	if len(old) == 0 || len(s) < len(old) {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i+len(old) <= len(s); {
		if strings.EqualFold(s[i:i+len(old)], old) {
			b.WriteString(s[last:i])
			b.WriteString(repl)
			i += len(old)
			last = i
			continue
		}
		i++
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
