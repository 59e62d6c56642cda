// Package testenv gives tests real, isolated PostgreSQL schemas, SQLite files
// and Redis key prefixes, and the small kit tests share: a manual Clock and
// a concurrency-safe Buffer. A missing service fails the test with the
// command that fixes it; nothing is skipped, except that `go test -short`
// (make test-short, the quick tier) skips every test that needs a service
// or a built binary, in one place: NeedsService.
//
// PostgreSQL is found at TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable), Redis at
// TEST_REDIS_ADDR (default 127.0.0.1:6379). `make test` starts them when they
// are installed but not running (scripts/test-services.sh).
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

const (
	defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultRedisAddr   = "127.0.0.1:6379"
)

// PostgresBaseURL is the server the tests use.
func PostgresBaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultPostgresURL
}

// RedisAddr is the Redis server the tests use.
func RedisAddr() string {
	if a := os.Getenv("TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return defaultRedisAddr
}

// NeedsService marks t as needing something outside the process:
// PostgreSQL, Redis, headless Chromium, or a binary it builds or runs.
// Under `go test -short` it skips t, so that the quick tier needs no
// services; otherwise it does nothing (`make test` never passes -short, and
// a missing service then fails the test where it is used). PostgresURL and
// Redis call it; a test that reaches a service another way calls it first.
func NeedsService(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s: skipped under -short (make test-short); make test runs it", what)
	}
}

// Suffix returns a short random identifier for names.
func Suffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PostgresURL creates an empty schema for this test and returns a connection
// URL whose search_path points at it (pgx passes search_path as a runtime
// parameter). The schema is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	NeedsService(t, "PostgreSQL")
	base := PostgresBaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL is required at %s (set TEST_DATABASE_URL): %v\n"+
			"start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"+
			"or install it with: apt-get install -y postgresql", redact(base), err)
	}
	defer conn.Close(context.Background())
	schema := "t_" + Suffix()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// SQLitePath returns a fresh database file path in the test's temp dir.
func SQLitePath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "llm-proxy.db")
}

// Redis returns a client for the test Redis and a unique key prefix; keys
// under the prefix are deleted when the test ends. It fails the test when
// Redis does not answer.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	NeedsService(t, "Redis")
	addr := RedisAddr()
	c := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis is required at %s (set TEST_REDIS_ADDR): %v\n"+
			"start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no\n"+
			"or install it with: apt-get install -y redis-server", addr, err)
	}
	prefix := "test:" + Suffix() + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		_ = c.Close()
	})
	return c, prefix
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<invalid url>"
	}
	if p.User != nil {
		if _, ok := p.User.Password(); ok {
			p.User = url.UserPassword(p.User.Username(), "xxx")
		}
	}
	return strings.TrimSpace(p.String())
}

// Must fails the test on err.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(fmt.Sprint(err))
	}
}

// ProcessCPU is the CPU time (user and system) this process has used so
// far. Benchmarks report what an operation costs, its background goroutines
// included, as the difference of two readings divided by the operations.
func ProcessCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
