package usage

import "github.com/llm-proxy/llm-proxy/shared/sse"

// The SSE parser moved to shared/sse, the one SSE splitter; these names
// keep its callers here working until they import it.

// Event is one parsed Server-Sent Event.
//
// Deprecated: use sse.Event.
type Event = sse.Event

// Parser splits an SSE byte stream into events incrementally.
//
// Deprecated: use sse.Parser.
type Parser = sse.Parser

// ErrEventTooLarge is returned by Feed when one event exceeds the parser's
// bound.
//
// Deprecated: use sse.ErrEventTooLarge.
var ErrEventTooLarge = sse.ErrEventTooLarge

// NewParser returns a parser whose events may be at most maxEvent bytes
// (raw); 0 means 1 MiB.
//
// Deprecated: use sse.NewParser.
func NewParser(maxEvent int) *Parser { return sse.NewParser(maxEvent) }
