package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/functions/dispatcher"
)

// Delivery delivers a batch of events, one error per event (nil: done or
// duplicate; wrapping dispatcher.ErrPoison: never deliverable; other:
// retry). *dispatcher.Dispatcher implements it.
type Delivery interface {
	DeliverBatch(ctx context.Context, evs []event.Event) []error
}

// ConsumerOptions configures a Consumer. Zero values take the defaults shown.
type ConsumerOptions struct {
	Stream      string        // required
	Group       string        // required: same group shares work, another group gets every event
	Consumer    string        // required: unique per process
	DeadLetter  string        // dead-letter stream (<Stream>:dead-letters)
	BatchSize   int64         // entries per read (100)
	Block       time.Duration // XREADGROUP BLOCK (5s)
	ClaimIdle   time.Duration // reclaim entries idle this long at other consumers (30s)
	MaxAttempts int           // failed deliveries before dead-lettering (5)
	Backoff     time.Duration // first wait before retrying a failed event (500ms), doubling with jitter
	MaxBackoff  time.Duration // cap (30s)
	// InFlightWait caps the wait before looking again at an event whose
	// delivery is under way elsewhere (1s); the wait starts at Backoff.
	InFlightWait time.Duration
}

// Consumer reads events from a Redis stream with a consumer group and hands
// them to a Delivery in batches. It acknowledges (XACK) an entry only after
// the delivery accepted it, first re-reads its own pending entries after a
// restart, reclaims entries of dead consumers (XAUTOCLAIM after ClaimIdle),
// and moves an entry that failed MaxAttempts times (or is poison) to the
// dead-letter stream.
//
// An entry that must be retried waits on its own, without holding back the
// entries after it: it stays pending (in the consumer's PEL) and is read
// again when its time comes, while the consumer goes on with new entries.
// A failed delivery counts an attempt and waits Backoff, doubling up to
// MaxBackoff; a delivery under way elsewhere (dispatcher.ErrInFlight) is no
// failure: it is looked at again after Backoff, doubling up to
// InFlightWait, as long as it takes, and never dead-lettered for it. The
// consumer backs off as a whole only when a batch failed without any entry
// getting through (the backend is down).
type Consumer struct {
	rdb  redis.UniversalClient
	d    Delivery
	opts ConsumerOptions
	log  *slog.Logger

	claimCursor string
	lastClaim   time.Time

	// Own pending entries left for a retry, and when each is due. The PEL
	// is read again (a scan from scanFrom) when one is due, and once at the
	// start for the entries a former run of this consumer left.
	later     map[string]retryAt
	scanning  bool
	scanFrom  string
	scanSince time.Time
}

// retryAt is when to deliver a pending entry again; inFlight counts how
// often in a row it was found under way elsewhere.
type retryAt struct {
	at       time.Time
	inFlight int
}

// Dead-letter entry fields.
const (
	DLFieldEvent    = events.StreamField
	DLFieldError    = "error"
	DLFieldAttempts = "attempts"
	DLFieldStreamID = "stream_id"
	DLFieldGroup    = "group"
	DLFieldConsumer = "consumer"
	DLFieldFailedAt = "failed_at"
)

// NewConsumer makes a consumer; log may be nil.
func NewConsumer(rdb redis.UniversalClient, d Delivery, opts ConsumerOptions, log *slog.Logger) (*Consumer, error) {
	if opts.Stream == "" || opts.Group == "" || opts.Consumer == "" {
		return nil, errors.New("consumer needs a stream, a group and a consumer name")
	}
	if opts.DeadLetter == "" {
		opts.DeadLetter = opts.Stream + ":dead-letters"
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	if opts.Block <= 0 {
		opts.Block = 5 * time.Second
	}
	if opts.ClaimIdle <= 0 {
		opts.ClaimIdle = 30 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.InFlightWait <= 0 {
		opts.InFlightWait = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{rdb: rdb, d: d, opts: opts, log: log, claimCursor: "0-0", later: map[string]retryAt{}}
	c.rescan()
	return c, nil
}

func (c *Consumer) attemptsKey() string { return c.opts.Stream + ":attempts:" + c.opts.Group }

// EnsureGroup creates the consumer group (from the start of the stream, so
// a new group sees every retained event) when it does not exist.
func (c *Consumer) EnsureGroup(ctx context.Context) error {
	err := c.rdb.XGroupCreateMkStream(ctx, c.opts.Stream, c.opts.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group %s: %w", c.opts.Group, err)
	}
	return nil
}

// Run consumes until ctx ends; it returns nil then. Redis errors are
// retried with backoff.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.EnsureGroup(ctx); err != nil {
		return err
	}
	c.log.Info("dispatch consumer started", "stream", c.opts.Stream, "group", c.opts.Group, "consumer", c.opts.Consumer)
	failures := 0
	for ctx.Err() == nil {
		progressed, err := c.Step(ctx)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			c.log.Error("dispatch consumer", "error", err)
			c.rescan() // what was pending may not be known as such
		}
		if err != nil || !progressed {
			failures++
			_ = events.Sleep(ctx, events.Backoff(c.opts.Backoff, c.opts.MaxBackoff, failures))
			continue
		}
		failures = 0
	}
	return nil
}

// Step reads one batch (own pending entries that are due first, then
// reclaimed ones, then new ones, blocking up to Block or until a pending
// entry is due) and handles it. progressed is false when the batch failed
// with no entry getting through (the caller backs off).
func (c *Consumer) Step(ctx context.Context) (progressed bool, err error) {
	msgs, err := c.duePending(ctx)
	if err != nil {
		return false, err
	}
	if len(msgs) == 0 && time.Since(c.lastClaim) >= c.opts.ClaimIdle/2 {
		c.lastClaim = time.Now()
		msgs, err = c.reclaim(ctx)
		if err != nil {
			return false, err
		}
	}
	if len(msgs) == 0 {
		block := c.opts.Block
		if at, ok := c.nextDue(); ok {
			if block = min(block, time.Until(at)); block < time.Millisecond {
				return true, nil // a pending entry is due: read it first
			}
		}
		if msgs, err = c.read(ctx, ">", block); err != nil {
			return false, err
		}
		if len(msgs) == 0 {
			return true, nil // nothing new: not a failure
		}
	}
	return c.handle(ctx, msgs)
}

// rescan makes the next Step read the whole PEL again, from its start.
func (c *Consumer) rescan() {
	c.scanning, c.scanFrom, c.scanSince = true, "0", time.Now()
}

// nextDue is when the first entry left for a retry is due.
func (c *Consumer) nextDue() (time.Time, bool) {
	var first time.Time
	for _, r := range c.later {
		if first.IsZero() || r.at.Before(first) {
			first = r.at
		}
	}
	return first, !first.IsZero()
}

// duePending returns the next batch of own pending entries that are due:
// during a scan of the PEL (started when an entry is due, or by rescan), the
// entries read that are not waiting for a later retry.
func (c *Consumer) duePending(ctx context.Context) ([]redis.XMessage, error) {
	now := time.Now()
	if !c.scanning {
		if at, ok := c.nextDue(); !ok || now.Before(at) {
			return nil, nil
		}
		c.rescan()
	}
	for {
		msgs, err := c.read(ctx, c.scanFrom, -1)
		if err != nil {
			return nil, err
		}
		if len(msgs) == 0 { // the scan is over
			c.scanning = false
			for id, r := range c.later {
				if !r.at.After(c.scanSince) {
					delete(c.later, id) // due, yet no longer ours: acknowledged or reclaimed elsewhere
				}
			}
			return nil, nil
		}
		c.scanFrom = msgs[len(msgs)-1].ID
		due := msgs[:0]
		for _, m := range msgs {
			if r, ok := c.later[m.ID]; ok && now.Before(r.at) {
				continue
			}
			due = append(due, m)
		}
		if len(due) > 0 {
			return due, nil
		}
	}
}

func (c *Consumer) read(ctx context.Context, id string, block time.Duration) ([]redis.XMessage, error) {
	res, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.opts.Group, Consumer: c.opts.Consumer,
		Streams: []string{c.opts.Stream, id}, Count: c.opts.BatchSize, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			if gerr := c.EnsureGroup(ctx); gerr != nil {
				return nil, gerr
			}
		}
		return nil, fmt.Errorf("xreadgroup: %w", err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res[0].Messages, nil
}

func (c *Consumer) reclaim(ctx context.Context) ([]redis.XMessage, error) {
	msgs, next, deleted, err := c.rdb.XAutoClaimWithDeleted(ctx, &redis.XAutoClaimArgs{
		Stream: c.opts.Stream, Group: c.opts.Group, Consumer: c.opts.Consumer,
		MinIdle: c.opts.ClaimIdle, Start: c.claimCursor, Count: c.opts.BatchSize,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("xautoclaim: %w", err)
	}
	c.claimCursor = next
	if next != "0-0" {
		c.lastClaim = time.Time{} // more to look at: go on at the next step
	}
	if len(deleted) > 0 { // trimmed from the stream while pending: nothing left to deliver
		c.log.Warn("pending events were trimmed from the stream before delivery", "count", len(deleted))
		if err := c.rdb.XAck(ctx, c.opts.Stream, c.opts.Group, deleted...).Err(); err != nil {
			return nil, fmt.Errorf("xack: %w", err)
		}
	}
	if len(msgs) > 0 {
		c.log.Info("reclaimed events of another consumer", "count", len(msgs))
	}
	return msgs, nil
}

// handle delivers msgs, acknowledges what is done, dead-letters what never
// will be, and leaves the rest pending for a later retry.
func (c *Consumer) handle(ctx context.Context, msgs []redis.XMessage) (bool, error) {
	var evs []event.Event
	var evMsgs []redis.XMessage
	var ack []string
	var dead []deadLetter
	for _, m := range msgs {
		raw, _ := m.Values[events.StreamField].(string)
		if m.Values == nil {
			ack = append(ack, m.ID) // trimmed while pending
			continue
		}
		ev, err := events.DecodeEvent([]byte(raw))
		if err != nil {
			dead = append(dead, deadLetter{msg: m, raw: raw, err: err, attempts: 1})
			continue
		}
		evs, evMsgs = append(evs, ev), append(evMsgs, m)
	}
	var retry, inFlight []redis.XMessage
	var retryErrs []error
	if len(evs) > 0 {
		errs := c.d.DeliverBatch(ctx, evs)
		for i, err := range errs {
			switch {
			case err == nil:
				ack = append(ack, evMsgs[i].ID)
			case errors.Is(err, dispatcher.ErrPoison):
				dead = append(dead, deadLetter{msg: evMsgs[i], raw: evMsgs[i].Values[events.StreamField].(string), err: err, attempts: 1})
			case errors.Is(err, dispatcher.ErrInFlight):
				inFlight = append(inFlight, evMsgs[i])
			default:
				retry = append(retry, evMsgs[i])
				retryErrs = append(retryErrs, err)
			}
		}
	}
	ctx = context.WithoutCancel(ctx) // bookkeeping must not be cut half-way
	now := time.Now()
	for _, m := range inFlight { // not a failed attempt: look again later
		r := c.later[m.ID]
		r.inFlight++
		r.at = now.Add(events.Backoff(c.opts.Backoff, c.opts.InFlightWait, r.inFlight))
		c.later[m.ID] = r
	}
	if len(inFlight) > 0 {
		c.log.Info("events being delivered elsewhere, will look again", "count", len(inFlight))
	}
	if len(retry) > 0 {
		pipe := c.rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(retry))
		for i, m := range retry {
			cmds[i] = pipe.HIncrBy(ctx, c.attemptsKey(), m.ID, 1)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return len(ack) > 0, fmt.Errorf("count attempts: %w", err)
		}
		for i, m := range retry {
			n := cmds[i].Val()
			if n >= int64(c.opts.MaxAttempts) {
				dead = append(dead, deadLetter{msg: m, raw: m.Values[events.StreamField].(string), err: retryErrs[i], attempts: n})
				continue
			}
			c.later[m.ID] = retryAt{at: now.Add(events.Backoff(c.opts.Backoff, c.opts.MaxBackoff, int(n)))}
		}
		c.log.Warn("events not delivered, will retry", "count", len(retry), "error", retryErrs[0])
	}
	if len(dead) > 0 {
		pipe := c.rdb.Pipeline()
		for _, dl := range dead {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: c.opts.DeadLetter, Values: []any{
				DLFieldEvent, dl.raw, DLFieldError, dl.err.Error(), DLFieldAttempts, dl.attempts,
				DLFieldStreamID, dl.msg.ID, DLFieldGroup, c.opts.Group, DLFieldConsumer, c.opts.Consumer,
				DLFieldFailedAt, time.Now().UTC().Format(time.RFC3339Nano),
			}})
			ack = append(ack, dl.msg.ID)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return false, fmt.Errorf("dead-letter: %w", err)
		}
		c.log.Error("events moved to the dead-letter stream", "count", len(dead), "stream", c.opts.DeadLetter, "error", dead[0].err)
	}
	if len(ack) > 0 {
		pipe := c.rdb.Pipeline()
		pipe.XAck(ctx, c.opts.Stream, c.opts.Group, ack...)
		pipe.HDel(ctx, c.attemptsKey(), ack...)
		if _, err := pipe.Exec(ctx); err != nil {
			return false, fmt.Errorf("xack: %w", err)
		}
		for _, id := range ack {
			delete(c.later, id)
		}
	}
	return len(retry) == 0 || len(ack) > 0, nil
}

type deadLetter struct {
	msg      redis.XMessage
	raw      string
	err      error
	attempts int64
}

// DeadLetter is one entry of the dead-letter stream.
type DeadLetter struct {
	ID       string    `json:"id"` // the dead-letter stream entry id
	StreamID string    `json:"stream_id"`
	Type     string    `json:"type,omitempty"`
	Source   string    `json:"source,omitempty"`
	EventID  string    `json:"event_id,omitempty"`
	Error    string    `json:"error"`
	Attempts int64     `json:"attempts"`
	Group    string    `json:"group"`
	FailedAt time.Time `json:"failed_at"`
	Event    string    `json:"-"`
}

// ListDeadLetters returns up to count entries of the dead-letter stream,
// oldest first.
func ListDeadLetters(ctx context.Context, rdb redis.UniversalClient, key string, count int64) ([]DeadLetter, error) {
	msgs, err := rdb.XRangeN(ctx, key, "-", "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		s := func(k string) string { v, _ := m.Values[k].(string); return v }
		dl := DeadLetter{ID: m.ID, StreamID: s(DLFieldStreamID), Error: s(DLFieldError), Group: s(DLFieldGroup), Event: s(DLFieldEvent)}
		dl.Attempts, _ = strconv.ParseInt(s(DLFieldAttempts), 10, 64)
		dl.FailedAt, _ = time.Parse(time.RFC3339Nano, s(DLFieldFailedAt))
		if ev, err := events.DecodeEvent([]byte(dl.Event)); err == nil {
			dl.Type, dl.Source, dl.EventID = ev.Type(), ev.Source(), ev.ID()
		}
		out = append(out, dl)
	}
	return out, nil
}

// ReplayDeadLetters moves dead letters back to the event stream (all of
// them when ids is empty) and returns how many were replayed. Each is
// appended to stream, then removed from the dead-letter stream.
func ReplayDeadLetters(ctx context.Context, rdb redis.UniversalClient, deadLetterKey, stream string, maxLen int64, ids []string) (int, error) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	start := "-"
	for {
		msgs, err := rdb.XRangeN(ctx, deadLetterKey, start, "+", 100).Result()
		if err != nil {
			return n, fmt.Errorf("read dead letters: %w", err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			if len(want) > 0 && !want[m.ID] {
				continue
			}
			raw, _ := m.Values[DLFieldEvent].(string)
			if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, MaxLen: maxLen, Approx: maxLen > 0, Values: []any{events.StreamField, raw}}).Err(); err != nil {
				return n, fmt.Errorf("replay %s: %w", m.ID, err)
			}
			if err := rdb.XDel(ctx, deadLetterKey, m.ID).Err(); err != nil {
				return n, fmt.Errorf("remove dead letter %s: %w", m.ID, err)
			}
			n++
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	return n, nil
}
