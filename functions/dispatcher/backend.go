package dispatcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/shared/config"
)

// Record is one event handed to a backend; Request is its decoded data when
// it is a request event (nil for a RawBackend).
type Record struct {
	Event   event.Event
	Request *events.RequestCompleted
	key     string // Key(&Event), when the dispatcher computed it
}

// Key is the dedup key of an event: its source and id.
func Key(ev *event.Event) string { return ev.Source() + "\x00" + ev.ID() }

// Key is the dedup key of the record's event.
func (r *Record) Key() string {
	if r.key != "" {
		return r.key
	}
	return Key(&r.Event)
}

// Backend delivers records to one destination. Deliver returns nil when all
// were accepted, an *events.BatchError when only some were, an error marked
// events.Permanent when the destination rejected them, or another error
// (retryable).
type Backend interface {
	Name() string
	// Accepts reports whether the backend wants events of this type; others
	// are acknowledged without delivery.
	Accepts(eventType string) bool
	Deliver(ctx context.Context, recs []Record) error
}

// RawBackend is a Backend that delivers each event as it is (its
// structured JSON) and never reads Record.Request: the dispatcher does not
// decode the data of request events for it (Record.Request stays nil), it
// only checks that the data is a JSON object.
type RawBackend interface {
	Backend
	RawEvents()
}

// IdempotentBackend is a Backend that by itself never delivers an event
// (source, id) twice, across restarts too. Given no Deduper, a dispatcher
// leaves deduplication to it rather than keep an in-memory Deduper that
// would remember less; it reports the duplicates it skips to the counter
// CountDuplicates gives it.
type IdempotentBackend interface {
	Backend
	CountDuplicates(prometheus.Counter)
}

// Backend names (DISPATCHER_SERVICE).
const (
	ServiceFile     = "file"
	ServiceLunary   = "lunary"
	ServiceHelicone = "helicone"
	ServiceWebhook  = "webhook"
)

// Default endpoints.
const (
	DefaultFilePath         = "events.jsonl"
	DefaultLunaryEndpoint   = "https://api.lunary.ai/v1/runs/ingest"
	DefaultHeliconeEndpoint = "https://api.worker.helicone.ai/custom/v1/log"
)

// BackendConfig selects and configures a backend.
type BackendConfig struct {
	Service       string // file, lunary, helicone, webhook
	Endpoint      string // file path or URL (defaults above; required for webhook)
	APIKey        string // lunary, helicone
	WebhookSecret string // webhook (required)
	BatchSize     int    // lunary: records per request (100)
	Timeout       time.Duration
	FileMaxBytes  int64        // file: rotation size (0: never)
	HTTPClient    *http.Client // nil: a client with Timeout
}

// BackendConfigFrom maps the configuration (DISPATCHER_*).
func BackendConfigFrom(cfg config.Events) BackendConfig {
	return BackendConfig{
		Service:       cfg.DispatcherService,
		Endpoint:      cfg.DispatcherEndpoint,
		APIKey:        cfg.APIKey(),
		WebhookSecret: cfg.WebhookSecret,
		BatchSize:     cfg.DispatcherBatchSize,
		Timeout:       cfg.DispatcherTimeout,
		FileMaxBytes:  cfg.FileMaxBytes,
	}
}

// NewBackend builds the backend c.Service names.
func NewBackend(c BackendConfig) (Backend, error) {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.Timeout}
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	switch c.Service {
	case ServiceFile, "":
		path := c.Endpoint
		if path == "" {
			path = DefaultFilePath
		}
		return NewFileBackend(path, c.FileMaxBytes)
	case ServiceLunary:
		if c.APIKey == "" {
			return nil, errors.New("lunary backend needs DISPATCHER_API_KEY (or LLM_PROXY_API_KEY)")
		}
		return &LunaryBackend{Endpoint: or(c.Endpoint, DefaultLunaryEndpoint), APIKey: c.APIKey, Client: c.HTTPClient, BatchSize: c.BatchSize}, nil
	case ServiceHelicone:
		if c.APIKey == "" {
			return nil, errors.New("helicone backend needs DISPATCHER_API_KEY (or LLM_PROXY_API_KEY)")
		}
		return &HeliconeBackend{Endpoint: or(c.Endpoint, DefaultHeliconeEndpoint), APIKey: c.APIKey, Client: c.HTTPClient}, nil
	case ServiceWebhook:
		if c.Endpoint == "" {
			return nil, errors.New("webhook backend needs DISPATCHER_ENDPOINT")
		}
		if c.WebhookSecret == "" {
			return nil, errors.New("webhook backend needs DISPATCHER_WEBHOOK_SECRET")
		}
		return &WebhookBackend{Endpoint: c.Endpoint, Secret: []byte(c.WebhookSecret), Client: c.HTTPClient}, nil
	}
	return nil, fmt.Errorf("unknown dispatcher service %q (file, lunary, helicone, webhook)", c.Service)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// post sends body and maps the answer: 2xx nil; 408/429/5xx and network
// errors retryable; other statuses permanent.
func post(ctx context.Context, client *http.Client, url string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return events.Permanent(fmt.Errorf("backend request: %w", err))
	}
	req.Header = header
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("backend unreachable: %w", redactURLError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c/100 == 2:
		return nil
	case c == 408 || c == 429 || c >= 500 || c == 401 || c == 403:
		// Authentication failures are configuration errors an operator can
		// fix: retry (and dead-letter eventually) rather than drop.
		return &statusError{code: c}
	default:
		return events.Permanent(&statusError{code: c})
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return fmt.Sprintf("backend answered %d", e.code) }

// redactURLError drops the URL (it may carry credentials) from a client error.
func redactURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
