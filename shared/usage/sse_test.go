package usage

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

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

	whole := []byte(strings.Repeat("data: {\"choices\":[{\"delta\":{\"content\":\"tok\"}}]}\n\n", 8))
	q := NewParser(0)
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		_ = q.Feed(whole, func([]byte, Event) { n++ })
	})
	if allocs != 0 {
		t.Errorf("feeding complete events allocates %.1f times, want 0", allocs)
	}
	if n != 8*101 {
		t.Errorf("%d events, want %d", n, 8*101)
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

// FuzzParserFeed: whatever the split, the fed bytes are not changed, raw
// events and the pending rest add up to the input, and the parser holds no
// more than the bytes after the last complete event.
func FuzzParserFeed(f *testing.F) {
	f.Add([]byte("data: a\n\ndata: b"), 3)
	f.Add([]byte("\xEF\xBB\xBFdata:x\r\ndata:y\r\r\n: c\n\n"), 2)
	f.Add([]byte("id: 1\ndata: x\n\ndata: y\n\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		if split <= 0 {
			split = 1
		}
		orig := bytes.Clone(in)
		p := NewParser(1 << 16)
		var raw bytes.Buffer
		for i := 0; i < len(in); i += split {
			if err := p.Feed(in[i:min(i+split, len(in))], func(r []byte, _ Event) { raw.Write(r) }); err != nil {
				return
			}
		}
		if !bytes.Equal(in, orig) {
			t.Fatal("Feed changed its input")
		}
		pending := p.Pending()
		if len(pending) != len(p.buf) {
			t.Fatalf("the parser holds %d bytes, %d of them pending", len(p.buf), len(pending))
		}
		raw.Write(pending)
		if !bytes.Equal(raw.Bytes(), in) {
			t.Fatalf("raw events and pending bytes do not add up to the input:\n%q\n%q", raw.Bytes(), in)
		}
	})
}
