// Package tokenizer counts the tokens of OpenAI's BPE encodings (o200k_base,
// cl100k_base and the legacy p50k_base, p50k_edit and r50k_base) exactly as
// github.com/pkoukk/tiktoken-go's EncodeOrdinary does, without a regexp
// engine and without allocating per call.
//
// The ranks come from the BPE files embedded in tiktoken-go-loader: nothing
// is downloaded at run time. Each encoding is built once, on first Get, and
// shared; building o200k_base takes some tens of milliseconds of CPU.
//
// The pre-tokenizer patterns of the encodings are implemented by hand with
// the semantics of the backtracking engine tiktoken-go uses
// (github.com/dlclark/regexp2): leftmost-first alternation, \s as
// unicode.IsSpace, \p{...} classes from Go's unicode tables, and invalid
// UTF-8 bytes read as U+FFFD (tiktoken-go matches on []rune(text) and
// encodes the pieces re-encoded from those runes, so an invalid byte costs
// the tokens of "\uFFFD").
package tokenizer

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// Encoding names.
const (
	O200KBase  = "o200k_base"
	CL100KBase = "cl100k_base"
	P50KBase   = "p50k_base"
	P50KEdit   = "p50k_edit"
	R50KBase   = "r50k_base"
)

// Encoding is one BPE encoding: its ranks and its pre-tokenizer. It is
// immutable and safe for concurrent use.
type Encoding struct {
	name  string
	ranks *rankTable // token bytes → rank (= token id)
	next  func(s string, i int) int
}

// spec says where an encoding's ranks are and how it splits text.
type spec struct {
	file string
	next func(s string, i int) int
}

var specs = map[string]spec{
	O200KBase:  {"o200k_base.tiktoken", nextO200K},
	CL100KBase: {"cl100k_base.tiktoken", nextCL100K},
	P50KBase:   {"p50k_base.tiktoken", nextGPT2},
	P50KEdit:   {"p50k_base.tiktoken", nextGPT2},
	R50KBase:   {"r50k_base.tiktoken", nextGPT2},
}

type built struct {
	once sync.Once
	enc  *Encoding
	err  error
}

// encodings holds one lazily built Encoding per name; the map itself is
// never written after init.
var encodings = func() map[string]*built {
	m := make(map[string]*built, len(specs))
	for name := range specs {
		m[name] = &built{}
	}
	return m
}()

// Get returns the named encoding, building it on first use. Concurrent
// callers wait for the same build.
func Get(name string) (*Encoding, error) {
	b, ok := encodings[name]
	if !ok {
		return nil, fmt.Errorf("tokenizer: unknown encoding %q", name)
	}
	b.once.Do(func() { b.enc, b.err = load(name) })
	return b.enc, b.err
}

// load builds an encoding from its embedded BPE file (not cached).
func load(name string) (*Encoding, error) {
	sp, ok := specs[name]
	if !ok {
		return nil, fmt.Errorf("tokenizer: unknown encoding %q", name)
	}
	buildClasses()
	data, err := assets.Assets.ReadFile(sp.file)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: read %s: %w", sp.file, err)
	}
	ranks, err := parseRanks(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: parse %s: %w", sp.file, err)
	}
	for b := 0; b < 256; b++ { // every single byte must be a token for BPE to terminate
		if _, ok := ranks.get(string([]byte{byte(b)})); !ok {
			return nil, fmt.Errorf("tokenizer: %s has no token for byte %#x", sp.file, b)
		}
	}
	return &Encoding{name: name, ranks: ranks, next: sp.next}, nil
}

// parseRanks reads "base64(token) rank" lines. All token bytes are decoded
// into one string that the table indexes: one allocation instead of one per
// token, and nothing for the garbage collector to trace.
func parseRanks(data []byte) (*rankTable, error) {
	lines := bytes.Count(data, []byte{'\n'}) + 1
	blob := make([]byte, 0, len(data)*3/4)
	entries := make([]rankEntry, 0, lines)
	for lineNo := 1; len(data) > 0; lineNo++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		tok, num, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			return nil, fmt.Errorf("line %d: no rank", lineNo)
		}
		rank, err := strconv.ParseUint(string(num), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("line %d: rank: %w", lineNo, err)
		}
		off := len(blob)
		blob = slices.Grow(blob, base64.StdEncoding.DecodedLen(len(tok)))
		blob = blob[:off+base64.StdEncoding.DecodedLen(len(tok))]
		n, err := base64.StdEncoding.Decode(blob[off:], tok)
		if err != nil {
			return nil, fmt.Errorf("line %d: token: %w", lineNo, err)
		}
		blob = blob[:off+n]
		if n > 0xffff {
			return nil, fmt.Errorf("line %d: token of %d bytes", lineNo, n)
		}
		entries = append(entries, rankEntry{off, off + n, uint32(rank)})
	}
	return newRankTable(string(blob), entries), nil
}

// Name returns the encoding's name.
func (e *Encoding) Name() string { return e.name }

// Count returns the number of tokens of text (special tokens are not
// recognised: "<|endoftext|>" is ordinary text, as with EncodeOrdinary).
// It does not allocate unless text holds invalid UTF-8 or a piece longer
// than a few hundred bytes.
func (e *Encoding) Count(text string) int {
	text = sanitize(text)
	n := 0
	for i := 0; i < len(text); {
		j := e.next(text, i)
		n += e.countPiece(text[i:j])
		i = j
	}
	return n
}

// Encode returns the token ids of text, as tiktoken-go's EncodeOrdinary.
func (e *Encoding) Encode(text string) []int {
	text = sanitize(text)
	var ids []int
	for i := 0; i < len(text); {
		j := e.next(text, i)
		ids = e.encodePiece(text[i:j], ids)
		i = j
	}
	return ids
}

// sanitize replaces every invalid UTF-8 byte by U+FFFD, as []rune(text)
// followed by string(runes) does (one U+FFFD per byte, unlike
// strings.ToValidUTF8, which replaces a run of them by one).
func sanitize(text string) string {
	if utf8.ValidString(text) {
		return text
	}
	out := make([]byte, 0, len(text)+8)
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		if r == utf8.RuneError && n == 1 {
			out = append(out, "\uFFFD"...)
		} else {
			out = append(out, text[i:i+n]...)
		}
		i += n
	}
	return string(out)
}
