package httpcache

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

func load(t *testing.T, env map[string]string) (config.Config, error) {
	t.Helper()
	return config.Load(context.Background(), envconfig.MapLookuper(env))
}

func TestConfig(t *testing.T) {
	cfg, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cache
	if !c.Enabled || c.Backend != "in-memory" || c.DefaultTTL.D() != 300*time.Second || c.MaxObjectBytes != 1<<20 ||
		c.MaxBytes != 64<<20 || c.RedisKeyPrefix != "llmproxy:cache:" || !c.StreamResponses || c.Debug {
		t.Fatalf("defaults: %+v", c)
	}
	cfg, err = load(t, map[string]string{"HTTP_CACHE_DEFAULT_TTL": "42", "HTTP_CACHE_ENABLED": "no", "HTTP_CACHE_PATHS": "/v1/embeddings, /v1/moderations"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cache.DefaultTTL.D() != 42*time.Second || cfg.Cache.Enabled || len(cfg.Cache.PathList()) != 2 {
		t.Fatalf("parsed: %+v", cfg.Cache)
	}
	if c, err := Open(cfg.Cache, nil, nil); err != nil || c != nil {
		t.Fatalf("disabled cache: %v %v", c, err)
	}
	for _, tc := range []struct {
		env  map[string]string
		name string
	}{
		{map[string]string{"HTTP_CACHE_BACKEND": "memcached"}, "HTTP_CACHE_BACKEND"},
		{map[string]string{"HTTP_CACHE_DEFAULT_TTL": "soon"}, "HTTP_CACHE_DEFAULT_TTL"},
		{map[string]string{"HTTP_CACHE_DEFAULT_TTL": "0"}, "HTTP_CACHE_DEFAULT_TTL"},
		{map[string]string{"HTTP_CACHE_ENABLED": "maybe"}, "HTTP_CACHE_ENABLED"},
		{map[string]string{"HTTP_CACHE_MAX_BYTES": "10"}, "HTTP_CACHE_MAX_BYTES"},
		{map[string]string{"HTTP_CACHE_PATHS": "v1/embeddings"}, "HTTP_CACHE_PATHS"},
		{map[string]string{"REDIS_CACHE_URL": "http://x"}, "REDIS_CACHE_URL"},
	} {
		if _, err := load(t, tc.env); err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%v: err %v, want it to name %s", tc.env, err, tc.name)
		}
	}
}

func TestOpen(t *testing.T) {
	cfg, err := load(t, map[string]string{"HTTP_CACHE_BACKEND": "redis", "HTTP_CACHE_PATHS": "/v1/embeddings"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg.Cache, nil, nil); err == nil {
		t.Fatal("redis backend without address accepted")
	}
	shared, prefix := testenv.Redis(t)
	// Without REDIS_CACHE_URL the cache uses the process's shared client.
	cfg.Cache.RedisKeyPrefix = prefix + "shared:"
	sc, err := Open(cfg.Cache, shared, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := newHarnessWith(t, sc.backend, sc.opts, testenv.NewClock(time.Time{}))
	hs.do(req{path: "/v1/embeddings", body: `{"input":"s"}`})
	ws, is := hs.do(req{path: "/v1/embeddings", body: `{"input":"s"}`})
	expectStatus(t, ws, is, llmproxy.CacheHit)
	if n, _ := shared.Keys(context.Background(), prefix+"shared:*").Result(); len(n) == 0 {
		t.Fatal("the shared client stored nothing under the cache prefix")
	}
	if err := sc.Close(); err != nil || shared.Ping(context.Background()).Err() != nil {
		t.Fatalf("closing the cache must not close the shared client: %v", err)
	}
	cfg.Cache.RedisURL = "redis://" + testenv.RedisAddr() + "/0"
	cfg.Cache.RedisKeyPrefix = prefix + "open:"
	c, err := Open(cfg.Cache, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := newHarnessWith(t, c.backend, c.opts, testenv.NewClock(time.Time{}))
	h.do(req{path: "/v1/embeddings", body: `{"input":"a"}`})
	w, i := h.do(req{path: "/v1/embeddings", body: `{"input":"a"}`})
	expectStatus(t, w, i, llmproxy.CacheHit)
	if _, err := c.Purge(context.Background(), PurgeRequest{All: true}); err != nil {
		t.Fatal(err)
	}
}
