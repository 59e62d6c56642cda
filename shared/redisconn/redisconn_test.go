package redisconn

import (
	"context"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
)

func TestOptionsFollowConfiguration(t *testing.T) {
	o := Options(config.Redis{Addr: "redis.internal:6380", DB: 3, Password: "pw", Timeout: 750 * time.Millisecond})
	if o.Addr != "redis.internal:6380" || o.DB != 3 || o.Password != "pw" ||
		o.DialTimeout != 750*time.Millisecond || o.ReadTimeout != 750*time.Millisecond || o.WriteTimeout != 750*time.Millisecond {
		t.Fatalf("options %+v do not follow the configuration", o)
	}
	if o.PoolSize != PoolSize || o.Protocol != 2 || o.ReadBufferSize != 4<<10 || o.WriteBufferSize != 4<<10 {
		t.Fatalf("pool %d protocol %d buffers %d/%d, want %d, RESP2 and 4 KiB", o.PoolSize, o.Protocol, o.ReadBufferSize, o.WriteBufferSize, PoolSize)
	}
	if o.MaxRetries != -1 {
		t.Fatalf("MaxRetries = %d, want -1 (a retried script runs twice)", o.MaxRetries)
	}
	if New(config.Redis{}) != nil {
		t.Fatal("New without REDIS_ADDR returned a client")
	}
}

// The features llm-proxy uses work over RESP2: scripts, pipelines and
// pub/sub (the revocation bus).
func TestRESP2ServesWhatLLMProxyUses(t *testing.T) {
	testenv.NeedsService(t, "Redis")
	c := New(config.Redis{Addr: testenv.RedisAddr(), Timeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s: %v", testenv.RedisAddr(), err)
	}
	key := "llmproxy:test:redisconn:" + time.Now().Format("150405.000000000")
	defer c.Del(context.Background(), key)
	n, err := c.Eval(ctx, `return redis.call("INCRBY", KEYS[1], ARGV[1])`, []string{key}, 5).Int64()
	if err != nil || n != 5 {
		t.Fatalf("EVAL = %d, %v", n, err)
	}
	sub := c.Subscribe(ctx, key+":ch")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription confirmation
		t.Fatalf("subscribe: %v", err)
	}
	if err := c.Publish(ctx, key+":ch", "revoked").Err(); err != nil {
		t.Fatalf("publish: %v", err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "revoked" {
		t.Fatalf("message %+v, %v", msg, err)
	}
}
