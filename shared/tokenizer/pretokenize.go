package tokenizer

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// Character classes of the pre-tokenizer patterns, one bit each.
const (
	classL = 1 << iota // \p{L}
	classN             // \p{N}
	classS             // \s, which regexp2 defines as unicode.IsSpace
	classU             // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] (o200k "upper")
	classW             // [\p{Ll}\p{Lm}\p{Lo}\p{M}] (o200k "lower")
)

// bmpClasses holds the classes of every rune of the Basic Multilingual
// Plane (64 KiB); runes above it are classified on the fly.
var (
	bmpClasses     [0x10000]uint8
	bmpClassesOnce sync.Once
)

func buildClasses() {
	bmpClassesOnce.Do(func() {
		set := func(t *unicode.RangeTable, bit uint8) {
			for _, r := range t.R16 {
				for c := int(r.Lo); c <= int(r.Hi); c += int(r.Stride) {
					bmpClasses[c] |= bit
				}
			}
		}
		set(unicode.L, classL)
		set(unicode.N, classN)
		for _, t := range []*unicode.RangeTable{unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M} {
			set(t, classU)
		}
		for _, t := range []*unicode.RangeTable{unicode.Ll, unicode.Lm, unicode.Lo, unicode.M} {
			set(t, classW)
		}
		for c := range 0x10000 {
			if unicode.IsSpace(rune(c)) {
				bmpClasses[c] |= classS
			}
		}
	})
}

// classify computes the classes of r from the unicode tables.
func classify(r rune) uint8 {
	var c uint8
	if unicode.Is(unicode.L, r) {
		c |= classL
	}
	if unicode.Is(unicode.N, r) {
		c |= classN
	}
	if unicode.IsSpace(r) {
		c |= classS
	}
	if unicode.In(r, unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M) {
		c |= classU
	}
	if unicode.In(r, unicode.Ll, unicode.Lm, unicode.Lo, unicode.M) {
		c |= classW
	}
	return c
}

// at decodes the rune at s[i] (s is valid UTF-8) and returns it with its
// classes and its length in bytes.
func at(s string, i int) (rune, uint8, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return rune(b), bmpClasses[b], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r < 0x10000 {
		return r, bmpClasses[r], n
	}
	return r, classify(r), n
}

// other reports whether a rune of classes c is in [^\s\p{L}\p{N}].
func other(c uint8) bool { return c&(classS|classL|classN) == 0 }

// prefixable reports whether a rune is in [^\r\n\p{L}\p{N}], the optional
// leading character of a word.
func prefixable(r rune, c uint8) bool {
	return c&(classL|classN) == 0 && r != '\r' && r != '\n'
}

// scan returns the end of the run of runes from s[i] that have any of the
// classes in want.
func scan(s string, i int, want uint8) int {
	for i < len(s) {
		_, c, n := at(s, i)
		if c&want == 0 {
			break
		}
		i += n
	}
	return i
}

// scanOther returns the end of the run of [^\s\p{L}\p{N}] from s[i].
func scanOther(s string, i int) int {
	for i < len(s) {
		_, c, n := at(s, i)
		if !other(c) {
			break
		}
		i += n
	}
	return i
}

// scanBytes returns the end of the run of bytes from s[i] that are in set
// (ASCII only).
func scanBytes(s string, i int, set string) int {
	for i < len(s) && containsByte(set, s[i]) {
		i++
	}
	return i
}

func containsByte(set string, b byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == b {
			return true
		}
	}
	return false
}

// numbers returns the end of \p{N}{1,3} at s[i] (whose rune is a number).
func numbers(s string, i int) int {
	for k := 0; k < 3 && i < len(s); k++ {
		_, c, n := at(s, i)
		if c&classN == 0 {
			break
		}
		i += n
	}
	return i
}

// contraction returns the length of 's|'t|'re|'ve|'m|'ll|'d at s[i], or 0.
// With ignoreCase, it matches as regexp2 does for (?i:...): the input rune
// lowercased by unicode.ToLower must equal the pattern's, which for these
// letters only their ASCII upper case does (see TestContractionFolding).
func contraction(s string, i int, ignoreCase bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return 0
	}
	lower := func(b byte) byte {
		if ignoreCase && 'A' <= b && b <= 'Z' {
			return b + 'a' - 'A'
		}
		return b
	}
	switch lower(s[i+1]) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && lower(s[i+2]) == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && lower(s[i+2]) == 'l' {
			return 3
		}
	}
	return 0
}

// whitespace returns the end of the piece at s[i], a \s rune, for the
// alternatives \s*[\r\n]+ (when crlf), then \s+(?!\S), then \s+.
func whitespace(s string, i int, crlf bool) int {
	end, last, afterNewline := i, i, -1
	for end < len(s) {
		r, c, n := at(s, end)
		if c&classS == 0 {
			break
		}
		if r == '\r' || r == '\n' {
			afterNewline = end + n
		}
		last = end
		end += n
	}
	switch {
	case crlf && afterNewline >= 0:
		// \s* backs off to the last newline of the run, [\r\n]+ takes it.
		return afterNewline
	case end == len(s) || last == i:
		// \s+(?!\S) at the end of text; or a single space before a
		// non-space, which only \s+ matches.
		return end
	default:
		// \s+(?!\S) backs off one rune: the last space goes with the
		// word after it.
		return last
	}
}

// nextCL100K returns the end of the piece at s[i] for cl100k_base:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func nextCL100K(s string, i int) int {
	r, c, n := at(s, i)
	j := i + n
	if r == '\'' {
		if k := contraction(s, i, true); k > 0 {
			return i + k
		}
	}
	if c&classL != 0 {
		return scan(s, j, classL)
	}
	if prefixable(r, c) && j < len(s) {
		if _, c2, n2 := at(s, j); c2&classL != 0 {
			return scan(s, j+n2, classL)
		}
	}
	if c&classN != 0 {
		return numbers(s, i)
	}
	if r == ' ' && j < len(s) {
		if _, c2, n2 := at(s, j); other(c2) {
			return scanBytes(s, scanOther(s, j+n2), "\r\n")
		}
	}
	if other(c) {
		return scanBytes(s, scanOther(s, j), "\r\n")
	}
	return whitespace(s, i, true)
}

// upperLower returns the end of [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+
// at s[i] with the backtracking of a greedy star, or -1 if it does not
// match: the upper run is taken whole if a lower rune follows it (then the
// lower run is taken whole); otherwise the star backs off to the last rune
// of the upper run that is also lower, which alone makes the lower part.
func upperLower(s string, i int) int {
	afterLastLower := -1
	for i < len(s) {
		_, c, n := at(s, i)
		if c&classU == 0 {
			if c&classW != 0 {
				return scan(s, i+n, classW)
			}
			break
		}
		if c&classW != 0 {
			afterLastLower = i + n
		}
		i += n
	}
	return afterLastLower
}

// nextO200K returns the end of the piece at s[i] for o200k_base:
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
func nextO200K(s string, i int) int {
	r, c, n := at(s, i)
	j := i + n
	prefix := prefixable(r, c)
	// First alternative: with the optional prefix taken, then without.
	if prefix {
		if e := upperLower(s, j); e >= 0 {
			return e + contraction(s, e, true)
		}
	}
	if e := upperLower(s, i); e >= 0 {
		return e + contraction(s, e, true)
	}
	// Second alternative: an upper run must start after the prefix.
	if prefix && j < len(s) {
		if _, c2, n2 := at(s, j); c2&classU != 0 {
			e := scan(s, scan(s, j+n2, classU), classW)
			return e + contraction(s, e, true)
		}
	}
	if c&classU != 0 {
		e := scan(s, scan(s, j, classU), classW)
		return e + contraction(s, e, true)
	}
	if c&classN != 0 {
		return numbers(s, i)
	}
	if r == ' ' && j < len(s) {
		if _, c2, n2 := at(s, j); other(c2) {
			return scanBytes(s, scanOther(s, j+n2), "\r\n/")
		}
	}
	if other(c) {
		return scanBytes(s, scanOther(s, j), "\r\n/")
	}
	return whitespace(s, i, true)
}

// nextGPT2 returns the end of the piece at s[i] for r50k_base and
// p50k_base:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func nextGPT2(s string, i int) int {
	r, c, n := at(s, i)
	j := i + n
	if r == '\'' {
		if k := contraction(s, i, false); k > 0 {
			return i + k
		}
	}
	if r == ' ' && j < len(s) {
		_, c, n = at(s, j)
		j += n
	}
	switch {
	case c&classL != 0:
		return scan(s, j, classL)
	case c&classN != 0:
		return scan(s, j, classN)
	case other(c):
		return scanOther(s, j)
	}
	return whitespace(s, i, false)
}
