package tokens

import (
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

func mustGenerate(t testing.TB) string {
	t.Helper()
	tok, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	counts := map[byte]int{}
	for range 2000 {
		tok := mustGenerate(t)
		if len(tok) != Length || !strings.HasPrefix(tok, Prefix) {
			t.Fatalf("token %q: wrong shape", tok)
		}
		if err := CheckFormat(tok); err != nil {
			t.Fatalf("CheckFormat(Generate()) = %v for %q", err, tok)
		}
		if seen[tok] {
			t.Fatalf("duplicate token %q", tok)
		}
		seen[tok] = true
		for i := len(Prefix); i < len(Prefix)+RandomLen; i++ {
			counts[tok[i]]++
		}
	}
	// 44,000 characters over 62 symbols: each appears ~710 times. A biased
	// or truncated alphabet shows up as a missing or rare symbol.
	if len(counts) != 62 {
		t.Fatalf("only %d distinct characters used", len(counts))
	}
	for c, n := range counts {
		if n < 400 || n > 1100 {
			t.Fatalf("character %q appears %d times: not uniform", c, n)
		}
	}
}

func TestChecksumMatchesCRC32(t *testing.T) {
	t.Parallel()
	tok := mustGenerate(t)
	random := tok[len(Prefix) : len(Prefix)+RandomLen]
	var want [ChecksumLen]byte
	encodeChecksum(want[:], crc32.ChecksumIEEE([]byte(random)))
	if got := tok[len(Prefix)+RandomLen:]; got != string(want[:]) {
		t.Fatalf("checksum %q, want %q", got, want)
	}
	// The largest CRC still fits in 6 digits.
	var max [ChecksumLen]byte
	encodeChecksum(max[:], ^uint32(0))
	if string(max[:]) != "4gfFC3" {
		t.Fatalf("encode(2^32-1) = %q", max)
	}
}

func TestCheckFormatRejects(t *testing.T) {
	t.Parallel()
	tok := mustGenerate(t)
	replaceAt := func(i int, c byte) string {
		b := []byte(tok)
		if b[i] == c {
			c = alphabet[(strings.IndexByte(alphabet, c)+1)%62]
		}
		b[i] = c
		return string(b)
	}
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"prefix only", Prefix},
		{"openai key", "sk-AaId75AtflCIgNgOtW8RDQ"},
		{"original format", "sk-" + tok[5:27]},
		{"wrong prefix", "llmq_" + tok[5:]},
		{"upper prefix", "LLMP_" + tok[5:]},
		{"one char short", tok[:Length-1]},
		{"one char long", tok + "0"},
		{"whitespace", " " + tok[1:]},
		{"changed random char", replaceAt(10, 'a')},
		{"changed checksum char", replaceAt(Length-1, 'b')},
		{"non-base62 in random", replaceAt(7, '-')},
		{"non-base62 in checksum", replaceAt(Length-2, '_')},
		{"checksum overflow", tok[:Length-ChecksumLen] + "zzzzzz"},
		{"non-ascii", tok[:Length-2] + "é"},
		{"swapped random chars", swapAdjacent(tok)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.in == tok {
				t.Fatal("test case equals the valid token")
			}
			err := CheckFormat(tt.in)
			var e *llmproxy.Error
			if !errors.As(err, &e) || !errors.Is(err, llmproxy.ErrUnauthorized) || e.Code != llmproxy.CodeInvalidToken {
				t.Fatalf("CheckFormat(%q) = %v, want *llmproxy.Error unauthorized/invalid_token", tt.in, err)
			}
		})
	}
}

// swapAdjacent swaps the first two differing adjacent characters of the
// random part.
func swapAdjacent(tok string) string {
	b := []byte(tok)
	for i := len(Prefix); i < len(Prefix)+RandomLen-1; i++ {
		if b[i] != b[i+1] {
			b[i], b[i+1] = b[i+1], b[i]
			break
		}
	}
	return string(b)
}

func TestHint(t *testing.T) {
	t.Parallel()
	tok := mustGenerate(t)
	h := Hint(tok)
	want := Prefix + tok[5:9] + "…" + tok[Length-4:]
	if h != want {
		t.Fatalf("Hint = %q, want %q", h, want)
	}
	if strings.Contains(h, tok[9:Length-4]) {
		t.Fatal("hint reveals the middle of the token")
	}
	for _, bad := range []string{"", "sk-secretsecretsecret", "llmp_short"} {
		if got := Hint(bad); got != Prefix+"…" {
			t.Fatalf("Hint(%q) = %q, want a content-free hint", bad, got)
		}
	}
}

func TestCheckFormatDoesNotAllocate(t *testing.T) {
	tok := mustGenerate(t)
	bad := tok[:Length-1] + "x"
	for _, in := range []string{tok, bad, "", "sk-whatever"} {
		if n := testing.AllocsPerRun(100, func() { _ = CheckFormat(in) }); n != 0 {
			t.Fatalf("CheckFormat(%q) allocates %v times", in, n)
		}
	}
}

func FuzzCheckFormat(f *testing.F) {
	for range 4 {
		f.Add(mustGenerate(f))
	}
	f.Add("")
	f.Add(Prefix)
	f.Add("sk-AaId75AtflCIgNgOtW8RDQ")
	f.Add(Prefix + strings.Repeat("z", RandomLen+ChecksumLen))
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckFormat(s)
		if err == nil {
			if len(s) != Length || !strings.HasPrefix(s, Prefix) {
				t.Fatalf("accepted %q of the wrong shape", s)
			}
			random := s[len(Prefix) : len(Prefix)+RandomLen]
			var want [ChecksumLen]byte
			encodeChecksum(want[:], crc32.ChecksumIEEE([]byte(random)))
			if s[len(Prefix)+RandomLen:] != string(want[:]) {
				t.Fatalf("accepted %q with a wrong checksum", s)
			}
		}
		_ = Hint(s)
		// Every generated token is accepted (the fuzzer exercises Generate
		// alongside arbitrary input).
		tok, gerr := Generate()
		if gerr != nil {
			t.Fatal(gerr)
		}
		if err := CheckFormat(tok); err != nil {
			t.Fatalf("rejected generated token %q: %v", tok, err)
		}
	})
}

func BenchmarkCheckFormat(b *testing.B) {
	tok := mustGenerate(b)
	bad := tok[:Length-1] + "x"
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if CheckFormat(tok) != nil {
				b.Fatal("rejected")
			}
		}
	})
	b.Run("bad_checksum", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if CheckFormat(bad) == nil {
				b.Fatal("accepted")
			}
		}
	})
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(); err != nil {
			b.Fatal(err)
		}
	}
}
