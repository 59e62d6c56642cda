package ratelimit

import (
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/internal/faultproxy"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/redisconn"
)

// deadAddr returns a 127.0.0.1 address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// faultyRedis returns a client with the production options (timeout as
// REDIS_TIMEOUT) that reaches the test Redis through a fault proxy, and a
// key prefix of the test's own for a limiter.
func faultyRedis(t *testing.T, timeout time.Duration) (*faultproxy.Proxy, *redis.Client, string) {
	t.Helper()
	_, prefix := testenv.Redis(t)
	p := faultproxy.Start(t, testenv.RedisAddr())
	c := redisconn.New(config.Redis{Addr: p.Addr(), Timeout: timeout})
	t.Cleanup(func() { _ = c.Close() })
	return p, c, prefix + "rl:"
}
