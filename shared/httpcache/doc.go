// Package httpcache is the proxy's HTTP response cache: project-scoped keys,
// Redis or bounded in-memory storage, streaming-aware capture and replay.
//
// New builds a Cache over a Backend (NewMemory or NewRedis); Open builds one
// from the configuration. Cache.Serve answers a request around the proxy's
// upstream call, given what the key needs (Request), and returns its cache
// status; Cache.Purge serves POST /manage/cache/purge, Cache.Collectors
// feeds /metrics. See docs/cache.md for what is cached and how keys are made.
package httpcache
