package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// Invalidator tells every proxy instance to forget cached validations. The
// management functions call it after every change to a token or project
// (revocation, deactivation, key change, limit change). The change is already
// committed to the store when it is called; an error means other instances
// may keep serving the old state until their cache TTL ends.
type Invalidator interface {
	InvalidateToken(ctx context.Context, id string) error
	InvalidateProject(ctx context.Context, id string) error
}

// subscribers is the set of validators a bus evicts from.
type subscribers struct {
	mu  sync.RWMutex
	set []*Validator
}

func (s *subscribers) add(v *Validator) {
	s.mu.Lock()
	s.set = append(s.set, v)
	s.mu.Unlock()
}

func (s *subscribers) each(fn func(*Validator)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.set {
		fn(v)
	}
}

// LocalBus is the in-process Invalidator (llm-proxy serve): it evicts from
// every subscribed Validator at once.
type LocalBus struct{ subs subscribers }

// NewLocalBus returns an empty in-process bus.
func NewLocalBus() *LocalBus { return &LocalBus{} }

// Subscribe adds v to the validators the bus evicts from.
func (b *LocalBus) Subscribe(v *Validator) { b.subs.add(v) }

// InvalidateToken evicts the token from every subscribed Validator.
func (b *LocalBus) InvalidateToken(_ context.Context, id string) error {
	b.subs.each(func(v *Validator) { v.InvalidateToken(id) })
	return nil
}

// InvalidateProject evicts the project's tokens from every subscribed Validator.
func (b *LocalBus) InvalidateProject(_ context.Context, id string) error {
	b.subs.each(func(v *Validator) { v.InvalidateProject(id) })
	return nil
}

// Messages on the Redis channel.
const (
	msgToken   = "token:"
	msgProject = "project:"
	msgFlush   = "flush"
)

// RedisBus is the cross-instance Invalidator: InvalidateToken and
// InvalidateProject evict from the local subscribers and PUBLISH on a Redis
// channel; Run subscribes to the channel and evicts on every message, so every
// instance forgets within a round trip. Redis pub/sub is at-most-once: when
// the subscription is lost and comes back, Run flushes the whole cache of its
// subscribers, since messages may have been missed in the gap.
type RedisBus struct {
	client  *redis.Client
	channel string
	log     *slog.Logger
	subs    subscribers

	// PingInterval: with no message for this long, Run pings to detect a dead
	// connection. Default 15s.
	PingInterval time.Duration
	// RetryBackoff is the maximum wait between resubscription attempts.
	// Default 2s.
	RetryBackoff time.Duration

	readyOnce sync.Once
	ready     chan struct{}
}

// NewRedisBus returns a bus on channel (e.g. REDIS_KEY_PREFIX +
// "tokens:invalidate"). Call Subscribe for each local Validator and run Run in
// a goroutine.
func NewRedisBus(client *redis.Client, channel string, log *slog.Logger) *RedisBus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RedisBus{
		client:       client,
		channel:      channel,
		log:          log,
		PingInterval: 15 * time.Second,
		RetryBackoff: 2 * time.Second,
		ready:        make(chan struct{}),
	}
}

// Subscribe adds v to the validators the bus evicts from.
func (b *RedisBus) Subscribe(v *Validator) { b.subs.add(v) }

// Ready is closed once Run's first subscription is confirmed by Redis.
func (b *RedisBus) Ready() <-chan struct{} { return b.ready }

// InvalidateToken evicts the token locally and publishes the eviction.
func (b *RedisBus) InvalidateToken(ctx context.Context, id string) error {
	b.subs.each(func(v *Validator) { v.InvalidateToken(id) })
	return b.publish(ctx, msgToken+id)
}

// InvalidateProject evicts the project's tokens locally and publishes the
// eviction.
func (b *RedisBus) InvalidateProject(ctx context.Context, id string) error {
	b.subs.each(func(v *Validator) { v.InvalidateProject(id) })
	return b.publish(ctx, msgProject+id)
}

// FlushAll asks every instance to forget every cached validation (e.g. after
// a key rotation).
func (b *RedisBus) FlushAll(ctx context.Context) error {
	b.subs.each(func(v *Validator) { v.Flush() })
	return b.publish(ctx, msgFlush)
}

func (b *RedisBus) publish(ctx context.Context, msg string) error {
	if err := b.client.Publish(ctx, b.channel, msg).Err(); err != nil {
		return llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable,
			"service temporarily unavailable", fmt.Errorf("publish token invalidation: %w", err))
	}
	return nil
}

func (b *RedisBus) handle(payload string) {
	switch {
	case strings.HasPrefix(payload, msgToken):
		id := payload[len(msgToken):]
		b.subs.each(func(v *Validator) { v.InvalidateToken(id) })
	case strings.HasPrefix(payload, msgProject):
		id := payload[len(msgProject):]
		b.subs.each(func(v *Validator) { v.InvalidateProject(id) })
	case payload == msgFlush:
		b.subs.each(func(v *Validator) { v.Flush() })
	default:
		// Unknown message (a newer version?): forgetting everything is safe.
		b.log.Warn("token invalidation: unknown message, flushing cache", "channel", b.channel)
		b.subs.each(func(v *Validator) { v.Flush() })
	}
}

// Run subscribes and applies invalidations until ctx ends. It resubscribes
// after connection loss (with backoff) and flushes the subscribers' caches on
// every (re)subscription. It returns nil when ctx ends.
func (b *RedisBus) Run(ctx context.Context) error {
	const minBackoff = 50 * time.Millisecond
	backoff := minBackoff
	for {
		subscribed, err := b.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if subscribed {
			backoff = minBackoff
		}
		b.log.Warn("token invalidation: subscription lost, resubscribing", "channel", b.channel, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, b.RetryBackoff)
	}
}

// session runs one subscription until it fails; subscribed reports that Redis
// confirmed it, err says why it ended.
func (b *RedisBus) session(ctx context.Context) (subscribed bool, err error) {
	ps := b.client.Subscribe(ctx, b.channel)
	defer ps.Close()
	// go-redis does not interrupt a blocked read when ctx ends: closing the
	// subscription does.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	awaitingPong := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, b.PingInterval)
		if err != nil {
			if ctx.Err() != nil {
				return subscribed, ctx.Err()
			}
			var netErr interface{ Timeout() bool }
			if errors.As(err, &netErr) && netErr.Timeout() && !awaitingPong {
				// Quiet channel: check that the connection is alive.
				if err := ps.Ping(ctx); err != nil {
					return subscribed, fmt.Errorf("ping: %w", err)
				}
				awaitingPong = true
				continue
			}
			return subscribed, err
		}
		awaitingPong = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == b.channel {
				// Messages published while we were not subscribed are lost:
				// forget everything cached so far.
				b.subs.each(func(v *Validator) { v.Flush() })
				subscribed = true
				b.readyOnce.Do(func() { close(b.ready) })
				b.log.Debug("token invalidation: subscribed", "channel", b.channel)
			}
		case *redis.Message:
			b.handle(m.Payload)
		case *redis.Pong:
		}
	}
}
