package logging

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
)

// sink records every write it receives, separately.
type sink struct {
	mu     sync.Mutex
	writes []string
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *sink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

func (s *sink) text() string { return strings.Join(s.snapshot(), "") }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInfoLinesAreBatchedAndWrittenByTheTimer(t *testing.T) {
	var out sink
	log := New(config.Log{Level: "info", Format: "json", FlushInterval: 50 * time.Millisecond}, &out)
	for i := range 10 {
		log.Info("http request", "n", i)
	}
	if got := out.snapshot(); len(got) != 0 {
		t.Fatalf("info lines were written at once (%d writes), want them held until the interval", len(got))
	}
	waitFor(t, "the timer to write the batch", func() bool { return len(out.snapshot()) > 0 })
	if got := out.snapshot(); len(got) != 1 {
		t.Fatalf("%d writes for 10 lines, want 1 batch", len(got))
	}
	lines := strings.Split(strings.TrimSuffix(out.text(), "\n"), "\n")
	if len(lines) != 10 {
		t.Fatalf("%d lines, want 10:\n%s", len(lines), out.text())
	}
	for i, l := range lines {
		var rec struct {
			Msg string `json:"msg"`
			N   int    `json:"n"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.N != i {
			t.Fatalf("line %d = %q (%v), want the %dth record whole and in order", i, l, err, i)
		}
	}
}

func TestWarningsFlushEverythingBeforeThem(t *testing.T) {
	var out sink
	log := New(config.Log{Level: "info", Format: "text", FlushInterval: time.Hour}, &out)
	log.Info("first")
	log.With("component", "x").Warn("trouble")
	text := out.text()
	if !strings.Contains(text, "msg=first") || !strings.Contains(text, "msg=trouble") || !strings.Contains(text, "component=x") {
		t.Fatalf("after a warning the output is %q, want the info line and the warning", text)
	}
	if strings.Index(text, "first") > strings.Index(text, "trouble") {
		t.Fatalf("order lost: %q", text)
	}
}

func TestFlushWritesTheRest(t *testing.T) {
	var out sink
	log := New(config.Log{Level: "info", Format: "json", FlushInterval: time.Hour}, &out)
	log.With("function", "proxy").Info("held")
	if out.text() != "" {
		t.Fatal("written before the flush")
	}
	Flush(log.With("derived", true)) // any logger derived from New's flushes it
	if !strings.Contains(out.text(), `"msg":"held"`) {
		t.Fatalf("flush wrote %q", out.text())
	}
}

func TestZeroIntervalWritesEveryLine(t *testing.T) {
	var out sink
	log := New(config.Log{Level: "info", Format: "json"}, &out)
	log.Info("a")
	log.Info("b")
	Flush(log) // a no-op, still callable
	if got := out.snapshot(); len(got) != 2 {
		t.Fatalf("%d writes, want one per line", len(got))
	}
}

func TestBufferedWriterKeepsWritesWholeWhenFull(t *testing.T) {
	var out sink
	bw := NewBufferedWriter(&out, time.Hour, 10)
	for _, w := range []string{"aaaa\n", "bbbb\n", "cccc\n", "a line longer than the buffer\n", "d\n"} {
		if n, err := bw.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	bw.Flush()
	want := []string{"aaaa\nbbbb\n", "cccc\n", "a line longer than the buffer\n", "d\n"}
	got := out.snapshot()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("writes %q, want %q", got, want)
	}
}

func TestBufferedWriterConcurrentLinesStayWhole(t *testing.T) {
	var out testenv.Buffer
	bw := NewBufferedWriter(&out, time.Millisecond, 256)
	var wg sync.WaitGroup
	line := strings.Repeat("x", 40) + "\n"
	for range 8 {
		wg.Go(func() {
			for range 200 {
				_, _ = bw.Write([]byte(line))
			}
		})
	}
	wg.Wait()
	bw.Flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		if l+"\n" != line {
			t.Fatalf("a line was split or mixed: %q", l)
		}
	}
}
