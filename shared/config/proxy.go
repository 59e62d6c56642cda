package config

import "time"

// Proxy configures the proxy function (/v1/*): the upstream API file, request
// bounds, streaming and observability capture.
type Proxy struct {
	APIConfigPath      string `env:"API_CONFIG_PATH" desc:"YAML file with the upstream API providers (the original's apis: schema). Empty: built-in default allowing the OpenAI API at https://api.openai.com."`
	DefaultAPIProvider string `env:"DEFAULT_API_PROVIDER, default=openai" desc:"Provider of API_CONFIG_PATH the proxy uses; falls back to the file's default_api when the name is not in the file."`
	MaxRequestSize     int64  `env:"MAX_REQUEST_SIZE, default=10485760" desc:"Largest request body the proxy accepts, in bytes (413 beyond it)."`

	// Upstream transport defaults, used when the YAML file does not set them.
	UpstreamResponseHeaderTimeout time.Duration `env:"UPSTREAM_RESPONSE_HEADER_TIMEOUT, default=120s" desc:"Time to wait for upstream response headers when the API file sets no timeouts.response_header (streams are not cut afterwards)."`
	UpstreamIdleConnTimeout       time.Duration `env:"UPSTREAM_IDLE_CONN_TIMEOUT, default=90s" desc:"How long an idle upstream connection is kept when the API file sets no timeouts.idle_connection."`
	UpstreamMaxIdleConns          int           `env:"UPSTREAM_MAX_IDLE_CONNS, default=1024" desc:"Idle upstream connections kept in total when the API file sets no connection.max_idle_conns."`
	UpstreamMaxIdleConnsPerHost   int           `env:"UPSTREAM_MAX_IDLE_CONNS_PER_HOST, default=512" desc:"Idle upstream connections kept per host when the API file sets no connection.max_idle_conns_per_host (size it to the concurrency to avoid connection churn)."`

	StreamKeepAlive      time.Duration `env:"STREAM_KEEPALIVE_INTERVAL, default=15s" desc:"Interval of ': keep-alive' comments on idle SSE streams (0 disables them)."`
	DefaultReserveTokens int64         `env:"DEFAULT_RESERVE_TOKENS, default=1024" desc:"Output tokens reserved against token-per-minute/day limits when a request sets no max_tokens / max_completion_tokens / max_output_tokens."`

	CaptureBodies          bool  `env:"OBSERVABILITY_CAPTURE_BODIES, default=false" desc:"Copy request and response bodies (bounded) into request events."`
	MaxRequestBodyCapture  int64 `env:"OBSERVABILITY_MAX_REQUEST_BODY_BYTES, default=65536" desc:"Bytes of the request body kept for events when OBSERVABILITY_CAPTURE_BODIES is on."`
	MaxResponseBodyCapture int64 `env:"OBSERVABILITY_MAX_RESPONSE_BODY_BYTES, default=262144" desc:"Bytes of the response body (raw SSE for streams) kept for events when OBSERVABILITY_CAPTURE_BODIES is on."`

	EnableMetrics bool   `env:"ENABLE_METRICS, default=true" desc:"Serve metrics: Prometheus text at METRICS_PATH, the original's JSON counters at METRICS_PATH/json."`
	MetricsPath   string `env:"METRICS_PATH, default=/metrics" desc:"Path of the Prometheus metrics endpoint."`
}

func (x Proxy) validate() error {
	switch {
	case x.MaxRequestSize <= 0:
		return invalid("MAX_REQUEST_SIZE", "must be a positive number of bytes", x.MaxRequestSize)
	case x.UpstreamResponseHeaderTimeout < 0:
		return invalid("UPSTREAM_RESPONSE_HEADER_TIMEOUT", "must not be negative", x.UpstreamResponseHeaderTimeout)
	case x.UpstreamIdleConnTimeout < 0:
		return invalid("UPSTREAM_IDLE_CONN_TIMEOUT", "must not be negative", x.UpstreamIdleConnTimeout)
	case x.UpstreamMaxIdleConns < 0:
		return invalid("UPSTREAM_MAX_IDLE_CONNS", "must not be negative", x.UpstreamMaxIdleConns)
	case x.UpstreamMaxIdleConnsPerHost < 0:
		return invalid("UPSTREAM_MAX_IDLE_CONNS_PER_HOST", "must not be negative", x.UpstreamMaxIdleConnsPerHost)
	case x.StreamKeepAlive < 0:
		return invalid("STREAM_KEEPALIVE_INTERVAL", "must not be negative", x.StreamKeepAlive)
	case x.DefaultReserveTokens < 0:
		return invalid("DEFAULT_RESERVE_TOKENS", "must not be negative", x.DefaultReserveTokens)
	case x.MaxRequestBodyCapture < 0:
		return invalid("OBSERVABILITY_MAX_REQUEST_BODY_BYTES", "must not be negative", x.MaxRequestBodyCapture)
	case x.MaxResponseBodyCapture < 0:
		return invalid("OBSERVABILITY_MAX_RESPONSE_BODY_BYTES", "must not be negative", x.MaxResponseBodyCapture)
	case x.EnableMetrics && (x.MetricsPath == "" || x.MetricsPath[0] != '/'):
		return invalid("METRICS_PATH", "must start with /", x.MetricsPath)
	}
	return nil
}
