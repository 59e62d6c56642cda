package dispatch

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/llm-proxy/llm-proxy/functions/dispatcher"
)

// TestPauseEnv names a test-only hook, not configuration (so it is in no
// documentation table): fault tests of `llm-proxy dispatch` set it to stop
// the process at a chosen moment, then SIGKILL it there. Its value is
// <moment>:<n>, where moment is
//
//	before-write  the n-th batch is claimed (read from the stream, dedup
//	              leases taken) and handed to the backend, which has not
//	              written it
//	after-write   the backend wrote the n-th batch, which is neither
//	              recorded as delivered nor acknowledged
//
// The process prints "test hook: paused <moment> <n>" on stdout and blocks
// there until it is killed (or its context ends).
const TestPauseEnv = "LLM_PROXY_TEST_DISPATCH_PAUSE"

// pauseHook wraps b as TestPauseEnv's value spec asks; an empty spec leaves
// b alone.
func pauseHook(b dispatcher.Backend, spec string, out io.Writer) (dispatcher.Backend, error) {
	if spec == "" {
		return b, nil
	}
	moment, num, _ := strings.Cut(spec, ":")
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || (moment != "before-write" && moment != "after-write") {
		return nil, fmt.Errorf("%s=%q: want before-write:<n> or after-write:<n>", TestPauseEnv, spec)
	}
	p := &hookBackend{Backend: b, after: moment == "after-write", at: n, out: out}
	if _, raw := b.(dispatcher.RawBackend); raw {
		return rawHookBackend{p}, nil
	}
	return p, nil
}

// hookBackend blocks in its at-th Deliver, before or after the real one.
type hookBackend struct {
	dispatcher.Backend
	after bool
	at    int
	out   io.Writer
	n     int
}

// Deliver implements dispatcher.Backend.
func (p *hookBackend) Deliver(ctx context.Context, recs []dispatcher.Record) error {
	p.n++
	if p.n == p.at && !p.after {
		return p.pause(ctx, "before-write")
	}
	err := p.Backend.Deliver(ctx, recs)
	if p.n == p.at && p.after && err == nil {
		return p.pause(ctx, "after-write")
	}
	return err
}

func (p *hookBackend) pause(ctx context.Context, moment string) error {
	fmt.Fprintf(p.out, "test hook: paused %s %d\n", moment, p.n)
	<-ctx.Done()
	return fmt.Errorf("test hook: %w", ctx.Err())
}

// rawHookBackend keeps the wrapped backend a dispatcher.RawBackend.
type rawHookBackend struct{ *hookBackend }

func (rawHookBackend) RawEvents() {}
