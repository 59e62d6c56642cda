// Package usage counts model tokens: it reads the usage an upstream reports
// (JSON bodies and SSE streams, chat completions, completions, embeddings
// and the Responses API) and, when there is none (aborted streams, upstreams
// that omit it), estimates it with tiktoken-go.
//
// The BPE files are embedded (tiktoken-go-loader): nothing is downloaded at
// run time. Each encoding is built once per Counter, on first use or by Warm,
// which callers run in the background so readiness never waits for it.
package usage

import (
	"strings"
	"sync"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// Encodings built by Warm: every current OpenAI model uses one of them.
const (
	O200KBase  = "o200k_base"
	CL100KBase = "cl100k_base"
)

// maxCountBytes bounds the text encoded exactly; beyond it the count is
// extrapolated, so a huge body cannot make the estimate expensive.
const maxCountBytes = 256 << 10

// setLoader installs the offline loader before any encoding is built.
// tiktoken keeps its loader in a package variable, so this is process-wide.
var setLoader sync.Once

// Counter counts tokens with tiktoken encoders built once per encoding.
// It is safe for concurrent use.
type Counter struct {
	mu   sync.Mutex
	encs map[string]*encoder
}

type encoder struct {
	once sync.Once
	tk   *tiktoken.Tiktoken
	err  error
}

// NewCounter returns a Counter. It builds nothing yet.
func NewCounter() *Counter {
	return &Counter{encs: map[string]*encoder{}}
}

// Warm builds the o200k_base and cl100k_base encoders (about a second of
// CPU). Run it in a goroutine at start; counting before it finishes simply
// waits for the encoder it needs.
func (c *Counter) Warm() {
	for _, e := range []string{O200KBase, CL100KBase} {
		_, _ = c.encoder(e)
	}
}

func (c *Counter) encoder(name string) (*tiktoken.Tiktoken, error) {
	c.mu.Lock()
	e := c.encs[name]
	if e == nil {
		e = &encoder{}
		c.encs[name] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		setLoader.Do(func() { tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader()) })
		e.tk, e.err = tiktoken.GetEncoding(name)
	})
	return e.tk, e.err
}

// EncodingFor returns the encoding name of a model: o200k_base for the
// gpt-4o / 4.1 / 4.5 / 5 and o-series families (and unknown models, which are
// most likely new), cl100k_base for gpt-4, gpt-3.5 and the embeddings models,
// tiktoken's own table for legacy models.
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
	if e, ok := tiktoken.MODEL_TO_ENCODING[m]; ok && e != "gpt2" {
		return e
	}
	return O200KBase
}

// Count returns the number of tokens of text under model's encoding. Text
// longer than 256 KiB is counted on its first 256 KiB and extrapolated. If
// the encoder cannot be built, it falls back to one token per four bytes.
func (c *Counter) Count(model, text string) int64 {
	if text == "" {
		return 0
	}
	tk, err := c.encoder(EncodingFor(model))
	if err != nil {
		return int64((len(text) + 3) / 4)
	}
	if len(text) <= maxCountBytes {
		return int64(len(tk.EncodeOrdinary(text)))
	}
	head := text[:maxCountBytes]
	for len(head) > 0 && !utf8Start(head[len(head)-1]) { // do not split a rune
		head = head[:len(head)-1]
	}
	n := len(tk.EncodeOrdinary(head))
	return int64(float64(n) * float64(len(text)) / float64(max(len(head), 1)))
}

func utf8Start(b byte) bool { return b < 0x80 }
