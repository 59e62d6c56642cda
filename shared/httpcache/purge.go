package httpcache

import "github.com/llm-proxy/llm-proxy/shared/llmproxy"

// PurgeRequest selects cache entries to delete (the management service's
// purge, a domain type so that management needs no import of the cache).
type PurgeRequest = llmproxy.CachePurge
