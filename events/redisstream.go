package events

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/redis/go-redis/v9"
)

// StreamField is the field of a Redis stream entry holding the event as
// structured-mode CloudEvents JSON.
const StreamField = "event"

// DecodeEvent parses structured-mode CloudEvents JSON and validates it.
func DecodeEvent(b []byte) (event.Event, error) {
	var ev event.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return ev, fmt.Errorf("decode event: %w", err)
	}
	if err := ev.Validate(); err != nil {
		return ev, fmt.Errorf("invalid event: %w", err)
	}
	return ev, nil
}

// RedisStreamPublisher appends events to a Redis stream (XADD MAXLEN ~ bound)
// in one pipeline per batch; `llm-proxy dispatch` consumes the stream.
type RedisStreamPublisher struct {
	rdb    redis.UniversalClient
	stream string
	maxLen int64
}

// NewRedisStreamPublisher appends to stream, trimming it to about maxLen
// entries (0: no trimming).
func NewRedisStreamPublisher(rdb redis.UniversalClient, stream string, maxLen int64) *RedisStreamPublisher {
	return &RedisStreamPublisher{rdb: rdb, stream: stream, maxLen: maxLen}
}

// Publish XADDs every event in one round trip.
func (p *RedisStreamPublisher) Publish(ctx context.Context, evs []event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	errs := make([]error, len(evs))
	cmds := make([]*redis.StringCmd, len(evs))
	pipe := p.rdb.Pipeline()
	queued := 0
	for i := range evs {
		b, err := EncodeEvent(&evs[i])
		if err != nil {
			errs[i] = Permanent(err)
			continue
		}
		cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: p.stream,
			MaxLen: p.maxLen,
			Approx: p.maxLen > 0,
			Values: []any{StreamField, b},
		})
		queued++
	}
	if queued > 0 {
		_, _ = pipe.Exec(ctx) // per-command errors below
	}
	failed := false
	for i, c := range cmds {
		if c != nil && c.Err() != nil {
			errs[i] = fmt.Errorf("xadd %s: %w", p.stream, c.Err())
		}
		if errs[i] != nil {
			failed = true
		}
	}
	if !failed {
		return nil
	}
	return &BatchError{Errs: errs}
}
