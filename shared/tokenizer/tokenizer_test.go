package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/dlclark/regexp2"
	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// allEncodings are the encodings checked against tiktoken-go (p50k_edit
// shares p50k_base's ranks and pattern).
var allEncodings = []string{O200KBase, CL100KBase, P50KBase, R50KBase}

var setOracleLoader sync.Once

// oracle returns tiktoken-go's encoder for name, built offline.
func oracle(t testing.TB, name string) *tiktoken.Tiktoken {
	t.Helper()
	setOracleLoader.Do(func() { tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader()) })
	tk, err := oracles(name)
	if err != nil {
		t.Fatalf("tiktoken-go %s: %v", name, err)
	}
	return tk
}

var oracleCache sync.Map // name → *tiktoken.Tiktoken

func oracles(name string) (*tiktoken.Tiktoken, error) {
	if tk, ok := oracleCache.Load(name); ok {
		return tk.(*tiktoken.Tiktoken), nil
	}
	tk, err := tiktoken.GetEncoding(name)
	if err != nil {
		return nil, err
	}
	oracleCache.Store(name, tk)
	return tk, nil
}

func mustGet(t testing.TB, name string) *Encoding {
	t.Helper()
	e, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// checkSame asserts that Encode and Count agree with tiktoken-go's
// EncodeOrdinary on text, printing the input and both outputs if not.
func checkSame(t *testing.T, e *Encoding, tk *tiktoken.Tiktoken, text string) bool {
	t.Helper()
	want := tk.EncodeOrdinary(text)
	got := e.Encode(text)
	if !slices.Equal(got, want) {
		t.Errorf("%s: Encode(%+q)\n got %v\nwant %v (tiktoken-go)\n got pieces %q\nwant pieces %q",
			e.Name(), text, got, want, decodeAll(tk, got), decodeAll(tk, want))
		return false
	}
	if n := e.Count(text); n != len(want) {
		t.Errorf("%s: Count(%+q) = %d, tiktoken-go %d tokens %v", e.Name(), text, n, len(want), want)
		return false
	}
	return true
}

func decodeAll(tk *tiktoken.Tiktoken, ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tk.Decode([]int{id})
	}
	return out
}

// trickyCases exercise every alternative of the patterns and the places
// where a hand-written matcher could diverge from regexp2.
var trickyCases = []string{
	"",
	"hello world",
	"tiktoken is great!",
	// Contractions, in every case, and near misses.
	"don't I'll we've they're she'd I'm it's",
	"DON'T I'LL WE'VE THEY'RE SHE'D I'M IT'S",
	"Don'T i'Ll we'Ve They'rE",
	"'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D",
	"'", "''", "'''s", " '", "' ", "'x", "'r", "'rx", "'l", "'lx", "'v", "x'", "a'b", "'sam", "'Sam", "'ſ", "'K",
	"rock'n'roll", "O'Neil's", "L'AMOUR'S", "ÉCOLE'S", "Ǆ'll", "ǅungla's",
	// Numbers: runs of 1 to 7, mixed scripts of digits, other numbers.
	"1", "12", "123", "1234", "12345", "123456", "1234567", "a1234567b", " 1234567 ",
	"٣٤٥٦٧", "१२३४५", "²³¹", "Ⅻ", "½¾", "3.14159", "1,000,000", "$100", "x=1+2*3",
	// Whitespace.
	"a  b", "a   b", "a\tb", "a\t\tb", "a \tb", "a\t b", "trailing  ", "trailing \t", " ", "  ", "\t",
	"  leading", "\n", "\r\n", "\r\n\r\n", "a\r\nb", "a\n\nb", "a \n b", "a \n\n  b", "a\n \n b", " \n", "\n ",
	"x  \n  ", "line1\r\n\tline2\r\n", "a\u00a0b", "a\u00a0\u00a0b", "a \u00a0b", "a\u2028b", "a\u2029b",
	"a\u3000b", "a\u3000\u3000b", "a\u0085b", "a\u1680b", "a\u200bb", "a\u202fb", "a\u205fb", "a\v\fb",
	"\u00a0hello", "\u3000hello", "\u2028hello", " \u00a0 x", "\u00a0\u00a0", "end\u3000",
	// Punctuation, slashes (o200k), newlines after punctuation.
	"Hello, world!", "...", "!!!\n\n", "?!\r\n", "a/b", "a//b", " //comment", "http://example.com/a/b?c=d",
	"!/", "!//\n/", ".\n/", " ./\n", "//", "/", "/\n", "a.\r\n/b", ")/(/", "**/", "</div>/",
	"func main() {\n\tfmt.Println(\"hi\")\n}\n",
	"if (x != nil) { return err; }",
	"<|endoftext|> is not special here",
	// Letters of every kind.
	"HELLO world", "HelloWorld", "helloWORLD", "iPhone", "McDonald's", "ABCdef", "ÀÉÎõü",
	"Straße", "ǅ", "ǅx", "ǅX", "xǅ", "ʰʱʲ", "aʰb", "Aʰ", "ʰA", "ʰa",
	// Mixed scripts.
	"你好，世界！", "我爱自然语言处理。", "日本語のテキスト", "カタカナ", "한국어 텍스트",
	"مرحبا بالعالم", "السَّلَامُ عَلَيْكُمْ", "नमस्ते दुनिया", "हिन्दी", "क्षत्रिय", "Привет, мир!", "Ελληνικά",
	"שלום עולם", "ภาษาไทย", "Tiếng Việt có dấu",
	// Combining marks alone, after spaces, after punctuation, before letters.
	"\u0301", " \u0301", "e\u0301", "E\u0301", "\u0301e", "\u0301E", "!\u0301", "\u0301\u0301a", "a \u0301\u0301b",
	"\u0301A'S", "A\u0301'S", "\u20dd", "1\u0301", "\u0301 1", "'\u0301", "\u0301's",
	// Emoji, ZWJ sequences, flags, skin tones, variation selectors.
	"😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇩🇪", "❤️", "I ❤️ Go 🚀!", "a😀b", " 😀 ", "😀😀😀", "🧑🏿‍💻 done",
	// Invalid UTF-8 and lone surrogates as bytes.
	"\xff", "\xfe\xff", "a\xffb", "hello\x80world", " \xff", "\xff ", "\xc3", "\xc3(", "\xe2\x82", "\xe2\x82(",
	"\xed\xa0\x80", "\xed\xbf\xbf", "x\xed\xa0\x80y", "\xf4\x90\x80\x80", "\xc0\xaf", "'\xff", "1\xff2",
	"\uFFFD", "a\uFFFDb", "\x00", "a\x00b", "\x01\x02\x7f",
	// Runs long enough for the heap merge.
	strings.Repeat("a", 10000),
	strings.Repeat("ab", 300),
	strings.Repeat("-", 200),
	strings.Repeat(" ", 300) + "x",
	strings.Repeat("\n", 150),
	strings.Repeat("😀", 100),
	strings.Repeat("супер", 60),
	strings.Repeat("x", 129), strings.Repeat("x", 128), strings.Repeat("x", 127),
	strings.Repeat("\u0301", 200),
	strings.Repeat("9", 100),
	"Supercalifragilisticexpialidocious" + strings.Repeat("Pneumonoultramicroscopicsilicovolcanoconiosis", 5),
	strings.Repeat("\xff", 70),
}

func TestMatchesTiktokenOnTrickyCases(t *testing.T) {
	for _, name := range allEncodings {
		t.Run(name, func(t *testing.T) {
			e, tk := mustGet(t, name), oracle(t, name)
			for _, text := range trickyCases {
				checkSame(t, e, tk, text)
			}
		})
	}
}

// randomAlphabet is a weighted alphabet of the characters that matter to
// the patterns; weights favour ASCII as real text does.
var randomAlphabet = func() []string {
	groups := []struct {
		weight int
		chars  string
	}{
		{30, "abcdefghijklmnopqrstuvwxyz"},
		{8, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
		{12, "          "},
		{6, "0123456789"},
		{8, ".,;:!?-_()[]{}<>\"`/\\*&^%$#@~|+="},
		{6, "'''sStTdDmMlLrReEvV"},
		{4, "\n\r\t"},
		{2, "\u00a0\u2028\u3000\u0085\u2009\v\f"},
		{3, "你好世界日本語カタカナ한국"},
		{2, "مرحبابالعالم\u064e\u0650"},
		{2, "नमस्तेक्षहिन्दी"},
		{2, "éÉßǅʰªºПриветΩ"},
		{2, "\u0301\u0308\u20dd\u200d\ufe0f"},
		{2, "😀👍🏽🚀❤🇫🇷"},
		{1, "٣१²½Ⅻ"},
		{1, "\uFFFD"},
	}
	var out []string
	for _, g := range groups {
		runes := []rune(g.chars)
		for i := 0; i < g.weight; i++ {
			for _, r := range runes {
				out = append(out, string(r))
			}
		}
	}
	// Invalid bytes and byte-encoded surrogates, as raw strings.
	for _, b := range []string{"\xff", "\x80", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf0\x9f"} {
		for i := 0; i < 5; i++ {
			out = append(out, b)
		}
	}
	return out
}()

func randomText(rng *rand.Rand) string {
	var b strings.Builder
	n := 1 + rng.IntN(40)
	if rng.IntN(20) == 0 {
		n = 200 + rng.IntN(400) // sometimes long enough for long pieces
	}
	for i := 0; i < n; i++ {
		b.WriteString(randomAlphabet[rng.IntN(len(randomAlphabet))])
	}
	return b.String()
}

func TestMatchesTiktokenOnRandomText(t *testing.T) {
	const texts = 3000
	for _, name := range allEncodings {
		t.Run(name, func(t *testing.T) {
			e, tk := mustGet(t, name), oracle(t, name)
			rng := rand.New(rand.NewPCG(2024, uint64(len(name))))
			failures := 0
			for i := 0; i < texts && failures < 10; i++ {
				if !checkSame(t, e, tk, randomText(rng)) {
					failures++
				}
			}
		})
	}
}

// TestMatchesTiktokenOnRealText checks a realistic prompt and the mixed
// language text of the benchmarks, whole.
func TestMatchesTiktokenOnRealText(t *testing.T) {
	for _, name := range allEncodings {
		e, tk := mustGet(t, name), oracle(t, name)
		checkSame(t, e, tk, chatPrompt)
		checkSame(t, e, tk, mixedText)
	}
}

func FuzzCountMatchesTiktoken(f *testing.F) {
	for _, s := range trickyCases {
		if len(s) <= 1000 {
			f.Add(s)
		}
	}
	f.Add(chatPrompt)
	f.Fuzz(func(t *testing.T, text string) {
		// The oracle is slow (regexp2, quadratic merge) and the fuzzer's
		// minimizer tries O(n²) candidates: keep inputs short, and run with
		// -fuzzminimizetime=5s. Long pieces are covered by trickyCases and
		// the random texts.
		if len(text) > 1<<10 {
			return
		}
		for _, name := range allEncodings {
			checkSame(t, mustGet(t, name), oracle(t, name), text)
		}
	})
}

// TestKnownCounts pins counts published by OpenAI's tiktoken.
func TestKnownCounts(t *testing.T) {
	tests := []struct {
		enc, text string
		want      int
	}{
		{O200KBase, "hello world", 2},
		{CL100KBase, "hello world", 2},
		{CL100KBase, "tiktoken is great!", 6},
	}
	for _, tt := range tests {
		if got := mustGet(t, tt.enc).Count(tt.text); got != tt.want {
			t.Errorf("%s Count(%q) = %d, want %d", tt.enc, tt.text, got, tt.want)
		}
	}
}

func TestGet(t *testing.T) {
	if _, err := Get("gpt2"); err == nil {
		t.Error("Get(gpt2) did not fail")
	}
	a, b := mustGet(t, O200KBase), mustGet(t, O200KBase)
	if a != b {
		t.Error("Get built o200k_base twice")
	}
	if a.Name() != O200KBase {
		t.Errorf("Name() = %q", a.Name())
	}
	edit, base := mustGet(t, P50KEdit), mustGet(t, P50KBase)
	if edit.Count(mixedText) != base.Count(mixedText) {
		t.Error("p50k_edit and p50k_base count differently")
	}
	var wg sync.WaitGroup
	counts := make([]int, 8)
	for i := range counts {
		wg.Go(func() { counts[i] = mustGet(t, CL100KBase).Count(chatPrompt) })
	}
	wg.Wait()
	for _, n := range counts[1:] {
		if n != counts[0] || n == 0 {
			t.Fatalf("concurrent counts differ: %v", counts)
		}
	}
}

func TestCountDoesNotAllocate(t *testing.T) {
	for _, name := range []string{O200KBase, CL100KBase} {
		e := mustGet(t, name)
		for _, text := range []string{chatPrompt, mixedText} {
			if allocs := testing.AllocsPerRun(20, func() { e.Count(text) }); allocs != 0 {
				t.Errorf("%s: Count allocates %v times", name, allocs)
			}
		}
	}
}

// TestClassesMatchRegexp2 checks the character classes against regexp2
// itself, the engine tiktoken-go matches with, on every rune of the BMP and
// on the supplementary planes' assigned blocks of interest.
func TestClassesMatchRegexp2(t *testing.T) {
	buildClasses()
	classes := []struct {
		bit     uint8
		pattern string
	}{
		{classL, `\p{L}`},
		{classN, `\p{N}`},
		{classS, `\s`},
		{classU, `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`},
		{classW, `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`},
	}
	var res []*regexp2.Regexp
	for _, c := range classes {
		res = append(res, regexp2.MustCompile(`^`+c.pattern+`$`, regexp2.None))
	}
	check := func(r rune) {
		if unicode.Is(unicode.Cs, r) {
			return // surrogates never reach the matcher: they decode as U+FFFD
		}
		s := string(r)
		_, got, _ := at(s, 0)
		for i, c := range classes {
			in, err := res[i].MatchString(s)
			if err != nil {
				t.Fatal(err)
			}
			if in != (got&c.bit != 0) {
				t.Errorf("%U: in %s = %v by regexp2, %v here", r, c.pattern, in, !in)
			}
		}
	}
	for r := rune(0); r < 0x10000; r++ {
		check(r)
	}
	for r := rune(0x10000); r <= unicode.MaxRune; r += 97 {
		check(r)
	}
	for r := rune(0x1F000); r < 0x1FB00; r++ { // emoji and symbols
		check(r)
	}
}

// TestContractionFolding pins the assumption behind contraction's ASCII
// case folding: regexp2 lowercases input runes with unicode.ToLower, and no
// non-ASCII rune lowercases to a letter of the contractions.
func TestContractionFolding(t *testing.T) {
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if l := unicode.ToLower(r); strings.ContainsRune("'strvemld", l) {
			t.Errorf("%U lowercases to %q", r, l)
		}
	}
}

func TestHeapMergeMatchesSmallMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, name := range []string{O200KBase, CL100KBase} {
		e := mustGet(t, name)
		for i := 0; i < 300; i++ {
			b := make([]byte, 2+rng.IntN(smallPiece-1))
			for k := range b {
				const alphabet = "aeiou rstln.-\xc3\xa9"
				b[k] = alphabet[rng.IntN(len(alphabet))]
			}
			p := string(b)
			var buf [smallPiece + 1]part
			parts := e.mergeSmall(p, buf[:len(p)+1])
			var small []int
			for k := 0; k+1 < len(parts); k++ {
				small = append(small, int(e.ranks.rank(p[parts[k].start:parts[k+1].start])))
			}
			var large []int
			if n := e.mergeLarge(p, &large); n != len(large) || !slices.Equal(small, large) {
				t.Fatalf("%s %q: small merge %v, heap merge %v (count %d)", name, p, small, large, n)
			}
		}
	}
}

func ExampleEncoding_Count() {
	enc, err := Get(O200KBase)
	if err != nil {
		panic(err)
	}
	fmt.Println(enc.Count("hello world"))
	// Output: 2
}

// The rank table must hold every line of the BPE file, as a map would:
// same size, same rank for every token, nothing for absent tokens.
func TestRankTableMatchesTheFile(t *testing.T) {
	for _, name := range []string{O200KBase, CL100KBase} {
		e, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(name + ".tiktoken")
		if err != nil {
			t.Fatal(err)
		}
		if got := e.ranks.len(); got != len(want) {
			t.Fatalf("%s: %d tokens in the table, %d in the file", name, got, len(want))
		}
		for tok, rank := range want {
			if r, ok := e.ranks.get(tok); !ok || int(r) != rank {
				t.Fatalf("%s: token %q has rank %d (%v), want %d", name, tok, r, ok, rank)
			}
		}
		for _, absent := range []string{"", "this is surely not one token at all", string(make([]byte, 70000))} {
			if r, ok := e.ranks.get(absent); ok {
				t.Fatalf("%s: %q found with rank %d", name, absent, r)
			}
		}
	}
}
