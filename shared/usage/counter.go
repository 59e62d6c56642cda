// Package usage counts model tokens: it reads the usage an upstream reports
// (JSON bodies and SSE streams, chat completions, completions, embeddings
// and the Responses API) and, when there is none (aborted streams, upstreams
// that omit it), estimates it with the BPE encodings of shared/tokenizer,
// which count exactly as tiktoken does.
//
// The BPE files are embedded: nothing is downloaded at run time. Each
// encoding is built once per process, on first use or by Warm, which
// callers run in the background so readiness never waits for it.
package usage

import (
	"strings"

	"github.com/llm-proxy/llm-proxy/shared/tokenizer"
)

// Encodings built by Warm: every current OpenAI model uses one of them.
const (
	O200KBase  = tokenizer.O200KBase
	CL100KBase = tokenizer.CL100KBase
)

// maxCountBytes bounds the text encoded exactly; beyond it the count is
// extrapolated, so a huge body cannot make the estimate expensive.
const maxCountBytes = 256 << 10

// Counter counts tokens with the encodings of shared/tokenizer, which are
// built once per process and shared by all Counters. It is safe for
// concurrent use.
type Counter struct{}

// NewCounter returns a Counter. It builds nothing yet.
func NewCounter() *Counter {
	return &Counter{}
}

// Warm builds the o200k_base and cl100k_base encodings (some tens of
// milliseconds of CPU). Run it in a goroutine at start; counting before it
// finishes simply waits for the encoding it needs.
func (c *Counter) Warm() {
	for _, e := range []string{O200KBase, CL100KBase} {
		_, _ = tokenizer.Get(e)
	}
}

// legacyEncodings are tiktoken's encodings of models older than gpt-3.5
// (tiktoken-go's MODEL_TO_ENCODING less what EncodingFor's prefixes cover).
var legacyEncodings = map[string]string{
	"text-davinci-003":             tokenizer.P50KBase,
	"text-davinci-002":             tokenizer.P50KBase,
	"text-davinci-001":             tokenizer.R50KBase,
	"text-curie-001":               tokenizer.R50KBase,
	"text-babbage-001":             tokenizer.R50KBase,
	"text-ada-001":                 tokenizer.R50KBase,
	"davinci":                      tokenizer.R50KBase,
	"curie":                        tokenizer.R50KBase,
	"babbage":                      tokenizer.R50KBase,
	"ada":                          tokenizer.R50KBase,
	"code-davinci-002":             tokenizer.P50KBase,
	"code-davinci-001":             tokenizer.P50KBase,
	"code-cushman-002":             tokenizer.P50KBase,
	"code-cushman-001":             tokenizer.P50KBase,
	"davinci-codex":                tokenizer.P50KBase,
	"cushman-codex":                tokenizer.P50KBase,
	"text-davinci-edit-001":        tokenizer.P50KEdit,
	"code-davinci-edit-001":        tokenizer.P50KEdit,
	"text-similarity-davinci-001":  tokenizer.R50KBase,
	"text-similarity-curie-001":    tokenizer.R50KBase,
	"text-similarity-babbage-001":  tokenizer.R50KBase,
	"text-similarity-ada-001":      tokenizer.R50KBase,
	"text-search-davinci-doc-001":  tokenizer.R50KBase,
	"text-search-curie-doc-001":    tokenizer.R50KBase,
	"text-search-babbage-doc-001":  tokenizer.R50KBase,
	"text-search-ada-doc-001":      tokenizer.R50KBase,
	"code-search-babbage-code-001": tokenizer.R50KBase,
	"code-search-ada-code-001":     tokenizer.R50KBase,
}

// EncodingFor returns the encoding name of a model: o200k_base for the
// gpt-4o / 4.1 / 4.5 / 5 and o-series families (and unknown models, which are
// most likely new), cl100k_base for gpt-4, gpt-3.5 and the embeddings models,
// tiktoken's table for legacy models.
func EncodingFor(model string) string {
	m := strings.ToLower(model)
	if i := strings.LastIndexByte(m, '/'); i >= 0 { // "openai/gpt-4o" style names
		m = m[i+1:]
	}
	switch {
	case strings.HasPrefix(m, "gpt-4o"), strings.HasPrefix(m, "gpt-4.1"), strings.HasPrefix(m, "gpt-4.5"),
		strings.HasPrefix(m, "gpt-5"), strings.HasPrefix(m, "chatgpt-"), strings.HasPrefix(m, "omni-"),
		strings.HasPrefix(m, "gpt-oss"), strings.HasPrefix(m, "gpt-image"), strings.HasPrefix(m, "gpt-realtime"),
		len(m) >= 2 && m[0] == 'o' && m[1] >= '1' && m[1] <= '9':
		return O200KBase
	case strings.HasPrefix(m, "gpt-4"), strings.HasPrefix(m, "gpt-3.5"), strings.HasPrefix(m, "text-embedding-"):
		return CL100KBase
	}
	if e, ok := legacyEncodings[m]; ok {
		return e
	}
	return O200KBase
}

// Count returns the number of tokens of text under model's encoding. Text
// longer than 256 KiB is counted on its first 256 KiB and extrapolated. If
// the encoding cannot be built, it falls back to one token per four bytes.
func (c *Counter) Count(model, text string) int64 {
	if text == "" {
		return 0
	}
	enc, err := tokenizer.Get(EncodingFor(model))
	if err != nil {
		return int64((len(text) + 3) / 4)
	}
	if len(text) <= maxCountBytes {
		return int64(enc.Count(text))
	}
	head := text[:maxCountBytes]
	for len(head) > 0 && !utf8Start(head[len(head)-1]) { // do not split a rune
		head = head[:len(head)-1]
	}
	n := enc.Count(head)
	return int64(float64(n) * float64(len(text)) / float64(max(len(head), 1)))
}

func utf8Start(b byte) bool { return b < 0x80 }
