// Package httpcache is the proxy's HTTP response cache: project-scoped keys,
// Redis or bounded in-memory storage, streaming-aware capture and replay.
package httpcache
