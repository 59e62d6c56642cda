package tokenizer

import (
	"runtime"
	"strings"
	"testing"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// chatPrompt is a realistic ~1 KB chat prompt: English with punctuation and
// a little code.
const chatPrompt = `You are a senior Go engineer reviewing a pull request. Be concise, point out bugs first, then style.

The author wrote: "I've refactored the retry loop so it won't spin when the context's cancelled; could you check it's correct?"

Here's the diff:

` + "```go" + `
func retry(ctx context.Context, attempts int, fn func() error) error {
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("retry: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(time.Duration(1<<i) * 100 * time.Millisecond):
		}
	}
	return err
}
` + "```" + `

Questions: (1) Does the backoff overflow for attempts > 62? (2) Should we add jitter, e.g. ±20%? (3) Is time.After leaking timers in Go 1.22+?
Please answer in bullet points; keep it under 200 words. Thanks!`

// mixedText is ~10 KB of mixed-language text: English, code, Chinese,
// Japanese, Russian, Arabic, Hindi, emoji and numbers.
var mixedText = func() string {
	parts := []string{
		"The quick brown fox jumps over the lazy dog; it's 42°C in the shade, isn't it?\n",
		"今天天气很好，我们去公园散步吧。自然语言处理是人工智能的一个重要分支。\n",
		"東京は日本の首都です。カタカナとひらがなを混ぜて書きます。\n",
		"Съешь же ещё этих мягких французских булок, да выпей чаю. Москва — столица России.\n",
		"مرحبا بالعالم! اللغة العربية جميلة جداً، وهي من أقدم اللغات.\n",
		"नमस्ते दुनिया! हिन्दी भाषा में लिखा गया यह वाक्य परीक्षण के लिए है।\n",
		"if err := json.Unmarshal(data, &v); err != nil {\n\treturn fmt.Errorf(\"decode: %w\", err)\n}\n",
		"Emoji test 😀👍🏽🚀 and a family 👨‍👩‍👧‍👦 — done!  Total: 1,234,567.89 USD (±3%).\r\n",
	}
	var b strings.Builder
	for i := 0; b.Len() < 10<<10; i++ {
		b.WriteString(parts[i%len(parts)])
	}
	return b.String()
}()

func BenchmarkCount(b *testing.B) {
	texts := []struct{ name, text string }{{"chat-1KB", chatPrompt}, {"mixed-10KB", mixedText}}
	for _, name := range []string{O200KBase, CL100KBase} {
		for _, tx := range texts {
			b.Run(name+"/"+tx.name+"/tokenizer", func(b *testing.B) {
				e := mustGet(b, name)
				b.SetBytes(int64(len(tx.text)))
				b.ReportAllocs()
				for b.Loop() {
					e.Count(tx.text)
				}
			})
			b.Run(name+"/"+tx.name+"/tiktoken-go", func(b *testing.B) {
				tk := oracle(b, name)
				b.SetBytes(int64(len(tx.text)))
				b.ReportAllocs()
				for b.Loop() {
					_ = len(tk.EncodeOrdinary(tx.text))
				}
			})
		}
	}
}

// BenchmarkLoad builds each encoding from the embedded file (ns/op, the
// GCs around it excluded) and reports the heap it keeps (MiB after a GC),
// for this package and for tiktoken-go (its ranks map and CoreBPE, as
// GetEncoding keeps them). Run with -benchtime=3x.
func BenchmarkLoad(b *testing.B) {
	measure := func(b *testing.B, build func() any) {
		var kept uint64
		for b.Loop() {
			var before, after runtime.MemStats
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.StartTimer()
			v := build()
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(v)
			kept = after.HeapAlloc - before.HeapAlloc
			b.StartTimer()
		}
		b.ReportMetric(float64(kept)/(1<<20), "heap-MiB")
	}
	patterns := map[string]string{ // tiktoken-go's, from encoding.go
		O200KBase: strings.Join([]string{
			`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
			`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
			`\p{N}{1,3}`, ` ?[^\s\p{L}\p{N}]+[\r\n/]*`, `\s*[\r\n]+`, `\s+(?!\S)`, `\s+`,
		}, "|"),
		CL100KBase: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	}
	buildClasses() // once per process, not part of an encoding's cost
	for _, name := range []string{O200KBase, CL100KBase} {
		b.Run(name+"/tokenizer", func(b *testing.B) {
			measure(b, func() any {
				e, err := load(name)
				if err != nil {
					b.Fatal(err)
				}
				return e
			})
		})
		b.Run(name+"/tiktoken-go", func(b *testing.B) {
			loader := tiktoken_loader.NewOfflineLoader()
			measure(b, func() any {
				ranks, err := loader.LoadTiktokenBpe(name + ".tiktoken")
				if err != nil {
					b.Fatal(err)
				}
				bpe, err := tiktoken.NewCoreBPE(ranks, nil, patterns[name])
				if err != nil {
					b.Fatal(err)
				}
				return bpe
			})
		})
	}
}
