package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/redis/go-redis/v9"
)

// RedisOutbox is an Outbox in a Redis stream shared by every instance of
// the functions: <key> holds the events (field "event", structured-mode
// JSON), <key>:bytes the bytes they take, <key>:drain the lease of the one
// instance draining it (so instances do not all send the same events at
// once; a lease not renewed within DrainLease passes to another instance).
// Every instance appends; an entry is deleted (XDEL) only after it was
// delivered. The three keys share key's hash tag when it has one.
type RedisOutbox struct {
	rdb   redis.UniversalClient
	key   string
	bytes string
	lease string
	token string
	max   int64
	ttl   time.Duration
	log   *slog.Logger
}

// RedisOutboxOptions configures a RedisOutbox. Zero values take the
// defaults shown.
type RedisOutboxOptions struct {
	MaxBytes   int64         // bound of the events held (DefaultOutboxMaxBytes)
	DrainLease time.Duration // how long a drainer's lease lasts without renewal (30s)
}

// NewRedisOutbox keeps events in the stream key. log may be nil.
func NewRedisOutbox(rdb redis.UniversalClient, key string, opts RedisOutboxOptions, log *slog.Logger) *RedisOutbox {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultOutboxMaxBytes
	}
	if opts.DrainLease <= 0 {
		opts.DrainLease = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	return &RedisOutbox{
		rdb: rdb, key: key, bytes: key + ":bytes", lease: key + ":drain", token: hex.EncodeToString(tok[:]),
		max: opts.MaxBytes, ttl: opts.DrainLease, log: log,
	}
}

// KEYS: stream, bytes. ARGV: max bytes, then the payloads. Returns how many
// were appended (the longest prefix that fits).
var outboxAppend = redis.NewScript(`
local max = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local n = 0
for i = 2, #ARGV do
  local size = #ARGV[i]
  if used + size > max then break end
  redis.call('XADD', KEYS[1], '*', 'event', ARGV[i])
  used = used + size
  n = n + 1
end
if n > 0 then redis.call('SET', KEYS[2], used) end
return n`)

// KEYS: stream, lease. ARGV: token, lease ms, count. Returns the oldest
// entries, or nil while another instance holds the lease.
var outboxPeek = redis.NewScript(`
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return false end
if redis.call('XLEN', KEYS[1]) == 0 then
  if owner then redis.call('DEL', KEYS[2]) end
  return {}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[3])`)

// KEYS: stream, bytes. ARGV: entry ids. Deletes them and returns the bytes
// freed.
var outboxRemove = redis.NewScript(`
local freed = 0
for i = 1, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #e > 0 then
    local f = e[1][2]
    for j = 1, #f, 2 do
      if f[j] == 'event' then freed = freed + #f[j + 1] end
    end
    redis.call('XDEL', KEYS[1], ARGV[i])
  end
end
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
else
  redis.call('DECRBY', KEYS[2], freed)
end
return freed`)

// KEYS: lease. ARGV: token. Releases the lease when it is ours.
var outboxRelease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Append adds what fits to the stream in one script.
func (o *RedisOutbox) Append(ctx context.Context, evs []event.Event) (int, error) {
	recs, encErr := encodeForOutbox(evs, o.max, 0)
	if len(recs) == 0 {
		return 0, encErr
	}
	args := make([]any, 0, 1+len(recs))
	args = append(args, o.max)
	for _, b := range recs {
		args = append(args, b)
	}
	n, err := outboxAppend.Run(ctx, o.rdb, []string{o.key, o.bytes}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("event outbox: append to %s: %w", o.key, err)
	}
	if n < len(recs) {
		return n, nil
	}
	return n, encErr
}

// Peek takes (or renews) the drain lease and reads the oldest entries;
// ErrOutboxBusy while another instance holds the lease.
func (o *RedisOutbox) Peek(ctx context.Context, n int) ([]OutboxEntry, error) {
	res, err := outboxPeek.Run(ctx, o.rdb, []string{o.key, o.lease}, o.token, o.ttl.Milliseconds(), n).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrOutboxBusy
	}
	if err != nil {
		return nil, fmt.Errorf("event outbox: read %s: %w", o.key, err)
	}
	out := make([]OutboxEntry, 0, len(res))
	var bad []OutboxEntry // undeliverable: deleted at once
	for _, r := range res {
		id, payload, ok := streamEntry(r)
		if !ok {
			o.log.Error("event outbox: unexpected entry skipped", "key", o.key)
			continue
		}
		if e, ok := decodeEntry(o.log, id, []byte(payload)); ok {
			out = append(out, e)
		} else {
			bad = append(bad, OutboxEntry{Ref: id})
		}
	}
	if err := o.Remove(ctx, bad); err != nil {
		o.log.Error("event outbox: delete undecodable entries", "error", err)
	}
	return out, nil
}

// streamEntry picks the id and the event field of one XRANGE reply entry.
func streamEntry(r any) (id, payload string, ok bool) {
	pair, _ := r.([]any)
	if len(pair) != 2 {
		return "", "", false
	}
	id, _ = pair[0].(string)
	fields, _ := pair[1].([]any)
	for i := 0; i+1 < len(fields); i += 2 {
		if name, _ := fields[i].(string); name == StreamField {
			payload, ok = fields[i+1].(string)
		}
	}
	return id, payload, ok && id != ""
}

// Remove deletes the entries.
func (o *RedisOutbox) Remove(ctx context.Context, entries []OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ids := make([]any, len(entries))
	for i := range entries {
		ids[i] = entries[i].Ref
	}
	if err := outboxRemove.Run(ctx, o.rdb, []string{o.key, o.bytes}, ids...).Err(); err != nil {
		return fmt.Errorf("event outbox: delete from %s: %w", o.key, err)
	}
	return nil
}

// Close gives the drain lease back, if this instance holds it.
func (o *RedisOutbox) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := outboxRelease.Run(ctx, o.rdb, []string{o.lease}, o.token).Err(); err != nil {
		return fmt.Errorf("event outbox: release %s: %w", o.lease, err)
	}
	return nil
}
