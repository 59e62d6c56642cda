package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Outbox holds the events a publisher could not deliver, oldest first, until
// the Emitter delivers them: on disk (FileOutbox, `llm-proxy serve`), in
// Redis (RedisOutbox, the functions) or in memory (MemoryOutbox, functions
// without Redis). It is bounded by the bytes of the events it holds (their
// structured-mode JSON); what does not fit is refused, and the Emitter drops
// and counts it (reason outbox_full).
//
// Deliveries from an outbox are at least once: an event delivered but not
// yet removed when the process dies is delivered again, and the dispatcher
// deduplicates on (source, id).
type Outbox interface {
	// Append stores evs after the events already held, durably before it
	// returns, and returns how many it stored: evs[:stored] are kept, the
	// rest did not fit within the bound.
	Append(ctx context.Context, evs []event.Event) (stored int, err error)
	// Peek returns up to n of the oldest events, oldest first, without
	// removing them; none when the outbox is empty. A shared outbox returns
	// ErrOutboxBusy while another process drains it.
	Peek(ctx context.Context, n int) ([]OutboxEntry, error)
	// Remove removes entries, a prefix of what the last Peek returned,
	// once they were delivered (or rejected for good).
	Remove(ctx context.Context, entries []OutboxEntry) error
	// Close releases the outbox (its lock); what it holds stays for the
	// next process that opens it.
	Close() error
}

// OutboxEntry is one event held in an Outbox; Ref identifies it to Remove.
type OutboxEntry struct {
	Event event.Event
	Ref   string
}

// ErrOutboxBusy is Peek's answer while another process drains a shared
// outbox: the caller's new events still go behind the ones held, and it
// tries again later.
var ErrOutboxBusy = errors.New("event outbox is being drained by another process")

// DefaultOutboxMaxBytes is the bound of an outbox when none is given (64 MiB).
const DefaultOutboxMaxBytes = 64 << 20

// encodeForOutbox encodes evs (structured-mode JSON) for an outbox bounded
// to room more bytes, overhead extra bytes per event: the encodings of the
// longest prefix that fits. An event that cannot be encoded is invalid and
// refused at the same point (the Emitter counts the rest).
func encodeForOutbox(evs []event.Event, room, overhead int64) ([][]byte, error) {
	out := make([][]byte, 0, len(evs))
	for i := range evs {
		b, err := EncodeEvent(&evs[i])
		if err != nil {
			return out, err
		}
		size := int64(len(b)) + overhead
		if size > room {
			break
		}
		room -= size
		out = append(out, b)
	}
	return out, nil
}

// decodeEntry decodes one raw outbox record; one that cannot be decoded (it
// cannot be delivered either) is logged and left out, and Remove takes it
// away with the entries after it.
func decodeEntry(log *slog.Logger, ref string, b []byte) (OutboxEntry, bool) {
	ev, err := DecodeEvent(b)
	if err != nil {
		log.Error("event outbox: undecodable entry skipped", "ref", ref, "error", err)
		return OutboxEntry{}, false
	}
	return OutboxEntry{Event: ev, Ref: ref}, true
}

// MemoryOutbox is an Outbox in the process's memory, for functions without
// Redis: it rides out a sink outage but not a restart.
type MemoryOutbox struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	first uint64 // sequence number of recs[0]
	recs  [][]byte
	log   *slog.Logger
}

// NewMemoryOutbox holds at most maxBytes of events (0 or less: the default).
// log may be nil.
func NewMemoryOutbox(maxBytes int64, log *slog.Logger) *MemoryOutbox {
	if maxBytes <= 0 {
		maxBytes = DefaultOutboxMaxBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &MemoryOutbox{max: maxBytes, log: log}
}

// Append keeps what fits.
func (o *MemoryOutbox) Append(_ context.Context, evs []event.Event) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	recs, err := encodeForOutbox(evs, o.max-o.bytes, 0)
	for _, b := range recs {
		o.recs = append(o.recs, b)
		o.bytes += int64(len(b))
	}
	return len(recs), err
}

// Peek returns up to n of the oldest events.
func (o *MemoryOutbox) Peek(_ context.Context, n int) ([]OutboxEntry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []OutboxEntry
	for i := 0; i < len(o.recs) && len(out) < n; i++ {
		if e, ok := decodeEntry(o.log, strconv.FormatUint(o.first+uint64(i), 10), o.recs[i]); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// Remove drops the oldest events up to the last of entries.
func (o *MemoryOutbox) Remove(_ context.Context, entries []OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	seq, err := strconv.ParseUint(entries[len(entries)-1].Ref, 10, 64)
	if err != nil {
		return fmt.Errorf("memory outbox: bad ref %q", entries[len(entries)-1].Ref)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.first <= seq && len(o.recs) > 0 {
		o.bytes -= int64(len(o.recs[0]))
		o.recs[0] = nil
		o.recs = o.recs[1:]
		o.first++
	}
	if len(o.recs) == 0 {
		o.recs = nil // let the backing array go
	}
	return nil
}

// Close does nothing: what the memory outbox held is lost with the process.
func (o *MemoryOutbox) Close() error { return nil }
