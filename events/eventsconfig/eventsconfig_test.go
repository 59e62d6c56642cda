package eventsconfig

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
)

func load(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serve keeps undelivered events in DATA_DIR/outbox unless there is
// nothing to deliver to or EVENT_OUTBOX_MAX_BYTES=0.
func TestNewServeOutbox(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		env  map[string]string
		file bool
	}{
		{"default", map[string]string{"DATA_DIR": dir}, true},
		{"redis-streams", map[string]string{"DATA_DIR": dir, "LLM_PROXY_EVENT_BUS": "redis-streams"}, true},
		{"bus none", map[string]string{"DATA_DIR": dir, "LLM_PROXY_EVENT_BUS": "none"}, false},
		{"outbox off", map[string]string{"DATA_DIR": dir, "EVENT_OUTBOX_MAX_BYTES": "0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ob, err := NewServeOutbox(load(t, tc.env), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.file {
				if ob != nil {
					t.Fatalf("outbox %T, want none", ob)
				}
				return
			}
			defer ob.Close()
			fo, ok := ob.(*events.FileOutbox)
			if !ok || fo.Path() != filepath.Join(dir, "outbox", "events-0.outbox") {
				t.Fatalf("outbox %T %v", ob, ob)
			}
			if _, err := os.Stat(fo.Path()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A function keeps them in its own Redis stream, in memory (said in the
// log) without Redis, nowhere when it publishes nowhere.
func TestNewFunctionOutbox(t *testing.T) {
	rdb, _ := testenv.Redis(t)
	sink := map[string]string{"K_SINK": "http://broker.example/"}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	if ob := NewFunctionOutbox(load(t, sink), "proxy", rdb, log); ob == nil {
		t.Fatal("no outbox with Redis")
	} else if _, ok := ob.(*events.RedisOutbox); !ok {
		t.Fatalf("outbox %T with Redis", ob)
	}
	if got := OutboxKey(load(t, map[string]string{"REDIS_KEY_PREFIX": "p:"}), "proxy"); got != "p:{events}:outbox:proxy" {
		t.Fatalf("key %q", got)
	}
	if ob := NewFunctionOutbox(load(t, sink), "proxy", nil, log); ob == nil {
		t.Fatal("no outbox without Redis")
	} else if _, ok := ob.(*events.MemoryOutbox); !ok || !strings.Contains(logs.String(), "kept in memory") {
		t.Fatalf("outbox %T without Redis; log: %s", ob, logs.String())
	}
	if ob := NewFunctionOutbox(load(t, nil), "proxy", rdb, log); ob != nil {
		t.Fatalf("outbox %T without K_SINK (the bus is none)", ob)
	}
	if ob := NewFunctionOutbox(load(t, map[string]string{"K_SINK": sink["K_SINK"], "EVENT_OUTBOX_MAX_BYTES": "0"}), "proxy", rdb, log); ob != nil {
		t.Fatalf("outbox %T with EVENT_OUTBOX_MAX_BYTES=0", ob)
	}
}
