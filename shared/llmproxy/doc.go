// Package llmproxy holds the domain types of the LLM proxy (projects, tokens,
// limits, audit events, usage) and its error vocabulary.
//
// It imports only the standard library, so every other package can depend on
// it without pulling in adapters. Adapters (store, cache, limiter, …) translate
// their own failures into the sentinel errors defined here; one place in
// shared/web turns them into HTTP statuses.
package llmproxy
