package sse

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func collect(seq func(func([]byte) bool)) []string {
	var out []string
	for b := range seq {
		out = append(out, string(b))
	}
	return out
}

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"lf", "data: a\n\ndata: b\n", []string{"data: a", "", "data: b"}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n", []string{"data: a", "", "data: b"}},
		{"cr", "data: a\r\rdata: b\r", []string{"data: a", "", "data: b"}},
		{"mixed", "a\nb\r\nc\rd\n\re\r\r\nf", []string{"a", "b", "c", "d", "", "e", "", "f"}},
		{"cr then crlf", "a\r\r\n", []string{"a", ""}},
		{"lf then cr", "a\n\r", []string{"a", ""}},
		{"trailing partial line", "data: a\ndata: par", []string{"data: a", "data: par"}},
		{"no line end", "data: a", []string{"data: a"}},
		{"only line ends", "\n\r\n\r", []string{"", "", ""}},
		{"bom", "\xEF\xBB\xBFdata: a\n", []string{"data: a"}},
		{"bom only once", "\xEF\xBB\xBF\xEF\xBB\xBFx", []string{"\xEF\xBB\xBFx"}},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := collect(Lines([]byte(tc.text))); !slices.Equal(got, tc.want) {
				t.Fatalf("Lines(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestEvents(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"lf", "data: a\n\n: c\n\ndata: b\n\n", []string{"data: a\n\n", ": c\n\n", "data: b\n\n"}},
		{"crlf", "data: a\r\n\r\nevent: x\r\ndata: b\r\n\r\n", []string{"data: a\r\n\r\n", "event: x\r\ndata: b\r\n\r\n"}},
		{"cr", "data: a\r\revent: x\rdata: b\r\r", []string{"data: a\r\r", "event: x\rdata: b\r\r"}},
		{"mixed", "data: a\r\n\ndata: b\n\r\ndata: c\r\r\ndata: d\n\r", []string{"data: a\r\n\n", "data: b\n\r\n", "data: c\r\r\n", "data: d\n\r"}},
		{"trailing incomplete event", "data: a\n\ndata: b\n", []string{"data: a\n\n", "data: b\n"}},
		{"trailing partial line", "data: a\r\rdata: b", []string{"data: a\r\r", "data: b"}},
		{"leading blank line", "\ndata: a\n\n", []string{"\n", "data: a\n\n"}},
		{"bom goes with the first event", "\xEF\xBB\xBF\ndata: a\n\n", []string{"\xEF\xBB\xBF\n", "data: a\n\n"}},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := collect(Events([]byte(tc.text)))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Events(%q) = %q, want %q", tc.text, got, tc.want)
			}
			if strings.Join(got, "") != tc.text {
				t.Fatalf("the events do not add up to the text")
			}
		})
	}
}

func TestEndedAndField(t *testing.T) {
	for text, want := range map[string]bool{
		"data: a\n\n":       true,
		"data: a\r\n\r\n":   true,
		"data: a\r\r":       true,
		"data: a\r\n\n":     true,
		"data: a\n\r\n":     true,
		"data: a\r\r\n":     true,
		"data: a\n\r":       true,
		"\n":                true,
		"\r\n":              true,
		"\xEF\xBB\xBF\r":    true,
		"":                  false,
		"data: a":           false,
		"data: a\n":         false,
		"data: a\r\n":       false,
		"data: a\r":         false,
		"data: a\n\ndata:b": false,
	} {
		if got := Ended([]byte(text)); got != want {
			t.Errorf("Ended(%q) = %v, want %v", text, got, want)
		}
	}
	for line, want := range map[string][2]string{
		"data: a":    {"data", "a"},
		"data:a":     {"data", "a"},
		"data:  a":   {"data", " a"},
		"data: a: b": {"data", "a: b"},
		"data":       {"data", ""},
		"data:":      {"data", ""},
		": comment":  {"", "comment"},
		"":           {"", ""},
	} {
		name, value := Field([]byte(line))
		if string(name) != want[0] || string(value) != want[1] {
			t.Errorf("Field(%q) = %q, %q; want %q, %q", line, name, value, want[0], want[1])
		}
		if !bytes.HasSuffix([]byte(line), value) {
			t.Errorf("Field(%q): value %q is not a suffix of the line", line, value)
		}
	}
	if !IsComment([]byte(": x")) || IsComment([]byte("data: :x")) || IsComment(nil) {
		t.Error("IsComment")
	}
}

// TestWholeTextNoAllocations: the whole-text readers hand back slices of
// their input.
func TestWholeTextNoAllocations(t *testing.T) {
	text := []byte(strings.Repeat("event: x\r\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\n", 20))
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		for ev := range Events(text) {
			for range Lines(ev) {
				n++
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("Events and Lines allocate %.1f times, want 0", allocs)
	}
}

// TestFinderIsLinear: a long text of lines with one kind of line end is
// searched once for each of CR and LF, not once a line (which would take
// seconds here).
func TestFinderIsLinear(t *testing.T) {
	for _, eol := range []string{"\n", "\r"} {
		text := []byte(strings.Repeat("data: x"+eol+eol, 200_000)) // 1.8 MB, 400,000 lines
		f := newFinder()
		searched := 0
		for pos := 0; pos < len(text); {
			lf, cr := f.lf, f.cr
			i, n := f.next(text, pos)
			if f.lf != lf {
				searched += f.lf - pos
			}
			if f.cr != cr {
				searched += f.cr - pos
			}
			if i < 0 {
				break
			}
			pos = i + n
		}
		if searched > 3*len(text) {
			t.Errorf("%q lines: %d bytes searched for a %d-byte text", eol, searched, len(text))
		}
	}
}

type got struct {
	raw  string
	ev   string
	data string
	has  bool
}

func parseAll(t testing.TB, chunks ...string) ([]got, *Parser) {
	t.Helper()
	p := NewParser(0)
	var out []got
	for _, c := range chunks {
		if err := p.Feed([]byte(c), func(raw []byte, ev Event) {
			out = append(out, got{string(raw), ev.Event, string(ev.Data), ev.HasData})
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out, p
}

func TestParser(t *testing.T) {
	tests := []struct {
		name    string
		chunks  []string
		want    []got
		pending string
	}{
		{"lf", []string{"data: a\n\ndata: b\n\n"}, []got{{"data: a\n\n", "", "a", true}, {"data: b\n\n", "", "b", true}}, ""},
		{"crlf", []string{"data: a\r\n\r\n"}, []got{{"data: a\r\n\r\n", "", "a", true}}, ""},
		{"cr", []string{"data: a\r\r"}, []got{{"data: a\r\r", "", "a", true}}, ""},
		{"mixed", []string{"event: x\r\ndata: 1\rdata: 2\n\r\ndata: 3\r\r"}, []got{{"event: x\r\ndata: 1\rdata: 2\n\r\n", "x", "1\n2", true}, {"data: 3\r\r", "", "3", true}}, ""},
		// A bare \r at the end of a chunk ends the line at once; a \n that
		// follows belongs to it and is passed on with the next event.
		{"crlf split", []string{"data: a\r", "\n\r", "\n"}, []got{{"data: a\r\n\r", "", "a", true}}, "\n"},
		{"crlf split, blank line", []string{"data: a\r\n\r", "\ndata: b\r\n\r\n"}, []got{{"data: a\r\n\r", "", "a", true}, {"\ndata: b\r\n\r\n", "", "b", true}}, ""},
		{"cr split, then cr", []string{"data: a\r", "\r"}, []got{{"data: a\r\r", "", "a", true}}, ""},
		{"cr split, then text", []string{"data: a\r", "data: b\r\r"}, []got{{"data: a\rdata: b\r\r", "", "a\nb", true}}, ""},
		{"multiline", []string{"event: x\ndata: 1\ndata:2\n\n"}, []got{{"event: x\ndata: 1\ndata:2\n\n", "x", "1\n2", true}}, ""},
		{"comment only", []string{": keep-alive\n\n"}, []got{{": keep-alive\n\n", "", "", false}}, ""},
		{"byte by byte", strings.Split("data: {\"a\":1}\n\n", ""), []got{{"data: {\"a\":1}\n\n", "", "{\"a\":1}", true}}, ""},
		{"crlf byte by byte", strings.Split("data: {\"a\":1}\r\n\r\n", ""), []got{{"data: {\"a\":1}\r\n\r", "", "{\"a\":1}", true}}, "\n"},
		{"bom", []string{"\xEF\xBB", "\xBFdata: a\n\n"}, []got{{"\xEF\xBB\xBFdata: a\n\n", "", "a", true}}, ""},
		{"incomplete", []string{"data: a\n"}, nil, "data: a\n"},
		{"trailing partial line", []string{"data: a\r\rdata: b"}, []got{{"data: a\r\r", "", "a", true}}, "data: b"},
		{"no space", []string{"data:x\n\n"}, []got{{"data:x\n\n", "", "x", true}}, ""},
		{"field only", []string{"data\n\n"}, []got{{"data\n\n", "", "", true}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, p := parseAll(t, tt.chunks...)
			if fmt.Sprint(out) != fmt.Sprint(tt.want) {
				t.Fatalf("got %+v\nwant %+v", out, tt.want)
			}
			if string(p.Pending()) != tt.pending {
				t.Fatalf("pending %q, want %q", p.Pending(), tt.pending)
			}
		})
	}
}

func TestParserBoundAndPending(t *testing.T) {
	p := NewParser(64)
	err := p.Feed([]byte("data: "+strings.Repeat("x", 100)), func([]byte, Event) {})
	if err != ErrEventTooLarge {
		t.Fatalf("err = %v", err)
	}
	if p.Feed([]byte("\n\n"), func([]byte, Event) {}) != ErrEventTooLarge {
		t.Fatal("parser should stay broken")
	}
	_, q := parseAll(t, "data: a\n\ndata: partial")
	if string(q.Pending()) != "data: partial" {
		t.Fatalf("pending = %q", q.Pending())
	}
}

// TestParserCopiesOnlyIncompleteEvents: complete events are handed out as
// slices of the fed bytes, without allocating; only the incomplete event at
// the end of a chunk is copied, and the fed bytes are never written to.
func TestParserCopiesOnlyIncompleteEvents(t *testing.T) {
	events := "data: {\"a\":1}\n\nevent: x\ndata: 2\ndata: 3\n\n: keep-alive\n\n"
	in := []byte(events + "data: part")
	orig := bytes.Clone(in)
	p := NewParser(0)
	var got []string
	if err := p.Feed(in, func(raw []byte, ev Event) {
		got = append(got, fmt.Sprintf("%q %q %q", raw, ev.Event, ev.Data))
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`"data: {\"a\":1}\n\n" "" "{\"a\":1}"`,
		`"event: x\ndata: 2\ndata: 3\n\n" "x" "2\n3"`,
		`": keep-alive\n\n" "" ""`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events:\n%v\nwant\n%v", got, want)
	}
	if !bytes.Equal(in, orig) {
		t.Fatalf("Feed changed its input: %q", in)
	}
	if string(p.Pending()) != "data: part" {
		t.Fatalf("pending %q", p.Pending())
	}
	clear(in) // the parser must not refer to the caller's bytes
	var rest []string
	if err := p.Feed([]byte("ial\n\n"), func(raw []byte, ev Event) { rest = append(rest, string(raw)) }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rest) != "[data: partial\n\n]" {
		t.Fatalf("completed event %q", rest)
	}

	for _, eol := range []string{"\n", "\r\n", "\r"} {
		whole := []byte(strings.Repeat("data: {\"choices\":[{\"delta\":{\"content\":\"tok\"}}]}"+eol+eol, 8))
		q := NewParser(0)
		n := 0
		allocs := testing.AllocsPerRun(100, func() {
			_ = q.Feed(whole, func([]byte, Event) { n++ })
		})
		if allocs != 0 {
			t.Errorf("%q: feeding complete events allocates %.1f times, want 0", eol, allocs)
		}
		if n != 8*101 {
			t.Errorf("%q: %d events, want %d", eol, n, 8*101)
		}
	}
}

// TestParserGivesBackLargeBuffer: a stream holds its parser for its whole
// life, so the buffer an unusually large event needed is not kept.
func TestParserGivesBackLargeBuffer(t *testing.T) {
	p := NewParser(0)
	big := "data: " + strings.Repeat("x", 300<<10) + "\n\n"
	var sizes []int
	emit := func(raw []byte, _ Event) { sizes = append(sizes, len(raw)) }
	for i := 0; i < len(big); i += 1000 {
		if err := p.Feed([]byte(big[i:min(i+1000, len(big))]), emit); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Feed([]byte("data: small\n\ndata: next"), emit); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != fmt.Sprint([]int{len(big), len("data: small\n\n")}) {
		t.Fatalf("event sizes %v", sizes)
	}
	if c := cap(p.buf); c > initialBuffer {
		t.Fatalf("the parser keeps a %d-byte buffer after the large event, want at most %d", c, initialBuffer)
	}
	if string(p.Pending()) != "data: next" {
		t.Fatalf("pending %q", p.Pending())
	}
}

// FuzzParser: whatever the split, the fed bytes are not changed; raw
// events and the pending rest add up to the input; the parser holds no
// more than the bytes after the last complete event; and fed whole, it
// finds the events Events finds, with the data Lines and Field read from
// them.
func FuzzParser(f *testing.F) {
	f.Add([]byte("data: a\n\ndata: b"), 3)
	f.Add([]byte("data: a\r\n\r\ndata: b\r\r: c\n\n"), 1)
	f.Add([]byte("\xEF\xBB\xBFdata:x\r\ndata:y\r\r\n: c\n\n"), 2)
	f.Add([]byte("id: 1\ndata: x\n\ndata: y\n\n"), 1)
	f.Add([]byte("event: response.completed\ndata: {\"response\":{}}\n\n"), 7)
	f.Add([]byte("\r\n\r\n\n\r"), 1)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		if split <= 0 {
			split = 1
		}
		orig := bytes.Clone(in)
		parts := NewParser(1 << 16)
		var raw bytes.Buffer
		for i := 0; i < len(in); i += split {
			if err := parts.Feed(in[i:min(i+split, len(in))], func(r []byte, _ Event) { raw.Write(r) }); err != nil {
				return
			}
		}
		if !bytes.Equal(in, orig) {
			t.Fatal("Feed changed its input")
		}
		pending := parts.Pending()
		if len(pending) != len(parts.buf) {
			t.Fatalf("the parser holds %d bytes, %d of them pending", len(parts.buf), len(pending))
		}
		raw.Write(pending)
		if !bytes.Equal(raw.Bytes(), in) {
			t.Fatalf("raw events and pending bytes do not add up to the input:\n%q\n%q", raw.Bytes(), in)
		}

		whole := NewParser(1 << 16)
		var fed []string
		if err := whole.Feed(in, func(r []byte, ev Event) {
			fed = append(fed, fmt.Sprintf("%q %q %q %v", r, ev.Event, ev.Data, ev.HasData))
		}); err != nil {
			return
		}
		var read []string
		for ev := range Events(in) {
			if !Ended(ev) {
				if string(ev) != string(whole.Pending()) {
					t.Fatalf("incomplete event %q, pending %q", ev, whole.Pending())
				}
				break
			}
			var name string
			var data []byte
			has := false
			for line := range Lines(ev) {
				if IsComment(line) {
					continue
				}
				switch k, v := Field(line); string(k) {
				case "event":
					name = string(v)
				case "data":
					if has {
						data = append(data, '\n')
					}
					data, has = append(data, v...), true
				}
			}
			read = append(read, fmt.Sprintf("%q %q %q %v", ev, name, data, has))
		}
		if !slices.Equal(fed, read) {
			t.Fatalf("Parser and Events disagree on %q:\n%q\n%q", in, fed, read)
		}
	})
}

func BenchmarkParserFeed(b *testing.B) {
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		b.Run(fmt.Sprintf("%q", eol), func(b *testing.B) {
			var stream bytes.Buffer
			for i := 0; i < 100; i++ {
				fmt.Fprintf(&stream, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"token%d \"},\"finish_reason\":null}],\"usage\":null}"+eol+eol, i)
			}
			in := stream.Bytes()
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			p := NewParser(0)
			n := 0
			for b.Loop() {
				for i := 0; i < len(in); i += 512 {
					_ = p.Feed(in[i:min(i+512, len(in))], func([]byte, Event) { n++ })
				}
			}
		})
	}
}
