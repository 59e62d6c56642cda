package config

import (
	"net/url"
	"time"
)

// Events configures CloudEvents publishing (every function that emits), the
// dispatcher function and the `llm-proxy dispatch` Redis Streams consumer.
type Events struct {
	Bus    string `env:"LLM_PROXY_EVENT_BUS, default=in-process" desc:"Where events go: in-process (llm-proxy serve: an in-process broker delivering over HTTP to the dispatchers it mounts), http (POST binary-mode CloudEvents to K_SINK), redis-streams (XADD to REDIS_STREAM_KEY for llm-proxy dispatch), or none."`
	Sink   string `env:"K_SINK" desc:"URL that receives events when LLM_PROXY_EVENT_BUS=http: set by a Knative SinkBinding, or an OpenFaaS /async-function/<dispatcher> URL."`
	Source string `env:"EVENT_SOURCE" desc:"CloudEvents source attribute of emitted events. Empty: /llmproxy/functions/<function>."`

	BufferSize     int           `env:"OBSERVABILITY_BUFFER_SIZE, default=1000" desc:"Events queued for publishing per process; when full, new events are dropped (counted in llm_proxy_events_dropped_total and logged)."`
	BatchSize      int           `env:"EVENT_BATCH_SIZE, default=100" desc:"Most events a publisher sends in one batch."`
	FlushInterval  time.Duration `env:"EVENT_FLUSH_INTERVAL, default=100ms" desc:"How long the publisher waits to fill a batch after the first queued event."`
	Retries        int           `env:"EVENT_PUBLISH_RETRIES, default=5" desc:"Retries of a failed publish (exponential backoff with jitter) before the events go to the outbox (EVENT_OUTBOX_MAX_BYTES)."`
	RetryBackoff   time.Duration `env:"EVENT_RETRY_BACKOFF, default=200ms" desc:"First retry delay of publishing; doubles per retry, capped at 30s."`
	OutboxMaxBytes int64         `env:"EVENT_OUTBOX_MAX_BYTES, default=67108864" desc:"Bound of the outbox that keeps events the sink did not take after the retries, until it is back (llm-proxy serve: files in DATA_DIR/outbox; the functions: a Redis stream <REDIS_KEY_PREFIX>{events}:outbox:<function>, in memory without Redis). Events beyond it are dropped and counted (reason outbox_full). 0: no outbox, such events are dropped (reason publish_failed)."`

	FileEventLog string `env:"FILE_EVENT_LOG" desc:"llm-proxy serve: also deliver events to a file dispatcher appending JSON lines (one CloudEvent each) to this path."`

	StreamKey        string        `env:"REDIS_STREAM_KEY, default=llm-proxy-events" desc:"Redis stream of LLM_PROXY_EVENT_BUS=redis-streams (consumed by llm-proxy dispatch)."`
	StreamMaxLen     int64         `env:"REDIS_STREAM_MAX_LEN, default=100000" desc:"Approximate bound of the Redis stream (XADD MAXLEN ~); older entries are trimmed."`
	ConsumerGroup    string        `env:"REDIS_CONSUMER_GROUP, default=llm-proxy-dispatchers" desc:"Consumer group of llm-proxy dispatch: dispatchers in one group share the work, different groups each get every event."`
	ConsumerName     string        `env:"REDIS_CONSUMER_NAME" desc:"Consumer name within the group, unique among running dispatchers and the same across restarts (a restarted dispatcher takes back at once what its former run left). Empty: dispatcher-<service>-<hostname>-<n>, n the lowest slot free on this host (a lock file in TMPDIR; where none can be made, pid<process id>)."`
	StreamBlockTime  time.Duration `env:"REDIS_STREAM_BLOCK_TIME, default=5s" desc:"How long one XREADGROUP waits for new events."`
	StreamClaimTime  time.Duration `env:"REDIS_STREAM_CLAIM_TIME, default=30s" desc:"Events pending this long at another (dead) consumer are reclaimed (XAUTOCLAIM); a dispatcher that stopped renewing its liveness for a third of it (1 to 10 s) counts as dead, and its dedup leases are taken back."`
	StreamBatchSize  int64         `env:"REDIS_STREAM_BATCH_SIZE, default=100" desc:"Events read from the stream per XREADGROUP and delivered to the backend as one batch."`
	DeadLetterStream string        `env:"REDIS_DEAD_LETTER_STREAM_KEY" desc:"Stream receiving events that failed DISPATCHER_MAX_ATTEMPTS times. Empty: <REDIS_STREAM_KEY>:dead-letters."`

	DispatcherService     string        `env:"DISPATCHER_SERVICE, default=file" desc:"Backend of the dispatcher: file, lunary, helicone or webhook."`
	DispatcherEndpoint    string        `env:"DISPATCHER_ENDPOINT" desc:"file: the JSONL path (default events.jsonl); lunary, helicone: API URL (defaults: https://api.lunary.ai/v1/runs/ingest, https://api.worker.helicone.ai/custom/v1/log); webhook: the URL (required)."`
	DispatcherAPIKey      string        `env:"DISPATCHER_API_KEY" desc:"API key of the lunary or helicone backend (sent as Authorization: Bearer). Never logged."`
	LegacyAPIKey          string        `env:"LLM_PROXY_API_KEY" desc:"The original's name for DISPATCHER_API_KEY, used when DISPATCHER_API_KEY is empty."`
	WebhookSecret         string        `env:"DISPATCHER_WEBHOOK_SECRET" desc:"HMAC-SHA-256 key signing webhook bodies (X-LLM-Proxy-Signature: sha256=<hex> over <timestamp>.<body>). Required by the webhook backend."`
	DispatcherBatchSize   int           `env:"DISPATCHER_BATCH_SIZE, default=100" desc:"Most events sent to the lunary backend in one request."`
	DispatcherTimeout     time.Duration `env:"DISPATCHER_TIMEOUT, default=30s" desc:"Timeout of one backend HTTP request."`
	DispatcherMaxAttempts int           `env:"DISPATCHER_MAX_ATTEMPTS, default=5" desc:"llm-proxy dispatch: failed deliveries of one event before it moves to the dead-letter stream."`
	DedupTTL              time.Duration `env:"DISPATCHER_DEDUP_TTL, default=24h" desc:"How long the dispatcher remembers delivered (source, id) pairs to acknowledge redeliveries without delivering twice (in Redis when REDIS_ADDR is set, else in memory; the file backend without Redis remembers its last 1,048,576 events instead)."`
	MaxEventBytes         int64         `env:"DISPATCHER_MAX_EVENT_BYTES, default=16777216" desc:"Largest request the dispatcher accepts, one CloudEvent or a batch of them; a larger one is answered 413 and not delivered. An event holds at most OBSERVABILITY_MAX_REQUEST_BODY_BYTES and OBSERVABILITY_MAX_RESPONSE_BODY_BYTES of bodies, JSON-escaped."`
	FileMaxBytes          int64         `env:"DISPATCHER_FILE_MAX_BYTES, default=104857600" desc:"The file backend rotates its JSONL file (to <path>.<timestamp>) when it would grow beyond this size (0: never)."`
}

// APIKey is DispatcherAPIKey, else the legacy LLM_PROXY_API_KEY.
func (x Events) APIKey() string {
	if x.DispatcherAPIKey != "" {
		return x.DispatcherAPIKey
	}
	return x.LegacyAPIKey
}

// SourceFor is the CloudEvents source of function fn: EVENT_SOURCE when set,
// else /llmproxy/functions/<fn>.
func (x Events) SourceFor(fn string) string {
	if x.Source != "" {
		return x.Source
	}
	return "/llmproxy/functions/" + fn
}

// DeadLetterKey is the dead-letter stream's key.
func (x Events) DeadLetterKey() string {
	if x.DeadLetterStream != "" {
		return x.DeadLetterStream
	}
	return x.StreamKey + ":dead-letters"
}

func (x Events) validate() error {
	if err := oneOf("LLM_PROXY_EVENT_BUS", x.Bus, "in-process", "http", "redis-streams", "none"); err != nil {
		return err
	}
	if err := oneOf("DISPATCHER_SERVICE", x.DispatcherService, "file", "lunary", "helicone", "webhook"); err != nil {
		return err
	}
	if x.Bus == "http" && x.Sink == "" {
		return invalid("K_SINK", "must be set when LLM_PROXY_EVENT_BUS=http", "")
	}
	if x.Sink != "" {
		if u, err := url.Parse(x.Sink); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("K_SINK", "must be an http(s) URL", "<redacted>")
		}
	}
	switch {
	case x.BufferSize < 1:
		return invalid("OBSERVABILITY_BUFFER_SIZE", "must be at least 1", x.BufferSize)
	case x.BatchSize < 1:
		return invalid("EVENT_BATCH_SIZE", "must be at least 1", x.BatchSize)
	case x.FlushInterval < 0:
		return invalid("EVENT_FLUSH_INTERVAL", "must not be negative", x.FlushInterval)
	case x.Retries < 0:
		return invalid("EVENT_PUBLISH_RETRIES", "must not be negative", x.Retries)
	case x.RetryBackoff <= 0:
		return invalid("EVENT_RETRY_BACKOFF", "must be positive", x.RetryBackoff)
	case x.OutboxMaxBytes < 0:
		return invalid("EVENT_OUTBOX_MAX_BYTES", "must not be negative", x.OutboxMaxBytes)
	case x.StreamKey == "":
		return invalid("REDIS_STREAM_KEY", "must not be empty", x.StreamKey)
	case x.StreamMaxLen < 1:
		return invalid("REDIS_STREAM_MAX_LEN", "must be at least 1", x.StreamMaxLen)
	case x.ConsumerGroup == "":
		return invalid("REDIS_CONSUMER_GROUP", "must not be empty", x.ConsumerGroup)
	case x.StreamBlockTime <= 0:
		return invalid("REDIS_STREAM_BLOCK_TIME", "must be positive", x.StreamBlockTime)
	case x.StreamClaimTime <= 0:
		return invalid("REDIS_STREAM_CLAIM_TIME", "must be positive", x.StreamClaimTime)
	case x.StreamBatchSize < 1:
		return invalid("REDIS_STREAM_BATCH_SIZE", "must be at least 1", x.StreamBatchSize)
	case x.DispatcherBatchSize < 1:
		return invalid("DISPATCHER_BATCH_SIZE", "must be at least 1", x.DispatcherBatchSize)
	case x.DispatcherTimeout <= 0:
		return invalid("DISPATCHER_TIMEOUT", "must be positive", x.DispatcherTimeout)
	case x.DispatcherMaxAttempts < 1:
		return invalid("DISPATCHER_MAX_ATTEMPTS", "must be at least 1", x.DispatcherMaxAttempts)
	case x.DedupTTL <= 0:
		return invalid("DISPATCHER_DEDUP_TTL", "must be positive", x.DedupTTL)
	case x.MaxEventBytes < 1024:
		return invalid("DISPATCHER_MAX_EVENT_BYTES", "must be at least 1024", x.MaxEventBytes)
	case x.FileMaxBytes < 0:
		return invalid("DISPATCHER_FILE_MAX_BYTES", "must not be negative", x.FileMaxBytes)
	}
	return nil
}
