// Package events is llm-proxy's CloudEvents contract and its publishers.
//
// Every fact llm-proxy announces is a CloudEvents 1.0 event with a
// reverse-DNS, versioned type (TypeRequestCompleted, TypeProjectUpdated,
// TypeTokenCreated, TypeTokenRevoked), id = the request id (so consumers can
// deduplicate on source+id), subject = the project id and the extensions
// projectid, tokenid and model. README.md documents every type and field.
//
// The Emitter takes events off the request path: RequestCompleted copies what
// it needs from a *llmproxy.RequestInfo into a bounded queue (drops are
// counted, never silent) and a background worker builds the events, batches
// them and hands them to a Publisher with retries; what still fails waits in
// an Outbox (FileOutbox, RedisOutbox, MemoryOutbox), bounded in bytes and
// drained oldest first, with new events behind it, when the sink is back.
// Publishers: Broker
// (in-process, with Trigger-like filters, to in-process subscribers by
// function call or to subscriber URLs over real HTTP),
// HTTPPublisher (K_SINK: Knative SinkBinding or an OpenFaaS async URL) and
// RedisStreamPublisher (XADD with MAXLEN ~).
package events
