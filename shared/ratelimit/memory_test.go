package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

func TestMemoryEvictsIdleState(t *testing.T) {
	t.Parallel()
	c := testenv.NewClock(epoch)
	m := NewMemory(MemoryOptions{Now: c.Now, IdleTTL: 2 * time.Hour})
	ctx := context.Background()
	for i := range 1000 {
		tok := "t" + string(rune('a'+i%26)) + time.Duration(i).String()
		_, err := m.Admit(ctx, Request{TokenID: tok, ProjectID: "p" + tok, MaxRequests: 10,
			TokenLimits: llmproxy.Limits{RequestsPerMinute: 5, TokensPerMinute: 100}, ReserveTokens: 10})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := m.Len(); n != 3000 {
		t.Fatalf("held %d states, want 3000", n)
	}
	// Windows empty after a minute and a bucket; lifetime counters after IdleTTL.
	c.Advance(62 * time.Second)
	m.Admit(ctx, Request{}) // sweeps one shard only
	for _, sh := range m.shards {
		sh.mu.Lock()
		sh.sweep(c.Now(), m.idle)
		sh.mu.Unlock()
	}
	if n := m.Len(); n != 1000 {
		t.Fatalf("after the window: held %d states, want 1000 lifetime counters", n)
	}
	c.Advance(2 * time.Hour)
	for _, sh := range m.shards {
		sh.mu.Lock()
		sh.sweep(c.Now(), m.idle)
		sh.mu.Unlock()
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("after IdleTTL: held %d states, want 0", n)
	}
}

func TestMemoryClockStepsBack(t *testing.T) {
	t.Parallel()
	c := testenv.NewClock(epoch)
	m := NewMemory(MemoryOptions{Now: c.Now})
	req := Request{TokenID: "t", ProjectID: "p", TokenLimits: llmproxy.Limits{RequestsPerMinute: 3}}
	for range 3 {
		if d, _ := m.Admit(context.Background(), req); !d.Allowed {
			t.Fatal("refused")
		}
	}
	c.Advance(-10 * time.Minute) // a clock stepping back must not reopen the window
	if d, _ := m.Admit(context.Background(), req); d.Allowed {
		t.Fatal("admitted after the clock stepped back")
	}
}
