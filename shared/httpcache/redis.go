package httpcache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the Redis backend: one string value per record with a Redis TTL,
// all keys under a prefix. Purges SCAN the prefix-scoped pattern and delete
// what they find, so no index can go stale.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis returns a backend storing keys under prefix (e.g. "llmproxy:cache:").
// The caller owns client and closes it.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// Get implements Backend with one MGET.
func (r *Redis) Get(ctx context.Context, keys ...string) ([][]byte, error) {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.prefix + k
	}
	vals, err := r.client.MGet(ctx, full...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis cache get: %w", err)
	}
	out := make([][]byte, len(keys))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
	return out, nil
}

// Set implements Backend.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	if err := r.client.Set(ctx, r.prefix+key, value, ttl).Err(); err != nil {
		return fmt.Errorf("redis cache set: %w", err)
	}
	return nil
}

// DeletePrefix implements Backend: SCAN MATCH <prefix><key prefix>* and
// UNLINK in batches.
func (r *Redis) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	pattern := globEscape(r.prefix+prefix) + "*"
	var (
		cursor  uint64
		deleted int
	)
	for {
		keys, next, err := r.client.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return deleted, fmt.Errorf("redis cache purge scan: %w", err)
		}
		if len(keys) > 0 {
			n, err := r.unlink(ctx, keys)
			deleted += n
			if err != nil {
				return deleted, err
			}
		}
		if next == 0 {
			return deleted, nil
		}
		cursor = next
	}
}

// unlink deletes keys and counts the entries among those that existed.
func (r *Redis) unlink(ctx context.Context, keys []string) (int, error) {
	cmds := make([]*redis.IntCmd, len(keys))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Unlink(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("redis cache purge delete: %w", err)
	}
	n := 0
	for i, c := range cmds {
		if c.Val() > 0 && isEntryKey(strings.TrimPrefix(keys[i], r.prefix)) {
			n++
		}
	}
	return n, nil
}

// globEscape escapes the glob metacharacters of Redis MATCH patterns.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\^`) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '*', '?', '[', ']', '\\', '^':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
