package httpcache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

func TestMemoryLRUEviction(t *testing.T) {
	ctx := context.Background()
	clk := testenv.NewClock(time.Time{})
	val := make([]byte, 1000)
	size := int64(len("p:r:n:a")+len(val)) + entryOverhead
	m := NewMemory(3*size, clk.Now) // room for exactly three entries
	for _, k := range []string{"p:r:n:a", "p:r:n:b", "p:r:n:c"} {
		if err := m.Set(ctx, k, val, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// touch a: b is now the least recently used
	if v, _ := m.Get(ctx, "p:r:n:a"); v[0] == nil {
		t.Fatal("a missing")
	}
	m.Set(ctx, "p:r:n:d", val, time.Minute)
	got, _ := m.Get(ctx, "p:r:n:a", "p:r:n:b", "p:r:n:c", "p:r:n:d")
	for i, want := range []bool{true, false, true, true} {
		if (got[i] != nil) != want {
			t.Fatalf("after eviction key %d present=%v, want %v", i, got[i] != nil, want)
		}
	}
	s := m.Stats()
	if s.Evictions != 1 || s.Bytes != 3*size || s.Entries != 3 {
		t.Fatalf("stats %+v", s)
	}
	// a larger value evicts as many as needed, oldest first (c, then a)
	m.Set(ctx, "p:r:n:e", make([]byte, 2000), time.Minute)
	got, _ = m.Get(ctx, "p:r:n:a", "p:r:n:c", "p:r:n:d", "p:r:n:e")
	for i, want := range []bool{false, false, true, true} {
		if (got[i] != nil) != want {
			t.Fatalf("after big set key %d present=%v, want %v", i, got[i] != nil, want)
		}
	}
	if m.Stats().Bytes > 3*size {
		t.Fatalf("over budget: %+v", m.Stats())
	}
	// a value larger than the whole budget is not stored and evicts nothing
	m.Set(ctx, "p:r:n:huge", make([]byte, 4*size), time.Minute)
	if got, _ := m.Get(ctx, "p:r:n:huge", "p:r:n:d"); got[0] != nil || got[1] == nil {
		t.Fatal("huge value handling")
	}
}

func TestMemoryExpiry(t *testing.T) {
	ctx := context.Background()
	clk := testenv.NewClock(time.Time{})
	m := NewMemory(1<<20, clk.Now)
	m.Set(ctx, "k", []byte("v"), 10*time.Second)
	clk.Advance(9 * time.Second)
	if got, _ := m.Get(ctx, "k"); got[0] == nil {
		t.Fatal("expired early")
	}
	clk.Advance(time.Second)
	if got, _ := m.Get(ctx, "k"); got[0] != nil {
		t.Fatal("not expired")
	}
	if s := m.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Fatalf("expired entry still accounted: %+v", s)
	}
}

func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(50_000, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := fmt.Sprintf("p:r:n:%d", (g*7+i)%300)
				m.Set(ctx, k, make([]byte, 100+i%500), time.Minute)
				m.Get(ctx, k, "p:r:n:1")
				if i%500 == 0 {
					m.DeletePrefix(ctx, "p:r:n:1")
				}
			}
		}()
	}
	wg.Wait()
	if s := m.Stats(); s.Bytes > 50_000 || s.Bytes < 0 {
		t.Fatalf("budget violated: %+v", s)
	}
}

func TestEvictionThroughMiddleware(t *testing.T) {
	clk := testenv.NewClock(time.Time{})
	m := NewMemory(4096, clk.Now)
	h := newHarnessWith(t, m, Options{Now: clk.Now}, clk)
	for i := range 20 {
		h.do(req{body: fmt.Sprintf(`{"n":%d}`, i), header: optIn})
	}
	s := h.c.Stats()
	if s.Evictions == 0 || s.Bytes > 4096 {
		t.Fatalf("stats %+v", s)
	}
	// the most recent request is still cached, the first is gone
	w, i := h.do(req{body: `{"n":19}`, header: optIn})
	expectStatus(t, w, i, llmproxy.CacheHit)
	w, i = h.do(req{body: `{"n":0}`, header: optIn})
	expectStatus(t, w, i, llmproxy.CacheStored)
	if n := len(h.c.Collectors()); n != 8 {
		t.Fatalf("%d collectors", n)
	}
}
