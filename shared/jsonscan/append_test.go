package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// appendCases are strings with every kind of character the escapings treat
// apart.
var appendCases = []string{
	"", "plain ASCII, nothing to escape: 'single' quotes / slash ~",
	`quote " and \ backslash`, "\b\f\n\r\t", "nul \x00 \x01 \x1f unit sep, del \x7f",
	"html <b>&amp;</b> <script>", "unicode é ü 漢字 🙂", "line sep \u2028 para \u2029 end\u2029",
	"\u2027\u202a near the separators", "invalid \xff\xfe utf-8", "truncated \xe2\x80", "\xe2\x80\xa8", "\xe2",
	"surrogate half \xed\xa0\x80", "overlong \xc0\xaf", "\ufffd a real U+FFFD", strings.Repeat("long <&> ", 50),
}

// marshalString is encoding/json's encoding of s.
func marshalString(t testing.TB, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// verbatimString is the reference for AppendStringVerbatim, built from
// encoding/json one character at a time: invalid bytes copied as they are,
// \b and \f as \u00XX, every other character as json.Marshal writes it.
func verbatimString(t testing.TB, s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteByte(s[0])
		case r == '\b':
			b.WriteString(`\u0008`)
		case r == '\f':
			b.WriteString(`\u000c`)
		default:
			q := marshalString(t, s[:size])
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[size:]
	}
	b.WriteByte('"')
	return b.String()
}

func checkAppendString(t *testing.T, s string) {
	t.Helper()
	prefix := []byte("prefix:")
	if got, want := AppendString(bytes.Clone(prefix), s), marshalString(t, s); string(got[len(prefix):]) != want || !bytes.HasPrefix(got, prefix) {
		t.Errorf("AppendString(%q) = %s, encoding/json writes %s", s, got, want)
	}
	got, want := AppendStringVerbatim(bytes.Clone(prefix), s), verbatimString(t, s)
	if string(got[len(prefix):]) != want || !bytes.HasPrefix(got, prefix) {
		t.Errorf("AppendStringVerbatim(%q) = %s, want %s", s, got, want)
	}
	if !json.Valid(got[len(prefix):]) {
		t.Errorf("AppendStringVerbatim(%q) = %s: not valid JSON", s, got)
	}
	var back string
	if err := json.Unmarshal(got[len(prefix):], &back); err != nil || utf8.ValidString(s) && back != s {
		t.Errorf("AppendStringVerbatim(%q) decodes to %q (%v)", s, back, err)
	}
}

func TestAppendStringIsEncodingJSON(t *testing.T) {
	for _, s := range appendCases {
		checkAppendString(t, s)
	}
	for c := range 256 { // every byte alone and between others
		checkAppendString(t, string([]byte{byte(c)}))
		checkAppendString(t, "a"+string([]byte{byte(c)})+"é")
	}
}

func TestAppendStringAllocatesNothing(t *testing.T) {
	dst := make([]byte, 0, 4096)
	for _, s := range appendCases {
		if n := testing.AllocsPerRun(10, func() { AppendString(dst, s); AppendStringVerbatim(dst, s) }); n != 0 {
			t.Errorf("%q: %.0f allocations into a large enough buffer, want 0", s, n)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range appendCases {
		f.Add(s)
	}
	f.Fuzz(checkAppendString)
}

func BenchmarkAppendString(b *testing.B) {
	for name, s := range map[string]string{
		"ascii":   "Missing or invalid Authorization header: expected 'Bearer <token>'.",
		"unicode": "Le modèle « gpt-4o » n’est pas autorisé pour ce projet — 漢字",
	} {
		dst := make([]byte, 0, 256)
		b.Run(name+"/AppendString", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendString(dst[:0], s)
			}
		})
		b.Run(name+"/json.Marshal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				q, _ := json.Marshal(s)
				dst = append(dst[:0], q...)
			}
		})
	}
}
