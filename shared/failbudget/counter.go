package failbudget

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Counter counts events per key in fixed windows of one length.
type Counter interface {
	// Add counts one event for key and returns the key's count in its
	// current window (this event included) and the time until that window
	// ends.
	Add(ctx context.Context, key string) (n int, left time.Duration, err error)
}

// Memory is a Counter in this process's memory (a Budget without a limit).
type Memory struct {
	b     *Budget
	clock func() time.Time
}

// NewMemory returns a counter of window-long windows that remembers at most
// maxKeys keys (clock nil: time.Now).
func NewMemory(window time.Duration, maxKeys int, clock func() time.Time) *Memory {
	if clock == nil {
		clock = time.Now
	}
	return &Memory{b: New(1, window, maxKeys), clock: clock}
}

// Add implements Counter.
func (m *Memory) Add(_ context.Context, key string) (int, time.Duration, error) {
	now := m.clock()
	n := m.b.Failed(key, now)
	return n, m.b.left(key, now), nil
}

//go:embed add.lua
var addLua string

var addScript = redis.NewScript(addLua)

// Redis is a Counter shared by every instance that uses the same Redis and
// key prefix. When Redis does not answer it counts in memory instead (so a
// Redis outage never locks anyone out, and budgets keep working per
// instance) and logs the first error of each minute.
type Redis struct {
	rdb      redis.UniversalClient
	prefix   string
	window   time.Duration
	fallback *Memory
	log      *slog.Logger
	errs     func() // counts a fallback (metric); may be nil
	logged   atomic.Int64
	clock    func() time.Time
}

// NewRedis returns a counter of window-long windows whose keys are
// prefix+key in rdb, falling back to fallback.
func NewRedis(rdb redis.UniversalClient, prefix string, window time.Duration, fallback *Memory, log *slog.Logger) *Redis {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Redis{rdb: rdb, prefix: prefix, window: window, fallback: fallback, log: log, clock: time.Now}
}

// Add implements Counter.
func (c *Redis) Add(ctx context.Context, key string) (int, time.Duration, error) {
	ms := max(c.window.Milliseconds(), 1)
	res, err := addScript.Run(ctx, c.rdb, []string{c.prefix + key}, ms).Int64Slice()
	if err == nil && len(res) == 2 {
		return int(res[0]), time.Duration(res[1]) * time.Millisecond, nil
	}
	if err == nil {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if c.errs != nil {
		c.errs()
	}
	now := c.clock().Unix() / 60
	if last := c.logged.Load(); last != now && c.logged.CompareAndSwap(last, now) {
		c.log.WarnContext(ctx, "failure budget: Redis did not answer; counting in this instance's memory", "error", err)
	}
	return c.fallback.Add(ctx, key)
}
